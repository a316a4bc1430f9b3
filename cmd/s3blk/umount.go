package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

func runUmount(args []string) error {
	fs := newFlagSet("umount", "MOUNTPOINT", "Unmount a volume and wait until the daemon has stored every dirty block and exited.\n"+
		"Exits non-zero if anything could not be stored")
	pos, err := parseArgs(fs, args, 1, "MOUNTPOINT")
	if err != nil {
		return err
	}
	mnt, err := filepath.Abs(pos[0])
	if err != nil {
		return err
	}
	m, err := findMount(mnt)
	if err != nil {
		return err
	}
	if m == nil || m.fstype != "fuse.s3blk" {
		return fmt.Errorf("%s is not an s3blk mount", mnt)
	}
	pid, _ := readPID(pidFile(mnt))
	alive := processAlive(pid)
	dirty := ""
	if alive {
		if data, err := os.ReadFile(filepath.Join(mnt, "stats")); err == nil {
			for _, line := range strings.Split(string(data), "\n") {
				if f := strings.Fields(line); len(f) == 2 && f[0] == "dirty_bytes" && f[1] != "0" {
					dirty = f[1]
				}
			}
		}
	}
	if err := unix.Unmount(mnt, 0); err != nil {
		if errors.Is(err, syscall.EBUSY) {
			return fmt.Errorf("%s is busy: unmount the filesystem on it and detach its loop device first (losetup -j %s/file)", mnt, mnt)
		}
		return fmt.Errorf("unmounting %s: %v", mnt, err)
	}
	if dirty != "" {
		fmt.Fprintf(os.Stderr, "s3blk: storing %s dirty bytes before the daemon exits...\n", dirty)
	}
	if !alive {
		return fmt.Errorf("the daemon for %s was not running (killed?); blocks it had not stored are lost, and its lock is stale: mount again with --force", mnt)
	}
	for processAlive(pid) {
		time.Sleep(50 * time.Millisecond)
	}
	data, err := os.ReadFile(statusFile(mnt))
	os.Remove(statusFile(mnt)) // read once; leftovers would pile up in the runtime directory
	if err != nil {
		return fmt.Errorf("the daemon exited without reporting its result; check its log")
	}
	status := strings.TrimSpace(string(data))
	if status != "ok" {
		return exitError{errors.New(strings.TrimPrefix(status, "error: ")), 1}
	}
	return nil
}

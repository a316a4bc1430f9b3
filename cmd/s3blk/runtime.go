package main

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// runtimeDir holds one PID file and one exit-status file per mountpoint, so
// that `s3blk umount` can find the daemon and learn whether it stored
// everything.
func runtimeDir() string {
	if os.Geteuid() == 0 {
		return "/run/s3blk"
	}
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		return filepath.Join(d, "s3blk")
	}
	return filepath.Join(os.TempDir(), fmt.Sprintf("s3blk-%d", os.Getuid()))
}

// escapePath turns /mnt/vol1 into mnt-vol1, like systemd-escape --path.
func escapePath(p string) string {
	p = strings.Trim(filepath.Clean(p), "/")
	if p == "" {
		return "-"
	}
	return strings.NewReplacer("\\", "\\x5c", "-", "\\x2d", "/", "-").Replace(p)
}

func pidFile(mnt string) string    { return filepath.Join(runtimeDir(), escapePath(mnt)+".pid") }
func statusFile(mnt string) string { return filepath.Join(runtimeDir(), escapePath(mnt)+".status") }

func defaultLogFile(mnt string) string {
	dir := "/var/log/s3blk"
	if os.Geteuid() != 0 {
		dir = runtimeDir()
	}
	return filepath.Join(dir, escapePath(mnt)+".log")
}

func writeRuntimeFile(path, content string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// mountEntry is one line of /proc/self/mountinfo.
type mountEntry struct {
	point, fstype, source string
}

func unescapeMountinfo(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// findMount returns the mount whose mount point is exactly dir, if any.
func findMount(dir string) (*mountEntry, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var found *mountEntry
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		fields, postFields := strings.Fields(pre), strings.Fields(post)
		if !ok || len(fields) < 5 || len(postFields) < 2 {
			continue
		}
		if unescapeMountinfo(fields[4]) == dir {
			found = &mountEntry{point: dir, fstype: postFields[0], source: unescapeMountinfo(postFields[1])}
		}
	}
	return found, sc.Err()
}

// processAlive reports whether pid exists and is an s3blk mount daemon.
func processAlive(pid int) bool {
	if pid <= 0 || syscall.Kill(pid, 0) != nil {
		return false
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	// A zombie has an empty cmdline: it has exited. A live PID that was
	// reused by another program is not a mount daemon: the daemon runs as
	// "<binary> mount ...", whatever the binary is called.
	args := strings.Split(string(cmdline), "\x00")
	return len(args) > 1 && args[1] == "mount"
}

func readPID(path string) (int, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		return 0, fmt.Errorf("bad PID file %s", path)
	}
	return pid, nil
}

// sdNotify tells systemd (Type=notify) that we are ready. It is a no-op
// outside systemd.
func sdNotify(state string) {
	sock := os.Getenv("NOTIFY_SOCKET")
	if sock == "" {
		return
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		return
	}
	defer conn.Close()
	conn.Write([]byte(state))
}

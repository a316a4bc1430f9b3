package e2e

import (
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// randomFile writes n MiB of random data to a temporary file.
func randomFile(t *testing.T, mib int) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "random")
	sh(t, fmt.Sprintf("head -c %dM /dev/urandom > %s", mib, p))
	return p
}

// TestFsyncSurvivesKill is the measured weakness of s3backer: write with
// dd conv=fsync, kill -9 the daemon the moment dd returns, mount again with
// --force, and find every byte.
func TestFsyncSurvivesKill(t *testing.T) {
	h := newHarness(t)
	url := h.url("fsyncvol")
	h.must("create", url, "--size", "1G", "--block-size", "1M")
	src := randomFile(t, 200)
	for round := 0; round < 2; round++ {
		// A long write delay: without a real barrier the blocks would
		// still be sitting in memory when the daemon dies.
		mnt := filepath.Join(t.TempDir(), "mnt")
		os.Mkdir(mnt, 0o755)
		args := []string{"--write-delay", "1h"}
		if round > 0 {
			args = append(args, "--force")
		}
		h.mountAt(url, mnt, args...)
		pid := h.daemonPID(mnt)
		// Plain dd (no conv=notrunc): truncation of the volume is ignored.
		sh(t, fmt.Sprintf("dd if=%s of=%s/file bs=1M seek=%d conv=fsync status=none", src, mnt, round*300))
		syscall.Kill(pid, syscall.SIGKILL)
		waitGone(t, pid, 10*time.Second)

		// The dead mount and the stale lock need --force.
		r := h.s3blk("mount", url, mnt)
		if r.code == 0 || !strings.Contains(r.stderr, "--force") {
			t.Fatalf("mount over a dead mount: exit %d, stderr %q; want a refusal suggesting --force", r.code, r.stderr)
		}
		mnt2 := filepath.Join(t.TempDir(), "mnt2")
		os.Mkdir(mnt2, 0o755)
		r = h.s3blk("mount", url, mnt2)
		if r.code == 0 || !strings.Contains(r.stderr, "already mounted by") || !strings.Contains(r.stderr, "stale") {
			t.Fatalf("mount with a stale lock: exit %d, stderr %q; want 'already mounted by' and 'stale'", r.code, r.stderr)
		}
		if info := h.must("info", url); !strings.Contains(info, "STALE") {
			t.Errorf("info does not call the dead holder's lock stale:\n%s", info)
		}
		h.mountAt(url, mnt, "--force")
		for r := 0; r <= round; r++ {
			sh(t, fmt.Sprintf("cmp -n %d %s %s/file --ignore-initial=0:%d", 200<<20, src, mnt, r*300<<20))
		}
		h.must("umount", mnt)
	}
}

// TestUmountWaitsForDirtyBlocks writes without fsync and unmounts at once:
// s3blk umount must return only after every block is stored.
func TestUmountWaitsForDirtyBlocks(t *testing.T) {
	h := newHarness(t)
	url := h.url("umountvol")
	h.must("create", url, "--size", "512M", "--block-size", "1M")
	src := randomFile(t, 64)
	mnt := h.mount(url, "--uploaders", "1") // blocks still dirty at umount
	sh(t, fmt.Sprintf("dd if=%s of=%s/file bs=1M conv=notrunc status=none", src, mnt))
	if n := statValue(t, mnt, "dirty_blocks"); n == 0 {
		t.Logf("note: no dirty blocks before umount (uploads were fast)")
	}
	h.must("umount", mnt)
	if n := h.blockObjects("umountvol"); n != 64 {
		t.Fatalf("after umount the bucket holds %d block objects, want 64", n)
	}
	mnt2 := h.mount(url, "--read-only")
	sh(t, fmt.Sprintf("cmp -n %d %s %s/file", 64<<20, src, mnt2))
}

// TestSignalFlushes sends SIGTERM to a foreground daemon with dirty blocks:
// it must store them, unmount and exit 0.
func TestSignalFlushes(t *testing.T) {
	h := newHarness(t)
	url := h.url("sigvol")
	h.must("create", url, "--size", "256M", "--block-size", "64K")
	src := randomFile(t, 16)
	mnt := filepath.Join(t.TempDir(), "mnt")
	os.Mkdir(mnt, 0o755)
	cmd := exec.Command(s3blkBin, "mount", url, mnt, "--foreground", "--write-delay", "1h", "--passphrase-file", h.passFile)
	logs := &strings.Builder{}
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for !isMounted(mnt) {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("foreground mount never appeared:\n%s", logs)
		}
		time.Sleep(50 * time.Millisecond)
	}
	sh(t, fmt.Sprintf("dd if=%s of=%s/file bs=64K conv=notrunc status=none", src, mnt))
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("daemon exit after SIGTERM: %v\n%s", err, logs)
		}
	case <-time.After(2 * time.Minute):
		cmd.Process.Kill()
		t.Fatalf("daemon did not exit after SIGTERM:\n%s", logs)
	}
	if isMounted(mnt) {
		t.Fatal("still mounted after SIGTERM")
	}
	if n := h.blockObjects("sigvol"); n != 256 {
		t.Fatalf("after SIGTERM the bucket holds %d block objects, want 256", n)
	}
	if keys := h.objects("sigvol/lock"); len(keys) != 0 {
		t.Fatalf("lock left behind after a clean exit: %v", keys)
	}
	mnt2 := h.mount(url, "--read-only")
	sh(t, fmt.Sprintf("cmp -n %d %s %s/file", 16<<20, src, mnt2))
}

// TestReadOnlyMount takes no lock and refuses writes.
func TestReadOnlyMount(t *testing.T) {
	h := newHarness(t)
	url := h.url("rovol")
	h.must("create", url, "--size", "64M", "--block-size", "64K")
	mnt := h.mount(url, "--read-only")
	if keys := h.objects("rovol/lock"); len(keys) != 0 {
		t.Fatalf("a read-only mount took the lock: %v", keys)
	}
	if f, err := os.OpenFile(mnt+"/file", os.O_WRONLY, 0); err == nil {
		f.Close()
		t.Fatal("opening the file for writing on a read-only mount succeeded")
	}
	// A read-write mount may coexist with read-only ones.
	h.mount(url)
}

// TestBusyMountKeepsServing: while ext4 on a loop device uses the file,
// SIGTERM stores the dirty blocks but does not pull the disk away, and
// s3blk umount refuses with a clear message. Both work once it is free.
func TestBusyMountKeepsServing(t *testing.T) {
	h := newHarness(t)
	url := h.url("busyvol")
	h.must("create", url, "--size", "256M", "--block-size", "1M")
	mnt := h.mount(url, "--write-delay", "1h")
	sh(t, "mkfs.ext4 -q -F "+mnt+"/file")
	fs := h.loopMount(mnt + "/file")
	src := randomFile(t, 4)
	sh(t, fmt.Sprintf("cp %s %s/a", src, fs))

	r := h.s3blk("umount", mnt)
	if r.code == 0 || !strings.Contains(r.stderr, "busy") {
		t.Fatalf("umount under a loop mount: exit %d, stderr %q; want a busy refusal", r.code, r.stderr)
	}
	pid := h.daemonPID(mnt)
	syscall.Kill(pid, syscall.SIGTERM)
	deadline := time.Now().Add(30 * time.Second)
	for statValue(t, mnt, "dirty_blocks") != 0 {
		if time.Now().After(deadline) {
			t.Fatal("SIGTERM did not store the dirty blocks")
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err != nil {
		t.Fatal("the daemon exited while a loop device still used its file")
	}
	// Still serving: the filesystem works, then everything unmounts cleanly.
	sh(t, fmt.Sprintf("cp %s %s/b && sync && cmp %s %s/a", src, fs, src, fs))
	sh(t, "umount "+fs)
	h.must("umount", mnt)
	waitGone(t, pid, 10*time.Second)
}

// TestExt4SurvivesKillAfterSync is the crash loop: several times, write
// files through ext4 and sync, start more writes, kill -9 the daemon at a
// random moment while they are in flight, and mount again with --force.
// Every file written before a completed sync, in this round and all earlier
// ones, must be intact after the journal replay of a normal mount, and
// e2fsck -fn must then find the filesystem clean. S3BLK_SOAK=1 runs 25
// rounds instead of 5; S3BLK_CRASH_SEED replays a run.
func TestExt4SurvivesKillAfterSync(t *testing.T) {
	h := newHarness(t)
	url := h.url("crashvol")
	h.must("create", url, "--size", "1G", "--block-size", "256K")
	mnt := h.mount(url, "--write-delay", "1h")
	sh(t, "mkfs.ext4 -q -F "+mnt+"/file")
	rounds := 5
	if soak() {
		rounds = 25
	}
	seed := time.Now().UnixNano()
	if s := os.Getenv("S3BLK_CRASH_SEED"); s != "" {
		seed, _ = strconv.ParseInt(s, 10, 64)
	}
	t.Logf("seed %d (S3BLK_CRASH_SEED), %d rounds", seed, rounds)
	rng := rand.New(rand.NewPCG(uint64(seed), 0))
	src := goSourceTree(t)
	synced := map[string][32]byte{} // path in the filesystem -> SHA-256

	for round := 1; round <= rounds; round++ {
		fs := h.loopMount(mnt + "/file") // a normal mount replays the journal
		checkFiles(t, fs, synced)
		if round > 1 {
			sh(t, "umount "+fs)
			if out, err := exec.Command("e2fsck", "-fn", mnt+"/file").CombinedOutput(); err != nil {
				t.Fatalf("round %d: e2fsck -fn after the crash and journal replay: %v\n%s", round, err, out)
			}
			fs = h.loopMount(mnt + "/file")
		}
		for i := range 1 + rng.IntN(20) {
			data := make([]byte, rng.IntN(3<<20))
			for j := range data {
				data[j] = byte(rng.Uint32())
			}
			name := fmt.Sprintf("round%d/file%d", round, i)
			os.MkdirAll(filepath.Join(fs, filepath.Dir(name)), 0o755)
			if err := os.WriteFile(filepath.Join(fs, name), data, 0o644); err != nil {
				t.Fatal(err)
			}
			synced[name] = sha256.Sum256(data)
		}
		sh(t, "sync")

		// More writes, not synced, then the daemon dies mid-flight.
		writer := exec.Command("cp", "-r", src+"/crypto", fmt.Sprintf("%s/unsynced%d", fs, round))
		writer.Start()
		time.Sleep(time.Duration(rng.IntN(1500)) * time.Millisecond)
		pid := h.daemonPID(mnt)
		syscall.Kill(pid, syscall.SIGKILL)
		waitGone(t, pid, 10*time.Second)
		writer.Wait()
		// Tear down the dead stack: the filesystem, its loop device, the FUSE mount.
		loopDev := strings.TrimSpace(sh(t, fmt.Sprintf("losetup -j %s/file | cut -d: -f1", mnt)))
		exec.Command("umount", "-l", fs).Run()
		if loopDev != "" {
			exec.Command("losetup", "-d", loopDev).Run()
		}
		exec.Command("umount", "-l", mnt).Run()
		// Alternate between holding writes back until the sync and
		// uploading them as they come, so kills land in both states.
		h.mountAt(url, mnt, "--force", "--write-delay", []string{"200ms", "1h"}[round%2])
	}
	fs := h.loopMount(mnt + "/file")
	checkFiles(t, fs, synced)
	sh(t, "umount "+fs)
	if out, err := exec.Command("e2fsck", "-fn", mnt+"/file").CombinedOutput(); err != nil {
		t.Fatalf("e2fsck -fn after %d crashes and journal replays: %v\n%s", rounds, err, out)
	}
	t.Logf("%d kill -9 rounds; %d synced files intact; e2fsck clean", rounds, len(synced))
}

// checkFiles compares every file in want (relative to dir) with its SHA-256.
func checkFiles(t *testing.T, dir string, want map[string][32]byte) {
	t.Helper()
	for name, sum := range want {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatalf("a file synced before the crash: %v", err)
		}
		if sha256.Sum256(data) != sum {
			t.Fatalf("%s: synced before the crash, but its content changed", name)
		}
	}
}

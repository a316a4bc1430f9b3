package e2e

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestExt4RsyncRoundTrip is the s3backer use case end to end: create,
// mount, mkfs.ext4, loop mount, rsync the Go source tree, sync, unmount
// both, mount again, and find the tree byte for byte with e2fsck clean.
func TestExt4RsyncRoundTrip(t *testing.T) {
	h := newHarness(t)
	url := h.url("vol1")
	src := goSourceTree(t)

	out := h.must("create", url, "--size", "2G", "--block-size", "1M")
	if !strings.Contains(out, "2048 blocks") {
		t.Errorf("create output %q does not give the geometry", out)
	}
	mnt := h.mount(url)
	sh(t, "mkfs.ext4 -q -F "+mnt+"/file")
	fs := h.loopMount(mnt + "/file")
	sh(t, fmt.Sprintf("rsync -a %s/ %s/src/ && sync", src, fs))

	info := h.must("info", url)
	if !strings.Contains(info, "mounted by") || !strings.Contains(info, mnt) {
		t.Errorf("info while mounted does not name the lock holder:\n%s", info)
	}
	if n := statValue(t, mnt, "uploads"); n == 0 {
		t.Errorf("stats shows no uploads after sync")
	}
	if n := statValue(t, mnt, "fsyncs"); n == 0 {
		t.Errorf("stats shows no fsyncs: the loop device's flushes did not reach us")
	}

	// Unmount both; s3blk umount returns only when everything is stored.
	sh(t, "umount "+fs)
	h.must("umount", mnt)
	if isMounted(mnt) {
		t.Fatal("still mounted after s3blk umount")
	}

	// The bucket holds exactly the layout the README documents.
	keys := h.objects("vol1/")
	layout := regexp.MustCompile(`^vol1/(header|blocks/[0-9a-f]{16})$`)
	for _, k := range keys {
		if !layout.MatchString(k) {
			t.Errorf("unexpected object %q (lock left behind, or a layout change)", k)
		}
	}
	if len(keys) < 100 {
		t.Errorf("only %d objects stored for ~180 MiB of data", len(keys))
	}
	if !strings.Contains(h.must("info", url), "not mounted") {
		t.Errorf("info after umount still shows a lock")
	}

	// Mount again: e2fsck clean, and the tree compares equal, byte for byte
	// and attribute for attribute.
	mnt2 := h.mount(url)
	if out, err := exec.Command("e2fsck", "-fn", mnt2+"/file").CombinedOutput(); err != nil {
		t.Fatalf("e2fsck -fn after remount: %v\n%s", err, out)
	}
	fs2 := h.loopMount(mnt2 + "/file")
	sh(t, fmt.Sprintf("diff -r %s %s/src", src, fs2))
	if diffs := sh(t, fmt.Sprintf("rsync -a -n -c -i --delete %s/ %s/src/", src, fs2)); strings.TrimSpace(diffs) != "" {
		t.Fatalf("rsync -c finds differences after remount:\n%s", diffs)
	}
	if n := statValue(t, mnt2, "downloads"); n == 0 {
		t.Errorf("the remounted tree was read without any downloads?")
	}

	// TRIM: deleting files and running fstrim deletes block objects.
	before := h.blockObjects("vol1")
	sh(t, fmt.Sprintf("rm -rf %s/src/cmd %s/src/vendor && sync && fstrim %s && sync", fs2, fs2, fs2))
	after := h.blockObjects("vol1")
	if after >= before {
		t.Errorf("fstrim deleted no block objects (%d before, %d after)", before, after)
	}
	t.Logf("TRIM: %d -> %d block objects; deletes=%d", before, after, statValue(t, mnt2, "deletes"))
	sh(t, "umount "+fs2)
	if out, err := exec.Command("e2fsck", "-fn", mnt2+"/file").CombinedOutput(); err != nil {
		t.Fatalf("e2fsck -fn after TRIM: %v\n%s", err, out)
	}
}

// TestTarIntoFilesystem extracts a tar stream into ext4 on a volume and
// checks it after a remount. The cache is tiny (8 blocks, at most 4 dirty),
// so eviction, read-modify-write and writers waiting on the dirty bound all
// happen under a real kernel I/O pattern.
func TestTarIntoFilesystem(t *testing.T) {
	h := newHarness(t)
	url := h.url("tarvol")
	src := goSourceTree(t)
	h.must("create", url, "--size", "1G", "--block-size", "256K")
	mnt := h.mount(url, "--cache-size", "2M", "--max-dirty", "1M", "--read-ahead", "2")
	sh(t, "mkfs.ext4 -q -F "+mnt+"/file")
	fs := h.loopMount(mnt + "/file")
	sh(t, fmt.Sprintf("mkdir %s/x && tar -C %s -cf - net crypto | tar -C %s/x -xf - && sync", fs, src, fs))
	sh(t, "umount "+fs)
	if n := statValue(t, mnt, "cached_blocks"); n > 8 {
		t.Errorf("a 2M cache of 256K blocks holds %d blocks", n)
	}
	h.must("umount", mnt)

	mnt2 := h.mount(url, "--read-only", "--cache-size", "2M")
	fs2 := h.loopMount(mnt2+"/file", "ro,noload")
	sh(t, fmt.Sprintf("diff -r %s/net %s/x/net && diff -r %s/crypto %s/x/crypto", src, fs2, src, fs2))
}

// goSourceTree is the Go toolchain's source tree, the test data the issue
// names: about 180 MiB in 15k files.
func goSourceTree(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOROOT").Output()
	if err != nil {
		t.Fatalf("go env GOROOT: %v", err)
	}
	return filepath.Join(strings.TrimSpace(string(out)), "src")
}

package fusefs_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/s3blk/s3blk/volume"
)

func TestWritePastEnd(t *testing.T) {
	m := mount(t, newVolume(t), false)
	f := openFile(t, m, os.O_RDWR)
	model := make([]byte, volSize)
	for _, w := range []struct {
		off int64
		n   int
	}{
		{volSize - 10, 20},
		{volSize, 1},
		{volSize + blockSize, blockSize},
		{1 << 40, 10},
	} {
		// Like a block device: ENOSPC, and nothing written.
		if n, err := f.WriteAt(randomBytes(7, w.n), w.off); !errors.Is(err, syscall.ENOSPC) || n != 0 {
			t.Errorf("WriteAt(%d bytes at %d) past the end = %d, %v; want 0, ENOSPC", w.n, w.off, n, err)
		}
	}
	// A failed write stored nothing and did not grow the file.
	checkRange(t, f, model, volSize-blockSize, blockSize)
	if fi, err := os.Stat(m.file()); err != nil || fi.Size() != volSize {
		t.Fatalf("size after writes past the end: %d, %v", fi.Size(), err)
	}
	// Reads past the end are short / EOF.
	buf := make([]byte, 100)
	if n, _ := f.ReadAt(buf, volSize-10); n != 10 {
		t.Errorf("read straddling the end returned %d bytes, want 10", n)
	}
	if n, _ := f.ReadAt(buf, volSize); n != 0 {
		t.Errorf("read at the end returned %d bytes, want 0", n)
	}
	// Writing the very last byte works.
	writeAt(t, f, model, []byte{0x5a}, volSize-1)
	checkRange(t, f, model, volSize-2, 2)
}

// TestTruncate: the volume's size is fixed by its header. A truncation may be
// refused or ignored, but must neither change the size nor destroy data.
func TestTruncate(t *testing.T) {
	dir := newVolume(t)
	m := mount(t, dir, false)
	f := openFile(t, m, os.O_RDWR)
	model := make([]byte, volSize)
	writeAt(t, f, model, randomBytes(3, 3*blockSize), blockSize/2)
	syncFile(t, f)

	for _, size := range []int64{0, 1 << 20, volSize - 1, volSize + blockSize, 2 * volSize} {
		err := os.Truncate(m.file(), size)
		t.Logf("truncate to %d: %v", size, err)
		fi, serr := os.Stat(m.file())
		if serr != nil || fi.Size() != volSize {
			t.Fatalf("after truncate to %d, size is %d (%v), want %d", size, fi.Size(), serr, volSize)
		}
		checkRange(t, f, model, 0, 5*blockSize)
	}
	// Truncating to the current size is harmless either way.
	if err := os.Truncate(m.file(), volSize); err != nil {
		t.Errorf("truncate to the current size: %v", err)
	}
	// Opening with O_TRUNC (as a plain `dd of=file` does) keeps the data.
	if g, err := os.OpenFile(m.file(), os.O_WRONLY|os.O_TRUNC, 0); err == nil {
		g.Close()
	} else {
		t.Logf("open with O_TRUNC: %v", err)
	}
	checkRange(t, f, model, 0, 5*blockSize)
	syncFile(t, f)
	checkStore(t, dir, model)
}

func TestStatsFile(t *testing.T) {
	m := mount(t, newVolume(t), false)
	data, err := os.ReadFile(m.stats())
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"uploads", "fsyncs", "downloads", "corrupt_blocks"} {
		if !strings.Contains(string(data), want) {
			t.Errorf("stats lacks %q:\n%s", want, data)
		}
	}
	s0 := readStats(t, m)
	f := openFile(t, m, os.O_RDWR)
	writeAt(t, f, make([]byte, volSize), randomBytes(4, 3*blockSize), 0)
	syncFile(t, f)
	syncFile(t, f)
	s1 := readStats(t, m) // regenerated on every open
	if s1["fsyncs"] != s0["fsyncs"]+2 {
		t.Errorf("fsyncs went from %d to %d after two fsyncs", s0["fsyncs"], s1["fsyncs"])
	}
	if s1["uploads"] < s0["uploads"]+3 {
		t.Errorf("uploads went from %d to %d after storing 3 blocks", s0["uploads"], s1["uploads"])
	}
	if s1["upload_bytes"] < 3*blockSize {
		t.Errorf("upload_bytes %d after storing 3 blocks", s1["upload_bytes"])
	}
	if _, err := os.OpenFile(m.stats(), os.O_WRONLY, 0); err == nil {
		t.Error("stats opened for writing")
	}
}

// TestCorruptBlock: a block object damaged in the store fails the read with
// EIO; it is never returned as data, and a partial write to it (which
// needs the old contents) fails instead of overwriting it with garbage.
func TestCorruptBlock(t *testing.T) {
	dir := newVolume(t)
	m := mount(t, dir, false)
	f := openFile(t, m, os.O_RDWR)
	model := make([]byte, volSize)
	writeAt(t, f, model, randomBytes(5, 3*blockSize), 20*blockSize) // blocks 20..22
	syncFile(t, f)
	f.Close()
	m.unmount()

	obj := filepath.Join(dir, volume.BlockKey(21))
	data, err := os.ReadFile(obj)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0x01
	if err := os.WriteFile(obj, data, 0o600); err != nil {
		t.Fatal(err)
	}

	m2 := mount(t, dir, false)
	f2 := openFile(t, m2, os.O_RDWR)
	buf := make([]byte, blockSize)
	for _, off := range []int64{21 * blockSize, 21*blockSize + 1000, 21*blockSize - 10} {
		for try := 0; try < 2; try++ { // a failed load must not be cached as data
			n, err := f2.ReadAt(buf[:100], off)
			if !errors.Is(err, syscall.EIO) {
				t.Fatalf("read at %d of a corrupt block = %d bytes, %v; want EIO", off, n, err)
			}
		}
	}
	// The good neighbours still read.
	checkRange(t, f2, model, 20*blockSize, blockSize)
	checkRange(t, f2, model, 22*blockSize, blockSize)
	if got := m2.st.CorruptBlocks.Load(); got < 1 {
		t.Errorf("CorruptBlocks = %d after reading a corrupt block", got)
	}
	if s := readStats(t, m2); s["corrupt_blocks"] < 1 {
		t.Errorf("stats file shows corrupt_blocks %d", s["corrupt_blocks"])
	}

	// A partial write needs the old block, so it fails too.
	if _, err := f2.WriteAt([]byte("partial"), 21*blockSize+10); err == nil {
		t.Error("a partial write to a corrupt block succeeded")
	}
	syncFile(t, f2)
	if now, err := os.ReadFile(obj); err != nil || !bytes.Equal(now, data) {
		t.Fatalf("the corrupt object was replaced after a failed partial write (%v)", err)
	}
	// A whole-block write needs no read: it repairs the block.
	writeAt(t, f2, model, randomBytes(6, blockSize), 21*blockSize)
	checkRange(t, f2, model, 20*blockSize, 3*blockSize)
	syncFile(t, f2)
	checkStore(t, dir, model)
}

func TestReadOnly(t *testing.T) {
	dir := newVolume(t)
	m := mount(t, dir, false)
	f := openFile(t, m, os.O_RDWR)
	model := make([]byte, volSize)
	writeAt(t, f, model, randomBytes(8, 2*blockSize+300), 5*blockSize-100)
	f.Close()
	m.unmount()
	before := storedBlocks(t, dir)

	ro := mount(t, dir, true)
	for _, flag := range []int{os.O_RDWR, os.O_WRONLY, os.O_WRONLY | os.O_TRUNC} {
		if g, err := os.OpenFile(ro.file(), flag, 0); err == nil {
			g.Close()
			t.Errorf("read-only mount: open with flags %#x succeeded", flag)
		} else if !errors.Is(err, syscall.EROFS) {
			t.Errorf("read-only mount: open with flags %#x = %v, want EROFS", flag, err)
		}
	}
	if fi, err := os.Stat(ro.file()); err != nil || fi.Mode().Perm()&0o222 != 0 {
		t.Errorf("read-only file mode %v (%v), want no write bits", fi.Mode(), err)
	}
	if err := os.Truncate(ro.file(), 0); err == nil {
		if fi, _ := os.Stat(ro.file()); fi.Size() != volSize {
			t.Errorf("truncate on a read-only mount changed the size to %d", fi.Size())
		}
	}
	r := openFile(t, ro, os.O_RDONLY)
	checkAll(t, r, model)
	if err := punch(r, 5*blockSize, blockSize); err == nil {
		t.Error("punching a hole through a read-only mount succeeded")
	}
	syncFile(t, r) // fsync with nothing dirty succeeds
	r.Close()
	ro.unmount()
	if after := storedBlocks(t, dir); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("a read-only mount changed the store: %v -> %v", keys(before), keys(after))
	}
	checkStore(t, dir, model)
}

// TestZeroWrites: a block written to all zeros, by write(2) rather than by
// punching, is stored as no object at all.
func TestZeroWrites(t *testing.T) {
	dir := newVolume(t)
	m := mount(t, dir, false)
	f := openFile(t, m, os.O_RDWR)
	model := make([]byte, volSize)
	writeAt(t, f, model, randomBytes(9, 4*blockSize), 8*blockSize) // blocks 8..11
	syncFile(t, f)
	checkStore(t, dir, model)

	writeAt(t, f, model, make([]byte, blockSize), 8*blockSize)                // whole block 8
	writeAt(t, f, model, make([]byte, blockSize/2), 9*blockSize)              // block 9 in two halves
	writeAt(t, f, model, make([]byte, blockSize/2), 9*blockSize+blockSize/2)  //
	writeAt(t, f, model, make([]byte, 2*blockSize), 10*blockSize+blockSize/2) // half of 10, half of 12 (empty), all of 11
	uploads := m.st.Uploads.Load()
	writeAt(t, f, model, make([]byte, 3*blockSize), 40*blockSize) // never-written blocks
	syncFile(t, f)
	checkStore(t, dir, model)
	if got := storedBlocks(t, dir); len(got) != 1 || !got[10] {
		t.Fatalf("after zeroing, store holds %v, want [10]", keys(got))
	}
	if m.st.Uploads.Load() > uploads+1 { // at most block 10's new half
		t.Errorf("zero writes caused %d uploads", m.st.Uploads.Load()-uploads)
	}
	checkRange(t, f, model, 7*blockSize, 6*blockSize)
}

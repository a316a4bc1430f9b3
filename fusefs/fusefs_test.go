package fusefs_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/s3blk/s3blk/blockstore"
	"github.com/s3blk/s3blk/cache"
	"github.com/s3blk/s3blk/fusefs"
	"github.com/s3blk/s3blk/internal/testenv"
	"github.com/s3blk/s3blk/stats"
	"github.com/s3blk/s3blk/volume"
)

const (
	volSize   = 64 << 20
	blockSize = 64 << 10
	cacheSize = 1 << 20 // 16 blocks: small, to force eviction
)

// mounted is one running stack: Local store -> volume -> cache -> FUSE.
type mounted struct {
	dir, mnt string
	vol      *volume.Volume
	c        *cache.Cache
	st       *stats.Counters
	unmount  func()
}

func (m *mounted) file() string  { return filepath.Join(m.mnt, "file") }
func (m *mounted) stats() string { return filepath.Join(m.mnt, "stats") }

// newVolume creates a 64 MiB volume of 64 KiB blocks in a fresh directory.
func newVolume(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if _, err := volume.Create(context.Background(), blockstore.NewLocal(dir), volSize, blockSize, volume.Options{}); err != nil {
		t.Fatal(err)
	}
	return dir
}

// mount opens the volume in dir and serves it on a fresh mountpoint. The
// returned unmount (also run at cleanup) unmounts and closes the cache.
func mount(t *testing.T, dir string, readOnly bool) *mounted {
	t.Helper()
	testenv.NeedRoot(t)
	st := new(stats.Counters)
	vol, err := volume.Open(context.Background(), blockstore.NewLocal(dir), nil, st)
	if err != nil {
		t.Fatal(err)
	}
	c := cache.New(vol, vol.Header.Blocks(), cache.Config{Size: cacheSize, ReadOnly: readOnly}, st)
	c.Start()
	mnt := t.TempDir()
	server, err := fusefs.Mount(mnt, c, st, fusefs.Options{DirectIO: true, ReadOnly: readOnly, FsName: "s3blk-test"})
	if err != nil {
		c.Close()
		t.Fatalf("mounting: %v", err)
	}
	m := &mounted{dir: dir, mnt: mnt, vol: vol, c: c, st: st}
	var once sync.Once
	m.unmount = func() {
		once.Do(func() {
			if err := server.Unmount(); err != nil {
				t.Errorf("unmount: %v", err)
			}
			if err := c.Close(); err != nil {
				t.Errorf("closing the cache: %v", err)
			}
		})
	}
	t.Cleanup(m.unmount)
	return m
}

func openFile(t *testing.T, m *mounted, flag int) *os.File {
	t.Helper()
	f, err := os.OpenFile(m.file(), flag, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// storedBlocks returns the indexes of the block objects in dir.
func storedBlocks(t *testing.T, dir string) map[uint64]bool {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(dir, "blocks"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	got := map[uint64]bool{}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".tmp-") {
			t.Errorf("temporary file %s left in the store", e.Name())
			continue
		}
		i, ok := volume.ParseBlockKey(volume.BlockPrefix + e.Name())
		if !ok {
			t.Fatalf("unexpected object blocks/%s", e.Name())
		}
		got[i] = true
	}
	return got
}

func randomBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 42))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32()) | 1 // never zero, so every touched block is stored
	}
	return b
}

func writeAt(t *testing.T, f *os.File, model []byte, p []byte, off int64) {
	t.Helper()
	n, err := f.WriteAt(p, off)
	if err != nil || n != len(p) {
		t.Fatalf("WriteAt(%d bytes at %d) = %d, %v", len(p), off, n, err)
	}
	copy(model[off:], p)
}

func syncFile(t *testing.T, f *os.File) {
	t.Helper()
	if err := f.Sync(); err != nil {
		t.Fatalf("fsync: %v", err)
	}
}

// checkRange reads [off, off+n) and compares it with the model.
func checkRange(t *testing.T, f *os.File, model []byte, off int64, n int) {
	t.Helper()
	got := make([]byte, n)
	k, err := f.ReadAt(got, off)
	if err != nil || k != n {
		t.Fatalf("ReadAt(%d bytes at %d) = %d, %v", n, off, k, err)
	}
	if want := model[off : off+int64(n)]; !bytes.Equal(got, want) {
		i := 0
		for got[i] == want[i] {
			i++
		}
		t.Fatalf("ReadAt(%d bytes at %d): first difference at offset %d: got %#x, want %#x",
			n, off, off+int64(i), got[i], want[i])
	}
}

// checkAll reads the whole volume in unaligned chunks and compares it with
// the model.
func checkAll(t *testing.T, f *os.File, model []byte) {
	t.Helper()
	const chunk = 1<<20 - 4097
	for off := int64(0); off < volSize; off += chunk {
		checkRange(t, f, model, off, int(min(chunk, volSize-off)))
	}
}

// nonZeroBlocks lists the blocks of the model holding any non-zero byte.
func nonZeroBlocks(model []byte) map[uint64]bool {
	want := map[uint64]bool{}
	zero := make([]byte, blockSize)
	for i := 0; i < volSize/blockSize; i++ {
		if !bytes.Equal(model[i*blockSize:(i+1)*blockSize], zero) {
			want[uint64(i)] = true
		}
	}
	return want
}

// checkStore verifies that the store holds exactly the model's non-zero
// blocks, each decoding to the model's bytes.
func checkStore(t *testing.T, dir string, model []byte) {
	t.Helper()
	want := nonZeroBlocks(model)
	got := storedBlocks(t, dir)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("store holds blocks %v, want %v", keys(got), keys(want))
	}
	vol, err := volume.Open(context.Background(), blockstore.NewLocal(dir), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, blockSize)
	for i := range want {
		found, err := vol.ReadBlock(context.Background(), i, buf)
		if err != nil || !found {
			t.Fatalf("stored block %d: found %v, %v", i, found, err)
		}
		if !bytes.Equal(buf, model[i*blockSize:(i+1)*blockSize]) {
			t.Fatalf("stored block %d differs from what was written", i)
		}
	}
}

func keys(m map[uint64]bool) []uint64 {
	var out []uint64
	for i := uint64(0); i < volSize/blockSize; i++ {
		if m[i] {
			out = append(out, i)
		}
	}
	return out
}

func readStats(t *testing.T, m *mounted) map[string]int64 {
	t.Helper()
	data, err := os.ReadFile(m.stats())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		f := strings.Fields(line)
		if len(f) != 2 {
			continue
		}
		if v, err := strconv.ParseInt(f[1], 10, 64); err == nil {
			out[f[0]] = v
		}
	}
	return out
}

func TestAttributes(t *testing.T) {
	m := mount(t, newVolume(t), false)
	fi, err := os.Stat(m.file())
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() != volSize {
		t.Errorf("file size %d, want %d", fi.Size(), volSize)
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o600 {
		t.Errorf("file mode %v, want -rw-------", fi.Mode())
	}
	st := fi.Sys().(*syscall.Stat_t)
	if st.Uid != uint32(os.Getuid()) || st.Gid != uint32(os.Getgid()) {
		t.Errorf("file owner %d:%d, want %d:%d", st.Uid, st.Gid, os.Getuid(), os.Getgid())
	}
	sfi, err := os.Stat(m.stats())
	if err != nil {
		t.Fatal(err)
	}
	if !sfi.Mode().IsRegular() || sfi.Mode().Perm() != 0o444 {
		t.Errorf("stats mode %v, want -r--r--r--", sfi.Mode())
	}
	ents, err := os.ReadDir(m.mnt)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if fmt.Sprint(names) != "[file stats]" {
		t.Errorf("mount holds %v, want [file stats]", names)
	}
	if _, err := os.Create(filepath.Join(m.mnt, "new")); err == nil {
		t.Error("creating a new file in the mount succeeded")
	}
	// The mode and owner are fixed by the filesystem: chmod and chown must
	// not make the volume readable or writable by others.
	if err := os.Chmod(m.file(), 0o666); err != nil {
		t.Logf("chmod: %v", err)
	}
	if err := os.Chown(m.file(), 12345, 12345); err != nil {
		t.Logf("chown: %v", err)
	}
	fi, err = os.Stat(m.file())
	if err != nil {
		t.Fatal(err)
	}
	if st := fi.Sys().(*syscall.Stat_t); fi.Mode().Perm() != 0o600 || st.Uid != uint32(os.Getuid()) {
		t.Errorf("after chmod 666 and chown 12345: mode %v uid %d", fi.Mode(), st.Uid)
	}
	// The mtime can be set (touch, rsync).
	when := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	if err := os.Chtimes(m.file(), when, when); err != nil {
		t.Fatalf("chtimes: %v", err)
	}
	if fi, err := os.Stat(m.file()); err != nil || !fi.ModTime().Equal(when) {
		t.Errorf("mtime after chtimes: %v (%v), want %v", fi.ModTime(), err, when)
	}
	// Plain fallocate within the volume is a no-op success; beyond it,
	// the volume cannot grow.
	f := openFile(t, m, os.O_RDWR)
	if err := unix.Fallocate(int(f.Fd()), 0, 0, volSize); err != nil {
		t.Errorf("fallocate of the whole volume: %v", err)
	}
	if err := unix.Fallocate(int(f.Fd()), 0, volSize-4096, 8192); err == nil {
		t.Error("fallocate past the end of the volume succeeded")
	}
	if fi, err := os.Stat(m.file()); err != nil || fi.Size() != volSize {
		t.Errorf("size after fallocate: %d (%v)", fi.Size(), err)
	}

	// The mount shows in mountinfo as a FUSE filesystem.
	info, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(info), " "+m.mnt+" ") {
		t.Errorf("%s is not in /proc/self/mountinfo", m.mnt)
	}
}

// TestReadWrite writes at unaligned offsets straddling block boundaries,
// more data than the cache holds, and checks every byte of the volume, the
// stored objects after fsync, and the data after a remount.
func TestReadWrite(t *testing.T) {
	dir := newVolume(t)
	m := mount(t, dir, false)
	f := openFile(t, m, os.O_RDWR)
	model := make([]byte, volSize)

	// A fresh volume reads as zeros.
	checkRange(t, f, model, 0, 3*blockSize+17)
	checkRange(t, f, model, volSize-1000, 1000)

	writes := []struct {
		off int64
		n   int
	}{
		{0, 1},
		{blockSize - 100, 200},                  // straddles blocks 0 and 1
		{3*blockSize - 1, 2*blockSize + 2},      // touches blocks 2..5
		{10*blockSize + 12345, 1},               // one byte in the middle of block 10
		{20*blockSize + 7, 3<<20 + 13},          // 3 MiB: more than the whole cache
		{volSize - 10, 10},                      // the last bytes of the volume
		{volSize - blockSize - 5, 10},           // straddles the last two blocks
		{40 * blockSize, blockSize},             // exactly one block
		{blockSize - 50, 100},                   // overwrite part of an earlier write
		{20*blockSize + 1000, 2 * blockSize},    // overwrite inside the big write
		{int64(volSize / 2), 1<<20 + blockSize}, // more than the dirty limit
	}
	for i, w := range writes {
		writeAt(t, f, model, randomBytes(uint64(i+1), w.n), w.off)
		checkRange(t, f, model, w.off, w.n) // read back at once
	}
	// The cache cannot hold all of it: reading it back must download.
	before := m.st.Downloads.Load()
	checkAll(t, f, model)
	if m.st.Downloads.Load() == before {
		t.Error("reading back more than the cache size needed no downloads: is the cache bounded?")
	}
	// Reads through a second descriptor see the same bytes.
	g := openFile(t, m, os.O_RDONLY)
	checkRange(t, g, model, 3*blockSize-10, 2*blockSize+20)

	syncFile(t, f)
	checkStore(t, dir, model)
	if s := readStats(t, m); s["fsyncs"] < 1 || s["uploads"] < int64(len(nonZeroBlocks(model))) {
		t.Errorf("stats after fsync: fsyncs=%d uploads=%d; want >=1 and >=%d",
			s["fsyncs"], s["uploads"], len(nonZeroBlocks(model)))
	}

	// Data written after the last fsync is stored by unmount.
	writeAt(t, f, model, randomBytes(99, 5000), 50*blockSize-2500)
	f.Close()
	g.Close()
	m.unmount()
	checkStore(t, dir, model)

	m2 := mount(t, dir, false)
	f2 := openFile(t, m2, os.O_RDONLY)
	checkAll(t, f2, model)
}

// TestConcurrentWriters writes disjoint unaligned ranges that share blocks
// from several goroutines.
func TestConcurrentWriters(t *testing.T) {
	dir := newVolume(t)
	m := mount(t, dir, false)
	f := openFile(t, m, os.O_RDWR)
	model := make([]byte, volSize)
	const writers, per = 8, 3000
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := 0; w < writers; w++ {
		data := randomBytes(uint64(100+w), 40*per)
		for k := 0; k < 40; k++ {
			off := int64(k*writers*per + w*per)
			copy(model[off:], data[k*per:(k+1)*per])
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; k < 40; k++ {
				off := int64(k*writers*per + w*per)
				if _, err := f.WriteAt(data[k*per:(k+1)*per], off); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	checkRange(t, f, model, 0, 40*writers*per+1000)
	syncFile(t, f)
	checkStore(t, dir, model)
}

func punch(f *os.File, off, n int64) error {
	return unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, n)
}

func TestPunchHole(t *testing.T) {
	dir := newVolume(t)
	m := mount(t, dir, false)
	f := openFile(t, m, os.O_RDWR)
	model := make([]byte, volSize)
	writeAt(t, f, model, randomBytes(1, 6*blockSize), 10*blockSize) // blocks 10..15
	writeAt(t, f, model, randomBytes(2, blockSize), 30*blockSize)   // block 30
	syncFile(t, f)
	checkStore(t, dir, model)

	// Whole blocks 10 and 11: their objects go.
	if err := punch(f, 10*blockSize, 2*blockSize); err != nil {
		t.Fatalf("punching blocks 10-11: %v", err)
	}
	clear(model[10*blockSize : 12*blockSize])
	checkRange(t, f, model, 9*blockSize, 4*blockSize)
	syncFile(t, f)
	checkStore(t, dir, model)
	if got := storedBlocks(t, dir); got[10] || got[11] || !got[12] {
		t.Fatalf("after punching blocks 10-11, store holds %v", keys(got))
	}

	// A partial block: only that range is zeroed, and the block stays.
	if err := punch(f, 12*blockSize+100, 200); err != nil {
		t.Fatal(err)
	}
	clear(model[12*blockSize+100 : 12*blockSize+300])
	checkRange(t, f, model, 12*blockSize, blockSize)
	if model[12*blockSize+99] == 0 || model[12*blockSize+300] == 0 {
		t.Fatal("test bug: the bytes beside the hole are zero")
	}

	// A range with partial blocks at both ends: the tail of 13, all of 14,
	// the head of 15.
	if err := punch(f, 14*blockSize-1000, blockSize+3000); err != nil {
		t.Fatal(err)
	}
	clear(model[14*blockSize-1000 : 15*blockSize+2000])
	checkRange(t, f, model, 12*blockSize, 5*blockSize)
	syncFile(t, f)
	checkStore(t, dir, model)
	if got := storedBlocks(t, dir); !got[13] || got[14] || !got[15] {
		t.Fatalf("after punching the tail of 13 to the head of 15, store holds %v", keys(got))
	}

	// Punching a block that was never written, and one past the end of
	// the volume, changes nothing.
	if err := punch(f, 50*blockSize, blockSize); err != nil {
		t.Fatal(err)
	}
	if err := punch(f, volSize-blockSize/2, blockSize); err != nil {
		t.Logf("punch straddling the end: %v", err)
	}
	// Zeroing a block by punching its parts piecemeal removes its object.
	if err := punch(f, 30*blockSize, blockSize/2); err != nil {
		t.Fatal(err)
	}
	if err := punch(f, 30*blockSize+blockSize/2, blockSize/2); err != nil {
		t.Fatal(err)
	}
	clear(model[30*blockSize : 31*blockSize])
	syncFile(t, f)
	checkStore(t, dir, model)
	checkRange(t, f, model, 29*blockSize, 3*blockSize)
	if fi, err := f.Stat(); err != nil || fi.Size() != volSize {
		t.Fatalf("punching changed the size: %v %v", fi.Size(), err)
	}

	// After a remount (nothing cached), the holes still read as zeros.
	f.Close()
	m.unmount()
	m2 := mount(t, dir, false)
	checkAll(t, openFile(t, m2, os.O_RDONLY), model)
}

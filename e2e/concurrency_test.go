package e2e

import (
	"bytes"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// raceBinary builds s3blk with the race detector into the test's temporary
// directory (removed at the end; the build cache makes a rebuild take
// seconds). S3BLK_RACE_BIN names a prebuilt one instead, which must be a
// -race build too.
func raceBinary(t *testing.T) string {
	t.Helper()
	bin := os.Getenv("S3BLK_RACE_BIN")
	if bin == "" {
		bin = filepath.Join(t.TempDir(), "s3blk-race")
		out, err := exec.Command("go", "build", "-race", "-o", bin, "github.com/s3blk/s3blk/cmd/s3blk").CombinedOutput()
		if err != nil {
			t.Fatalf("go build -race: %v\n%s", err, out)
		}
	}
	// Prove the detector is really in it: a plain build would pass anyway.
	out, err := exec.Command("go", "version", "-m", bin).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "-race=true") {
		t.Fatalf("%s was not built with -race: %v\n%s", bin, err, out)
	}
	return bin
}

// Layout of the concurrency test's volume, in 64 KiB blocks.
const (
	crBS          = 64 << 10
	crSize        = 32 << 20
	crFrozen      = 0  // blocks 0-7: written before, only read during the run
	crDisjoint    = 8  // blocks 8-39: 4 writers, 8 blocks each
	crStriped     = 40 // blocks 40-43: 4 writers, each owning every 4th 1000-byte stripe
	crOverlap     = 44 // blocks 44-47: 3 writers on overlapping ranges
	crRegion      = 8 * crBS
	crStripe      = 1000
	crStripeSpan  = 4 * crBS
	crOverlapSpan = 4 * crBS
)

// TestConcurrentWritersRace runs many writers, readers, punch-holes and
// fsyncs at once against a daemon built with the race detector and a cache
// of 8 blocks, so that loads, evictions, uploads and read-modify-writes of
// the same blocks overlap. Every byte's final value is known (or, where
// writers overlap, is one writer's last value): after a remount with the
// normal binary, the whole volume is compared. Any data race the detector
// reports in the daemon's log fails the test.
func TestConcurrentWritersRace(t *testing.T) {
	raceBin := raceBinary(t)
	h := newHarness(t)
	url := h.url("racevol")
	h.must("create", url, "--size", strconv.Itoa(crSize), "--block-size", strconv.Itoa(crBS))
	mnt := filepath.Join(t.TempDir(), "mnt")
	logFile := filepath.Join(t.TempDir(), "race-daemon.log")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	h.mountWith(raceBin, url, mnt, "--log-file", logFile, "--cache-size", "512K", "--max-dirty", "256K",
		"--uploaders", "4", "--write-delay", "5ms", "--read-ahead", "2")
	pid := h.daemonPID(mnt)

	seed := testSeed(t)
	t.Logf("seed %d (S3BLK_FSX_SEED)", seed)
	opsPer := 150
	if os.Getenv("S3BLK_SOAK") == "1" {
		opsPer = 2500
	}
	model := make([]byte, crSize)
	file := filepath.Join(mnt, "file")
	var files []*os.File
	open := func() *os.File {
		f, err := os.OpenFile(file, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
		return f
	}
	closeAll := func() {
		for _, f := range files {
			f.Close()
		}
	}
	t.Cleanup(closeAll) // before the unmount (cleanups run last first)
	// The frozen region, stored before the concurrent phase.
	f0 := open()
	frozen := make([]byte, 8*crBS)
	rand.New(rand.NewSource(seed)).Read(frozen)
	copy(model[crFrozen*crBS:], frozen)
	if _, err := f0.WriteAt(frozen, crFrozen*crBS); err != nil {
		t.Fatal(err)
	}
	if err := f0.Sync(); err != nil {
		t.Fatal(err)
	}

	var (
		wg     sync.WaitGroup
		failed atomic.Bool
		counts sync.Map // kind -> *atomic.Int64
	)
	count := func(kind string) {
		v, _ := counts.LoadOrStore(kind, new(atomic.Int64))
		v.(*atomic.Int64).Add(1)
	}
	fail := func(format string, args ...any) {
		failed.Store(true)
		t.Errorf(format, args...)
	}
	// check reads [off, off+n) and compares the bytes for which own(i) is
	// true with model.
	check := func(f *os.File, who string, off, n int64, own func(i int64) bool) {
		buf := make([]byte, n)
		if got, err := f.ReadAt(buf, off); err != nil || int64(got) != n {
			fail("%s: read of %d bytes at %d: %d, %v", who, n, off, got, err)
			return
		}
		for i := int64(0); i < n; i++ {
			if own(off+i) && buf[i] != model[off+i] {
				fail("%s: read at %d: byte %d (block %d) is %#x, want %#x", who, off, off+i, (off+i)/crBS, buf[i], model[off+i])
				return
			}
		}
		count("read")
	}
	write := func(f *os.File, who string, p []byte, off int64) bool {
		if got, err := f.WriteAt(p, off); err != nil || got != len(p) {
			fail("%s: write of %d bytes at %d: %d, %v", who, len(p), off, got, err)
			return false
		}
		count("write")
		return true
	}
	punch := func(f *os.File, who string, off, n int64) bool {
		if err := unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, n); err != nil {
			fail("%s: punch of %d bytes at %d: %v", who, n, off, err)
			return false
		}
		count("punch")
		return true
	}
	fsync := func(f *os.File, who string) {
		if err := f.Sync(); err != nil {
			fail("%s: fsync: %v", who, err)
		}
		count("fsync")
	}
	run := func(name string, fn func(r *rand.Rand, f *os.File)) {
		wg.Add(1)
		r := rand.New(rand.NewSource(seed + int64(len(name))*7919 + int64(name[len(name)-1])))
		f := open()
		go func() {
			defer wg.Done()
			fn(r, f)
		}()
	}

	// Disjoint writers: each owns 8 blocks and checks every read exactly.
	for w := 0; w < 4; w++ {
		base := int64(crDisjoint*crBS + w*crRegion)
		own := func(i int64) bool { return i >= base && i < base+crRegion }
		name := fmt.Sprintf("disjoint%d", w)
		run(name, func(r *rand.Rand, f *os.File) {
			for op := 0; op < opsPer && !failed.Load(); op++ {
				off := base + r.Int63n(crRegion)
				n := min(1+r.Int63n(3*crBS), base+crRegion-off)
				switch k := r.Intn(20); {
				case k < 8:
					p := make([]byte, n)
					if k > 0 {
						r.Read(p)
					}
					if write(f, name, p, off) {
						copy(model[off:], p)
					}
				case k < 10:
					if punch(f, name, off, n) {
						clear(model[off : off+n])
					}
				case k < 11:
					fsync(f, name)
				default:
				}
				off = base + r.Int63n(crRegion)
				check(f, name, off, min(1+r.Int63n(2*crBS), base+crRegion-off), own)
			}
		})
	}
	// Striped writers: four writers share blocks 40-43, each owning every
	// 4th stripe of 1000 bytes, so their writes hit the same blocks at once.
	stripeBase := int64(crStriped * crBS)
	for w := 0; w < 4; w++ {
		own := func(i int64) bool {
			return i >= stripeBase && i < stripeBase+crStripeSpan && ((i-stripeBase)/crStripe)%4 == int64(w)
		}
		name := fmt.Sprintf("striped%d", w)
		run(name, func(r *rand.Rand, f *os.File) {
			stripes := (crStripeSpan + crStripe - 1) / crStripe
			for op := 0; op < opsPer && !failed.Load(); op++ {
				s := int64(w + 4*r.Intn((stripes-w+3)/4))
				start := stripeBase + s*crStripe
				end := min(start+crStripe, stripeBase+crStripeSpan)
				off := start + r.Int63n(end-start)
				n := 1 + r.Int63n(end-off)
				if r.Intn(5) == 0 {
					if punch(f, name, off, n) {
						clear(model[off : off+n])
					}
				} else {
					p := make([]byte, n)
					r.Read(p)
					if write(f, name, p, off) {
						copy(model[off:], p)
					}
				}
				check(f, name, start, end-start, own)
				if r.Intn(4) == 0 { // a wide read across everyone's stripes
					check(f, name, stripeBase, crStripeSpan, own)
				}
			}
		})
	}
	// Overlapping writers: any range of blocks 44-47, each writer with its
	// own byte values. Each records the last value it wrote to each byte.
	overlapBase := int64(crOverlap * crBS)
	var last [3][]int16 // -1: never written by this writer
	for w := range last {
		last[w] = make([]int16, crOverlapSpan)
		for i := range last[w] {
			last[w][i] = -1
		}
		name := fmt.Sprintf("overlap%d", w)
		run(name, func(r *rand.Rand, f *os.File) {
			for op := 0; op < opsPer && !failed.Load(); op++ {
				off := r.Int63n(crOverlapSpan)
				n := min(1+r.Int63n(2*crBS), crOverlapSpan-off)
				if r.Intn(6) == 0 {
					if punch(f, name, overlapBase+off, n) {
						for i := off; i < off+n; i++ {
							last[w][i] = 0
						}
					}
					continue
				}
				p := make([]byte, n)
				for i := range p {
					p[i] = byte(1 + w*80 + r.Intn(80))
				}
				if write(f, name, p, overlapBase+off) {
					for i := range p {
						last[w][off+int64(i)] = int16(p[i])
					}
				}
			}
		})
	}
	// A reader of the frozen region and of blocks nobody writes, and an
	// fsync loop.
	run("reader", func(r *rand.Rand, f *os.File) {
		stable := func(i int64) bool { return i < crDisjoint*crBS || i >= (crOverlap+4)*crBS }
		for op := 0; op < 2*opsPer && !failed.Load(); op++ {
			off := r.Int63n(crSize)
			if r.Intn(2) == 0 {
				off = r.Int63n(12 * crBS)
			}
			check(f, "reader", off, min(1+r.Int63n(4*crBS), crSize-off), stable)
		}
	})
	var writersDone atomic.Bool
	var syncer sync.WaitGroup
	syncer.Add(1)
	go func() {
		defer syncer.Done()
		f := f0
		for !writersDone.Load() && !failed.Load() {
			fsync(f, "syncer")
			time.Sleep(20 * time.Millisecond)
		}
	}()
	start := time.Now()
	wg.Wait()
	writersDone.Store(true)
	syncer.Wait()
	took := time.Since(start)
	if failed.Load() {
		t.Fatalf("failed during the concurrent phase; daemon log:\n%s", tail(logFile))
	}
	fsync(f0, "final")

	// The cache of 8 blocks must have evicted and fetched blocks again
	// while the writers ran.
	daemonStats := map[string]int64{}
	for _, name := range []string{"uploads", "deletes", "downloads", "cache_misses", "corrupt_blocks", "errors"} {
		daemonStats[name] = statValue(t, mnt, name)
	}
	t.Logf("daemon counters: %v", daemonStats)
	if daemonStats["downloads"] == 0 || daemonStats["uploads"] == 0 || daemonStats["deletes"] == 0 {
		t.Errorf("the workload did not go through the store: %v", daemonStats)
	}
	if daemonStats["corrupt_blocks"] != 0 {
		t.Errorf("%d corrupt blocks", daemonStats["corrupt_blocks"])
	}

	// Stop the race daemon and read its verdict.
	closeAll()
	h.must("umount", mnt)
	waitGone(t, pid, time.Minute)
	logData, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"WARNING: DATA RACE", "data race", "panic:", "fatal error:"} {
		if bytes.Contains(logData, []byte(bad)) {
			t.Fatalf("the race-detector daemon reported %q:\n%s", bad, logData)
		}
	}
	if !bytes.Contains(logData, []byte("all blocks stored; exiting")) {
		t.Fatalf("the race-detector daemon did not exit cleanly:\n%s", logData)
	}

	// The overlap region: each byte is some writer's last value (zeros
	// where nobody wrote). Adopt what was stored as the model.
	h.mountAt(url, mnt, "--read-only", "--log-file", filepath.Join(t.TempDir(), "ro.log"))
	got, err := os.ReadFile(file)
	if err != nil || len(got) != crSize {
		t.Fatalf("reading the volume back: %d bytes, %v", len(got), err)
	}
	for i := int64(0); i < crOverlapSpan; i++ {
		v := got[overlapBase+i]
		ok := last[0][i] < 0 && last[1][i] < 0 && last[2][i] < 0 && v == 0
		for w := range last {
			ok = ok || last[w][i] == int16(v)
		}
		if !ok {
			t.Fatalf("overlap region: byte %d (block %d) is %#x; the writers' last values there were %d %d %d",
				overlapBase+i, (overlapBase+i)/crBS, v, last[0][i], last[1][i], last[2][i])
		}
	}
	copy(model[overlapBase:overlapBase+crOverlapSpan], got[overlapBase:])
	if i := firstDiff(got, model); i >= 0 {
		t.Fatalf("after remount: byte %d (block %d+%d) is %#x, want %#x", i, i/crBS, i%crBS, got[i], model[i])
	}
	nonzero := 0
	for b := 0; b < crSize/crBS; b++ {
		if !allZero(model[b*crBS : (b+1)*crBS]) {
			nonzero++
		}
	}
	if n := h.blockObjects("racevol"); n != nonzero {
		t.Errorf("%d block objects in the bucket; the volume has %d non-zero blocks", n, nonzero)
	}
	var summary []string
	total := int64(0)
	counts.Range(func(k, v any) bool {
		n := v.(*atomic.Int64).Load()
		summary = append(summary, fmt.Sprintf("%s=%d", k, n))
		total += n
		return true
	})
	t.Logf("concurrent operations checked: %d (%s) by 13 goroutines in %s; %d non-zero blocks; no race reported",
		total, strings.Join(summary, " "), took.Round(time.Millisecond), nonzero)
}

// tail returns the end of a log file.
func tail(path string) string {
	data, _ := os.ReadFile(path)
	if len(data) > 6000 {
		data = data[len(data)-6000:]
	}
	return string(data)
}

// testSeed is S3BLK_FSX_SEED, or the clock.
func testSeed(t *testing.T) int64 {
	if s := os.Getenv("S3BLK_FSX_SEED"); s != "" {
		seed, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			t.Fatalf("bad S3BLK_FSX_SEED %q: %v", s, err)
		}
		return seed
	}
	return time.Now().UnixNano()
}

func allZero(p []byte) bool { return bytes.Equal(p, make([]byte, len(p))) }

// firstDiff returns the first index where a and b differ, or -1.
func firstDiff(a, b []byte) int {
	if bytes.Equal(a, b) {
		return -1
	}
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

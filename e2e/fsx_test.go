package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// fsxConfig is one volume geometry and mount configuration for the random
// I/O test. The caches are a few blocks, so nearly every operation evicts,
// reads back from S3, or does a read-modify-write of a partial block.
type fsxConfig struct {
	name      string
	size, bs  int64
	create    []string // extra `s3blk create` flags
	mount     []string // extra `s3blk mount` flags
	lazy      []string // added for some mounts: partly written blocks stay dirty until fsync
	pageCache bool     // --direct-io=false: reads may come from the kernel's page cache
	opsDiv    int      // run 1/opsDiv of the planned operations (big blocks are slow)
}

var fsxConfigs = []fsxConfig{
	{name: "64K-encrypted", size: 64 << 20, bs: 64 << 10,
		mount: []string{"--cache-size", "512K", "--max-dirty", "256K", "--uploaders", "4", "--write-delay", "20ms"},
		lazy:  []string{"--cache-size", "1M", "--max-dirty", "1M", "--write-delay", "1h"}},
	{name: "4K-plain-pagecache", size: 16 << 20, bs: 4 << 10,
		create: []string{"--no-encryption", "--no-compression"},
		mount: []string{"--cache-size", "24K", "--max-dirty", "8K", "--uploaders", "2", "--write-delay", "1ms",
			"--read-ahead", "-1", "--max-write", "32K", "--direct-io=false"},
		lazy:      []string{"--cache-size", "64K", "--max-dirty", "64K", "--write-delay", "1h"},
		pageCache: true},
	// Big blocks filled by several FUSE requests each, one uploader.
	{name: "256K-zstd-plain", size: 32 << 20, bs: 256 << 10,
		create: []string{"--no-encryption"},
		mount: []string{"--cache-size", "1M", "--max-dirty", "256K", "--uploaders", "1", "--write-delay", "2ms",
			"--max-write", "64K"},
		lazy:   []string{"--cache-size", "4M", "--max-dirty", "4M", "--write-delay", "1h"},
		opsDiv: 2},
}

// fsxPlan is how much a run does.
type fsxPlan struct {
	ops      int // random operations (reads, writes, punches, fsyncs)
	remounts int // clean umount + mount, with a whole-file compare
	kills    int // kill -9 + --force remount; alternately right after fsync and with unsynced writes
}

func fsxPlanFor(t *testing.T) fsxPlan {
	if os.Getenv("S3BLK_SOAK") == "1" {
		return fsxPlan{ops: 20000, remounts: 10, kills: 6}
	}
	return fsxPlan{ops: 2500, remounts: 3, kills: 2}
}

// TestFsxRandomIO runs random reads, writes, punch-holes and fsyncs on the
// mounted file, fsx-style, and checks every read against an in-memory model
// of the volume. Clean remounts and kill -9 of the daemon are interleaved:
// after each, the whole file is compared with the model (after a kill, bytes
// written since the last fsync may hold any value written to them since, and
// nothing else). After every clean unmount the bucket must hold exactly one
// object per non-zero block of the model. Reproduce a failure with the
// logged seed in S3BLK_FSX_SEED; S3BLK_SOAK=1 runs a much longer variant.
func TestFsxRandomIO(t *testing.T) {
	plan := fsxPlanFor(t)
	seed := testSeed(t)
	t.Logf("S3BLK_FSX_SEED=%d repeats this run (subtest i uses seed+i)", seed)
	for i, cfg := range fsxConfigs {
		t.Run(cfg.name, func(t *testing.T) {
			t.Parallel()
			x := newFsx(t, cfg, seed+int64(i))
			p := plan
			if cfg.opsDiv > 1 {
				p.ops /= cfg.opsDiv
			}
			x.run(p)
		})
	}
}

type fsxOp struct {
	off  int64
	data []byte // nil for a punch-hole (zeros)
	n    int64
}

type fsx struct {
	t        *testing.T
	h        *harness
	cfg      fsxConfig
	seed     int64
	r        *rand.Rand
	vol, url string
	mnt, log string
	f        *os.File
	model    []byte
	synced   []byte  // the model at the last fsync or remount
	since    []fsxOp // writes and punches after it
	hot      int64   // first byte of the window most operations go to
	counts   map[string]int
	stats    map[string]int64 // daemon counters summed over mounts
	recent   []string
	lazyNext func(op int) bool // whether the mount after op is lazy
	buf      []byte            // for whole-file reads
}

func newFsx(t *testing.T, cfg fsxConfig, seed int64) *fsx {
	h := newHarness(t)
	x := &fsx{t: t, h: h, cfg: cfg, seed: seed, r: rand.New(rand.NewSource(seed)),
		vol: "fsx", model: make([]byte, cfg.size), counts: map[string]int{}, stats: map[string]int64{}}
	t.Logf("seed %d", seed)
	x.url = h.url(x.vol)
	h.must(append([]string{"create", x.url, "--size", strconv.FormatInt(cfg.size, 10), "--block-size",
		strconv.FormatInt(cfg.bs, 10)}, cfg.create...)...)
	x.mnt = filepath.Join(t.TempDir(), "mnt")
	x.log = filepath.Join(t.TempDir(), "daemon.log")
	if err := os.Mkdir(x.mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	x.synced = make([]byte, cfg.size)
	return x
}

// fatalf fails with the seed, the last operations and the daemon log's tail.
func (x *fsx) fatalf(format string, args ...any) {
	x.t.Helper()
	x.t.Fatalf("%s\nseed %d, last operations:\n  %s\ndaemon log tail:\n%s",
		fmt.Sprintf(format, args...), x.seed, strings.Join(x.recent, "\n  "), tail(x.log))
}

func (x *fsx) note(op int, format string, args ...any) {
	x.recent = append(x.recent, fmt.Sprintf("#%d ", op)+fmt.Sprintf(format, args...))
	if len(x.recent) > 16 {
		x.recent = x.recent[1:]
	}
}

// mount mounts the volume and opens the file. A lazy mount holds partly
// written blocks until fsync (or a full cache), so that a kill -9 right
// after fsync would lose data if fsync were not a barrier.
func (x *fsx) mount(force, lazy bool) {
	x.t.Helper()
	args := append([]string{"--log-file", x.log}, x.cfg.mount...)
	if lazy {
		args = append(args, x.cfg.lazy...) // later flags win
		x.counts["mount-lazy"]++
	}
	if force {
		args = append(args, "--force")
	}
	x.h.mountAt(x.url, x.mnt, args...)
	f, err := os.OpenFile(filepath.Join(x.mnt, "file"), os.O_RDWR, 0)
	if err != nil {
		x.fatalf("opening the file: %v", err)
	}
	x.f = f
	x.t.Cleanup(func() { f.Close() }) // before the harness unmounts (cleanups run last first)
	// Move the hot window: it is a few times the cache, so the cache evicts.
	span := min(32*x.cfg.bs, x.cfg.size)
	x.hot = x.r.Int63n((x.cfg.size-span)/x.cfg.bs+1) * x.cfg.bs
}

// collectStats adds the mount's counters to the totals.
func (x *fsx) collectStats() {
	for _, name := range []string{"uploads", "deletes", "downloads", "cache_misses", "zero_writes_skipped",
		"fsyncs", "errors", "corrupt_blocks", "retries"} {
		x.stats[name] += statValue(x.t, x.mnt, name)
	}
}

func (x *fsx) run(plan fsxPlan) {
	start := time.Now()
	events := map[int]string{}
	for i := 1; i <= plan.remounts; i++ {
		events[i*plan.ops/(plan.remounts+1)] = "remount"
	}
	for i := 1; i <= plan.kills; i++ {
		at := i*plan.ops/(plan.kills+1) + plan.ops/(4*(plan.kills+1))
		events[at] = map[bool]string{true: "kill-after-fsync", false: "kill-unsynced"}[i%2 == 1]
	}
	// Mount lazily before each kill, and at random otherwise.
	x.lazyNext = func(op int) bool {
		for next := op + 1; next < plan.ops; next++ {
			if e := events[next]; e != "" {
				return strings.HasPrefix(e, "kill") || x.r.Intn(3) == 0
			}
		}
		return x.r.Intn(3) == 0
	}
	x.mount(false, x.lazyNext(0))
	for op := 0; op < plan.ops; op++ {
		switch events[op] {
		case "remount":
			x.remount(op)
		case "kill-after-fsync":
			for range 8 {
				x.partialWrite(op)
			}
			x.fsync(op)
			x.kill(op)
		case "kill-unsynced":
			for range 8 {
				x.partialWrite(op)
			}
			x.kill(op)
		}
		switch k := x.r.Intn(100); {
		case k < 40:
			x.write(op)
		case k < 80:
			x.read(op)
		case k < 92:
			x.punch(op)
		default:
			x.fsync(op)
		}
	}
	x.remount(plan.ops)
	x.f.Close()
	x.f = nil
	x.collectStats()
	x.h.must("umount", x.mnt)
	x.checkObjects("final umount")
	if out := x.h.must("verify", x.url, "--quiet"); strings.Contains(out, "BAD") {
		x.fatalf("s3blk verify reports bad blocks:\n%s", out)
	}
	ro := x.h.mount(x.url, "--read-only", "--log-file", x.log)
	x.compareFile(ro, "read-only mount at the end")

	var summary []string
	total := 0
	for _, k := range slices.Sorted(maps.Keys(x.counts)) {
		summary = append(summary, fmt.Sprintf("%s=%d", k, x.counts[k]))
		if strings.HasPrefix(k, "write") || strings.HasPrefix(k, "read") || strings.HasPrefix(k, "punch") || k == "fsync" {
			total += x.counts[k]
		}
	}
	t := x.t
	t.Logf("random operations checked: %d (%s) in %s", total, strings.Join(summary, " "), time.Since(start).Round(time.Second))
	t.Logf("daemon counters over all mounts: %v", x.stats)
	if x.stats["corrupt_blocks"] != 0 {
		t.Errorf("%d corrupt blocks", x.stats["corrupt_blocks"])
	}
	// The workload must have gone through the store, not just the cache.
	for _, name := range []string{"uploads", "deletes", "downloads"} {
		if x.stats[name] == 0 {
			t.Errorf("no %s: the workload did not exercise the store", name)
		}
	}
}

// pickRange picks a byte range for an operation: sizes from 1 byte to
// several blocks, offsets biased to straddle block boundaries, to the hot
// window, and to the end of the volume. The range may run past the end.
func (x *fsx) pickRange() (off, n int64) {
	bs, size, r := x.cfg.bs, x.cfg.size, x.r
	switch k := r.Intn(10); {
	case k < 3:
		n = 1 + r.Int63n(64)
	case k < 6:
		n = 1 + r.Int63n(bs)
	case k < 8:
		n = 1 + r.Int63n(3*bs)
	case k < 9:
		n = bs * (1 + r.Int63n(4)) // whole blocks when aligned
	default:
		n = 1 + r.Int63n(8*bs)
	}
	span := min(32*bs, size)
	switch k := r.Intn(20); {
	case k < 8: // across a block boundary in the hot window
		b := x.hot + (1+r.Int63n(span/bs-1))*bs
		off = b - 1 - r.Int63n(min(n, bs))
	case k < 11: // aligned
		off = x.hot + r.Int63n(span/bs)*bs
	case k < 16:
		off = x.hot + r.Int63n(span)
	case k < 18: // at the end of the volume
		off = size - 1 - r.Int63n(n+bs)
	default:
		off = r.Int63n(size)
	}
	return max(off, 0), n
}

// randFill is random bytes, all zeros, sparse, or one repeated byte.
func (x *fsx) randFill(n int64) ([]byte, string) {
	p := make([]byte, n)
	switch x.r.Intn(6) {
	case 0:
		return p, "zeros"
	case 1:
		for range 1 + x.r.Intn(3) {
			p[x.r.Int63n(n)] = byte(1 + x.r.Intn(255))
		}
		return p, "sparse"
	case 2:
		b := byte(1 + x.r.Intn(255))
		for i := range p {
			p[i] = b
		}
		return p, "fill"
	}
	x.r.Read(p)
	return p, "random"
}

// partialWrite writes inside one block of the hot window without reaching
// its end, so that a lazy mount keeps the block dirty.
func (x *fsx) partialWrite(op int) {
	bs := x.cfg.bs
	off := x.hot + x.r.Int63n(min(32*bs, x.cfg.size)/bs)*bs + x.r.Int63n(bs/2)
	x.writeAt(op, off, 1+x.r.Int63n(bs/2-1))
}

func (x *fsx) write(op int) {
	off, n := x.pickRange()
	x.writeAt(op, off, n)
}

func (x *fsx) writeAt(op int, off, n int64) {
	// Writes past the end fail (ENOSPC). Only with direct I/O is the
	// kernel's part of that well defined, so only then is it tried.
	pastEnd := off+n > x.cfg.size
	if pastEnd && (x.cfg.pageCache || x.r.Intn(4) != 0) {
		n = x.cfg.size - off
		pastEnd = false
	}
	p, kind := x.randFill(n)
	x.note(op, "write %d bytes (%s) at %d (block %d+%d)", n, kind, off, off/x.cfg.bs, off%x.cfg.bs)
	var got int
	var err error
	if pastEnd {
		// Not os.File.WriteAt: when the kernel stored a first part and
		// the retry of the rest fails, it reports 0 bytes written.
		got, err = pwriteAll(x.f, p, off)
	} else {
		got, err = x.f.WriteAt(p, off)
	}
	if pastEnd {
		// The part inside the volume may have been written in separate
		// requests before the one that failed; nothing past the end.
		if err == nil || got > int(x.cfg.size-off) {
			x.fatalf("write of %d bytes at %d, past the end %d: wrote %d, err %v; want an error", n, off, x.cfg.size, got, err)
		}
		x.counts["write-past-end"]++
		x.note(op, "  (past the end: %d bytes written, %v)", got, err)
		if got == 0 {
			return
		}
		p = p[:got]
	} else if err != nil || got != len(p) {
		x.fatalf("write of %d bytes at %d: wrote %d, err %v", n, off, got, err)
	} else {
		x.counts["write-"+kind]++
	}
	copy(x.model[off:], p)
	x.since = append(x.since, fsxOp{off: off, data: p, n: int64(len(p))})
}

// pwriteAll writes p at off with pwrite(2) until all is written or a call
// fails, and returns how many bytes were written.
func pwriteAll(f *os.File, p []byte, off int64) (int, error) {
	n := 0
	for n < len(p) {
		m, err := syscall.Pwrite(int(f.Fd()), p[n:], off+int64(n))
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return n, err
		}
		if m == 0 {
			return n, io.ErrShortWrite
		}
		n += m
	}
	return n, nil
}

func (x *fsx) read(op int) {
	off, n := x.pickRange()
	if x.r.Intn(50) == 0 { // at or after the end: nothing
		off = x.cfg.size + x.r.Int63n(2*x.cfg.bs)
		x.note(op, "read %d bytes at %d, after the end", n, off)
		if got, err := x.f.ReadAt(make([]byte, n), off); got != 0 || err != io.EOF {
			x.fatalf("read of %d bytes at %d, after the end %d: %d bytes, err %v; want 0, EOF", n, off, x.cfg.size, got, err)
		}
		x.counts["read-after-end"]++
		return
	}
	x.note(op, "read %d bytes at %d (block %d+%d)", n, off, off/x.cfg.bs, off%x.cfg.bs)
	buf := make([]byte, n)
	got, err := x.f.ReadAt(buf, off)
	want := min(n, x.cfg.size-off)
	if int64(got) != want || (err != nil && !(errors.Is(err, io.EOF) && want < n)) {
		x.fatalf("read of %d bytes at %d: got %d bytes, err %v; want %d", n, off, got, err, want)
	}
	if i := firstDiff(buf[:got], x.model[off:off+want]); i >= 0 {
		x.fatalf("read of %d bytes at %d: byte %d (block %d+%d) is %#x, model has %#x", n, off, off+int64(i),
			(off+int64(i))/x.cfg.bs, (off+int64(i))%x.cfg.bs, buf[i], x.model[off+int64(i)])
	}
	if off+n > x.cfg.size {
		x.counts["read-past-end"]++
	} else {
		x.counts["read"]++
	}
}

func (x *fsx) punch(op int) {
	off, n := x.pickRange()
	if x.r.Intn(50) == 0 { // after the end: nothing changes
		off = x.cfg.size + x.r.Int63n(2*x.cfg.bs)
	}
	mode, kind := uint32(unix.FALLOC_FL_PUNCH_HOLE), "punch"
	if x.r.Intn(4) == 0 { // the same to s3blk
		mode, kind = unix.FALLOC_FL_ZERO_RANGE, "punch-zero-range"
	}
	x.note(op, "%s %d bytes at %d (block %d+%d)", kind, n, off, off/x.cfg.bs, off%x.cfg.bs)
	if err := unix.Fallocate(int(x.f.Fd()), mode|unix.FALLOC_FL_KEEP_SIZE, off, n); err != nil {
		x.fatalf("%s of %d bytes at %d: %v", kind, n, off, err)
	}
	end := min(off+n, x.cfg.size)
	if off >= x.cfg.size {
		x.counts[kind+"-after-end"]++
		return
	}
	clear(x.model[off:end])
	x.since = append(x.since, fsxOp{off: off, n: end - off})
	x.counts[kind]++
}

func (x *fsx) fsync(op int) {
	x.note(op, "fsync")
	if err := x.f.Sync(); err != nil {
		x.fatalf("fsync: %v", err)
	}
	copy(x.synced, x.model)
	x.since = x.since[:0]
	x.counts["fsync"]++
}

// remount unmounts cleanly, checks the bucket, mounts again and compares
// the whole file.
func (x *fsx) remount(op int) {
	x.note(op, "umount + mount")
	x.collectStats()
	x.f.Close()
	x.f = nil
	x.h.must("umount", x.mnt)
	x.checkObjects(fmt.Sprintf("umount at op %d", op))
	x.mount(false, x.lazyNext(op))
	x.compareFile(x.mnt, fmt.Sprintf("remount at op %d", op))
	copy(x.synced, x.model)
	x.since = x.since[:0]
	x.counts["remount"]++
}

// kill kills the daemon with SIGKILL and mounts again with --force. Bytes
// untouched since the last fsync must hold their synced value; each other
// byte may hold its synced value or any value written to it since.
func (x *fsx) kill(op int) {
	unsynced := len(x.since)
	x.note(op, "kill -9 (%d writes since fsync) + mount --force", unsynced)
	x.collectStats()
	pid := x.h.daemonPID(x.mnt)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		x.fatalf("kill %d: %v", pid, err)
	}
	waitGone(x.t, pid, 30*time.Second)
	x.f.Close()
	x.f = nil
	x.mount(true, x.lazyNext(op))
	what := fmt.Sprintf("kill -9 at op %d with %d unsynced writes", op, unsynced)
	if unsynced == 0 {
		x.compareFile(x.mnt, what)
		x.counts["kill-after-fsync"]++
	} else {
		got := x.readFile(x.mnt)
		x.checkCrashState(got, what)
		copy(x.model, got)
		x.counts["kill-unsynced"]++
	}
	copy(x.synced, x.model)
	x.since = x.since[:0]
}

// checkCrashState checks the file after a crash: each byte holds its value
// at the last fsync, or a value written to it (or punched) since.
func (x *fsx) checkCrashState(got []byte, what string) {
	changed := 0
	for c := int64(0); c < x.cfg.size; c += 4096 {
		e := min(c+4096, x.cfg.size)
		if bytes.Equal(got[c:e], x.synced[c:e]) {
			continue
		}
		for at := c; at < e; at++ {
			if got[at] == x.synced[at] {
				continue
			}
			ok := false
			for _, o := range x.since {
				if at >= o.off && at < o.off+o.n {
					ok = ok || (o.data == nil && got[at] == 0) || (o.data != nil && o.data[at-o.off] == got[at])
				}
			}
			if !ok {
				x.fatalf("after %s: byte %d (block %d) is %#x: neither its value at the fsync, %#x, nor one written since",
					what, at, at/x.cfg.bs, got[at], x.synced[at])
			}
			changed++
		}
	}
	x.t.Logf("%s: %d bytes differ from the fsync'd state, each holding a value written since", what, changed)
}

// readFile reads the whole volume through the mount at mnt.
func (x *fsx) readFile(mnt string) []byte {
	x.t.Helper()
	f, err := os.Open(filepath.Join(mnt, "file"))
	if err != nil {
		x.fatalf("opening the file: %v", err)
	}
	defer f.Close()
	if x.buf == nil {
		x.buf = make([]byte, x.cfg.size+1)
	}
	got := x.buf
	n, err := io.ReadFull(f, got)
	if err != io.ErrUnexpectedEOF || int64(n) != x.cfg.size {
		x.fatalf("reading the whole file: %d bytes, err %v; want %d bytes", n, err, x.cfg.size)
	}
	return got[:n]
}

func (x *fsx) compareFile(mnt, what string) {
	x.t.Helper()
	got := x.readFile(mnt)
	if i := firstDiff(got, x.model); i >= 0 {
		x.fatalf("after %s: byte %d (block %d+%d) is %#x, model has %#x", what, i, int64(i)/x.cfg.bs,
			int64(i)%x.cfg.bs, got[i], x.model[i])
	}
	x.counts["whole-file-compare"]++
}

// checkObjects compares the block objects in the bucket with the model's
// non-zero blocks, index by index. Call it while unmounted.
func (x *fsx) checkObjects(what string) {
	x.t.Helper()
	keys := x.h.objects(x.vol + "/blocks/")
	stored := map[int64]bool{}
	for _, k := range keys {
		i, err := strconv.ParseInt(k[strings.LastIndexByte(k, '/')+1:], 16, 64)
		if err != nil {
			x.fatalf("odd block key %q", k)
		}
		stored[i] = true
	}
	nonzero := 0
	for b := int64(0); b < x.cfg.size/x.cfg.bs; b++ {
		zero := allZero(x.model[b*x.cfg.bs : (b+1)*x.cfg.bs])
		if !zero {
			nonzero++
		}
		if stored[b] == zero {
			x.fatalf("after %s: block %d is all zeros=%v in the model but stored=%v", what, b, zero, stored[b])
		}
	}
	if len(keys) != nonzero || x.h.blockObjects(x.vol) != nonzero {
		x.fatalf("after %s: %d block objects, model has %d non-zero blocks", what, len(keys), nonzero)
	}
	x.counts["object-count-check"]++
}

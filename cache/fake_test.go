package cache_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/s3blk/s3blk/cache"
	"github.com/s3blk/s3blk/stats"
)

const bs = 4096

var errInjected = errors.New("injected backend failure")

// fakeBackend is an in-memory cache.Backend. It counts requests per block,
// fails on demand, can hold uploads at a gate, and records violations of the
// cache's invariants (two uploads of one block in flight, an all-zero block
// stored), which fail the test at cleanup.
type fakeBackend struct {
	bs int

	mu         sync.Mutex
	blocks     map[uint64][]byte
	reads      map[uint64]int
	writes     map[uint64]int // write attempts that reached the store
	deletes    map[uint64]int // delete attempts that reached the store
	inflight   map[uint64]int // uploads (writes or deletes) in progress
	violations []string

	gate          chan struct{}    // non-nil: uploads wait until it is closed
	failUploads   int              // fail this many upload attempts
	failAlways    bool             // fail every upload attempt
	storeThenFail int              // store the data but report failure, this many times
	readErr       map[uint64]error // ReadBlock of these blocks fails
	listGate      chan struct{}    // non-nil: ListBlocks waits until it is closed
	listDelay     time.Duration
	delay         time.Duration // latency added to every upload
	readDelay     time.Duration // latency added to every block read
}

func newFake(t *testing.T) *fakeBackend {
	f := &fakeBackend{
		bs:       bs,
		blocks:   make(map[uint64][]byte),
		reads:    make(map[uint64]int),
		writes:   make(map[uint64]int),
		deletes:  make(map[uint64]int),
		inflight: make(map[uint64]int),
		readErr:  make(map[uint64]error),
	}
	t.Cleanup(func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		for _, v := range f.violations {
			t.Errorf("backend invariant violated: %s", v)
		}
	})
	return f
}

func (f *fakeBackend) BlockSize() int { return f.bs }

func (f *fakeBackend) ReadBlock(ctx context.Context, index uint64, dst []byte) (bool, error) {
	f.mu.Lock()
	f.reads[index]++
	err := f.readErr[index]
	data, ok := f.blocks[index] // stored slices are never modified
	if len(dst) != f.bs {
		f.violations = append(f.violations, fmt.Sprintf("ReadBlock(%d) with %d-byte buffer", index, len(dst)))
	}
	delay := f.readDelay
	f.mu.Unlock()
	time.Sleep(delay)
	if err != nil {
		return false, err
	}
	if !ok {
		return false, nil // like volume.ReadBlock: dst is left untouched
	}
	copy(dst, data)
	return true, nil
}

func (f *fakeBackend) WriteBlock(ctx context.Context, index uint64, data []byte, scratch []byte) ([]byte, error) {
	if len(data) != f.bs || isZeros(data) {
		f.mu.Lock()
		f.violations = append(f.violations, fmt.Sprintf("WriteBlock(%d) of %d bytes, all zero=%v", index, len(data), isZeros(data)))
		f.mu.Unlock()
	}
	return scratch, f.upload(ctx, index, bytes.Clone(data))
}

func (f *fakeBackend) DeleteBlock(ctx context.Context, index uint64) error {
	return f.upload(ctx, index, nil)
}

// upload stores data as block index (nil: deletes it).
func (f *fakeBackend) upload(ctx context.Context, index uint64, data []byte) error {
	f.mu.Lock()
	f.inflight[index]++
	if n := f.inflight[index]; n > 1 {
		f.violations = append(f.violations, fmt.Sprintf("%d uploads of block %d in flight at once", n, index))
	}
	gate, delay := f.gate, f.delay
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.inflight[index]--
		f.mu.Unlock()
	}()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if delay > 0 {
		time.Sleep(delay)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if data == nil {
		f.deletes[index]++
	} else {
		f.writes[index]++
	}
	if f.failAlways || f.failUploads > 0 {
		f.failUploads = max(f.failUploads-1, 0)
		return errInjected
	}
	if data == nil {
		delete(f.blocks, index)
	} else {
		f.blocks[index] = data
	}
	if f.storeThenFail > 0 {
		f.storeThenFail--
		return errInjected
	}
	return nil
}

func (f *fakeBackend) ListBlocks(ctx context.Context, fn func(index uint64)) error {
	f.mu.Lock()
	gate, delay := f.listGate, f.listDelay
	// The listing is a snapshot taken before the wait, so it can be stale by
	// the time the cache merges it.
	var idx []uint64
	for i := range f.blocks {
		idx = append(idx, i)
	}
	f.mu.Unlock()
	slices.Sort(idx)
	if gate != nil {
		<-gate
	}
	time.Sleep(delay)
	for _, i := range idx {
		fn(i)
	}
	return nil
}

// holdUploads makes uploads wait until the returned function is called.
func (f *fakeBackend) holdUploads() (release func()) {
	g := make(chan struct{})
	f.mu.Lock()
	f.gate = g
	f.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			f.mu.Lock()
			f.gate = nil
			f.mu.Unlock()
			close(g)
		})
	}
}

func (f *fakeBackend) set(fn func(f *fakeBackend)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

func (f *fakeBackend) put(index uint64, data []byte) {
	f.set(func(f *fakeBackend) { f.blocks[index] = bytes.Clone(data) })
}

func (f *fakeBackend) get(index uint64) ([]byte, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b, ok := f.blocks[index]
	return b, ok
}

// count returns a per-block counter (f.reads, f.writes, ...) under the lock.
func (f *fakeBackend) count(m func(f *fakeBackend) map[uint64]int, index uint64) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return m(f)[index]
}

func reads(f *fakeBackend) map[uint64]int    { return f.reads }
func writes(f *fakeBackend) map[uint64]int   { return f.writes }
func deletes(f *fakeBackend) map[uint64]int  { return f.deletes }
func inflight(f *fakeBackend) map[uint64]int { return f.inflight }

func isZeros(b []byte) bool {
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}

// pattern returns a recognisable, non-zero block for index.
func pattern(index uint64, seed byte) []byte {
	b := make([]byte, bs)
	for i := range b {
		b[i] = byte(i*7) ^ byte(index*31) ^ seed | 1
	}
	return b
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// startCache starts a cache over be; cleanup releases any upload gate and
// closes it (a second Close is a no-op).
func startCache(t *testing.T, be cache.Backend, nblocks uint64, cfg cache.Config, st *stats.Counters) *cache.Cache {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = quiet
	}
	c := cache.New(be, nblocks, cfg, st)
	c.Start()
	t.Cleanup(func() {
		if f, ok := be.(*fakeBackend); ok {
			f.set(func(f *fakeBackend) {
				if f.gate != nil {
					close(f.gate)
					f.gate = nil
				}
				if f.listGate != nil {
					close(f.listGate)
					f.listGate = nil
				}
				f.failAlways, f.failUploads = false, 0
			})
		}
		c.Close()
	})
	return c
}

// waitFor polls cond until it holds, failing the test after 10 seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func waitListing(t *testing.T, st *stats.Counters) {
	t.Helper()
	waitFor(t, "listing", st.ListingDone.Load)
}

// checkStore compares the backend's objects with model: a non-zero block
// must be stored with exactly its bytes, a zero block must have no object.
func checkStore(t *testing.T, f *fakeBackend, model []byte) {
	t.Helper()
	nblocks := uint64(len(model) / bs)
	f.mu.Lock()
	defer f.mu.Unlock()
	bad := 0
	for i := uint64(0); i < nblocks; i++ {
		want := model[i*bs : (i+1)*bs]
		got, ok := f.blocks[i]
		switch {
		case isZeros(want) && ok:
			t.Errorf("block %d is zeros but the store holds an object", i)
			bad++
		case !isZeros(want) && !ok:
			t.Errorf("block %d is missing from the store", i)
			bad++
		case ok && !bytes.Equal(got, want):
			t.Errorf("block %d in the store differs from the model at byte %d", i, firstDiff(got, want))
			bad++
		}
		if bad > 5 {
			t.FailNow()
		}
	}
	for i := range f.blocks {
		if i >= nblocks {
			t.Errorf("store holds block %d past the end", i)
		}
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// checkRead reads [off, off+n) through c and compares it with model.
func checkRead(t *testing.T, c *cache.Cache, model []byte, off, n int64) {
	t.Helper()
	buf := make([]byte, n)
	got, err := c.ReadAt(buf, off)
	want := max(min(n, int64(len(model))-off), 0)
	if err != nil || int64(got) != want {
		t.Fatalf("ReadAt(%d bytes at %d) = %d, %v; want %d, nil", n, off, got, err, want)
	}
	if i := firstDiff(buf[:got], model[off:off+want]); i < got {
		t.Fatalf("ReadAt(%d bytes at %d) differs from the model at offset %d (block %d)", n, off, off+int64(i), (off+int64(i))/bs)
	}
}

func mustWrite(t *testing.T, c *cache.Cache, p []byte, off int64) {
	t.Helper()
	if n, err := c.WriteAt(p, off); err != nil || n != len(p) {
		t.Fatalf("WriteAt(%d bytes at %d) = %d, %v", len(p), off, n, err)
	}
}

func mustFlush(t *testing.T, c *cache.Cache) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := c.Flush(ctx); err != nil {
		t.Fatalf("Flush: %v", err)
	}
}

func fill(n int, b byte) []byte { return bytes.Repeat([]byte{b}, n) }

// returnsWithin reports whether done is closed within d.
func returnsWithin(done <-chan struct{}, d time.Duration) bool {
	select {
	case <-done:
		return true
	case <-time.After(d):
		return false
	}
}

package cache_test

import (
	"bytes"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/s3blk/s3blk/cache"
	"github.com/s3blk/s3blk/stats"
)

func TestZeroBlocks(t *testing.T) {
	f := newFake(t)
	f.put(3, pattern(3, 0))
	f.put(6, pattern(6, 0))
	f.put(14, pattern(14, 0))
	st := new(stats.Counters)
	c := startCache(t, f, 16, cache.Config{Size: 8 * bs, ReadAhead: -1, WriteDelay: time.Hour}, st)
	waitListing(t, st)
	model := make([]byte, 16*bs)
	for _, b := range []uint64{3, 6, 14} {
		copy(model[b*bs:], pattern(b, 0))
	}

	// Blocks the listing did not find cost no request.
	checkRead(t, c, model, 0, 16*bs)
	for b := uint64(0); b < 16; b++ {
		want := 0
		if b == 3 || b == 6 || b == 14 {
			want = 1
		}
		if n := f.count(reads, b); n != want {
			t.Errorf("block %d read %d times, want %d", b, n, want)
		}
	}
	if n := st.ZeroReads.Load(); n < 13 {
		t.Errorf("ZeroReads = %d, want >= 13", n)
	}

	// Zeros over blocks the store does not hold: no request at all.
	mustWrite(t, c, make([]byte, bs), 5*bs)
	if err := c.PunchHole(8*bs+100, 3*bs); err != nil {
		t.Fatal(err)
	}
	// Written, then zeroed before it was uploaded: still no request.
	mustWrite(t, c, fill(100, 9), 12*bs+100)
	if err := c.PunchHole(12*bs, bs); err != nil {
		t.Fatal(err)
	}
	// Zeros over stored blocks: a delete, whole or in pieces.
	mustWrite(t, c, make([]byte, bs), 3*bs)
	mustWrite(t, c, make([]byte, bs/2), 6*bs)
	mustWrite(t, c, make([]byte, bs/2), 6*bs+bs/2)
	if err := c.PunchHole(14*bs, bs); err != nil {
		t.Fatal(err)
	}
	clear(model)
	mustFlush(t, c)
	checkStore(t, f, model)
	for b := uint64(0); b < 16; b++ {
		wantDel := 0
		if b == 3 || b == 6 || b == 14 {
			wantDel = 1
		}
		if n := f.count(writes, b); n != 0 {
			t.Errorf("block %d written %d times, want 0", b, n)
		}
		if n := f.count(deletes, b); n != wantDel {
			t.Errorf("block %d deleted %d times, want %d", b, n, wantDel)
		}
	}
	if st.ZeroWritesSkipped.Load() == 0 {
		t.Error("ZeroWritesSkipped = 0")
	}
	// Deleted blocks now read as zeros without a request either.
	checkRead(t, c, model, 0, 16*bs)
	for _, b := range []uint64{3, 6, 14} {
		if n := f.count(reads, b); n != 1 {
			t.Errorf("deleted block %d read %d times, want 1", b, n)
		}
	}
}

// Before the listing completes, every uncached block is fetched; a missing
// object reads as zeros even when the buffer is recycled from a stored block.
func TestZeroBlocksBeforeListing(t *testing.T) {
	f := newFake(t)
	for b := uint64(0); b < 8; b++ {
		f.put(b, pattern(b, 0))
	}
	f.listGate = make(chan struct{})
	st := new(stats.Counters)
	c := startCache(t, f, 16, cache.Config{Size: 4 * bs, ReadAhead: -1}, st)
	model := make([]byte, 16*bs)
	for b := uint64(0); b < 8; b++ {
		copy(model[b*bs:], pattern(b, 0))
	}
	for b := int64(0); b < 16; b++ {
		checkRead(t, c, model, b*bs, bs)
		if n := f.count(reads, uint64(b)); n != 1 {
			t.Errorf("block %d read %d times, want 1", b, n)
		}
	}
	// PunchHole waits for the listing, so it knows what needs no request.
	done := make(chan struct{})
	go func() {
		if err := c.PunchHole(10*bs, 2*bs); err != nil {
			t.Error(err)
		}
		close(done)
	}()
	if returnsWithin(done, 50*time.Millisecond) {
		t.Fatal("PunchHole returned before the listing completed")
	}
	f.set(func(f *fakeBackend) { close(f.listGate); f.listGate = nil })
	if !returnsWithin(done, 10*time.Second) {
		t.Fatal("PunchHole still waiting after the listing completed")
	}
	mustFlush(t, c)
	if n := f.count(deletes, 10) + f.count(deletes, 11); n != 0 {
		t.Errorf("%d deletes for blocks never stored", n)
	}
}

// A partial write to a stored, uncached block fetches it once and keeps the
// rest of the block.
func TestPartialWriteFetchesOnce(t *testing.T) {
	f := newFake(t)
	f.put(2, pattern(2, 0))
	f.put(3, pattern(3, 0))
	st := new(stats.Counters)
	c := startCache(t, f, 8, cache.Config{Size: 8 * bs, ReadAhead: -1, WriteDelay: time.Hour}, st)
	model := make([]byte, 8*bs)
	copy(model[2*bs:], pattern(2, 0))
	copy(model[3*bs:], pattern(3, 0))
	write := func(p []byte, off int64) { mustWrite(t, c, p, off); copy(model[off:], p) }

	write(fill(100, 0xAA), 2*bs+50)
	if n := f.count(reads, 2); n != 1 {
		t.Fatalf("block 2 read %d times after a partial write, want 1", n)
	}
	write(fill(50, 0xBB), 2*bs+3000)
	write(fill(bs, 0xCC), 2*bs+4000) // straddles into block 3
	checkRead(t, c, model, 2*bs, 2*bs)
	for _, b := range []uint64{2, 3} {
		if n := f.count(reads, b); n != 1 {
			t.Errorf("block %d read %d times, want 1", b, n)
		}
	}
	// Once the listing is in, a partial write to a block never stored
	// fetches nothing.
	waitListing(t, st)
	write(fill(10, 0xDD), 6*bs+1)
	if n := f.count(reads, 6); n != 0 {
		t.Errorf("never-stored block 6 read %d times", n)
	}
	mustFlush(t, c)
	checkStore(t, f, model)
}

func TestReadAhead(t *testing.T) {
	f := newFake(t)
	model := storeBlocks(f, 64, 0, 32)
	st := new(stats.Counters)
	c := startCache(t, f, 64, cache.Config{Size: 64 * bs, ReadAhead: 8}, st)
	waitListing(t, st)
	checkRead(t, c, model, 0, bs)
	if n := st.ReadAheads.Load(); n != 8 {
		t.Errorf("ReadAheads = %d after the first read, want 8", n)
	}
	misses, hits := st.CacheMisses.Load(), st.CacheHits.Load()
	for b := int64(1); b <= 8; b++ {
		checkRead(t, c, model, b*bs, bs)
	}
	if n := st.CacheMisses.Load() - misses; n != 0 {
		t.Errorf("%d misses reading read-ahead blocks", n)
	}
	if n := st.CacheHits.Load() - hits; n != 8 {
		t.Errorf("%d hits reading 8 read-ahead blocks", n)
	}
	for b := uint64(0); b <= 8; b++ {
		if n := f.count(reads, b); n != 1 {
			t.Errorf("block %d read %d times, want 1", b, n)
		}
	}
	// Read-ahead stops at the end of the stored blocks: the rest are known
	// zeros and cost nothing.
	checkRead(t, c, model, 9*bs, 55*bs)
	for b := uint64(32); b < 64; b++ {
		if n := f.count(reads, b); n != 0 {
			t.Errorf("never-stored block %d read %d times", b, n)
		}
	}
}

// storeBlocks stores pattern(b, 0) as blocks [from, to) of f and returns
// the model of an nblocks volume holding them.
func storeBlocks(f *fakeBackend, nblocks, from, to uint64) []byte {
	model := make([]byte, nblocks*bs)
	for b := from; b < to; b++ {
		f.put(b, pattern(b, 0))
		copy(model[b*bs:], pattern(b, 0))
	}
	return model
}

// TestReadWaits: a read that finds its block still downloading counts one
// read_wait and the time it waited; a read from the cache counts none.
func TestReadWaits(t *testing.T) {
	f := newFake(t)
	f.readDelay = 50 * time.Millisecond
	model := storeBlocks(f, 4, 0, 4)
	st := new(stats.Counters)
	c := startCache(t, f, 4, cache.Config{Size: 16 * bs, ReadAhead: -1}, st)
	waitListing(t, st)
	checkRead(t, c, model, 0, 2*bs) // two blocks downloading: one wait for the read
	if n, ms := st.ReadWaits.Load(), st.ReadWaitNanos.Load()/1e6; n != 1 || ms < 40 {
		t.Fatalf("after a read of two uncached blocks: read_waits %d, read_wait_ms %d; want 1 and about 50", n, ms)
	}
	checkRead(t, c, model, 0, 2*bs) // cached now
	if n := st.ReadWaits.Load(); n != 1 {
		t.Fatalf("a cached read counted a wait: read_waits %d", n)
	}
	if out := st.Format(); !strings.Contains(out, "read_waits") || !strings.Contains(out, "read_wait_ms") {
		t.Fatalf("the stats file lacks the read-wait lines:\n%s", out)
	}
}

func TestReadErrorIsNotZeros(t *testing.T) {
	f := newFake(t)
	errBoom := errors.New("boom")
	f.put(4, pattern(4, 0))
	f.readErr[4] = errBoom
	st := new(stats.Counters)
	// Reads give up once the store has failed for FlushTimeout.
	c := startCache(t, f, 8, cache.Config{Size: 4 * bs, ReadAhead: -1, FlushTimeout: 300 * time.Millisecond}, st)
	buf := make([]byte, 3*bs)
	if n, err := c.ReadAt(buf[:bs], 4*bs); !errors.Is(err, errBoom) || n != 0 {
		t.Fatalf("ReadAt of a failing block = %d, %v; want 0 and the error", n, err)
	}
	if n, err := c.ReadAt(buf, 3*bs+10); !errors.Is(err, errBoom) || n != 0 {
		t.Fatalf("ReadAt across a failing block = %d, %v; want 0 and the error", n, err)
	}
	if _, err := c.WriteAt(fill(10, 1), 4*bs+10); !errors.Is(err, errBoom) {
		t.Fatalf("partial WriteAt to a failing block = %v; want the error", err)
	}
	if st.Errors.Load() == 0 {
		t.Error("Errors = 0")
	}
	// Nothing was cached or made dirty by the failures: once the store
	// recovers, the block's real contents come back.
	f.set(func(f *fakeBackend) { delete(f.readErr, 4) })
	model := make([]byte, 8*bs)
	copy(model[4*bs:], pattern(4, 0))
	checkRead(t, c, model, 0, 8*bs)
	mustFlush(t, c)
	checkStore(t, f, model)
}

func TestReadOnly(t *testing.T) {
	f := newFake(t)
	f.put(1, pattern(1, 0))
	c := startCache(t, f, 4, cache.Config{ReadOnly: true}, nil)
	if _, err := c.WriteAt(fill(10, 1), 0); !errors.Is(err, cache.ErrReadOnly) {
		t.Errorf("WriteAt = %v, want ErrReadOnly", err)
	}
	if err := c.PunchHole(0, bs); !errors.Is(err, cache.ErrReadOnly) {
		t.Errorf("PunchHole = %v, want ErrReadOnly", err)
	}
	model := make([]byte, 4*bs)
	copy(model[bs:], pattern(1, 0))
	checkRead(t, c, model, 0, 4*bs)
	mustFlush(t, c)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	checkStore(t, f, model)
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.writes)+len(f.deletes) != 0 {
		t.Errorf("read-only cache made uploads: %v writes, %v deletes", f.writes, f.deletes)
	}
}

func TestOutOfRange(t *testing.T) {
	f := newFake(t)
	c := startCache(t, f, 4, cache.Config{}, nil)
	if c.Size() != 4*bs {
		t.Fatalf("Size = %d", c.Size())
	}
	if _, err := c.WriteAt(fill(10, 1), 4*bs-5); !errors.Is(err, cache.ErrOutOfRange) {
		t.Errorf("WriteAt past the end = %v", err)
	}
	if _, err := c.WriteAt(fill(10, 1), -1); !errors.Is(err, cache.ErrOutOfRange) {
		t.Errorf("WriteAt at -1 = %v", err)
	}
	if _, err := c.ReadAt(make([]byte, 10), -1); !errors.Is(err, cache.ErrOutOfRange) {
		t.Errorf("ReadAt at -1 = %v", err)
	}
	if n, err := c.ReadAt(make([]byte, 10), 4*bs); n != 0 || err != nil {
		t.Errorf("ReadAt at the end = %d, %v", n, err)
	}
	if err := c.PunchHole(-1, 10); !errors.Is(err, cache.ErrOutOfRange) {
		t.Errorf("PunchHole at -1 = %v", err)
	}
	mustWrite(t, c, fill(10, 7), 4*bs-10)
	buf := make([]byte, 100)
	if n, err := c.ReadAt(buf, 4*bs-10); n != 10 || err != nil || !bytes.Equal(buf[:10], fill(10, 7)) {
		t.Errorf("short read at the end = %d, %v, %x", n, err, buf[:10])
	}
	// A hole running past the end is clipped.
	if err := c.PunchHole(4*bs-10, 1000); err != nil {
		t.Error(err)
	}
	mustFlush(t, c)
	checkStore(t, f, make([]byte, 4*bs))
}

// Reads of uncached blocks must make progress while dirty blocks that cannot
// be uploaded fill the cache (or all but a little of it): a block loaded for
// a waiting reader must not be evicted before the reader has copied it.
func TestReadsWhileDirtyHeld(t *testing.T) {
	for _, tc := range []struct {
		name              string
		maxDirty, readers int
	}{
		{"dirty-fills-cache", 4, 1},
		{"dirty-fills-cache-4-readers", 4, 4},
		{"more-readers-than-free-slots", 2, 6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t)
			f.readDelay = 200 * time.Microsecond
			model := storeBlocks(f, 16, 8, 16)
			st := new(stats.Counters)
			c := startCache(t, f, 16, cache.Config{Size: 4 * bs, MaxDirty: int64(tc.maxDirty) * bs, ReadAhead: -1}, st)
			waitListing(t, st)
			release := f.holdUploads()
			defer release()
			for b := 0; b < tc.maxDirty; b++ {
				mustWrite(t, c, pattern(uint64(b), 1), int64(b)*bs)
				copy(model[b*bs:], pattern(uint64(b), 1))
			}
			var wg sync.WaitGroup
			for i := range tc.readers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					off := int64(8+i) * bs
					buf := make([]byte, bs)
					if _, err := c.ReadAt(buf, off); err != nil || !bytes.Equal(buf, model[off:off+bs]) {
						t.Errorf("block %d: %v, or wrong data", 8+i, err)
					}
				}()
			}
			done := make(chan struct{})
			go func() { wg.Wait(); close(done) }()
			if !returnsWithin(done, 5*time.Second) {
				t.Errorf("readers stuck while uploads are held; block 8 fetched %d times", f.count(reads, 8))
			}
			release()
			<-done
			for i := range tc.readers {
				if n := f.count(reads, uint64(8+i)); n != 1 {
					t.Errorf("block %d fetched %d times, want 1", 8+i, n)
				}
			}
			// A read spanning more blocks than the cache has room for.
			checkRead(t, c, model, 0, 16*bs)
			mustFlush(t, c)
			checkStore(t, f, model)
		})
	}
}

package cache_test

import (
	"bytes"
	"context"
	"errors"
	"math/rand"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/s3blk/s3blk/cache"
	"github.com/s3blk/s3blk/stats"
)

// With WriteDelay long and little dirty data nothing is uploaded on its own;
// Flush must store every block written before it, and must not return while
// an upload it depends on is still held.
func TestFlushBarrier(t *testing.T) {
	f := newFake(t)
	st := new(stats.Counters)
	c := startCache(t, f, 32, cache.Config{Size: 32 * bs, MaxDirty: 16 * bs, WriteDelay: time.Hour}, st)
	model := make([]byte, 32*bs)
	write := func(p []byte, off int64) { mustWrite(t, c, p, off); copy(model[off:], p) }
	write(fill(100, 1), 3*bs+10)       // partial
	write(fill(2*bs, 2), 5*bs+bs/2)    // straddles three blocks
	write(pattern(9, 3), 9*bs)         // whole block
	write(fill(bs-1, 4), 12*bs)        // partial, stops short of the end
	time.Sleep(100 * time.Millisecond) // give uploaders a chance to misbehave
	for _, b := range []uint64{3, 7, 12} {
		if n := f.count(writes, b); n != 0 {
			t.Errorf("partly written block %d uploaded %d times before WriteDelay or Flush", b, n)
		}
	}
	mustFlush(t, c)
	checkStore(t, f, model)
	if n := st.DirtyBlocks.Load(); n != 0 {
		t.Errorf("%d dirty blocks after Flush", n)
	}

	// A held upload holds Flush.
	release := f.holdUploads()
	write(fill(10, 5), 20*bs)
	done := make(chan struct{})
	var err error
	go func() { err = c.Flush(context.Background()); close(done) }()
	waitFor(t, "upload of block 20", func() bool { return f.count(inflight, 20) == 1 })
	if returnsWithin(done, 100*time.Millisecond) {
		t.Fatal("Flush returned while the upload of block 20 was held")
	}
	if _, ok := f.get(20); ok {
		t.Fatal("block 20 stored while held")
	}
	release()
	if !returnsWithin(done, 10*time.Second) {
		t.Fatal("Flush did not return after the upload was released")
	}
	if err != nil {
		t.Fatal(err)
	}
	checkStore(t, f, model)

	// A cancelled context ends Flush with its error.
	release = f.holdUploads()
	write(fill(10, 6), 21*bs)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := c.Flush(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Flush with an expired context = %v", err)
	}
	release()
	mustFlush(t, c)
	checkStore(t, f, model)
}

func TestCloseStoresDirtyBlocks(t *testing.T) {
	f := newFake(t)
	f.put(7, pattern(7, 0))
	st := new(stats.Counters)
	c := startCache(t, f, 16, cache.Config{Size: 16 * bs, MaxDirty: 8 * bs, WriteDelay: time.Hour}, st)
	waitListing(t, st)
	model := make([]byte, 16*bs)
	copy(model[7*bs:], pattern(7, 0))
	for _, b := range []int64{0, 4, 15} {
		p := fill(bs/3, byte(b+1))
		mustWrite(t, c, p, b*bs+7)
		copy(model[b*bs+7:], p)
	}
	if n := st.DirtyBlocks.Load(); n != 3 {
		t.Errorf("DirtyBlocks = %d, want 3", n)
	}
	if err := c.PunchHole(7*bs, bs); err != nil {
		t.Fatal(err)
	}
	clear(model[7*bs : 8*bs])
	time.Sleep(50 * time.Millisecond)
	for _, b := range []uint64{0, 4, 15} {
		if n := f.count(writes, b); n != 0 {
			t.Errorf("partly written block %d uploaded before Close", b)
		}
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	checkStore(t, f, model)
	if n := f.count(deletes, 7); n != 1 {
		t.Errorf("block 7 deleted %d times, want 1", n)
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// With MaxDirty two blocks and uploads held, a third dirty block waits.
func TestDirtyBound(t *testing.T) {
	f := newFake(t)
	st := new(stats.Counters)
	const maxDirty = 2 * bs
	c := startCache(t, f, 16, cache.Config{Size: 8 * bs, MaxDirty: maxDirty, Uploaders: 4, WriteDelay: time.Hour}, st)
	waitListing(t, st)
	var peak atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			if d := st.DirtyBytes.Load(); d > peak.Load() {
				peak.Store(d)
			}
			select {
			case <-stop:
				return
			default:
				time.Sleep(50 * time.Microsecond)
			}
		}
	}()
	release := f.holdUploads()
	model := make([]byte, 16*bs)
	mustWrite(t, c, pattern(0, 1), 0)
	mustWrite(t, c, fill(10, 2), bs+5) // partial: read-modify-write of a zero block
	copy(model, pattern(0, 1))
	copy(model[bs+5:], fill(10, 2))
	waitFor(t, "uploads to reach the gate", func() bool {
		return f.count(inflight, 0) == 1 && f.count(inflight, 1) == 1
	})
	done := make(chan struct{})
	go func() {
		defer close(done)
		if _, err := c.WriteAt(pattern(2, 3), 2*bs); err != nil {
			t.Error(err)
		}
	}()
	if returnsWithin(done, 150*time.Millisecond) {
		t.Fatal("a third dirty block was accepted with MaxDirty = 2 blocks and uploads held")
	}
	if d := st.DirtyBytes.Load(); d != maxDirty {
		t.Errorf("DirtyBytes = %d while held, want %d", d, maxDirty)
	}
	release()
	if !returnsWithin(done, 10*time.Second) {
		t.Fatal("writer still blocked after uploads were released")
	}
	copy(model[2*bs:], pattern(2, 3))
	mustFlush(t, c)
	close(stop)
	wg.Wait()
	checkStore(t, f, model)
	if p := peak.Load(); p > maxDirty {
		t.Errorf("DirtyBytes peaked at %d > MaxDirty %d", p, maxDirty)
	}
	if d := st.DirtyBytes.Load(); d != 0 {
		t.Errorf("DirtyBytes = %d after Flush", d)
	}
}

// A block written again while its upload is in flight stays dirty and its
// new contents are stored afterwards.
func TestRewriteDuringUpload(t *testing.T) {
	for _, tc := range []struct {
		name   string
		second []byte // written at offset 100 while the first upload is held
	}{
		{"data", fill(200, 0xB2)},
		{"zeros-partial", make([]byte, 200)},
		{"zeros-whole", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t)
			st := new(stats.Counters)
			c := startCache(t, f, 4, cache.Config{Size: 4 * bs, WriteDelay: time.Hour}, st)
			waitListing(t, st)
			release := f.holdUploads()
			model := make([]byte, 4*bs)
			first := pattern(0, 0x11)
			mustWrite(t, c, first, 0) // a whole block: uploaded at once
			copy(model, first)
			waitFor(t, "the first upload", func() bool { return f.count(inflight, 0) == 1 })
			if tc.second == nil {
				if err := c.PunchHole(0, bs); err != nil {
					t.Fatal(err)
				}
				clear(model[:bs])
			} else {
				mustWrite(t, c, tc.second, 100)
				copy(model[100:], tc.second)
			}
			checkRead(t, c, model, 0, bs)
			// Flush must wait for the second version, not just the first.
			done := make(chan struct{})
			var err error
			go func() { err = c.Flush(context.Background()); close(done) }()
			time.Sleep(20 * time.Millisecond)
			release()
			if !returnsWithin(done, 10*time.Second) {
				t.Fatal("Flush did not return")
			}
			if err != nil {
				t.Fatal(err)
			}
			checkStore(t, f, model)
			if n := f.count(writes, 0) + f.count(deletes, 0); n != 2 {
				t.Errorf("block 0 had %d uploads, want 2", n)
			}
			if n := st.DirtyBlocks.Load(); n != 0 {
				t.Errorf("DirtyBlocks = %d after Flush", n)
			}
			checkRead(t, c, model, 0, bs)
		})
	}
}

// Many rewrites of a few blocks with many uploaders: the backend checks that
// no block ever has two uploads in flight, and the last version wins.
func TestRewritesNeverOverlapUploads(t *testing.T) {
	f := newFake(t)
	f.delay = 300 * time.Microsecond
	st := new(stats.Counters)
	c := startCache(t, f, 4, cache.Config{Size: 16 * bs, Uploaders: 16, WriteDelay: time.Microsecond}, st)
	var wg sync.WaitGroup
	last := make([][]byte, 4)
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 300 {
				p := pattern(uint64(g), byte(i))
				if i%50 == 49 {
					p = make([]byte, bs) // now and then a delete
				}
				if _, err := c.WriteAt(p, int64(g)*bs); err != nil {
					t.Error(err)
					return
				}
				last[g] = p
				if i%100 == 0 {
					time.Sleep(time.Millisecond)
				}
			}
		}()
	}
	wg.Wait()
	mustFlush(t, c)
	checkStore(t, f, bytes.Join(last, nil))
	total := 0
	for g := range uint64(4) {
		total += f.count(writes, g) + f.count(deletes, g)
	}
	if total < 8 {
		t.Errorf("only %d uploads: the test did not exercise rewrites during uploads", total)
	}
}

func TestUploadRetried(t *testing.T) {
	f := newFake(t)
	f.failUploads = 2
	st := new(stats.Counters)
	c := startCache(t, f, 4, cache.Config{Size: 4 * bs}, st)
	mustWrite(t, c, pattern(1, 0), bs)
	mustFlush(t, c)
	if got, ok := f.get(1); !ok || !bytes.Equal(got, pattern(1, 0)) {
		t.Fatal("block 1 not stored after retries")
	}
	if n := f.count(writes, 1); n != 3 {
		t.Errorf("block 1 write attempts = %d, want 3", n)
	}
	if n := st.Retries.Load(); n != 2 {
		t.Errorf("Retries = %d, want 2", n)
	}
}

// While the store keeps failing, Flush gives up after FlushTimeout with an
// error, but the data stays dirty and is stored once the store recovers.
func TestFlushTimeoutKeepsData(t *testing.T) {
	f := newFake(t)
	f.failAlways = true
	st := new(stats.Counters)
	c := startCache(t, f, 4, cache.Config{Size: 4 * bs, FlushTimeout: 100 * time.Millisecond}, st)
	model := make([]byte, 4*bs)
	copy(model[2*bs:], pattern(2, 0))
	mustWrite(t, c, pattern(2, 0), 2*bs)
	start := time.Now()
	err := c.Flush(context.Background())
	if err == nil || !strings.Contains(err.Error(), "nothing could be stored") {
		t.Fatalf("Flush with a failing store = %v, want a nothing-could-be-stored error", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Flush took %v to give up", d)
	}
	if _, ok := f.get(2); ok {
		t.Fatal("block stored although every upload failed")
	}
	if n := st.DirtyBlocks.Load(); n != 1 {
		t.Errorf("DirtyBlocks = %d after a failed Flush, want 1", n)
	}
	checkRead(t, c, model, 0, 4*bs)
	// Once the store recovers, the next Flush retries at once (no waiting
	// out the backoff) and succeeds.
	f.set(func(f *fakeBackend) { f.failAlways = false })
	if err := c.Flush(context.Background()); err != nil {
		t.Fatalf("first Flush after the store recovered: %v", err)
	}
	checkStore(t, f, model)

	// Close gives up the same way, with an error.
	f.set(func(f *fakeBackend) { f.failAlways = true })
	mustWrite(t, c, pattern(3, 0), 3*bs)
	if err := c.Close(); err == nil || !strings.Contains(err.Error(), "could not be stored") {
		t.Errorf("Close with a failing store = %v", err)
	}
}

// An upload that failed may still have created the object (a timeout after
// the store committed it). Zeroing the block afterwards must delete it.
func TestFailedUploadMayHaveStored(t *testing.T) {
	f := newFake(t)
	f.storeThenFail = 1
	st := new(stats.Counters)
	c := startCache(t, f, 4, cache.Config{Size: 4 * bs}, st)
	waitListing(t, st)
	mustWrite(t, c, pattern(1, 0), bs)
	waitFor(t, "the first upload attempt", func() bool { return f.count(writes, 1) == 1 })
	if err := c.PunchHole(bs, bs); err != nil {
		t.Fatal(err)
	}
	mustFlush(t, c)
	checkStore(t, f, make([]byte, 4*bs))
}

// Writers hammer disjoint stripes that share blocks, in a tiny cache, each
// checking its own stripes as it goes; flushes run alongside.
func TestConcurrentWriters(t *testing.T) {
	const (
		nblocks = 24
		writers = 8
		stripe  = bs / writers // writer g owns bytes [g*stripe, (g+1)*stripe) of every block
	)
	f := newFake(t)
	f.delay = 100 * time.Microsecond
	st := new(stats.Counters)
	c := startCache(t, f, nblocks, cache.Config{Size: 8 * bs, MaxDirty: 4 * bs, Uploaders: 4, ReadAhead: 2, WriteDelay: time.Millisecond}, st)
	model := make([]byte, nblocks*bs)
	var wg sync.WaitGroup
	for g := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewSource(int64(g)))
			for i := 0; i < 150 && !t.Failed(); i++ {
				b := int64(r.Intn(nblocks))
				off := b*bs + int64(g*stripe)
				switch r.Intn(6) {
				case 0:
					if err := c.PunchHole(off, stripe); err != nil {
						t.Error(err)
						return
					}
					clear(model[off : off+stripe])
				case 1:
					buf := make([]byte, stripe)
					if _, err := c.ReadAt(buf, off); err != nil {
						t.Error(err)
						return
					}
					if !bytes.Equal(buf, model[off:off+stripe]) {
						t.Errorf("writer %d: block %d stripe reads back wrong", g, b)
						return
					}
				case 2:
					if g == 0 {
						if err := c.Flush(context.Background()); err != nil {
							t.Error(err)
							return
						}
					}
				default:
					p := make([]byte, stripe)
					r.Read(p)
					if _, err := c.WriteAt(p, off); err != nil {
						t.Error(err)
						return
					}
					copy(model[off:], p)
				}
			}
		}()
	}
	wg.Wait()
	mustFlush(t, c)
	checkStore(t, f, model)
	checkRead(t, c, model, 0, nblocks*bs)
}

package cache_test

import (
	"bytes"
	"context"
	"math/rand"
	"testing"
	"time"

	"github.com/s3blk/s3blk/blockstore"
	"github.com/s3blk/s3blk/cache"
	"github.com/s3blk/s3blk/volume"
)

// randRange picks a byte range of the volume: whole blocks, a small piece
// of one block, or a range of up to three blocks straddling boundaries.
func randRange(r *rand.Rand, size int64) (off, n int64) {
	switch r.Intn(5) {
	case 0:
		b := r.Int63n(size / bs)
		k := 1 + r.Int63n(min(3, size/bs-b))
		return b * bs, k * bs
	case 1:
		n = 1 + r.Int63n(64)
	default:
		n = 1 + r.Int63n(3*bs)
	}
	return r.Int63n(size - n + 1), n
}

// randData is random bytes, all zeros, or zeros with a few bytes set.
func randData(r *rand.Rand, n int64) []byte {
	p := make([]byte, n)
	switch r.Intn(5) {
	case 0: // zeros
	case 1:
		for range 3 {
			p[r.Int63n(n)] = byte(1 + r.Intn(255))
		}
	default:
		r.Read(p)
	}
	return p
}

func TestRandomOpsMatchModel(t *testing.T) {
	cases := []struct {
		name      string
		seed      int64
		cfg       cache.Config
		listDelay time.Duration
		delay     time.Duration
	}{
		{"tiny", 1, cache.Config{Size: 4 * bs, MaxDirty: 2 * bs, Uploaders: 2, ReadAhead: 4}, 0, 0},
		{"small-delayed-write", 2, cache.Config{Size: 8 * bs, MaxDirty: 4 * bs, Uploaders: 4, WriteDelay: 5 * time.Millisecond}, 0, 0},
		{"one-uploader-slow-listing", 3, cache.Config{Size: 6 * bs, MaxDirty: 3 * bs, Uploaders: 1, WriteDelay: time.Millisecond}, 30 * time.Millisecond, 0},
		{"default-max-dirty", 4, cache.Config{Size: 8 * bs, Uploaders: 16, WriteDelay: time.Millisecond}, 0, 200 * time.Microsecond},
		{"no-readahead", 5, cache.Config{Size: 5 * bs, MaxDirty: bs, Uploaders: 3, ReadAhead: -1, WriteDelay: time.Millisecond}, 5 * time.Millisecond, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			t.Logf("seed %d", tc.seed)
			r := rand.New(rand.NewSource(tc.seed))
			const nblocks = 40
			size := int64(nblocks * bs)
			model := make([]byte, size)
			f := newFake(t)
			f.listDelay, f.delay = tc.listDelay, tc.delay
			// Some blocks are stored before the first mount.
			for i := uint64(0); i < nblocks; i += 3 {
				p := pattern(i, 0x40)
				f.put(i, p)
				copy(model[i*bs:], p)
			}
			c := startCache(t, f, nblocks, tc.cfg, nil)
			reopens := 0
			for op := 0; op < 1500; op++ {
				switch k := r.Intn(100); {
				case k < 40:
					off, n := randRange(r, size)
					p := randData(r, n)
					if got, err := c.WriteAt(p, off); err != nil || got != len(p) {
						t.Fatalf("op %d: WriteAt(%d bytes at %d) = %d, %v", op, n, off, got, err)
					}
					copy(model[off:], p)
				case k < 50:
					off, n := randRange(r, size)
					if err := c.PunchHole(off, n); err != nil {
						t.Fatalf("op %d: PunchHole(%d, %d): %v", op, off, n, err)
					}
					clear(model[off : off+n])
				case k < 90:
					off, n := randRange(r, size)
					if r.Intn(8) == 0 {
						off = size - n/2 // runs past the end: a short read
					}
					checkRead(t, c, model, off, n)
				case k < 98:
					if err := c.Flush(context.Background()); err != nil {
						t.Fatalf("op %d: Flush: %v", op, err)
					}
					checkStore(t, f, model)
				default:
					if err := c.Close(); err != nil {
						t.Fatalf("op %d: Close: %v", op, err)
					}
					checkStore(t, f, model)
					c = startCache(t, f, nblocks, tc.cfg, nil)
					reopens++
				}
			}
			if err := c.Flush(context.Background()); err != nil {
				t.Fatal(err)
			}
			checkStore(t, f, model)
			if err := c.Close(); err != nil {
				t.Fatal(err)
			}
			checkStore(t, f, model)
			// A fresh cache reads back the whole volume.
			c = startCache(t, f, nblocks, tc.cfg, nil)
			checkRead(t, c, model, 0, size)
			f.mu.Lock()
			var nr, nw, nd int
			for _, n := range f.reads {
				nr += n
			}
			for _, n := range f.writes {
				nw += n
			}
			for _, n := range f.deletes {
				nd += n
			}
			f.mu.Unlock()
			t.Logf("%d reopens, %d block reads, %d writes, %d deletes", reopens, nr, nw, nd)
			if nr == 0 || nw == 0 || nd == 0 {
				t.Errorf("the workload should read, write and delete blocks")
			}
		})
	}
}

// TestOverVolume runs the cache over the real volume layer and a local
// directory store, then remounts and reads everything back.
func TestOverVolume(t *testing.T) {
	ctx := context.Background()
	const nblocks = 24
	size := int64(nblocks * bs)
	store := blockstore.NewLocal(t.TempDir())
	if _, err := volume.Create(ctx, store, size, bs, volume.Options{}); err != nil {
		t.Fatal(err)
	}
	vol, err := volume.Open(ctx, store, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if vol.Header.Blocks() != nblocks {
		t.Fatalf("volume has %d blocks", vol.Header.Blocks())
	}
	cfg := cache.Config{Size: 6 * bs, MaxDirty: 3 * bs, Uploaders: 4, WriteDelay: time.Millisecond}
	c := startCache(t, vol, vol.Header.Blocks(), cfg, vol.Stats)
	waitListing(t, vol.Stats)

	const seed = 42
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewSource(seed))
	model := make([]byte, size)
	for op := 0; op < 120; op++ {
		off, n := randRange(r, size)
		if r.Intn(6) == 0 {
			if err := c.PunchHole(off, n); err != nil {
				t.Fatal(err)
			}
			clear(model[off : off+n])
			continue
		}
		p := randData(r, n)
		if _, err := c.WriteAt(p, off); err != nil {
			t.Fatal(err)
		}
		copy(model[off:], p)
		if op%40 == 39 {
			if err := c.Flush(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	// A whole block of zeros over a stored block deletes its object.
	copy(model[5*bs:], pattern(5, 1))
	if _, err := c.WriteAt(pattern(5, 1), 5*bs); err != nil {
		t.Fatal(err)
	}
	if err := c.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Get(ctx, volume.BlockKey(5)); err != nil {
		t.Fatalf("block 5 not stored after Flush: %v", err)
	}
	if err := c.PunchHole(5*bs, bs); err != nil {
		t.Fatal(err)
	}
	clear(model[5*bs : 6*bs])
	checkRead(t, c, model, 0, size)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}

	// The objects in the store are exactly the non-zero blocks.
	buf := make([]byte, bs)
	for i := uint64(0); i < nblocks; i++ {
		want := model[i*bs : (i+1)*bs]
		found, err := vol.ReadBlock(ctx, i, buf)
		if err != nil {
			t.Fatalf("block %d: %v", i, err)
		}
		if found == isZeros(want) {
			t.Errorf("block %d: stored=%v but zero=%v", i, found, isZeros(want))
		}
		if found && !bytes.Equal(buf, want) {
			t.Errorf("block %d: stored contents differ from the model", i)
		}
	}
	var listed int
	if err := vol.ListBlocks(ctx, func(uint64) { listed++ }); err != nil {
		t.Fatal(err)
	}
	nonzero := 0
	for i := 0; i < nblocks; i++ {
		if !isZeros(model[i*bs : (i+1)*bs]) {
			nonzero++
		}
	}
	if listed != nonzero {
		t.Errorf("store lists %d blocks, model has %d non-zero blocks", listed, nonzero)
	}

	// Remount: a new volume and cache see the same contents.
	vol2, err := volume.Open(ctx, store, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	c2 := startCache(t, vol2, nblocks, cfg, vol2.Stats)
	checkRead(t, c2, model, 0, size)
	for i := int64(0); i < size; i += 1000 {
		checkRead(t, c2, model, i, 3000)
	}
	if got := vol2.Stats.CorruptBlocks.Load(); got != 0 {
		t.Errorf("%d corrupt blocks", got)
	}
}

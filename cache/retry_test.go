package cache_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/s3blk/s3blk/cache"
	"github.com/s3blk/s3blk/codec"
	"github.com/s3blk/s3blk/stats"
)

// flakyReads fails the first failures reads of every block with err, then
// reads from the fake.
type flakyReads struct {
	*fakeBackend
	err      error
	failures int

	mu     sync.Mutex
	failed map[uint64]int
}

func (f *flakyReads) ReadBlock(ctx context.Context, index uint64, dst []byte) (bool, error) {
	f.mu.Lock()
	fail := f.failed[index] < f.failures
	if fail {
		f.failed[index]++
	}
	f.mu.Unlock()
	if fail {
		return false, f.err
	}
	return f.fakeBackend.ReadBlock(ctx, index, dst)
}

// TestReadRetriesTransientErrors: a block read that fails a few times (say,
// every attempt of the S3 SDK hit a reset) is tried again, and the reader
// gets the data, not an I/O error. The retries are counted.
func TestReadRetriesTransientErrors(t *testing.T) {
	f := newFake(t)
	f.put(4, pattern(4, 0))
	be := &flakyReads{fakeBackend: f, err: errors.New("connection reset by peer"), failures: 2, failed: map[uint64]int{}}
	st := new(stats.Counters)
	c := startCache(t, be, 8, cache.Config{Size: 4 * bs, ReadAhead: -1}, st)
	buf := make([]byte, bs)
	if _, err := c.ReadAt(buf, 4*bs); err != nil {
		t.Fatalf("ReadAt after 2 transient failures: %v", err)
	}
	if !bytes.Equal(buf, pattern(4, 0)) {
		t.Fatal("ReadAt returned wrong bytes")
	}
	if st.Retries.Load() != 2 || st.Errors.Load() != 0 {
		t.Fatalf("retries %d, errors %d; want 2 and 0", st.Retries.Load(), st.Errors.Load())
	}
}

// TestReadGivesUpOnCorruptBlocks: a corrupt object is not fetched again;
// the read fails at once.
func TestReadGivesUpOnCorruptBlocks(t *testing.T) {
	f := newFake(t)
	f.put(4, pattern(4, 0))
	corrupt := fmt.Errorf("%w: bad tag", codec.ErrCorrupt)
	be := &flakyReads{fakeBackend: f, err: corrupt, failures: 100, failed: map[uint64]int{}}
	st := new(stats.Counters)
	c := startCache(t, be, 8, cache.Config{Size: 4 * bs, ReadAhead: -1}, st)
	if _, err := c.ReadAt(make([]byte, bs), 4*bs); !errors.Is(err, codec.ErrCorrupt) {
		t.Fatalf("ReadAt of a corrupt block: %v; want codec.ErrCorrupt", err)
	}
	be.mu.Lock()
	defer be.mu.Unlock()
	if be.failed[4] != 1 || st.Retries.Load() != 0 {
		t.Fatalf("a corrupt block was read %d times (%d retries); want once", be.failed[4], st.Retries.Load())
	}
}

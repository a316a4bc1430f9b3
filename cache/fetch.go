package cache

// The read path: ReadAt serves a byte range from cached blocks, starting a
// download for each missing one (and read-ahead for a sequential reader);
// startLoad and waitLoad manage loading entries; readBlock downloads one
// block with retries.

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/s3blk/s3blk/codec"
)

// readBlock downloads block index into dst. A failure other than a corrupt
// object is tried again with backoff (100 ms doubling to 5 s) until
// FlushTimeout has passed: the store's own retries (the S3 SDK's attempts)
// can all fail in one burst of errors or a short outage, and a failed read
// is an I/O error for the filesystem above, which ext4 may answer by going
// read-only. Reads thus ride out the same outages that writes do. A corrupt
// object would be just as corrupt when fetched again.
func (c *Cache) readBlock(index uint64, dst []byte) (bool, error) {
	start := time.Now()
	delay := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		found, err := c.be.ReadBlock(context.Background(), index, dst)
		if err == nil || errors.Is(err, codec.ErrCorrupt) || time.Since(start)+delay > c.cfg.FlushTimeout {
			return found, err
		}
		c.st.Retries.Add(1)
		c.log.Warn("reading block failed; will retry", "block", index, "attempt", attempt, "err", err)
		select {
		case <-time.After(delay):
		case <-c.stop:
			return found, err
		}
		delay = min(2*delay, 5*time.Second)
	}
}

// ReadAt reads len(p) bytes at off. Reads past the end are short. A block
// that fails to download or verify fails the read; wrong bytes are never
// returned.
func (c *Cache) ReadAt(p []byte, off int64) (int, error) {
	p, err := c.clip(p, off)
	if err != nil || len(p) == 0 {
		return 0, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	// Start every missing block of the range at once, then collect them.
	c.blockRange(p, off, func(index uint64, _ int, _ []byte) error {
		if c.entries[index] == nil && !c.knownAbsent(index) {
			c.startLoad(index)
			c.st.CacheMisses.Add(1)
		}
		return nil
	})
	sequential := off == c.lastReadEnd
	c.lastReadEnd = off + int64(len(p))
	var waitStart time.Time // when this read first waited for a download
	err = c.blockRange(p, off, func(index uint64, inBlock int, part []byte) error {
		for {
			e := c.entries[index]
			if e == nil {
				if c.knownAbsent(index) {
					clear(part)
					c.st.ZeroReads.Add(1)
					return nil
				}
				c.startLoad(index)
				continue
			}
			if e.loading {
				if waitStart.IsZero() {
					waitStart = time.Now()
				}
				if err := c.waitLoad(e); err != nil {
					return err
				}
				continue
			}
			c.st.CacheHits.Add(1)
			if e.data == nil {
				clear(part)
			} else {
				copy(part, e.data[inBlock:])
			}
			if !e.dirty && !e.uploading {
				c.clean.Add(index, e) // mark recently used (or unpin)
			}
			return nil
		}
	})
	if !waitStart.IsZero() {
		c.st.ReadWaits.Add(1)
		c.st.ReadWaitNanos.Add(int64(time.Since(waitStart)))
	}
	if err != nil {
		return 0, fmt.Errorf("block read failed: %w", err)
	}
	c.evict() // entries unpinned above may have taken the cache past its size
	if sequential {
		c.readAhead(uint64((off + int64(len(p)) - 1) / int64(c.bs)))
	}
	return len(p), nil
}

// readAhead starts downloads of the blocks after last. Requires c.mu.
func (c *Cache) readAhead(last uint64) {
	for i := last + 1; i <= last+uint64(c.cfg.ReadAhead) && i < c.nblocks; i++ {
		if c.entries[i] != nil || c.knownAbsent(i) {
			continue
		}
		if c.buffers >= int(c.cfg.Size/int64(c.bs)) && c.clean.Len() == 0 {
			return // no room without evicting dirty data
		}
		c.startLoad(i)
		c.st.ReadAheads.Add(1)
	}
}

// startLoad creates a loading entry for index and downloads it in the
// background. Requires c.mu.
func (c *Cache) startLoad(index uint64) *entry {
	e := &entry{index: index, loading: true, data: c.getBuf()}
	c.entries[index] = e
	c.buffers++
	go func() {
		found, err := c.readBlock(index, e.data)
		c.mu.Lock()
		defer c.mu.Unlock()
		e.loading = false
		switch {
		case err != nil:
			e.loadErr = err
			c.st.Errors.Add(1)
			c.noteError(err)
			c.log.Error("reading block failed", "block", index, "err", err)
			delete(c.entries, index)
			c.buffers--
			c.putBuf(e.data)
			e.data = nil
		case !found:
			clear(e.data)
			if c.present.clear(index) {
				c.st.KnownBlocks.Add(-1)
			}
			fallthrough
		default:
			if e.waiters == 0 {
				c.clean.Add(index, e)
			} // else pinned until a waiter uses it
			c.evict()
		}
		c.cond.Broadcast()
	}()
	return e
}

// waitLoad waits once for e's download to progress, pinning e so that it
// cannot be evicted before this waiter uses it. Requires c.mu.
func (c *Cache) waitLoad(e *entry) error {
	e.waiters++
	c.cond.Wait()
	e.waiters--
	return e.loadErr
}

package cache

import (
	"context"
	"fmt"
	"time"
)

// requestTimeout bounds one upload or delete, so a hung connection cannot
// hold a block forever; the block is then retried.
const requestTimeout = 2 * time.Minute

// ticker wakes waiters periodically: uploaders holding back partly written
// blocks for WriteDelay, retries waiting out their backoff, and Flush calls
// checking their deadline.
func (c *Cache) ticker() {
	defer c.workers.Done()
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
			c.mu.Lock()
			c.cond.Broadcast()
			c.mu.Unlock()
		}
	}
}

// urgent reports whether dirty blocks should go out without waiting for
// WriteDelay. Requires c.mu.
func (c *Cache) urgent() bool {
	return c.flushers > 0 || c.closed ||
		c.dirtyBytes*2 >= c.cfg.MaxDirty || c.dirtyCount*2 >= maxDirtyEntries
}

// enqueue puts a dirty entry at the back of the upload queue. Requires c.mu.
func (c *Cache) enqueue(e *entry) {
	if !e.queued {
		e.queued = true
		c.dirtyQ = append(c.dirtyQ, e)
	}
}

// nextUpload removes and returns the oldest dirty entry that may be
// uploaded now, or nil. Requires c.mu.
func (c *Cache) nextUpload(now time.Time) *entry {
	urgent := c.urgent()
	for i, e := range c.dirtyQ {
		if now.Before(e.retryAt) {
			continue
		}
		if !urgent && !e.ready && e.data != nil && now.Sub(e.dirtyAt) < c.cfg.WriteDelay {
			continue
		}
		if i == 0 {
			c.dirtyQ[0] = nil
			c.dirtyQ = c.dirtyQ[1:]
		} else {
			c.dirtyQ = append(c.dirtyQ[:i], c.dirtyQ[i+1:]...)
		}
		e.queued = false
		return e
	}
	return nil
}

// uploader stores dirty blocks until Close tells it to quit.
func (c *Cache) uploader() {
	defer c.workers.Done()
	snapshot := make([]byte, c.bs)
	var scratch []byte
	c.mu.Lock()
	defer c.mu.Unlock()
	for !c.quit {
		e := c.nextUpload(time.Now())
		if e == nil {
			c.cond.Wait()
			continue
		}
		e.uploading = true
		e.rewritten = false
		zero := e.data == nil || isZero(e.data, c.zero)
		if zero && e.data != nil { // keep zeros as nil: no memory, a delete
			c.putBuf(e.data)
			e.data = nil
			c.buffers--
			c.dirtyBytes -= int64(c.bs)
		} else if !zero {
			copy(snapshot, e.data)
		}
		skip := zero && c.knownAbsent(e.index)
		c.inflight++
		c.updateGauges()
		c.mu.Unlock()

		var err error
		ctx, cancel := context.WithTimeout(c.ctx, requestTimeout)
		switch {
		case skip:
			c.st.ZeroWritesSkipped.Add(1)
		case zero:
			err = c.be.DeleteBlock(ctx, e.index)
		default:
			scratch, err = c.be.WriteBlock(ctx, e.index, snapshot, scratch)
		}
		cancel()

		c.mu.Lock()
		c.inflight--
		c.finishUpload(e, zero, err)
	}
}

// finishUpload records the outcome of one upload. Requires c.mu.
func (c *Cache) finishUpload(e *entry, zero bool, err error) {
	e.uploading = false
	now := time.Now()
	defer func() {
		c.updateGauges()
		c.cond.Broadcast()
	}()
	if err != nil {
		c.st.Errors.Add(1)
		c.st.Retries.Add(1)
		c.noteError(err)
		e.failures++
		// A failed write may still have created the object (say, a timeout
		// after the store committed it), so the block is no longer known
		// absent: if it is zeroed before a retry succeeds, it must be
		// deleted, not skipped.
		if !zero && c.present.set(e.index) {
			c.st.KnownBlocks.Add(1)
		}
		e.retryAt = now.Add(min(100*time.Millisecond<<min(e.failures, 7), 10*time.Second))
		e.rewritten = false // all writes since e.epoch are still unstored
		c.log.Warn("storing block failed; will retry", "block", e.index, "attempt", e.failures, "err", err)
		c.enqueue(e)
		return
	}
	c.lastStored = now
	if e.failures > 0 {
		c.log.Info("block stored after retries", "block", e.index, "attempts", e.failures+1)
		e.failures = 0
		c.retryNow() // the store is back: other failed blocks need not wait out their backoff
	}
	if zero {
		if c.present.clear(e.index) {
			c.st.KnownBlocks.Add(-1)
		}
	} else if c.present.set(e.index) {
		c.st.KnownBlocks.Add(1)
	}
	c.drainEpoch(e.epoch)
	if e.rewritten {
		e.rewritten = false
		e.epoch = e.rewriteEpoch
		c.pending[e.epoch]++
		e.dirtyAt = now
		c.enqueue(e)
		return
	}
	e.dirty = false
	e.ready = false
	c.dirtyCount--
	if e.data != nil {
		c.dirtyBytes -= int64(c.bs)
		c.clean.Add(e.index, e)
		c.evict()
	} else {
		delete(c.entries, e.index) // a stored zero block needs no memory
	}
}

func (c *Cache) drainEpoch(epoch uint64) {
	if c.pending[epoch]--; c.pending[epoch] <= 0 {
		delete(c.pending, epoch)
	}
}

// drained reports whether every write of flush epoch target or earlier is
// stored. Requires c.mu.
func (c *Cache) drained(target uint64) bool {
	for epoch := range c.pending {
		if epoch <= target {
			return false
		}
	}
	return true
}

// stalled returns an error if blocks are waiting but nothing has been
// stored for FlushTimeout, counting from since (the start of the Flush or
// Close that asks). Requires c.mu.
func (c *Cache) stalled(now, since time.Time) error {
	last := c.lastStored
	if since.After(last) {
		last = since
	}
	if now.Sub(last) <= c.cfg.FlushTimeout {
		return nil
	}
	lastErr, _ := c.st.LastError.Load().(string)
	if lastErr == "" {
		lastErr = fmt.Sprintf("none yet; %d requests retried so far", c.st.Retries.Load())
	}
	return fmt.Errorf("nothing could be stored for %s (%d dirty blocks waiting; last error: %s)",
		now.Sub(last).Round(100*time.Millisecond), c.dirtyCount, lastErr)
}

// retryNow makes every failed block eligible for an immediate retry: a new
// Flush or Close should not wait out old backoffs. Requires c.mu.
func (c *Cache) retryNow() {
	for _, e := range c.dirtyQ {
		e.retryAt = time.Time{}
	}
}

// Flush is the durability barrier behind fsync: it returns nil only once
// every block that was dirty when it was called is in the store. If nothing
// can be stored for FlushTimeout it returns an error; the blocks stay dirty
// and keep being retried.
func (c *Cache) Flush(ctx context.Context) error {
	c.st.Fsyncs.Add(1)
	c.mu.Lock()
	defer c.mu.Unlock()
	target := c.epoch
	c.epoch++
	c.flushers++
	defer func() { c.flushers-- }()
	start := time.Now()
	c.retryNow()
	c.cond.Broadcast()
	for !c.drained(target) {
		if err := c.stalled(time.Now(), start); err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if c.quit {
			return fmt.Errorf("cache closed with %d blocks unstored", c.dirtyCount)
		}
		c.cond.Wait()
	}
	return nil
}

// Close stores every dirty block and stops the workers. It returns an error
// naming how many blocks could not be stored if nothing could be stored for
// FlushTimeout.
func (c *Cache) Close() error {
	c.mu.Lock()
	if c.quit {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	start := time.Now()
	c.retryNow()
	c.cond.Broadcast()
	var err error
	for c.dirtyCount > 0 {
		if err = c.stalled(time.Now(), start); err != nil {
			err = fmt.Errorf("%d dirty blocks could not be stored: %w", c.dirtyCount, err)
			break
		}
		c.cond.Wait()
	}
	c.quit = true
	c.cond.Broadcast()
	c.mu.Unlock()
	c.cancel() // whatever is still in flight has been given up on
	close(c.stop)
	c.workers.Wait()
	return err
}

// listBlocks learns which blocks the store holds, so that reads of blocks
// never written cost no request.
func (c *Cache) listBlocks() {
	var found presence
	var err error
	for attempt := 1; attempt <= 5; attempt++ {
		found = make(presence)
		err = c.be.ListBlocks(context.Background(), func(i uint64) { found.set(i) })
		if err == nil {
			break
		}
		c.st.Retries.Add(1)
		c.log.Warn("listing stored blocks failed", "attempt", attempt, "err", err)
		select {
		case <-c.stop:
			return
		case <-time.After(time.Duration(attempt) * time.Second):
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		c.st.Errors.Add(1)
		c.noteError(err)
		c.log.Error("listing stored blocks failed; every uncached read will ask the store", "err", err)
		c.listingFailed = true
	} else {
		for w, bits := range found {
			c.present[w] |= bits
		}
		c.listingDone = true
		c.st.ListingDone.Store(true)
	}
	var n int64
	for _, bits := range c.present {
		for ; bits != 0; bits &= bits - 1 {
			n++
		}
	}
	c.st.KnownBlocks.Store(n)
	c.cond.Broadcast()
}

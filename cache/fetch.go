package cache

import (
	"context"
	"errors"
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

// Package stats holds the counters every layer bumps and the mount's
// "stats" file prints. Counters are atomics so any goroutine may update
// them without locks; gauges (dirty bytes, cached blocks) are set by the
// cache, which owns them.
package stats

import (
	"fmt"
	"strings"
	"sync/atomic"
)

// Counters for one mounted volume.
type Counters struct {
	ReadRequests, WriteRequests atomic.Int64 // FUSE requests on the file
	ReadBytes, WriteBytes       atomic.Int64
	CacheHits, CacheMisses      atomic.Int64
	ZeroReads                   atomic.Int64 // blocks read as zeros with no request
	ReadAheads                  atomic.Int64
	ReadWaits, ReadWaitNanos    atomic.Int64 // reads that waited for a download, and for how long
	Downloads, DownloadBytes    atomic.Int64
	Uploads, UploadBytes        atomic.Int64
	Deletes                     atomic.Int64
	ZeroWritesSkipped           atomic.Int64 // zero blocks that needed no request
	Retries                     atomic.Int64 // SDK retries plus cache-level upload retries
	Errors                      atomic.Int64 // failed requests seen by the cache
	CorruptBlocks               atomic.Int64
	Fsyncs                      atomic.Int64
	DirtyBytes, DirtyBlocks     atomic.Int64
	CachedBlocks, InflightPuts  atomic.Int64
	KnownBlocks                 atomic.Int64 // blocks known to exist in the store
	ListingDone                 atomic.Bool
	LastError                   atomic.Value // string
}

// Format renders the counters as "name value" lines, stable for scripts.
func (c *Counters) Format() string {
	var b strings.Builder
	line := func(name string, v int64) { fmt.Fprintf(&b, "%-20s %d\n", name, v) }
	line("read_requests", c.ReadRequests.Load())
	line("read_bytes", c.ReadBytes.Load())
	line("write_requests", c.WriteRequests.Load())
	line("write_bytes", c.WriteBytes.Load())
	line("cache_hits", c.CacheHits.Load())
	line("cache_misses", c.CacheMisses.Load())
	line("zero_reads", c.ZeroReads.Load())
	line("read_aheads", c.ReadAheads.Load())
	line("read_waits", c.ReadWaits.Load())
	line("read_wait_ms", c.ReadWaitNanos.Load()/1e6)
	line("downloads", c.Downloads.Load())
	line("download_bytes", c.DownloadBytes.Load())
	line("uploads", c.Uploads.Load())
	line("upload_bytes", c.UploadBytes.Load())
	line("deletes", c.Deletes.Load())
	line("zero_writes_skipped", c.ZeroWritesSkipped.Load())
	line("retries", c.Retries.Load())
	line("errors", c.Errors.Load())
	line("corrupt_blocks", c.CorruptBlocks.Load())
	line("fsyncs", c.Fsyncs.Load())
	line("dirty_bytes", c.DirtyBytes.Load())
	line("dirty_blocks", c.DirtyBlocks.Load())
	line("cached_blocks", c.CachedBlocks.Load())
	line("inflight_uploads", c.InflightPuts.Load())
	line("known_blocks", c.KnownBlocks.Load())
	done := int64(0)
	if c.ListingDone.Load() {
		done = 1
	}
	line("listing_done", done)
	if s, _ := c.LastError.Load().(string); s != "" {
		fmt.Fprintf(&b, "%-20s %s\n", "last_error", s)
	}
	return b.String()
}

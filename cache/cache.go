// Package cache is the write-back block cache between the FUSE file and the
// volume's block store. It turns byte-range reads and writes into whole-block
// downloads and uploads.
//
// Every cached block is an entry in one of these states:
//
//	state     data          in LRU  in dirty queue  meaning
//	loading   buffer        no      no              a download is filling it; readers and writers wait
//	clean     buffer        yes*    no              equal to the stored object
//	dirty     buffer or nil no      yes             newer than the store (nil data = all zeros: a delete)
//	uploading buffer or nil no      no              still dirty, with a snapshot being stored by one uploader
//
// Transitions: a miss creates a loading entry; load completion makes it clean
// (or drops it, on error). *A just-loaded entry that readers or writers wait
// for stays out of the LRU until one of them has used it, so it cannot be
// evicted first. A write makes an entry dirty. An uploader takes the
// oldest eligible dirty entry, copies a snapshot, and stores it outside the
// lock; on success the entry becomes clean, unless it was written again during
// the upload, in which case it stays dirty and is queued again.
//
// Invariants:
//   - A block never has two uploads in flight (the uploading flag).
//   - Dirty entries are never evicted and never dropped while mounted: a
//     failed upload is retried with backoff until it succeeds.
//   - A failed block read is tried again with backoff for up to
//     Config.FlushTimeout (at once for a corrupt object) before it fails the
//     reader: a failed read is an I/O error for the filesystem above, never
//     zeros or stale bytes.
//   - Dirty bytes never exceed Config.MaxDirty: writers wait for uploads.
//     Clean entries are evicted in LRU order to keep the cache within
//     Config.Size, so memory is bounded by configuration, not by the data.
//   - An all-zero block is never uploaded: it becomes a delete, and a delete
//     of a block the store is known not to hold costs no request.
//   - Flush (fsync) returns only when every block dirty at the time of the
//     call has been stored. It tracks this with flush epochs: each dirty entry
//     is counted in the epoch of its oldest unstored write, and Flush waits
//     until every epoch up to its own has drained.
//   - Until the background listing completes, a block missing from the cache
//     is fetched (a missing object reads as zeros); afterwards, blocks the
//     listing did not find and we never wrote are zeros with no request.
package cache

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"

	"github.com/s3blk/s3blk/stats"
)

// Backend is the block store the cache writes back to (volume.Volume).
type Backend interface {
	BlockSize() int
	ReadBlock(ctx context.Context, index uint64, dst []byte) (found bool, err error)
	WriteBlock(ctx context.Context, index uint64, data []byte, scratch []byte) ([]byte, error)
	DeleteBlock(ctx context.Context, index uint64) error
	ListBlocks(ctx context.Context, fn func(index uint64)) error
}

// Config sets the cache's bounds. Zero values take the defaults.
type Config struct {
	Size       int64         // bytes of block data held in memory (default 256 MiB)
	MaxDirty   int64         // bytes of dirty blocks before writers wait (default 3/4 of Size)
	Uploaders  int           // parallel uploads (default 16)
	ReadAhead  int           // blocks fetched ahead of a sequential reader (default 16)
	WriteDelay time.Duration // how long a partly written block waits before upload (default 200ms)
	// FlushTimeout is how long S3 may fail before the filesystem hears of
	// it: Flush and Close fail when nothing could be stored for this long,
	// and a read fails when its block could not be fetched for this long
	// (default 5m).
	FlushTimeout time.Duration
	ReadOnly     bool
	Logger       *slog.Logger
}

// ErrReadOnly is returned by writes to a read-only cache.
var ErrReadOnly = errors.New("volume is mounted read-only")

// ErrOutOfRange is returned for I/O past the end of the volume.
var ErrOutOfRange = errors.New("I/O past the end of the volume")

type entry struct {
	index   uint64
	data    []byte // nil means all zeros
	loading bool
	loadErr error
	waiters int // readers and writers waiting for the load

	dirty        bool
	queued       bool
	uploading    bool
	epoch        uint64 // flush epoch of the oldest unstored write
	rewritten    bool   // written while uploading
	rewriteEpoch uint64
	ready        bool      // written to its end: upload without waiting for WriteDelay
	dirtyAt      time.Time // when it became dirty
	failures     int
	retryAt      time.Time
}

// Cache is a write-back LRU block cache. All methods are safe for
// concurrent use.
type Cache struct {
	be      Backend
	cfg     Config
	bs      int
	nblocks uint64
	st      *stats.Counters
	log     *slog.Logger
	zero    []byte // one block of zeros, never written

	mu      sync.Mutex
	cond    *sync.Cond
	entries map[uint64]*entry
	clean   *simplelru.LRU[uint64, *entry]
	buffers int // entries holding a data buffer (loading, clean or dirty)

	dirtyQ        []*entry
	dirtyBytes    int64
	dirtyCount    int
	epoch         uint64
	pending       map[uint64]int // flush epoch -> dirty entries counted in it
	flushers      int            // Flush calls waiting: all dirty entries are urgent
	inflight      int
	present       presence
	listingDone   bool
	listingFailed bool
	closed        bool      // Close has begun: flush everything
	quit          bool      // workers must exit
	lastStored    time.Time // when an upload or delete last succeeded

	lastReadEnd int64
	pool        sync.Pool
	stop        chan struct{}
	ctx         context.Context // cancelled when Close gives up: aborts requests in flight
	cancel      context.CancelFunc
	workers     sync.WaitGroup
}

// New returns a cache over be for a volume of nblocks blocks. Call Start to
// begin uploading and listing, and Close to flush and stop.
func New(be Backend, nblocks uint64, cfg Config, st *stats.Counters) *Cache {
	bs := be.BlockSize()
	if cfg.Size <= 0 {
		cfg.Size = 256 << 20
	}
	if cfg.Size < 4*int64(bs) {
		cfg.Size = 4 * int64(bs)
	}
	if cfg.MaxDirty <= 0 || cfg.MaxDirty > cfg.Size {
		// Three quarters: a region of random writes that fits the cache
		// is absorbed instead of throttled to the upload rate (fio 4K
		// random writes over 128 MiB with a 256 MiB cache: 850 IOPS at
		// one half, 6,200 at three quarters), and a quarter is left for
		// reads and read-ahead.
		cfg.MaxDirty = cfg.Size / 4 * 3
	}
	if cfg.MaxDirty < int64(bs) {
		cfg.MaxDirty = int64(bs)
	}
	if cfg.Uploaders <= 0 {
		cfg.Uploaders = 16
	}
	if cfg.ReadAhead < 0 {
		cfg.ReadAhead = 0
	} else if cfg.ReadAhead == 0 {
		cfg.ReadAhead = 16
	}
	if maxRA := int(cfg.Size/int64(bs)) / 4; cfg.ReadAhead > maxRA {
		cfg.ReadAhead = maxRA
	}
	if cfg.WriteDelay == 0 {
		cfg.WriteDelay = 200 * time.Millisecond
	}
	if cfg.FlushTimeout == 0 {
		cfg.FlushTimeout = 5 * time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if st == nil {
		st = new(stats.Counters)
	}
	lru, _ := simplelru.NewLRU[uint64, *entry](1<<30, nil) // we evict by hand
	c := &Cache{
		be: be, cfg: cfg, bs: bs, nblocks: nblocks, st: st, log: cfg.Logger,
		zero:    make([]byte, bs),
		entries: make(map[uint64]*entry),
		clean:   lru,
		pending: make(map[uint64]int),
		present: make(presence),
		stop:    make(chan struct{}),
	}
	c.cond = sync.NewCond(&c.mu)
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.pool.New = func() any { b := make([]byte, bs); return &b }
	return c
}

// Config returns the effective configuration.
func (c *Cache) Config() Config { return c.cfg }

// Size is the volume size in bytes.
func (c *Cache) Size() int64 { return int64(c.nblocks) * int64(c.bs) }

// Start launches the uploaders, the timer that wakes them, and the
// background listing of stored blocks.
func (c *Cache) Start() {
	for i := 0; i < c.cfg.Uploaders; i++ {
		c.workers.Add(1)
		go c.uploader()
	}
	c.workers.Add(1)
	go c.ticker()
	go c.listBlocks()
}

func (c *Cache) getBuf() []byte { return *(c.pool.Get().(*[]byte)) }

func (c *Cache) putBuf(b []byte) {
	if cap(b) >= c.bs {
		b = b[:c.bs]
		c.pool.Put(&b)
	}
}

func isZero(b []byte, zero []byte) bool { return string(b) == string(zero[:len(b)]) }

// knownAbsent reports whether the store certainly holds no object for index.
// Requires c.mu.
func (c *Cache) knownAbsent(index uint64) bool {
	return c.listingDone && !c.present.has(index)
}

// evict drops least recently used clean entries while the cache holds more
// buffers than its size allows. Requires c.mu.
func (c *Cache) evict() {
	limit := int(c.cfg.Size / int64(c.bs))
	for c.buffers > limit {
		_, e, ok := c.clean.RemoveOldest()
		if !ok {
			break
		}
		delete(c.entries, e.index)
		if e.data != nil {
			c.buffers--
			c.putBuf(e.data)
			e.data = nil
		}
	}
	c.st.CachedBlocks.Store(int64(len(c.entries)))
}

func (c *Cache) noteError(err error) { c.st.LastError.Store(err.Error()) }

// blockRange calls fn for each block touched by [off, off+n), with the
// offset inside the block and the slice of the caller's buffer.
func (c *Cache) blockRange(p []byte, off int64, fn func(index uint64, inBlock int, part []byte) error) error {
	for len(p) > 0 {
		index := uint64(off / int64(c.bs))
		inBlock := int(off % int64(c.bs))
		n := min(c.bs-inBlock, len(p))
		if err := fn(index, inBlock, p[:n]); err != nil {
			return err
		}
		p, off = p[n:], off+int64(n)
	}
	return nil
}

func (c *Cache) clip(p []byte, off int64) ([]byte, error) {
	if off < 0 {
		return nil, ErrOutOfRange
	}
	size := c.Size()
	if off >= size {
		return p[:0], nil
	}
	if rest := size - off; int64(len(p)) > rest {
		p = p[:rest]
	}
	return p, nil
}

// WriteAt writes p at off. It returns once the data is in the cache; Flush
// makes it durable.
func (c *Cache) WriteAt(p []byte, off int64) (int, error) {
	if c.cfg.ReadOnly {
		return 0, ErrReadOnly
	}
	if off < 0 || off+int64(len(p)) > c.Size() {
		return 0, ErrOutOfRange
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	err := c.blockRange(p, off, func(index uint64, inBlock int, part []byte) error {
		return c.writeBlock(index, inBlock, part, false)
	})
	if err != nil {
		return 0, err
	}
	return len(p), nil
}

// PunchHole zeroes [off, off+length): whole blocks become deletes, partial
// blocks are written with zeros.
func (c *Cache) PunchHole(off, length int64) error {
	if c.cfg.ReadOnly {
		return ErrReadOnly
	}
	if off < 0 || length < 0 {
		return ErrOutOfRange
	}
	end := min(off+length, c.Size())
	c.mu.Lock()
	defer c.mu.Unlock()
	// Wait for the listing, so that punching a never-written range (mkfs
	// discards the whole device) costs no requests at all.
	for !c.listingDone && !c.listingFailed && !c.closed {
		c.cond.Wait()
	}
	for off < end {
		index := uint64(off / int64(c.bs))
		inBlock := int(off % int64(c.bs))
		n := int(min(int64(c.bs-inBlock), end-off))
		if err := c.writeBlock(index, inBlock, c.zero[:n], true); err != nil {
			return err
		}
		off += int64(n)
	}
	return nil
}

// writeBlock applies part at inBlock of block index. zeros says part is
// known to be all zeros. Requires c.mu; may wait.
func (c *Cache) writeBlock(index uint64, inBlock int, part []byte, zeros bool) error {
	whole := inBlock == 0 && len(part) == c.bs
	if !zeros && whole {
		zeros = isZero(part, c.zero)
	}
	for {
		e := c.entries[index]
		if e == nil {
			if zeros && c.knownAbsent(index) {
				c.st.ZeroWritesSkipped.Add(1)
				return nil // already zeros in the store
			}
			if !whole && !c.knownAbsent(index) {
				c.startLoad(index) // read-modify-write: fetch once
				c.st.CacheMisses.Add(1)
				continue
			}
			if !c.dirtyRoom(nil, zeros && whole) {
				c.cond.Wait()
				continue
			}
			e = &entry{index: index}
			c.entries[index] = e
			if !(zeros && whole) {
				e.data = c.getBuf()
				clearAround(e.data, inBlock, len(part)) // apply writes the rest
				c.buffers++
			}
		} else if e.loading {
			if err := c.waitLoad(e); err != nil {
				return err
			}
			continue
		} else if !c.dirtyRoom(e, zeros && whole) {
			c.cond.Wait()
			continue
		}
		c.apply(e, inBlock, part, zeros && whole)
		c.markDirty(e, inBlock+len(part) == c.bs)
		c.evict()
		return nil
	}
}

// dirtyRoom reports whether e (nil for a new entry) may take the write now
// without passing the dirty bounds. noData says the write leaves the block
// without a buffer (a whole-block zero write). Requires c.mu.
func (c *Cache) dirtyRoom(e *entry, noData bool) bool {
	if c.closed {
		return true // Close is flushing; let stragglers through
	}
	needEntry := e == nil || !e.dirty
	needBytes := !noData && (e == nil || !e.dirty || e.data == nil)
	if needEntry && c.dirtyCount >= maxDirtyEntries {
		return false
	}
	return !needBytes || c.dirtyBytes+int64(c.bs) <= c.cfg.MaxDirty
}

// clearAround zeroes a recycled block buffer except [off, off+n), which the
// caller is about to write: a whole-block write clears nothing.
func clearAround(buf []byte, off, n int) {
	clear(buf[:off])
	clear(buf[off+n:])
}

// maxDirtyEntries bounds pending deletes (entries without data) too.
const maxDirtyEntries = 1 << 16

// apply writes part into e. Requires c.mu.
func (c *Cache) apply(e *entry, inBlock int, part []byte, wholeZero bool) {
	if wholeZero {
		if e.data != nil {
			c.putBuf(e.data)
			e.data = nil
			c.buffers--
			if e.dirty {
				c.dirtyBytes -= int64(c.bs)
			}
		}
		return
	}
	if e.data == nil {
		e.data = c.getBuf()
		clearAround(e.data, inBlock, len(part))
		c.buffers++
		if e.dirty {
			c.dirtyBytes += int64(c.bs)
		}
	}
	copy(e.data[inBlock:], part)
}

// markDirty records a write to e. Requires c.mu.
func (c *Cache) markDirty(e *entry, toEnd bool) {
	if !e.dirty {
		c.clean.Remove(e.index)
		e.dirty = true
		e.epoch = c.epoch
		e.dirtyAt = time.Now()
		c.pending[e.epoch]++
		c.dirtyCount++
		if e.data != nil {
			c.dirtyBytes += int64(c.bs)
		}
	} else if e.uploading && !e.rewritten {
		e.rewritten = true
		e.rewriteEpoch = c.epoch
	}
	if toEnd {
		e.ready = true
	}
	if !e.queued && !e.uploading {
		e.queued = true
		c.dirtyQ = append(c.dirtyQ, e)
	}
	c.updateGauges()
	c.cond.Broadcast()
}

func (c *Cache) updateGauges() {
	c.st.DirtyBytes.Store(c.dirtyBytes)
	c.st.DirtyBlocks.Store(int64(c.dirtyCount))
	c.st.InflightPuts.Store(int64(c.inflight))
}

package stream

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"runtime/debug"
	"strconv"
	"sync"
	"time"

	"github.com/s3blk/s3blk/blockstore"
	"github.com/s3blk/s3blk/crypto"
)

// ErrExists means Put found a complete stream and was not told to replace it.
var ErrExists = errors.New("already holds a complete stream")

// putter is one Put in progress.
type putter struct {
	cfg   *Config
	store blockstore.Store
	codec *chunkCodec
	bufs  chan []byte // free chunk buffers; Put never allocates more
	// spares are the compressors' output buffers. A compressed chunk swaps
	// its input buffer for a spare, so the count of buffers never changes.
	spares  chan []byte
	bufSize int
	digest  *streamDigest

	// Written by the reader goroutine, read after it is done.
	size  int64
	count uint64

	mu     sync.Mutex
	chunks []ChunkInfo // by index; Stored == 0 until stored
}

type job struct {
	index uint64
	buf   []byte
	n     int
}

// Put reads r to its end and stores it as the stream in store, then writes
// the manifest and returns it. On any error (reading r included: a failing
// producer must make Put fail) no manifest is written and the error says
// the stream is INCOMPLETE.
func Put(ctx context.Context, store blockstore.Store, r io.Reader, cfg Config) (*Manifest, error) {
	if err := cfg.normalize(); err != nil {
		return nil, err
	}
	created := time.Now().UTC()
	if err := checkPutTarget(ctx, store, cfg.Force); err != nil {
		return nil, err
	}
	m := &Manifest{
		Format: FormatName, Version: FormatVersion, Created: created, Host: cfg.Host,
		ChunkSize: cfg.ChunkSize, Compression: CompressionZstd, Encryption: EncryptionNone,
		Digest: Digest{Algorithm: DigestSHA256},
	}
	var id [idSize]byte
	rand.Read(id[:])
	m.StreamID = hex.EncodeToString(id[:])
	if cfg.NoCompression {
		m.Compression = CompressionNone
	}
	p := &putter{cfg: &cfg, store: store, codec: &chunkCodec{id: id, compress: !cfg.NoCompression}}
	var (
		master    crypto.Key
		digestKey []byte
		err       error
	)
	if !cfg.NoEncryption {
		if master, err = newStreamKey(m, id, cfg.Cipher, cfg.Passphrase); err != nil {
			return nil, err
		}
		if p.codec.aead, err = master.NewDataAEAD(m.Encryption, crypto.PurposeStreamChunk, id[:]); err != nil {
			return nil, err
		}
		digestKey = master.Derive(crypto.PurposeStreamDigest, id[:])
	}
	if p.digest, err = newStreamDigest(m.Digest.Algorithm, digestKey); err != nil {
		return nil, err
	}
	// From here on, an error leaves the stream INCOMPLETE.
	incomplete := func(err error) error {
		return fmt.Errorf("%w; %s is left INCOMPLETE (no manifest)", err, store.Describe())
	}
	if cfg.Force {
		if err := retry(ctx, &cfg, "deleting the old manifest", func() error { return store.Delete(ctx, ManifestKey) }); err != nil {
			return nil, fmt.Errorf("%s: %w", store.Describe(), err)
		}
	}
	if err := p.run(ctx, r); err != nil {
		return nil, incomplete(err)
	}
	if err := deleteChunksFrom(ctx, store, p.count, &cfg); err != nil {
		return nil, incomplete(fmt.Errorf("deleting leftover chunks: %w", err))
	}
	m.Size, m.Chunks = p.size, p.chunks
	m.Digest.Value = p.digest.sum()
	data, err := m.seal(&master)
	if err != nil {
		return nil, incomplete(err)
	}
	if err := putManifest(ctx, store, data, &cfg); err != nil {
		return nil, incomplete(err)
	}
	return m, nil
}

// newStreamKey makes a fresh master key, wraps it with the passphrase into
// m, and gives back the memory Argon2id used before the chunk buffers are
// allocated, so that the two never add up in the peak.
func newStreamKey(m *Manifest, id [idSize]byte, cipher string, passphrase func() ([]byte, error)) (crypto.Key, error) {
	m.Encryption = cipher
	m.Digest.Algorithm = encryptedDigest
	if passphrase == nil {
		return crypto.Key{}, errors.New("encryption needs a passphrase")
	}
	pw, err := passphrase()
	if err != nil {
		return crypto.Key{}, err
	}
	master, err := crypto.NewKey()
	if err != nil {
		return master, err
	}
	w, err := crypto.Wrap(&master, pw, id[:])
	if err != nil {
		return master, err
	}
	m.Key = &w
	debug.FreeOSMemory()
	return master, nil
}

// checkPutTarget refuses a volume, and a complete stream unless force.
func checkPutTarget(ctx context.Context, store blockstore.Store, force bool) error {
	if vol, err := exists(ctx, store, VolumeHeaderKey); err != nil {
		return err
	} else if vol {
		return fmt.Errorf("%s %w", store.Describe(), ErrVolume)
	}
	data, err := blockstore.GetBuffer(ctx, store, ManifestKey, nil, maxManifestSize)
	tooLarge := errors.Is(err, blockstore.ErrTooLarge) // a manifest, if unreadable
	if errors.Is(err, blockstore.ErrNotFound) || ((err == nil || tooLarge) && force) {
		return nil
	}
	if err != nil && !tooLarge {
		return blockstore.Explain(err)
	}
	what := ""
	if old, err := ParseManifest(data); err == nil {
		what = fmt.Sprintf(" (%d bytes, created %s)", old.Size, old.Created.Local().Format(time.RFC3339))
	}
	return fmt.Errorf("%s %w%s: use --force to replace it", store.Describe(), ErrExists, what)
}

// putManifest creates the manifest. (A create that S3 applied but whose
// answer was lost is recognised by PutIfAbsent itself: ErrExists means
// another writer's manifest.)
func putManifest(ctx context.Context, store blockstore.Store, data []byte, cfg *Config) error {
	return retry(ctx, cfg, "writing the manifest", func() error {
		err := store.PutIfAbsent(ctx, ManifestKey, data)
		if errors.Is(err, blockstore.ErrExists) {
			return errPermanent{errors.New("another put wrote a manifest meanwhile")}
		}
		return err
	})
}

// run reads r into the fixed buffers and stores the chunks in parallel.
func (p *putter) run(ctx context.Context, r io.Reader) error {
	// The pools start with nil buffers, allocated on first use, so that a
	// short stream costs only what it uses.
	plan := newBufferPlan(p.cfg.ChunkSize, p.codec.aead != nil, p.codec.compress, p.cfg.Concurrency)
	p.bufSize = plan.size
	p.bufs = make(chan []byte, plan.buffers)
	for range plan.buffers - plan.spares {
		p.bufs <- nil
	}
	p.spares = make(chan []byte, plan.spares)
	for range plan.spares {
		p.spares <- nil
	}

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	jobs := make(chan job)
	readErr := make(chan error, 1)
	// The reader may block in Read forever (a stuck producer): on
	// cancellation Put returns without waiting for it.
	go func() {
		err := p.read(ctx, r, jobs)
		if err != nil {
			cancel(err)
		}
		readErr <- err
	}()
	var wg sync.WaitGroup
	for range p.cfg.Concurrency {
		wg.Go(func() {
			if err := p.work(ctx, jobs); err != nil {
				cancel(err)
			}
		})
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return err
	}
	// Every worker saw jobs closed: the reader has finished.
	if err := <-readErr; err != nil {
		return err
	}
	if uint64(len(p.chunks)) != p.count {
		return fmt.Errorf("internal error: %d chunks read, %d recorded", p.count, len(p.chunks))
	}
	for i, c := range p.chunks {
		if c.Stored == 0 { // never happens: the check behind "never skip"
			return fmt.Errorf("internal error: chunk %d was not stored", i)
		}
	}
	return nil
}

// read cuts r into chunks and hands them to the workers, in order.
func (p *putter) read(ctx context.Context, r io.Reader, jobs chan<- job) error {
	defer close(jobs)
	head := p.codec.head()
	for index := uint64(0); ; index++ {
		buf, err := p.take(ctx, p.bufs)
		if err != nil {
			return err
		}
		n, eof, err := p.readChunk(r, buf[head:head+p.cfg.ChunkSize])
		if err != nil {
			return fmt.Errorf("reading the input: %w", err)
		}
		if n == 0 {
			p.bufs <- buf
			return nil
		}
		if index >= maxChunks {
			return fmt.Errorf("the input is longer than %d chunks of %d bytes: use a larger --chunk-size", maxChunks, p.cfg.ChunkSize)
		}
		p.digest.endChunk()
		p.size += int64(n)
		p.count = index + 1
		if p.cfg.Progress != nil {
			p.cfg.Progress(int64(n))
		}
		select {
		case jobs <- job{index: index, buf: buf, n: n}:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
		if eof { // the last, partial chunk
			return nil
		}
	}
}

// readChunk fills chunk from r, as io.ReadFull does, and adds what each
// Read returns to the stream digest at once, while it is in the cache. It
// returns the bytes read and whether r ended; a chunk cut short by the end
// of r is the last.
func (p *putter) readChunk(r io.Reader, chunk []byte) (n int, eof bool, err error) {
	for n < len(chunk) {
		m, err := r.Read(chunk[n:])
		p.digest.addPart(chunk[n : n+m])
		n += m
		if err == io.EOF {
			return n, true, nil
		}
		if err != nil {
			return n, false, err
		}
	}
	return n, false, nil
}

// take returns a buffer from pool, allocating it on its first use.
func (p *putter) take(ctx context.Context, pool chan []byte) ([]byte, error) {
	select {
	case buf := <-pool:
		if buf == nil {
			buf = make([]byte, p.bufSize)
		}
		return buf, nil
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
}

func (p *putter) work(ctx context.Context, jobs <-chan job) error {
	for {
		select {
		case j, ok := <-jobs:
			if !ok {
				return nil
			}
			if err := p.storeChunk(ctx, j); err != nil {
				return err
			}
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
}

// storeChunk encodes and uploads one chunk, retrying until it is stored or
// the retries are spent. It always gives its buffers back.
func (p *putter) storeChunk(ctx context.Context, j job) error {
	buf := j.buf
	defer func() { p.bufs <- buf }()
	var obj []byte
	if p.codec.compress {
		spare, err := p.take(ctx, p.spares)
		if err != nil {
			return err
		}
		obj = p.codec.encode(j.index, buf, j.n, spare)
		p.spares <- buf
		buf = spare
	} else {
		obj = p.codec.encode(j.index, buf, j.n, nil)
	}
	info := ChunkInfo{Size: j.n, Stored: len(obj), SHA256: sha256.Sum256(obj)}
	if err := throttle(ctx, p.cfg.Limiter, len(obj)); err != nil {
		return err
	}
	key := ChunkKey(j.index)
	err := retry(ctx, p.cfg, "storing chunk "+strconv.FormatUint(j.index, 10), func() error {
		return blockstore.PutSHA256(ctx, p.store, key, obj, info.SHA256)
	})
	if err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if need := int(j.index) + 1 - len(p.chunks); need > 0 {
		p.chunks = append(p.chunks, make([]ChunkInfo, need)...)
	}
	p.chunks[j.index] = info
	return nil
}

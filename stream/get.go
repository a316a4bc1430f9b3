package stream

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"

	"github.com/s3blk/s3blk/blockstore"
	"github.com/s3blk/s3blk/crypto"
)

// Reader reads one complete stream: its manifest validated and, if the
// stream is encrypted, its key unwrapped and the manifest's MAC checked.
type Reader struct {
	store     blockstore.Store
	cfg       Config
	m         *Manifest
	codec     *chunkCodec
	digestKey []byte // nil: plain SHA-256
}

// Open reads and checks the manifest of the stream in store. A prefix
// without a manifest is ErrIncomplete (chunks exist), ErrVolume or
// ErrNoStream; a wrong passphrase is crypto.ErrWrongPassphrase.
func Open(ctx context.Context, store blockstore.Store, cfg Config) (*Reader, error) {
	if err := cfg.normalize(); err != nil {
		return nil, err
	}
	m, err := ReadManifest(ctx, store)
	if err != nil {
		return nil, err
	}
	master, err := m.unlock(cfg.Passphrase)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", store.Describe(), err)
	}
	r := &Reader{store: store, cfg: cfg, m: m, codec: &chunkCodec{id: m.ID(), compress: m.Compressed()}}
	if m.Encrypted() {
		id := m.ID()
		if r.codec.aead, err = master.NewDataAEAD(r.m.Encryption, crypto.PurposeStreamChunk, id[:]); err != nil {
			return nil, err
		}
		r.digestKey = master.Derive(crypto.PurposeStreamDigest, id[:])
		debug.FreeOSMemory() // give Argon2id's memory back before the window is allocated
	}
	return r, nil
}

// SetProgress sets the function called with the bytes written or checked.
func (r *Reader) SetProgress(fn func(n int64)) { r.cfg.Progress = fn }

// Manifest returns the stream's manifest.
func (r *Reader) Manifest() *Manifest { return r.m }

// OutputError is a failure of WriteTo after Written bytes went out: the
// output is incomplete or bad and must not be used.
type OutputError struct {
	Written int64
	Err     error
}

func (e *OutputError) Error() string {
	if e.Written == 0 {
		return e.Err.Error() + " (nothing was written)"
	}
	return fmt.Sprintf("%v; the output is INCOMPLETE or BAD: %d bytes were already written and must not be used", e.Err, e.Written)
}

func (e *OutputError) Unwrap() error { return e.Err }

// WriteTo writes the stream to w, every chunk checked before it is written,
// and checks the whole-stream digest at the end. Any error is an
// *OutputError.
func (r *Reader) WriteTo(ctx context.Context, w io.Writer) (int64, error) {
	var written int64
	// For an encrypted stream the AEAD tag authenticates the very bytes the
	// object's SHA-256 covers (and the SHA-256 list is only trusted through
	// the MAC under the same key), so get skips that hash; Verify checks both.
	err := r.each(ctx, !r.m.Encrypted(), func(i int, part []byte, err error) error {
		if err != nil {
			return err
		}
		n, err := w.Write(part)
		written += int64(n)
		if err != nil {
			return fmt.Errorf("writing the output: %w", err)
		}
		if r.cfg.Progress != nil {
			r.cfg.Progress(int64(n))
		}
		return nil
	})
	if err != nil {
		return written, &OutputError{Written: written, Err: fmt.Errorf("%s: %w", r.store.Describe(), err)}
	}
	return written, nil
}

// Verify reads and checks every chunk and the stream digest, writing
// nothing. bad (if not nil) is called for each bad chunk, in order. The
// error lists the bad chunks' indexes.
func (r *Reader) Verify(ctx context.Context, bad func(index int, err error)) error {
	var badIdx []string
	err := r.each(ctx, true, func(i int, part []byte, err error) error {
		if err != nil {
			if len(badIdx) < 100 {
				badIdx = append(badIdx, strconv.Itoa(i))
			}
			if bad != nil {
				bad(i, err)
			}
			return ctx.Err()
		}
		if r.cfg.Progress != nil {
			r.cfg.Progress(int64(len(part)))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("%s: %w", r.store.Describe(), err)
	}
	if len(badIdx) > 0 {
		more := ""
		if len(badIdx) == 100 {
			more = ", ..."
		}
		return fmt.Errorf("%s: %w: bad chunks: %s%s", r.store.Describe(), ErrCorrupt, strings.Join(badIdx, ", "), more)
	}
	return nil
}

// errDigest means every chunk was good but the stream digest differs.
var errDigest = fmt.Errorf("%w: the whole-stream digest does not match the manifest", ErrCorrupt)

// slot is one place in the reorder window.
type slot struct {
	ready   chan struct{} // a value when payload or err is set
	buf     []byte        // the object is downloaded into it, reused
	payload []byte        // the opened object: the chunk or its zstd frame
	err     error
}

// each downloads the chunks in parallel, at most concurrency+1 ahead of the
// consumer (the reorder window), and calls fn for every chunk in order:
// once for each part of its verified plaintext (a chunk is one part, or
// the raw blocks of a stored zstd frame), or once with the error that makes
// it bad. Every check of a chunk is done before fn sees any part of it. An
// error from fn stops everything and is returned. If every chunk was good,
// each checks the stream digest. hashObjects: check each object's SHA-256.
//
// Workers download into their slot's buffer and authenticate in place; the
// consumer decompresses (a stored frame needs no copy; a compressed chunk
// goes into one scratch buffer, allocated on first use), then adds each
// part to the digest just before fn writes it, while it is in the cache.
// Memory: (concurrency + 1) object buffers, plus one chunk if compressed.
func (r *Reader) each(ctx context.Context, hashObjects bool, fn func(i int, part []byte, err error) error) error {
	n := len(r.m.Chunks)
	window := r.cfg.Concurrency + 1
	slots := make([]slot, window)
	for i := range slots {
		slots[i].ready = make(chan struct{}, 1)
	}
	ctx, cancel := context.WithCancel(ctx)
	jobs := make(chan int, window) // never more than window outstanding: sends never block
	var wg sync.WaitGroup
	for range min(r.cfg.Concurrency, n) {
		wg.Go(func() {
			for i := range jobs {
				s := &slots[i%window]
				s.payload, s.err = r.fetch(ctx, i, s, hashObjects)
				s.ready <- struct{}{}
			}
		})
	}
	defer func() {
		cancel()
		close(jobs)
		wg.Wait()
	}()
	next := 0
	for ; next < n && next < window; next++ {
		jobs <- next
	}
	var scratch []byte
	var parts [][]byte
	digest, err := newStreamDigest(r.m.Digest.Algorithm, r.digestKey)
	if err != nil {
		return err
	}
	allGood := true
	for i := range n {
		s := &slots[i%window]
		<-s.ready
		err := s.err
		if err == nil {
			parts, err = r.codec.inflateParts(s.payload, r.m.Chunks[i].Size, &scratch, parts)
			if err != nil {
				err = fmt.Errorf("chunk %d (%s): %w", i, ChunkKey(uint64(i)), err)
			}
		}
		if err != nil {
			allGood = false
			if err := fn(i, nil, err); err != nil {
				return err
			}
		} else {
			for _, part := range parts {
				digest.addPart(part)
				if err := fn(i, part, nil); err != nil {
					return err
				}
			}
		}
		digest.endChunk()
		s.payload, s.err = nil, nil
		if next < n {
			jobs <- next
			next++
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if got := digest.sum(); allGood && !hmac.Equal(got[:], r.m.Digest.Value[:]) {
		return errDigest
	}
	return nil
}

// fetch downloads chunk i into the slot's buffer and checks it: object
// size and SHA-256, then authentication. It returns the payload. A chunk
// that fails a check is downloaded once more before it is called bad, in
// case the damage happened in transit.
func (r *Reader) fetch(ctx context.Context, i int, s *slot, hashObject bool) ([]byte, error) {
	info := r.m.Chunks[i]
	key := ChunkKey(uint64(i))
	if s.buf == nil {
		s.buf = make([]byte, maxStored(r.m.ChunkSize))
	}
	for attempt := 0; ; attempt++ {
		if err := throttle(ctx, r.cfg.Limiter, info.Stored); err != nil {
			return nil, err
		}
		var obj []byte
		err := retry(ctx, &r.cfg, "fetching chunk "+strconv.Itoa(i), func() error {
			var err error
			obj, err = blockstore.GetBuffer(ctx, r.store, key, s.buf, maxStored(r.m.ChunkSize))
			return err
		})
		switch {
		case errors.Is(err, blockstore.ErrNotFound):
			return nil, fmt.Errorf("chunk %d (%s) is missing", i, key)
		case err != nil:
			return nil, fmt.Errorf("chunk %d (%s): %w", i, key, err)
		}
		payload, err := r.check(i, obj, hashObject)
		if err == nil || attempt == 1 || ctx.Err() != nil {
			return payload, err
		}
		r.cfg.Logger.Warn("chunk failed its check; downloading it again", "chunk", i, "err", err)
	}
}

// check verifies the object of chunk i and returns its payload.
func (r *Reader) check(i int, obj []byte, hashObject bool) ([]byte, error) {
	info := r.m.Chunks[i]
	key := ChunkKey(uint64(i))
	switch {
	case len(obj) != info.Stored:
		return nil, fmt.Errorf("chunk %d (%s): %w: the object is %d bytes, the manifest says %d", i, key, ErrCorrupt, len(obj), info.Stored)
	case hashObject && sha256.Sum256(obj) != info.SHA256:
		return nil, fmt.Errorf("chunk %d (%s): %w: SHA-256 mismatch (damaged or replaced)", i, key, ErrCorrupt)
	}
	payload, err := r.codec.open(uint64(i), obj)
	if err != nil {
		return nil, fmt.Errorf("chunk %d (%s): %w", i, key, err)
	}
	return payload, nil
}

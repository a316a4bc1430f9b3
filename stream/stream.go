// Package stream stores a byte stream of any length (a pipe: tar, pg_dump,
// an LVM snapshot) as numbered chunk objects plus a manifest, and reads it
// back, in parallel and with memory bounded by the configuration.
//
// Layout under the stream's prefix (the stream name):
//
//	000000000000, 000000000001, ...   one object per chunk: the index in 12
//	                                  zero-padded decimal digits
//	manifest                          JSON, written LAST (see manifest.go)
//
// A chunk object is, by the stream's codecs:
//
//	no encryption, no compression  the chunk's bytes (so `cat` of the chunk
//	                               objects in key order is the stream)
//	compression only               one zstd frame of the chunk
//	encryption (+ compression)     nonce ‖ ciphertext ‖ tag of the
//	                               (compressed) chunk, sealed with the cipher
//	                               the manifest names (XAES-256-GCM or
//	                               XChaCha20-Poly1305), with associated
//	                               data binding the stream ID, the chunk index
//	                               and the codec flags (chunk.go)
//
// Invariants:
//   - A stream is complete if and only if its manifest exists. Put writes the
//     manifest last, with an atomic create, and only after every chunk is
//     stored; a failed or interrupted Put leaves no manifest (INCOMPLETE).
//     Put --force deletes the old manifest before it stores any chunk.
//   - Put never skips a chunk: a chunk is retried until it is stored or the
//     retry limit is reached, and then the whole Put fails. The last, partial
//     chunk is stored like every other. A stream of 0 bytes has 0 chunks.
//   - A complete stream's objects are exactly chunks 0..n-1 and the manifest:
//     leftovers of an earlier, longer stream are deleted before the manifest
//     is written.
//   - Get writes a chunk only after it passed every check (the object's
//     size, its SHA-256 or, if encrypted, its AEAD tag, which authenticates
//     the same bytes with a key; decompression; the chunk's size), strictly
//     in order, and checks the whole-stream digest at the end. Any failure
//     is an error that says how much output was already written. Verify
//     checks the SHA-256 of encrypted objects too.
//   - Memory is fixed by the configuration, never by the stream's length:
//     Put holds (concurrency + 1) chunk buffers, plus one to compress into;
//     Get holds a reorder window of concurrency + 1 objects, plus one chunk
//     to decompress into.
//   - A manifest is validated before it is used: unknown fields, a bad MAC,
//     or hostile sizes are errors, never panics or huge allocations.
package stream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"golang.org/x/time/rate"

	"github.com/s3blk/s3blk/blockstore"
	"github.com/s3blk/s3blk/crypto"
)

const (
	// ManifestKey is the manifest's key under the stream prefix.
	ManifestKey = "manifest"
	// VolumeHeaderKey is the key that marks a prefix as an s3blk volume.
	VolumeHeaderKey = "header"

	chunkKeyDigits = 12

	// MinChunkSize and MaxChunkSize bound --chunk-size. The maximum is the
	// codec's decompression limit.
	MinChunkSize = 4 << 10
	MaxChunkSize = 64 << 20
	// DefaultChunkSize and DefaultConcurrency were chosen by measurement
	// against MinIO (README, "Stream mode").
	DefaultChunkSize   = 8 << 20
	DefaultConcurrency = 4
	MaxConcurrency     = 256
	// DefaultRetries is how often one chunk is retried (after the S3 SDK's
	// own attempts) before the operation fails.
	DefaultRetries = 10
	// RetryForever makes retries unlimited (--retries forever).
	RetryForever = -1

	// maxChunks bounds a stream's chunk count, and so the manifest's size.
	maxChunks = 1 << 20
)

// ChunkKey returns the object key of chunk index.
func ChunkKey(index uint64) string {
	return fmt.Sprintf("%0*d", chunkKeyDigits, index)
}

// ParseChunkKey returns the index of a chunk key (exactly 12 digits).
func ParseChunkKey(key string) (uint64, bool) {
	if len(key) != chunkKeyDigits {
		return 0, false
	}
	for i := 0; i < len(key); i++ {
		if key[i] < '0' || key[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseUint(key, 10, 64)
	return n, err == nil
}

// Config is what Put, Get and Verify need beyond the store and the data.
// The zero value of each field means its default.
type Config struct {
	ChunkSize     int    // Put only; default DefaultChunkSize
	Concurrency   int    // parallel uploads or downloads; default DefaultConcurrency
	NoEncryption  bool   // Put only
	NoCompression bool   // Put only
	Cipher        string // Put only: the data cipher; default crypto.DefaultCipher()
	// Passphrase returns the passphrase. Put calls it when encrypting; Get
	// and Verify when the manifest says the stream is encrypted.
	Passphrase func() ([]byte, error)
	Retries    int  // retries per chunk: 0 = DefaultRetries, RetryForever, or N > 0
	NoRetries  bool // retry nothing (tests); overrides Retries
	Force      bool // Put: replace an existing complete stream
	// Limiter, if set, caps the object bytes per second sent or received.
	Limiter *rate.Limiter
	// Progress, if set, is called with the number of stream bytes read (Put)
	// or written (Get, Verify) as they go.
	Progress func(n int64)
	Host     string       // recorded in the manifest
	Logger   *slog.Logger // retries are logged at Warn; default: discard
	// RetryBase is the first retry's delay, doubling up to 30 s; default 1 s.
	RetryBase time.Duration
}

func (c *Config) normalize() error {
	if c.ChunkSize == 0 {
		c.ChunkSize = DefaultChunkSize
	}
	if c.ChunkSize < MinChunkSize || c.ChunkSize > MaxChunkSize {
		return fmt.Errorf("chunk size %d is out of range: use %dK to %dM", c.ChunkSize, MinChunkSize>>10, MaxChunkSize>>20)
	}
	if c.Cipher == "" {
		c.Cipher = crypto.DefaultCipher()
	}
	if !crypto.KnownCipher(c.Cipher) {
		return fmt.Errorf("unknown cipher %q (known: %s)", c.Cipher, strings.Join(crypto.Ciphers(), ", "))
	}
	if c.Concurrency == 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.Concurrency < 1 || c.Concurrency > MaxConcurrency {
		return fmt.Errorf("concurrency %d is out of range 1 to %d", c.Concurrency, MaxConcurrency)
	}
	if c.Retries == 0 {
		c.Retries = DefaultRetries
	}
	if c.NoRetries {
		c.Retries = 0
	}
	if c.Retries < RetryForever {
		return fmt.Errorf("retries %d: use a count or RetryForever", c.Retries)
	}
	if c.RetryBase == 0 {
		c.RetryBase = time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// PutMemory is about how many bytes of chunk buffers Put holds with cfg.
func PutMemory(cfg Config) int64 {
	if err := cfg.normalize(); err != nil {
		return 0
	}
	p := newBufferPlan(cfg.ChunkSize, !cfg.NoEncryption, !cfg.NoCompression, cfg.Concurrency)
	return int64(p.buffers) * int64(p.size)
}

// GetMemory is about how many bytes of chunk buffers Get and Verify hold
// with cfg for a stream of chunkSize-byte chunks.
func GetMemory(cfg Config, chunkSize int) int64 {
	if err := cfg.normalize(); err != nil {
		return 0
	}
	// A window of concurrency + 1 objects, and one decompressed chunk.
	return int64(cfg.Concurrency+2) * int64(maxStored(chunkSize))
}

// errPermanent marks an error that retrying cannot fix.
type errPermanent struct{ error }

func (e errPermanent) Unwrap() error { return e.error }

// retry runs op until it succeeds, fails permanently, the context ends, or
// the retries are spent. what names the operation for the log and the error.
func retry(ctx context.Context, cfg *Config, what string, op func() error) error {
	delay := cfg.RetryBase
	for attempt := 0; ; attempt++ {
		err := op()
		if err == nil {
			return nil
		}
		var perm errPermanent
		// An object beyond the size limit will not shrink: retrying it
		// (minutes of backoff) would only delay the error.
		if errors.As(err, &perm) || errors.Is(err, blockstore.ErrNotFound) || errors.Is(err, blockstore.ErrTooLarge) || ctx.Err() != nil {
			return err
		}
		if cfg.Retries != RetryForever && attempt >= cfg.Retries {
			if attempt == 0 {
				return fmt.Errorf("%s: %w", what, blockstore.Explain(err))
			}
			return fmt.Errorf("%s failed %d times, giving up: %w", what, attempt+1, blockstore.Explain(err))
		}
		// Full jitter over the upper half, so parallel chunks spread out.
		wait := delay/2 + rand.N(delay/2+1)
		cfg.Logger.Warn("retrying", "op", what, "attempt", attempt+1, "in", wait.Round(time.Millisecond), "err", blockstore.Explain(err))
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
		delay = min(2*delay, 30*time.Second)
	}
}

// throttle waits until lim allows n more bytes. Bursts larger than the
// limiter's are taken in pieces.
func throttle(ctx context.Context, lim *rate.Limiter, n int) error {
	if lim == nil || lim.Limit() == rate.Inf {
		return nil
	}
	for n > 0 {
		step := min(n, lim.Burst())
		if err := lim.WaitN(ctx, step); err != nil {
			return err
		}
		n -= step
	}
	return nil
}

// NewLimiter returns a limiter of bytesPerSecond (0 = nil, no limit).
func NewLimiter(bytesPerSecond int64) *rate.Limiter {
	if bytesPerSecond <= 0 {
		return nil
	}
	burst := int(min(bytesPerSecond, 1<<20))
	return rate.NewLimiter(rate.Limit(bytesPerSecond), burst)
}

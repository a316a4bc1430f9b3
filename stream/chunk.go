package stream

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/s3blk/s3blk/codec"
	"github.com/s3blk/s3blk/crypto"
)

// adDomain starts the associated data of every sealed chunk.
const adDomain = "s3blk stream chunk v1"

// Chunk codec flags, authenticated in the associated data.
const flagCompressed = 1 << 0

const adSize = len(adDomain) + idSize + 8 + 1

// ErrCorrupt marks a chunk or manifest that failed a check.
var ErrCorrupt = errors.New("corrupt")

// chunkCodec turns one chunk of a stream into its object and back.
type chunkCodec struct {
	id       [idSize]byte
	aead     *crypto.AEAD // nil: not encrypted
	compress bool
}

// ad writes the associated data of chunk index into buf.
func (c *chunkCodec) ad(buf *[adSize]byte, index uint64) []byte {
	n := copy(buf[:], adDomain)
	n += copy(buf[n:], c.id[:])
	binary.BigEndian.PutUint64(buf[n:], index)
	n += 8
	buf[n] = 0
	if c.compress {
		buf[n] |= flagCompressed
	}
	return buf[:]
}

// head is where the plaintext of a chunk starts in a Put buffer: room for
// the nonce, so that encryption without compression seals in place.
func (c *chunkCodec) head() int {
	if c.aead != nil {
		return crypto.NonceSize
	}
	return 0
}

// maxStored bounds the object size of a chunkSize-byte chunk under any
// codec: zstd's worst case (stored blocks, about 3 bytes per 128 KiB) with
// a generous margin, plus the AEAD's overhead.
func maxStored(chunkSize int) int {
	return chunkSize + chunkSize/256 + 1024 + crypto.Overhead
}

// encode turns the n plaintext bytes at buf[c.head():] into the chunk's
// object. With compression the object is written into spare (which must
// have maxStored capacity); otherwise it is in buf, sealed in place.
// Nothing is allocated.
func (c *chunkCodec) encode(index uint64, buf []byte, n int, spare []byte) []byte {
	plain := buf[c.head() : c.head()+n]
	if !c.compress {
		if c.aead == nil {
			return plain
		}
		var ad [adSize]byte
		return c.aead.Seal(buf[:0], plain, c.ad(&ad, index))
	}
	if c.aead == nil {
		return codec.Compress(spare[:0], plain)
	}
	var ad [adSize]byte
	z := codec.Compress(spare[crypto.NonceSize:crypto.NonceSize], plain)
	if crypto.NonceSize+len(z)+crypto.TagSize > cap(spare) {
		// zstd grew the frame beyond maxStored, into a new array (cannot
		// happen, but stay correct): seal from there into a new buffer.
		return c.aead.Seal(nil, z, c.ad(&ad, index))
	}
	return c.aead.Seal(spare[:0], z, c.ad(&ad, index))
}

// decode checks and opens obj, the object of chunk index, whose plaintext
// must be want bytes, and returns the chunk in one slice (the parts of a
// stored frame joined): for tests and benchmarks; get uses inflateParts.
func (c *chunkCodec) decode(index uint64, obj []byte, want int, scratch []byte) ([]byte, error) {
	payload, err := c.open(index, obj)
	if err != nil {
		return nil, err
	}
	parts, err := c.inflateParts(payload, want, &scratch, nil)
	switch {
	case err != nil:
		return nil, err
	case len(parts) == 1:
		return parts[0], nil
	}
	return bytes.Join(parts, nil), nil
}

// open authenticates and decrypts obj in place (if the stream is
// encrypted) and returns the payload: the chunk, or its zstd frame.
// Failures wrap ErrCorrupt.
func (c *chunkCodec) open(index uint64, obj []byte) ([]byte, error) {
	if c.aead == nil {
		return obj, nil
	}
	if len(obj) < crypto.Overhead {
		return nil, fmt.Errorf("%w: %d-byte object is too short to be sealed", ErrCorrupt, len(obj))
	}
	var ad [adSize]byte
	plain, err := c.aead.Open(obj[crypto.NonceSize:crypto.NonceSize], obj, c.ad(&ad, index))
	if err != nil {
		return nil, fmt.Errorf("%w: decryption failed (damaged, moved from another index or stream, or tampered with)", ErrCorrupt)
	}
	return plain, nil
}

// inflateParts returns the chunk in payload, which must be want bytes, as
// parts, without a copy where it can: payload itself (no compression), the
// raw blocks of a stored zstd frame (an incompressible chunk), or else
// decompressed into *scratch, which is allocated on first use. parts is
// reused for the result. Failures wrap ErrCorrupt.
func (c *chunkCodec) inflateParts(payload []byte, want int, scratch *[]byte, parts [][]byte) ([][]byte, error) {
	if want < 1 || want > MaxChunkSize {
		return nil, fmt.Errorf("%w: chunk size %d out of range", ErrCorrupt, want)
	}
	if !c.compress {
		if len(payload) != want {
			return nil, fmt.Errorf("%w: chunk holds %d bytes, the manifest says %d", ErrCorrupt, len(payload), want)
		}
		return append(parts[:0], payload), nil
	}
	if stored, ok := codec.StoredBlocks(payload, want, parts); ok {
		return stored, nil
	}
	if *scratch == nil {
		*scratch = make([]byte, 0, want)
	}
	out, err := codec.Decompress((*scratch)[:0], payload, want)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	*scratch = out
	return append(parts[:0], out), nil
}

// bufferPlan is how many buffers of what size Put needs.
type bufferPlan struct {
	size    int // capacity of every buffer
	buffers int // in all: (concurrency + 1) chunk buffers + spares
	spares  int // compressors' output buffers
}

func newBufferPlan(chunkSize int, encrypt, compress bool, concurrency int) bufferPlan {
	p := bufferPlan{size: chunkSize, buffers: concurrency + 1}
	if encrypt {
		p.size += crypto.Overhead
	}
	if compress {
		// Every buffer can take a compressor's output, so buffers can be
		// swapped between the chunk and the compressor.
		p.size = maxStored(chunkSize)
		p.spares = min(concurrency, compressors())
		p.buffers += p.spares
	}
	return p
}

// compressors is how many chunks are compressed at once, each needing a
// spare buffer: one, because codec's zstd encoder is a single one
// (WithEncoderConcurrency(1)) and serializes EncodeAll calls anyway.
func compressors() int { return 1 }

package codec

import (
	"encoding/binary"
	"fmt"
	"runtime"
	"slices"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// Compression is shared by the block codec and stream chunks. Both the
// encoder and the decoder are safe for concurrent EncodeAll/DecodeAll.
var (
	zstdEncoder, _ = zstd.NewWriter(nil,
		zstd.WithEncoderLevel(zstd.SpeedFastest),
		zstd.WithEncoderConcurrency(runtime.GOMAXPROCS(0)),
		zstd.WithWindowSize(1<<20), // the default 8 MiB history costs RSS and gains little
		zstd.WithZeroFrames(true),
		zstd.WithEncoderCRC(false)) // integrity comes from the AEAD or the checksum
	zstdDecoder, _ = zstd.NewReader(nil,
		zstd.WithDecoderConcurrency(0),
		zstd.WithDecoderMaxMemory(MaxDecompressed),
		// DecodeAll stops at the capacity of its destination, which
		// Decompress sets to the size it wants: a small block whose frame
		// inflates to 64 MiB is refused after one zstd block, not after
		// allocating the 64 MiB.
		zstd.WithDecodeAllCapLimit(true))
)

// The zstd frame format (RFC 8878) as far as stored frames need it.
const (
	zstdMagic    = 0xFD2FB528
	zstdMaxBlock = 128 << 10 // the largest block any frame may hold
)

// MaxDecompressed bounds what Decompress will produce, so a hostile object
// cannot make us allocate without limit.
const MaxDecompressed = 64 << 20

// Compress appends a zstd frame of src to dst and returns it. An input
// that Incompressible judges incompressible is stored in raw zstd blocks
// instead, without the match search: as valid a frame (any zstd decoder
// reads it, `zstd -d` included), 0.01% larger than src.
func Compress(dst, src []byte) []byte {
	if Incompressible(src) {
		return appendStoredFrame(dst, src)
	}
	return compressAll(dst, src)
}

func compressAll(dst, src []byte) []byte { return zstdEncoder.EncodeAll(src, dst) }

// Sampling: inputs of at least sampleMin bytes are judged by compressing
// sampleCount slices of sampleSize bytes spread evenly over them, 3% of a
// 1 MiB block. Random data, media and already-compressed archives then
// cost 3% of a full compression attempt, which would fail anyway (on the
// test machine the failed attempt was a quarter of the daemon's CPU in a
// write of random data). A block compressible only by long-range repeats
// that no sample shows is stored uncompressed: that costs space, never
// correctness.
const (
	sampleMin   = 64 << 10
	sampleCount = 8
	sampleSize  = 4 << 10
)

// samplePool holds buffers for the samples and their compressed frame.
var samplePool = sync.Pool{New: func() any { b := make([]byte, 0, 2*sampleCount*sampleSize+4096); return &b }}

// Incompressible reports whether zstd would not make src smaller by more
// than about 3%, judged from samples. Inputs under 64 KiB are never judged
// incompressible: they are compressed whole.
func Incompressible(src []byte) bool {
	if len(src) < sampleMin {
		return false
	}
	bp := samplePool.Get().(*[]byte)
	defer samplePool.Put(bp)
	samples := (*bp)[:0]
	step := len(src) / sampleCount
	for i := range sampleCount {
		samples = append(samples, src[i*step:i*step+sampleSize]...)
	}
	z := zstdEncoder.EncodeAll(samples, samples[len(samples):len(samples)])
	return len(z) > len(samples)-len(samples)/32
}

// appendStoredFrame appends a zstd frame (RFC 8878) holding src in raw
// blocks: the magic number, a frame header (a 1 MiB window and the 4-byte
// content size; no checksum, no dictionary), then blocks of at most 128
// KiB, each behind a 3-byte header (last-block bit, type 0 = raw, size).
// src must be shorter than 4 GiB.
func appendStoredFrame(dst, src []byte) []byte {
	dst = slices.Grow(dst, len(src)+14+3*(len(src)/zstdMaxBlock+1))
	dst = binary.LittleEndian.AppendUint32(dst, zstdMagic)
	dst = append(dst, 0x80, 0x50) // content size in 4 bytes; window 2^(10+10)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(src)))
	for {
		n := min(len(src), zstdMaxBlock)
		header := uint32(n) << 3 // type 0: raw
		if n == len(src) {
			header |= 1 // the last block
		}
		dst = append(dst, byte(header), byte(header>>8), byte(header>>16))
		dst = append(dst, src[:n]...)
		if src = src[n:]; len(src) == 0 {
			return dst
		}
	}
}

// Decompress appends the content of the zstd frames in src to dst. It fails
// if the result would not be exactly want bytes, and never produces (or
// allocates for) much more than that: decoding stops once the output would
// exceed want.
func Decompress(dst, src []byte, want int) ([]byte, error) {
	if want < 0 || want > MaxDecompressed {
		return dst, fmt.Errorf("%w: decompressed size %d is beyond the limit", ErrCorrupt, want)
	}
	n := len(dst)
	out, err := zstdDecoder.DecodeAll(src, slices.Grow(dst, want)[:n:n+want])
	if err != nil {
		return dst, fmt.Errorf("%w: zstd: %v", ErrCorrupt, err)
	}
	if len(out)-n != want {
		return dst, fmt.Errorf("%w: decompressed to %d bytes, want %d", ErrCorrupt, len(out)-n, want)
	}
	return out, nil
}

// StoredBlocks returns the content of frame as slices of it, without a
// copy, when frame is exactly one zstd frame (RFC 8878) made of raw blocks
// that hold want bytes: what Compress stores for incompressible input, and
// what zstd encoders emit for data they cannot shrink. ok is false for any
// other input (compressed or RLE blocks, a checksum, a dictionary, more
// than one frame, sizes that do not add up), which must then go through
// Decompress: StoredBlocks never accepts what Decompress would refuse or
// decode differently (FuzzStoredBlocks). parts is reused for the result.
func StoredBlocks(frame []byte, want int, parts [][]byte) (_ [][]byte, ok bool) {
	if len(frame) < 6 || binary.LittleEndian.Uint32(frame) != zstdMagic || want < 0 || want > MaxDecompressed {
		return nil, false
	}
	fhd := frame[4]
	if fhd&0x1f != 0 { // reserved and unused bits, checksum, dictionary ID
		return nil, false
	}
	singleSegment := fhd&0x20 != 0
	fcsSize := [4]int{0, 2, 4, 8}[fhd>>6]
	if singleSegment && fcsSize == 0 {
		fcsSize = 1
	}
	p := 5
	window := uint64(0)
	if !singleSegment {
		wd := frame[p]
		p++
		base := uint64(1) << (10 + wd>>3)
		window = base + base/8*uint64(wd&7)
	}
	if len(frame) < p+fcsSize {
		return nil, false
	}
	declared := int64(-1)
	switch fcsSize {
	case 1:
		declared = int64(frame[p])
	case 2:
		declared = int64(binary.LittleEndian.Uint16(frame[p:])) + 256
	case 4:
		declared = int64(binary.LittleEndian.Uint32(frame[p:]))
	case 8:
		declared = int64(binary.LittleEndian.Uint64(frame[p:]))
	}
	p += fcsSize
	if singleSegment {
		window = uint64(declared)
	}
	if declared >= 0 && declared != int64(want) || window > MaxDecompressed {
		return nil, false
	}
	limit := min(window, zstdMaxBlock)
	parts = parts[:0]
	total := 0
	for {
		if len(frame) < p+3 {
			return nil, false
		}
		h := uint32(frame[p]) | uint32(frame[p+1])<<8 | uint32(frame[p+2])<<16
		p += 3
		size := int(h >> 3)
		if (h>>1)&3 != 0 || uint64(size) > limit || len(frame)-p < size {
			return nil, false // not raw, too large, or cut short
		}
		if size > 0 {
			parts = append(parts, frame[p:p+size])
		}
		p += size
		total += size
		if total > want {
			return nil, false
		}
		if h&1 != 0 { // the last block: the frame must end here, and hold want bytes
			return parts, p == len(frame) && total == want
		}
	}
}

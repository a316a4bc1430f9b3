package codec

import (
	"fmt"
	"runtime"
	"slices"

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

// MaxDecompressed bounds what Decompress will produce, so a hostile object
// cannot make us allocate without limit.
const MaxDecompressed = 64 << 20

// Compress appends the zstd frame of src to dst and returns it.
func Compress(dst, src []byte) []byte {
	return zstdEncoder.EncodeAll(src, dst)
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

package codec_test

import (
	"bytes"
	"errors"
	"runtime"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/s3blk/s3blk/codec"
)

// allocated returns how many bytes fn allocated on the heap.
func allocated(fn func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// streamingFrame compresses data with the streaming encoder, whose frame
// does not declare its content size: the decoder learns it only by
// decoding.
func streamingFrame(t testing.TB, data []byte) []byte {
	var buf bytes.Buffer
	w, err := zstd.NewWriter(&buf, zstd.WithEncoderConcurrency(1))
	if err != nil {
		t.Fatal(err)
	}
	w.Write(data)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestDecompressBoundedByWant: a frame that inflates far beyond the size
// the caller wants is refused after allocating about that size, not the
// 64 MiB the decoder allows in general (regression: a 4 KiB block's frame
// could make Decompress allocate 64 MiB, once per block read in parallel).
func TestDecompressBoundedByWant(t *testing.T) {
	const want = 4096
	bomb := make([]byte, 60<<20)
	for name, frame := range map[string][]byte{
		"declared size": codec.Compress(nil, bomb),
		"no size":       streamingFrame(t, bomb),
		"two frames":    append(codec.Compress(nil, make([]byte, want)), codec.Compress(nil, bomb)...),
	} {
		t.Run(name, func(t *testing.T) {
			var err error
			n := allocated(func() { _, err = codec.Decompress(make([]byte, 0, want), frame, want) })
			if !errors.Is(err, codec.ErrCorrupt) {
				t.Fatalf("Decompress of a %d-byte bomb to %d bytes: %v, want ErrCorrupt", len(bomb), want, err)
			}
			if n > 8<<20 {
				t.Fatalf("refusing the bomb allocated %d MiB", n>>20)
			}
		})
	}
}

// FuzzDecompress: Decompress never panics, never returns other than exactly
// want bytes appended to dst (dst's own bytes untouched), reports every
// failure as ErrCorrupt, never allocates much beyond want, and inverts
// Compress.
func FuzzDecompress(f *testing.F) {
	f.Add([]byte("hello, hello, hello"), codec.Compress(nil, []byte("hello, hello, hello")), 19, 3)
	f.Add([]byte{}, codec.Compress(nil, nil), 0, 0)
	f.Add([]byte("x"), codec.Compress(nil, make([]byte, 1<<20)), 4096, 1)
	f.Add([]byte("x"), streamingFrame(f, make([]byte, 1<<20)), 4096, 0)
	f.Add([]byte("x"), []byte{0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x00}, 10, 2)
	f.Add([]byte("x"), []byte{0x28, 0xb5, 0x2f, 0xfd, 0x04, 0x58, 0xff, 0xff, 0xff, 0xff}, 1<<20, 0)
	f.Fuzz(func(t *testing.T, plain, src []byte, want, prefix int) {
		// Round trip of what Compress makes.
		z := codec.Compress(nil, plain)
		got, err := codec.Decompress(nil, z, len(plain))
		if err != nil || !bytes.Equal(got, plain) {
			t.Fatalf("round trip of %d bytes: err %v, equal %v", len(plain), err, bytes.Equal(got, plain))
		}
		if len(plain) > 0 {
			if _, err := codec.Decompress(nil, z, len(plain)-1); !errors.Is(err, codec.ErrCorrupt) {
				t.Fatalf("decompressing %d bytes as %d: %v", len(plain), len(plain)-1, err)
			}
		}
		// Arbitrary frames, wanted sizes and destinations.
		want = want % (2 << 20)
		prefix = prefix & 63
		if prefix < 0 {
			prefix = -prefix
		}
		dst := bytes.Repeat([]byte{0xa5}, prefix)
		var out []byte
		n := allocated(func() { out, err = codec.Decompress(dst, src, want) })
		if want >= 0 && n > uint64(want)+uint64(len(src))+4<<20 {
			t.Fatalf("Decompress(%d-byte frame, want %d) allocated %d bytes", len(src), want, n)
		}
		if err != nil {
			if !errors.Is(err, codec.ErrCorrupt) {
				t.Fatalf("error %v is not ErrCorrupt", err)
			}
			return
		}
		if len(out) != prefix+want || !bytes.Equal(out[:prefix], bytes.Repeat([]byte{0xa5}, prefix)) {
			t.Fatalf("accepted: %d bytes out for a %d-byte prefix and want %d", len(out), prefix, want)
		}
	})
}

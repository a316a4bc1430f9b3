package codec_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
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

// textBlock is n bytes of log-like text, which zstd shrinks several times.
func textBlock(n int) []byte {
	var b bytes.Buffer
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, "2026-12-03T14:%02d:%02d host s3blk[%d]: stored block %d\n", i/60%60, i%60, 1000+i%7, i)
	}
	return b.Bytes()[:n]
}

// TestIncompressible: samples tell random data (and random data with a
// little compressible text) from text, zeros and half-zero blocks, and
// inputs under 64 KiB are never judged.
func TestIncompressible(t *testing.T) {
	const mib = 1 << 20
	halfZero := randomBlock(3, mib)
	clear(halfZero[mib/2:])
	mostlyRandom := randomBlock(4, mib) // 4 KiB of text, between samples
	copy(mostlyRandom[mib/16:], textBlock(4096))
	for name, c := range map[string]struct {
		data []byte
		want bool
	}{
		"random 1M":       {randomBlock(1, mib), true},
		"random 8M":       {randomBlock(2, 8*mib), true},
		"random 64K":      {randomBlock(2, 64<<10), true},
		"random 64K-1":    {randomBlock(2, 64<<10-1), false},
		"text 1M":         {textBlock(mib), false},
		"zeros 1M":        {make([]byte, mib), false},
		"half zeros 1M":   {halfZero, false},
		"random, 4K text": {mostlyRandom, true},
		"empty":           {nil, false},
	} {
		if got := codec.Incompressible(c.data); got != c.want {
			t.Errorf("%s: Incompressible = %v, want %v", name, got, c.want)
		}
	}
}

// TestStoredFrames: what Compress stores raw for incompressible input is a
// standard zstd frame: Decompress, the streaming decoder and (when
// installed) the zstd command read it, alone and concatenated with
// ordinary frames, as README's recovery recipe does.
func TestStoredFrames(t *testing.T) {
	var all, want []byte
	for _, n := range []int{64 << 10, 128<<10 - 1, 128 << 10, 128<<10 + 1, 1 << 20, 8<<20 + 5} {
		src := randomBlock(uint64(n), n)
		frame := codec.Compress(nil, src)
		blocks := (n + 128<<10 - 1) / (128 << 10)
		if len(frame) != n+10+3*blocks {
			t.Fatalf("%d bytes: a %d-byte frame, want a stored frame of %d", n, len(frame), n+10+3*blocks)
		}
		got, err := codec.Decompress(nil, frame, n)
		if err != nil || !bytes.Equal(got, src) {
			t.Fatalf("%d bytes: Decompress: %v", n, err)
		}
		text := textBlock(n)
		all = append(append(all, frame...), codec.Compress(nil, text)...)
		want = append(append(want, src...), text...)
	}
	d, err := zstd.NewReader(bytes.NewReader(all))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if got, err := io.ReadAll(d); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("the streaming decoder read %d bytes of %d: %v", len(got), len(want), err)
	}
	zstdCmd, err := exec.LookPath("zstd")
	if err != nil {
		if os.Getenv("S3BLK_REQUIRE_MINIO") == "1" { // make test installs it
			t.Fatal("the zstd command is missing")
		}
		t.Skip("the zstd command is not installed; run `make test`")
	}
	cmd := exec.Command(zstdCmd, "-d", "-c")
	cmd.Stdin = bytes.NewReader(all)
	got, err := cmd.Output()
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("zstd -d gave %d bytes of %d: %v", len(got), len(want), err)
	}
}

// BenchmarkCompress: a full compression attempt against the samples'
// verdict, on the data each path gets.
func BenchmarkCompress(b *testing.B) {
	for name, data := range map[string][]byte{"random": randomBlock(1, 1<<20), "text": textBlock(1 << 20)} {
		b.Run(name, func(b *testing.B) {
			dst := make([]byte, 0, 2<<20)
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				codec.Compress(dst[:0], data)
			}
		})
	}
}

// TestStoredBlocks: the raw blocks of a stored frame are its content, with
// no copy; anything else (a compressed frame, the wrong size, a cut or
// extended frame, two frames) is left to Decompress.
func TestStoredBlocks(t *testing.T) {
	src := randomBlock(5, 8<<20+5)
	frame := codec.Compress(nil, src)
	parts, ok := codec.StoredBlocks(frame, len(src), nil)
	if !ok || len(parts) != 65 || !bytes.Equal(bytes.Join(parts, nil), src) {
		t.Fatalf("a stored frame of 8 MiB + 5: ok %v, %d parts", ok, len(parts))
	}
	if &parts[0][0] != &frame[13] {
		t.Fatal("the parts are a copy, not slices of the frame")
	}
	// klauspost's encoder stores random data in raw blocks too.
	small := randomBlock(6, 1000)
	if parts, ok := codec.StoredBlocks(zstdEncodeAll(t, small), len(small), nil); !ok || !bytes.Equal(bytes.Join(parts, nil), small) {
		t.Fatalf("an encoder's raw frame: ok %v", ok)
	}
	for name, c := range map[string]struct {
		frame []byte
		want  int
	}{
		"compressed":  {codec.Compress(nil, textBlock(1<<20)), 1 << 20},
		"want less":   {frame, len(src) - 1},
		"want more":   {frame, len(src) + 1},
		"cut short":   {frame[:len(frame)-1], len(src)},
		"one more":    {append(bytes.Clone(frame), 0), len(src)},
		"two frames":  {append(codec.AppendStoredFrame(nil, src[:10]), codec.AppendStoredFrame(nil, src[10:20])...), 20},
		"header only": {frame[:10], len(src)},
		"empty":       {nil, 0},
		"not zstd":    {src[:100], 100},
	} {
		if _, ok := codec.StoredBlocks(c.frame, c.want, nil); ok {
			t.Errorf("%s: accepted", name)
		}
	}
}

func zstdEncodeAll(t testing.TB, src []byte) []byte {
	e, err := zstd.NewWriter(nil, zstd.WithEncoderCRC(false))
	if err != nil {
		t.Fatal(err)
	}
	return e.EncodeAll(src, nil)
}

// FuzzStoredBlocks: whatever StoredBlocks accepts, Decompress accepts too
// and decodes to the same bytes; it never panics.
func FuzzStoredBlocks(f *testing.F) {
	for _, n := range []int{0, 1, 300, 128 << 10, 128<<10 + 1} {
		src := randomBlock(uint64(n), n)
		f.Add(codec.AppendStoredFrame(nil, src), n)
		f.Add(zstdEncodeAll(f, src), n)
	}
	f.Add([]byte("\x28\xb5\x2f\xfd\x20\x03\x19\x00\x00abc"), 3) // single segment, 1-byte size
	f.Fuzz(func(t *testing.T, frame []byte, want int) {
		parts, ok := codec.StoredBlocks(frame, want, nil)
		if !ok {
			return
		}
		got, err := codec.Decompress(nil, frame, want)
		if err != nil {
			t.Fatalf("StoredBlocks accepted a frame that Decompress refuses: %v\n% x", err, frame)
		}
		if joined := bytes.Join(parts, nil); !bytes.Equal(joined, got) || len(got) != want {
			t.Fatalf("StoredBlocks gives %d bytes, Decompress %d (want %d)", len(joined), len(got), want)
		}
	})
}

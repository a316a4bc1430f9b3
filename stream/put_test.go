package stream

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"testing/iotest"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/s3blk/s3blk/blockstore"
	"github.com/s3blk/s3blk/crypto"
)

// TestRoundTrip: every size around the chunk boundaries, in every codec,
// comes back byte for byte, and the store holds exactly chunks 0..n-1 and
// the manifest.
func TestRoundTrip(t *testing.T) {
	for _, m := range modes {
		for _, size := range sizesFor(testChunk) {
			t.Run(m.name+"/"+describe(size), func(t *testing.T) {
				t.Parallel() // overlaps the local store's fsyncs
				s := localStore(t)
				data := testData(size, uint64(size))
				var progress atomic.Int64
				cfg := m.config()
				cfg.Progress = func(n int64) { progress.Add(n) }
				man := mustPut(t, s, data, cfg)
				chunks := (size + testChunk - 1) / testChunk
				if man.Size != int64(size) || len(man.Chunks) != chunks || progress.Load() != int64(size) {
					t.Fatalf("manifest size %d chunks %d progress %d; want %d, %d", man.Size, len(man.Chunks), progress.Load(), size, chunks)
				}
				if got := keys(t, s); !slices.Equal(got, wantKeys(chunks, true)) {
					t.Fatalf("keys %v, want %v", got, wantKeys(chunks, true))
				}
				r, err := Open(context.Background(), s, cfg)
				if err != nil {
					t.Fatal(err)
				}
				var got bytes.Buffer
				if n, err := r.WriteTo(context.Background(), &got); err != nil || n != int64(size) || !bytes.Equal(got.Bytes(), data) {
					t.Fatalf("get returned %d bytes that differ from the %d put: %v", got.Len(), len(data), err)
				}
				if err := r.Verify(context.Background(), nil); err != nil {
					t.Fatalf("verify: %v", err)
				}
			})
		}
	}
}

// concatenated returns the chunk objects of a stream, in key order, joined.
func concatenated(t *testing.T, s *blockstore.Local, n int) []byte {
	var all []byte
	for i := range n {
		obj, err := s.Get(context.Background(), ChunkKey(uint64(i)))
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, obj...)
	}
	return all
}

// TestRawRecovery: without encryption the chunks are the stream (raw) or
// zstd frames that decompress, concatenated, to the stream.
func TestRawRecovery(t *testing.T) {
	data := testData(7*testChunk+123, 7)
	s := localStore(t)
	man := mustPut(t, s, data, testConfig(false, false))
	if got := concatenated(t, s, len(man.Chunks)); !bytes.Equal(got, data) {
		t.Fatal("raw chunks concatenated differ from the stream")
	}
	if man.Digest.Algorithm != DigestSHA256 || man.Digest.Value != Hash(sha256Sum(data)) {
		t.Fatal("the unencrypted digest is not the SHA-256 of the stream")
	}

	s = localStore(t)
	man = mustPut(t, s, data, testConfig(false, true))
	dec, err := zstd.NewReader(bytes.NewReader(concatenated(t, s, len(man.Chunks))))
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	got, err := io.ReadAll(dec)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("zstd -d of the concatenated chunks: %v (%d bytes)", err, len(got))
	}
}

// TestReaderShapes: short reads, data with EOF, one byte at a time: the
// tail is always stored.
func TestReaderShapes(t *testing.T) {
	data := testData(3*testChunk+5, 3)
	for name, r := range map[string]func() io.Reader{
		"one byte":  func() io.Reader { return iotest.OneByteReader(bytes.NewReader(data)) },
		"half":      func() io.Reader { return iotest.HalfReader(bytes.NewReader(data)) },
		"data+EOF":  func() io.Reader { return iotest.DataErrReader(bytes.NewReader(data)) },
		"multipart": func() io.Reader { return io.MultiReader(bytes.NewReader(data[:100]), bytes.NewReader(data[100:])) },
	} {
		t.Run(name, func(t *testing.T) {
			s := localStore(t)
			if _, err := Put(context.Background(), s, r(), testConfig(true, true)); err != nil {
				t.Fatal(err)
			}
			if got := mustGet(t, s, testConfig(true, true)); !bytes.Equal(got, data) {
				t.Fatalf("got %d bytes, want %d", len(got), len(data))
			}
		})
	}
}

// TestRetryNeverSkips: failed uploads are retried until stored; no chunk is
// skipped, the tail included.
func TestRetryNeverSkips(t *testing.T) {
	data := testData(6*testChunk+9, 4)
	f := newFaultStore(localStore(t))
	f.failPut = func(key string, attempt int) error {
		if (key == ChunkKey(2) || key == ChunkKey(6) || key == ManifestKey) && attempt <= 3 {
			return errInjected
		}
		return nil
	}
	man := mustPut(t, f, data, testConfig(true, true))
	for _, key := range []string{ChunkKey(2), ChunkKey(6), ManifestKey} {
		if n := f.attempts(f.puts, key); n != 4 {
			t.Errorf("%s: %d attempts, want 4", key, n)
		}
	}
	if len(man.Chunks) != 7 {
		t.Fatalf("%d chunks", len(man.Chunks))
	}
	if got := mustGet(t, f, testConfig(true, true)); !bytes.Equal(got, data) {
		t.Fatal("round trip differs")
	}
}

// TestRetriesExhausted: a chunk that cannot be stored fails the whole Put
// loudly and leaves no manifest.
func TestRetriesExhausted(t *testing.T) {
	for _, failing := range []uint64{0, 3, 6} { // first, middle, the partial tail
		f := newFaultStore(localStore(t))
		f.failPut = func(key string, attempt int) error {
			if key == ChunkKey(failing) {
				return errInjected
			}
			return nil
		}
		cfg := testConfig(false, false)
		cfg.Retries = 2
		_, err := Put(context.Background(), f, bytes.NewReader(testData(6*testChunk+9, 4)), cfg)
		if err == nil || !errors.Is(err, errInjected) || !strings.Contains(err.Error(), "INCOMPLETE") ||
			!strings.Contains(err.Error(), "failed 3 times") {
			t.Fatalf("chunk %d failing: Put error %v", failing, err)
		}
		if n := f.attempts(f.puts, ChunkKey(failing)); n != 3 {
			t.Fatalf("chunk %d: %d attempts, want 3", failing, n)
		}
		if _, err := f.Store.Get(context.Background(), ManifestKey); !errors.Is(err, blockstore.ErrNotFound) {
			t.Fatalf("a manifest was written after a failed put: %v", err)
		}
		if _, err := get(f, cfg); !errors.Is(err, ErrIncomplete) {
			t.Fatalf("get of the failed put: %v, want ErrIncomplete", err)
		}
	}
}

// TestRetryForever keeps retrying past the default count until the store
// recovers.
func TestRetryForever(t *testing.T) {
	f := newFaultStore(localStore(t))
	f.failPut = func(key string, attempt int) error {
		if key == ChunkKey(1) && attempt <= DefaultRetries+2 {
			return errInjected
		}
		return nil
	}
	cfg := testConfig(false, false)
	cfg.Retries = RetryForever
	cfg.RetryBase = 10 * time.Microsecond
	mustPut(t, f, testData(3*testChunk, 1), cfg)
	if n := f.attempts(f.puts, ChunkKey(1)); n != DefaultRetries+3 {
		t.Fatalf("%d attempts, want %d", n, DefaultRetries+3)
	}
}

// TestInputError: a failing input (a producer that exited non-zero) fails
// Put and leaves no manifest, even after whole chunks were stored.
func TestInputError(t *testing.T) {
	s := localStore(t)
	bad := errors.New("producer exited with status 3")
	r := io.MultiReader(bytes.NewReader(testData(3*testChunk, 1)), iotest.ErrReader(bad))
	_, err := Put(context.Background(), s, r, testConfig(true, true))
	if !errors.Is(err, bad) || !strings.Contains(err.Error(), "INCOMPLETE") {
		t.Fatalf("Put: %v", err)
	}
	if got := keys(t, s); slices.Contains(got, ManifestKey) {
		t.Fatalf("manifest written: %v", got)
	}
}

// blockingReader returns some data, then blocks until released.
type blockingReader struct {
	data    []byte
	release chan struct{}
}

func (b *blockingReader) Read(p []byte) (int, error) {
	if len(b.data) > 0 {
		n := copy(p, b.data)
		b.data = b.data[n:]
		return n, nil
	}
	<-b.release
	return 0, io.EOF
}

// TestCancel: cancelling Put (SIGINT) returns promptly, even with the input
// blocked in Read, and leaves no manifest.
func TestCancel(t *testing.T) {
	s := localStore(t)
	r := &blockingReader{data: testData(2*testChunk+1, 1), release: make(chan struct{})}
	defer close(r.release)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := Put(ctx, s, r, testConfig(true, true))
		done <- err
	}()
	deadline := time.Now().Add(5 * time.Second)
	for len(keys(t, s)) < 2 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Put after cancel: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Put did not return after cancel")
	}
	if slices.Contains(keys(t, s), ManifestKey) {
		t.Fatal("manifest written after cancel")
	}
}

// TestOverwrite: a complete stream is refused without Force; with Force a
// shorter stream replaces a longer one, and the old chunks beyond it go.
func TestOverwrite(t *testing.T) {
	s := localStore(t)
	mustPut(t, s, testData(9*testChunk, 1), testConfig(true, true))
	_, err := Put(context.Background(), s, bytes.NewReader([]byte("new")), testConfig(true, true))
	if !errors.Is(err, ErrExists) || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("Put over a complete stream: %v", err)
	}
	if got := mustGet(t, s, testConfig(true, true)); !bytes.Equal(got, testData(9*testChunk, 1)) {
		t.Fatal("the refused put changed the stream")
	}
	cfg := testConfig(false, false)
	cfg.Force = true
	data := testData(2*testChunk+1, 2)
	mustPut(t, s, data, cfg)
	if got := keys(t, s); !slices.Equal(got, wantKeys(3, true)) {
		t.Fatalf("keys after --force: %v", got)
	}
	if got := mustGet(t, s, cfg); !bytes.Equal(got, data) {
		t.Fatal("forced stream differs")
	}
}

// TestForceDeletesManifestFirst: with Force, the old manifest is gone
// before any chunk is stored, so a failed forced put leaves INCOMPLETE,
// never the old manifest over a mix of old and new chunks.
func TestForceDeletesManifestFirst(t *testing.T) {
	local := localStore(t)
	mustPut(t, local, testData(4*testChunk, 1), testConfig(false, false))
	f := newFaultStore(local)
	f.failPut = func(key string, attempt int) error {
		if _, err := local.Get(context.Background(), ManifestKey); err == nil {
			t.Errorf("chunk %s stored while the old manifest exists", key)
		}
		if key == ChunkKey(1) {
			return errInjected
		}
		return nil
	}
	cfg := testConfig(false, false)
	cfg.Force, cfg.Retries = true, 1
	if _, err := Put(context.Background(), f, bytes.NewReader(testData(4*testChunk, 2)), cfg); err == nil {
		t.Fatal("Put succeeded")
	}
	if _, err := get(local, cfg); !errors.Is(err, ErrIncomplete) {
		t.Fatalf("get: %v, want ErrIncomplete", err)
	}
}

// TestLeftovers: chunks of an earlier, failed and longer put are replaced
// or deleted, so the new stream holds exactly its own chunks.
func TestLeftovers(t *testing.T) {
	s := localStore(t)
	for i := range 12 {
		if err := s.Put(context.Background(), ChunkKey(uint64(i)), []byte("old")); err != nil {
			t.Fatal(err)
		}
	}
	data := testData(3*testChunk-1, 5)
	mustPut(t, s, data, testConfig(false, false))
	if got := keys(t, s); !slices.Equal(got, wantKeys(3, true)) {
		t.Fatalf("keys %v", got)
	}
	if got := mustGet(t, s, testConfig(false, false)); !bytes.Equal(got, data) {
		t.Fatal("round trip differs")
	}
}

// TestRefusesVolume: Put and Remove refuse a prefix holding a volume.
func TestRefusesVolume(t *testing.T) {
	s := localStore(t)
	if err := s.Put(context.Background(), VolumeHeaderKey, []byte("{}")); err != nil {
		t.Fatal(err)
	}
	if _, err := Put(context.Background(), s, bytes.NewReader([]byte("x")), testConfig(false, false)); !errors.Is(err, ErrVolume) {
		t.Fatalf("Put: %v", err)
	}
	if _, err := Remove(context.Background(), s, Config{}); !errors.Is(err, ErrVolume) {
		t.Fatalf("Remove: %v", err)
	}
	if _, err := get(s, Config{}); !errors.Is(err, ErrVolume) {
		t.Fatalf("get: %v", err)
	}
	if got := keys(t, s); !slices.Equal(got, []string{VolumeHeaderKey}) {
		t.Fatalf("keys %v", got)
	}
}

// discardStore stores nothing: Put's pipeline alone, for allocation counts.
type discardStore struct{ blockstore.Store }

func (discardStore) Get(context.Context, string) ([]byte, error) {
	return nil, blockstore.ErrNotFound
}
func (discardStore) Put(context.Context, string, []byte) error         { return nil }
func (discardStore) PutIfAbsent(context.Context, string, []byte) error { return nil }
func (discardStore) Delete(context.Context, string) error              { return nil }
func (discardStore) List(context.Context, string, func(blockstore.ObjectInfo) error) error {
	return nil
}
func (discardStore) Describe() string { return "discard" }

// TestPutMemoryFixed: Put's allocations do not grow with the stream: the
// chunk buffers are allocated once, whatever the number of chunks.
func TestPutMemoryFixed(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("allocation counts are not meaningful under -race or -short")
	}
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			alloc := func(size int64) uint64 {
				cfg := m.config()
				cfg.ChunkSize = 64 << 10
				var before, after runtime.MemStats
				runtime.ReadMemStats(&before)
				if _, err := Put(context.Background(), discardStore{}, io.LimitReader(zeroReader{}, size), cfg); err != nil {
					t.Fatal(err)
				}
				runtime.ReadMemStats(&after)
				return after.TotalAlloc - before.TotalAlloc
			}
			alloc(1 << 20) // warm up (zstd encoder state, Argon2id)
			small, big := alloc(1<<20), alloc(64<<20)
			// 1008 chunks more may add their manifest entries and small
			// per-chunk bookkeeping (XAES-256-GCM's per-message AES key
			// schedule and GCM state are about 1.4 KiB), never a 64 KiB
			// chunk buffer each.
			if perChunk := (int64(big) - int64(small)) / 1008; perChunk > 4096 {
				t.Fatalf("Put allocates %d bytes per chunk (1 MiB: %d, 64 MiB: %d total)", perChunk, small, big)
			}
		})
	}
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// TestLimitRate: the limiter caps the bytes stored per second.
func TestLimitRate(t *testing.T) {
	cfg := testConfig(false, false)
	cfg.ChunkSize = 64 << 10
	cfg.Limiter = NewLimiter(512 << 10) // bursts of 512 KiB
	start := time.Now()
	mustPut(t, localStore(t), testData(1<<20, 1), cfg)
	if took := time.Since(start); took < 900*time.Millisecond {
		t.Fatalf("1 MiB at 512 KiB/s (after a 512 KiB burst) took only %s", took)
	}
}

// TestStoredFrameChunks: with 1 MiB chunks, random chunks are stored as raw
// zstd frames (no compression attempt) and text chunks compressed; a
// stream mixing both, ending in a partial chunk, comes back byte for byte
// in every codec with compression, and Verify passes.
func TestStoredFrameChunks(t *testing.T) {
	const chunk = 1 << 20
	var data []byte
	for i := range 5 {
		if i%2 == 0 {
			data = append(data, randomChunk(chunk, uint64(i))...)
		} else {
			var text bytes.Buffer
			for j := 0; text.Len() < chunk; j++ {
				fmt.Fprintf(&text, "chunk %d, line %d: some text that zstd shrinks\n", i, j)
			}
			data = append(data, text.Bytes()[:chunk]...)
		}
	}
	data = data[:len(data)-12345]
	for _, m := range modes {
		if !m.compress {
			continue
		}
		t.Run(m.name, func(t *testing.T) {
			s := localStore(t)
			cfg := m.config()
			cfg.ChunkSize = chunk
			man := mustPut(t, s, data, cfg)
			overhead := 0
			if m.encrypt {
				overhead = crypto.Overhead
			}
			for i, c := range man.Chunks {
				stored := c.Stored == c.Size+10+3*((c.Size+128<<10-1)/(128<<10))+overhead
				if random := i%2 == 0; stored != random {
					t.Errorf("chunk %d (random: %v) is %d bytes for %d: stored as a raw frame: %v", i, random, c.Stored, c.Size, stored)
				}
			}
			got, err := get(s, cfg)
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("get: %d bytes of %d: %v", len(got), len(data), err)
			}
			r, err := Open(context.Background(), s, cfg)
			if err != nil {
				t.Fatal(err)
			}
			if err := r.Verify(context.Background(), nil); err != nil {
				t.Fatal(err)
			}
		})
	}
}

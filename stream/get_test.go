package stream

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/s3blk/s3blk/blockstore"
	"github.com/s3blk/s3blk/crypto"
)

// damage is one way to break a stored stream of 6 chunks.
type damage struct {
	name string
	do   func(t *testing.T, s *blockstore.Local)
	bad  []int // the chunks Verify must name
}

var damages = []damage{
	{"chunk deleted", func(t *testing.T, s *blockstore.Local) {
		os.Remove(objectPath(s, ChunkKey(2)))
	}, []int{2}},
	{"byte flipped", func(t *testing.T, s *blockstore.Local) { flipByte(t, s, ChunkKey(4), 1000) }, []int{4}},
	{"tail byte flipped", func(t *testing.T, s *blockstore.Local) { flipByte(t, s, ChunkKey(5), 3) }, []int{5}},
	{"chunks swapped", func(t *testing.T, s *blockstore.Local) {
		a, b := objectPath(s, ChunkKey(1)), objectPath(s, ChunkKey(3))
		os.Rename(a, a+".x")
		os.Rename(b, a)
		os.Rename(a+".x", b)
	}, []int{1, 3}},
	{"chunk truncated", func(t *testing.T, s *blockstore.Local) {
		os.Truncate(objectPath(s, ChunkKey(0)), 100)
	}, []int{0}},
}

// TestDamage: a deleted, corrupted, swapped or truncated chunk makes get
// fail, saying the output already written is bad, and Verify names it.
// Nothing after the damage reaches the output, and nothing bad at all.
// (One stream per codec, damaged and restored in turn: the Argon2id of
// every Open is what makes these tests slow.)
func TestDamage(t *testing.T) {
	data := testData(5*testChunk+77, 9)
	for _, m := range modes {
		s := localStore(t)
		cfg := m.config()
		mustPut(t, s, data, cfg)
		r, err := Open(context.Background(), s, cfg)
		if err != nil {
			t.Fatal(err)
		}
		pristine := map[string][]byte{}
		for _, key := range keys(t, s) {
			pristine[key], _ = os.ReadFile(objectPath(s, key))
		}
		for _, d := range damages {
			t.Run(m.name+"/"+d.name, func(t *testing.T) {
				defer func() {
					for key, data := range pristine {
						os.WriteFile(objectPath(s, key), data, 0o600)
					}
				}()
				d.do(t, s)
				var out bytes.Buffer
				_, err := r.WriteTo(context.Background(), &out)
				var oe *OutputError
				if !errors.As(err, &oe) || oe.Written != int64(out.Len()) {
					t.Fatalf("get: %v, want an OutputError", err)
				}
				if first := d.bad[0]; out.Len() != first*testChunk || !bytes.Equal(out.Bytes(), data[:out.Len()]) {
					t.Fatalf("get wrote %d bytes before failing, want the %d good ones", out.Len(), first*testChunk)
				}
				if out.Len() > 0 && !strings.Contains(err.Error(), "must not be used") {
					t.Fatalf("get's error does not say the output is bad: %v", err)
				}
				var bad []int
				err = r.Verify(context.Background(), func(i int, err error) { bad = append(bad, i) })
				if !errors.Is(err, ErrCorrupt) || !slices.Equal(bad, d.bad) {
					t.Fatalf("Verify: %v, bad chunks %v; want %v", err, bad, d.bad)
				}
				for _, i := range d.bad {
					if !strings.Contains(err.Error(), fmt.Sprint(i)) {
						t.Fatalf("Verify's error does not name chunk %d: %v", i, err)
					}
				}
			})
		}
		if err := r.Verify(context.Background(), nil); err != nil {
			t.Fatalf("%s: the restored stream does not verify: %v", m.name, err)
		}
	}
}

// TestCrossStream: a chunk copied from another stream with the same
// passphrase and the same content is refused (the stream ID is bound).
func TestCrossStream(t *testing.T) {
	data := testData(3*testChunk, 1)
	a, b := localStore(t), localStore(t)
	mustPut(t, a, data, testConfig(true, false))
	mustPut(t, b, data, testConfig(true, false))
	obj, _ := b.Get(context.Background(), ChunkKey(1))
	a.Put(context.Background(), ChunkKey(1), obj)
	if _, err := get(a, testConfig(true, false)); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("get with a foreign chunk: %v", err)
	}
}

// TestManifestTampering: every change to an encrypted stream's manifest is
// refused by its MAC; a damaged unencrypted one by its checks.
func TestManifestTampering(t *testing.T) {
	s := localStore(t)
	mustPut(t, s, testData(3*testChunk+1, 1), testConfig(true, true))
	orig, _ := os.ReadFile(objectPath(s, ManifestKey))
	for name, edit := range map[string]func(m map[string]any){
		"host":        func(m map[string]any) { m["host"] = "elsewhere" },
		"created":     func(m map[string]any) { m["created"] = "2020-01-01T00:00:00Z" },
		"compression": func(m map[string]any) { m["compression"] = "none" },
		"chunk hash": func(m map[string]any) {
			m["chunks"].([]any)[0].(map[string]any)["sha256"] = strings.Repeat("0", 64)
		},
	} {
		t.Run(name, func(t *testing.T) {
			var m map[string]any
			json.Unmarshal(orig, &m)
			edit(m)
			data, _ := json.Marshal(m)
			os.WriteFile(objectPath(s, ManifestKey), data, 0o600)
			if _, err := Open(context.Background(), s, testConfig(true, true)); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Open: %v, want ErrCorrupt", err)
			}
		})
	}
}

// TestWrongPassphrase is crypto.ErrWrongPassphrase, before any chunk is read.
func TestWrongPassphrase(t *testing.T) {
	local := localStore(t)
	mustPut(t, local, testData(2*testChunk, 1), testConfig(true, true))
	f := newFaultStore(local)
	cfg := testConfig(true, true)
	cfg.Passphrase = func() ([]byte, error) { return []byte("wrong"), nil }
	_, err := get(f, cfg)
	if !errors.Is(err, crypto.ErrWrongPassphrase) || strings.Count(err.Error(), "wrong passphrase") != 1 {
		t.Fatalf("get with a wrong passphrase: %v", err)
	}
	if n := f.attempts(f.gets, ChunkKey(0)); n != 0 {
		t.Fatalf("%d chunk reads with a wrong passphrase", n)
	}
}

// TestIncompleteAndMissing: no manifest is ErrIncomplete if chunks exist,
// else ErrNoStream; neither writes anything.
func TestIncompleteAndMissing(t *testing.T) {
	s := localStore(t)
	if _, err := get(s, Config{}); !errors.Is(err, ErrNoStream) {
		t.Fatalf("empty prefix: %v", err)
	}
	s.Put(context.Background(), ChunkKey(0), []byte("x"))
	if _, err := get(s, Config{}); !errors.Is(err, ErrIncomplete) || !strings.Contains(err.Error(), "did not finish") {
		t.Fatalf("chunks without manifest: %v", err)
	}
	if ok, err := IsStream(context.Background(), s); !ok || err != nil {
		t.Fatalf("IsStream: %v %v", ok, err)
	}
	if ok, err := IsStream(context.Background(), localStore(t)); ok || err != nil {
		t.Fatalf("IsStream of nothing: %v %v", ok, err)
	}
}

// TestGetRetries: a download that fails is retried; one that keeps failing
// is a bad chunk.
func TestGetRetries(t *testing.T) {
	data := testData(4*testChunk+1, 2)
	local := localStore(t)
	mustPut(t, local, data, testConfig(true, true))
	f := newFaultStore(local)
	f.failGet = func(key string, attempt int) error {
		if key == ChunkKey(2) && attempt <= 2 {
			return errInjected
		}
		if key == ChunkKey(3) {
			return errInjected
		}
		return nil
	}
	cfg := testConfig(true, true)
	out, err := get(f, cfg)
	if !errors.Is(err, errInjected) || !bytes.Equal(out, data[:3*testChunk]) || f.attempts(f.gets, ChunkKey(2)) != 3 {
		t.Fatalf("get: %v after %d bytes, %d attempts at chunk 2", err, len(out), f.attempts(f.gets, ChunkKey(2)))
	}
}

// failingWriter fails after n bytes.
type failingWriter struct{ n int }

func (w *failingWriter) Write(p []byte) (int, error) {
	if len(p) > w.n {
		n := w.n
		w.n = 0
		return n, errors.New("broken pipe")
	}
	w.n -= len(p)
	return len(p), nil
}

// TestWriteError: a failing output is an error saying how much was written.
func TestWriteError(t *testing.T) {
	s := localStore(t)
	mustPut(t, s, testData(4*testChunk, 2), testConfig(false, false))
	r, err := Open(context.Background(), s, Config{})
	if err != nil {
		t.Fatal(err)
	}
	n, err := r.WriteTo(context.Background(), &failingWriter{n: testChunk + 10})
	if n != testChunk+10 || err == nil || !strings.Contains(err.Error(), "broken pipe") || !strings.Contains(err.Error(), "must not be used") {
		t.Fatalf("WriteTo: %d, %v", n, err)
	}
}

// windowStore counts chunk downloads, to check the reorder window.
type windowStore struct {
	blockstore.Store
	mu      sync.Mutex
	fetched int
}

func (w *windowStore) Get(ctx context.Context, key string) ([]byte, error) {
	if _, ok := ParseChunkKey(key); ok {
		w.mu.Lock()
		w.fetched++
		w.mu.Unlock()
	}
	return w.Store.Get(ctx, key)
}

// slowWriter checks, at every write, how far ahead the downloads are.
type slowWriter struct {
	w       *windowStore
	written int
	ahead   int
}

func (s *slowWriter) Write(p []byte) (int, error) {
	s.written++
	s.w.mu.Lock()
	s.ahead = max(s.ahead, s.w.fetched-s.written)
	s.w.mu.Unlock()
	return len(p), nil
}

// TestReorderWindow: however slow the output, Get never downloads more
// than concurrency + 1 chunks ahead of it: bounded memory.
func TestReorderWindow(t *testing.T) {
	local := localStore(t)
	mustPut(t, local, testData(40*testChunk, 3), testConfig(false, false))
	w := &windowStore{Store: local}
	cfg := testConfig(false, false)
	r, err := Open(context.Background(), w, cfg)
	if err != nil {
		t.Fatal(err)
	}
	sw := &slowWriter{w: w}
	if _, err := r.WriteTo(context.Background(), sw); err != nil {
		t.Fatal(err)
	}
	if sw.written != 40 || sw.ahead > cfg.Concurrency+1 {
		t.Fatalf("%d writes; downloads ran %d chunks ahead of the output, window %d", sw.written, sw.ahead, cfg.Concurrency+1)
	}
}

// TestReadsFirstFormatStream: a stream put by s3blk before XAES-256-GCM
// existed (XChaCha20-Poly1305 chunks, zstd, November 2026; testdata made
// with that release's stream package) still gets and verifies byte for byte.
func TestReadsFirstFormatStream(t *testing.T) {
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS("testdata/xchacha20poly1305-v1")); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(true, true)
	cfg.Passphrase = func() ([]byte, error) { return []byte("compat passphrase"), nil }
	r, err := Open(context.Background(), blockstore.NewLocal(dir), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if m := r.Manifest(); m.Encryption != EncryptionXChaCha || len(m.Chunks) != 3 {
		t.Fatalf("the fixture is %s in %d chunks", m.Encryption, len(m.Chunks))
	}
	var out bytes.Buffer
	if n, err := r.WriteTo(context.Background(), &out); err != nil || n != 12188 {
		t.Fatalf("get: %d bytes, %v", n, err)
	}
	if sum := sha256.Sum256(out.Bytes()); hex.EncodeToString(sum[:]) != "bc45712cdad70d3e7507811969e013c9a8cd6104c040368fb8ab05017981572f" {
		t.Fatalf("the stream reads as other bytes (SHA-256 %x)", sum)
	}
	if err := r.Verify(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
}

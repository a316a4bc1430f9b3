package stream

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/s3blk/s3blk/blockstore"
	"github.com/s3blk/s3blk/crypto"
)

const testChunk = MinChunkSize // 4 KiB: many chunks from little data

var errInjected = errors.New("injected store failure")

// faultStore wraps a Store, counts requests per key, and fails them on
// demand: failPut(key, attempt) returning non-nil fails that Put attempt
// (attempts count from 1), likewise failGet and failDelete.
type faultStore struct {
	blockstore.Store
	mu         sync.Mutex
	puts       map[string]int
	gets       map[string]int
	deletes    map[string]int
	failPut    func(key string, attempt int) error
	failGet    func(key string, attempt int) error
	failDelete func(key string, attempt int) error
}

func newFaultStore(s blockstore.Store) *faultStore {
	return &faultStore{Store: s, puts: map[string]int{}, gets: map[string]int{}, deletes: map[string]int{}}
}

func (f *faultStore) count(m map[string]int, key string, fail func(string, int) error) error {
	f.mu.Lock()
	m[key]++
	n := m[key]
	f.mu.Unlock()
	if fail != nil {
		return fail(key, n)
	}
	return nil
}

func (f *faultStore) Put(ctx context.Context, key string, data []byte) error {
	if err := f.count(f.puts, key, f.failPut); err != nil {
		return err
	}
	return f.Store.Put(ctx, key, data)
}

func (f *faultStore) PutIfAbsent(ctx context.Context, key string, data []byte) error {
	if err := f.count(f.puts, key, f.failPut); err != nil {
		return err
	}
	return f.Store.PutIfAbsent(ctx, key, data)
}

func (f *faultStore) Get(ctx context.Context, key string) ([]byte, error) {
	if err := f.count(f.gets, key, f.failGet); err != nil {
		return nil, err
	}
	return f.Store.Get(ctx, key)
}

func (f *faultStore) Delete(ctx context.Context, key string) error {
	if err := f.count(f.deletes, key, f.failDelete); err != nil {
		return err
	}
	return f.Store.Delete(ctx, key)
}

func (f *faultStore) attempts(m map[string]int, key string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return m[key]
}

// localStore is a fresh local-directory store.
func localStore(t testing.TB) *blockstore.Local {
	return blockstore.NewLocal(filepath.Join(t.TempDir(), "stream"))
}

// testConfig is a fast configuration: small chunks, quick retries, a fixed
// passphrase.
func testConfig(encrypt, compress bool) Config {
	return Config{
		ChunkSize:     testChunk,
		Concurrency:   3,
		NoEncryption:  !encrypt,
		NoCompression: !compress,
		Passphrase:    func() ([]byte, error) { return []byte("test passphrase"), nil },
		Retries:       5,
		RetryBase:     time.Millisecond,
		Host:          "testhost",
	}
}

type mode struct {
	name              string
	encrypt, compress bool
	cipher            string // "": crypto.DefaultCipher()
}

// modes are every codec, and the default codec with the other cipher.
var modes = []mode{
	{"raw", false, false, ""}, {"zstd", false, true, ""}, {"sealed", true, false, ""}, {"zstd+sealed", true, true, ""},
	{"zstd+sealed/" + otherCipher(), true, true, otherCipher()},
}

// otherCipher is the data cipher that is not this machine's default.
func otherCipher() string {
	if crypto.DefaultCipher() == crypto.XAES256GCM {
		return crypto.XChaCha20Poly1305
	}
	return crypto.XAES256GCM
}

func (m mode) config() Config {
	cfg := testConfig(m.encrypt, m.compress)
	cfg.Cipher = m.cipher
	return cfg
}

func (m mode) codec() *chunkCodec { return testCipherCodec(m.encrypt, m.compress, m.cipher) }

// testData is size bytes that compress somewhat (text-like), seeded.
func testData(size int, seed uint64) []byte {
	b := randomChunk(size, seed)
	for i := range b {
		if i%3 == 0 {
			b[i] = 'a' + b[i]%4
		}
	}
	return b
}

// keys lists the store's keys, sorted.
func keys(t *testing.T, s blockstore.Store) []string {
	t.Helper()
	var out []string
	if err := s.List(context.Background(), "", func(o blockstore.ObjectInfo) error {
		out = append(out, o.Key)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

// wantKeys is chunks 0..n-1 and, if complete, the manifest.
func wantKeys(n int, complete bool) []string {
	var out []string
	for i := range n {
		out = append(out, ChunkKey(uint64(i)))
	}
	if complete {
		out = append(out, ManifestKey)
	}
	return out
}

func mustPut(t *testing.T, s blockstore.Store, data []byte, cfg Config) *Manifest {
	t.Helper()
	m, err := Put(context.Background(), s, bytes.NewReader(data), cfg)
	if err != nil {
		t.Fatalf("Put: %v", err)
	}
	return m
}

func get(s blockstore.Store, cfg Config) ([]byte, error) {
	r, err := Open(context.Background(), s, cfg)
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	_, err = r.WriteTo(context.Background(), &out)
	return out.Bytes(), err
}

func mustGet(t *testing.T, s blockstore.Store, cfg Config) []byte {
	t.Helper()
	out, err := get(s, cfg)
	if err != nil {
		t.Fatalf("get: %v", err)
	}
	return out
}

// objectPath is the file of key in a local store.
func objectPath(s *blockstore.Local, key string) string { return filepath.Join(s.Root, key) }

func flipByte(t *testing.T, s *blockstore.Local, key string, at int) {
	t.Helper()
	p := objectPath(s, key)
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	data[at%len(data)] ^= 0x40
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func sizesFor(chunk int) []int {
	return []int{0, 1, chunk - 1, chunk, chunk + 1, 5*chunk + 7}
}

func describe(size int) string { return fmt.Sprintf("%dB", size) }

func sha256Sum(b []byte) [32]byte { return sha256.Sum256(b) }

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }

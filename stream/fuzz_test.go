package stream

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/s3blk/s3blk/blockstore"
)

// FuzzParseChunkKey: a chunk key is accepted only in the form ChunkKey
// writes (exactly 12 decimal digits), so no two keys name one chunk, and
// every index a stream can have round-trips.
func FuzzParseChunkKey(f *testing.F) {
	for _, k := range []string{"000000000000", "000000000001", "999999999999", "00000000001", "0000000000001", "+00000000001",
		"-00000000001", "00000000000a", "０00000000000", "manifest", "", "000000000000/"} {
		f.Add(k, uint64(7))
	}
	f.Fuzz(func(t *testing.T, key string, index uint64) {
		i, ok := ParseChunkKey(key)
		if ok && ChunkKey(i) != key {
			t.Fatalf("ParseChunkKey(%q) = %d, whose key is %q", key, i, ChunkKey(i))
		}
		if !ok && len(key) == chunkKeyDigits && isDigits(key) {
			t.Fatalf("ParseChunkKey(%q) refused a chunk key", key)
		}
		index %= 1_000_000_000_000
		if back, ok := ParseChunkKey(ChunkKey(index)); !ok || back != index {
			t.Fatalf("index %d: key %q parses as %d, %v", index, ChunkKey(index), back, ok)
		}
	})
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// TestOversizedChunkNotRetried: a chunk object larger than any chunk can
// be stored as fails at once (regression: it was retried like a network
// error, ten times with backoff, for minutes before get said anything).
func TestOversizedChunkNotRetried(t *testing.T) {
	local := blockstore.NewLocal(t.TempDir())
	cfg := Config{ChunkSize: testChunk, NoEncryption: true, RetryBase: time.Millisecond}
	mustPut(t, local, testData(3*testChunk, 5), cfg)
	if err := local.Put(context.Background(), ChunkKey(1), make([]byte, 2*maxStored(testChunk))); err != nil {
		t.Fatal(err)
	}
	fs := newFaultStore(local)
	_, err := get(fs, cfg)
	if err == nil || !errors.Is(err, blockstore.ErrTooLarge) {
		t.Fatalf("get of a stream with an oversized chunk: %v", err)
	}
	// One download, and the one more that a chunk failing a check gets.
	if n := fs.attempts(fs.gets, ChunkKey(1)); n > 2 {
		t.Fatalf("the oversized chunk was requested %d times", n)
	}
}

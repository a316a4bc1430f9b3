package stream

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/s3blk/s3blk/blockstore"
)

// validManifest returns the stored manifest of a fresh stream.
func validManifest(t testing.TB, encrypt, compress bool, size int) []byte {
	s := localStore(t)
	cfg := testConfig(encrypt, compress)
	if _, err := Put(context.Background(), s, bytes.NewReader(testData(size, 1)), cfg); err != nil {
		t.Fatal(err)
	}
	data, err := s.Get(context.Background(), ManifestKey)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestParseManifestRefuses: bad JSON, unknown fields, other formats and
// versions, and hostile sizes are clear errors (wrapping ErrCorrupt).
func TestParseManifestRefuses(t *testing.T) {
	good := validManifest(t, false, true, 3*testChunk+5)
	if _, err := ParseManifest(good); err != nil {
		t.Fatalf("valid manifest refused: %v", err)
	}
	edit := func(f func(m map[string]any)) []byte {
		var m map[string]any
		if err := json.Unmarshal(good, &m); err != nil {
			t.Fatal(err)
		}
		f(m)
		out, _ := json.Marshal(m)
		return out
	}
	chunk := func(m map[string]any, i int) map[string]any { return m["chunks"].([]any)[i].(map[string]any) }
	cases := map[string]struct {
		data []byte
		want string
	}{
		"empty":            {nil, "not valid"},
		"not JSON":         {[]byte("hello"), "not valid"},
		"truncated":        {good[:len(good)/2], "not valid"},
		"trailing data":    {append(append([]byte{}, good...), "{}"...), "trailing"},
		"unknown field":    {edit(func(m map[string]any) { m["extra"] = 1 }), "unknown field"},
		"wrong format":     {edit(func(m map[string]any) { m["format"] = "s3blk-volume" }), "format"},
		"wrong version":    {edit(func(m map[string]any) { m["version"] = 2 }), "version 2"},
		"bad stream ID":    {edit(func(m map[string]any) { m["stream_id"] = "xyz" }), "stream ID"},
		"chunk size 0":     {edit(func(m map[string]any) { m["chunk_size"] = 0 }), "chunk size"},
		"chunk size huge":  {edit(func(m map[string]any) { m["chunk_size"] = 1 << 40 }), "chunk size"},
		"negative size":    {edit(func(m map[string]any) { m["size"] = -1 }), "size"},
		"size huge":        {edit(func(m map[string]any) { m["size"] = int64(1) << 62 }), "size"},
		"size vs chunks":   {edit(func(m map[string]any) { m["size"] = 10 * testChunk }), "chunks listed"},
		"chunk count":      {edit(func(m map[string]any) { m["chunks"] = m["chunks"].([]any)[:2] }), "chunks listed"},
		"chunk size wrong": {edit(func(m map[string]any) { chunk(m, 1)["size"] = testChunk - 1 }), "chunk 1 has size"},
		"tail size wrong":  {edit(func(m map[string]any) { chunk(m, 3)["size"] = 4 }), "chunk 3 has size"},
		"stored huge":      {edit(func(m map[string]any) { chunk(m, 0)["stored"] = 1 << 40 }), "stored size"},
		"stored zero":      {edit(func(m map[string]any) { chunk(m, 0)["stored"] = 0 }), "stored size"},
		"bad hash":         {edit(func(m map[string]any) { chunk(m, 0)["sha256"] = "00" }), "hex digits"},
		"compression":      {edit(func(m map[string]any) { m["compression"] = "gzip" }), "compression"},
		"encryption":       {edit(func(m map[string]any) { m["encryption"] = "aes" }), "encryption"},
		"MAC without key":  {edit(func(m map[string]any) { m["mac"] = "00" }), "MAC"},
		"key unencrypted":  {edit(func(m map[string]any) { m["key"] = map[string]any{} }), "key"},
		"digest algorithm": {edit(func(m map[string]any) { m["digest"].(map[string]any)["algorithm"] = "md5" }), "digest"},
		"raw stored size": {func() []byte {
			raw := validManifest(t, false, false, 2*testChunk)
			return bytes.Replace(raw, []byte(fmt.Sprintf(`"stored": %d`, testChunk)), []byte(`"stored": 17`), 1)
		}(), "stored size"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			m, err := ParseManifest(c.data)
			if err == nil || !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("ParseManifest = %v, %v; want an ErrCorrupt mentioning %q", m, err, c.want)
			}
		})
	}
}

// TestManifestOversized: a manifest object beyond the limit is refused
// from its listed size, before it is read.
func TestManifestOversized(t *testing.T) {
	f := newFaultStore(localStore(t))
	big := bytes.Repeat([]byte(" "), 1024)
	f.Store.Put(context.Background(), ManifestKey, big)
	var limited = oversized{f}
	if _, err := ReadManifest(context.Background(), limited); err == nil || !strings.Contains(err.Error(), "beyond") {
		t.Fatalf("ReadManifest: %v", err)
	}
	if n := f.attempts(f.gets, ManifestKey); n != 0 {
		t.Fatalf("an oversized manifest was read %d times", n)
	}
}

// oversized reports every listed object as beyond the manifest limit.
type oversized struct{ *faultStore }

func (o oversized) List(ctx context.Context, prefix string, fn func(info blockstore.ObjectInfo) error) error {
	return o.faultStore.List(ctx, prefix, func(info blockstore.ObjectInfo) error {
		info.Size = maxManifestSize + 1
		return fn(info)
	})
}

// FuzzParseManifest: no input makes the decoder panic, and whatever it
// accepts satisfies the invariants the readers rely on.
func FuzzParseManifest(f *testing.F) {
	for _, m := range modes {
		f.Add(validManifest(f, m.encrypt, m.compress, 2*testChunk+3))
	}
	f.Add(validManifest(f, false, false, 0))
	f.Add([]byte(`{"format":"s3blk-stream","version":1}`))
	f.Add([]byte(`{"chunks":[{"size":-1}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseManifest(data)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error does not wrap ErrCorrupt: %v", err)
			}
			return
		}
		var total int64
		for i, c := range m.Chunks {
			if c.Size < 1 || c.Size > m.ChunkSize || c.Stored < 1 || c.Stored > maxStored(m.ChunkSize) {
				t.Fatalf("accepted chunk %d: %+v", i, c)
			}
			total += int64(c.Size)
		}
		if total != m.Size || m.ChunkSize < MinChunkSize || m.ChunkSize > MaxChunkSize || len(m.Chunks) > maxChunks {
			t.Fatalf("accepted manifest: size %d, chunk size %d, %d chunks summing to %d", m.Size, m.ChunkSize, len(m.Chunks), total)
		}
	})
}

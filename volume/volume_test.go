package volume_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/s3blk/s3blk/blockstore"
	"github.com/s3blk/s3blk/codec"
	"github.com/s3blk/s3blk/stats"
	"github.com/s3blk/s3blk/volume"
)

var ctx = context.Background()

// objects lists every key in store.
func objects(t *testing.T, store blockstore.Store) []string {
	t.Helper()
	var keys []string
	if err := store.List(ctx, "", func(o blockstore.ObjectInfo) error {
		keys = append(keys, o.Key)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return keys
}

func TestCreateReadHeaderRoundTrip(t *testing.T) {
	store := blockstore.NewLocal(t.TempDir())
	before := time.Now().UTC().Add(-time.Second)
	h, err := volume.Create(ctx, store, 1<<30, 1<<20, volume.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if h.Format != volume.FormatName || h.Version != volume.FormatVersion || h.Size != 1<<30 || h.BlockSize != 1<<20 {
		t.Fatalf("Create returned %+v", h)
	}
	if h.Compression != "none" || h.Encryption != "none" {
		t.Fatalf("codecs %q/%q, want none/none", h.Compression, h.Encryption)
	}
	if len(h.VolumeID) != 32 || strings.ToLower(h.VolumeID) != h.VolumeID {
		t.Fatalf("volume ID %q is not 32 lowercase hex digits", h.VolumeID)
	}
	if h.Created.Before(before) || h.Created.After(time.Now().Add(time.Second)) {
		t.Fatalf("creation time %v is not now", h.Created)
	}
	if h.Blocks() != 1024 {
		t.Fatalf("Blocks() = %d, want 1024", h.Blocks())
	}
	got, err := volume.ReadHeader(ctx, store)
	if err != nil {
		t.Fatal(err)
	}
	if *got != *h {
		t.Fatalf("ReadHeader = %+v, want %+v", got, h)
	}
	if keys := objects(t, store); len(keys) != 1 || keys[0] != volume.HeaderKey {
		t.Fatalf("Create left objects %q, want just the header", keys)
	}
	// The header is JSON with the documented field names.
	raw, err := store.Get(ctx, volume.HeaderKey)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("header is not JSON: %v", err)
	}
	for _, k := range []string{"format", "version", "volume_id", "size", "block_size", "created", "compression", "encryption"} {
		if _, ok := m[k]; !ok {
			t.Errorf("header JSON lacks %q: %s", k, raw)
		}
	}

	// Two volumes get different IDs.
	h2, err := volume.Create(ctx, blockstore.NewLocal(t.TempDir()), 1<<30, 1<<20, volume.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if h2.VolumeID == h.VolumeID {
		t.Fatal("two volumes got the same ID")
	}
}

func TestCreateGeometry(t *testing.T) {
	good := []struct {
		size int64
		bs   int
	}{
		{4096, 4096},
		{64 << 20, 64 << 20},
		{1 << 40, 1 << 20},
		{3 * 65536, 65536},
	}
	for _, g := range good {
		if err := volume.CheckGeometry(g.size, g.bs); err != nil {
			t.Errorf("CheckGeometry(%d, %d) = %v, want nil", g.size, g.bs, err)
		}
		store := blockstore.NewLocal(t.TempDir())
		if _, err := volume.Create(ctx, store, g.size, g.bs, volume.Options{}); err != nil {
			t.Errorf("Create(%d, %d) = %v", g.size, g.bs, err)
		}
	}
	bad := []struct {
		name string
		size int64
		bs   int
	}{
		{"size not a multiple", 1<<20 + 4096, 1 << 20},
		{"size smaller than a block", 4096, 8192},
		{"block size not a power of two", 3 * 4096 * 10, 3 * 4096},
		{"block size 5000", 5000 * 100, 5000},
		{"block size 2K", 1 << 20, 2048},
		{"block size 1", 1 << 20, 1},
		{"block size 0", 1 << 20, 0},
		{"block size negative", 1 << 20, -4096},
		{"block size 128M", 1 << 30, 128 << 20},
		{"block size 64M+4K", 1 << 30, 64<<20 + 4096},
		{"size 0", 0, 4096},
		{"size negative", -4096, 4096},
	}
	for _, b := range bad {
		t.Run(b.name, func(t *testing.T) {
			if err := volume.CheckGeometry(b.size, b.bs); err == nil {
				t.Errorf("CheckGeometry(%d, %d) accepted", b.size, b.bs)
			}
			dir := filepath.Join(t.TempDir(), "vol")
			store := blockstore.NewLocal(dir)
			h, err := volume.Create(ctx, store, b.size, b.bs, volume.Options{})
			if err == nil {
				t.Fatalf("Create(%d, %d) = %+v, want an error", b.size, b.bs, h)
			}
			if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("refused Create wrote to the store (stat: %v)", err)
			}
		})
	}
}

func TestCreateRefusesExistingVolume(t *testing.T) {
	dir := t.TempDir()
	store := blockstore.NewLocal(dir)
	if _, err := volume.Create(ctx, store, 1<<20, 4096, volume.Options{}); err != nil {
		t.Fatal(err)
	}
	orig, err := os.ReadFile(filepath.Join(dir, volume.HeaderKey))
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range [][2]int64{{1 << 20, 4096}, {1 << 30, 1 << 20}} {
		if h, err := volume.Create(ctx, store, g[0], int(g[1]), volume.Options{}); err == nil {
			t.Fatalf("second Create succeeded: %+v", h)
		} else if !strings.Contains(err.Error(), "already") {
			t.Errorf("second Create error %q does not say the volume already exists", err)
		}
	}
	now, err := os.ReadFile(filepath.Join(dir, volume.HeaderKey))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(orig, now) {
		t.Fatalf("a refused Create changed the header:\n%s\nbecame\n%s", orig, now)
	}
	if keys := objects(t, store); len(keys) != 1 {
		t.Fatalf("refused Create left objects: %q", keys)
	}
}

// TestCreateRace: of many concurrent creates on one prefix exactly one wins.
func TestCreateRace(t *testing.T) {
	store := blockstore.NewLocal(t.TempDir())
	var wg sync.WaitGroup
	var mu sync.Mutex
	var winners []*volume.Header
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h, err := volume.Create(ctx, store, 1<<20, 4096, volume.Options{})
			if err == nil {
				mu.Lock()
				winners = append(winners, h)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(winners) != 1 {
		t.Fatalf("%d concurrent creates succeeded, want 1", len(winners))
	}
	got, err := volume.ReadHeader(ctx, store)
	if err != nil || got.VolumeID != winners[0].VolumeID {
		t.Fatalf("stored header %+v (%v) is not the winner's %+v", got, err, winners[0])
	}
}

func TestCreateRefusesStrayBlocks(t *testing.T) {
	store := blockstore.NewLocal(t.TempDir())
	if err := store.Put(ctx, volume.BlockKey(7), []byte("old data")); err != nil {
		t.Fatal(err)
	}
	h, err := volume.Create(ctx, store, 1<<20, 4096, volume.Options{})
	if err == nil {
		t.Fatalf("Create over stray block objects succeeded: %+v", h)
	}
	if !strings.Contains(err.Error(), "block objects") {
		t.Errorf("error %q does not mention the block objects", err)
	}
	if _, err := store.Get(ctx, volume.HeaderKey); !errors.Is(err, blockstore.ErrNotFound) {
		t.Fatalf("refused Create wrote a header (Get: %v)", err)
	}
	if got, _ := store.Get(ctx, volume.BlockKey(7)); string(got) != "old data" {
		t.Fatalf("refused Create touched the stray block: %q", got)
	}
}

func TestReadHeaderNoVolume(t *testing.T) {
	for name, dir := range map[string]string{
		"empty dir":   t.TempDir(),
		"missing dir": filepath.Join(t.TempDir(), "nothing"),
	} {
		store := blockstore.NewLocal(dir)
		_, err := volume.ReadHeader(ctx, store)
		if !errors.Is(err, volume.ErrNoVolume) {
			t.Fatalf("%s: ReadHeader = %v, want ErrNoVolume", name, err)
		}
		if !strings.Contains(err.Error(), "s3blk create") {
			t.Errorf("%s: error %q does not point to `s3blk create`", name, err)
		}
		if v, err := volume.Open(ctx, store, nil, nil); !errors.Is(err, volume.ErrNoVolume) || v != nil {
			t.Fatalf("%s: Open = %v, %v; want nil, ErrNoVolume", name, v, err)
		}
	}
}

func TestReadHeaderMalformed(t *testing.T) {
	good := map[string]any{
		"format": volume.FormatName, "version": volume.FormatVersion,
		"volume_id": "000102030405060708090a0b0c0d0e0f", "size": 1 << 20, "block_size": 4096,
		"created": "2024-01-02T03:04:05Z", "compression": "none", "encryption": "none",
	}
	with := func(k string, v any) []byte {
		m := map[string]any{}
		for kk, vv := range good {
			m[kk] = vv
		}
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
		b, _ := json.Marshal(m)
		return b
	}
	// The baseline must be accepted, or the cases below prove nothing.
	{
		store := blockstore.NewLocal(t.TempDir())
		if err := store.Put(ctx, volume.HeaderKey, with("format", volume.FormatName)); err != nil {
			t.Fatal(err)
		}
		h, err := volume.ReadHeader(ctx, store)
		if err != nil {
			t.Fatalf("baseline header refused: %v", err)
		}
		if h.Size != 1<<20 || h.BlockSize != 4096 || h.VolumeID != "000102030405060708090a0b0c0d0e0f" {
			t.Fatalf("baseline header read as %+v", h)
		}
	}
	cases := map[string][]byte{
		"empty":                 {},
		"not JSON":              []byte("this is not json"),
		"truncated JSON":        with("format", volume.FormatName)[:40],
		"JSON array":            []byte(`[1,2,3]`),
		"JSON null":             []byte(`null`),
		"empty object":          []byte(`{}`),
		"wrong format":          with("format", "s3backer"),
		"no format":             with("format", nil),
		"version 2":             with("version", 2),
		"version 0":             with("version", 0),
		"version string":        with("version", "1"),
		"short volume id":       with("volume_id", "0001020304"),
		"long volume id":        with("volume_id", "000102030405060708090a0b0c0d0e0f00"),
		"non-hex volume id":     with("volume_id", "zz0102030405060708090a0b0c0d0e0f"),
		"empty volume id":       with("volume_id", ""),
		"size not multiple":     with("size", 1<<20+1),
		"size zero":             with("size", 0),
		"size negative":         with("size", -4096),
		"block size 1000":       with("block_size", 1000),
		"block size 2K":         with("block_size", 2048),
		"block size 128M":       with("block_size", 128<<20),
		"no block size":         with("block_size", nil),
		"encryption aes":        with("encryption", "aes-256-gcm"),
		"encryption missing":    with("encryption", nil),
		"compression lz4":       with("compression", "lz4"),
		"unknown field":         with("comment", "not covered by any MAC"),
		"encrypted, no key":     with("encryption", "xchacha20poly1305"),
		"xaes, no key":          with("encryption", "xaes256gcm"),
		"bad checksum":          with("mac", "sha256:00"),
		"trailing data":         append(with("format", volume.FormatName), []byte(`{}`)...),
		"compression missing":   with("compression", nil),
		"size as string":        with("size", "1M"),
		"huge block size float": with("block_size", 1e300),
	}
	for name, data := range cases {
		t.Run(name, func(t *testing.T) {
			store := blockstore.NewLocal(t.TempDir())
			if err := store.Put(ctx, volume.HeaderKey, data); err != nil {
				t.Fatal(err)
			}
			h, err := volume.ReadHeader(ctx, store)
			if err == nil {
				t.Fatalf("malformed header accepted as %+v:\n%s", h, data)
			}
			if errors.Is(err, volume.ErrNoVolume) {
				t.Errorf("a malformed header is reported as no volume (would invite `s3blk create`): %v", err)
			}
			if v, err := volume.Open(ctx, store, nil, nil); err == nil {
				t.Fatalf("Open accepted a malformed header: %+v", v.Header)
			}
		})
	}
}

func TestBlockKey(t *testing.T) {
	cases := map[uint64]string{
		0:           "blocks/0000000000000000",
		1:           "blocks/0000000000000001",
		0xdeadbeef:  "blocks/00000000deadbeef",
		1 << 40:     "blocks/0000010000000000",
		^uint64(0):  "blocks/ffffffffffffffff",
		0xabcdef123: "blocks/0000000abcdef123",
	}
	for index, want := range cases {
		if got := volume.BlockKey(index); got != want {
			t.Errorf("BlockKey(%d) = %q, want %q", index, got, want)
		}
		got, ok := volume.ParseBlockKey(want)
		if !ok || got != index {
			t.Errorf("ParseBlockKey(%q) = %d, %v; want %d", want, got, ok, index)
		}
	}
	// Round trip over a spread of indexes; keys sort like their indexes, so
	// a lexical listing is in block order.
	prev := ""
	for i := uint64(0); i < 1<<62; i = i*3 + 1 {
		k := volume.BlockKey(i)
		if len(k) != len(volume.BlockPrefix)+16 {
			t.Fatalf("BlockKey(%d) = %q: not 16 digits", i, k)
		}
		if k <= prev {
			t.Fatalf("BlockKey(%d) = %q sorts before %q", i, k, prev)
		}
		prev = k
		if j, ok := volume.ParseBlockKey(k); !ok || j != i {
			t.Fatalf("ParseBlockKey(BlockKey(%d)) = %d, %v", i, j, ok)
		}
	}
	for _, bad := range []string{
		"", "header", "lock", "blocks/", "blocks",
		"blocks/1", "blocks/000000000000001",
		"blocks/00000000000000001", // 17 digits
		"blocks/000000000000000g",
		"blocks/-000000000000001",
		"blocks/+000000000000001",
		"blocks/0x00000000000001",
		"blocks/ 000000000000001",
		"block/0000000000000001",
		"Blocks/0000000000000001",
		"xblocks/0000000000000001",
		"blocks/0000000000000001/",
		"blocks/0000000000000001.tmp",
		"blocks/.tmp-0000000000001",
		"blocks/00000000_0000001",
	} {
		if i, ok := volume.ParseBlockKey(bad); ok {
			t.Errorf("ParseBlockKey(%q) = %d, true; want false", bad, i)
		}
	}
}

// newVolume creates and opens a 1 MiB volume of 4 KiB blocks in a fresh
// directory.
func newVolume(t *testing.T) (*volume.Volume, string) {
	t.Helper()
	dir := t.TempDir()
	store := blockstore.NewLocal(dir)
	if _, err := volume.Create(ctx, store, 1<<20, 4096, volume.Options{}); err != nil {
		t.Fatal(err)
	}
	v, err := volume.Open(ctx, store, nil, new(stats.Counters))
	if err != nil {
		t.Fatal(err)
	}
	return v, dir
}

func pattern(seed byte, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i*7) + byte(i>>8)
	}
	return b
}

func TestVolumeBlocks(t *testing.T) {
	v, dir := newVolume(t)
	if v.BlockSize() != 4096 || v.Header.Blocks() != 256 {
		t.Fatalf("opened volume: block size %d, %d blocks", v.BlockSize(), v.Header.Blocks())
	}
	bs := v.BlockSize()

	// Missing block: found=false and dst untouched.
	dst := bytes.Repeat([]byte{0xee}, bs)
	found, err := v.ReadBlock(ctx, 3, dst)
	if err != nil || found {
		t.Fatalf("ReadBlock(missing) = %v, %v; want false, nil", found, err)
	}
	if !bytes.Equal(dst, bytes.Repeat([]byte{0xee}, bs)) {
		t.Fatal("ReadBlock of a missing block changed dst")
	}

	written := map[uint64][]byte{}
	for _, i := range []uint64{3, 0, 255, 17} {
		data := pattern(byte(i), bs)
		scratch := make([]byte, 0, bs+codec.MaxOverhead)
		obj, err := v.WriteBlock(ctx, i, data, scratch)
		if err != nil {
			t.Fatal(err)
		}
		if len(obj) != bs+(codec.HeaderSize+codec.TrailerSize) {
			t.Fatalf("WriteBlock returned a %d-byte object", len(obj))
		}
		if &obj[0] != &scratch[:1][0] {
			t.Error("WriteBlock did not use the scratch buffer")
		}
		written[i] = data
		if _, err := os.Stat(filepath.Join(dir, "blocks", fmt.Sprintf("%016x", i))); err != nil {
			t.Fatalf("block %d has no object file: %v", i, err)
		}
	}
	if got := v.Stats.Uploads.Load(); got != 4 {
		t.Errorf("Uploads = %d, want 4", got)
	}
	if got := v.Stats.UploadBytes.Load(); got != int64(4*(bs+(codec.HeaderSize+codec.TrailerSize))) {
		t.Errorf("UploadBytes = %d, want %d", got, 4*(bs+(codec.HeaderSize+codec.TrailerSize)))
	}
	for i, want := range written {
		dst := make([]byte, bs)
		found, err := v.ReadBlock(ctx, i, dst)
		if err != nil || !found {
			t.Fatalf("ReadBlock(%d) = %v, %v", i, found, err)
		}
		if !bytes.Equal(dst, want) {
			t.Fatalf("ReadBlock(%d) returned other data", i)
		}
	}
	if got := v.Stats.Downloads.Load(); got != 4 {
		t.Errorf("Downloads = %d, want 4", got)
	}
	if got := v.Stats.DownloadBytes.Load(); got != int64(4*(bs+(codec.HeaderSize+codec.TrailerSize))) {
		t.Errorf("DownloadBytes = %d", got)
	}

	// Overwrite replaces.
	newData := pattern(99, bs)
	if _, err := v.WriteBlock(ctx, 3, newData, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := v.ReadBlock(ctx, 3, dst); err != nil || !bytes.Equal(dst, newData) {
		t.Fatalf("overwritten block reads back wrong (%v)", err)
	}

	// Objects that are not blocks of this volume are ignored by ListBlocks.
	for _, k := range []string{"blocks/zzzz", "blocks/0000000000000100", "blocks/ffffffffffffffff", "other"} {
		if err := v.Store.Put(ctx, k, []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	list := func() []uint64 {
		var got []uint64
		if err := v.ListBlocks(ctx, func(i uint64) { got = append(got, i) }); err != nil {
			t.Fatal(err)
		}
		return got
	}
	if got := fmt.Sprint(list()); got != "[0 3 17 255]" {
		t.Fatalf("ListBlocks = %s, want [0 3 17 255]", got)
	}

	if err := v.DeleteBlock(ctx, 3); err != nil {
		t.Fatal(err)
	}
	if err := v.DeleteBlock(ctx, 4); err != nil { // never written
		t.Fatalf("DeleteBlock of a missing block: %v", err)
	}
	if got := v.Stats.Deletes.Load(); got != 2 {
		t.Errorf("Deletes = %d, want 2", got)
	}
	if found, err := v.ReadBlock(ctx, 3, dst); err != nil || found {
		t.Fatalf("ReadBlock after delete = %v, %v", found, err)
	}
	if got := fmt.Sprint(list()); got != "[0 17 255]" {
		t.Fatalf("ListBlocks after delete = %s", got)
	}
	if got := v.Stats.CorruptBlocks.Load(); got != 0 {
		t.Fatalf("CorruptBlocks = %d with no corruption", got)
	}
}

func TestOpenNilCounters(t *testing.T) {
	dir := t.TempDir()
	store := blockstore.NewLocal(dir)
	if _, err := volume.Create(ctx, store, 1<<20, 4096, volume.Options{}); err != nil {
		t.Fatal(err)
	}
	v, err := volume.Open(ctx, store, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if v.Stats == nil {
		t.Fatal("Open with nil counters left Stats nil")
	}
	if _, err := v.WriteBlock(ctx, 1, pattern(1, 4096), nil); err != nil {
		t.Fatal(err)
	}
}

func flipByte(t *testing.T, path string, off int) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if off < 0 {
		off += len(data)
	}
	data[off] ^= 0x40
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestCorruptBlock(t *testing.T) {
	v, dir := newVolume(t)
	bs := v.BlockSize()
	for _, off := range []int{0, 5, 17, codec.HeaderSize + 100, codec.HeaderSize + bs - 1, -1} {
		t.Run(strconv.Itoa(off), func(t *testing.T) {
			before := v.Stats.CorruptBlocks.Load()
			data := pattern(byte(off), bs)
			if _, err := v.WriteBlock(ctx, 9, data, nil); err != nil {
				t.Fatal(err)
			}
			flipByte(t, filepath.Join(dir, "blocks", fmt.Sprintf("%016x", 9)), off)
			dst := bytes.Repeat([]byte{0x11}, bs)
			found, err := v.ReadBlock(ctx, 9, dst)
			if !errors.Is(err, codec.ErrCorrupt) {
				t.Fatalf("ReadBlock of a corrupted object = %v, %v; want ErrCorrupt", found, err)
			}
			if found {
				t.Error("ReadBlock reported found=true with an error")
			}
			if !bytes.Equal(dst, bytes.Repeat([]byte{0x11}, bs)) {
				t.Error("ReadBlock wrote data from a corrupted object into dst")
			}
			if !strings.Contains(err.Error(), volume.BlockKey(9)) {
				t.Errorf("error %q does not name the object", err)
			}
			if got := v.Stats.CorruptBlocks.Load(); got != before+1 {
				t.Fatalf("CorruptBlocks = %d, want %d", got, before+1)
			}
		})
	}
}

// TestMisplacedObjects: an intact object copied to another block's key, or
// from another volume, is corruption too.
func TestMisplacedObjects(t *testing.T) {
	v, dir := newVolume(t)
	other, otherDir := newVolume(t)
	bs := v.BlockSize()
	if _, err := v.WriteBlock(ctx, 5, pattern(5, bs), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := other.WriteBlock(ctx, 7, pattern(7, bs), nil); err != nil {
		t.Fatal(err)
	}
	copyFile := func(from, to string) {
		data, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(to, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	copyFile(filepath.Join(dir, "blocks", "0000000000000005"), filepath.Join(dir, "blocks", "0000000000000006"))
	copyFile(filepath.Join(otherDir, "blocks", "0000000000000007"), filepath.Join(dir, "blocks", "0000000000000007"))
	dst := make([]byte, bs)
	if _, err := v.ReadBlock(ctx, 6, dst); !errors.Is(err, codec.ErrCorrupt) {
		t.Errorf("block 5's object read as block 6: %v", err)
	}
	if _, err := v.ReadBlock(ctx, 7, dst); !errors.Is(err, codec.ErrCorrupt) {
		t.Errorf("another volume's object read as ours: %v", err)
	}
	if got := v.Stats.CorruptBlocks.Load(); got != 2 {
		t.Errorf("CorruptBlocks = %d, want 2", got)
	}
	// The original is still fine.
	if found, err := v.ReadBlock(ctx, 5, dst); err != nil || !found || !bytes.Equal(dst, pattern(5, bs)) {
		t.Fatalf("block 5: %v %v", found, err)
	}
}

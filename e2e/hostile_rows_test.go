package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"strings"

	"github.com/s3blk/s3blk/codec"
)

// The rows of TestHostileObjects, by kind of object.

const (
	blk0 = "blocks/0000000000000000"
	blk1 = "blocks/0000000000000001"
)

// validLock is a lock object as another host's mount writes it.
var validLock = []byte(`{"host":"elsewhere","pid":1234,"mountpoint":"/mnt/x","since":"2026-01-01T00:00:00Z"}`)

func lockFrom(fn func(h *harness, o []byte) []byte) func(*harness, []byte) []byte {
	return func(h *harness, _ []byte) []byte { return fn(h, validLock) }
}

// copyOf plants a copy of another object of the same target.
func copyOf(key string) func(*harness, []byte) []byte {
	return func(h *harness, _ []byte) []byte { return h.getObject(key) }
}

// zstdBomb is a zstd frame of 60 MiB of zeros: a few KiB.
func zstdBomb() []byte { return codec.Compress(nil, make([]byte, 60<<20)) }

func hostileKinds() []hostileKind {
	const enc = "hostile/block/enc/"
	const plain = "hostile/plainblock/plain/"
	const encStream = "hostile/chunk/enc/"
	const rawStream = "hostile/rawchunk/raw/"
	kdf := func(field string, v any) func(*harness, []byte) []byte {
		return edit(func(m map[string]any) { m["key"].(map[string]any)["kdf"].(map[string]any)[field] = v })
	}
	return []hostileKind{
		{name: "header", target: "enc", key: "header", cmds: []string{"info", "mount", "verify", "passwd"}, rows: []hostileRow{
			{name: "empty", make: empty, want: "volume header is not valid"},
			{name: "huge", make: nil, want: "larger than", huge: true},
			{name: "random", make: random, want: "volume header is not valid"},
			{name: "truncated", make: truncated, want: "volume header is not valid"},
			{name: "null", make: func(*harness, []byte) []byte { return []byte("null") }, want: "header format"},
			{name: "deeply nested", make: func(*harness, []byte) []byte { return bytes.Repeat([]byte("["), 1<<20) }, want: "not valid"},
			{name: "other format", make: set("format", "s3blk-stream"), want: `header format "s3blk-stream"`},
			{name: "version 2", make: set("version", 2), want: "version 2 is not supported"},
			{name: "negative size", make: set("size", -65536), want: "size must be positive"},
			{name: "block size 0", make: set("size", 1<<62, "block_size", 0), want: "block size 0"},
			{name: "block size 3", make: set("block_size", 3), want: "block size 3"},
			{name: "size 2^63-1", make: set("size", int64(1<<63-1)), want: "not a multiple"},
			{name: "unknown field", make: set("blocks_at", "elsewhere"), want: "unknown field"},
			{name: "trailing data", make: func(_ *harness, o []byte) []byte { return append(bytes.Clone(o), "{}"...) }, want: "trailing data"},
			{name: "KDF of minutes", make: kdf("time", 100), want: "beyond the maximum"},
			{name: "KDF of 4 GiB", make: kdf("memory_kib", 4<<20), want: "beyond the maximum"},
			{name: "KDF too weak", make: kdf("memory_kib", 8), want: "weaker than the minimum"},
			{name: "tampered size", make: set("size", 128<<20), want: "tampered", ok: map[string]string{"info": "128 MiB"}},
			{name: "tampered key", make: edit(func(m map[string]any) {
				k := m["key"].(map[string]any)
				k["sealed"] = strings.Repeat("A", len(k["sealed"].(string))) // as long, all zeros
			}), want: "wrong passphrase", ok: map[string]string{"info": "argon2id"}},
		}},
		{name: "lock", target: "enc", key: "lock", cmds: []string{"info", "mount", "verify"}, rows: []hostileRow{
			{name: "empty", make: empty, want: "already mounted by an unreadable lock", ok: lockOK("unreadable")},
			{name: "huge", make: nil, want: "already mounted by an unreadable lock", ok: lockOK("unreadable"), huge: true},
			{name: "random", make: random, want: "already mounted by an unreadable lock", ok: lockOK("unreadable")},
			{name: "truncated", make: lockFrom(truncated), want: "already mounted by an unreadable lock", ok: lockOK("unreadable")},
			{name: "stack trace in host", make: lockFrom(set("host", "h\n\ngoroutine 1 [running]:\nmain.go:12\x1b[2J")),
				want: "already mounted by an unreadable lock", ok: lockOK("unreadable")},
			{name: "negative pid", make: lockFrom(set("pid", -5)), want: "already mounted by an unreadable lock", ok: lockOK("unreadable")},
			{name: "pid 2^62", make: lockFrom(set("pid", int64(1<<62))), want: "already mounted by host elsewhere", ok: lockOK("elsewhere")},
		}},
		{name: "block", target: "enc", key: blk0, cmds: []string{"info", "verify", "read"}, rows: []hostileRow{
			{name: "empty", make: empty, want: "1 bad block", ok: blockOK},
			{name: "huge", make: nil, want: "1 bad block", ok: blockOK, huge: true},
			{name: "random", make: random, want: "1 bad block", ok: blockOK},
			{name: "truncated", make: truncated, want: "1 bad block", ok: blockOK},
			{name: "bad magic", make: flip(0), want: "1 bad block", ok: blockOK},
			{name: "version 0", make: flip(4), want: "1 bad block", ok: blockOK},
			{name: "unknown flag", make: func(_ *harness, o []byte) []byte { c := bytes.Clone(o); c[5] |= 0x80; return c }, want: "1 bad block", ok: blockOK},
			{name: "length 2^32-1", make: func(_ *harness, o []byte) []byte { c := bytes.Clone(o); copy(c[16:], "\xff\xff\xff\xff"); return c }, want: "1 bad block", ok: blockOK},
			{name: "tampered", make: flip(-1), want: "1 bad block", ok: blockOK},
			{name: "moved from block 1", make: copyOf(enc + blk1), want: "1 bad block", ok: blockOK},
			{name: "downgraded to plaintext", make: func(h *harness, _ []byte) []byte {
				return plainBlock(h.volumeID(strings.TrimSuffix(enc, "/")), 0, 0, make([]byte, cryptoBlockSize))
			}, want: "1 bad block", ok: blockOK},
		}},
		{name: "plainblock", plain: true, target: "plain", key: blk0, cmds: []string{"info", "verify", "read"}, rows: []hostileRow{
			{name: "zstd bomb", make: func(h *harness, _ []byte) []byte {
				return plainBlock(h.volumeID(strings.TrimSuffix(plain, "/")), 0, codec.FlagZstd, zstdBomb())
			}, want: "1 bad block", ok: blockOK, huge: true},
			{name: "checksum", make: flip(-1), want: "1 bad block", ok: blockOK},
			{name: "other index", make: func(h *harness, _ []byte) []byte {
				return plainBlock(h.volumeID(strings.TrimSuffix(plain, "/")), 5, 0, make([]byte, cryptoBlockSize))
			}, want: "1 bad block", ok: blockOK},
			{name: "huge", make: nil, want: "1 bad block", ok: blockOK, huge: true},
		}},
		{name: "manifest", target: "enc", key: "manifest", cmds: []string{"get", "verify", "ls", "rm"}, rows: []hostileRow{
			{name: "empty", make: empty, want: "manifest: not valid", ok: badManifest},
			{name: "huge", make: nil, want: "beyond the", ok: badManifest, huge: true},
			{name: "random", make: random, want: "manifest: not valid", ok: badManifest},
			{name: "truncated", make: truncated, want: "manifest: not valid", ok: badManifest},
			{name: "version 9", make: set("version", 9), want: "version 9", ok: badManifest},
			{name: "2^40 chunks", make: set("size", int64(1<<40)*65536), want: "out of range", ok: badManifest},
			{name: "chunk size 0", make: set("chunk_size", 0), want: "chunk size 0", ok: badManifest},
			{name: "negative size", make: set("size", -1), want: "size -1", ok: badManifest},
			{name: "stored 2^40", make: edit(func(m map[string]any) { m["chunks"].([]any)[0].(map[string]any)["stored"] = int64(1 << 40) }),
				want: "stored size", ok: badManifest},
			{name: "chunk list null", make: set("chunks", nil), want: "chunks listed", ok: badManifest},
			{name: "unknown field", make: set("extra", true), want: "unknown field", ok: badManifest},
			{name: "tampered", make: set("host", "elsewhere"), want: "MAC mismatch", ok: map[string]string{"ls": "complete", "rm": "removed"}},
		}},
		{name: "chunk", target: "enc", key: "000000000001", cmds: []string{"get", "verify", "ls"}, rows: []hostileRow{
			{name: "empty", make: empty, want: "chunk 1", ok: chunkOK},
			{name: "huge", make: nil, want: "chunk 1", ok: chunkOK, huge: true},
			{name: "random", make: random, want: "chunk 1", ok: chunkOK},
			{name: "truncated", make: truncated, want: "chunk 1", ok: chunkOK},
			{name: "tampered", make: flip(-1), want: "chunk 1", ok: chunkOK},
			{name: "moved from chunk 0", make: copyOf(encStream + "000000000000"), want: "chunk 1", ok: chunkOK},
		}},
		{name: "rawchunk", plain: true, target: "raw", key: "000000000001", cmds: []string{"get", "verify", "ls"}, rows: []hostileRow{
			{name: "zstd bomb", make: func(h *harness, _ []byte) []byte {
				bomb := zstdBomb()
				sum := sha256.Sum256(bomb)
				h.putObject(rawStream+"manifest", editJSON(h.t, h.getObject(rawStream+"manifest"), func(m map[string]any) {
					c := m["chunks"].([]any)[1].(map[string]any)
					c["stored"], c["sha256"] = len(bomb), hex.EncodeToString(sum[:])
				}))
				return bomb
			}, want: "chunk 1", ok: chunkOK, huge: true},
			{name: "damaged", make: flip(-1), want: "chunk 1", ok: chunkOK},
			{name: "huge", make: nil, want: "chunk 1", ok: chunkOK, huge: true},
		}},
	}
}

func lockOK(s string) map[string]string { return map[string]string{"info": s, "verify": "0 bad"} }

var (
	blockOK     = map[string]string{"info": "stored blocks"}
	badManifest = map[string]string{"ls": "BAD MANIFEST", "rm": "removed"}
	chunkOK     = map[string]string{"ls": "complete"}
)

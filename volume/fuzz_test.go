package volume_test

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/s3blk/s3blk/volume"
)

// FuzzParseBlockKey: a key is accepted only in the one form BlockKey
// writes, so every block has exactly one key; every index round-trips.
func FuzzParseBlockKey(f *testing.F) {
	for _, k := range []string{"blocks/0000000000000000", "blocks/00000000000003e7", "blocks/00000000000003E7", "blocks/ffffffffffffffff",
		"blocks/+000000000000001", "blocks/0x00000000000001", "blocks/000000000000001", "blocks/0000000000000000/x", "header", ""} {
		f.Add(k, uint64(999))
	}
	f.Fuzz(func(t *testing.T, key string, index uint64) {
		if i, ok := volume.ParseBlockKey(key); ok && volume.BlockKey(i) != key {
			t.Fatalf("ParseBlockKey(%q) = %d, whose key is %q", key, i, volume.BlockKey(i))
		}
		if i, ok := volume.ParseBlockKey(volume.BlockKey(index)); !ok || i != index {
			t.Fatalf("index %d: key %q parses as %d, %v", index, volume.BlockKey(index), i, ok)
		}
	})
}

// FuzzParseLock: any lock object yields a holder (a lock object always
// means locked), whose description is one printable line; a lock this
// program wrote reads back as written.
func FuzzParseLock(f *testing.F) {
	me := volume.NewLockInfo("/mnt/vol1")
	good, _ := json.MarshalIndent(me, "", "  ")
	f.Add(good, "host-a", 42, "/mnt/x")
	f.Add([]byte(`{"host":"h\n goroutine 1 [running]:","pid":1}`), "h", 1, "/")
	f.Add([]byte(`{"pid":-1}`), "", -1, "")
	f.Add([]byte(`{"since":"not a time"}`), "h", 1, "")
	f.Add([]byte(`null`), "\x1b[31mred", 7, "/m")
	f.Add([]byte{}, "h", 0, "")
	f.Fuzz(func(t *testing.T, data []byte, host string, pid int, mnt string) {
		l := volume.ParseLock(data)
		if l == nil {
			t.Fatalf("ParseLock(%q) = nil: a lock object must lock", data)
		}
		desc := l.String()
		for _, r := range desc {
			if !unicode.IsPrint(r) {
				t.Fatalf("ParseLock(%q) is described with non-printable %q: %q", data, r, desc)
			}
		}
		if len(desc) > 3000 {
			t.Fatalf("ParseLock of %d bytes described in %d bytes", len(data), len(desc))
		}
		// Round trip of a lock as Lock writes it.
		w := volume.NewLockInfo(mnt)
		w.Host, w.PID = host, pid
		raw, _ := json.MarshalIndent(w, "", "  ")
		// JSON stores invalid UTF-8 as U+FFFD: compare with what was stored.
		json.Unmarshal(raw, &w)
		back := volume.ParseLock(raw)
		sane := pid > 0 && len(w.Host) <= 1024 && len(w.Mountpoint) <= 1024 && isPrintable(w.Host) && isPrintable(w.Mountpoint)
		if sane && (back.Host != w.Host || back.PID != w.PID || back.Mountpoint != w.Mountpoint || !back.Since.Equal(w.Since)) {
			t.Fatalf("lock %+v read back as %+v", w, back)
		}
		if !sane && !strings.Contains(back.String(), "unreadable") {
			t.Fatalf("lock %+v with a bad field read back as %+v", w, back)
		}
	})
}

func isPrintable(s string) bool {
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return false
		}
	}
	return utf8.ValidString(s)
}

package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/s3blk/s3blk/blockstore"
	"github.com/s3blk/s3blk/crypto"
	"github.com/s3blk/s3blk/stream"
)

func testStream(t *testing.T, encrypt bool) (*blockstore.Local, *passphraseFlags) {
	t.Helper()
	dir := t.TempDir()
	pw := filepath.Join(dir, "pw")
	os.WriteFile(pw, []byte("cmd test passphrase\n"), 0o600)
	pf := &passphraseFlags{file: pw}
	store := blockstore.NewLocal(filepath.Join(dir, "s"))
	cfg := stream.Config{ChunkSize: stream.MinChunkSize, NoEncryption: !encrypt,
		Passphrase: func() ([]byte, error) { return pf.read("", true) }}
	data := bytes.Repeat([]byte("0123456789abcdef"), 3000)
	if _, err := stream.Put(context.Background(), store, bytes.NewReader(data), cfg); err != nil {
		t.Fatal(err)
	}
	return store, pf
}

// TestVerifyStream: the entry point `s3blk verify` dispatches to accepts a
// good stream, names bad chunks, and reports a wrong passphrase.
func TestVerifyStream(t *testing.T) {
	ctx := context.Background()
	store, pf := testStream(t, true)
	if ok, err := isStream(ctx, store); !ok || err != nil {
		t.Fatalf("isStream = %v, %v", ok, err)
	}
	if err := verifyStream(ctx, store, pf, true); err != nil {
		t.Fatalf("verifyStream of a good stream: %v", err)
	}
	obj := filepath.Join(store.Root, stream.ChunkKey(3))
	data, _ := os.ReadFile(obj)
	data[10] ^= 1
	os.WriteFile(obj, data, 0o600)
	err := verifyStream(ctx, store, pf, true)
	if !errors.Is(err, stream.ErrCorrupt) || !strings.Contains(err.Error(), "bad chunks: 3") {
		t.Fatalf("verifyStream of a damaged stream: %v", err)
	}
	wrong := filepath.Join(t.TempDir(), "wrong")
	os.WriteFile(wrong, []byte("nope"), 0o600)
	err = verifyStream(ctx, store, &passphraseFlags{file: wrong}, true)
	if !errors.Is(err, crypto.ErrWrongPassphrase) || strings.Count(oneLine(err), "wrong passphrase") != 1 {
		t.Fatalf("verifyStream with a wrong passphrase: %v", err)
	}
	if ok, err := isStream(ctx, blockstore.NewLocal(t.TempDir())); ok || err != nil {
		t.Fatalf("isStream of an empty prefix = %v, %v", ok, err)
	}
}

func TestRetriesFlag(t *testing.T) {
	for in, want := range map[string]int{"0": 0, "3": 3, "forever": stream.RetryForever} {
		var r retriesValue
		if err := r.Set(in); err != nil || r.n != want {
			t.Errorf("Set(%q) = %d, %v", in, r.n, err)
		}
	}
	for _, in := range []string{"", "-1", "x", "1.5", "Forever"} {
		var r retriesValue
		if err := r.Set(in); err == nil {
			t.Errorf("Set(%q) accepted", in)
		}
	}
}

func TestSplitProducer(t *testing.T) {
	own, cmd, err := splitProducer([]string{"s3://b/x", "--quiet", "--", "pg_dump", "--", "db"})
	if err != nil || !reflect.DeepEqual(own, []string{"s3://b/x", "--quiet"}) || !reflect.DeepEqual(cmd, []string{"pg_dump", "--", "db"}) {
		t.Fatalf("splitProducer = %q, %q, %v", own, cmd, err)
	}
	if _, _, err := splitProducer([]string{"s3://b/x", "--"}); err == nil {
		t.Fatal("a trailing -- was accepted")
	}
	fs := flag.NewFlagSet("put", flag.ContinueOnError)
	fs.Bool("quiet", false, "")
	if pos, err := parseArgs(fs, own, 1, "URL"); err != nil || pos[0] != "s3://b/x" {
		t.Fatalf("parseArgs = %v, %v", pos, err)
	}
}

// TestProgressLine: bytes, percentage, rate and ETA when the total is
// known; bytes and rate when not. A nil progress does nothing.
func TestProgressLine(t *testing.T) {
	p := &progress{total: 100 << 20}
	p.Add(25 << 20)
	if got, want := p.line(10*time.Second), "25 MiB of 100 MiB (25%)  2.5 MiB/s  ETA 0:30  0:10 elapsed"; got != want {
		t.Errorf("line = %q, want %q", got, want)
	}
	p = &progress{}
	p.Add(3 << 30)
	if got, want := p.line(3725*time.Second), "3 GiB  844.5 KiB/s  1:02:05 elapsed"; got != want {
		t.Errorf("line = %q, want %q", got, want)
	}
	var none *progress
	none.Add(1)
	none.Done()

	var out bytes.Buffer
	p = startProgress(&out, 10, time.Millisecond) // read after Done: the drawer has stopped
	p.Add(10)
	time.Sleep(5 * time.Millisecond)
	p.Log("bad chunk %d", 7)
	p.Done()
	p.Done()
	s := out.String()
	if !strings.Contains(s, "\r\033[Kbad chunk 7\n") || !strings.HasSuffix(s, "elapsed\n") || !strings.Contains(s, "10 B of 10 B (100%)") {
		t.Fatalf("progress output %q", s)
	}
}

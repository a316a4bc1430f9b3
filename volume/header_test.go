package volume_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/s3blk/s3blk/blockstore"
	"github.com/s3blk/s3blk/codec"
	"github.com/s3blk/s3blk/crypto"
	"github.com/s3blk/s3blk/volume"
)

var pass = []byte("correct horse battery staple")

func newEncrypted(t *testing.T, store blockstore.Store) *volume.Header {
	t.Helper()
	h, err := volume.Create(ctx, store, 1<<20, 4096, volume.Options{Passphrase: pass, Compress: true})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestEncryptedVolumeOpensOnlyWithItsPassphrase(t *testing.T) {
	store := blockstore.NewLocal(t.TempDir())
	h := newEncrypted(t, store)
	if !h.Encrypted() || h.Compression != volume.CompressionZstd || h.Key == nil || !strings.HasPrefix(h.MAC, "hmac-sha256:") {
		t.Fatalf("header %+v", h)
	}
	raw, _ := store.Get(ctx, volume.HeaderKey)
	if bytes.Contains(raw, pass) {
		t.Fatal("passphrase stored in the header")
	}
	v, err := volume.Open(ctx, store, pass, nil)
	if err != nil {
		t.Fatal(err)
	}
	block := bytes.Repeat([]byte("plaintext!"), 410)[:4096]
	if _, err := v.WriteBlock(ctx, 3, block, nil); err != nil {
		t.Fatal(err)
	}
	obj, _ := store.Get(ctx, volume.BlockKey(3))
	if bytes.Contains(obj, []byte("plaintext!")) || obj[5] != codec.FlagZstd|codec.FlagEncrypted {
		t.Fatalf("block object is not compressed and sealed: flags %#x", obj[5])
	}
	got := make([]byte, 4096)
	if found, err := v.ReadBlock(ctx, 3, got); !found || err != nil || !bytes.Equal(got, block) {
		t.Fatalf("ReadBlock = %v, %v", found, err)
	}

	if _, err := volume.Open(ctx, store, []byte("wrong"), nil); !errors.Is(err, crypto.ErrWrongPassphrase) {
		t.Fatalf("wrong passphrase: %v", err)
	}
	if _, err := volume.Open(ctx, store, nil, nil); !errors.Is(err, volume.ErrNeedPassphrase) {
		t.Fatalf("no passphrase: %v", err)
	}
}

// Every data cipher makes a volume whose blocks round-trip, sealed under
// the cipher its header names; the other cipher's volume cannot read them,
// and an unknown cipher is refused before anything is written.
func TestVolumeCiphers(t *testing.T) {
	block := bytes.Repeat([]byte("plaintext!"), 410)[:4096]
	objects := map[string][]byte{}
	for _, cipher := range crypto.Ciphers() {
		store := blockstore.NewLocal(t.TempDir())
		h, err := volume.Create(ctx, store, 1<<20, 4096, volume.Options{Passphrase: pass, Cipher: cipher})
		if err != nil || h.Encryption != cipher {
			t.Fatalf("%s: created %+v, %v", cipher, h, err)
		}
		v, err := volume.Open(ctx, store, pass, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := v.WriteBlock(ctx, 1, block, nil); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, 4096)
		if found, err := v.ReadBlock(ctx, 1, got); !found || err != nil || !bytes.Equal(got, block) {
			t.Fatalf("%s: ReadBlock = %v, %v", cipher, found, err)
		}
		obj, _ := store.Get(ctx, volume.BlockKey(1))
		if bytes.Contains(obj, []byte("plaintext!")) || len(obj) != codec.HeaderSize+crypto.Overhead+4096 {
			t.Fatalf("%s: block object of %d bytes is not one sealed block", cipher, len(obj))
		}
		objects[cipher] = obj
	}
	// Each volume's object, moved into the other volume: its header names
	// another cipher (and the volume ID differs), so it fails authentication.
	for _, cipher := range crypto.Ciphers() {
		store := blockstore.NewLocal(t.TempDir())
		volume.Create(ctx, store, 1<<20, 4096, volume.Options{Passphrase: pass, Cipher: cipher})
		v, _ := volume.Open(ctx, store, pass, nil)
		for other, obj := range objects {
			if other == cipher {
				continue
			}
			store.Put(ctx, volume.BlockKey(1), obj)
			if _, err := v.ReadBlock(ctx, 1, make([]byte, 4096)); !errors.Is(err, codec.ErrCorrupt) {
				t.Fatalf("a %s object read in a %s volume: %v", other, cipher, err)
			}
		}
	}
	store := blockstore.NewLocal(t.TempDir())
	if _, err := volume.Create(ctx, store, 1<<20, 4096, volume.Options{Passphrase: pass, Cipher: "aes128cbc"}); err == nil {
		t.Fatal("an unknown cipher was accepted")
	}
	if _, err := store.Get(ctx, volume.HeaderKey); !errors.Is(err, blockstore.ErrNotFound) {
		t.Fatalf("a refused create wrote a header: %v", err)
	}
}

// TestHeaderTamperingDetected edits every field of an encrypted header (as
// someone with write access to the bucket could) and requires Open to
// refuse each edit. (Replacing the whole header with an unencrypted one is
// a valid header; that the sealed blocks then never read as data is tested
// in codec's TestNoDowngradeOrUpgrade and e2e's TestCryptoHeaderTamper.)
func TestHeaderTamperingDetected(t *testing.T) {
	store := blockstore.NewLocal(t.TempDir())
	newEncrypted(t, store)
	raw, _ := store.Get(ctx, volume.HeaderKey)
	edits := map[string]func(m map[string]any){
		"size":        func(m map[string]any) { m["size"] = 2 << 20 },
		"block size":  func(m map[string]any) { m["block_size"] = 8192 },
		"volume id":   func(m map[string]any) { m["volume_id"] = "000102030405060708090a0b0c0d0e0f" },
		"compression": func(m map[string]any) { m["compression"] = "none" },
		"created":     func(m map[string]any) { m["created"] = "2020-01-01T00:00:00Z" },
		"mac":         func(m map[string]any) { m["mac"] = "hmac-sha256:00" },
		"no mac":      func(m map[string]any) { delete(m, "mac") },
		"kdf memory":  func(m map[string]any) { m["key"].(map[string]any)["kdf"].(map[string]any)["memory_kib"] = 1024 },
		"kdf time":    func(m map[string]any) { m["key"].(map[string]any)["kdf"].(map[string]any)["time"] = 4 },
	}
	for name, edit := range edits {
		t.Run(name, func(t *testing.T) {
			var m map[string]any
			if err := json.Unmarshal(raw, &m); err != nil {
				t.Fatal(err)
			}
			edit(m)
			data, _ := json.Marshal(m)
			s := blockstore.NewLocal(t.TempDir())
			if err := s.Put(ctx, volume.HeaderKey, data); err != nil {
				t.Fatal(err)
			}
			v, err := volume.Open(ctx, s, pass, nil)
			if err == nil {
				t.Fatalf("edited header accepted: %+v", v.Header)
			}
		})
	}
}

func TestChangePassphrase(t *testing.T) {
	store := blockstore.NewLocal(t.TempDir())
	h := newEncrypted(t, store)
	v, _ := volume.Open(ctx, store, pass, nil)
	block := bytes.Repeat([]byte{7}, 4096)
	if _, err := v.WriteBlock(ctx, 1, block, nil); err != nil {
		t.Fatal(err)
	}
	objBefore, _ := store.Get(ctx, volume.BlockKey(1))

	if err := volume.ChangePassphrase(ctx, store, []byte("wrong"), []byte("new")); !errors.Is(err, crypto.ErrWrongPassphrase) {
		t.Fatalf("passwd with a wrong old passphrase: %v", err)
	}
	if err := volume.ChangePassphrase(ctx, store, pass, []byte("new passphrase")); err != nil {
		t.Fatal(err)
	}
	if _, err := volume.Open(ctx, store, pass, nil); !errors.Is(err, crypto.ErrWrongPassphrase) {
		t.Fatalf("old passphrase after passwd: %v", err)
	}
	v2, err := volume.Open(ctx, store, []byte("new passphrase"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if v2.Header.VolumeID != h.VolumeID || v2.Header.Size != h.Size {
		t.Fatal("passwd changed the volume's identity or geometry")
	}
	objAfter, _ := store.Get(ctx, volume.BlockKey(1))
	if !bytes.Equal(objBefore, objAfter) {
		t.Fatal("passwd rewrote a block")
	}
	got := make([]byte, 4096)
	if found, err := v2.ReadBlock(ctx, 1, got); !found || err != nil || !bytes.Equal(got, block) {
		t.Fatalf("block after passwd: %v %v", found, err)
	}
	plain := blockstore.NewLocal(t.TempDir())
	volume.Create(ctx, plain, 1<<20, 4096, volume.Options{})
	if err := volume.ChangePassphrase(ctx, plain, pass, pass); err == nil {
		t.Fatal("passwd on an unencrypted volume succeeded")
	}
}

// TestBlockFromAnotherVolumeWithSamePassphrase copies a block object between
// two volumes created with one passphrase: each has its own master key and
// volume ID, so the copy must fail to open.
func TestBlockFromAnotherVolumeWithSamePassphrase(t *testing.T) {
	a, b := blockstore.NewLocal(t.TempDir()), blockstore.NewLocal(t.TempDir())
	newEncrypted(t, a)
	newEncrypted(t, b)
	va, _ := volume.Open(ctx, a, pass, nil)
	vb, _ := volume.Open(ctx, b, pass, nil)
	if _, err := va.WriteBlock(ctx, 2, bytes.Repeat([]byte{1}, 4096), nil); err != nil {
		t.Fatal(err)
	}
	obj, _ := a.Get(ctx, volume.BlockKey(2))
	b.Put(ctx, volume.BlockKey(2), obj)
	if _, err := vb.ReadBlock(ctx, 2, make([]byte, 4096)); !errors.Is(err, codec.ErrCorrupt) {
		t.Fatalf("block copied from another volume: %v", err)
	}
	if got := vb.Stats.CorruptBlocks.Load(); got != 1 {
		t.Fatalf("corrupt_blocks = %d, want 1", got)
	}
}

func TestUnencryptedHeaderChecksum(t *testing.T) {
	store := blockstore.NewLocal(t.TempDir())
	h, err := volume.Create(ctx, store, 1<<20, 4096, volume.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h.MAC, "sha256:") {
		t.Fatalf("unencrypted header MAC %q", h.MAC)
	}
	raw, _ := store.Get(ctx, volume.HeaderKey)
	damaged := bytes.Replace(raw, []byte(`"size": 1048576`), []byte(`"size": 2097152`), 1)
	if bytes.Equal(damaged, raw) {
		t.Fatal("test did not find the size field")
	}
	store.Put(ctx, volume.HeaderKey, damaged)
	if _, err := volume.ReadHeader(ctx, store); err == nil || !strings.Contains(err.Error(), "damaged") {
		t.Fatalf("damaged header: %v", err)
	}
}

// FuzzParseHeader: any header object is either refused with an error or
// yields a header that passes validation; never a panic.
func FuzzParseHeader(f *testing.F) {
	for _, opt := range []volume.Options{{}, {Passphrase: pass, Compress: true}} {
		s := blockstore.NewLocal(f.TempDir())
		if _, err := volume.Create(ctx, s, 1<<20, 4096, opt); err != nil {
			f.Fatal(err)
		}
		raw, _ := s.Get(ctx, volume.HeaderKey)
		f.Add(raw)
	}
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"format":"s3blk-volume","version":1,"key":{"kdf":{"memory_kib":4294967295}}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := volume.ParseHeader(data)
		if err != nil {
			return
		}
		if h.Size <= 0 || h.BlockSize < volume.MinBlockSize || h.Size%int64(h.BlockSize) != 0 {
			t.Fatalf("accepted a header with bad geometry: %+v", h)
		}
		if h.Encrypted() && (h.Key == nil || h.Key.KDF.Check() != nil) {
			t.Fatalf("accepted an encrypted header without a sound key: %+v", h)
		}
	})
}

// TestReadsFirstFormatVolume: a volume written by s3blk before XAES-256-GCM
// existed (XChaCha20-Poly1305 blocks, November 2026; testdata made with that
// release's volume package) still opens and reads byte for byte: block 0
// compressed, block 5 random (stored uncompressed), the rest never written.
func TestReadsFirstFormatVolume(t *testing.T) {
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS("testdata/xchacha20poly1305-v1")); err != nil {
		t.Fatal(err)
	}
	v, err := volume.Open(ctx, blockstore.NewLocal(dir), []byte("compat passphrase"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if v.Header.Encryption != volume.EncryptionXChaCha20Poly1305 {
		t.Fatalf("the fixture's cipher is %q", v.Header.Encryption)
	}
	want := map[uint64]string{
		0: "c7d93b9d8d801e0852f555b4cb9536ea38ea24ab834072f8ee2eabea28dedb03",
		5: "15bc30e1b43c6dc15a4ebdb7f8b6bfd0d3245bfe346aa9f4aceaee566142dfee",
	}
	for index := range uint64(16) {
		got := make([]byte, 4096)
		found, err := v.ReadBlock(ctx, index, got)
		sum := sha256.Sum256(got)
		switch {
		case err != nil:
			t.Fatalf("block %d: %v", index, err)
		case found != (want[index] != ""):
			t.Fatalf("block %d: found = %v", index, found)
		case found && hex.EncodeToString(sum[:]) != want[index]:
			t.Fatalf("block %d reads as other bytes (SHA-256 %x)", index, sum)
		}
	}
	if _, err := volume.Open(ctx, blockstore.NewLocal(dir), []byte("compat passphrasf"), nil); !errors.Is(err, crypto.ErrWrongPassphrase) {
		t.Fatalf("wrong passphrase: %v", err)
	}
}

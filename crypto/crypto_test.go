package crypto

import (
	"bytes"
	"errors"
	"testing"
)

func testAEAD(t testing.TB) *AEAD {
	k, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	a, err := NewAEAD(k.Derive(PurposeBlock, []byte("vol")))
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestSealOpen(t *testing.T) {
	a := testAEAD(t)
	msg := []byte("attack at dawn")
	ad := []byte("block 7")
	sealed := a.Seal([]byte("prefix"), msg, ad)
	if !bytes.HasPrefix(sealed, []byte("prefix")) || len(sealed) != len("prefix")+Overhead+len(msg) {
		t.Fatalf("sealed has the wrong shape: %d bytes", len(sealed))
	}
	sealed = sealed[len("prefix"):]
	if bytes.Contains(sealed, msg) {
		t.Fatal("plaintext visible in sealed message")
	}
	got, err := a.Open(nil, sealed, ad)
	if err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("Open = %q, %v", got, err)
	}
	// A fresh nonce every time: two seals of the same message differ.
	if bytes.Equal(a.Seal(nil, msg, ad), a.Seal(nil, msg, ad)) {
		t.Fatal("two seals of one message are equal: nonce reuse")
	}
	for i := range sealed {
		bad := bytes.Clone(sealed)
		bad[i] ^= 0x01
		if _, err := a.Open(nil, bad, ad); !errors.Is(err, ErrAuth) {
			t.Fatalf("flipping byte %d: err = %v", i, err)
		}
	}
	if _, err := a.Open(nil, sealed, []byte("block 8")); !errors.Is(err, ErrAuth) {
		t.Fatalf("other ad: err = %v", err)
	}
	if _, err := a.Open(nil, sealed[:len(sealed)-1], ad); !errors.Is(err, ErrAuth) {
		t.Fatalf("truncated: err = %v", err)
	}
	if _, err := a.Open(nil, sealed[:3], ad); !errors.Is(err, ErrAuth) {
		t.Fatalf("short: err = %v", err)
	}
	if _, err := testAEAD(t).Open(nil, sealed, ad); !errors.Is(err, ErrAuth) {
		t.Fatalf("other key: err = %v", err)
	}
}

func TestDeriveSeparatesPurposesAndIDs(t *testing.T) {
	k, _ := NewKey()
	seen := map[string]string{}
	for _, p := range []string{PurposeBlock, PurposeHeaderMAC, PurposeStreamChunk, PurposeManifestMAC, PurposeStreamDigest} {
		for _, id := range []string{"a", "b"} {
			sub := string(k.Derive(p, []byte(id)))
			if len(sub) != KeySize {
				t.Fatalf("subkey of %d bytes", len(sub))
			}
			if prev, dup := seen[sub]; dup {
				t.Fatalf("%s/%s repeats the subkey of %s", p, id, prev)
			}
			seen[sub] = p + "/" + id
		}
	}
	if !bytes.Equal(k.Derive(PurposeBlock, []byte("a")), k.Derive(PurposeBlock, []byte("a"))) {
		t.Fatal("Derive is not deterministic")
	}
}

func TestWrapUnwrap(t *testing.T) {
	k, _ := NewKey()
	w, err := Wrap(&k, []byte("correct horse"), []byte("vol-1"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := w.Unwrap([]byte("correct horse"), []byte("vol-1"))
	if err != nil || got != k {
		t.Fatalf("Unwrap = %v", err)
	}
	if _, err := w.Unwrap([]byte("correct horsf"), []byte("vol-1")); !errors.Is(err, ErrWrongPassphrase) {
		t.Fatalf("wrong passphrase: err = %v", err)
	}
	if _, err := w.Unwrap([]byte("correct horse"), []byte("vol-2")); !errors.Is(err, ErrWrongPassphrase) {
		t.Fatalf("other context: err = %v", err)
	}
	if _, err := Wrap(&k, nil, nil); !errors.Is(err, ErrEmptyPassphrase) {
		t.Fatalf("empty passphrase: err = %v", err)
	}
	// Re-wrapping (passwd) gives a new salt and nonce for the same key.
	w2, _ := Wrap(&k, []byte("new"), []byte("vol-1"))
	if bytes.Equal(w2.KDF.Salt, w.KDF.Salt) || bytes.Equal(w2.Sealed, w.Sealed) {
		t.Fatal("re-wrap reused salt or nonce")
	}
	if got, err := w2.Unwrap([]byte("new"), []byte("vol-1")); err != nil || got != k {
		t.Fatalf("re-wrapped Unwrap = %v", err)
	}
}

func TestWeakOrHostileKDFRefused(t *testing.T) {
	k, _ := NewKey()
	w, _ := Wrap(&k, []byte("pw"), nil)
	for name, edit := range map[string]func(*KDF){
		"low memory":  func(p *KDF) { p.MemoryKiB = 1024 },
		"one pass":    func(p *KDF) { p.Time = 1 },
		"no threads":  func(p *KDF) { p.Threads = 0 },
		"short salt":  func(p *KDF) { p.Salt = p.Salt[:8] },
		"scrypt":      func(p *KDF) { p.Algorithm = "scrypt" },
		"huge memory": func(p *KDF) { p.MemoryKiB = 1 << 30 },
		"huge time":   func(p *KDF) { p.Time = 1 << 30 },
		// The old maxima: minutes of Argon2id and 4 GiB for one mount.
		"4 GiB": func(p *KDF) { p.MemoryKiB = 4 << 20 },
		"t=100": func(p *KDF) { p.Time = 100 },
	} {
		bad := w
		bad.KDF.Salt = bytes.Clone(w.KDF.Salt)
		edit(&bad.KDF)
		if _, err := bad.Unwrap([]byte("pw"), nil); err == nil || errors.Is(err, ErrWrongPassphrase) {
			t.Errorf("%s: err = %v, want a parameter error", name, err)
		}
	}
	bad := w
	bad.Sealed = w.Sealed[:10]
	if _, err := bad.Unwrap([]byte("pw"), nil); err == nil {
		t.Error("short wrapped key accepted")
	}
}

func TestMAC(t *testing.T) {
	key := []byte("k")
	m := MAC(key, []byte("header"))
	if !VerifyMAC(key, []byte("header"), m) || VerifyMAC(key, []byte("headeR"), m) || VerifyMAC([]byte("K"), []byte("header"), m) {
		t.Fatal("MAC does not verify what it should")
	}
}

func benchmarkAEAD(b *testing.B, open bool) {
	a := testAEAD(b)
	msg := make([]byte, 1<<20)
	ad := []byte("ad")
	sealed := a.Seal(nil, msg, ad)
	buf := make([]byte, 0, len(sealed))
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		if open {
			if _, err := a.Open(buf[:0], sealed, ad); err != nil {
				b.Fatal(err)
			}
		} else {
			a.Seal(buf[:0], msg, ad)
		}
	}
}

// BenchmarkSeal and BenchmarkOpen give the AEAD's throughput on one core.
func BenchmarkSeal(b *testing.B) { benchmarkAEAD(b, false) }
func BenchmarkOpen(b *testing.B) { benchmarkAEAD(b, true) }

func TestSealOpenInPlace(t *testing.T) {
	a := testAEAD(t)
	msg := []byte("in place, no second buffer")
	buf := make([]byte, NonceSize+len(msg), NonceSize+len(msg)+TagSize)
	copy(buf[NonceSize:], msg)
	sealed := a.Seal(buf[:0], buf[NonceSize:NonceSize+len(msg)], nil)
	if &sealed[0] != &buf[0] || len(sealed) != len(msg)+Overhead {
		t.Fatal("Seal in place moved or resized the buffer")
	}
	plain, err := a.Open(sealed[NonceSize:NonceSize], sealed, nil)
	if err != nil || !bytes.Equal(plain, msg) {
		t.Fatalf("Open in place = %q, %v", plain, err)
	}
}

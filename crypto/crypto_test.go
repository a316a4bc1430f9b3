package crypto

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
)

func testAEAD(t testing.TB, cipher string) *AEAD {
	k, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	a, err := k.NewDataAEAD(cipher, PurposeBlock, []byte("vol"))
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// eachCipher runs fn as a subtest for every data cipher.
func eachCipher(t *testing.T, fn func(t *testing.T, cipher string)) {
	for _, c := range Ciphers() {
		t.Run(c, func(t *testing.T) { fn(t, c) })
	}
}

func TestSealOpen(t *testing.T) { eachCipher(t, testSealOpen) }

func testSealOpen(t *testing.T, cipher string) {
	a := testAEAD(t, cipher)
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
	if _, err := testAEAD(t, cipher).Open(nil, sealed, ad); !errors.Is(err, ErrAuth) {
		t.Fatalf("other key: err = %v", err)
	}
}

// One master key, two ciphers: different subkeys and algorithms, so what
// one seals the other never opens, and an unknown cipher is refused.
func TestDataCiphersAreSeparate(t *testing.T) {
	k, _ := NewKey()
	id := []byte("vol")
	x, err1 := k.NewDataAEAD(XAES256GCM, PurposeBlock, id)
	c, err2 := k.NewDataAEAD(XChaCha20Poly1305, PurposeBlock, id)
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	msg := []byte("one block")
	if _, err := c.Open(nil, x.Seal(nil, msg, nil), nil); !errors.Is(err, ErrAuth) {
		t.Fatalf("XChaCha20-Poly1305 opened an XAES-256-GCM message: %v", err)
	}
	if _, err := x.Open(nil, c.Seal(nil, msg, nil), nil); !errors.Is(err, ErrAuth) {
		t.Fatalf("XAES-256-GCM opened an XChaCha20-Poly1305 message: %v", err)
	}
	// XChaCha20-Poly1305 keeps the first format's subkey, so old volumes open.
	old, _ := NewAEAD(k.Derive(PurposeBlock, id))
	if got, err := old.Open(nil, c.Seal(nil, msg, nil), nil); err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("the first format's key does not open XChaCha20-Poly1305: %q, %v", got, err)
	}
	if _, err := k.NewDataAEAD("aes128cbc", PurposeBlock, id); err == nil {
		t.Fatal("an unknown cipher was accepted")
	}
	for _, name := range Ciphers() {
		if !KnownCipher(name) {
			t.Fatalf("%s is listed but not known", name)
		}
	}
	if !KnownCipher(DefaultCipher()) || KnownCipher("none") {
		t.Fatal("KnownCipher is wrong")
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

func benchmarkAEAD(b *testing.B, cipher string, size int, open bool) {
	a := testAEAD(b, cipher)
	msg := make([]byte, size)
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

// BenchmarkCiphers gives each data cipher's throughput on one core, for
// 4 KiB and 1 MiB messages (the smallest and the default block size).
func BenchmarkCiphers(b *testing.B) {
	for _, c := range Ciphers() {
		for _, size := range []int{4 << 10, 1 << 20} {
			for _, op := range []string{"seal", "open"} {
				b.Run(fmt.Sprintf("%s/%dK/%s", c, size>>10, op), func(b *testing.B) {
					benchmarkAEAD(b, c, size, op == "open")
				})
			}
		}
	}
}

func TestSealOpenInPlace(t *testing.T) { eachCipher(t, testSealOpenInPlace) }

func testSealOpenInPlace(t *testing.T, cipher string) {
	a := testAEAD(t, cipher)
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

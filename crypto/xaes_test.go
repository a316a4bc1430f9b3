package crypto

import (
	"bytes"
	"crypto/sha3"
	"encoding/hex"
	"os"
	"testing"
)

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The two vectors of the specification (https://c2sp.org/XAES-256-GCM),
// with its intermediate values: one with MSB(L) = 0, one with MSB(L) = 1.
func TestXAESSpecVectors(t *testing.T) {
	for _, v := range []struct {
		key, l, k1, kx, ad, sealed string
	}{
		{
			key:    "0101010101010101010101010101010101010101010101010101010101010101",
			l:      "7298caa565031eadc6ce23d23ea66378",
			k1:     "e531954aca063d5b8d9c47a47d4cc6f0",
			kx:     "c8612c9ed53fe43e8e005b828a1631a0bbcb6ab2f46514ec4f439fcfd0fa969b",
			sealed: "ce546ef63c9cc60765923609b33a9a1974e96e52daf2fcf7075e2271",
		},
		{
			key:    "0303030303030303030303030303030303030303030303030303030303030303",
			l:      "91c08762876dccf9ba204a33768fa5fe",
			k1:     "23810ec50edb99f374409466ed1f4b7b",
			kx:     "e9c621d4cdd9b11b00a6427ad7e559aeedd66b3857646677748f8ca796cb3fd8",
			ad:     "c2sp.org/XAES-256-GCM",
			sealed: "986ec1832593df5443a179437fd083bf3fdb41abd740a21f71eb769d",
		},
	} {
		nonce := []byte("ABCDEFGHIJKLMNOPQRSTUVWX")
		x, err := newXAES256GCM(unhex(t, v.key))
		if err != nil {
			t.Fatal(err)
		}
		var l [16]byte
		x.block.Encrypt(l[:], l[:])
		if got := hex.EncodeToString(l[:]); got != v.l {
			t.Errorf("L = %s, want %s", got, v.l)
		}
		if got := hex.EncodeToString(x.k1[:]); got != v.k1 {
			t.Errorf("K1 = %s, want %s", got, v.k1)
		}
		var kx [KeySize]byte
		x.deriveKey(&kx, nonce)
		if got := hex.EncodeToString(kx[:]); got != v.kx {
			t.Errorf("Kx = %s, want %s", got, v.kx)
		}
		var ad []byte
		if v.ad != "" {
			ad = []byte(v.ad)
		}
		sealed := x.Seal(nil, nonce, []byte("XAES-256-GCM"), ad)
		if got := hex.EncodeToString(sealed); got != v.sealed {
			t.Errorf("ciphertext = %s, want %s", got, v.sealed)
		}
		plain, err := x.Open(nil, nonce, sealed, ad)
		if err != nil || string(plain) != "XAES-256-GCM" {
			t.Errorf("Open = %q, %v", plain, err)
		}
	}
}

// TestXAESAccumulated is the specification's accumulated randomized test:
// keys, nonces, plaintexts and additional data read from a SHAKE-128 stream,
// every ciphertext hashed into another. 10,000 iterations; S3BLK_SOAK=1 runs
// the 1,000,000-iteration variant too.
func TestXAESAccumulated(t *testing.T) {
	runs := []struct {
		n    int
		want string
	}{{10_000, "e6b9edf2df6cec60c8cbd864e2211b597fb69a529160cd040d56c0c210081939"}}
	if os.Getenv("S3BLK_SOAK") != "" {
		runs = append(runs, struct {
			n    int
			want string
		}{1_000_000, "2163ae1445985a30b60585ee67daa55674df06901b890593e824b8a7c885ab15"})
	}
	for _, run := range runs {
		rng, out := sha3.NewSHAKE128(), sha3.NewSHAKE128()
		var first [16]byte
		rng.Read(first[:])
		if got := hex.EncodeToString(first[:]); got != "7f9c2ba4e88f827d616045507605853e" {
			t.Fatalf("the SHAKE-128 stream starts with %s", got)
		}
		rng = sha3.NewSHAKE128()
		read := func(n int) []byte { b := make([]byte, n); rng.Read(b); return b }
		vector := func() []byte { var n [1]byte; rng.Read(n[:]); return read(int(n[0])) }
		for range run.n {
			key, nonce := read(32), read(24)
			plain, ad := vector(), vector()
			x, err := newXAES256GCM(key)
			if err != nil {
				t.Fatal(err)
			}
			sealed := x.Seal(nil, nonce, plain, ad)
			out.Write(sealed)
			back, err := x.Open(nil, nonce, sealed, ad)
			if err != nil || !bytes.Equal(back, plain) {
				t.Fatalf("round trip failed: %v", err)
			}
		}
		var sum [32]byte
		out.Read(sum[:])
		if got := hex.EncodeToString(sum[:]); got != run.want {
			t.Errorf("%d iterations: hash %s, want %s", run.n, got, run.want)
		}
	}
}

func TestXAESRefusesBadSizes(t *testing.T) {
	if _, err := newXAES256GCM(make([]byte, 16)); err == nil {
		t.Fatal("a 16-byte key was accepted")
	}
	x, _ := newXAES256GCM(make([]byte, 32))
	defer func() {
		if recover() == nil {
			t.Fatal("a 12-byte nonce was accepted")
		}
	}()
	x.Seal(nil, make([]byte, 12), nil, nil)
}

// Without AES instructions the default is XChaCha20-Poly1305, and
// XAES-256-GCM (still readable) comes with a warning; with them, none.
func TestCipherChoiceFollowsHardware(t *testing.T) {
	defer func(f func() bool) { hasHardwareAESGCM = f }(hasHardwareAESGCM)
	for _, hw := range []bool{true, false} {
		hasHardwareAESGCM = func() bool { return hw }
		want := map[bool]string{true: XAES256GCM, false: XChaCha20Poly1305}[hw]
		if got := DefaultCipher(); got != want {
			t.Errorf("hardware AES %v: default %s, want %s", hw, got, want)
		}
		if warned := CipherWarning(XAES256GCM) != ""; warned == hw {
			t.Errorf("hardware AES %v: XAES-256-GCM warning %q", hw, CipherWarning(XAES256GCM))
		}
		if w := CipherWarning(XChaCha20Poly1305); w != "" {
			t.Errorf("XChaCha20-Poly1305 warns: %s", w)
		}
	}
}

package crypto

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
)

// FuzzUnwrapStructure: a wrapped key as stored in a header or manifest
// (JSON), however hostile, never panics Unwrap. Everything Unwrap checks
// before running Argon2id is checked here (running it would take a
// quarter of a second per input): parameters outside the bounds and
// sealed keys of the wrong length are refused as such, never taken for a
// wrong passphrase, and return no key; sealed bytes of the right length
// that were not sealed under the key-encryption key never open.
func FuzzUnwrapStructure(f *testing.F) {
	k := Key{1, 2, 3}
	kek, _ := NewAEAD(bytes.Repeat([]byte{7}, KeySize))
	good := WrappedKey{KDF: DefaultKDF, Sealed: kek.Seal(nil, k[:], wrapAD([]byte("vol")))}
	good.KDF.Salt = bytes.Repeat([]byte{9}, saltSize)
	raw, _ := json.Marshal(good)
	f.Add(raw)
	f.Add([]byte(`{"kdf":{"algorithm":"argon2id","salt":"AAAAAAAAAAAAAAAAAAAAAA==","time":100,"memory_kib":4194304,"threads":64},"sealed":""}`))
	f.Add([]byte(`{"kdf":{"algorithm":"argon2id","salt":"AAAAAAAAAAAAAAAAAAAAAA==","time":4294967295,"memory_kib":4294967295,"threads":255}}`))
	f.Add([]byte(`{"kdf":{"algorithm":"argon2id","time":3,"memory_kib":65536,"threads":1},"sealed":"AA=="}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var w WrappedKey
		if json.Unmarshal(data, &w) != nil {
			return
		}
		// What json decoded, json re-encodes to the same wrapped key.
		again, err := json.Marshal(&w)
		var back WrappedKey
		if err != nil || json.Unmarshal(again, &back) != nil || !bytes.Equal(back.Sealed, w.Sealed) ||
			!bytes.Equal(back.KDF.Salt, w.KDF.Salt) || back.KDF.Algorithm != w.KDF.Algorithm ||
			back.KDF.Time != w.KDF.Time || back.KDF.MemoryKiB != w.KDF.MemoryKiB || back.KDF.Threads != w.KDF.Threads {
			t.Fatalf("wrapped key %+v does not survive JSON: %v", w, err)
		}
		structural := w.KDF.Check() != nil || len(w.Sealed) != Overhead+KeySize
		if structural {
			got, err := w.Unwrap([]byte("pw"), []byte("vol"))
			if err == nil || errors.Is(err, ErrWrongPassphrase) || got != (Key{}) {
				t.Fatalf("Unwrap of %+v: key %x, err %v; want a parameter error", w, got, err)
			}
			if w.KDF.Check() == nil && (w.KDF.MemoryKiB > maxKDF.MemoryKiB || w.KDF.Time > maxKDF.Time) {
				t.Fatalf("KDF %+v is beyond the maxima but passes Check", w.KDF)
			}
			return
		}
		// Sealed bytes of the right length open only if they were sealed
		// under this key-encryption key for this context.
		plain, err := kek.Open(nil, bytes.Clone(w.Sealed), wrapAD([]byte("vol")))
		if err == nil && !bytes.Equal(plain, k[:]) {
			t.Fatalf("sealed bytes %x opened to %x, which was never sealed", w.Sealed, plain)
		}
	})
}

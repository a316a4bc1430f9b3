// Package crypto holds every cryptographic primitive s3blk uses, so that the
// choices are made, and can be reviewed, in one place.
//
// Keys:
//   - Each volume or stream has a random 256-bit master key (Key).
//   - The master key is stored only wrapped (WrappedKey): sealed with
//     XChaCha20-Poly1305 under a key-encryption key derived from the
//     passphrase with Argon2id. The salt and the Argon2id parameters are
//     stored beside it; parameters weaker than MinKDF are refused, and so are
//     absurd ones (a hostile header must not make us allocate 1 TiB).
//   - A wrong passphrase fails to open the wrapped key: ErrWrongPassphrase,
//     detected before any block is read.
//   - Changing the passphrase re-wraps the master key; nothing else changes.
//   - Every use of the master key goes through Key.Derive (HKDF-SHA256 with
//     the purpose as info and the volume or stream ID as salt), so no key is
//     ever used for two primitives or two volumes.
//
// Sealing (AEAD): every message gets a fresh random 24-byte nonce, so a
// rewrite never reveals whether a block's content changed (s3backer derives
// its CBC IV from the block index). Blocks and stream chunks are sealed with
// the data cipher their volume header or stream manifest names (both
// authenticated, so it cannot be swapped unseen):
//   - XAES-256-GCM (xaes256gcm, the default where the CPU has AES and
//     carry-less multiply instructions: every EC2 instance type): AES-256-GCM
//     under a per-message key derived from half of the 192-bit nonce (see
//     xaes.go). 2.5 times as fast as XChaCha20-Poly1305 on the test machine,
//     and random nonces stay safe for any number of writes, where plain
//     AES-GCM's random 96-bit nonces approach the birthday bound (2^32
//     messages per key) on a long-lived volume.
//   - XChaCha20-Poly1305 (xchacha20poly1305, the default without AES
//     hardware, and what volumes and streams made before December 2026 use):
//     constant-time in software, 192-bit random nonces.
//
// The master key is always wrapped with XChaCha20-Poly1305 (one 32-byte
// message per passphrase change; NewAEAD).
//
// Invariants: Open never returns plaintext that failed authentication, and
// every function refusing input returns an error, never panics.
package crypto

import (
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"

	"golang.org/x/crypto/chacha20poly1305"
)

// KeySize is the size of master keys and of every derived key.
const KeySize = 32

// Key is a master key. It never leaves memory unwrapped.
type Key [KeySize]byte

// Purposes for Key.Derive. Each names exactly one use of one derived key.
const (
	PurposeBlock        = "s3blk block AEAD v1"
	PurposeHeaderMAC    = "s3blk volume header HMAC-SHA256 v1"
	PurposeStreamChunk  = "s3blk stream chunk AEAD v1"
	PurposeManifestMAC  = "s3blk stream manifest HMAC-SHA256 v1"
	PurposeStreamDigest = "s3blk stream content HMAC-SHA256 v1"
)

// NewKey returns a fresh random master key.
func NewKey() (Key, error) {
	var k Key
	_, err := rand.Read(k[:])
	return k, err
}

// Derive returns the subkey of k for purpose, bound to id (a volume or
// stream ID).
func (k *Key) Derive(purpose string, id []byte) []byte {
	sub, err := hkdf.Key(sha256.New, k[:], id, purpose, KeySize)
	if err != nil { // only for absurd lengths
		panic(err)
	}
	return sub
}

// ErrAuth means a sealed message failed authentication: it was damaged,
// tampered with, moved, or sealed under another key.
var ErrAuth = errors.New("authentication failed")

// Sizes of what Seal adds to a message: the same for every cipher, so
// object layouts do not depend on it.
const (
	NonceSize = chacha20poly1305.NonceSizeX
	TagSize   = chacha20poly1305.Overhead
	Overhead  = NonceSize + TagSize
)

// Both ciphers have the nonce and tag sizes above (a compile-time check).
var (
	_ = [1]struct{}{}[NonceSize-xaesNonceSize]
	_ = [1]struct{}{}[TagSize-xaesTagSize]
)

// AEAD seals and opens messages under one key. It is safe for concurrent use.
type AEAD struct {
	aead cipher.AEAD
}

// NewAEAD returns an XChaCha20-Poly1305 AEAD for a KeySize-byte key.
func NewAEAD(key []byte) (*AEAD, error) {
	a, err := chacha20poly1305.NewX(key)
	if err != nil {
		return nil, err
	}
	return &AEAD{aead: a}, nil
}

// Data ciphers, by the names volume headers and stream manifests store.
const (
	XAES256GCM        = "xaes256gcm"
	XChaCha20Poly1305 = "xchacha20poly1305"
)

// Ciphers lists the data ciphers, the default first where it applies.
func Ciphers() []string { return []string{XAES256GCM, XChaCha20Poly1305} }

// DefaultCipher is the data cipher for new volumes and streams: XAES-256-GCM
// where AES-GCM runs in constant-time hardware, else XChaCha20-Poly1305.
func DefaultCipher() string {
	if hasHardwareAESGCM() {
		return XAES256GCM
	}
	return XChaCha20Poly1305
}

// hasHardwareAESGCM is hardwareAESGCM, replaced by tests.
var hasHardwareAESGCM = hardwareAESGCM

// CipherWarning says why the data cipher name is a poor fit for this
// machine, or returns "": XAES-256-GCM without AES instructions (a volume
// made on another machine, or --cipher) runs in software, several times
// slower and with table lookups whose timing can leak the key to code
// sharing the CPU.
func CipherWarning(name string) string {
	if name == XAES256GCM && !hasHardwareAESGCM() {
		return "this CPU has no AES instructions: XAES-256-GCM runs in software here, " +
			"several times slower and not constant-time (new data on this machine would use " + XChaCha20Poly1305 + ")"
	}
	return ""
}

// KnownCipher reports whether name is a data cipher.
func KnownCipher(name string) bool { return name == XAES256GCM || name == XChaCha20Poly1305 }

// NewDataAEAD derives the subkey of k for purpose (PurposeBlock or
// PurposeStreamChunk) and id, and returns the data cipher named cipher
// under it. XChaCha20-Poly1305 keeps the purpose strings of the first
// format; every other cipher gets its name appended, so that one subkey
// never serves two ciphers.
func (k *Key) NewDataAEAD(cipher, purpose string, id []byte) (*AEAD, error) {
	switch cipher {
	case XChaCha20Poly1305:
		return NewAEAD(k.Derive(purpose, id))
	case XAES256GCM:
		x, err := newXAES256GCM(k.Derive(purpose+" "+cipher, id))
		if err != nil {
			return nil, err
		}
		return &AEAD{aead: x}, nil
	}
	return nil, fmt.Errorf("unknown cipher %q", cipher)
}

// Seal appends nonce ‖ ciphertext ‖ tag of plaintext to dst and returns it.
// ad is authenticated but not stored. plaintext and dst must not overlap,
// except to seal in place: with buf holding the plaintext at
// buf[NonceSize:NonceSize+n] and room for TagSize more, Seal(buf[:0],
// buf[NonceSize:NonceSize+n], ad) writes the whole sealed message to buf.
func (a *AEAD) Seal(dst, plaintext, ad []byte) []byte {
	n := len(dst)
	dst = grow(dst, NonceSize+len(plaintext)+TagSize)
	nonce := dst[n : n+NonceSize]
	if _, err := rand.Read(nonce); err != nil {
		panic(fmt.Sprintf("crypto: no randomness: %v", err)) // never happens on Linux
	}
	return a.aead.Seal(dst[:n+NonceSize], nonce, plaintext, ad)
}

// Open authenticates sealed (as made by Seal with the same ad) and appends
// its plaintext to dst. On failure it returns ErrAuth and dst unchanged.
// To open in place, pass dst = sealed[NonceSize:NonceSize].
func (a *AEAD) Open(dst, sealed, ad []byte) ([]byte, error) {
	if len(sealed) < Overhead {
		return dst, ErrAuth
	}
	out, err := a.aead.Open(dst, sealed[:NonceSize], sealed[NonceSize:], ad)
	if err != nil {
		return dst, ErrAuth
	}
	return out, nil
}

// grow returns dst with room for n more bytes beyond len(dst).
func grow(dst []byte, n int) []byte {
	if cap(dst)-len(dst) < n {
		bigger := make([]byte, len(dst), len(dst)+n)
		copy(bigger, dst)
		dst = bigger
	}
	return dst[:len(dst)+n]
}

// MAC returns HMAC-SHA256(key, msg).
func MAC(key, msg []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(msg)
	return m.Sum(nil)
}

// VerifyMAC reports, in constant time, whether mac is HMAC-SHA256(key, msg).
func VerifyMAC(key, msg, mac []byte) bool {
	return hmac.Equal(MAC(key, msg), mac)
}

package crypto

import (
	"crypto/rand"
	"errors"
	"fmt"

	"golang.org/x/crypto/argon2"
)

// KDF names the passphrase key derivation and its parameters. It is stored
// in the clear beside the wrapped key.
type KDF struct {
	Algorithm string `json:"algorithm"` // "argon2id"
	Salt      []byte `json:"salt"`
	Time      uint32 `json:"time"`
	MemoryKiB uint32 `json:"memory_kib"`
	Threads   uint8  `json:"threads"`
}

// Argon2id bounds. MinKDF follows the usual recommendation for interactive
// use (64 MiB, 3 passes); the maxima stop a hostile header from making us
// allocate or spin without limit. Every key this program wraps uses
// DefaultKDF; the maxima allow 4 times its memory and about 3 times its
// passes (a few seconds), not the minutes and 4 GiB that t=100, m=4 GiB
// took, which let anyone able to write a header hang every mount.
var (
	DefaultKDF = KDF{Algorithm: "argon2id", Time: 3, MemoryKiB: 64 << 10, Threads: 4}
	MinKDF     = KDF{Time: 3, MemoryKiB: 64 << 10, Threads: 1}
	maxKDF     = KDF{Time: 10, MemoryKiB: 256 << 10, Threads: 64}
)

const saltSize = 16

// NewKDF returns DefaultKDF with a fresh random salt.
func NewKDF() (KDF, error) {
	p := DefaultKDF
	p.Salt = make([]byte, saltSize)
	_, err := rand.Read(p.Salt)
	return p, err
}

// Check refuses unknown algorithms, short salts, and parameters weaker than
// MinKDF or beyond sane maxima.
func (p *KDF) Check() error {
	switch {
	case p.Algorithm != "argon2id":
		return fmt.Errorf("unsupported key derivation %q (want argon2id)", p.Algorithm)
	case len(p.Salt) < saltSize || len(p.Salt) > 64:
		return fmt.Errorf("argon2id salt of %d bytes (want 16 to 64)", len(p.Salt))
	case p.Time < MinKDF.Time || p.MemoryKiB < MinKDF.MemoryKiB || p.Threads < MinKDF.Threads:
		return fmt.Errorf("argon2id parameters t=%d m=%dKiB p=%d are weaker than the minimum t=%d m=%dKiB p=%d",
			p.Time, p.MemoryKiB, p.Threads, MinKDF.Time, MinKDF.MemoryKiB, MinKDF.Threads)
	case p.Time > maxKDF.Time || p.MemoryKiB > maxKDF.MemoryKiB || p.Threads > maxKDF.Threads:
		return fmt.Errorf("argon2id parameters t=%d m=%dKiB p=%d are beyond the maximum t=%d m=%dKiB p=%d",
			p.Time, p.MemoryKiB, p.Threads, maxKDF.Time, maxKDF.MemoryKiB, maxKDF.Threads)
	}
	return nil
}

func (p *KDF) derive(passphrase []byte) []byte {
	return argon2.IDKey(passphrase, p.Salt, p.Time, p.MemoryKiB, p.Threads, KeySize)
}

// WrappedKey is a master key sealed under a passphrase.
type WrappedKey struct {
	KDF    KDF    `json:"kdf"`
	Sealed []byte `json:"sealed"` // nonce ‖ ciphertext ‖ tag
}

// ErrWrongPassphrase means the passphrase does not open the wrapped key.
var ErrWrongPassphrase = errors.New("wrong passphrase")

// ErrEmptyPassphrase refuses an empty passphrase.
var ErrEmptyPassphrase = errors.New("the passphrase is empty")

// Wrap seals master under passphrase with fresh KDF parameters. context
// (for example the volume ID) is authenticated, so a wrapped key cannot be
// transplanted to another volume.
func Wrap(master *Key, passphrase, context []byte) (WrappedKey, error) {
	if len(passphrase) == 0 {
		return WrappedKey{}, ErrEmptyPassphrase
	}
	p, err := NewKDF()
	if err != nil {
		return WrappedKey{}, err
	}
	kek, err := NewAEAD(p.derive(passphrase))
	if err != nil {
		return WrappedKey{}, err
	}
	return WrappedKey{KDF: p, Sealed: kek.Seal(nil, master[:], wrapAD(context))}, nil
}

// Unwrap opens the master key with passphrase. It checks the KDF parameters
// first, so a weakened header is refused rather than used.
func (w *WrappedKey) Unwrap(passphrase, context []byte) (Key, error) {
	var k Key
	if err := w.KDF.Check(); err != nil {
		return k, err
	}
	if len(w.Sealed) != Overhead+KeySize {
		return k, fmt.Errorf("wrapped key is %d bytes, want %d", len(w.Sealed), Overhead+KeySize)
	}
	kek, err := NewAEAD(w.KDF.derive(passphrase))
	if err != nil {
		return k, err
	}
	plain, err := kek.Open(k[:0], w.Sealed, wrapAD(context))
	if err != nil {
		return k, ErrWrongPassphrase
	}
	copy(k[:], plain)
	return k, nil
}

func wrapAD(context []byte) []byte {
	return append([]byte("s3blk wrapped master key v1\x00"), context...)
}

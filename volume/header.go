package volume

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/s3blk/s3blk/blockstore"
	"github.com/s3blk/s3blk/crypto"
)

// ErrNoVolume means the prefix holds no volume header.
var ErrNoVolume = errors.New("no s3blk volume here")

// ErrNeedPassphrase means an encrypted volume was opened without one.
var ErrNeedPassphrase = errors.New("the volume is encrypted: a passphrase is needed")

// Codec names stored in the header.
const (
	CompressionNone             = "none"
	CompressionZstd             = "zstd"
	EncryptionNone              = "none"
	EncryptionXAES256GCM        = crypto.XAES256GCM
	EncryptionXChaCha20Poly1305 = crypto.XChaCha20Poly1305
)

// Header is the volume's geometry, identity, codecs and (when encrypted)
// its wrapped master key, stored as JSON.
//
// MAC authenticates every other field: for an encrypted volume it is
// HMAC-SHA256 under a key derived from the master key, so geometry, volume
// ID, codecs and KDF parameters cannot be edited unseen; for an unencrypted
// volume it is a plain SHA-256, which catches damage but not deliberate
// edits (nothing can, without a secret). Headers written before the MAC
// existed (unencrypted only) have none and are accepted.
type Header struct {
	Format      string             `json:"format"`
	Version     int                `json:"version"`
	VolumeID    string             `json:"volume_id"`
	Size        int64              `json:"size"`
	BlockSize   int                `json:"block_size"`
	Created     time.Time          `json:"created"`
	Compression string             `json:"compression"`
	Encryption  string             `json:"encryption"`
	Key         *crypto.WrappedKey `json:"key,omitempty"`
	MAC         string             `json:"mac,omitempty"`
}

// Options choose the codecs of a new volume.
type Options struct {
	Passphrase []byte // nil: not encrypted
	Cipher     string // the data cipher of an encrypted volume; "": crypto.DefaultCipher()
	Compress   bool
}

// Blocks is the number of blocks in the volume.
func (h *Header) Blocks() uint64 { return uint64(h.Size / int64(h.BlockSize)) }

// Encrypted reports whether the volume's blocks are sealed.
func (h *Header) Encrypted() bool { return h.Encryption != EncryptionNone }

func (h *Header) id() []byte {
	id, _ := hex.DecodeString(h.VolumeID) // checked by validate
	return id
}

// CheckGeometry validates a size and block size for a new volume.
func CheckGeometry(size int64, blockSize int) error {
	if blockSize < MinBlockSize || blockSize > MaxBlockSize || blockSize&(blockSize-1) != 0 {
		return fmt.Errorf("block size %d is not a power of two between 4K and 64M", blockSize)
	}
	if size <= 0 {
		return fmt.Errorf("size must be positive")
	}
	if size%int64(blockSize) != 0 {
		return fmt.Errorf("size %d is not a multiple of the block size %d", size, blockSize)
	}
	return nil
}

func (h *Header) validate() error {
	if h.Format != FormatName {
		return fmt.Errorf("header format %q is not %q", h.Format, FormatName)
	}
	if h.Version != FormatVersion {
		return fmt.Errorf("volume format version %d is not supported by this s3blk (knows %d)", h.Version, FormatVersion)
	}
	if id, err := hex.DecodeString(h.VolumeID); err != nil || len(id) != 16 {
		return fmt.Errorf("header has a bad volume ID %q", h.VolumeID)
	}
	if h.Compression != CompressionNone && h.Compression != CompressionZstd {
		return fmt.Errorf("volume uses compression %q, which this s3blk cannot read", h.Compression)
	}
	switch {
	case crypto.KnownCipher(h.Encryption):
		if h.Key == nil || h.MAC == "" {
			return fmt.Errorf("encrypted volume header lacks its wrapped key or MAC")
		}
		if err := h.Key.KDF.Check(); err != nil {
			return err
		}
	case h.Encryption == EncryptionNone:
		if h.Key != nil {
			return fmt.Errorf("unencrypted volume header carries a key")
		}
	default:
		return fmt.Errorf("volume uses encryption %q, which this s3blk cannot read", h.Encryption)
	}
	return CheckGeometry(h.Size, h.BlockSize)
}

// signedBytes is the canonical encoding the MAC covers: the header's JSON
// with MAC empty.
func (h *Header) signedBytes() []byte {
	c := *h
	c.MAC = ""
	data, _ := json.Marshal(&c)
	return data
}

func (h *Header) sign(master *crypto.Key) {
	if master == nil {
		sum := sha256.Sum256(h.signedBytes())
		h.MAC = "sha256:" + hex.EncodeToString(sum[:])
		return
	}
	h.MAC = "hmac-sha256:" + hex.EncodeToString(crypto.MAC(master.Derive(crypto.PurposeHeaderMAC, h.id()), h.signedBytes()))
}

// checkSum verifies an unencrypted header's checksum.
func (h *Header) checkSum() error {
	if h.MAC == "" {
		return nil // written before headers carried one
	}
	want := *h
	want.sign(nil)
	if want.MAC != h.MAC {
		return fmt.Errorf("volume header is damaged (checksum mismatch)")
	}
	return nil
}

// unlock opens the master key with passphrase and verifies the header MAC.
func (h *Header) unlock(passphrase []byte) (crypto.Key, error) {
	if len(passphrase) == 0 {
		return crypto.Key{}, ErrNeedPassphrase
	}
	master, err := h.Key.Unwrap(passphrase, h.id())
	if err != nil {
		return master, err
	}
	want := *h
	want.sign(&master)
	if subtle.ConstantTimeCompare([]byte(want.MAC), []byte(h.MAC)) != 1 {
		return master, fmt.Errorf("volume header has been tampered with (MAC mismatch): refusing to use it")
	}
	return master, nil
}

func (h *Header) encode() []byte {
	data, _ := json.MarshalIndent(h, "", "  ")
	return append(data, '\n')
}

// Create writes the header of a new volume. It refuses a prefix that already
// holds a volume or any block objects.
func Create(ctx context.Context, store blockstore.Store, size int64, blockSize int, opt Options) (*Header, error) {
	if err := CheckGeometry(size, blockSize); err != nil {
		return nil, err
	}
	cipher := opt.Cipher
	if cipher == "" {
		cipher = crypto.DefaultCipher()
	}
	if !crypto.KnownCipher(cipher) {
		return nil, fmt.Errorf("unknown cipher %q (known: %s)", cipher, strings.Join(crypto.Ciphers(), ", "))
	}
	if _, err := blockstore.GetBuffer(ctx, store, HeaderKey, nil, MaxHeaderSize); err == nil || errors.Is(err, blockstore.ErrTooLarge) {
		return nil, fmt.Errorf("%s already holds a volume", store.Describe())
	} else if !errors.Is(err, blockstore.ErrNotFound) {
		return nil, blockstore.Explain(err)
	}
	stale := errors.New("stop")
	err := store.List(ctx, BlockPrefix, func(blockstore.ObjectInfo) error { return stale })
	if errors.Is(err, stale) {
		return nil, fmt.Errorf("%s holds block objects but no header; remove them or choose another prefix", store.Describe())
	} else if err != nil {
		return nil, blockstore.Explain(err)
	}
	var id [16]byte
	if _, err := rand.Read(id[:]); err != nil {
		return nil, err
	}
	h := &Header{
		Format: FormatName, Version: FormatVersion, VolumeID: hex.EncodeToString(id[:]),
		Size: size, BlockSize: blockSize, Created: time.Now().UTC().Truncate(time.Second),
		Compression: CompressionNone, Encryption: EncryptionNone,
	}
	if opt.Compress {
		h.Compression = CompressionZstd
	}
	var master *crypto.Key
	if opt.Passphrase != nil {
		k, err := crypto.NewKey()
		if err != nil {
			return nil, err
		}
		wrapped, err := crypto.Wrap(&k, opt.Passphrase, id[:])
		if err != nil {
			return nil, err
		}
		h.Encryption, h.Key, master = cipher, &wrapped, &k
	}
	h.sign(master)
	if err := store.PutIfAbsent(ctx, HeaderKey, h.encode()); err != nil {
		if errors.Is(err, blockstore.ErrExists) {
			return nil, fmt.Errorf("%s already holds a volume", store.Describe())
		}
		return nil, blockstore.Explain(err)
	}
	return h, nil
}

// ReadHeader loads and validates the header of the volume in store.
func ReadHeader(ctx context.Context, store blockstore.Store) (*Header, error) {
	data, err := blockstore.GetBuffer(ctx, store, HeaderKey, nil, MaxHeaderSize)
	if errors.Is(err, blockstore.ErrNotFound) {
		return nil, fmt.Errorf("%s: %w; run `s3blk create` first", store.Describe(), ErrNoVolume)
	}
	if errors.Is(err, blockstore.ErrTooLarge) {
		return nil, fmt.Errorf("%s: volume header is not valid: larger than %d bytes", store.Describe(), MaxHeaderSize)
	}
	if err != nil {
		return nil, blockstore.Explain(err)
	}
	h, err := ParseHeader(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", store.Describe(), err)
	}
	return h, nil
}

// MaxHeaderSize bounds what is read as a header object (a real one is
// under 1 KiB), so a hostile object cannot make us read without limit.
const MaxHeaderSize = 64 << 10

// ParseHeader decodes and validates a header object. An encrypted header's
// MAC can only be checked with the passphrase (by Open); an unencrypted
// header's checksum is checked here.
func ParseHeader(data []byte) (*Header, error) {
	if len(data) > MaxHeaderSize {
		return nil, fmt.Errorf("volume header is not valid: larger than %d bytes", MaxHeaderSize)
	}
	var h Header
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields() // every field is covered by the MAC
	if err := dec.Decode(&h); err != nil {
		return nil, fmt.Errorf("volume header is not valid: %v", err)
	}
	if dec.More() {
		return nil, fmt.Errorf("volume header has trailing data")
	}
	if err := h.validate(); err != nil {
		return nil, err
	}
	if !h.Encrypted() {
		if err := h.checkSum(); err != nil {
			return nil, err
		}
	}
	return &h, nil
}

// ChangePassphrase re-wraps the master key of an encrypted volume under a
// new passphrase and rewrites the header. No block changes. The header PUT
// is atomic: a reader sees the old header or the new one.
func ChangePassphrase(ctx context.Context, store blockstore.Store, oldPass, newPass []byte) error {
	h, err := ReadHeader(ctx, store)
	if err != nil {
		return err
	}
	if !h.Encrypted() {
		return fmt.Errorf("%s is not encrypted: it has no passphrase to change", store.Describe())
	}
	master, err := h.unlock(oldPass)
	if err != nil {
		return err
	}
	wrapped, err := crypto.Wrap(&master, newPass, h.id())
	if err != nil {
		return err
	}
	h.Key = &wrapped
	h.sign(&master)
	return blockstore.Explain(store.Put(ctx, HeaderKey, h.encode()))
}

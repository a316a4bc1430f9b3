package stream

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/s3blk/s3blk/blockstore"
	"github.com/s3blk/s3blk/crypto"
)

// Manifest names and values.
const (
	FormatName    = "s3blk-stream"
	FormatVersion = 1

	CompressionZstd   = "zstd"
	CompressionNone   = "none"
	EncryptionXAES    = crypto.XAES256GCM
	EncryptionXChaCha = crypto.XChaCha20Poly1305
	EncryptionNone    = "none"

	idSize = 16
	// maxManifestSize bounds what is read as a manifest.
	maxManifestSize = 256 << 20
)

// Hash is a SHA-256 (or HMAC-SHA256) value, hex in JSON.
type Hash [sha256.Size]byte

func (h Hash) MarshalText() ([]byte, error) { return []byte(hex.EncodeToString(h[:])), nil }

func (h *Hash) UnmarshalText(b []byte) error {
	if len(b) != 2*len(h) {
		return fmt.Errorf("a hash must be %d hex digits, not %d characters", 2*len(h), len(b))
	}
	_, err := hex.Decode(h[:], b)
	return err
}

func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// ChunkInfo describes one stored chunk.
type ChunkInfo struct {
	Size   int  `json:"size"`   // plaintext bytes
	Stored int  `json:"stored"` // object bytes
	SHA256 Hash `json:"sha256"` // of the object
}

// Digest is the whole-stream hash.
type Digest struct {
	Algorithm string `json:"algorithm"`
	Value     Hash   `json:"value"`
}

// Manifest describes a complete stream. It is written last.
type Manifest struct {
	Format      string             `json:"format"`
	Version     int                `json:"version"`
	StreamID    string             `json:"stream_id"` // 32 hex digits
	Created     time.Time          `json:"created"`
	Host        string             `json:"host"`
	Size        int64              `json:"size"`
	ChunkSize   int                `json:"chunk_size"`
	Chunks      []ChunkInfo        `json:"chunks"`
	Digest      Digest             `json:"digest"`
	Compression string             `json:"compression"`
	Encryption  string             `json:"encryption"`
	Key         *crypto.WrappedKey `json:"key,omitempty"`
	// MAC is HMAC-SHA256 under the stream's manifest key of the manifest's
	// canonical JSON (json.Marshal with MAC empty), hex. Encrypted only.
	MAC string `json:"mac,omitempty"`
}

// Encrypted reports whether the stream's chunks are sealed.
func (m *Manifest) Encrypted() bool { return crypto.KnownCipher(m.Encryption) }

// Compressed reports whether the stream's chunks are zstd frames.
func (m *Manifest) Compressed() bool { return m.Compression == CompressionZstd }

// ID returns the stream ID, which validate has checked.
func (m *Manifest) ID() [idSize]byte {
	var id [idSize]byte
	hex.Decode(id[:], []byte(m.StreamID))
	return id
}

// canonical is the JSON the MAC covers: the manifest with MAC empty.
func (m *Manifest) canonical() ([]byte, error) {
	c := *m
	c.MAC = ""
	return json.Marshal(&c)
}

func (m *Manifest) macKey(master *crypto.Key) []byte {
	id := m.ID()
	return master.Derive(crypto.PurposeManifestMAC, id[:])
}

// seal sets the MAC (encrypted streams) and returns the stored form.
func (m *Manifest) seal(master *crypto.Key) ([]byte, error) {
	if m.Encrypted() {
		data, err := m.canonical()
		if err != nil {
			return nil, err
		}
		m.MAC = hex.EncodeToString(crypto.MAC(m.macKey(master), data))
	}
	data, err := json.MarshalIndent(m, "", " ")
	return append(data, '\n'), err
}

// ParseManifest decodes and validates a manifest without checking its MAC
// (which needs the passphrase): enough to list streams. Open checks the MAC.
func ParseManifest(data []byte) (*Manifest, error) {
	if len(data) > maxManifestSize {
		return nil, fmt.Errorf("%w manifest: %d bytes is beyond the %d-byte limit", ErrCorrupt, len(data), maxManifestSize)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var m Manifest
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("%w manifest: not valid: %v", ErrCorrupt, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%w manifest: trailing data after the JSON object", ErrCorrupt)
	}
	if err := m.validate(); err != nil {
		return nil, fmt.Errorf("%w manifest: %v", ErrCorrupt, err)
	}
	return &m, nil
}

// validate checks everything that can be checked without the key, so that
// nothing later trusts a hostile size.
func (m *Manifest) validate() error {
	switch {
	case m.Format != FormatName:
		return fmt.Errorf("format %q is not %q", m.Format, FormatName)
	case m.Version != FormatVersion:
		return fmt.Errorf("version %d is not supported (this s3blk reads version %d)", m.Version, FormatVersion)
	case len(m.StreamID) != 2*idSize:
		return fmt.Errorf("bad stream ID %q", m.StreamID)
	case m.ChunkSize < MinChunkSize || m.ChunkSize > MaxChunkSize:
		return fmt.Errorf("chunk size %d is out of range", m.ChunkSize)
	case m.Size < 0 || m.Size > int64(maxChunks)*int64(m.ChunkSize):
		return fmt.Errorf("size %d is out of range", m.Size)
	case m.Compression != CompressionZstd && m.Compression != CompressionNone:
		return fmt.Errorf("unknown compression %q", m.Compression)
	case !m.Encrypted() && m.Encryption != EncryptionNone:
		return fmt.Errorf("unknown encryption %q", m.Encryption)
	case m.Encrypted() != (m.Key != nil):
		return errors.New("the wrapped key does not match the encryption")
	case m.Encrypted() != (m.MAC != ""):
		return errors.New("the MAC does not match the encryption")
	}
	if _, err := hex.DecodeString(m.StreamID); err != nil {
		return fmt.Errorf("bad stream ID %q", m.StreamID)
	}
	if !digestAlgorithmOK(m.Digest.Algorithm, m.Encrypted()) {
		return fmt.Errorf("digest algorithm %q does not fit encryption %q", m.Digest.Algorithm, m.Encryption)
	}
	want := (m.Size + int64(m.ChunkSize) - 1) / int64(m.ChunkSize)
	if int64(len(m.Chunks)) != want {
		return fmt.Errorf("%d chunks listed, but %d bytes in %d-byte chunks make %d", len(m.Chunks), m.Size, m.ChunkSize, want)
	}
	overhead := 0
	if m.Encrypted() {
		overhead = crypto.Overhead
	}
	for i, c := range m.Chunks {
		wantSize := m.ChunkSize
		if i == len(m.Chunks)-1 {
			wantSize = int(m.Size - int64(i)*int64(m.ChunkSize))
		}
		if c.Size != wantSize {
			return fmt.Errorf("chunk %d has size %d, want %d", i, c.Size, wantSize)
		}
		if c.Stored < 1+overhead || c.Stored > maxStored(m.ChunkSize) {
			return fmt.Errorf("chunk %d has a stored size of %d, out of range", i, c.Stored)
		}
		if !m.Compressed() && c.Stored != c.Size+overhead {
			return fmt.Errorf("chunk %d has a stored size of %d, want %d", i, c.Stored, c.Size+overhead)
		}
	}
	return nil
}

// unlock opens the wrapped key with the passphrase and checks the MAC. It
// returns the master key (zero for unencrypted streams).
func (m *Manifest) unlock(passphrase func() ([]byte, error)) (crypto.Key, error) {
	var master crypto.Key
	if !m.Encrypted() {
		return master, nil
	}
	if passphrase == nil {
		return master, errors.New("the stream is encrypted and no passphrase was given")
	}
	pw, err := passphrase()
	if err != nil {
		return master, err
	}
	id := m.ID()
	master, err = m.Key.Unwrap(pw, id[:])
	if err != nil {
		return master, err
	}
	data, err := m.canonical()
	if err != nil {
		return master, err
	}
	got, err := hex.DecodeString(m.MAC)
	if err != nil || !crypto.VerifyMAC(m.macKey(&master), data, got) {
		return master, fmt.Errorf("%w manifest: MAC mismatch: the manifest was altered", ErrCorrupt)
	}
	return master, nil
}

// ErrIncomplete means a stream's chunks exist but its manifest does not.
var ErrIncomplete = errors.New("is INCOMPLETE: no manifest; the put that wrote it did not finish")

// ErrNoStream means there is neither a manifest nor a chunk.
var ErrNoStream = errors.New("no stream here (no manifest and no chunks)")

// ErrVolume means the prefix holds an s3blk volume, not a stream.
var ErrVolume = errors.New("holds an s3blk volume, not a stream")

// ReadManifest loads and validates the manifest of the stream in store
// (without its MAC). A missing manifest is ErrIncomplete if chunks exist,
// else ErrNoStream (or ErrVolume).
func ReadManifest(ctx context.Context, store blockstore.Store) (*Manifest, error) {
	size := int64(-1)
	err := store.List(ctx, ManifestKey, func(o blockstore.ObjectInfo) error {
		if o.Key == ManifestKey {
			size = o.Size
		}
		return nil
	})
	if err != nil {
		return nil, blockstore.Explain(err)
	}
	if size > maxManifestSize {
		return nil, fmt.Errorf("%s: %w manifest: %d bytes is beyond the %d-byte limit", store.Describe(), ErrCorrupt, size, maxManifestSize)
	}
	var data []byte
	if size >= 0 {
		data, err = blockstore.GetBuffer(ctx, store, ManifestKey, nil, maxManifestSize)
	}
	if size < 0 || errors.Is(err, blockstore.ErrNotFound) {
		return nil, missingManifest(ctx, store)
	}
	if err != nil {
		return nil, blockstore.Explain(err)
	}
	m, err := ParseManifest(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", store.Describe(), err)
	}
	return m, nil
}

// missingManifest explains a prefix without a manifest.
func missingManifest(ctx context.Context, store blockstore.Store) error {
	if vol, err := exists(ctx, store, VolumeHeaderKey); err != nil {
		return err
	} else if vol {
		return fmt.Errorf("%s %w", store.Describe(), ErrVolume)
	}
	found, err := hasChunks(ctx, store)
	switch {
	case err != nil:
		return err
	case found:
		return fmt.Errorf("%s %w", store.Describe(), ErrIncomplete)
	}
	return fmt.Errorf("%s: %w", store.Describe(), ErrNoStream)
}

// Package codec turns one plaintext block into the bytes of its object and
// back. It is the only code that knows the block object format.
//
// Object format, version 1 (all integers big-endian):
//
//	offset  size  field
//	0       4     magic "S3BK"
//	4       1     format version (1)
//	5       1     codec flags: FlagZstd, FlagEncrypted; unknown bits are refused
//	6       2     reserved, zero
//	8       8     write generation (reserved for rollback detection; 0 today)
//	16      4     payload length N
//	20      N     payload
//
// then, by flags:
//   - not encrypted: the payload is the block (zstd-compressed if FlagZstd),
//     followed by a 32-byte SHA-256 of volume ID ‖ block index ‖ bytes 0..20+N.
//   - encrypted: the payload is crypto.AEAD.Seal (nonce ‖ ciphertext ‖ tag) of
//     the block (zstd-compressed first if FlagZstd), with associated data
//     bytes 0..20 (magic, format version, flags, generation, length) ‖
//     volume ID ‖ block index. Nothing follows.
//
// Compression is tried only on blocks that samples show to be compressible
// (codec.Incompressible) and kept only where it makes the block smaller, so
// FlagZstd is per object.
//
// Invariants:
//   - Decode never returns bytes that failed the checksum or the AEAD: damage,
//     truncation, an object copied from another block index or another
//     volume, or an edited header byte is ErrCorrupt, never wrong data.
//   - An encrypted volume accepts only encrypted objects, and an unencrypted
//     one only unencrypted objects: nobody can downgrade a block by storing a
//     checksummed plaintext object in its place.
//   - Decompression never produces more than one block.
package codec

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/s3blk/s3blk/crypto"
)

const (
	Magic         = "S3BK"
	Version       = 1
	HeaderSize    = 20
	TrailerSize   = sha256.Size
	FlagZstd      = 1 << 0
	FlagEncrypted = 1 << 1
	knownFlags    = FlagZstd | FlagEncrypted
)

// ErrCorrupt marks a block object that failed to decode or verify.
var ErrCorrupt = errors.New("corrupt block object")

// Codec encodes the blocks of one volume.
type Codec struct {
	VolumeID  [16]byte
	BlockSize int
	Compress  bool         // try zstd on every block
	AEAD      *crypto.AEAD // nil: unencrypted, checksummed objects
}

// MaxOverhead bounds the bytes an object adds to its block.
const MaxOverhead = HeaderSize + crypto.Overhead + TrailerSize

func (c *Codec) checksum(index uint64, body []byte) [32]byte {
	h := sha256.New()
	h.Write(c.VolumeID[:])
	h.Write(binary.BigEndian.AppendUint64(nil, index))
	h.Write(body)
	var sum [32]byte
	h.Sum(sum[:0])
	return sum
}

// associatedData is what an encrypted object's AEAD binds besides the
// payload: its header, the volume and the block index.
func (c *Codec) associatedData(index uint64, header []byte) []byte {
	ad := make([]byte, 0, HeaderSize+len(c.VolumeID)+8)
	ad = append(ad, header...)
	ad = append(ad, c.VolumeID[:]...)
	return binary.BigEndian.AppendUint64(ad, index)
}

// Encode writes the object for block index with contents plain into dst
// (reusing its storage when big enough) and returns it. len(plain) must be
// the block size, and plain must not overlap dst's storage.
func (c *Codec) Encode(index uint64, plain []byte, dst []byte) []byte {
	if len(plain) != c.BlockSize {
		panic(fmt.Sprintf("codec: encoding %d bytes, block size is %d", len(plain), c.BlockSize))
	}
	// Lay out header ‖ [nonce] ‖ payload, so that sealing works in place.
	start := HeaderSize
	if c.AEAD != nil {
		start += crypto.NonceSize
	}
	out := slices.Grow(dst[:0], MaxOverhead+len(plain))[:start]
	flags := byte(0)
	if c.Compress && !Incompressible(plain) {
		out = compressAll(out, plain)
		if len(out)-start < len(plain) {
			flags |= FlagZstd
		} else {
			out = out[:start]
		}
	}
	// A compressed block is sealed in place; an uncompressed one straight
	// from plain (which must not overlap dst), or, unencrypted, copied in
	// to be checksummed with its header.
	var sealFrom []byte
	switch {
	case flags&FlagZstd != 0:
		out = slices.Grow(out, crypto.TagSize)
		sealFrom = out[start:]
	case c.AEAD != nil:
		sealFrom = plain
	default:
		out = append(out, plain...)
	}
	payload := len(out) - start
	if c.AEAD != nil {
		flags |= FlagEncrypted
		payload = len(sealFrom) + crypto.Overhead
	}
	copy(out, Magic)
	out[4] = Version
	out[5] = flags
	out[6], out[7] = 0, 0
	binary.BigEndian.PutUint64(out[8:], 0) // generation
	binary.BigEndian.PutUint32(out[16:], uint32(payload))
	if c.AEAD != nil {
		sealed := c.AEAD.Seal(out[HeaderSize:HeaderSize], sealFrom, c.associatedData(index, out[:HeaderSize]))
		return out[:HeaderSize+len(sealed)]
	}
	sum := c.checksum(index, out)
	return append(out, sum[:]...)
}

// Decode verifies the object of block index and writes the block into dst,
// which must be BlockSize long. It may overwrite obj. On error the contents
// of dst are undefined and must not be used.
func (c *Codec) Decode(index uint64, obj []byte, dst []byte) error {
	if len(dst) != c.BlockSize {
		return fmt.Errorf("%w: decoding into %d bytes, block size is %d", ErrCorrupt, len(dst), c.BlockSize)
	}
	if len(obj) < HeaderSize {
		return fmt.Errorf("%w: %d bytes is shorter than any object", ErrCorrupt, len(obj))
	}
	if string(obj[:4]) != Magic {
		return fmt.Errorf("%w: bad magic", ErrCorrupt)
	}
	if obj[4] != Version {
		return fmt.Errorf("%w: unsupported format version %d", ErrCorrupt, obj[4])
	}
	flags := obj[5]
	if flags&^knownFlags != 0 {
		return fmt.Errorf("%w: unsupported codec flags %#x", ErrCorrupt, flags)
	}
	if encrypted := flags&FlagEncrypted != 0; encrypted != (c.AEAD != nil) {
		if encrypted {
			return fmt.Errorf("%w: an encrypted object in an unencrypted volume", ErrCorrupt)
		}
		return fmt.Errorf("%w: an unencrypted object in an encrypted volume", ErrCorrupt)
	}
	trailer := TrailerSize
	if c.AEAD != nil {
		trailer = 0
	}
	n := binary.BigEndian.Uint32(obj[16:])
	if uint64(HeaderSize)+uint64(n)+uint64(trailer) != uint64(len(obj)) {
		return fmt.Errorf("%w: payload length %d does not match object size %d", ErrCorrupt, n, len(obj))
	}
	payload := obj[HeaderSize : HeaderSize+int(n)]
	if c.AEAD != nil {
		if len(payload) < crypto.Overhead {
			return fmt.Errorf("%w: sealed payload of %d bytes is too short", ErrCorrupt, len(payload))
		}
		if flags&FlagZstd == 0 && len(payload)-crypto.Overhead != c.BlockSize {
			return fmt.Errorf("%w: payload is %d bytes, block size is %d", ErrCorrupt, len(payload)-crypto.Overhead, c.BlockSize)
		}
		target := payload[crypto.NonceSize:crypto.NonceSize] // open in place
		if flags&FlagZstd == 0 {
			target = dst[:0] // straight into the block
		}
		plain, err := c.AEAD.Open(target, payload, c.associatedData(index, obj[:HeaderSize]))
		if err != nil {
			return fmt.Errorf("%w: authentication failed (damaged, tampered with, or not block %d of this volume)", ErrCorrupt, index)
		}
		payload = plain
	} else {
		want := c.checksum(index, obj[:len(obj)-TrailerSize])
		if string(want[:]) != string(obj[len(obj)-TrailerSize:]) {
			return fmt.Errorf("%w: checksum mismatch (damaged, or not block %d of this volume)", ErrCorrupt, index)
		}
	}
	if flags&FlagZstd != 0 {
		out, err := Decompress(dst[:0], payload, c.BlockSize)
		if err != nil {
			return err
		}
		if &out[0] != &dst[0] {
			copy(dst, out)
		}
		return nil
	}
	if len(payload) != c.BlockSize {
		return fmt.Errorf("%w: payload is %d bytes, block size is %d", ErrCorrupt, len(payload), c.BlockSize)
	}
	if &payload[0] != &dst[0] {
		copy(dst, payload)
	}
	return nil
}

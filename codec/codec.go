// Package codec turns one plaintext block into the bytes of its object and
// back. It is the only code that knows the block object format.
//
// Object format, version 1 (all integers big-endian):
//
//	offset  size  field
//	0       4     magic "S3BK"
//	4       1     format version (1)
//	5       1     codec flags (FlagZstd, FlagEncrypted; unknown bits are refused)
//	6       2     reserved, zero
//	8       8     write generation (reserved for rollback detection)
//	16      4     payload length N
//	20      N     payload (the block, possibly compressed and sealed)
//	20+N    32    SHA-256(volume ID || block index || bytes 0..20+N)
//
// Invariants:
//   - Decode never returns bytes that fail the checksum: any damage, a
//     truncated object, or an object copied from another block index or
//     another volume is ErrCorrupt, never wrong data.
//   - The header carries a version and flags, so encryption and compression
//     (which seal the payload with an AEAD instead) fit without a format
//     break; a reader refuses flags it does not know.
package codec

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
)

const (
	Magic         = "S3BK"
	Version       = 1
	HeaderSize    = 20
	TrailerSize   = sha256.Size
	FlagZstd      = 1 << 0
	FlagEncrypted = 1 << 1
	knownFlags    = 0 // flags this build can decode
)

// ErrCorrupt marks a block object that failed to decode or verify.
var ErrCorrupt = errors.New("corrupt block object")

// Codec encodes the blocks of one volume.
type Codec struct {
	VolumeID  [16]byte
	BlockSize int
}

// Overhead is the number of bytes an object adds to its payload.
const Overhead = HeaderSize + TrailerSize

func (c *Codec) checksum(index uint64, body []byte) [32]byte {
	h := sha256.New()
	var ix [8]byte
	binary.BigEndian.PutUint64(ix[:], index)
	h.Write(c.VolumeID[:])
	h.Write(ix[:])
	h.Write(body)
	var sum [32]byte
	h.Sum(sum[:0])
	return sum
}

// Encode appends the object for block index with contents plain to dst[:0]
// and returns it. len(plain) must be the block size.
func (c *Codec) Encode(index uint64, plain []byte, dst []byte) []byte {
	if len(plain) != c.BlockSize {
		panic(fmt.Sprintf("codec: encoding %d bytes, block size is %d", len(plain), c.BlockSize))
	}
	need := Overhead + len(plain)
	if cap(dst) < need {
		dst = make([]byte, 0, need)
	}
	out := dst[:HeaderSize]
	copy(out, Magic)
	out[4] = Version
	out[5] = 0 // flags
	out[6], out[7] = 0, 0
	binary.BigEndian.PutUint64(out[8:], 0)
	binary.BigEndian.PutUint32(out[16:], uint32(len(plain)))
	out = append(out, plain...)
	sum := c.checksum(index, out)
	return append(out, sum[:]...)
}

// Decode verifies the object of block index and writes the block into dst,
// which must be BlockSize long.
func (c *Codec) Decode(index uint64, obj []byte, dst []byte) error {
	if len(obj) < Overhead {
		return fmt.Errorf("%w: %d bytes is shorter than any object", ErrCorrupt, len(obj))
	}
	if string(obj[:4]) != Magic {
		return fmt.Errorf("%w: bad magic", ErrCorrupt)
	}
	if obj[4] != Version {
		return fmt.Errorf("%w: unsupported format version %d", ErrCorrupt, obj[4])
	}
	if flags := obj[5]; flags&^knownFlags != 0 {
		return fmt.Errorf("%w: unsupported codec flags %#x", ErrCorrupt, flags)
	}
	n := binary.BigEndian.Uint32(obj[16:])
	if uint64(n) != uint64(len(obj)-Overhead) {
		return fmt.Errorf("%w: payload length %d does not match object size %d", ErrCorrupt, n, len(obj))
	}
	body := obj[:len(obj)-TrailerSize]
	want := c.checksum(index, body)
	if string(want[:]) != string(obj[len(obj)-TrailerSize:]) {
		return fmt.Errorf("%w: checksum mismatch (damaged, or not block %d of this volume)", ErrCorrupt, index)
	}
	if int(n) != len(dst) || len(dst) != c.BlockSize {
		return fmt.Errorf("%w: payload is %d bytes, block size is %d", ErrCorrupt, n, c.BlockSize)
	}
	copy(dst, obj[HeaderSize:HeaderSize+int(n)])
	return nil
}

package stream

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash"
	"hash/crc32"
)

// The whole-stream digest is the end-to-end check: Put computes it from the
// input as it reads it, before any compression or sealing, and Get from the
// output just before writing it, so a bug anywhere between the two (a
// buffer reused too early, a codec fault) cannot go unnoticed. Tampering is
// not its job: a chunk's AEAD tag and the manifest's MAC already refuse any
// change an attacker can make to an encrypted stream.
//
//	sha256              unencrypted: SHA-256 of the stream, equal to
//	                    `sha256sum` of the data
//	hmac-sha256-crc32c  encrypted (written since 2026-11): HMAC-SHA256 under
//	                    the stream's digest key of the big-endian CRC-32C
//	                    (Castagnoli) of every chunk's plaintext, in order.
//	                    CRC-32C runs at 5 to 20 GB/s, where a pass of
//	                    SHA-256 costs a third of an encrypted get's CPU; it
//	                    catches any accidental damage to a chunk with
//	                    certainty for bursts up to 32 bits and otherwise all
//	                    but 2^-32 of the time, and the keyed HMAC over it
//	                    keeps the manifest from being an oracle for guesses
//	                    of the plaintext.
//	hmac-sha256         encrypted (read only, streams written before):
//	                    HMAC-SHA256 of the stream under the digest key
const (
	DigestSHA256  = "sha256"
	DigestHMAC    = "hmac-sha256"
	DigestHMACCRC = "hmac-sha256-crc32c"
)

// encryptedDigest is what Put writes for an encrypted stream (a variable
// only so that tests can write the older kind).
var encryptedDigest = DigestHMACCRC

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// digestAlgorithmOK reports whether a manifest may use algorithm.
func digestAlgorithmOK(algorithm string, encrypted bool) bool {
	if encrypted {
		return algorithm == DigestHMAC || algorithm == DigestHMACCRC
	}
	return algorithm == DigestSHA256
}

// streamDigest computes a whole-stream digest chunk by chunk. The chunks
// given to add must be the stream's chunks, in order; a chunk may also be
// given in parts, with addPart for each and endChunk after the last.
type streamDigest struct {
	h         hash.Hash
	chunkCRCs bool   // add the chunk's CRC-32C, not its bytes
	crc       uint32 // of the chunk's parts so far
}

// newStreamDigest returns the digest for algorithm; key is the digest key
// of an encrypted stream, nil for a plain one.
func newStreamDigest(algorithm string, key []byte) (*streamDigest, error) {
	switch {
	case algorithm == DigestSHA256 && key == nil:
		return &streamDigest{h: sha256.New()}, nil
	case algorithm == DigestHMAC && key != nil:
		return &streamDigest{h: hmac.New(sha256.New, key)}, nil
	case algorithm == DigestHMACCRC && key != nil:
		return &streamDigest{h: hmac.New(sha256.New, key), chunkCRCs: true}, nil
	}
	return nil, fmt.Errorf("digest algorithm %q does not fit the stream's encryption", algorithm)
}

// add adds the next chunk of the stream.
func (d *streamDigest) add(chunk []byte) {
	d.addPart(chunk)
	d.endChunk()
}

// addPart adds the next part of the current chunk.
func (d *streamDigest) addPart(part []byte) {
	if d.chunkCRCs {
		d.crc = crc32.Update(d.crc, castagnoli, part)
	} else {
		d.h.Write(part)
	}
}

// endChunk ends the current chunk.
func (d *streamDigest) endChunk() {
	if d.chunkCRCs {
		var crc [4]byte
		binary.BigEndian.PutUint32(crc[:], d.crc)
		d.h.Write(crc[:])
		d.crc = 0
	}
}

// sum returns the digest of the chunks added so far.
func (d *streamDigest) sum() Hash {
	var v Hash
	copy(v[:], d.h.Sum(nil))
	return v
}

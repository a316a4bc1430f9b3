package stream

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"strings"
	"testing"
)

// TestEncryptedDigestIsKeyedCRC: an encrypted put records HMAC-SHA256,
// under the stream's digest key, of every chunk's CRC-32C, computed here
// from the input independently of the code under test.
func TestEncryptedDigestIsKeyedCRC(t *testing.T) {
	data := testData(5*testChunk+77, 4)
	s := localStore(t)
	man := mustPut(t, s, data, testConfig(true, true))
	if man.Digest.Algorithm != DigestHMACCRC {
		t.Fatalf("algorithm %q, want %q", man.Digest.Algorithm, DigestHMACCRC)
	}
	r, err := Open(context.Background(), s, testConfig(true, true))
	if err != nil {
		t.Fatal(err)
	}
	mac := hmac.New(sha256.New, r.digestKey)
	for off := 0; off < len(data); off += testChunk {
		crc := crc32.Checksum(data[off:min(off+testChunk, len(data))], crc32.MakeTable(crc32.Castagnoli))
		mac.Write(binary.BigEndian.AppendUint32(nil, crc))
	}
	if !bytes.Equal(mac.Sum(nil), man.Digest.Value[:]) {
		t.Fatal("the digest is not the keyed HMAC of the chunks' CRC-32Cs")
	}
	if got := mustGet(t, s, testConfig(true, true)); !bytes.Equal(got, data) {
		t.Fatal("get differs from the input")
	}
}

// TestLegacyHMACDigestReads: streams written before the CRC-32C digest
// (HMAC-SHA256 of the whole plaintext) still read and verify.
func TestLegacyHMACDigestReads(t *testing.T) {
	encryptedDigest = DigestHMAC
	t.Cleanup(func() { encryptedDigest = DigestHMACCRC })
	data := testData(4*testChunk+9, 5)
	s := localStore(t)
	man := mustPut(t, s, data, testConfig(true, true))
	r, err := Open(context.Background(), s, testConfig(true, true))
	if err != nil {
		t.Fatal(err)
	}
	mac := hmac.New(sha256.New, r.digestKey)
	mac.Write(data)
	if man.Digest.Algorithm != DigestHMAC || !bytes.Equal(mac.Sum(nil), man.Digest.Value[:]) {
		t.Fatalf("legacy digest: %q", man.Digest.Algorithm)
	}
	if got := mustGet(t, s, testConfig(true, true)); !bytes.Equal(got, data) {
		t.Fatal("get differs from the input")
	}
	if err := r.Verify(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
}

// TestDigestCatchesPutSideDamage: a chunk that was damaged before it was
// sealed (a bug between reading the input and encrypting it) passes its
// AEAD check; the whole-stream digest must still fail the get, for both
// kinds of encrypted digest.
func TestDigestCatchesPutSideDamage(t *testing.T) {
	for _, algorithm := range []string{DigestHMACCRC, DigestHMAC} {
		t.Run(algorithm, func(t *testing.T) {
			encryptedDigest = algorithm
			t.Cleanup(func() { encryptedDigest = DigestHMACCRC })
			cfg := testConfig(true, false)
			s := localStore(t)
			mustPut(t, s, testData(3*testChunk, 6), cfg)
			r, err := Open(context.Background(), s, cfg)
			if err != nil {
				t.Fatal(err)
			}
			obj, err := s.Get(context.Background(), ChunkKey(1))
			if err != nil {
				t.Fatal(err)
			}
			plain, err := r.codec.open(1, obj)
			if err != nil {
				t.Fatal(err)
			}
			plain[100] ^= 1 // what a buggy put would have sealed
			buf := make([]byte, r.codec.head()+len(plain)+64)
			copy(buf[r.codec.head():], plain)
			if err := s.Put(context.Background(), ChunkKey(1), r.codec.encode(1, buf, len(plain), nil)); err != nil {
				t.Fatal(err)
			}
			_, err = get(s, cfg)
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "whole-stream digest") {
				t.Fatalf("get of a stream damaged before sealing: %v", err)
			}
		})
	}
}

// TestDigestAlgorithmMustFitEncryption: a plain stream's digest is SHA-256,
// an encrypted stream's one of the keyed kinds.
func TestDigestAlgorithmMustFitEncryption(t *testing.T) {
	for _, c := range []struct {
		algorithm string
		encrypted bool
		ok        bool
	}{
		{DigestSHA256, false, true}, {DigestHMAC, false, false}, {DigestHMACCRC, false, false},
		{DigestSHA256, true, false}, {DigestHMAC, true, true}, {DigestHMACCRC, true, true}, {"crc32c", true, false},
	} {
		if got := digestAlgorithmOK(c.algorithm, c.encrypted); got != c.ok {
			t.Errorf("%q encrypted=%v: %v, want %v", c.algorithm, c.encrypted, got, c.ok)
		}
		var key []byte
		if c.encrypted {
			key = make([]byte, 32)
		}
		if _, err := newStreamDigest(c.algorithm, key); (err == nil) != c.ok {
			t.Errorf("newStreamDigest(%q, encrypted=%v): %v", c.algorithm, c.encrypted, err)
		}
	}
}

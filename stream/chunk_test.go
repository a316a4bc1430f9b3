package stream

import (
	"bytes"
	"errors"
	"testing"

	"github.com/s3blk/s3blk/crypto"
)

func testCodec(encrypt, compress bool) *chunkCodec { return testCipherCodec(encrypt, compress, "") }

// testCipherCodec is testCodec with a data cipher ("": the default).
func testCipherCodec(encrypt, compress bool, cipher string) *chunkCodec {
	c := &chunkCodec{id: [idSize]byte{1, 2, 3}, compress: compress}
	if encrypt {
		if cipher == "" {
			cipher = crypto.DefaultCipher()
		}
		var key crypto.Key
		key[0] = 7
		var err error
		if c.aead, err = key.NewDataAEAD(cipher, crypto.PurposeStreamChunk, c.id[:]); err != nil {
			panic(err)
		}
	}
	return c
}

// encodeChunk returns the object of plain as chunk index.
func encodeChunk(c *chunkCodec, index uint64, plain []byte) []byte {
	buf := make([]byte, maxStored(len(plain)))
	copy(buf[c.head():], plain)
	return append([]byte(nil), c.encode(index, buf, len(plain), make([]byte, maxStored(len(plain))))...)
}

// TestChunkCodec: objects round-trip, have the documented shape, and are
// bound to their index, their stream and their flags.
func TestChunkCodec(t *testing.T) {
	plain := testData(10000, 1)
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			c := m.codec()
			obj := encodeChunk(c, 5, plain)
			switch {
			case !m.encrypt && !m.compress && !bytes.Equal(obj, plain):
				t.Fatal("a raw chunk is not the plaintext")
			case m.encrypt && !m.compress && len(obj) != len(plain)+crypto.Overhead:
				t.Fatalf("sealed chunk of %d bytes for %d", len(obj), len(plain))
			case len(obj) > maxStored(len(plain)):
				t.Fatalf("object of %d bytes beyond maxStored", len(obj))
			}
			got, err := c.decode(5, append([]byte(nil), obj...), len(plain), nil)
			if err != nil || !bytes.Equal(got, plain) {
				t.Fatalf("decode: %v", err)
			}
			if _, err := c.decode(5, append([]byte(nil), obj...), len(plain)-1, nil); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("decode with the wrong size: %v", err)
			}
			if !m.encrypt {
				return
			}
			if _, err := c.decode(6, append([]byte(nil), obj...), len(plain), nil); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("decode at another index: %v", err)
			}
			other := testCipherCodec(true, m.compress, m.cipher)
			other.id[0] = 9
			if _, err := other.decode(5, append([]byte(nil), obj...), len(plain), nil); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("decode in another stream: %v", err)
			}
			flipped := testCipherCodec(true, !m.compress, m.cipher)
			if _, err := flipped.decode(5, append([]byte(nil), obj...), len(plain), nil); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("decode with other flags: %v", err)
			}
		})
	}
}

// FuzzChunkDecode: no object, however damaged, makes decode panic or
// return data of the wrong size; a decoded object is the plaintext.
func FuzzChunkDecode(f *testing.F) {
	plain := testData(3000, 2)
	for i, m := range modes {
		obj := encodeChunk(m.codec(), 1, plain)
		f.Add(uint8(i), obj, uint16(len(plain)))
		f.Add(uint8(i), obj[:len(obj)/2], uint16(len(plain)))
	}
	f.Add(uint8(1), []byte{0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x00}, uint16(10))
	f.Fuzz(func(t *testing.T, which uint8, obj []byte, want uint16) {
		m := modes[int(which)%len(modes)]
		c := m.codec()
		got, err := c.decode(1, append([]byte(nil), obj...), int(want), make([]byte, 0, 64))
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error does not wrap ErrCorrupt: %v", err)
			}
			return
		}
		if len(got) != int(want) {
			t.Fatalf("decoded %d bytes, want %d", len(got), want)
		}
		if m.encrypt && !bytes.Equal(got, plain[:min(len(plain), len(got))]) {
			t.Fatal("an encrypted chunk decoded to bytes that were never sealed")
		}
	})
}

package stream

import (
	"crypto/hmac"
	"crypto/sha256"
	"math/rand/v2"
	"testing"
)

// randomChunk is incompressible test data.
func randomChunk(n int, seed uint64) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)})
	r.Read(b)
	return b
}

// BenchmarkEncode and BenchmarkDecode measure the CPU cost per byte of each
// codec on incompressible data, SHA-256 of the object included (Put and Get
// both compute it).
func BenchmarkEncode(b *testing.B) {
	for _, m := range modes {
		b.Run(m.name, func(b *testing.B) {
			const size = 8 << 20
			c := m.codec()
			data := randomChunk(size, 1)
			buf := make([]byte, maxStored(size))
			spare := make([]byte, maxStored(size))
			b.SetBytes(size)
			for b.Loop() {
				copy(buf[c.head():], data)
				obj := c.encode(1, buf, size, spare)
				sha256.Sum256(obj)
			}
		})
	}
}

func BenchmarkDecode(b *testing.B) {
	for _, m := range modes {
		b.Run(m.name, func(b *testing.B) {
			const size = 8 << 20
			c := m.codec()
			buf := make([]byte, maxStored(size))
			copy(buf[c.head():], randomChunk(size, 1))
			obj := append([]byte(nil), c.encode(1, buf, size, make([]byte, maxStored(size)))...)
			work := make([]byte, len(obj))
			scratch := make([]byte, 0, size)
			b.SetBytes(size)
			for b.Loop() {
				copy(work, obj)
				sha256.Sum256(work)
				if _, err := c.decode(1, work, size, scratch); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkDigest(b *testing.B) {
	data := randomChunk(8<<20, 1)
	b.SetBytes(int64(len(data)))
	h := hmac.New(sha256.New, make([]byte, 32))
	for b.Loop() {
		h.Write(data)
	}
}

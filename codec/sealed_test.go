package codec_test

import (
	"bytes"
	"encoding/binary"
	"slices"
	"testing"

	"github.com/s3blk/s3blk/codec"
	"github.com/s3blk/s3blk/crypto"
)

// testAEAD is a fresh key's block AEAD with cipher ("": the default).
func testAEAD(t testing.TB, cipher string) *crypto.AEAD {
	k, err := crypto.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	if cipher == "" {
		cipher = crypto.DefaultCipher()
	}
	a, err := k.NewDataAEAD(cipher, crypto.PurposeBlock, volA[:])
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// configs are every combination a volume can use: "sealed" and
// "sealed+zstd" with the default cipher, and "sealed/CIPHER",
// "sealed+zstd/CIPHER" with each cipher.
func configs(t testing.TB) map[string]*codec.Codec {
	a := testAEAD(t, "")
	cs := map[string]*codec.Codec{
		"plain":       {VolumeID: volA, BlockSize: testBlockSize},
		"zstd":        {VolumeID: volA, BlockSize: testBlockSize, Compress: true},
		"sealed":      {VolumeID: volA, BlockSize: testBlockSize, AEAD: a},
		"sealed+zstd": {VolumeID: volA, BlockSize: testBlockSize, Compress: true, AEAD: a},
	}
	for _, cipher := range crypto.Ciphers() {
		a := testAEAD(t, cipher)
		cs["sealed/"+cipher] = &codec.Codec{VolumeID: volA, BlockSize: testBlockSize, AEAD: a}
		cs["sealed+zstd/"+cipher] = &codec.Codec{VolumeID: volA, BlockSize: testBlockSize, Compress: true, AEAD: a}
	}
	return cs
}

// sealedConfigs names the configs that encrypt.
func sealedConfigs(t testing.TB) []string {
	var names []string
	for name, c := range configs(t) {
		if c.AEAD != nil {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names
}

// text is a compressible block: what a filesystem full of logs looks like.
func text() []byte {
	return bytes.Repeat([]byte("s3blk secret plaintext line 0123456789\n"), testBlockSize/39+1)[:testBlockSize]
}

func TestEveryConfigRoundTripsAndRefusesDamage(t *testing.T) {
	for name, c := range configs(t) {
		for kind, plain := range map[string][]byte{"random": randomBlock(11, testBlockSize), "text": text(), "zeros": make([]byte, testBlockSize)} {
			obj := c.Encode(42, plain, nil)
			dst := make([]byte, testBlockSize)
			if err := c.Decode(42, bytes.Clone(obj), dst); err != nil || !bytes.Equal(dst, plain) {
				t.Fatalf("%s/%s: round trip: %v", name, kind, err)
			}
			for pos := range obj {
				bad := bytes.Clone(obj)
				bad[pos] ^= 0x10
				mustDecodeFail(t, c, 42, bad, name+"/"+kind+": flipped byte")
			}
			for n := 0; n < len(obj); n += 1 + n/4 {
				mustDecodeFail(t, c, 42, bytes.Clone(obj[:n]), name+"/"+kind+": truncated")
			}
			mustDecodeFail(t, c, 43, bytes.Clone(obj), name+"/"+kind+": moved to another index")
			other := *c
			other.VolumeID = volB // same key, another volume
			mustDecodeFail(t, &other, 42, bytes.Clone(obj), name+"/"+kind+": copied to another volume")
		}
	}
}

func TestCompressionKeptOnlyWhenSmaller(t *testing.T) {
	c := configs(t)["sealed+zstd"]
	random := c.Encode(1, randomBlock(12, testBlockSize), nil)
	if random[5]&codec.FlagZstd != 0 || len(random) != codec.HeaderSize+crypto.Overhead+testBlockSize {
		t.Fatalf("incompressible block: flags %#x, %d bytes", random[5], len(random))
	}
	small := c.Encode(1, text(), nil)
	if small[5]&codec.FlagZstd == 0 || len(small) >= testBlockSize/4 {
		t.Fatalf("compressible block: flags %#x, %d bytes", small[5], len(small))
	}
}

func TestSealedObjectsHideAndNeverRepeat(t *testing.T) {
	for _, name := range sealedConfigs(t) {
		c := configs(t)[name]
		a, b := c.Encode(7, text(), nil), c.Encode(7, text(), nil)
		if bytes.Contains(a, []byte("secret plaintext")) {
			t.Fatalf("%s: plaintext visible in the object", name)
		}
		if bytes.Equal(a, b) {
			t.Fatalf("%s: two writes of one block give the same object (nonce reuse; a rewrite would be visible)", name)
		}
	}
}

func TestNoDowngradeOrUpgrade(t *testing.T) {
	cs := configs(t)
	plainObj := cs["plain"].Encode(3, text(), nil)
	zstdObj := cs["zstd"].Encode(3, text(), nil)
	sealedObj := cs["sealed"].Encode(3, text(), nil)
	mustDecodeFail(t, cs["sealed"], 3, plainObj, "checksummed plaintext object in an encrypted volume")
	mustDecodeFail(t, cs["sealed+zstd"], 3, zstdObj, "compressed plaintext object in an encrypted volume")
	mustDecodeFail(t, cs["plain"], 3, sealedObj, "sealed object in an unencrypted volume")
	// Another key (another volume, or a wrong passphrase that got this far).
	other := *cs["sealed"]
	other.AEAD = testAEAD(t, "")
	mustDecodeFail(t, &other, 3, sealedObj, "sealed under another key")
	// The header is authenticated: clearing the zstd flag of a compressed
	// sealed object, or setting a generation, is refused.
	z := cs["sealed+zstd"].Encode(3, text(), nil)
	noZstd := bytes.Clone(z)
	noZstd[5] &^= codec.FlagZstd
	mustDecodeFail(t, cs["sealed+zstd"], 3, noZstd, "flags edited")
	gen := bytes.Clone(z)
	binary.BigEndian.PutUint64(gen[8:], 1)
	mustDecodeFail(t, cs["sealed+zstd"], 3, gen, "generation edited")
}

// TestDecompressionBombRefused: an unencrypted object's checksum can be
// forged by anyone, so a zstd payload that expands past one block must be
// refused without expanding it without bound.
func TestDecompressionBombRefused(t *testing.T) {
	c := configs(t)["zstd"]
	for _, n := range []int{testBlockSize + 1, 2 * testBlockSize, 8 << 20} {
		frame := codec.Compress(nil, make([]byte, n))
		obj := make([]byte, codec.HeaderSize, codec.HeaderSize+len(frame)+codec.TrailerSize)
		copy(obj, codec.Magic)
		obj[4], obj[5] = codec.Version, codec.FlagZstd
		binary.BigEndian.PutUint32(obj[16:], uint32(len(frame)))
		obj = append(append(obj, frame...), make([]byte, codec.TrailerSize)...)
		mustDecodeFail(t, c, 1, resign(volA, 1, obj), "zstd bomb")
	}
}

func BenchmarkEncode(b *testing.B) {
	for _, name := range append([]string{"plain"}, sealedConfigs(b)...) {
		for kind, plain := range map[string][]byte{"random": randomBlock(13, 1<<20), "text": bytes.Repeat(text(), 256)} {
			b.Run(name+"/"+kind, func(b *testing.B) {
				c := *configs(b)[name]
				c.BlockSize = 1 << 20
				var scratch []byte
				b.SetBytes(1 << 20)
				for b.Loop() {
					scratch = c.Encode(1, plain, scratch)
				}
			})
		}
	}
}

func BenchmarkDecode(b *testing.B) {
	for _, name := range append([]string{"plain"}, sealedConfigs(b)...) {
		for kind, plain := range map[string][]byte{"random": randomBlock(13, 1<<20), "text": bytes.Repeat(text(), 256)} {
			b.Run(name+"/"+kind, func(b *testing.B) {
				c := *configs(b)[name]
				c.BlockSize = 1 << 20
				obj := c.Encode(1, plain, nil)
				work, dst := make([]byte, len(obj)), make([]byte, 1<<20)
				b.SetBytes(1 << 20)
				for b.Loop() {
					copy(work, obj)
					if err := c.Decode(1, work, dst); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

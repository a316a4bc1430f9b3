// Package volume lays a block device out in a Store and reads and writes its
// blocks through the codec.
//
// Object layout under the volume's prefix:
//
//	header                     JSON: format, version, volume ID, size, block size, creation time,
//	                           codecs, wrapped master key and KDF parameters, MAC (see Header)
//	lock                       JSON: host, PID, mountpoint, time of the mount holding the volume
//	blocks/<16 hex digits>     one object per non-zero block, keyed by block index
//
// Invariants:
//   - A block with no object reads as zeros; the volume layer never stores an
//     all-zero block (the cache turns those writes into deletes).
//   - Every block object is verified by the codec on read; a bad object is an
//     error wrapping codec.ErrCorrupt, never data.
//   - The header is written by Create, with an atomic create, so two racing
//     creates cannot both succeed; afterwards only ChangePassphrase rewrites
//     it, and only its wrapped key.
//   - An encrypted volume's header is authenticated with a key derived from
//     the master key: it cannot be edited unseen, and a wrong passphrase is
//     refused before any block is read.
package volume

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/s3blk/s3blk/blockstore"
	"github.com/s3blk/s3blk/codec"
	"github.com/s3blk/s3blk/crypto"
	"github.com/s3blk/s3blk/stats"
)

const (
	HeaderKey   = "header"
	LockKey     = "lock"
	BlockPrefix = "blocks/"

	FormatName    = "s3blk-volume"
	FormatVersion = 1

	MinBlockSize = 4 << 10
	MaxBlockSize = 64 << 20
)

// BlockKey is the object key of block index.
func BlockKey(index uint64) string { return fmt.Sprintf("%s%016x", BlockPrefix, index) }

// ParseBlockKey returns the index of a block key, or false.
func ParseBlockKey(key string) (uint64, bool) {
	hexPart, ok := strings.CutPrefix(key, BlockPrefix)
	if !ok || len(hexPart) != 16 {
		return 0, false
	}
	n, err := strconv.ParseUint(hexPart, 16, 64)
	return n, err == nil && BlockKey(n) == key // lowercase only: one key per block
}

// Volume reads and writes the blocks of one opened volume.
type Volume struct {
	Store  blockstore.Store
	Header *Header
	Stats  *stats.Counters
	codec  codec.Codec
	// objects recycles the buffers block objects are downloaded into:
	// a cold read of a large file would otherwise allocate (and zero) one
	// per block.
	objects sync.Pool
}

// Open reads the header and returns the volume. For an encrypted volume it
// opens the master key with passphrase first: a wrong passphrase is
// crypto.ErrWrongPassphrase, before any block is read. counters may be nil.
func Open(ctx context.Context, store blockstore.Store, passphrase []byte, counters *stats.Counters) (*Volume, error) {
	h, err := ReadHeader(ctx, store)
	if err != nil {
		return nil, err
	}
	if counters == nil {
		counters = new(stats.Counters)
	}
	v := &Volume{Store: store, Header: h, Stats: counters}
	copy(v.codec.VolumeID[:], h.id())
	v.codec.BlockSize = h.BlockSize
	v.codec.Compress = h.Compression == CompressionZstd
	if h.Encrypted() {
		master, err := h.unlock(passphrase)
		if err != nil {
			return nil, err
		}
		if v.codec.AEAD, err = master.NewDataAEAD(h.Encryption, crypto.PurposeBlock, h.id()); err != nil {
			return nil, err
		}
	}
	return v, nil
}

// BlockSize is the volume's block size in bytes.
func (v *Volume) BlockSize() int { return v.Header.BlockSize }

// ReadBlock fills dst (one block) with block index. It reports found=false,
// and leaves dst untouched, when the block has no object (it is all zeros).
func (v *Volume) ReadBlock(ctx context.Context, index uint64, dst []byte) (found bool, err error) {
	key := BlockKey(index)
	// No valid object is larger than a block plus the codec's overhead: a
	// bigger one is refused before it is read.
	maxObject := v.Header.BlockSize + codec.MaxOverhead
	buf, _ := v.objects.Get().(*[]byte)
	if buf == nil {
		b := make([]byte, 0, maxObject)
		buf = &b
	}
	defer v.objects.Put(buf)
	obj, err := blockstore.GetBuffer(ctx, v.Store, key, *buf, maxObject)
	if errors.Is(err, blockstore.ErrNotFound) {
		return false, nil
	}
	if errors.Is(err, blockstore.ErrTooLarge) {
		v.Stats.CorruptBlocks.Add(1)
		return false, fmt.Errorf("%s/%s: %w: larger than a block of %d bytes can encode to", v.Store.Describe(), key, codec.ErrCorrupt, v.Header.BlockSize)
	}
	if err != nil {
		return false, err
	}
	v.Stats.Downloads.Add(1)
	v.Stats.DownloadBytes.Add(int64(len(obj)))
	if err := v.codec.Decode(index, obj, dst); err != nil {
		v.Stats.CorruptBlocks.Add(1)
		return false, fmt.Errorf("%s/%s: %w", v.Store.Describe(), key, err)
	}
	return true, nil
}

// WriteBlock stores block index. scratch, if big enough, is used for the
// encoded object to avoid an allocation; the encoded object is returned so
// the caller can reuse its buffer.
func (v *Volume) WriteBlock(ctx context.Context, index uint64, data []byte, scratch []byte) ([]byte, error) {
	obj := v.codec.Encode(index, data, scratch)
	if err := v.Store.Put(ctx, BlockKey(index), obj); err != nil {
		return obj, err
	}
	v.Stats.Uploads.Add(1)
	v.Stats.UploadBytes.Add(int64(len(obj)))
	return obj, nil
}

// DeleteBlock removes block index's object, so that it reads as zeros.
func (v *Volume) DeleteBlock(ctx context.Context, index uint64) error {
	if err := v.Store.Delete(ctx, BlockKey(index)); err != nil {
		return err
	}
	v.Stats.Deletes.Add(1)
	return nil
}

// ListBlocks calls fn with the index of every stored block, in order.
func (v *Volume) ListBlocks(ctx context.Context, fn func(index uint64)) error {
	return v.Store.List(ctx, BlockPrefix, func(o blockstore.ObjectInfo) error {
		if i, ok := ParseBlockKey(o.Key); ok && i < v.Header.Blocks() {
			fn(i)
		}
		return nil
	})
}

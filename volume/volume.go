// Package volume lays a block device out in a Store and reads and writes its
// blocks through the codec.
//
// Object layout under the volume's prefix:
//
//	header                     JSON: format, version, volume ID, size, block size, creation time, codecs
//	lock                       JSON: host, PID, mountpoint, time of the mount holding the volume
//	blocks/<16 hex digits>     one object per non-zero block, keyed by block index
//
// Invariants:
//   - A block with no object reads as zeros; the volume layer never stores an
//     all-zero block (the cache turns those writes into deletes).
//   - Every block object is verified by the codec on read; a bad object is an
//     error wrapping codec.ErrCorrupt, never data.
//   - The header is written once, by Create, with an atomic create, so two
//     racing creates cannot both succeed.
package volume

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/s3blk/s3blk/blockstore"
	"github.com/s3blk/s3blk/codec"
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

// ErrNoVolume means the prefix holds no volume header.
var ErrNoVolume = errors.New("no s3blk volume here")

// Header is the volume's geometry and identity, stored as JSON.
type Header struct {
	Format      string    `json:"format"`
	Version     int       `json:"version"`
	VolumeID    string    `json:"volume_id"`
	Size        int64     `json:"size"`
	BlockSize   int       `json:"block_size"`
	Created     time.Time `json:"created"`
	Compression string    `json:"compression"`
	Encryption  string    `json:"encryption"`
}

// Blocks is the number of blocks in the volume.
func (h *Header) Blocks() uint64 { return uint64(h.Size / int64(h.BlockSize)) }

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
	if h.Compression != "none" || h.Encryption != "none" {
		return fmt.Errorf("volume uses compression %q and encryption %q, which this s3blk cannot read", h.Compression, h.Encryption)
	}
	return CheckGeometry(h.Size, h.BlockSize)
}

// Create writes the header of a new volume. It refuses a prefix that already
// holds a volume or any block objects.
func Create(ctx context.Context, store blockstore.Store, size int64, blockSize int) (*Header, error) {
	if err := CheckGeometry(size, blockSize); err != nil {
		return nil, err
	}
	if _, err := store.Get(ctx, HeaderKey); err == nil {
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
		Compression: "none", Encryption: "none",
	}
	data, _ := json.MarshalIndent(h, "", "  ")
	if err := store.PutIfAbsent(ctx, HeaderKey, append(data, '\n')); err != nil {
		if errors.Is(err, blockstore.ErrExists) {
			return nil, fmt.Errorf("%s already holds a volume", store.Describe())
		}
		return nil, blockstore.Explain(err)
	}
	return h, nil
}

// ReadHeader loads and validates the header of the volume in store.
func ReadHeader(ctx context.Context, store blockstore.Store) (*Header, error) {
	data, err := store.Get(ctx, HeaderKey)
	if errors.Is(err, blockstore.ErrNotFound) {
		return nil, fmt.Errorf("%s: %w; run `s3blk create` first", store.Describe(), ErrNoVolume)
	}
	if err != nil {
		return nil, blockstore.Explain(err)
	}
	var h Header
	if err := json.Unmarshal(data, &h); err != nil {
		return nil, fmt.Errorf("%s: volume header is not valid JSON: %v", store.Describe(), err)
	}
	if err := h.validate(); err != nil {
		return nil, fmt.Errorf("%s: %v", store.Describe(), err)
	}
	return &h, nil
}

// Volume reads and writes the blocks of one opened volume.
type Volume struct {
	Store  blockstore.Store
	Header *Header
	Stats  *stats.Counters
	codec  codec.Codec
}

// Open reads the header and returns the volume. counters may be nil.
func Open(ctx context.Context, store blockstore.Store, counters *stats.Counters) (*Volume, error) {
	h, err := ReadHeader(ctx, store)
	if err != nil {
		return nil, err
	}
	if counters == nil {
		counters = new(stats.Counters)
	}
	v := &Volume{Store: store, Header: h, Stats: counters}
	id, _ := hex.DecodeString(h.VolumeID)
	copy(v.codec.VolumeID[:], id)
	v.codec.BlockSize = h.BlockSize
	return v, nil
}

// BlockSize is the volume's block size in bytes.
func (v *Volume) BlockSize() int { return v.Header.BlockSize }

// ReadBlock fills dst (one block) with block index. It reports found=false,
// and leaves dst untouched, when the block has no object (it is all zeros).
func (v *Volume) ReadBlock(ctx context.Context, index uint64, dst []byte) (found bool, err error) {
	key := BlockKey(index)
	obj, err := v.Store.Get(ctx, key)
	if errors.Is(err, blockstore.ErrNotFound) {
		return false, nil
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

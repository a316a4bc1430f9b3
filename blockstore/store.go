// Package blockstore is the bottom of the s3blk stack: a flat namespace of
// whole objects addressed by key, relative to one volume or stream prefix.
//
// The stack, top to bottom, each layer wrapping the one below:
//
//	fusefs  (the FUSE file)  ->  cache  (write-back LRU)  ->  volume  (block
//	keys, codec, header, lock)  ->  blockstore.Store  (S3 or a local directory)
//
// Invariants every Store implementation keeps:
//   - Put is atomic: a reader sees the old object, the new one, or (for a new
//     key) ErrNotFound, never a torn mixture. An interrupted Put never leaves
//     a partial object under the key.
//   - Put returns only once the object is durable in the backing store (an S3
//     200 response, or an fsync'd file and directory).
//   - PutIfAbsent is an atomic create: of two racing callers exactly one wins
//     and the other gets ErrExists.
//   - Delete of a missing key is not an error.
//   - Get of a missing key returns an error matching ErrNotFound.
package blockstore

import (
	"context"
	"errors"
)

// ErrNotFound is returned (possibly wrapped) by Get for a missing key.
var ErrNotFound = errors.New("object not found")

// ErrExists is returned by PutIfAbsent when the key already exists.
var ErrExists = errors.New("object already exists")

// ObjectInfo describes one listed object.
type ObjectInfo struct {
	Key  string // relative to the store's prefix
	Size int64
}

// Store is the one object-store interface every backend implements and every
// wrapper (stats counting, fault injection) preserves.
type Store interface {
	Get(ctx context.Context, key string) ([]byte, error)
	Put(ctx context.Context, key string, data []byte) error
	PutIfAbsent(ctx context.Context, key string, data []byte) error
	Delete(ctx context.Context, key string) error
	// List calls fn for every object whose key starts with prefix, in
	// lexical key order. An error from fn stops the listing and is returned.
	List(ctx context.Context, prefix string, fn func(ObjectInfo) error) error
	// Describe names the store for humans, e.g. "s3://bucket/prefix".
	Describe() string
}

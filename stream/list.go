package stream

import (
	"context"
	"errors"
	"fmt"
	"path"
	"sort"
	"strings"
	"sync"

	"github.com/s3blk/s3blk/blockstore"
)

var errStop = errors.New("stop listing")

// hasChunks reports whether store holds at least one chunk object.
func hasChunks(ctx context.Context, store blockstore.Store) (bool, error) {
	found := false
	err := store.List(ctx, "", func(o blockstore.ObjectInfo) error {
		if _, ok := ParseChunkKey(o.Key); ok {
			found = true
			return errStop
		}
		if o.Key != "" && o.Key[0] > '9' { // keys come in order: no chunk key follows
			return errStop
		}
		return nil
	})
	if err != nil && err != errStop {
		return false, blockstore.Explain(err)
	}
	return found, nil
}

// exists reports whether key exists in store, reading none of a large
// object (a hostile one may be huge).
func exists(ctx context.Context, store blockstore.Store, key string) (bool, error) {
	_, err := blockstore.GetBuffer(ctx, store, key, nil, 0)
	switch {
	case err == nil || errors.Is(err, blockstore.ErrTooLarge):
		return true, nil
	case errors.Is(err, blockstore.ErrNotFound):
		return false, nil
	}
	return false, blockstore.Explain(err)
}

// IsStream reports whether store holds a stream, complete or not: a
// manifest or any chunk object.
func IsStream(ctx context.Context, store blockstore.Store) (bool, error) {
	if ok, err := exists(ctx, store, ManifestKey); ok || err != nil {
		return ok, err
	}
	return hasChunks(ctx, store)
}

// chunkKeysFrom lists the chunk keys with index >= from, in order.
func chunkKeysFrom(ctx context.Context, store blockstore.Store, from uint64) ([]string, error) {
	var keys []string
	err := store.List(ctx, "", func(o blockstore.ObjectInfo) error {
		if i, ok := ParseChunkKey(o.Key); ok && i >= from {
			keys = append(keys, o.Key)
		}
		return nil
	})
	return keys, blockstore.Explain(err)
}

// deleteChunksFrom deletes every chunk object with index >= from.
func deleteChunksFrom(ctx context.Context, store blockstore.Store, from uint64, cfg *Config) error {
	keys, err := chunkKeysFrom(ctx, store, from)
	if err != nil {
		return err
	}
	return deleteKeys(ctx, store, keys, cfg)
}

// deleteKeys deletes keys in parallel, each retried like a chunk upload.
func deleteKeys(ctx context.Context, store blockstore.Store, keys []string, cfg *Config) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	todo := make(chan string)
	var wg sync.WaitGroup
	for range min(cfg.Concurrency*4, len(keys)) {
		wg.Go(func() {
			for key := range todo {
				if err := retry(ctx, cfg, "deleting "+key, func() error { return store.Delete(ctx, key) }); err != nil {
					cancel(err)
				}
			}
		})
	}
	for _, key := range keys {
		select {
		case todo <- key:
		case <-ctx.Done():
		}
	}
	close(todo)
	wg.Wait()
	return context.Cause(ctx)
}

// Removed says what Remove deleted.
type Removed struct {
	Manifest bool
	Chunks   int
}

// Remove deletes the stream in store: the manifest first (so that an
// interrupted Remove leaves an INCOMPLETE stream, never a complete-looking
// one with chunks missing), then every chunk object, leftovers included.
// It refuses a volume, and a prefix with no stream (ErrNoStream).
func Remove(ctx context.Context, store blockstore.Store, cfg Config) (Removed, error) {
	var rm Removed
	if err := cfg.normalize(); err != nil {
		return rm, err
	}
	if vol, err := exists(ctx, store, VolumeHeaderKey); err != nil {
		return rm, err
	} else if vol {
		return rm, fmt.Errorf("%s %w: refusing to remove it", store.Describe(), ErrVolume)
	}
	hasManifest, err := exists(ctx, store, ManifestKey)
	if err != nil {
		return rm, err
	}
	if hasManifest {
		if err := retry(ctx, &cfg, "deleting the manifest", func() error { return store.Delete(ctx, ManifestKey) }); err != nil {
			return rm, err
		}
		rm.Manifest = true
	}
	keys, err := chunkKeysFrom(ctx, store, 0)
	if err != nil {
		return rm, err
	}
	if !rm.Manifest && len(keys) == 0 {
		return rm, fmt.Errorf("%s: %w", store.Describe(), ErrNoStream)
	}
	if err := deleteKeys(ctx, store, keys, &cfg); err != nil {
		return rm, err
	}
	rm.Chunks = len(keys)
	return rm, nil
}

// Info is one stream found by List.
type Info struct {
	Name        string    // relative to the listed prefix; "" for the prefix itself
	Manifest    *Manifest // nil if the stream is INCOMPLETE or its manifest is bad
	Err         error     // why the manifest could not be read
	Chunks      int       // chunk objects present
	StoredBytes int64     // their total size
	hasManifest bool
}

// Complete reports whether the stream has a readable manifest.
func (i *Info) Complete() bool { return i.Manifest != nil }

// List finds the streams below store's prefix: every name with a manifest
// or chunk objects directly under it. It lists the keys once and reads only
// the manifests (in parallel), whatever the number of chunks.
func List(ctx context.Context, store blockstore.Store) ([]*Info, error) {
	byName := map[string]*Info{}
	err := store.List(ctx, "", func(o blockstore.ObjectInfo) error {
		dir, base := path.Split(o.Key)
		_, isChunk := ParseChunkKey(base)
		if !isChunk && base != ManifestKey {
			return nil
		}
		name := strings.TrimSuffix(dir, "/")
		info := byName[name]
		if info == nil {
			info = &Info{Name: name}
			byName[name] = info
		}
		if isChunk {
			info.Chunks++
			info.StoredBytes += o.Size
		} else {
			info.hasManifest = true
		}
		return nil
	})
	if err != nil {
		return nil, blockstore.Explain(err)
	}
	infos := make([]*Info, 0, len(byName))
	for _, info := range byName {
		infos = append(infos, info)
	}
	sort.Slice(infos, func(i, j int) bool { return infos[i].Name < infos[j].Name })
	todo := make(chan *Info)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for info := range todo {
				info.Manifest, info.Err = readListedManifest(ctx, store, info.Name)
			}
		})
	}
	for _, info := range infos {
		if info.hasManifest {
			todo <- info
		}
	}
	close(todo)
	wg.Wait()
	return infos, ctx.Err()
}

func readListedManifest(ctx context.Context, store blockstore.Store, name string) (*Manifest, error) {
	key := ManifestKey
	if name != "" {
		key = name + "/" + ManifestKey
	}
	data, err := blockstore.GetBuffer(ctx, store, key, nil, maxManifestSize)
	if errors.Is(err, blockstore.ErrTooLarge) {
		return nil, fmt.Errorf("%w manifest: beyond the %d-byte limit", ErrCorrupt, maxManifestSize)
	}
	if err != nil {
		return nil, blockstore.Explain(err)
	}
	return ParseManifest(data)
}

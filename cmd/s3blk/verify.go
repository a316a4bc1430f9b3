package main

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/s3blk/s3blk/blockstore"
	"github.com/s3blk/s3blk/codec"
	"github.com/s3blk/s3blk/volume"
)

func runVerify(args []string) error {
	fs := newFlagSet("verify", "URL", "Read, decode and authenticate every stored block of a volume, or every chunk of a stream.\n"+
		"Lists what is bad and exits 1 if anything is. Needs no mount and takes no lock")
	var sf storeFlags
	var pf passphraseFlags
	sf.register(fs)
	pf.register(fs)
	parallel := fs.Int("parallel", 8, "objects checked at once")
	quiet := fs.Bool("quiet", false, "no progress bar")
	pos, err := parseArgs(fs, args, 1, "URL")
	if err != nil {
		return err
	}
	if *parallel < 1 {
		return usageError{"--parallel must be at least 1"}
	}
	ctx := context.Background()
	store, err := sf.open(ctx, pos[0], nil)
	if err != nil {
		return err
	}
	h, err := volume.ReadHeader(ctx, store)
	if errors.Is(err, volume.ErrNoVolume) {
		if ok, serr := isStream(ctx, store); serr != nil {
			return serr
		} else if ok {
			return verifyStream(ctx, store, &pf, *quiet)
		}
		return fmt.Errorf("%s holds neither a volume nor a stream", store.Describe())
	}
	if err != nil {
		return err
	}
	pass, err := volumePassphrase(h, &pf, store.Describe())
	if err != nil {
		return err
	}
	vol, err := volume.Open(ctx, store, pass, nil)
	if err != nil {
		return err
	}
	return verifyVolume(ctx, vol, *parallel, *quiet)
}

// badBlock is one block that failed verification.
type badBlock struct {
	index  uint64
	reason string
}

// verifyVolume reads every stored block through the codec, in parallel. A
// block that fails to decode, authenticate or checksum is reported; an
// error reaching the store stops the run (it proves nothing either way).
func verifyVolume(ctx context.Context, vol *volume.Volume, parallel int, quiet bool) error {
	type object struct {
		index uint64
		size  int64
	}
	var objects []object
	var stray []string
	var total int64
	err := vol.Store.List(ctx, volume.BlockPrefix, func(o blockstore.ObjectInfo) error {
		i, ok := volume.ParseBlockKey(o.Key)
		if !ok || i >= vol.Header.Blocks() {
			stray = append(stray, o.Key)
			return nil
		}
		objects = append(objects, object{i, o.Size})
		total += o.Size
		return nil
	})
	if err != nil {
		return blockstore.Explain(err)
	}
	var bar *progress
	if !quiet {
		bar = newProgress(total)
	}
	var mu sync.Mutex
	var bad []badBlock
	work := make(chan object)
	g, gctx := errgroup.WithContext(ctx)
	for range parallel {
		g.Go(func() error {
			buf := make([]byte, vol.BlockSize())
			for o := range work {
				i := o.index
				_, err := vol.ReadBlock(gctx, i, buf)
				bar.Add(o.size)
				if errors.Is(err, codec.ErrCorrupt) {
					mu.Lock()
					bad = append(bad, badBlock{i, oneLine(err)})
					mu.Unlock()
				} else if err != nil {
					return fmt.Errorf("reading block %d: %v", i, blockstore.Explain(err))
				}
			}
			return nil
		})
	}
	g.Go(func() error {
		defer close(work)
		for _, o := range objects {
			select {
			case work <- o:
			case <-gctx.Done():
				return nil
			}
		}
		return nil
	})
	err = g.Wait()
	bar.Done()
	if err != nil {
		return err
	}
	for _, k := range stray {
		fmt.Printf("stray object %s: not a block of this volume (ignored by mount)\n", k)
	}
	sort.Slice(bad, func(a, b int) bool { return bad[a].index < bad[b].index })
	for _, b := range bad {
		fmt.Printf("BAD block %d (%s): %s\n", b.index, volume.BlockKey(b.index), b.reason)
	}
	fmt.Printf("%s: %d blocks checked (%s of objects), %d bad\n", vol.Store.Describe(), len(objects), FormatSize(total), len(bad))
	if len(bad) > 0 {
		return exitError{fmt.Errorf("%d bad block(s): reads of those ranges return EIO", len(bad)), 1}
	}
	return nil
}

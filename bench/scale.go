package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"flag"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/s3blk/s3blk/blockstore"
	"github.com/s3blk/s3blk/volume"
)

// runScale fills an existing volume with -blocks blocks spread evenly over
// its whole size, through the volume package (so every object is a valid
// block), and prints "blocks object_bytes seconds". Each block holds its
// index and 64 random bytes, the rest zeros, so that compressed objects are
// small. An encrypted volume is opened with the passphrase in
// -passphrase-file (default $S3BLK_PASSPHRASE_FILE), read as the CLI reads it.
//
// If the first object shows that -blocks objects would take more than
// -max-bytes (an uncompressed build stores every block at full size), fewer
// blocks are written; the first number printed is how many.
func runScale(args []string) error {
	fs := flag.NewFlagSet("scale", flag.ContinueOnError)
	rawURL := fs.String("url", "", "volume URL (s3://bucket/prefix), created with s3blk create")
	blocks := fs.Int64("blocks", 100000, "blocks to store")
	conc := fs.Int("concurrency", 32, "uploads in flight")
	maxBytes := sizeFlag(fs, "max-bytes", 0, "store at most this many object bytes (0: no limit)")
	passFile := fs.String("passphrase-file", os.Getenv("S3BLK_PASSPHRASE_FILE"), "passphrase of an encrypted volume")
	if err := fs.Parse(args); err != nil {
		return err
	}
	loc, err := blockstore.ParseURL(*rawURL)
	if err != nil {
		return err
	}
	ctx := context.Background()
	store, err := blockstore.Open(ctx, loc, blockstore.S3Options{})
	if err != nil {
		return err
	}
	var passphrase []byte
	if *passFile != "" {
		if passphrase, err = os.ReadFile(*passFile); err != nil {
			return err
		}
		passphrase = bytes.TrimSuffix(bytes.TrimSuffix(passphrase, []byte("\n")), []byte("\r"))
	}
	vol, err := volume.Open(ctx, store, passphrase, nil)
	if err != nil {
		return err
	}
	total := vol.Header.Blocks()
	if *blocks < 1 || uint64(*blocks) > total {
		return fmt.Errorf("-blocks must be between 1 and the volume's %d blocks", total)
	}
	stride := total / uint64(*blocks)
	bs := vol.BlockSize()

	start := time.Now()
	write := func(i int64, data, scratch []byte) ([]byte, error) {
		index := uint64(i) * stride
		binary.BigEndian.PutUint64(data, index)
		rand.Read(data[8:72])
		return vol.WriteBlock(ctx, index, data, scratch)
	}
	first, err := write(0, make([]byte, bs), nil)
	if err != nil {
		return err
	}
	objBytes := int64(len(first))
	n := *blocks
	if *maxBytes > 0 && objBytes*n > *maxBytes {
		n = max(1, *maxBytes/objBytes)
	}

	var next atomic.Int64
	next.Store(1)
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	for w := 0; w < *conc; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			data := make([]byte, bs)
			var scratch []byte
			for {
				i := next.Add(1) - 1
				if i >= n {
					return
				}
				obj, err := write(i, data, scratch)
				if err != nil {
					once.Do(func() { firstErr = err })
					next.Store(n)
					return
				}
				scratch = obj
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	fmt.Printf("%d %d %.1f\n", n, objBytes, time.Since(start).Seconds())
	return nil
}

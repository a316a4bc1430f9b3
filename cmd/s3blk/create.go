package main

import (
	"context"
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	"github.com/s3blk/s3blk/blockstore"
	"github.com/s3blk/s3blk/volume"
)

func runCreate(args []string) error {
	fs := newFlagSet("create", "URL --size SIZE [--block-size SIZE]", "Create a new, empty volume under URL.\n"+
		"Blocks are compressed (zstd) and encrypted (XAES-256-GCM, or XChaCha20-Poly1305 without AES instructions)\n"+
		"by default, under a random master key wrapped with a passphrase (Argon2id)")
	size := sizeFlag(fs, "size", 0, "volume size, a multiple of the block size (e.g. 100G)")
	blockSize := sizeFlag(fs, "block-size", 1<<20, "block (object) size, a power of two from 4K to 64M")
	noEncryption := fs.Bool("no-encryption", false, "store blocks unencrypted (still checksummed)")
	noCompression := fs.Bool("no-compression", false, "do not compress blocks")
	cipher := cipherFlag(fs, "blocks")
	var sf storeFlags
	var pf passphraseFlags
	sf.register(fs)
	pf.register(fs)
	pos, err := parseArgs(fs, args, 1, "URL")
	if err != nil {
		return err
	}
	if !size.set {
		return usageError{"--size is required (e.g. --size 100G)"}
	}
	if *blockSize.v > volume.MaxBlockSize {
		return usageError{fmt.Sprintf("block size %s is not a power of two between 4K and 64M", FormatSize(*blockSize.v))}
	}
	if err := volume.CheckGeometry(*size.v, int(*blockSize.v)); err != nil {
		return usageError{err.Error()}
	}
	if *noEncryption && pf.file != "" {
		return usageError{"--no-encryption and --passphrase-file contradict each other"}
	}
	if *noEncryption && cipher.name != "" {
		return usageError{"--no-encryption and --cipher contradict each other"}
	}
	ctx := context.Background()
	store, err := sf.open(ctx, pos[0], nil)
	if err != nil {
		return err
	}
	opt := volume.Options{Compress: !*noCompression, Cipher: cipher.name}
	if !*noEncryption {
		if opt.Passphrase, err = pf.read("New passphrase for "+store.Describe(), true); err != nil {
			return err
		}
	}
	h, err := volume.Create(ctx, store, *size.v, int(*blockSize.v), opt)
	if err != nil {
		return err
	}
	fmt.Printf("created %s: %s in %d blocks of %s (volume %s, compression %s, encryption %s)\n",
		store.Describe(), FormatSize(h.Size), h.Blocks(), FormatSize(int64(h.BlockSize)), h.VolumeID, h.Compression, h.Encryption)
	return nil
}

func runInfo(args []string) error {
	fs := newFlagSet("info", "URL", "Show a volume's geometry, how much of it is stored, and who holds its mount lock")
	var sf storeFlags
	sf.register(fs)
	pos, err := parseArgs(fs, args, 1, "URL")
	if err != nil {
		return err
	}
	ctx := context.Background()
	store, h, err := sf.openVolume(ctx, pos[0], nil)
	if err != nil {
		return err
	}
	var blocks, bytes int64
	err = store.List(ctx, volume.BlockPrefix, func(o blockstore.ObjectInfo) error {
		if _, ok := volume.ParseBlockKey(o.Key); ok {
			blocks++
			bytes += o.Size
		}
		return nil
	})
	if err != nil {
		return blockstore.Explain(err)
	}
	lock, err := volume.ReadLock(ctx, store)
	if err != nil {
		return blockstore.Explain(err)
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintf(w, "url:\t%s\n", store.Describe())
	fmt.Fprintf(w, "volume id:\t%s\n", h.VolumeID)
	fmt.Fprintf(w, "format:\t%s v%d (compression %s, encryption %s)\n", h.Format, h.Version, h.Compression, h.Encryption)
	if h.Key != nil {
		k := h.Key.KDF
		fmt.Fprintf(w, "key:\twrapped with %s (t=%d, m=%s, p=%d)\n", k.Algorithm, k.Time, FormatSize(int64(k.MemoryKiB)<<10), k.Threads)
	}
	fmt.Fprintf(w, "created:\t%s\n", h.Created.Local().Format(time.RFC3339))
	fmt.Fprintf(w, "size:\t%s (%d bytes)\n", FormatSize(h.Size), h.Size)
	fmt.Fprintf(w, "block size:\t%s (%d bytes)\n", FormatSize(int64(h.BlockSize)), h.BlockSize)
	fmt.Fprintf(w, "blocks:\t%d\n", h.Blocks())
	fmt.Fprintf(w, "stored blocks:\t%d (%.1f%% of the volume; %s in objects)\n",
		blocks, 100*float64(blocks)/float64(h.Blocks()), FormatSize(bytes))
	if host, _ := os.Hostname(); lock != nil && lock.Host == host && !processAlive(lock.PID) {
		fmt.Fprintf(w, "lock:\tSTALE: held by %s, which is not running (mount with --force)\n", lock)
	} else if lock != nil {
		fmt.Fprintf(w, "lock:\tmounted by %s\n", lock)
	} else {
		fmt.Fprintf(w, "lock:\tnot mounted\n")
	}
	return w.Flush()
}

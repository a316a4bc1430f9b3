package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/s3blk/s3blk/blockstore"
	"github.com/s3blk/s3blk/crypto"
	"github.com/s3blk/s3blk/volume"
)

// ParseSize parses sizes like 4096, 512K, 1M, 10G, 2T, 1GiB (powers of 1024).
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	isUnit := func(u string) bool { return u != "" && strings.ContainsAny(u[len(u)-1:], "kKmMgGtTpP") }
	if u, ok := strings.CutSuffix(t, "iB"); ok && isUnit(u) {
		t = u // 1GiB
	} else if u, ok := strings.CutSuffix(t, "i"); ok && isUnit(u) {
		t = u // 1Gi
	} else if u, ok := strings.CutSuffix(t, "B"); ok && u != "" && strings.ContainsAny(u[len(u)-1:], "kKmMgGtTpP0123456789") {
		t = u // 1GB (still powers of 1024), 4096B
	}
	mult := int64(1)
	if n := len(t); n > 0 {
		switch t[n-1] {
		case 'k', 'K':
			mult = 1 << 10
		case 'm', 'M':
			mult = 1 << 20
		case 'g', 'G':
			mult = 1 << 30
		case 't', 'T':
			mult = 1 << 40
		case 'p', 'P':
			mult = 1 << 50
		}
		if mult != 1 {
			t = t[:n-1]
		}
	}
	v, err := strconv.ParseInt(t, 10, 64)
	if err != nil || v < 0 || (v > 0 && v > (1<<63-1)/mult) {
		return 0, fmt.Errorf("%q is not a size (examples: 4096, 512K, 1M, 10G, 2T)", s)
	}
	return v * mult, nil
}

// FormatSize renders n bytes for humans: in the largest binary unit not
// above n, exact when n is a whole multiple, else with one decimal.
func FormatSize(n int64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB", "PiB"}
	i, v := 0, float64(n)
	for v >= 1024 && i < len(units)-1 {
		v /= 1024
		i++
	}
	if v == float64(int64(v)) {
		return fmt.Sprintf("%d %s", int64(v), units[i])
	}
	return fmt.Sprintf("%.1f %s", v, units[i])
}

type sizeValue struct {
	v   *int64
	set bool
}

// String renders the value the way it is typed (256M), for --help.
func (s *sizeValue) String() string {
	if s.v == nil || *s.v == 0 {
		return ""
	}
	n := *s.v
	for _, u := range []struct {
		suffix string
		size   int64
	}{{"T", 1 << 40}, {"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}} {
		if n%u.size == 0 {
			return strconv.FormatInt(n/u.size, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10)
}

func (s *sizeValue) Set(x string) error {
	n, err := ParseSize(x)
	if err != nil {
		return err
	}
	*s.v, s.set = n, true
	return nil
}

func sizeFlag(fs *flag.FlagSet, name string, def int64, usage string) *sizeValue {
	v := &sizeValue{v: new(int64)}
	*v.v = def
	fs.Var(v, name, usage)
	return v
}

// cipherValue is --cipher: a data cipher's name; "" until set (the default).
type cipherValue struct{ name string }

func (c *cipherValue) String() string { return c.name }

func (c *cipherValue) Set(x string) error {
	if !crypto.KnownCipher(x) {
		return fmt.Errorf("%q is not a cipher (use %s)", x, strings.Join(crypto.Ciphers(), " or "))
	}
	c.name = x
	return nil
}

// cipherFlag registers --cipher, for create and put.
func cipherFlag(fs *flag.FlagSet, what string) *cipherValue {
	c := new(cipherValue)
	fs.Var(c, "cipher", fmt.Sprintf("cipher for the %s: xaes256gcm (XAES-256-GCM, the default where the CPU has AES instructions)\n"+
		"or xchacha20poly1305 (XChaCha20-Poly1305, the default without them); default on this machine: %s", what, crypto.DefaultCipher()))
	return c
}

// parseArgs parses flags wherever they appear among the positional
// arguments (s3blk create URL --size 1G) and returns the positionals.
func parseArgs(fs *flag.FlagSet, args []string, want int, names string) ([]string, error) {
	fs.SetOutput(io.Discard) // errors become one line; --help prints usage below
	var pos []string
	for {
		// After "--" everything is positional.
		if len(args) > 0 && args[0] == "--" {
			pos = append(pos, args[1:]...)
			break
		}
		if err := fs.Parse(args); err != nil {
			if err == flag.ErrHelp {
				fs.SetOutput(os.Stderr)
				fs.Usage()
				return nil, err
			}
			return nil, usageError{err.Error() + " (see --help)"}
		}
		if fs.NArg() == 0 {
			break
		}
		rest := fs.Args()
		if len(args) > len(rest) && args[len(args)-len(rest)-1] == "--" {
			pos = append(pos, rest...) // Parse consumed a "--"
			break
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
	if len(pos) != want {
		return nil, usageError{fmt.Sprintf("expected %s, got %d argument(s) (see --help)", names, len(pos))}
	}
	return pos, nil
}

func newFlagSet(name, args, summary string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: s3blk %s %s\n\n%s.\n\nFlags:\n", name, args, summary)
		fs.PrintDefaults()
	}
	return fs
}

// storeFlags are the flags every command that opens a store takes.
type storeFlags struct {
	endpoint string
	region   string
	// requestTimeout: a request that makes no progress for this long is
	// abandoned and retried.
	requestTimeout time.Duration
	pathStyle      bool
}

func (s *storeFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&s.endpoint, "endpoint", "", "S3 endpoint URL (default: AWS_ENDPOINT_URL_S3, else AWS)")
	fs.StringVar(&s.region, "region", "", "AWS region (default: AWS_REGION or profile, else us-east-1)")
	fs.BoolVar(&s.pathStyle, "path-style", false, "use path-style S3 addressing (automatic for IP and localhost endpoints)")
	fs.DurationVar(&s.requestTimeout, "request-timeout", 30*time.Second, "retry an S3 request that has sent or received nothing for this long")
}

func (s *storeFlags) open(ctx context.Context, rawURL string, onRetry func(error)) (blockstore.Store, error) {
	loc, err := blockstore.ParseURL(rawURL)
	if err != nil {
		return nil, usageError{err.Error()}
	}
	if loc.Scheme == "s3" && loc.Prefix == "" {
		return nil, usageError{fmt.Sprintf("%q names no prefix: use s3://bucket/NAME", rawURL)}
	}
	if s.requestTimeout <= 0 {
		return nil, usageError{fmt.Sprintf("--request-timeout %s: must be positive", s.requestTimeout)}
	}
	return blockstore.Open(ctx, loc, blockstore.S3Options{
		Endpoint: s.endpoint, Region: s.region, PathStyle: s.pathStyle, OnRetry: onRetry, IdleTimeout: s.requestTimeout,
	})
}

// openCounting is open with a count of the requests retried, for a
// command's summary.
func (s *storeFlags) openCounting(ctx context.Context, rawURL string) (blockstore.Store, *atomic.Int64, error) {
	retried := new(atomic.Int64)
	store, err := s.open(ctx, rawURL, func(error) { retried.Add(1) })
	return store, retried, err
}

// openVolume opens the store at rawURL and reads its volume header.
func (s *storeFlags) openVolume(ctx context.Context, rawURL string, onRetry func(error)) (blockstore.Store, *volume.Header, error) {
	store, err := s.open(ctx, rawURL, onRetry)
	if err != nil {
		return nil, nil, err
	}
	h, err := volume.ReadHeader(ctx, store)
	return store, h, err
}

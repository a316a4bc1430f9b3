package main

// Stream mode: put, get, ls and rm, and verifyStream / isStream for the
// `verify` command. The work is done by package stream; this file turns
// flags into a stream.Config and errors into one line each.

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"golang.org/x/sys/unix"

	"github.com/s3blk/s3blk/blockstore"
	"github.com/s3blk/s3blk/crypto"
	"github.com/s3blk/s3blk/stream"
)

// retriesValue is --retries: a count, or "forever".
type retriesValue struct{ n int }

func (r *retriesValue) String() string {
	if r.n == stream.RetryForever {
		return "forever"
	}
	return strconv.Itoa(r.n)
}

func (r *retriesValue) Set(s string) error {
	if s == "forever" {
		r.n = stream.RetryForever
		return nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return fmt.Errorf("%q is not a count of retries or \"forever\"", s)
	}
	r.n = n
	return nil
}

// streamFlags are the flags put and get share.
type streamFlags struct {
	sf          storeFlags
	pf          passphraseFlags
	concurrency int
	retries     retriesValue
	limitRate   *sizeValue
	quiet       bool
}

func (f *streamFlags) register(fs *flag.FlagSet, verb string) {
	f.sf.register(fs)
	f.pf.register(fs)
	fs.IntVar(&f.concurrency, "concurrency", stream.DefaultConcurrency, "parallel chunk "+verb+"s")
	f.retries.n = stream.DefaultRetries
	fs.Var(&f.retries, "retries", "retries per chunk, with exponential backoff, before failing (a count, or forever)")
	f.limitRate = sizeFlag(fs, "limit-rate", 0, "cap the bandwidth to SIZE bytes per second (e.g. 20M; default no limit)")
	fs.BoolVar(&f.quiet, "quiet", false, "no progress line or summary")
}

func (f *streamFlags) config() (stream.Config, error) {
	if f.concurrency < 1 || f.concurrency > stream.MaxConcurrency {
		return stream.Config{}, usageError{fmt.Sprintf("--concurrency %d is out of range 1 to %d", f.concurrency, stream.MaxConcurrency)}
	}
	cfg := stream.Config{
		Concurrency: f.concurrency,
		Retries:     f.retries.n,
		NoRetries:   f.retries.n == 0,
		Limiter:     stream.NewLimiter(*f.limitRate.v),
		Logger:      slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
	cfg.Host, _ = os.Hostname()
	return cfg, nil
}

// setMemoryLimit makes the garbage collector keep the heap near what the
// chunk buffers need (unless the user set GOMEMLIMIT or GOGC). The heap is
// almost all long-lived buffers, which cost the collector next to nothing
// to mark, while every S3 request leaves some 80 KiB of garbage: with
// GOGC=100 that garbage could grow to the size of the buffers. A 10% target
// keeps it to a few MiB; the limit is a backstop.
func setMemoryLimit(buffers int64) {
	if os.Getenv("GOMEMLIMIT") == "" && buffers > 0 {
		debug.SetMemoryLimit(buffers + 48<<20)
	}
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(10)
	}
}

// growPipe enlarges f's pipe buffer, if f is a pipe, from 64 KiB to 1 MiB:
// 16 times fewer reads or writes, and wake-ups of the process at the other
// end. Failure (not a pipe, a lower pipe-max-size) changes nothing.
func growPipe(f *os.File) {
	if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeNamedPipe != 0 {
		unix.FcntlInt(f.Fd(), unix.F_SETPIPE_SZ, 1<<20)
	}
}

// signalContext is cancelled by SIGINT or SIGTERM.
func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
}

// interrupted turns an error after a signal into a plain statement.
func interrupted(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return exitError{err: fmt.Errorf("interrupted by a signal: %w", err), code: 130}
	}
	return err
}

func runPut(args []string) error {
	startPprof()
	fs := newFlagSet("put", "URL [-- COMMAND ARGS...]", "Store standard input, or the output of COMMAND, as the stream URL.\n"+
		"Chunks go up in parallel from a fixed pool of buffers; the manifest is written last,\n"+
		"so a failed or interrupted put (or a failing COMMAND) leaves an INCOMPLETE stream, never a complete-looking one.\n"+
		"Encrypted (a passphrase is asked, or read from --passphrase-file) and zstd-compressed by default")
	var f streamFlags
	f.register(fs, "upload")
	chunkSize := sizeFlag(fs, "chunk-size", stream.DefaultChunkSize, "chunk (object) size, 4K to 64M; memory is about chunk size x (concurrency + 1)")
	noEncryption := fs.Bool("no-encryption", false, "store the chunks unencrypted")
	noCompression := fs.Bool("no-compression", false, "store the chunks uncompressed (with --no-encryption: concatenated chunks = the stream)")
	cipher := cipherFlag(fs, "chunks")
	force := fs.Bool("force", false, "replace an existing complete stream (its manifest is deleted first)")
	args, command, err := splitProducer(args)
	if err != nil {
		return err
	}
	pos, err := parseArgs(fs, args, 1, "URL")
	if err != nil {
		return err
	}
	if *chunkSize.v < stream.MinChunkSize || *chunkSize.v > stream.MaxChunkSize {
		return usageError{fmt.Sprintf("--chunk-size %s is out of range 4K to 64M", chunkSize)}
	}
	if *noEncryption && cipher.name != "" {
		return usageError{"--no-encryption and --cipher contradict each other"}
	}
	cfg, err := f.config()
	if err != nil {
		return err
	}
	cfg.ChunkSize = int(*chunkSize.v)
	cfg.NoEncryption, cfg.NoCompression, cfg.Force, cfg.Cipher = *noEncryption, *noCompression, *force, cipher.name
	if !cfg.NoEncryption {
		warnCipher(cmp.Or(cfg.Cipher, crypto.DefaultCipher()), f.quiet)
	}
	cfg.Passphrase = func() ([]byte, error) { return f.pf.read("Passphrase for the new stream", true) }

	ctx, stop := signalContext()
	defer stop()
	store, retried, err := f.sf.openCounting(ctx, pos[0])
	if err != nil {
		return err
	}
	growPipe(os.Stdin)
	var input io.Reader = os.Stdin
	var total int64
	if fi, err := os.Stdin.Stat(); err == nil && fi.Mode().IsRegular() {
		total = fi.Size()
	}
	var prod *producer
	if len(command) > 0 {
		if prod, err = newProducer(ctx, command); err != nil {
			return err
		}
		input, total = prod, 0
	}
	var prog *progress
	if !f.quiet {
		prog = newProgress(total)
		cfg.Progress = prog.Add
	}
	setMemoryLimit(stream.PutMemory(cfg))
	start := time.Now()
	m, err := stream.Put(ctx, store, input, cfg)
	prog.Done()
	if prod != nil {
		prod.stop() // a no-op after success: the producer has exited
	}
	if err != nil {
		return interrupted(ctx, err)
	}
	if !f.quiet {
		codecs := []string{m.Compression, "unencrypted"}
		if m.Encrypted() {
			codecs[1] = "encrypted with " + m.Encryption
		}
		fmt.Fprintf(os.Stderr, "stored %s: %s (%d bytes) in %d chunks (%s), %s%s\n",
			store.Describe(), FormatSize(m.Size), m.Size, len(m.Chunks), strings.Join(codecs, ", "), rate(m.Size, time.Since(start)),
			retriedNote(retried.Load()))
	}
	return nil
}

// warnCipher prints crypto.CipherWarning for cipher, if any and not quiet.
func warnCipher(cipher string, quiet bool) {
	if w := crypto.CipherWarning(cipher); w != "" && !quiet {
		fmt.Fprintln(os.Stderr, "s3blk: warning: "+w)
	}
}

// retriedNote is ", N requests retried" for a summary line, or "" when
// no request was. Retries by the S3 SDK are silent; stream-level retries
// (after the SDK gave up) are logged as they happen.
func retriedNote(n int64) string {
	switch n {
	case 0:
		return ""
	case 1:
		return ", 1 request retried"
	}
	return fmt.Sprintf(", %d requests retried", n)
}

func rate(n int64, d time.Duration) string {
	return fmt.Sprintf("%.1f s, %s/s", d.Seconds(), FormatSize(int64(float64(n)/max(d.Seconds(), 1e-3))))
}

// splitProducer splits "URL flags -- COMMAND ARGS" at the first "--".
func splitProducer(args []string) (own, producer []string, err error) {
	for i, a := range args {
		if a == "--" {
			if i == len(args)-1 {
				return nil, nil, usageError{"nothing after --: give the producer COMMAND (see --help)"}
			}
			return args[:i], args[i+1:], nil
		}
	}
	return args, nil, nil
}

// producer runs `put URL -- COMMAND` and is its input: its end of data is
// an error unless the command exited with status 0. The command starts at
// the first Read, once Put has checked the target and read the passphrase.
type producer struct {
	cmd *exec.Cmd

	mu       sync.Mutex
	out      io.ReadCloser // nil until started
	startErr error

	once sync.Once
	err  error
}

func newProducer(ctx context.Context, argv []string) (*producer, error) {
	if _, err := exec.LookPath(argv[0]); err != nil {
		return nil, usageError{fmt.Sprintf("cannot run the producer: %v", err)}
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Stdin, cmd.Stderr = os.Stdin, os.Stderr
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 5 * time.Second
	return &producer{cmd: cmd}, nil
}

// pipe starts the command on first use and returns its output.
func (p *producer) pipe() (io.ReadCloser, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.out == nil && p.startErr == nil {
		out, err := p.cmd.StdoutPipe()
		if err == nil {
			err = p.cmd.Start()
		}
		if err != nil {
			p.startErr = fmt.Errorf("cannot run the producer %q: %v", p.cmd.Args[0], err)
		} else {
			p.out = out
		}
	}
	return p.out, p.startErr
}

func (p *producer) Read(b []byte) (int, error) {
	out, err := p.pipe()
	if err != nil {
		return 0, err
	}
	n, err := out.Read(b)
	if err == io.EOF {
		if werr := p.wait(); werr != nil {
			return n, werr
		}
	}
	return n, err
}

// wait reaps the producer once and says how it ended.
func (p *producer) wait() error {
	p.once.Do(func() {
		if err := p.cmd.Wait(); err != nil {
			p.err = fmt.Errorf("the producer %q failed (%v): its output is not a complete stream", strings.Join(p.cmd.Args, " "), err)
		}
	})
	return p.err
}

// stop ends the producer if it still runs (put failed) and reaps it.
func (p *producer) stop() {
	p.mu.Lock()
	started := p.out != nil
	p.mu.Unlock()
	if started {
		p.cmd.Process.Signal(syscall.SIGTERM) // ErrProcessDone if it has exited
		p.wait()
	}
}

func runGet(args []string) error {
	startPprof()
	fs := newFlagSet("get", "URL", "Write the stream URL to standard output, in order, every chunk verified before it is written\n"+
		"and the whole-stream digest at the end. Exits non-zero on any mismatch, missing chunk or write error,\n"+
		"saying that the output already written is bad")
	var f streamFlags
	f.register(fs, "download")
	pos, err := parseArgs(fs, args, 1, "URL")
	if err != nil {
		return err
	}
	cfg, err := f.config()
	if err != nil {
		return err
	}
	cfg.Passphrase = func() ([]byte, error) { return f.pf.read("Passphrase", false) }
	// A closed pipe must be an error we report, not a silent death by SIGPIPE.
	signal.Ignore(syscall.SIGPIPE)
	ctx, stop := signalContext()
	defer stop()
	store, retried, err := f.sf.openCounting(ctx, pos[0])
	if err != nil {
		return err
	}
	r, prog, err := openStream(ctx, store, cfg, f.quiet)
	if err != nil {
		return err
	}
	growPipe(os.Stdout)
	_, err = r.WriteTo(ctx, os.Stdout)
	prog.Done()
	if err == nil && !f.quiet && retried.Load() > 0 {
		fmt.Fprintf(os.Stderr, "got %s: all verified%s\n", store.Describe(), retriedNote(retried.Load()))
	}
	return interrupted(ctx, err)
}

// openStream opens the stream in store for get or verify: manifest
// checked, key unwrapped, memory limit set, progress line started.
func openStream(ctx context.Context, store blockstore.Store, cfg stream.Config, quiet bool) (*stream.Reader, *progress, error) {
	r, err := stream.Open(ctx, store, cfg)
	if err != nil {
		return nil, nil, err
	}
	m := r.Manifest()
	warnCipher(m.Encryption, quiet)
	setMemoryLimit(stream.GetMemory(cfg, m.ChunkSize))
	var prog *progress
	if !quiet {
		prog = newProgress(m.Size)
		r.SetProgress(prog.Add)
	}
	return r, prog, nil
}

// verifyStream checks every chunk and the digest of the stream in store,
// writing no data; bad chunks are listed on stderr. For `s3blk verify`.
func verifyStream(ctx context.Context, store blockstore.Store, pf *passphraseFlags, quiet bool) error {
	cfg := stream.Config{Passphrase: func() ([]byte, error) { return pf.read("Passphrase", false) }}
	r, prog, err := openStream(ctx, store, cfg, quiet)
	if err != nil {
		return err
	}
	m := r.Manifest()
	start := time.Now()
	err = r.Verify(ctx, func(i int, err error) { prog.Log("bad chunk %d: %v", i, err) })
	prog.Done()
	if err != nil {
		return err
	}
	if !quiet {
		fmt.Printf("%s: OK: %s (%d bytes) in %d chunks, every chunk and the stream digest verified (%s)\n",
			store.Describe(), FormatSize(m.Size), m.Size, len(m.Chunks), rate(m.Size, time.Since(start)))
	}
	return nil
}

// isStream reports whether store holds a stream (complete or INCOMPLETE)
// rather than a volume. For `s3blk verify`.
func isStream(ctx context.Context, store blockstore.Store) (bool, error) {
	return stream.IsStream(ctx, store)
}

func runLs(args []string) error {
	fs := newFlagSet("ls", "URL", "List the streams under URL: name, size, chunks, creation time, and complete or INCOMPLETE")
	var sf storeFlags
	sf.register(fs)
	pos, err := parseArgs(fs, args, 1, "URL")
	if err != nil {
		return err
	}
	loc, err := blockstore.ParseURL(pos[0])
	if err != nil {
		return usageError{err.Error()}
	}
	ctx, stop := signalContext()
	defer stop()
	store, err := blockstore.Open(ctx, loc, blockstore.S3Options{Endpoint: sf.endpoint, Region: sf.region, PathStyle: sf.pathStyle})
	if err != nil {
		return err
	}
	infos, err := stream.List(ctx, store)
	if err != nil {
		return err
	}
	if len(infos) == 0 {
		fmt.Fprintf(os.Stderr, "no streams under %s\n", store.Describe())
		return nil
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "NAME\tSIZE\tCHUNKS\tCREATED\tSTATUS")
	for _, in := range infos {
		name := in.Name
		if name == "" {
			name = "."
		}
		switch m := in.Manifest; {
		case m != nil:
			status := "complete"
			if n := len(m.Chunks); in.Chunks < n {
				status = fmt.Sprintf("DAMAGED: %d of %d chunks missing", n-in.Chunks, n)
			}
			fmt.Fprintf(w, "%s\t%s\t%d\t%s\t%s\n", name, FormatSize(m.Size), len(m.Chunks), m.Created.Local().Format(time.RFC3339), status)
		case in.Err != nil:
			fmt.Fprintf(w, "%s\t-\t%d\t-\tBAD MANIFEST: %s\n", name, in.Chunks, oneLine(in.Err))
		default:
			fmt.Fprintf(w, "%s\t-\t%d\t-\tINCOMPLETE (%s stored, no manifest)\n", name, in.Chunks, FormatSize(in.StoredBytes))
		}
	}
	return w.Flush()
}

func runRm(args []string) error {
	fs := newFlagSet("rm", "URL", "Remove the stream URL: its manifest first, then every chunk, leftovers of INCOMPLETE puts included.\n"+
		"Refuses a prefix that holds a volume")
	var sf storeFlags
	sf.register(fs)
	quiet := fs.Bool("quiet", false, "print nothing on success")
	pos, err := parseArgs(fs, args, 1, "URL")
	if err != nil {
		return err
	}
	ctx, stop := signalContext()
	defer stop()
	store, err := sf.open(ctx, pos[0], nil)
	if err != nil {
		return err
	}
	rm, err := stream.Remove(ctx, store, stream.Config{})
	if err != nil {
		if errors.Is(err, stream.ErrNoStream) {
			return err
		}
		return interrupted(ctx, err)
	}
	if !*quiet {
		what := "no manifest (it was INCOMPLETE)"
		if rm.Manifest {
			what = "the manifest"
		}
		fmt.Printf("removed %s: %s and %d chunks\n", store.Describe(), what, rm.Chunks)
	}
	return nil
}

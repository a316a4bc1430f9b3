package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	limit "golang.org/x/time/rate"

	"github.com/s3blk/s3blk/blockstore"
	"github.com/s3blk/s3blk/cache"
	"github.com/s3blk/s3blk/crypto"
	"github.com/s3blk/s3blk/fusefs"
	"github.com/s3blk/s3blk/stats"
	"github.com/s3blk/s3blk/volume"
)

// readyFDEnv names the file descriptor on which a background daemon reports
// "OK" or "ERR message" to the `s3blk mount` that started it.
const readyFDEnv = "S3BLK_READY_FD"

// passphraseFDEnv names the file descriptor from which a background daemon
// reads the passphrase its parent asked for on the terminal.
const passphraseFDEnv = "S3BLK_PASSPHRASE_FD"

type mountFlags struct {
	sf            storeFlags
	pf            passphraseFlags
	foreground    bool
	readOnly      bool
	force         bool
	directIO      bool
	cacheSize     *sizeValue
	maxDirty      *sizeValue
	maxWrite      *sizeValue
	maxBackground int
	uploaders     int
	readAhead     int
	writeDelay    time.Duration
	flushTimeout  time.Duration
	logFile       string
	logLevel      string
	size          *sizeValue
	blockSize     *sizeValue
}

func runMount(args []string) error {
	fs := newFlagSet("mount", "URL MOUNTPOINT", "Mount a volume: MOUNTPOINT/file is the disk, MOUNTPOINT/stats its counters.\n"+
		"Returns once mounted and serves in the background; --foreground stays attached (for systemd)")
	var f mountFlags
	f.sf.register(fs)
	f.pf.register(fs)
	fs.BoolVar(&f.foreground, "foreground", false, "serve in the foreground, logging to stderr")
	fs.BoolVar(&f.readOnly, "read-only", false, "mount read-only (takes no lock)")
	fs.BoolVar(&f.force, "force", false, "break a stale mount lock (only if the holder is dead!)")
	fs.BoolVar(&f.directIO, "direct-io", true, "bypass the kernel page cache for the file")
	f.cacheSize = sizeFlag(fs, "cache-size", 256<<20, "memory for blocks: cached, dirty and being uploaded")
	f.maxDirty = sizeFlag(fs, "max-dirty", 0, "dirty bytes before writers wait (default: 3/4 of the cache)")
	f.maxWrite = sizeFlag(fs, "max-write", 1<<20, "largest FUSE read/write request")
	fs.IntVar(&f.maxBackground, "max-background", 64, "FUSE background request limit")
	fs.IntVar(&f.uploaders, "uploaders", 16, "parallel uploads")
	fs.IntVar(&f.readAhead, "read-ahead", 16, "blocks fetched ahead of a sequential reader (0 = default, -1 = off)")
	fs.DurationVar(&f.writeDelay, "write-delay", 200*time.Millisecond, "how long a partly written block waits for more writes before upload")
	fs.DurationVar(&f.flushTimeout, "flush-timeout", 5*time.Minute, "how long S3 may fail before fsync (EIO), unmount and reads of uncached blocks fail")
	fs.StringVar(&f.logFile, "log-file", "", "daemon log file (default /var/log/s3blk/MOUNTPOINT.log)")
	fs.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
	f.size = sizeFlag(fs, "size", 0, "expected volume size (refused if the volume differs)")
	f.blockSize = sizeFlag(fs, "block-size", 0, "expected block size (refused if the volume differs)")
	pos, err := parseArgs(fs, args, 2, "URL MOUNTPOINT")
	if err != nil {
		return err
	}
	url := pos[0]
	mnt, err := filepath.Abs(pos[1])
	if err != nil {
		return err
	}
	if err := checkMountpoint(mnt, f.force); err != nil {
		return err
	}
	if fdStr := os.Getenv(readyFDEnv); fdStr != "" {
		fd, _ := strconv.Atoi(fdStr)
		ready := os.NewFile(uintptr(fd), "ready")
		os.Unsetenv(readyFDEnv)
		err := serve(url, mnt, &f, ready)
		if err != nil {
			fmt.Fprintf(ready, "ERR %s\n", oneLine(err))
		}
		return err
	}
	if f.foreground {
		return serve(url, mnt, &f, nil)
	}
	pass, err := askPassphraseForDaemon(url, &f)
	if err != nil {
		return err
	}
	return startDaemon(args, mnt, f.logFile, pass)
}

// askPassphraseForDaemon prompts on the terminal, before the daemon detaches
// from it, when the volume is encrypted and no passphrase file is given.
// It returns nil when the daemon can find the passphrase itself (or needs
// none).
func askPassphraseForDaemon(url string, f *mountFlags) ([]byte, error) {
	if f.pf.configured() || !haveTerminal() {
		return nil, nil
	}
	store, h, err := f.sf.openVolume(context.Background(), url, nil)
	if err != nil || !h.Encrypted() {
		return nil, err
	}
	return f.pf.read("Passphrase for "+store.Describe(), false)
}

// volumePassphrase returns the passphrase for the volume with header h: from
// the parent's pipe, a file, or the terminal; nil when it is not encrypted.
// A passphrase file named on the command line for an unencrypted volume is
// refused: whoever wrote that command expects encryption, and the header
// may have been replaced by someone with access to the bucket.
func volumePassphrase(h *volume.Header, pf *passphraseFlags, what string) ([]byte, error) {
	if !h.Encrypted() {
		if pf.file != "" {
			return nil, usageError{what + " is not encrypted, but --passphrase-file was given: refusing (if that is expected, drop the flag)"}
		}
		if os.Getenv(passphraseFileEnv) != "" {
			slog.Warn("the volume is not encrypted; ignoring " + passphraseFileEnv)
		}
		return nil, nil
	}
	if fdStr := os.Getenv(passphraseFDEnv); fdStr != "" {
		os.Unsetenv(passphraseFDEnv)
		fd, _ := strconv.Atoi(fdStr)
		r := os.NewFile(uintptr(fd), "passphrase")
		defer r.Close()
		return io.ReadAll(io.LimitReader(r, maxPassphrase))
	}
	return pf.read("Passphrase for "+what, false)
}

// checkMountpoint refuses a mountpoint that is missing, not a directory,
// already mounted or not empty. A dead s3blk mount (its daemon was killed)
// is reported as such; with force it is detached first.
func checkMountpoint(mnt string, force bool) error {
	_, statErr := os.Stat(mnt)
	deadConn := errors.Is(statErr, syscall.ENOTCONN) || errors.Is(statErr, syscall.ECONNABORTED)
	m, _ := findMount(mnt)
	if m != nil && m.fstype == "fuse.s3blk" && (deadConn || !daemonAlive(mnt)) {
		if !force {
			return fmt.Errorf("%s holds a dead s3blk mount (its daemon was killed): mount with --force to replace it", mnt)
		}
		if err := unix.Unmount(mnt, unix.MNT_DETACH); err != nil {
			return fmt.Errorf("detaching the dead mount at %s: %v", mnt, err)
		}
		m, _ = findMount(mnt)
	}
	st, err := os.Stat(mnt)
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("mountpoint %s does not exist", mnt)
	}
	if err != nil {
		return fmt.Errorf("mountpoint %s: %v", mnt, err)
	}
	if !st.IsDir() {
		return fmt.Errorf("mountpoint %s is not a directory", mnt)
	}
	if m != nil {
		return fmt.Errorf("mountpoint %s is busy: %s (%s) is mounted there", mnt, m.source, m.fstype)
	}
	d, err := os.Open(mnt)
	if err != nil {
		return fmt.Errorf("mountpoint %s: %v", mnt, err)
	}
	defer d.Close()
	if names, _ := d.Readdirnames(1); len(names) > 0 {
		return fmt.Errorf("mountpoint %s is busy: the directory is not empty", mnt)
	}
	return nil
}

// daemonAlive reports whether the daemon that mounted mnt is running.
func daemonAlive(mnt string) bool {
	pid, err := readPID(pidFile(mnt))
	return err == nil && processAlive(pid)
}

// startDaemon re-executes s3blk in the background and waits until it has
// mounted the volume or failed.
func startDaemon(args []string, mnt, logFile string, passphrase []byte) error {
	if logFile == "" {
		logFile = defaultLogFile(mnt)
	}
	if err := os.MkdirAll(filepath.Dir(logFile), 0o755); err != nil {
		return err
	}
	logf, err := os.OpenFile(logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("opening the log file: %v", err)
	}
	defer logf.Close()
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	cmd := exec.Command(exe, append([]string{"mount"}, args...)...)
	cmd.Env = append(os.Environ(), readyFDEnv+"=3")
	cmd.ExtraFiles = []*os.File{w}
	if passphrase != nil {
		pr, pw, err := os.Pipe()
		if err != nil {
			return err
		}
		defer pr.Close()
		cmd.Env = append(cmd.Env, passphraseFDEnv+"=4")
		cmd.ExtraFiles = append(cmd.ExtraFiles, pr)
		go func() { // a pipe holds 64 KiB; the passphrase is at most 4 KiB
			pw.Write(passphrase)
			pw.Close()
		}()
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	w.Close()
	line, _ := bufio.NewReader(r).ReadString('\n')
	r.Close()
	line = strings.TrimSpace(line)
	if line == "OK" {
		fmt.Fprintf(os.Stderr, "s3blk: mounted at %s (daemon pid %d, log %s)\n", mnt, cmd.Process.Pid, logFile)
		cmd.Process.Release()
		return nil
	}
	cmd.Wait()
	if msg, ok := strings.CutPrefix(line, "ERR "); ok {
		return errors.New(msg)
	}
	return fmt.Errorf("the daemon exited during startup; see %s", logFile)
}

func newLogger(w io.Writer, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, usageError{fmt.Sprintf("bad --log-level %q", level)}
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l})), nil
}

// serve opens the volume, takes the lock, mounts, and serves until
// unmounted. ready, if set, gets "OK" once the file is usable.
func serve(url, mnt string, f *mountFlags, ready *os.File) (err error) {
	log, err := newLogger(os.Stderr, f.logLevel)
	if err != nil {
		return err
	}
	slog.SetDefault(log)
	startPprof()
	ctx := context.Background()
	st := new(stats.Counters)
	// Every retry counts in stats; the log gets at most one line a second.
	retryLog := limit.Sometimes{Interval: time.Second}
	store, header, err := f.sf.openVolume(ctx, url, func(err error) {
		n := st.Retries.Add(1)
		retryLog.Do(func() {
			log.Warn("S3 request failed; retrying", "retries_so_far", n, "err", blockstore.Explain(err))
		})
	})
	if err != nil {
		return err
	}
	pass, err := volumePassphrase(header, &f.pf, store.Describe())
	if err != nil {
		return err
	}
	vol, err := volume.Open(ctx, store, pass, st)
	if err != nil {
		return err
	}
	h := vol.Header
	if w := crypto.CipherWarning(h.Encryption); w != "" {
		log.Warn(w)
	}
	if f.size.set && *f.size.v != h.Size {
		return usageError{fmt.Sprintf("--size %s contradicts the volume's size %s", FormatSize(*f.size.v), FormatSize(h.Size))}
	}
	if f.blockSize.set && *f.blockSize.v != int64(h.BlockSize) {
		return usageError{fmt.Sprintf("--block-size %s contradicts the volume's block size %s", FormatSize(*f.blockSize.v), FormatSize(int64(h.BlockSize)))}
	}
	me := volume.NewLockInfo(mnt)
	if !f.readOnly {
		if err := volume.Lock(ctx, store, me, f.force); err != nil {
			return explainStaleLock(ctx, store, me, err)
		}
		defer func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if uerr := volume.Unlock(ctx, store, me); uerr != nil {
				log.Warn("releasing the mount lock failed", "err", uerr)
			}
		}()
	}
	// --cache-size is all the memory for blocks, so that the daemon's size
	// is predictable: the cache proper gets what is left after each
	// uploader's two buffers (a snapshot and the encoded object), unless
	// that would halve it (tiny caches, for tests).
	cacheBytes := *f.cacheSize.v
	if uploadBuffers := int64(2 * max(f.uploaders, 1) * h.BlockSize); cacheBytes-uploadBuffers >= cacheBytes/2 {
		cacheBytes -= uploadBuffers
	}
	c := cache.New(vol, h.Blocks(), cache.Config{
		Size: cacheBytes, MaxDirty: *f.maxDirty.v, Uploaders: f.uploaders,
		ReadAhead: f.readAhead, WriteDelay: f.writeDelay, FlushTimeout: f.flushTimeout,
		ReadOnly: f.readOnly, Logger: log,
	}, st)
	cfg := c.Config()
	// Keep the Go heap near the configured cache: block buffers, one
	// snapshot and one encode buffer per uploader, and FUSE request buffers.
	debug.SetMemoryLimit(cfg.Size + int64(2*cfg.Uploaders*h.BlockSize) + 48<<20)
	c.Start()
	server, err := fusefs.Mount(mnt, c, st, fusefs.Options{
		FsName: store.Describe(), MaxWrite: int(*f.maxWrite.v), MaxBackground: f.maxBackground,
		DirectIO: f.directIO, ReadOnly: f.readOnly, Logger: log,
	})
	if err != nil {
		c.Close()
		return fmt.Errorf("mounting FUSE at %s: %v", mnt, err)
	}
	os.Remove(statusFile(mnt))
	if err := writeRuntimeFile(pidFile(mnt), strconv.Itoa(os.Getpid())+"\n"); err != nil {
		log.Warn("writing the PID file failed; `s3blk umount` will not wait for this daemon", "err", err)
	}
	defer os.Remove(pidFile(mnt))
	log.Info("mounted", "url", store.Describe(), "mountpoint", mnt, "size", h.Size, "block_size", h.BlockSize,
		"cache", cfg.Size, "max_dirty", cfg.MaxDirty, "uploaders", cfg.Uploaders, "read_only", f.readOnly)
	if ready != nil {
		fmt.Fprintln(ready, "OK")
		ready.Close()
	}
	sdNotify("READY=1")

	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		for sig := range sigs {
			log.Info("signal: storing every dirty block, then unmounting", "signal", sig.String())
			sdNotify("STOPPING=1")
			if err := c.Flush(context.Background()); err != nil {
				log.Error("flush before unmount failed; still retrying", "err", err)
			}
			if err := server.Unmount(); err != nil {
				log.Error("cannot unmount (is a loop device or filesystem still using it?); still serving", "err", err)
			}
		}
	}()
	server.Wait()
	signal.Stop(sigs)
	log.Info("unmounted; storing remaining dirty blocks", "dirty_bytes", st.DirtyBytes.Load())
	closeErr := c.Close()
	status := "ok\n"
	if closeErr != nil {
		log.Error("data lost: not every dirty block could be stored", "err", closeErr)
		status = "error: " + oneLine(closeErr) + "\n"
	} else {
		log.Info("all blocks stored; exiting", "uploads", st.Uploads.Load(), "deletes", st.Deletes.Load())
	}
	if err := writeRuntimeFile(statusFile(mnt), status); err != nil {
		log.Warn("writing the status file failed", "err", err)
	}
	return closeErr
}

// explainStaleLock adds to a lock refusal whether the holder is provably
// dead: the same host, and its PID is not an s3blk process.
func explainStaleLock(ctx context.Context, store blockstore.Store, me volume.LockInfo, err error) error {
	if !errors.Is(err, volume.ErrLocked) {
		return err
	}
	holder, rerr := volume.ReadLock(ctx, store)
	if rerr != nil || holder == nil || holder.Host != me.Host || processAlive(holder.PID) {
		return err
	}
	return fmt.Errorf("%w; that process is not running on this host, so the lock is stale and --force is safe", err)
}

// Package fusefs serves a volume's cache as a FUSE filesystem holding two
// files:
//
//	file   the volume itself (mode 0600), for mkfs and loop mounts
//	stats  plain-text counters, regenerated on every open
//
// Invariants:
//   - fsync on file is a durability barrier: it returns only when every
//     block dirty at the time of the call is in the store (cache.Flush), and
//     EIO if that cannot be achieved. The loop device turns ext4's journal
//     flushes into exactly this call, which is what makes ext4 crash-safe.
//   - fallocate(PUNCH_HOLE) (TRIM through the loop device) deletes whole
//     blocks and zeroes partial ones.
//   - Reads never return bytes that failed verification: the cache fails
//     them and this layer answers EIO.
//   - file is opened with FOPEN_DIRECT_IO so its data is not cached twice
//     (once in the kernel's page cache and once in ours); the cache's memory
//     bound is then the whole story.
package fusefs

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"github.com/s3blk/s3blk/cache"
	"github.com/s3blk/s3blk/stats"
)

// Options tune the FUSE session.
type Options struct {
	FsName        string // shown in /proc/mounts, e.g. the volume URL
	MaxWrite      int    // largest read/write request (default 1 MiB)
	MaxBackground int    // kernel's async request limit (default 64)
	DirectIO      bool   // open file with FOPEN_DIRECT_IO
	ReadOnly      bool
	Logger        *slog.Logger
}

type root struct {
	fs.Inode
	file  *volumeFile
	stats *statsFile
}

var _ = (fs.NodeOnAdder)((*root)(nil))

func (r *root) OnAdd(ctx context.Context) {
	r.AddChild("file", r.NewPersistentInode(ctx, r.file, fs.StableAttr{Mode: syscall.S_IFREG, Ino: 2}), false)
	r.AddChild("stats", r.NewPersistentInode(ctx, r.stats, fs.StableAttr{Mode: syscall.S_IFREG, Ino: 3}), false)
}

// Mount mounts the filesystem at dir and returns the running server.
func Mount(dir string, c *cache.Cache, st *stats.Counters, opt Options) (*fuse.Server, error) {
	if opt.MaxWrite == 0 {
		opt.MaxWrite = 1 << 20
	}
	if opt.MaxBackground == 0 {
		opt.MaxBackground = 64
	}
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	now := time.Now()
	r := &root{
		file:  &volumeFile{c: c, st: st, opt: opt, mtime: now},
		stats: &statsFile{st: st},
	}
	ttl := time.Second
	mountOpts := fuse.MountOptions{
		FsName:        opt.FsName,
		Name:          "s3blk",
		MaxWrite:      opt.MaxWrite,
		MaxReadAhead:  opt.MaxWrite,
		MaxBackground: opt.MaxBackground,
		DirectMount:   true,
		DisableXAttrs: true,
		// Replies are byte slices, not file descriptors: splicing gains
		// nothing, and a 1 MiB reply overflows the pipe and logs noise.
		DisableSplice: true,
		// The kernel enforces the files' modes (file is 0600).
		Options: []string{"default_permissions"},
	}
	if opt.ReadOnly {
		mountOpts.Options = append(mountOpts.Options, "ro")
	}
	return fs.Mount(dir, r, &fs.Options{
		MountOptions: mountOpts,
		EntryTimeout: &ttl,
		AttrTimeout:  &ttl,
		UID:          uint32(os.Getuid()),
		GID:          uint32(os.Getgid()),
	})
}

// volumeFile is the volume: reads and writes go to the cache.
type volumeFile struct {
	fs.Inode
	c     *cache.Cache
	st    *stats.Counters
	opt   Options
	mu    sync.Mutex
	mtime time.Time
}

var (
	_ = (fs.NodeGetattrer)((*volumeFile)(nil))
	_ = (fs.NodeSetattrer)((*volumeFile)(nil))
	_ = (fs.NodeOpener)((*volumeFile)(nil))
	_ = (fs.NodeReader)((*volumeFile)(nil))
	_ = (fs.NodeWriter)((*volumeFile)(nil))
	_ = (fs.NodeFsyncer)((*volumeFile)(nil))
	_ = (fs.NodeFlusher)((*volumeFile)(nil))
	_ = (fs.NodeAllocater)((*volumeFile)(nil))
)

func (f *volumeFile) fillAttr(out *fuse.Attr) {
	mode := uint32(0o600)
	if f.opt.ReadOnly {
		mode = 0o400
	}
	out.Mode = syscall.S_IFREG | mode
	out.Size = uint64(f.c.Size())
	out.Blocks = (out.Size + 511) / 512
	out.Blksize = 4096
	out.Nlink = 1
	f.mu.Lock()
	out.SetTimes(nil, &f.mtime, &f.mtime)
	f.mu.Unlock()
}

func (f *volumeFile) Getattr(ctx context.Context, fh fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	f.fillAttr(&out.Attr)
	return 0
}

// Setattr never changes the volume's size, which the header fixes: like a
// block device, truncation (O_TRUNC, as in a plain `dd of=file`) is ignored
// rather than failing or destroying data. Only the mtime can be set.
func (f *volumeFile) Setattr(ctx context.Context, fh fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if size, ok := in.GetSize(); ok && int64(size) != f.c.Size() {
		f.opt.Logger.Debug("ignoring a size change: the volume size is fixed", "requested", size)
	}
	if mtime, ok := in.GetMTime(); ok {
		f.mu.Lock()
		f.mtime = mtime
		f.mu.Unlock()
	}
	f.fillAttr(&out.Attr)
	return 0
}

func (f *volumeFile) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	if f.opt.ReadOnly && flags&(syscall.O_WRONLY|syscall.O_RDWR) != 0 {
		return nil, 0, syscall.EROFS
	}
	var fuseFlags uint32
	if f.opt.DirectIO {
		fuseFlags |= fuse.FOPEN_DIRECT_IO | fuse.FOPEN_PARALLEL_DIRECT_WRITES
	}
	return nil, fuseFlags, 0
}

func (f *volumeFile) Read(ctx context.Context, fh fs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	f.st.ReadRequests.Add(1)
	n, err := f.c.ReadAt(dest, off)
	f.st.ReadBytes.Add(int64(n))
	if err != nil {
		f.opt.Logger.Error("read failed", "offset", off, "length", len(dest), "err", err)
		return nil, f.errno(err)
	}
	return fuse.ReadResultData(dest[:n]), 0
}

func (f *volumeFile) Write(ctx context.Context, fh fs.FileHandle, data []byte, off int64) (uint32, syscall.Errno) {
	f.st.WriteRequests.Add(1)
	n, err := f.c.WriteAt(data, off)
	f.st.WriteBytes.Add(int64(n))
	if err != nil {
		return 0, f.errno(err)
	}
	return uint32(n), 0
}

// Fsync is the durability barrier.
func (f *volumeFile) Fsync(ctx context.Context, fh fs.FileHandle, flags uint32) syscall.Errno {
	if err := f.c.Flush(ctx); err != nil {
		f.opt.Logger.Error("fsync failed: data is not yet in the store", "err", err)
		return f.errno(err)
	}
	return 0
}

// Flush (on close) does not store data; fsync does. Like any file, data
// written without fsync may be lost in a crash (but never by umount).
func (f *volumeFile) Flush(ctx context.Context, fh fs.FileHandle) syscall.Errno { return 0 }

func (f *volumeFile) Allocate(ctx context.Context, fh fs.FileHandle, off, size uint64, mode uint32) syscall.Errno {
	switch {
	case mode&unix.FALLOC_FL_PUNCH_HOLE != 0, mode&unix.FALLOC_FL_ZERO_RANGE != 0:
		if err := f.c.PunchHole(int64(off), int64(size)); err != nil {
			return f.errno(err)
		}
		return 0
	case mode&^unix.FALLOC_FL_KEEP_SIZE == 0:
		// Plain allocation: every block of the volume is already "allocated".
		if off+size > uint64(f.c.Size()) && mode&unix.FALLOC_FL_KEEP_SIZE == 0 {
			return syscall.EFBIG
		}
		return 0
	}
	return syscall.EOPNOTSUPP
}

func (f *volumeFile) errno(err error) syscall.Errno {
	switch {
	case errors.Is(err, cache.ErrReadOnly):
		return syscall.EROFS
	case errors.Is(err, cache.ErrOutOfRange):
		return syscall.ENOSPC
	case errors.Is(err, context.Canceled):
		return syscall.EINTR
	}
	return syscall.EIO
}

// statsFile renders the counters when opened.
type statsFile struct {
	fs.Inode
	st *stats.Counters
}

var (
	_ = (fs.NodeGetattrer)((*statsFile)(nil))
	_ = (fs.NodeOpener)((*statsFile)(nil))
)

func (s *statsFile) Getattr(ctx context.Context, fh fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	out.Mode = syscall.S_IFREG | 0o444
	out.Size = uint64(len(s.st.Format()))
	out.Nlink = 1
	return 0
}

func (s *statsFile) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	if flags&(syscall.O_WRONLY|syscall.O_RDWR) != 0 {
		return nil, 0, syscall.EACCES
	}
	return &snapshot{data: []byte(s.st.Format())}, fuse.FOPEN_DIRECT_IO, 0
}

type snapshot struct{ data []byte }

var _ = (fs.FileReader)((*snapshot)(nil))

func (h *snapshot) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	if off >= int64(len(h.data)) {
		return fuse.ReadResultData(nil), 0
	}
	return fuse.ReadResultData(h.data[off:min(int64(len(h.data)), off+int64(len(dest)))]), 0
}

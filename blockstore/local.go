package blockstore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Local is a Store kept in a directory of the local filesystem: each key is
// a file path below Root. Writes go to a temporary file that is fsync'd and
// then renamed (or hard-linked, for PutIfAbsent) into place, and the parent
// directory is fsync'd, so a crash leaves either the old object or the new.
type Local struct {
	Root string
}

// NewLocal returns a Local store rooted at dir. The directory is created on
// the first write.
func NewLocal(dir string) *Local { return &Local{Root: filepath.Clean(dir)} }

func (l *Local) Describe() string { return "file://" + l.Root }

func (l *Local) path(key string) (string, error) {
	if key == "" || strings.HasPrefix(key, "/") || strings.Contains(key, "..") {
		return "", fmt.Errorf("invalid object key %q", key)
	}
	return filepath.Join(l.Root, filepath.FromSlash(key)), nil
}

func (l *Local) Get(ctx context.Context, key string) ([]byte, error) {
	p, err := l.path(key)
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", key, ErrNotFound)
	}
	return data, err
}

// writeTemp writes data to a fresh, fsync'd temporary file next to key's path.
func (l *Local) writeTemp(key string, data []byte) (tmp, final string, err error) {
	final, err = l.path(key)
	if err != nil {
		return "", "", err
	}
	dir := filepath.Dir(final)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", "", err
	}
	f, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return "", "", err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if _, err = f.Write(data); err != nil {
		return "", "", err
	}
	if err = f.Sync(); err != nil {
		return "", "", err
	}
	if err = f.Close(); err != nil {
		return "", "", err
	}
	return f.Name(), final, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

func (l *Local) Put(ctx context.Context, key string, data []byte) error {
	tmp, final, err := l.writeTemp(key, data)
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, final); err != nil {
		os.Remove(tmp)
		return err
	}
	return syncDir(filepath.Dir(final))
}

func (l *Local) PutIfAbsent(ctx context.Context, key string, data []byte) error {
	tmp, final, err := l.writeTemp(key, data)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	// link(2) fails with EEXIST if final exists: an atomic create.
	if err := os.Link(tmp, final); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%s: %w", key, ErrExists)
		}
		return err
	}
	return syncDir(filepath.Dir(final))
}

func (l *Local) Delete(ctx context.Context, key string) error {
	p, err := l.path(key)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

func (l *Local) List(ctx context.Context, prefix string, fn func(ObjectInfo) error) error {
	var infos []ObjectInfo
	start := l.Root // walk only the directory the prefix names, e.g. blocks/
	if i := strings.LastIndex(prefix, "/"); i >= 0 {
		start = filepath.Join(l.Root, filepath.FromSlash(prefix[:i]))
	}
	err := filepath.WalkDir(start, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.IsDir() || strings.HasPrefix(d.Name(), ".tmp-") {
			return nil
		}
		rel, err := filepath.Rel(l.Root, p)
		if err != nil {
			return err
		}
		key := filepath.ToSlash(rel)
		if !strings.HasPrefix(key, prefix) {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return nil // removed while listing
		}
		infos = append(infos, ObjectInfo{Key: key, Size: info.Size()})
		return ctx.Err()
	})
	if err != nil {
		return err
	}
	sort.Slice(infos, func(i, j int) bool { return infos[i].Key < infos[j].Key })
	for _, info := range infos {
		if err := fn(info); err != nil {
			return err
		}
	}
	return nil
}

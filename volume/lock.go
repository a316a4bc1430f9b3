package volume

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/s3blk/s3blk/blockstore"
)

// LockInfo names the mount that holds a volume.
type LockInfo struct {
	Host       string    `json:"host"`
	PID        int       `json:"pid"`
	Mountpoint string    `json:"mountpoint"`
	Since      time.Time `json:"since"`
}

func (l *LockInfo) String() string {
	if l.Host == unreadableLock {
		return "an unreadable lock object (not written by s3blk, or damaged)"
	}
	return fmt.Sprintf("host %s, pid %d, mountpoint %s, since %s",
		l.Host, l.PID, l.Mountpoint, l.Since.Local().Format(time.RFC3339))
}

// ErrLocked is returned by Lock when another mount holds the volume.
var ErrLocked = errors.New("volume is already mounted")

// NewLockInfo describes this process mounting at mountpoint.
func NewLockInfo(mountpoint string) LockInfo {
	host, _ := os.Hostname()
	return LockInfo{Host: host, PID: os.Getpid(), Mountpoint: mountpoint, Since: time.Now().UTC().Truncate(time.Second)}
}

// maxLockSize bounds what is read as a lock object (a real one is about
// 150 bytes); maxLockField bounds its host and mountpoint.
const (
	maxLockSize  = 4 << 10
	maxLockField = 1024
)

// unreadableLock stands for a lock object that is not one this program
// wrote: the volume is locked, by someone unknown.
const unreadableLock = "(unreadable lock object)"

// ReadLock returns the current lock holder, or nil if the volume is unlocked.
// A lock object that cannot be parsed (or is too large to be one) still
// locks the volume: it is reported as held by an unreadable holder.
func ReadLock(ctx context.Context, store blockstore.Store) (*LockInfo, error) {
	data, err := blockstore.GetBuffer(ctx, store, LockKey, nil, maxLockSize)
	if errors.Is(err, blockstore.ErrNotFound) {
		return nil, nil
	}
	if errors.Is(err, blockstore.ErrTooLarge) {
		return &LockInfo{Host: unreadableLock}, nil
	}
	if err != nil {
		return nil, err
	}
	return ParseLock(data), nil
}

// ParseLock decodes a lock object. Anything but a well-formed lock (JSON
// with printable, bounded host and mountpoint and a positive PID) yields a
// LockInfo whose Host says it is unreadable, so that hostile text never
// reaches an error message or the terminal.
func ParseLock(data []byte) *LockInfo {
	var l LockInfo
	if len(data) > maxLockSize || json.Unmarshal(data, &l) != nil ||
		l.PID <= 0 || !printable(l.Host) || !printable(l.Mountpoint) {
		return &LockInfo{Host: unreadableLock}
	}
	return &l
}

// printable reports whether s is short, valid UTF-8 without control
// characters.
func printable(s string) bool {
	if len(s) > maxLockField || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

// Lock takes the mount lock with an atomic create. With force, an existing
// lock is removed first (for a holder known to be dead).
func Lock(ctx context.Context, store blockstore.Store, me LockInfo, force bool) error {
	data, _ := json.MarshalIndent(me, "", "  ")
	if force {
		if err := store.Delete(ctx, LockKey); err != nil {
			return blockstore.Explain(err)
		}
	}
	err := store.PutIfAbsent(ctx, LockKey, append(data, '\n'))
	if errors.Is(err, blockstore.ErrExists) {
		holder, rerr := ReadLock(ctx, store)
		if rerr != nil || holder == nil {
			return fmt.Errorf("%w (lock holder unknown); if that mount is dead, mount with --force", ErrLocked)
		}
		return fmt.Errorf("%w by %s; if that mount is dead, mount with --force", ErrLocked, holder)
	}
	return blockstore.Explain(err)
}

// Unlock removes the lock if it is still ours.
func Unlock(ctx context.Context, store blockstore.Store, me LockInfo) error {
	holder, err := ReadLock(ctx, store)
	if err != nil {
		return err
	}
	if holder == nil || holder.Host != me.Host || holder.PID != me.PID || !holder.Since.Equal(me.Since) {
		return fmt.Errorf("the lock is no longer ours (held by %v); leaving it", holder)
	}
	return store.Delete(ctx, LockKey)
}

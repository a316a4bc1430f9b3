package volume

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

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

// ReadLock returns the current lock holder, or nil if the volume is unlocked.
func ReadLock(ctx context.Context, store blockstore.Store) (*LockInfo, error) {
	data, err := store.Get(ctx, LockKey)
	if errors.Is(err, blockstore.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var l LockInfo
	if err := json.Unmarshal(data, &l); err != nil {
		return &LockInfo{Host: "(unreadable lock object)"}, nil
	}
	return &l, nil
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

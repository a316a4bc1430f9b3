package volume_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/s3blk/s3blk/blockstore"
	"github.com/s3blk/s3blk/volume"
)

func lockInfo(host string, pid int) volume.LockInfo {
	me := volume.NewLockInfo("/mnt/" + host)
	me.Host, me.PID = host, pid
	return me
}

func TestLock(t *testing.T) {
	store := blockstore.NewLocal(t.TempDir())
	if l, err := volume.ReadLock(ctx, store); err != nil || l != nil {
		t.Fatalf("ReadLock of an unlocked volume = %v, %v", l, err)
	}

	mine := volume.NewLockInfo("/mnt/here")
	if host, _ := os.Hostname(); mine.Host != host || mine.PID != os.Getpid() || mine.Mountpoint != "/mnt/here" {
		t.Fatalf("NewLockInfo = %+v", mine)
	}
	a := lockInfo("host-alpha", 1111)
	if err := volume.Lock(ctx, store, a, false); err != nil {
		t.Fatal(err)
	}
	got, err := volume.ReadLock(ctx, store)
	if err != nil || got == nil {
		t.Fatalf("ReadLock = %v, %v", got, err)
	}
	if got.Host != a.Host || got.PID != a.PID || got.Mountpoint != a.Mountpoint || !got.Since.Equal(a.Since) {
		t.Fatalf("ReadLock = %+v, want %+v", got, a)
	}

	b := lockInfo("host-beta", 2222)
	for _, who := range []volume.LockInfo{b, a} { // even the holder cannot lock twice
		err = volume.Lock(ctx, store, who, false)
		if !errors.Is(err, volume.ErrLocked) {
			t.Fatalf("second Lock = %v, want ErrLocked", err)
		}
		if !strings.Contains(err.Error(), "host-alpha") || !strings.Contains(err.Error(), "1111") {
			t.Fatalf("ErrLocked message %q does not name the holder's host and pid", err)
		}
		if !strings.Contains(err.Error(), "--force") {
			t.Errorf("ErrLocked message %q does not mention --force", err)
		}
	}
	if got, _ := volume.ReadLock(ctx, store); got == nil || got.Host != "host-alpha" {
		t.Fatalf("a failed Lock changed the lock: %+v", got)
	}

	// Unlock refuses someone else's lock and leaves it.
	if err := volume.Unlock(ctx, store, b); err == nil {
		t.Fatal("Unlock by a non-holder succeeded")
	}
	// Same host and PID but a different mount (a later Since) is not ours.
	a2 := a
	a2.Since = a.Since.Add(time.Second)
	if err := volume.Unlock(ctx, store, a2); err == nil {
		t.Fatal("Unlock by the same host/pid with another Since succeeded")
	}
	// Same host and mount time but another process, or same PID on
	// another host, is not the holder either.
	a3 := a
	a3.PID = 9999
	if err := volume.Unlock(ctx, store, a3); err == nil {
		t.Fatal("Unlock by another PID on the holder's host succeeded")
	}
	a4 := a
	a4.Host = "host-gamma"
	if err := volume.Unlock(ctx, store, a4); err == nil {
		t.Fatal("Unlock by the holder's PID on another host succeeded")
	}
	if got, _ := volume.ReadLock(ctx, store); got == nil || got.Host != "host-alpha" {
		t.Fatalf("a refused Unlock removed the lock: %+v", got)
	}

	// force takes over.
	if err := volume.Lock(ctx, store, b, true); err != nil {
		t.Fatalf("forced Lock: %v", err)
	}
	if got, _ := volume.ReadLock(ctx, store); got == nil || got.Host != "host-beta" || got.PID != 2222 {
		t.Fatalf("after forced Lock, holder is %+v", got)
	}
	// The previous holder now cannot unlock.
	if err := volume.Unlock(ctx, store, a); err == nil {
		t.Fatal("the displaced holder unlocked the new holder's lock")
	}
	if got, _ := volume.ReadLock(ctx, store); got == nil || got.Host != "host-beta" {
		t.Fatalf("displaced holder's Unlock removed the lock: %+v", got)
	}
	if err := volume.Unlock(ctx, store, b); err != nil {
		t.Fatalf("Unlock by the holder: %v", err)
	}
	if got, err := volume.ReadLock(ctx, store); got != nil || err != nil {
		t.Fatalf("after Unlock, ReadLock = %+v, %v", got, err)
	}
	if err := volume.Unlock(ctx, store, b); err == nil {
		t.Fatal("Unlock of an unlocked volume succeeded")
	}
	// Forced lock on an unlocked volume works too.
	if err := volume.Lock(ctx, store, a, true); err != nil {
		t.Fatal(err)
	}
}

func TestLockUnreadable(t *testing.T) {
	for name, obj := range map[string][]byte{
		"garbage": []byte("garbage{"),
		// Regressions: hostile text went into error messages verbatim, and
		// a huge lock object was read whole.
		"control characters": []byte(`{"host":"h\n goroutine 1 [running]:\u001b[2J","pid":1}`),
		"no pid":             []byte(`{"host":"h","mountpoint":"/m"}`),
		"huge":               bytes.Repeat([]byte(" "), 1<<20),
	} {
		t.Run(name, func(t *testing.T) { testLockUnreadable(t, obj) })
	}
}

func testLockUnreadable(t *testing.T, obj []byte) {
	store := blockstore.NewLocal(t.TempDir())
	if err := store.Put(ctx, volume.LockKey, obj); err != nil {
		t.Fatal(err)
	}
	l, err := volume.ReadLock(ctx, store)
	if err != nil || l == nil {
		t.Fatalf("ReadLock of a garbage lock = %v, %v; want a holder", l, err)
	}
	if s := l.String(); !strings.Contains(s, "unreadable") || strings.ContainsAny(s, "\n\x1b") || strings.Contains(s, "goroutine") {
		t.Fatalf("unreadable lock described as %q", s)
	}
	err = volume.Lock(ctx, store, lockInfo("x", 1), false)
	if !errors.Is(err, volume.ErrLocked) {
		t.Fatalf("Lock over a garbage lock = %v, want ErrLocked", err)
	}
	if err := volume.Unlock(ctx, store, lockInfo("x", 1)); err == nil {
		t.Fatal("Unlock removed an unreadable lock it does not hold")
	}
	if err := volume.Lock(ctx, store, lockInfo("x", 1), true); err != nil {
		t.Fatalf("forced Lock over a garbage lock: %v", err)
	}
}

func TestLockRace(t *testing.T) {
	store := blockstore.NewLocal(t.TempDir())
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins, locked := 0, 0
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := volume.Lock(ctx, store, lockInfo(fmt.Sprint("h", i), 100+i), false)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				wins++
			case errors.Is(err, volume.ErrLocked):
				locked++
			default:
				t.Errorf("Lock: %v", err)
			}
		}()
	}
	wg.Wait()
	if wins != 1 || locked != 7 {
		t.Fatalf("%d Locks won and %d were refused; want 1 and 7", wins, locked)
	}
}

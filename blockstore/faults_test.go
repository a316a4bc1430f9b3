package blockstore_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/s3blk/s3blk/blockstore"
	"github.com/s3blk/s3blk/internal/faultproxy"
	"github.com/s3blk/s3blk/internal/testenv"
)

// faultyStore opens a store on a fresh bucket through a fault proxy set up
// by cfg, counting the retries it reports.
func faultyStore(t *testing.T, cfg faultproxy.Config, idle time.Duration) (blockstore.Store, *faultproxy.Proxy, *atomic.Int64) {
	t.Helper()
	bucket := testenv.Bucket(t)
	cfg.Upstream = os.Getenv("AWS_ENDPOINT_URL_S3")
	cfg.Seed = 1
	p, err := faultproxy.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	p.SetEnabled(false) // Open checks the bucket; the faults are for the test
	retries := new(atomic.Int64)
	s, err := blockstore.Open(context.Background(), blockstore.Location{Scheme: "s3", Bucket: bucket, Prefix: "v"},
		blockstore.S3Options{Endpoint: p.URL, IdleTimeout: idle, OnRetry: func(error) { retries.Add(1) }})
	if err != nil {
		t.Fatal(err)
	}
	p.SetEnabled(true)
	return s, p, retries
}

// A GET body that breaks off after its headers is fetched again: the SDK
// only retries until the headers arrive.
func TestTruncatedBodiesRetried(t *testing.T) {
	s, p, retries := faultyStore(t, faultproxy.Config{TruncateBody: 0.25}, 0)
	ctx := context.Background()
	p.SetEnabled(false)
	data := bytes.Repeat([]byte("0123456789abcdef"), 1<<14)
	for i := range 20 {
		if err := s.Put(ctx, fmt.Sprint("obj", i), data); err != nil {
			t.Fatal(err)
		}
	}
	p.SetEnabled(true)
	for i := range 20 {
		got, err := s.Get(ctx, fmt.Sprint("obj", i))
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("Get obj%d through truncated bodies: %d bytes, %v", i, len(got), err)
		}
		buf, err := blockstore.GetBuffer(ctx, s, fmt.Sprint("obj", i), make([]byte, len(data)), len(data))
		if err != nil || !bytes.Equal(buf, data) {
			t.Fatalf("GetBuffer obj%d through truncated bodies: %d bytes, %v", i, len(buf), err)
		}
	}
	if p.Count(faultproxy.TruncateBody) == 0 || retries.Load() == 0 {
		t.Fatalf("%d bodies truncated, %d retries reported; want some of both", p.Count(faultproxy.TruncateBody), retries.Load())
	}
	t.Logf("%s; %d retries", p.Summary(), retries.Load())
}

// When a create's reply is lost after S3 stored the object, the SDK's
// retry meets the object it made itself: that is success, not ErrExists.
// Another writer's object is still ErrExists.
func TestPutIfAbsentReplyLost(t *testing.T) {
	s, p, _ := faultyStore(t, faultproxy.Config{ResetAfter: 0.25}, 0)
	ctx := context.Background()
	for i := range 20 {
		if err := s.PutIfAbsent(ctx, fmt.Sprint("lock", i), []byte(fmt.Sprint("mine ", i))); err != nil {
			t.Fatalf("PutIfAbsent lock%d with lost replies: %v", i, err)
		}
	}
	if p.Count(faultproxy.ResetAfter) == 0 {
		t.Fatal("no reply was lost")
	}
	p.SetEnabled(false)
	if err := s.PutIfAbsent(ctx, "lock0", []byte("someone else")); !errorsIsExists(err) {
		t.Fatalf("PutIfAbsent over another writer's object: %v, want ErrExists", err)
	}
	t.Log(p.Summary())
}

// A request held by a server that has stopped answering is abandoned after
// the idle timeout and retried, instead of hanging. (Go's HTTP transport
// itself replays a GET that failed on a reused connection, so not every
// retry reaches OnRetry.)
func TestStalledRequestsRetried(t *testing.T) {
	s, p, retries := faultyStore(t, faultproxy.Config{Stall: 0.3, StallFor: time.Minute}, time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for i := range 10 {
		key := fmt.Sprint("obj", i)
		if err := s.Put(ctx, key, []byte(key)); err != nil {
			t.Fatalf("Put %s through stalls: %v", key, err)
		}
		if got, err := s.Get(ctx, key); err != nil || string(got) != key {
			t.Fatalf("Get %s through stalls: %q, %v", key, got, err)
		}
	}
	if p.Count(faultproxy.Stall) == 0 || retries.Load() == 0 {
		t.Fatalf("%d stalls, %d retries; want some of both", p.Count(faultproxy.Stall), retries.Load())
	}
	t.Logf("%s; %d retries", p.Summary(), retries.Load())
}

func errorsIsExists(err error) bool { return errors.Is(err, blockstore.ErrExists) }

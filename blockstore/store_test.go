package blockstore_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/s3blk/s3blk/blockstore"
	"github.com/s3blk/s3blk/internal/testenv"
)

// testStoreContract checks the invariants in the package comment.
func testStoreContract(t *testing.T, s blockstore.Store) {
	ctx := context.Background()
	if _, err := s.Get(ctx, "missing"); !errors.Is(err, blockstore.ErrNotFound) {
		t.Fatalf("Get(missing) = %v, want ErrNotFound", err)
	}
	if err := s.Delete(ctx, "missing"); err != nil {
		t.Fatalf("Delete(missing) = %v, want nil", err)
	}
	data := bytes.Repeat([]byte("0123456789abcdef"), 4096)
	if err := s.Put(ctx, "blocks/0000000000000001", data); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(ctx, "blocks/0000000000000001")
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("Get after Put: %d bytes, err %v", len(got), err)
	}
	if err := s.Put(ctx, "blocks/0000000000000001", []byte("v2")); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Get(ctx, "blocks/0000000000000001"); string(got) != "v2" {
		t.Fatalf("overwrite: got %q", got)
	}
	if err := s.Put(ctx, "empty", nil); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Get(ctx, "empty"); err != nil || len(got) != 0 {
		t.Fatalf("empty object: %q %v", got, err)
	}

	// PutIfAbsent: exactly one of many racing creators wins.
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins, exists := 0, 0
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			err := s.PutIfAbsent(ctx, "lock", []byte(fmt.Sprint("owner ", i)))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				wins++
			case errors.Is(err, blockstore.ErrExists):
				exists++
			default:
				t.Errorf("PutIfAbsent: %v", err)
			}
		}(i)
	}
	wg.Wait()
	if wins != 1 || exists != 7 {
		t.Fatalf("PutIfAbsent race: %d wins, %d ErrExists; want 1 and 7", wins, exists)
	}

	for i := 2; i < 5; i++ {
		if err := s.Put(ctx, fmt.Sprintf("blocks/%016x", i), []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	var keys []string
	err = s.List(ctx, "blocks/", func(o blockstore.ObjectInfo) error {
		keys = append(keys, o.Key)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := "[blocks/0000000000000001 blocks/0000000000000002 blocks/0000000000000003 blocks/0000000000000004]"
	if fmt.Sprint(keys) != want {
		t.Fatalf("List = %v, want %v", keys, want)
	}
	if err := s.Delete(ctx, "blocks/0000000000000002"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "blocks/0000000000000002"); !errors.Is(err, blockstore.ErrNotFound) {
		t.Fatalf("Get after Delete = %v", err)
	}
	stop := errors.New("stop")
	n := 0
	err = s.List(ctx, "blocks/", func(blockstore.ObjectInfo) error { n++; return stop })
	if !errors.Is(err, stop) || n != 1 {
		t.Fatalf("List did not stop on the callback's error: n=%d err=%v", n, err)
	}
}

func TestLocalStore(t *testing.T) {
	dir := t.TempDir()
	testStoreContract(t, blockstore.NewLocal(dir))
	// No temporary files are left behind.
	entries, _ := os.ReadDir(dir + "/blocks")
	for _, e := range entries {
		if len(e.Name()) != 16 {
			t.Errorf("stray file %s", e.Name())
		}
	}
}

func TestS3Store(t *testing.T) {
	bucket := testenv.Bucket(t)
	ctx := context.Background()
	s, err := blockstore.Open(ctx, blockstore.Location{Scheme: "s3", Bucket: bucket, Prefix: "vol"}, blockstore.S3Options{})
	if err != nil {
		t.Fatal(err)
	}
	testStoreContract(t, s)
	// A neighbouring prefix ("vol2") is not part of "vol".
	s2, _ := blockstore.Open(ctx, blockstore.Location{Scheme: "s3", Bucket: bucket, Prefix: "vol2"}, blockstore.S3Options{})
	if err := s2.Put(ctx, "blocks/00000000000000ff", []byte("x")); err != nil {
		t.Fatal(err)
	}
	n := 0
	s.List(ctx, "", func(blockstore.ObjectInfo) error { n++; return nil })
	if n != 5 { // blocks 1,3,4 + empty + lock
		t.Fatalf("List over prefix vol saw %d objects, want 5", n)
	}
}

func TestS3BadInput(t *testing.T) {
	bucket := testenv.Bucket(t)
	ctx := context.Background()
	// An endpoint that accepts connections and never answers.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	go func() {
		for {
			conn, err := silent.Accept()
			if err != nil {
				return
			}
			defer conn.Close()
		}
	}()
	cases := []struct {
		name, bucket, endpoint, key, want string
	}{
		{"silent endpoint", bucket, "http://" + silent.Addr().String(), "", "cannot reach"},
		{"missing bucket", "no-such-bucket-s3blk", "", "", "does not exist"},
		{"bad credentials", bucket, "", "WRONGKEY", "credentials"},
		{"unreachable endpoint", bucket, "http://127.0.0.1:1", "", "cannot reach"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.key != "" {
				t.Setenv("AWS_ACCESS_KEY_ID", c.key)
			}
			start := time.Now()
			_, err := blockstore.Open(ctx, blockstore.Location{Scheme: "s3", Bucket: c.bucket, Prefix: "v"},
				blockstore.S3Options{Endpoint: c.endpoint})
			if err == nil || !bytes.Contains([]byte(err.Error()), []byte(c.want)) {
				t.Fatalf("err = %v, want it to mention %q", err, c.want)
			}
			if took := time.Since(start); took > 15*time.Second {
				t.Fatalf("%s: took %s to fail", c.name, took)
			}
			t.Logf("%s after %s: %v", c.name, time.Since(start).Round(time.Millisecond), err)
		})
	}
}

func TestParseURL(t *testing.T) {
	good := map[string]blockstore.Location{
		"s3://b/vol1":           {Scheme: "s3", Bucket: "b", Prefix: "vol1"},
		"s3://b/a/b/":           {Scheme: "s3", Bucket: "b", Prefix: "a/b"},
		"file:///srv/s3blk/v1/": {Scheme: "file", Prefix: "/srv/s3blk/v1"},
		"s3://b/a@b%3Fc":        {Scheme: "s3", Bucket: "b", Prefix: "a@b?c"},
	}
	for in, want := range good {
		got, err := blockstore.ParseURL(in)
		if err != nil || got != want {
			t.Errorf("ParseURL(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "vol1", "/tmp/x", "http://x/y", "s3:///nobucket", "file://", "file://host/path",
		// Parts that would be dropped silently, so that rm would remove another stream.
		"s3://b/home#2", "s3://b/home?v=1", "s3://b/home?", "s3://b/home#", "s3://user@b/x", "s3://b:9000/x", "file:///srv/v?x"} {
		if _, err := blockstore.ParseURL(bad); err == nil {
			t.Errorf("ParseURL(%q) accepted", bad)
		}
	}
}

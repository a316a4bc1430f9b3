package blockstore_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"strings"
	"testing"

	"github.com/s3blk/s3blk/blockstore"
	"github.com/s3blk/s3blk/internal/testenv"
)

// testStreamIO checks GetBuffer and PutSHA256 on s: the buffer is reused
// when it fits, the size limit holds, missing objects are ErrNotFound.
func testStreamIO(t *testing.T, s blockstore.Store) {
	ctx := context.Background()
	data := bytes.Repeat([]byte("stream chunk "), 1000)
	if err := blockstore.PutSHA256(ctx, s, "000000000000", data, sha256.Sum256(data)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 20000)
	got, err := blockstore.GetBuffer(ctx, s, "000000000000", buf, 20000)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("GetBuffer: %d bytes, %v", len(got), err)
	}
	if _, ok := s.(blockstore.BufferGetter); ok && &got[0] != &buf[0] {
		t.Fatal("GetBuffer did not read into the buffer it was given")
	}
	if got, err := blockstore.GetBuffer(ctx, s, "000000000000", nil, len(data)); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("GetBuffer without a buffer: %d bytes, %v", len(got), err)
	}
	if _, err := blockstore.GetBuffer(ctx, s, "000000000000", buf, len(data)-1); err == nil || !strings.Contains(err.Error(), "larger") {
		t.Fatalf("GetBuffer beyond max: %v", err)
	}
	if _, err := blockstore.GetBuffer(ctx, s, "missing", buf, 100); !errors.Is(err, blockstore.ErrNotFound) {
		t.Fatalf("GetBuffer(missing) = %v, want ErrNotFound", err)
	}
}

func TestLocalStreamIO(t *testing.T) {
	testStreamIO(t, blockstore.NewLocal(t.TempDir()))
}

func TestS3StreamIO(t *testing.T) {
	bucket := testenv.Bucket(t)
	ctx := context.Background()
	s, err := blockstore.Open(ctx, blockstore.Location{Scheme: "s3", Bucket: bucket, Prefix: "stream"}, blockstore.S3Options{MaxAttempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	testStreamIO(t, s)
	// The server checks the data against the SHA-256 it is given.
	data := []byte("what was hashed")
	if err := blockstore.PutSHA256(ctx, s, "000000000001", []byte("something else"), sha256.Sum256(data)); err == nil {
		t.Fatal("PutSHA256 with a SHA-256 of other data succeeded")
	}
	if _, err := s.Get(ctx, "000000000001"); !errors.Is(err, blockstore.ErrNotFound) {
		t.Fatalf("the refused object exists: %v", err)
	}
}

package blockstore_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/s3blk/s3blk/blockstore"
	"github.com/s3blk/s3blk/internal/testenv"
)

// TestS3PutChecksum: Put and PutIfAbsent send the object's CRC-32C, which
// S3 stores and checks (the payload itself is not hashed for the request
// signature; the signed checksum header binds it). A body damaged on the
// way, at the same length, is refused by the server, never stored.
func TestS3PutChecksum(t *testing.T) {
	bucket := testenv.Bucket(t)
	ctx := context.Background()
	client := testenv.S3Client(t)
	s, err := blockstore.Open(ctx, blockstore.Location{Scheme: "s3", Bucket: bucket, Prefix: "vol"}, blockstore.S3Options{})
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("block data "), 50000)
	want := base64.StdEncoding.EncodeToString(binary.BigEndian.AppendUint32(nil, crc32.Checksum(data, crc32.MakeTable(crc32.Castagnoli))))
	for key, put := range map[string]func(string) error{
		"put":      func(k string) error { return s.Put(ctx, k, data) },
		"ifabsent": func(k string) error { return s.PutIfAbsent(ctx, k, data) },
	} {
		if err := put(key); err != nil {
			t.Fatal(err)
		}
		head, err := client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String("vol/" + key), ChecksumMode: types.ChecksumModeEnabled})
		if err != nil {
			t.Fatal(err)
		}
		if got := aws.ToString(head.ChecksumCRC32C); got != want {
			t.Fatalf("%s: stored CRC-32C %q, want %q", key, got, want)
		}
	}

	// A proxy that flips one byte of every request body.
	target, _ := url.Parse(os.Getenv("AWS_ENDPOINT_URL_S3"))
	proxy := httputil.NewSingleHostReverseProxy(target)
	direct := proxy.Director
	proxy.Director = func(r *http.Request) {
		direct(r)
		if r.Body != nil && r.ContentLength > 100 {
			body, _ := io.ReadAll(r.Body)
			body[len(body)/2] ^= 0x40
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
	}
	srv := httptest.NewServer(proxy)
	defer srv.Close()
	bad, err := blockstore.Open(ctx, blockstore.Location{Scheme: "s3", Bucket: bucket, Prefix: "vol"}, blockstore.S3Options{Endpoint: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	for _, put := range []func() error{
		func() error { return bad.Put(ctx, "damaged", data) },
		func() error { return bad.PutIfAbsent(ctx, "damaged2", data) },
	} {
		if err := put(); err == nil {
			t.Fatal("a body damaged in transit was accepted")
		}
	}
	for _, key := range []string{"damaged", "damaged2"} {
		if _, err := s.Get(ctx, key); !errors.Is(err, blockstore.ErrNotFound) {
			t.Fatalf("%s: a damaged upload left an object: %v", key, err)
		}
	}
}

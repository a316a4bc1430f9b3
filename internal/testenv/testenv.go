// Package testenv gives tests the real components they run against: a
// bucket on the MinIO that scripts/minio.sh started, and root for FUSE and
// loop devices.
//
// When S3BLK_REQUIRE_MINIO=1 (set by `make test`), a missing MinIO or root is
// a test failure, never a skip, so CI cannot pass by skipping.
package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

func required() bool { return os.Getenv("S3BLK_REQUIRE_MINIO") == "1" }

func missing(t testing.TB, what string) {
	t.Helper()
	if required() {
		t.Fatalf("%s is required (S3BLK_REQUIRE_MINIO=1) but missing", what)
	}
	t.Skipf("%s not available; run `make test`", what)
}

// NeedRoot fails or skips the test unless it runs as root.
func NeedRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		missing(t, "root (for FUSE and loop devices)")
	}
}

// S3Client returns a client for the test MinIO.
func S3Client(t testing.TB) *s3.Client {
	t.Helper()
	if os.Getenv("AWS_ENDPOINT_URL_S3") == "" {
		missing(t, "MinIO (AWS_ENDPOINT_URL_S3)")
	}
	cfg, err := config.LoadDefaultConfig(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = true })
}

// Bucket creates a fresh bucket on the test MinIO and returns its name.
func Bucket(t testing.TB) string {
	t.Helper()
	client := S3Client(t)
	var b [6]byte
	rand.Read(b[:])
	name := "test-" + hex.EncodeToString(b[:])
	if _, err := client.CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		t.Fatalf("creating bucket %s: %v", name, err)
	}
	return name
}

package blockstore

// Optional Store capabilities for stream mode, where objects are large and
// many: reading into a caller's buffer, and storing with a SHA-256 the
// caller has already computed. The package functions GetBuffer and
// PutSHA256 fall back to Get and Put for stores without them.

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// BufferGetter is implemented by stores that can read an object into a
// caller's buffer, so that a reader of many large objects (stream get)
// reuses a fixed set of buffers instead of allocating one per object.
type BufferGetter interface {
	// GetBuffer is Get, with the object read into buf[:0] when it fits
	// (a new slice otherwise). It never reads more than max bytes. It
	// leaves checking the content to the caller: S3 response checksums are
	// not validated (a stream chunk carries its own SHA-256 or AEAD tag).
	GetBuffer(ctx context.Context, key string, buf []byte, max int) ([]byte, error)
}

// SHA256Putter is implemented by stores that can use a SHA-256 of the
// data the caller has computed anyway: S3 checks the object against it,
// and neither the SDK nor the server hashes the data again for the
// request signature (the checksum header is signed instead).
type SHA256Putter interface {
	PutSHA256(ctx context.Context, key string, data []byte, sum [32]byte) error
}

// PutSHA256 stores data, whose SHA-256 is sum, with s.PutSHA256 if s has
// it, else with Put.
func PutSHA256(ctx context.Context, s Store, key string, data []byte, sum [32]byte) error {
	if p, ok := s.(SHA256Putter); ok {
		return p.PutSHA256(ctx, key, data, sum)
	}
	return s.Put(ctx, key, data)
}

func (s *S3) PutSHA256(ctx context.Context, key string, data []byte, sum [32]byte) error {
	in := &s3.PutObjectInput{
		Bucket:            aws.String(s.bucket),
		Key:               aws.String(s.prefix + key),
		Body:              bytes.NewReader(data),
		ContentLength:     aws.Int64(int64(len(data))),
		ChecksumAlgorithm: types.ChecksumAlgorithmSha256,
		ChecksumSHA256:    aws.String(base64.StdEncoding.EncodeToString(sum[:])),
	}
	// With the checksum header set the SDK computes no checksum of its own.
	// Over plain HTTP it would still hash the body to sign it, and the
	// server would hash it to check the signature, on top of checking the
	// SHA-256. The signed x-amz-checksum-sha256 header already binds the
	// body to the signature, so sign it as UNSIGNED-PAYLOAD, as the SDK
	// does over HTTPS: one hash on each side, integrity end to end.
	if _, err := s.client.PutObject(ctx, in, s3.WithAPIOptions(unsignedPayload)); err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	return nil
}

// ErrTooLarge is returned (wrapped) by GetBuffer for an object larger than
// the caller's limit: the object exists, and none of it was read.
var ErrTooLarge = errors.New("object is larger than the limit")

// GetBuffer reads key into buf if s is a BufferGetter, else with Get. An
// object larger than max bytes is an error wrapping ErrTooLarge, not an
// allocation.
func GetBuffer(ctx context.Context, s Store, key string, buf []byte, max int) ([]byte, error) {
	if g, ok := s.(BufferGetter); ok {
		return g.GetBuffer(ctx, key, buf, max)
	}
	data, err := s.Get(ctx, key)
	if err == nil && len(data) > max {
		return nil, fmt.Errorf("get %s: %w: %d bytes, limit %d", key, ErrTooLarge, len(data), max)
	}
	return data, err
}

// readSized reads exactly size bytes from r into buf (or a new slice) and
// checks that nothing follows. A failure to read is a *bodyError.
func readSized(r io.Reader, key string, size int64, buf []byte, max int) ([]byte, error) {
	if size < 0 || size > int64(max) {
		return nil, fmt.Errorf("get %s: %w: %d bytes, limit %d", key, ErrTooLarge, size, max)
	}
	if int64(cap(buf)) < size {
		buf = make([]byte, size)
	}
	buf = buf[:size]
	if n, err := io.ReadFull(r, buf); err != nil {
		return nil, &bodyError{fmt.Errorf("get %s: short body (%d of %d bytes): %w", key, n, size, err)}
	}
	var one [1]byte
	switch n, err := io.ReadFull(r, one[:]); {
	case n != 0:
		return nil, &bodyError{fmt.Errorf("get %s: body longer than its %d-byte length", key, size)}
	case err != io.EOF:
		return nil, &bodyError{fmt.Errorf("get %s: %w", key, err)}
	}
	return buf, nil
}

func (s *S3) GetBuffer(ctx context.Context, key string, buf []byte, max int) ([]byte, error) {
	// The caller checks the content (see BufferGetter): validating the
	// stored checksum here too would hash every byte twice.
	return s.getInto(ctx, key, buf, max, false)
}

func (l *Local) GetBuffer(ctx context.Context, key string, buf []byte, max int) ([]byte, error) {
	p, err := l.path(key)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", key, ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	return readSized(f, key, fi.Size(), buf, max)
}

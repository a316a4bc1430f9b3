package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// newClient returns an S3 client configured from the AWS environment, with
// path-style addressing (the bench always talks to MinIO on 127.0.0.1) and
// the same connection pool settings as blockstore.NewS3, so that the
// ceiling is measured with the transport s3blk itself uses.
func newClient(ctx context.Context) (*s3.Client, error) {
	httpClient := awshttp.NewBuildableClient().
		WithDialerOptions(func(d *net.Dialer) { d.Timeout = 5 * time.Second }).
		WithTransportOptions(func(t *http.Transport) {
			t.MaxIdleConns = 256
			t.MaxIdleConnsPerHost = 256
		})
	cfg, err := config.LoadDefaultConfig(ctx, config.WithHTTPClient(httpClient))
	if err != nil {
		return nil, err
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	return s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = true }), nil
}

// objectKey names object i of a ceiling run.
func objectKey(prefix string, i int64) string {
	return fmt.Sprintf("%s/%08d", strings.TrimSuffix(prefix, "/"), i)
}

// runCeiling PUTs (or GETs back) size bytes as objects of -object-size with
// -concurrency requests in flight, and prints "MiB/s seconds".
func runCeiling(args []string) error {
	if len(args) < 1 || (args[0] != "put" && args[0] != "get") {
		return errors.New("usage: ceiling put|get -bucket B -prefix P -size SIZE [-object-size 1M] [-concurrency 16]")
	}
	mode := args[0]
	fs := flag.NewFlagSet("ceiling", flag.ContinueOnError)
	bucket := fs.String("bucket", "", "bucket")
	prefix := fs.String("prefix", "ceiling", "key prefix")
	size := sizeFlag(fs, "size", 1<<30, "bytes to transfer")
	objSize := sizeFlag(fs, "object-size", 1<<20, "object size")
	conc := fs.Int("concurrency", 16, "requests in flight")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *bucket == "" || *objSize <= 0 || *size < *objSize || *conc < 1 {
		return errors.New("need -bucket, -size >= -object-size > 0 and -concurrency >= 1")
	}
	ctx := context.Background()
	client, err := newClient(ctx)
	if err != nil {
		return err
	}
	n := *size / *objSize
	payload := make([]byte, *objSize)
	rand.Read(payload)

	var next atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < *conc; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, *objSize)
			for {
				i := next.Add(1) - 1
				if i >= n {
					return
				}
				if err := ceilingOne(ctx, client, mode, *bucket, objectKey(*prefix, i), payload, buf); err != nil {
					once.Do(func() { firstErr = err })
					next.Store(n) // stop the others
					return
				}
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	secs := time.Since(start).Seconds()
	fmt.Printf("%.1f %.3f\n", float64(n**objSize)/(1<<20)/secs, secs)
	return nil
}

// ceilingOne does one request the way blockstore.S3 does it: a PUT with a
// known length, or a GET with checksum validation read into a reused buffer.
func ceilingOne(ctx context.Context, client *s3.Client, mode, bucket, key string, payload, buf []byte) error {
	if mode == "put" {
		_, err := client.PutObject(ctx, &s3.PutObjectInput{
			Bucket: aws.String(bucket), Key: aws.String(key),
			Body: bytes.NewReader(payload), ContentLength: aws.Int64(int64(len(payload))),
		})
		return err
	}
	out, err := client.GetObject(ctx, &s3.GetObjectInput{
		Bucket: aws.String(bucket), Key: aws.String(key), ChecksumMode: types.ChecksumModeEnabled,
	})
	if err != nil {
		return err
	}
	defer out.Body.Close()
	got, err := io.ReadFull(out.Body, buf)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("get %s: %w", key, err)
	}
	if got != len(buf) {
		return fmt.Errorf("get %s: %d bytes, want %d", key, got, len(buf))
	}
	return nil
}

func runMkbucket(args []string) error {
	if len(args) != 1 {
		return errors.New("usage: mkbucket NAME")
	}
	ctx := context.Background()
	client, err := newClient(ctx)
	if err != nil {
		return err
	}
	_, err = client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(args[0])})
	var owned *types.BucketAlreadyOwnedByYou
	if errors.As(err, &owned) {
		return nil
	}
	return err
}

// listPrefix calls fn for every object under bucket/prefix.
func listPrefix(ctx context.Context, client *s3.Client, bucket, prefix string, fn func(types.Object) error) error {
	p := s3.NewListObjectsV2Paginator(client, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return err
		}
		for _, o := range page.Contents {
			if err := fn(o); err != nil {
				return err
			}
		}
	}
	return nil
}

func prefixFlags(name string, args []string) (*flag.FlagSet, *string, *string, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	bucket := fs.String("bucket", "", "bucket")
	prefix := fs.String("prefix", "", "key prefix")
	err := fs.Parse(args)
	if err == nil && *bucket == "" {
		err = errors.New("-bucket is required")
	}
	return fs, bucket, prefix, err
}

// runDu prints "objects bytes" for everything under a prefix.
func runDu(args []string) error {
	_, bucket, prefix, err := prefixFlags("du", args)
	if err != nil {
		return err
	}
	ctx := context.Background()
	client, err := newClient(ctx)
	if err != nil {
		return err
	}
	var objects, bytes int64
	err = listPrefix(ctx, client, *bucket, *prefix, func(o types.Object) error {
		objects++
		bytes += aws.ToInt64(o.Size)
		return nil
	})
	if err != nil {
		return err
	}
	fmt.Println(objects, bytes)
	return nil
}

// runRm deletes every object under a prefix, 1000 keys per request.
func runRm(args []string) error {
	_, bucket, prefix, err := prefixFlags("rm", args)
	if err != nil {
		return err
	}
	if *prefix == "" {
		return errors.New("refusing to empty a whole bucket: give -prefix")
	}
	ctx := context.Background()
	client, err := newClient(ctx)
	if err != nil {
		return err
	}
	var batch []types.ObjectIdentifier
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		out, err := client.DeleteObjects(ctx, &s3.DeleteObjectsInput{
			Bucket: aws.String(*bucket), Delete: &types.Delete{Objects: batch, Quiet: aws.Bool(true)},
		})
		batch = batch[:0]
		if err == nil && len(out.Errors) > 0 {
			err = fmt.Errorf("deleting %s: %s", aws.ToString(out.Errors[0].Key), aws.ToString(out.Errors[0].Message))
		}
		return err
	}
	err = listPrefix(ctx, client, *bucket, *prefix, func(o types.Object) error {
		batch = append(batch, types.ObjectIdentifier{Key: o.Key})
		if len(batch) == 1000 {
			return flush()
		}
		return nil
	})
	if err != nil {
		return err
	}
	return flush()
}

package blockstore

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
)

// S3Options configures the S3 store. Zero values mean "from the AWS
// environment": credentials, region and endpoint come from the SDK's
// standard chain (AWS_PROFILE, AWS_REGION, AWS_ENDPOINT_URL_S3, IMDS, ...).
type S3Options struct {
	Endpoint    string // overrides AWS_ENDPOINT_URL_S3
	Region      string // overrides AWS_REGION; default us-east-1
	PathStyle   bool   // force path-style addressing
	MaxAttempts int    // SDK attempts per request (default 5)
	// IdleTimeout bounds how long one request may make no progress (no byte
	// sent or received) before it is abandoned and retried (default 30s).
	// A slow transfer that keeps moving is never cut off.
	IdleTimeout time.Duration
	// OnRetry, if set, is called once for every retried request, with the
	// error that made it retry.
	OnRetry func(err error)
}

// S3 is a Store backed by one bucket and key prefix.
type S3 struct {
	client      *s3.Client
	bucket      string
	prefix      string // "" or ends in "/"
	url         string
	maxAttempts int
	onRetry     func(error)
}

// idleTimeoutConn is a connection whose every read and write must make
// progress within timeout: a stalled server (or a network that silently
// drops packets) turns into a timeout error, which the SDK retries, instead
// of a request that hangs forever.
type idleTimeoutConn struct {
	net.Conn
	timeout time.Duration
}

func (c idleTimeoutConn) Read(p []byte) (int, error) {
	c.Conn.SetReadDeadline(time.Now().Add(c.timeout))
	return c.Conn.Read(p)
}

func (c idleTimeoutConn) Write(p []byte) (int, error) {
	c.Conn.SetWriteDeadline(time.Now().Add(c.timeout))
	return c.Conn.Write(p)
}

type countingRetryer struct {
	aws.RetryerV2
	onRetry func(error)
}

func (r countingRetryer) GetRetryToken(ctx context.Context, opErr error) (func(error) error, error) {
	if r.onRetry != nil {
		r.onRetry(opErr)
	}
	return r.RetryerV2.GetRetryToken(ctx, opErr)
}

// endpointFromEnv returns the endpoint the SDK will use, as far as we can
// tell, so that we can choose path-style addressing for IP and localhost.
func endpointFromEnv(opt S3Options) string {
	for _, e := range []string{opt.Endpoint, os.Getenv("AWS_ENDPOINT_URL_S3"), os.Getenv("AWS_ENDPOINT_URL")} {
		if e != "" {
			return e
		}
	}
	return ""
}

// needsPathStyle reports whether endpoint's host is an IP address or
// localhost, where virtual-host addressing cannot work.
func needsPathStyle(endpoint string) bool {
	if endpoint == "" {
		return false
	}
	u, err := url.Parse(endpoint)
	if err != nil || u.Host == "" {
		return false
	}
	host := u.Hostname()
	return host == "localhost" || strings.HasSuffix(host, ".localhost") || net.ParseIP(host) != nil
}

// NewS3 opens bucket/prefix. It does not contact S3; call Check for that.
func NewS3(ctx context.Context, bucket, prefix string, opt S3Options) (*S3, error) {
	if opt.MaxAttempts == 0 {
		opt.MaxAttempts = 5
	}
	if opt.IdleTimeout == 0 {
		opt.IdleTimeout = 30 * time.Second
	}
	dialer := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	httpClient := awshttp.NewBuildableClient().
		WithTransportOptions(func(t *http.Transport) {
			t.MaxIdleConns = 256
			t.MaxIdleConnsPerHost = 256
			t.ResponseHeaderTimeout = 60 * time.Second
			t.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
				conn, err := dialer.DialContext(ctx, network, addr)
				if err != nil {
					return nil, err
				}
				return idleTimeoutConn{Conn: conn, timeout: opt.IdleTimeout}, nil
			}
		})
	loadOpts := []func(*config.LoadOptions) error{
		config.WithHTTPClient(httpClient),
		config.WithRetryer(func() aws.Retryer {
			std := retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts = opt.MaxAttempts
				o.MaxBackoff = 5 * time.Second
			})
			return countingRetryer{RetryerV2: std, onRetry: opt.OnRetry}
		}),
	}
	if opt.Region != "" {
		loadOpts = append(loadOpts, config.WithRegion(opt.Region))
	}
	cfg, err := config.LoadDefaultConfig(ctx, loadOpts...)
	if err != nil {
		return nil, fmt.Errorf("loading AWS configuration: %w", err)
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	endpoint := endpointFromEnv(opt)
	pathStyle := opt.PathStyle || needsPathStyle(endpoint)
	client := s3.NewFromConfig(cfg, func(o *s3.Options) {
		if opt.Endpoint != "" {
			o.BaseEndpoint = aws.String(opt.Endpoint)
		}
		o.UsePathStyle = pathStyle
	})
	if prefix != "" && !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	return &S3{client: client, bucket: bucket, prefix: prefix, url: "s3://" + bucket + "/" + prefix,
		maxAttempts: opt.MaxAttempts, onRetry: opt.OnRetry}, nil
}

func (s *S3) Describe() string { return strings.TrimSuffix(s.url, "/") }

// Check verifies within a few seconds that the bucket exists and that the
// credentials are accepted, and turns the usual failures into one plain
// sentence.
func (s *S3) Check(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err := s.client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(s.bucket)})
	if err == nil {
		return nil
	}
	var re *awshttp.ResponseError
	if errors.As(err, &re) && re.HTTPStatusCode() != 0 {
		switch re.HTTPStatusCode() {
		case http.StatusNotFound:
			return fmt.Errorf("bucket %q does not exist", s.bucket)
		case http.StatusForbidden, http.StatusUnauthorized:
			return fmt.Errorf("access to bucket %q denied: check the AWS credentials (AWS_PROFILE, AWS_ACCESS_KEY_ID)", s.bucket)
		case http.StatusMovedPermanently:
			return fmt.Errorf("bucket %q is in another region: set AWS_REGION or --region", s.bucket)
		}
		return fmt.Errorf("bucket %q: HTTP %d from S3", s.bucket, re.HTTPStatusCode())
	}
	return Explain(err)
}

// Explain rewrites transport and credential errors into one short line.
func Explain(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	var ne net.Error
	var oe *net.OpError
	switch {
	case strings.Contains(msg, "failed to retrieve credentials") || strings.Contains(msg, "no EC2 IMDS role found"):
		return errors.New("no AWS credentials found: set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY")
	case errors.As(err, &oe):
		return fmt.Errorf("cannot reach the S3 endpoint: %v", oe)
	case errors.As(err, &ne) && ne.Timeout(), errors.Is(err, context.DeadlineExceeded):
		return errors.New("cannot reach the S3 endpoint: timed out")
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "InvalidToken", "ExpiredToken":
			return fmt.Errorf("S3 refused the credentials: %s", ae.ErrorCode())
		case "NoSuchBucket":
			return errors.New("bucket does not exist")
		}
	}
	return err
}

func (s *S3) Get(ctx context.Context, key string) ([]byte, error) {
	return s.getInto(ctx, key, nil, math.MaxInt, true)
}

// getInto reads the object at key into buf (or a new slice) without
// over-allocating, refusing objects above max bytes. validate asks the SDK
// to check the object's stored checksum too.
//
// The SDK retries a request until its response headers arrive; the body is
// read afterwards, so a connection that breaks mid-body (a reset, a
// truncated response, an idle timeout) is retried here, with the same
// attempt budget and backoff.
func (s *S3) getInto(ctx context.Context, key string, buf []byte, max int, validate bool) ([]byte, error) {
	for attempt := 1; ; attempt++ {
		data, err := s.getOnce(ctx, key, buf, max, validate)
		var be *bodyError
		if err == nil || !errors.As(err, &be) || attempt >= s.maxAttempts || ctx.Err() != nil {
			return data, err
		}
		if s.onRetry != nil {
			s.onRetry(err)
		}
		select {
		case <-time.After(min(50*time.Millisecond<<attempt, 5*time.Second)):
		case <-ctx.Done():
			return nil, err
		}
	}
}

// bodyError is a failure while reading a response body: the request itself
// succeeded, so a new attempt may too.
type bodyError struct{ err error }

func (e *bodyError) Error() string { return e.err.Error() }
func (e *bodyError) Unwrap() error { return e.err }

func (s *S3) getOnce(ctx context.Context, key string, buf []byte, max int, validate bool) ([]byte, error) {
	in := &s3.GetObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(s.prefix + key)}
	if validate {
		in.ChecksumMode = types.ChecksumModeEnabled
	}
	out, err := s.client.GetObject(ctx, in, func(o *s3.Options) {
		if !validate {
			o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
		}
	})
	if err != nil {
		var nsk *types.NoSuchKey
		if errors.As(err, &nsk) {
			return nil, fmt.Errorf("%s: %w", key, ErrNotFound)
		}
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	defer out.Body.Close()
	if out.ContentLength == nil {
		return nil, fmt.Errorf("get %s: no Content-Length", key)
	}
	return readSized(out.Body, key, *out.ContentLength, buf, max)
}

func (s *S3) put(ctx context.Context, key string, data []byte, ifAbsent bool) error {
	in := &s3.PutObjectInput{
		Bucket:        aws.String(s.bucket),
		Key:           aws.String(s.prefix + key),
		Body:          bytes.NewReader(data),
		ContentLength: aws.Int64(int64(len(data))),
	}
	if ifAbsent {
		in.IfNoneMatch = aws.String("*")
	}
	// The object's CRC-32C goes in the signed x-amz-checksum-crc32c header
	// and the payload is signed as UNSIGNED-PAYLOAD, as the SDK does over
	// HTTPS. S3 refuses a body that does not match, so a damaged upload is
	// never stored; over plain HTTP this spares the SDK and the server a
	// SHA-256 of every block for the signature (0.7 CPU-seconds per GiB
	// here, on each side). A block is checked again when read, by its own
	// SHA-256 or AEAD tag.
	crc := binary.BigEndian.AppendUint32(nil, crc32.Checksum(data, castagnoli))
	in.ChecksumAlgorithm = types.ChecksumAlgorithmCrc32c
	in.ChecksumCRC32C = aws.String(base64.StdEncoding.EncodeToString(crc))
	_, err := s.client.PutObject(ctx, in, s3.WithAPIOptions(unsignedPayload))
	if err != nil {
		var re *awshttp.ResponseError
		if ifAbsent && errors.As(err, &re) && re.HTTPStatusCode() == http.StatusPreconditionFailed {
			// A retried attempt meets the object the first one created
			// when only its reply was lost. Every conditional write holds
			// something unique (a random ID, or host, PID and time), so
			// identical bytes mean the object is ours.
			// (An object larger than ours is not read: it cannot be equal.)
			if stored, gerr := s.getInto(ctx, key, nil, len(data), true); gerr == nil && bytes.Equal(stored, data) {
				return nil
			}
			return fmt.Errorf("%s: %w", key, ErrExists)
		}
		return fmt.Errorf("put %s: %w", key, err)
	}
	return nil
}

// unsignedPayload signs a PutObject's body as UNSIGNED-PAYLOAD: for
// requests whose signed checksum header already binds the body.
func unsignedPayload(stack *middleware.Stack) error {
	return stack.Build.Add(middleware.BuildMiddlewareFunc("s3blkUnsignedPayload",
		func(ctx context.Context, in middleware.BuildInput, next middleware.BuildHandler) (middleware.BuildOutput, middleware.Metadata, error) {
			return next.HandleBuild(v4.SetPayloadHash(ctx, "UNSIGNED-PAYLOAD"), in)
		}), middleware.After)
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func (s *S3) Put(ctx context.Context, key string, data []byte) error {
	return s.put(ctx, key, data, false)
}

func (s *S3) PutIfAbsent(ctx context.Context, key string, data []byte) error {
	return s.put(ctx, key, data, true)
}

func (s *S3) Delete(ctx context.Context, key string) error {
	_, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{
		Bucket: aws.String(s.bucket),
		Key:    aws.String(s.prefix + key),
	})
	if err != nil {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	return nil
}

func (s *S3) List(ctx context.Context, prefix string, fn func(ObjectInfo) error) error {
	p := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{
		Bucket: aws.String(s.bucket),
		Prefix: aws.String(s.prefix + prefix),
	})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("list %s: %w", prefix, err)
		}
		for _, obj := range page.Contents {
			info := ObjectInfo{Key: strings.TrimPrefix(aws.ToString(obj.Key), s.prefix)}
			if obj.Size != nil {
				info.Size = *obj.Size
			}
			if err := fn(info); err != nil {
				return err
			}
		}
	}
	return nil
}

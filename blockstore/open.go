package blockstore

import (
	"context"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
)

// Location is a parsed store URL: s3://bucket/prefix or file:///path.
type Location struct {
	Scheme string // "s3" or "file"
	Bucket string // s3 only
	Prefix string // s3: key prefix without trailing slash; file: absolute directory
}

// ParseURL parses s3://bucket/prefix and file:///absolute/path URLs.
func ParseURL(raw string) (Location, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" {
		return Location{}, fmt.Errorf("%q is not a store URL: use s3://bucket/prefix or file:///path", raw)
	}
	// A query, fragment, user or port would be dropped silently, and the
	// command would act on another prefix than the one typed (rm!).
	switch {
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.HasSuffix(raw, "#"):
		return Location{}, fmt.Errorf("%q: a store URL takes no ?query or #fragment", raw)
	case u.User != nil || strings.Contains(u.Host, ":"):
		return Location{}, fmt.Errorf("%q: a store URL takes no user or port (use --endpoint for the server)", raw)
	}
	switch u.Scheme {
	case "s3":
		if u.Host == "" {
			return Location{}, fmt.Errorf("%q has no bucket: use s3://bucket/prefix", raw)
		}
		return Location{Scheme: "s3", Bucket: u.Host, Prefix: strings.Trim(u.Path, "/")}, nil
	case "file":
		if u.Host != "" && u.Host != "localhost" {
			return Location{}, fmt.Errorf("%q: a file URL needs an absolute path, like file:///srv/s3blk/vol1", raw)
		}
		if u.Path == "" || u.Path == "/" {
			return Location{}, fmt.Errorf("%q: a file URL needs a directory path", raw)
		}
		return Location{Scheme: "file", Prefix: filepath.Clean(u.Path)}, nil
	}
	return Location{}, fmt.Errorf("%q: unsupported scheme %q: use s3://bucket/prefix or file:///path", raw, u.Scheme)
}

func (l Location) String() string {
	if l.Scheme == "s3" {
		return "s3://" + l.Bucket + "/" + l.Prefix
	}
	return "file://" + l.Prefix
}

// Open returns the Store for loc. For S3 it checks that the bucket exists
// and that the credentials work, so that bad input fails at once.
func Open(ctx context.Context, loc Location, opt S3Options) (Store, error) {
	if loc.Scheme == "file" {
		return NewLocal(loc.Prefix), nil
	}
	s, err := NewS3(ctx, loc.Bucket, loc.Prefix, opt)
	if err != nil {
		return nil, err
	}
	if err := s.Check(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

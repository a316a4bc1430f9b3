package blockstore_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/s3blk/s3blk/blockstore"
)

// FuzzParseURL: no input panics; errors are one line; what is accepted is
// a bucket and prefix that mean exactly what was typed (no part of the
// URL silently dropped) or a clean absolute directory, and its String form
// parses back to the same location.
func FuzzParseURL(f *testing.F) {
	for _, s := range []string{"s3://bucket/prefix", "s3://bucket", "s3://bucket/", "s3://", "s3:///x", "http://x/y", "file:///srv/v",
		"file://localhost/srv/v", "file://host/x", "file:relative", "file:///", "s3://b/a?versionId=1", "s3://b/a#frag",
		"s3://user@b/a", "s3://b:9000/a", "s3://b/a%2Fb", "s3://b/%zz", "S3://b/a", "", "bucket/name", "s3://b/a b", "s3://b//a//"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		loc, err := blockstore.ParseURL(raw)
		if err != nil {
			if strings.Contains(err.Error(), "\n") && !strings.Contains(raw, "\n") {
				t.Fatalf("ParseURL(%q): error %q is not one line", raw, err)
			}
			return
		}
		if strings.ContainsAny(raw, "?#") {
			t.Fatalf("ParseURL(%q) accepted a URL with a query or fragment: %+v", raw, loc)
		}
		switch loc.Scheme {
		case "s3":
			if loc.Bucket == "" || strings.ContainsAny(loc.Bucket, "/:@?#") {
				t.Fatalf("ParseURL(%q): bucket %q", raw, loc.Bucket)
			}
			if strings.HasPrefix(loc.Prefix, "/") || strings.HasSuffix(loc.Prefix, "/") {
				t.Fatalf("ParseURL(%q): prefix %q has a leading or trailing slash", raw, loc.Prefix)
			}
			if !strings.Contains(raw, "%") && !strings.Contains(raw, loc.Prefix) {
				t.Fatalf("ParseURL(%q): prefix %q is not what was typed", raw, loc.Prefix)
			}
		case "file":
			if !filepath.IsAbs(loc.Prefix) || filepath.Clean(loc.Prefix) != loc.Prefix || loc.Prefix == "/" {
				t.Fatalf("ParseURL(%q): directory %q", raw, loc.Prefix)
			}
		default:
			t.Fatalf("ParseURL(%q): scheme %q", raw, loc.Scheme)
		}
		if !strings.ContainsAny(loc.Prefix, "%?#") {
			if back, err := blockstore.ParseURL(loc.String()); err != nil || back != loc {
				t.Fatalf("ParseURL(%q) = %+v, whose String %q parses as %+v, %v", raw, loc, loc.String(), back, err)
			}
		}
	})
}

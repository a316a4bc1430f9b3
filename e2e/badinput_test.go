package e2e

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestBadInput: each bad input gets one clear line on stderr, a non-zero
// exit within seconds, and nothing written to the bucket.
func TestBadInput(t *testing.T) {
	h := newHarness(t)
	good := h.url("good")
	h.must("create", good, "--size", "64M", "--block-size", "64K")
	h.must("create", h.url("other"), "--size", "64M", "--block-size", "64K")
	mounted := h.mount(good)

	tmp := t.TempDir()
	missingDir := filepath.Join(tmp, "nope")
	aFile := filepath.Join(tmp, "afile")
	os.WriteFile(aFile, []byte("x"), 0o644)
	nonEmpty := filepath.Join(tmp, "nonempty")
	os.MkdirAll(nonEmpty+"/sub", 0o755)
	emptyDir := func() string { d, _ := os.MkdirTemp(tmp, "mnt"); return d }

	cases := []struct {
		name string
		env  []string
		args []string
		want string // in the one stderr line
	}{
		{"size not a multiple of the block size", nil, []string{"create", h.url("a"), "--size", "1000001", "--block-size", "1M"}, "not a multiple"},
		{"block size not a power of two", nil, []string{"create", h.url("a"), "--size", "3M", "--block-size", "3K"}, "power of two"},
		{"block size too small", nil, []string{"create", h.url("a"), "--size", "1M", "--block-size", "2K"}, "power of two"},
		{"block size too large", nil, []string{"create", h.url("a"), "--size", "1G", "--block-size", "128M"}, "power of two"},
		{"size missing", nil, []string{"create", h.url("a")}, "--size"},
		{"size unparsable", nil, []string{"create", h.url("a"), "--size", "10X"}, "not a size"},
		{"not a store URL", nil, []string{"create", "http://example/a", "--size", "1G"}, "scheme"},
		{"no prefix", nil, []string{"create", "s3://" + h.bucket, "--size", "1G"}, "prefix"},
		{"missing bucket", nil, []string{"create", "s3://no-such-bucket-s3blk/a", "--size", "1G"}, "does not exist"},
		{"bad credentials", []string{"AWS_SECRET_ACCESS_KEY=wrong"}, []string{"create", h.url("a"), "--size", "1G"}, "credentials"},
		{"unreachable endpoint", nil, []string{"create", h.url("a"), "--size", "1G", "--endpoint", "http://127.0.0.1:1"}, "cannot reach"},
		{"volume exists", nil, []string{"create", good, "--size", "64M", "--block-size", "64K"}, "already holds a volume"},
		{"mount: no volume", nil, []string{"mount", h.url("none"), emptyDir()}, "s3blk create"},
		{"mount: missing bucket", nil, []string{"mount", "s3://no-such-bucket-s3blk/a", emptyDir()}, "does not exist"},
		{"mount: bad credentials", []string{"AWS_ACCESS_KEY_ID=wrong"}, []string{"mount", good, emptyDir()}, "credentials"},
		{"mount: unreachable endpoint", nil, []string{"mount", good, emptyDir(), "--endpoint", "http://127.0.0.1:1"}, "cannot reach"},
		{"mount: mountpoint missing", nil, []string{"mount", h.url("other"), missingDir}, "does not exist"},
		{"mount: mountpoint is a file", nil, []string{"mount", h.url("other"), aFile}, "not a directory"},
		{"mount: mountpoint not empty", nil, []string{"mount", h.url("other"), nonEmpty}, "busy"},
		{"mount: mountpoint already mounted", nil, []string{"mount", h.url("other"), mounted}, "busy"},
		{"mount: second mount", nil, []string{"mount", good, emptyDir()}, "already mounted by"},
		{"mount: size contradicts header", nil, []string{"mount", h.url("other"), emptyDir(), "--size", "128M"}, "contradicts"},
		{"mount: block size contradicts header", nil, []string{"mount", h.url("other"), emptyDir(), "--block-size", "1M"}, "contradicts"},
		{"umount: not an s3blk mount", nil, []string{"umount", tmp}, "not an s3blk mount"},
		{"info: no volume", nil, []string{"info", h.url("none")}, "s3blk create"},
		{"unknown flag", nil, []string{"mount", good, emptyDir(), "--cache", "1G"}, "flag provided but not defined"},
	}
	before := strings.Join(h.objects(""), "\n")
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := h.s3blkEnv(c.env, c.args...)
			lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
			switch {
			case r.code == 0:
				t.Fatalf("exit 0, want failure; stderr %q", r.stderr)
			case len(lines) != 1 || lines[0] == "":
				t.Fatalf("want one line on stderr, got %d:\n%s", len(lines), r.stderr)
			case !strings.Contains(lines[0], c.want):
				t.Fatalf("stderr %q does not mention %q", lines[0], c.want)
			case r.took > 20*time.Second:
				t.Fatalf("took %s", r.took)
			}
			t.Logf("exit %d after %s: %s", r.code, r.took.Round(time.Millisecond), lines[0])
		})
	}
	if after := strings.Join(h.objects(""), "\n"); after != before {
		t.Fatalf("bad input changed the bucket:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	// Nothing was left mounted by the failed mounts.
	out := sh(t, fmt.Sprintf("grep %s /proc/self/mountinfo || true", tmp))
	if strings.TrimSpace(out) != "" {
		t.Fatalf("a failed mount left a mount behind:\n%s", out)
	}
}

// TestBadInputEveryCommand: the bad inputs of TestBadInput, for every
// command: argument counts, unknown flags, malformed URLs and sizes,
// unusable credentials or endpoints, wrong passphrases. Each is one line on
// stderr, a non-zero exit, and leaves the bucket as it was.
func TestBadInputEveryCommand(t *testing.T) {
	h := newHarness(t)
	vol := h.url("vol")
	h.must("create", vol, "--size", "64M", "--block-size", "64K")
	s := &streamHarness{harness: h, pw: h.passFile, env: []string{"AWS_EC2_METADATA_DISABLED=true", "S3BLK_PASSPHRASE_FILE=" + h.passFile}}
	s.mustPut([]byte("hello"), h.url("st"))
	wrong := writePassFile(t, "not the passphrase")
	next := writePassFile(t, "next passphrase")
	mnt := t.TempDir()
	type bad struct {
		name string
		env  []string
		args []string
		want string
	}
	cases := []bad{
		{"create: size 0", nil, []string{"create", h.url("a"), "--size", "0"}, "positive"},
		{"create: negative size", nil, []string{"create", h.url("a"), "--size", "-1G"}, "not a size"},
		{"create: size overflows", nil, []string{"create", h.url("a"), "--size", "9000000P"}, "not a size"},
		{"create: two URLs", nil, []string{"create", h.url("a"), h.url("b"), "--size", "1G"}, "expected URL"},
		{"create: URL with a fragment", nil, []string{"create", h.url("a#b"), "--size", "1G"}, "fragment"},
		{"mount: wrong passphrase", nil, []string{"mount", vol, mnt, "--passphrase-file", wrong}, "wrong passphrase"},
		{"mount: missing mountpoint argument", nil, []string{"mount", vol}, "expected URL MOUNTPOINT"},
		{"mount: bad cache size", nil, []string{"mount", vol, mnt, "--cache-size", "lots"}, "not a size"},
		{"umount: no argument", nil, []string{"umount"}, "expected MOUNTPOINT"},
		{"umount: unknown flag", nil, []string{"umount", mnt, "--lazy"}, "flag provided but not defined"},
		{"passwd: wrong passphrase", nil, []string{"passwd", vol, "--passphrase-file", wrong, "--new-passphrase-file", next}, "wrong passphrase"},
		{"passwd: no volume", nil, []string{"passwd", h.url("none"), "--new-passphrase-file", next}, "s3blk create"},
		{"passwd: new passphrase file missing", nil, []string{"passwd", vol, "--new-passphrase-file", "/nonexistent/pw"}, "passphrase file"},
		{"passwd: a stream", nil, []string{"passwd", h.url("st"), "--new-passphrase-file", next}, "s3blk create"},
		{"verify: wrong passphrase", nil, []string{"verify", vol, "--passphrase-file", wrong}, "wrong passphrase"},
		{"verify: nothing there", nil, []string{"verify", h.url("none")}, "neither a volume nor a stream"},
		{"verify: parallel 0", nil, []string{"verify", vol, "--parallel", "0"}, "--parallel"},
		{"put: size suffix on retries", nil, []string{"put", h.url("x"), "--retries", "10K"}, "forever"},
		{"rm: a volume", nil, []string{"rm", vol}, "volume"},
		{"ls: bad URL", nil, []string{"ls", "s3://"}, "no bucket"},
		{"unknown command", nil, []string{"frobnicate", vol}, "unknown command"},
	}
	for _, cmd := range []string{"info", "verify", "passwd", "get", "ls", "rm", "put"} {
		url := vol
		if cmd == "get" || cmd == "rm" || cmd == "put" || cmd == "ls" {
			url = h.url("st")
		}
		if cmd == "put" {
			url = h.url("new")
		}
		cases = append(cases,
			bad{cmd + ": no URL", nil, []string{cmd}, "expected URL"},
			bad{cmd + ": two URLs", nil, []string{cmd, url, url}, "expected URL"},
			bad{cmd + ": unknown flag", nil, []string{cmd, url, "--frobnicate"}, "flag provided but not defined"},
			bad{cmd + ": empty s3 URL", nil, []string{cmd, "s3://"}, "no bucket"},
			bad{cmd + ": http URL", nil, []string{cmd, "http://x"}, "scheme"},
			bad{cmd + ": URL with a query", nil, []string{cmd, url + "?versionId=1"}, "query"},
			bad{cmd + ": missing bucket", nil, []string{cmd, "s3://no-such-bucket-s3blk/a"}, "does not exist"},
			bad{cmd + ": bad credentials", []string{"AWS_SECRET_ACCESS_KEY=wrong"}, []string{cmd, url}, "credentials"},
			bad{cmd + ": unreachable endpoint", nil, []string{cmd, url, "--endpoint", "http://127.0.0.1:1"}, "cannot reach"},
		)
	}
	before := strings.Join(h.objects(""), "\n")
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// Through a pipe on stdin (put reads it), with c.env last.
			sc := *s
			sc.env = append(slices.Clip(s.env), c.env...)
			r := sc.pipe(strings.NewReader("data"), io.Discard, c.args...)
			oneLine(t, r, c.want)
			if r.took > 20*time.Second {
				t.Fatalf("took %s", r.took)
			}
		})
	}
	if after := strings.Join(h.objects(""), "\n"); after != before {
		t.Fatalf("bad input changed the bucket:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if out := sh(t, fmt.Sprintf("grep %s /proc/self/mountinfo || true", mnt)); strings.TrimSpace(out) != "" {
		t.Fatalf("a failed mount left a mount behind:\n%s", out)
	}
}

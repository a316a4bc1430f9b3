package e2e

import (
	"fmt"
	"os"
	"path/filepath"
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

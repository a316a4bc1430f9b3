package e2e

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// switchProxy forwards to MinIO on 127.0.0.1 until failing is set, then
// answers every request with 503 SlowDown.
type switchProxy struct {
	failing atomic.Bool
	failed  atomic.Int64
	url     string
}

func newSwitchProxy(t *testing.T) *switchProxy {
	t.Helper()
	target, err := url.Parse(os.Getenv("AWS_ENDPOINT_URL_S3"))
	if err != nil || target.Host == "" {
		t.Fatalf("AWS_ENDPOINT_URL_S3 %q: %v", os.Getenv("AWS_ENDPOINT_URL_S3"), err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &switchProxy{url: "http://" + ln.Addr().String()}
	forward := httputil.NewSingleHostReverseProxy(target)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p.failing.Load() {
			p.failed.Add(1)
			w.Header().Set("Content-Type", "application/xml")
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprint(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code><Message>injected</Message></Error>`)
			return
		}
		forward.ServeHTTP(w, r)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return p
}

// TestOutageFsyncAndUmount: while S3 refuses every request, fsync fails
// with EIO after --flush-timeout instead of pretending, the data stays dirty
// and is retried, and once S3 is back it is all stored. If S3 stays down,
// s3blk umount exits non-zero.
func TestOutageFsyncAndUmount(t *testing.T) {
	h := newHarness(t)
	proxy := newSwitchProxy(t)
	url := h.url("outage")
	h.must("create", url, "--size", "256M", "--block-size", "1M")
	src := randomFile(t, 8)
	mnt := h.mount(url, "--endpoint", proxy.url, "--flush-timeout", "3s")

	// Outage: the write is accepted into the cache, the fsync is refused.
	proxy.failing.Store(true)
	start := time.Now()
	out, err := exec.Command("dd", "if="+src, "of="+mnt+"/file", "bs=1M", "conv=fsync,notrunc", "status=none").CombinedOutput()
	if err == nil {
		t.Fatalf("dd conv=fsync succeeded during an S3 outage")
	}
	if !strings.Contains(string(out), "Input/output error") {
		t.Errorf("dd during outage: %s; want an I/O error", out)
	}
	t.Logf("fsync failed after %s: %s", time.Since(start).Round(100*time.Millisecond), strings.TrimSpace(string(out)))
	if d, r := statValue(t, mnt, "dirty_blocks"), statValue(t, mnt, "retries"); d != 8 || r == 0 {
		t.Errorf("during the outage: %d dirty blocks and %d retries in stats; want 8 and some", d, r)
	}

	// Recovery: the retried blocks are stored, and a new fsync succeeds.
	proxy.failing.Store(false)
	sh(t, fmt.Sprintf("sync %s/file", mnt)) // fsync(2) on the file
	if n := h.blockObjects("outage"); n != 8 {
		t.Fatalf("after recovery %d block objects, want 8", n)
	}

	// A permanent outage at unmount: s3blk umount reports the loss.
	proxy.failing.Store(true)
	sh(t, fmt.Sprintf("dd if=%s of=%s/file bs=1M seek=100 conv=notrunc status=none", src, mnt))
	r := h.s3blk("umount", mnt)
	if r.code == 0 || !strings.Contains(r.stderr, "could not be stored") {
		t.Fatalf("umount during an outage: exit %d, stderr %q; want non-zero and 'could not be stored'", r.code, r.stderr)
	}
	t.Logf("umount during outage: exit %d after %s: %s", r.code, r.took.Round(100*time.Millisecond), strings.TrimSpace(r.stderr))
	if proxy.failed.Load() == 0 {
		t.Fatal("the proxy refused nothing")
	}
	proxy.failing.Store(false)

	// What was fsync'd survived; the lock is stale and needs --force.
	mnt2 := filepath.Join(t.TempDir(), "mnt2")
	os.Mkdir(mnt2, 0o755)
	h.mountAt(url, mnt2, "--force")
	sh(t, fmt.Sprintf("cmp -n %d %s %s/file", 8<<20, src, mnt2))
}

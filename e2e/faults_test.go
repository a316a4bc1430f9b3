package e2e

// Fault injection end to end: s3blk talks to MinIO through
// internal/faultproxy, which answers some requests with 503 SlowDown or
// 500 InternalError, resets connections before forwarding or after MinIO
// handled the request, cuts GET bodies short, adds latency and stalls a
// few requests. Whatever it does, nothing may be lost: the data read back
// without the proxy must be exactly what was written.
//
// S3BLK_SOAK=1 runs longer variants (more data, higher rates);
// S3BLK_FAULT_SEED=N repeats a run's fault decisions (as far as request
// interleaving allows).

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/s3blk/s3blk/internal/faultproxy"
)

// soak reports whether the long variants were asked for.
func soak() bool { return os.Getenv("S3BLK_SOAK") == "1" }

// newFaultProxy starts a fault proxy in front of the test MinIO, with
// faulting OFF: switch it on once the command under test is past its
// start-up (mount takes its lock with a create-if-absent, whose retry after
// a reset-after-handled is another problem than the one tested here).
// rate is the probability of each exclusive fault kind; truncation, which
// only GETs can suffer, gets twice that, and stalls half. A stall lasts
// far longer than requestTimeout, which every command through the proxy
// gets: each stall must be abandoned by the client's per-request timeout
// and the request retried.
// Rates and request counts are chosen so that every kind is expected at
// least 10 times per test: the chance that one never happens is < 1e-4.
func newFaultProxy(t *testing.T, rate float64) *faultproxy.Proxy {
	t.Helper()
	upstream := os.Getenv("AWS_ENDPOINT_URL_S3")
	if upstream == "" {
		t.Fatal("AWS_ENDPOINT_URL_S3 is not set: the fault proxy needs the test MinIO behind it")
	}
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("S3BLK_FAULT_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("S3BLK_FAULT_SEED=%q: %v", s, err)
		}
	}
	p, err := faultproxy.New(faultproxy.Config{
		Upstream:      upstream,
		Seed:          seed,
		SlowDown:      rate,
		InternalError: rate,
		ResetBefore:   rate,
		ResetAfter:    rate,
		TruncateBody:  2 * rate,
		Stall:         rate / 2,
		StallFor:      20 * time.Second,
		Latency:       0.2,
		MaxLatency:    20 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	p.SetEnabled(false)
	t.Logf("fault proxy %s in front of %s, rate %.3f per kind, S3BLK_FAULT_SEED=%d", p.URL, upstream, rate, seed)
	t.Cleanup(func() {
		t.Logf("fault proxy: %s", p.Summary())
		p.Close()
	})
	return p
}

// requestTimeout is --request-timeout for every command through the proxy:
// short, so that stalls cost little, yet far above MinIO's answer times.
const requestTimeout = "2s"

// everyKindFaulted fails the test unless p injected every kind of fault,
// and the clients timed out of stalls rather than sitting them out.
func everyKindFaulted(t *testing.T, p *faultproxy.Proxy) {
	t.Helper()
	for _, k := range faultproxy.Kinds {
		if p.Count(k) == 0 {
			t.Errorf("the proxy injected no %s fault in %d requests (%s)", k, p.Requests(), p.Summary())
		}
	}
	if p.StallsAbandoned() == 0 {
		t.Errorf("no stalled request was abandoned by the client: per-request timeouts do not work (%s)", p.Summary())
	}
}

// retryLogLine matches what the daemon logs about S3 requests it retried.
var retryLogLine = regexp.MustCompile(`(?m)^.*level=(INFO|WARN).*retr(ied|y|ying).*$`)

// TestFaultsRsync: ext4 on a volume mounted through the fault proxy takes
// an rsync of part of the Go tree (all of it with S3BLK_SOAK=1), is read
// back through the proxy, and after a remount without the proxy is byte
// for byte the tree, with e2fsck clean. The proxy must have injected every
// kind of fault, the stats file must count retries, and the daemon log must
// say so.
func TestFaultsRsync(t *testing.T) {
	h := newHarness(t)
	rate, subtrees := 0.02, []string{"cmd", "crypto", "net", "runtime"}
	if soak() {
		rate, subtrees = 0.05, []string{"."}
	}
	proxy := newFaultProxy(t, rate)
	url := h.url("faults")
	goSrc := goSourceTree(t)
	var sources []string
	for _, d := range subtrees {
		sources = append(sources, filepath.Join(goSrc, d))
	}
	// 256K blocks: four times the requests of 1M, so every fault kind hits.
	h.must("create", url, "--size", "1G", "--block-size", "256K")

	// Write through the faults. A small cache makes ext4's partial block
	// writes read blocks back (through the faults too).
	logWrite := filepath.Join(t.TempDir(), "write.log")
	proxy.SetEnabled(true) // from the start: the lock's create, the listing, mkfs
	mnt := h.mount(url, "--endpoint", proxy.URL, "--request-timeout", requestTimeout, "--log-file", logWrite, "--cache-size", "32M")
	start := time.Now()
	sh(t, "mkfs.ext4 -q -F "+mnt+"/file")
	fs := h.loopMount(mnt + "/file")
	sh(t, fmt.Sprintf("mkdir %s/src && rsync -a %s %s/src/ && sync", fs, strings.Join(sources, " "), fs))
	retries, errs := statValue(t, mnt, "retries"), statValue(t, mnt, "errors")
	sh(t, "umount "+fs)
	h.must("umount", mnt) // still through the faults: the final flush and the lock's delete
	t.Logf("write phase: %s; retries %d, errors %d; %s", time.Since(start).Round(time.Second), retries, errs, proxy.Summary())
	if retries == 0 {
		t.Errorf("the stats file counted no retries under faults")
	}
	logData, err := os.ReadFile(logWrite)
	if err != nil {
		t.Fatal(err)
	}
	if lines := retryLogLine.FindAllString(string(logData), -1); len(lines) == 0 {
		t.Errorf("the daemon log does not mention any retry:\n%s", logData)
	} else {
		t.Logf("daemon log: %d lines about retries, e.g. %s", len(lines), lines[0])
	}

	// Read everything back through the faults, read-only.
	logRead := filepath.Join(t.TempDir(), "read.log")
	mnt2 := h.mount(url, "--endpoint", proxy.URL, "--request-timeout", requestTimeout, "--log-file", logRead, "--read-only", "--cache-size", "32M")
	start = time.Now()
	fs2 := h.loopMount(mnt2+"/file", "ro")
	diffTrees(t, sources, fs2+"/src")
	readRetries := statValue(t, mnt2, "retries")
	sh(t, "umount "+fs2)
	h.must("umount", mnt2)
	proxy.SetEnabled(false)
	t.Logf("read phase: %s; retries %d; %s", time.Since(start).Round(time.Second), readRetries, proxy.Summary())
	if readRetries == 0 {
		t.Errorf("reading back through the faults counted no retries")
	}

	// Without the proxy: e2fsck clean, the tree byte for byte.
	mnt3 := h.mount(url, "--read-only")
	if out, err := exec.Command("e2fsck", "-fn", mnt3+"/file").CombinedOutput(); err != nil {
		t.Fatalf("e2fsck -fn after writing through faults: %v\n%s", err, out)
	}
	fs3 := h.loopMount(mnt3+"/file", "ro")
	diffTrees(t, sources, fs3+"/src")
	everyKindFaulted(t, proxy)
}

// diffTrees compares every source directory with its copy under dst
// (rsync put each at dst/<its base name>).
func diffTrees(t *testing.T, sources []string, dst string) {
	t.Helper()
	for _, s := range sources {
		sh(t, fmt.Sprintf("diff -r %s %s/%s", s, dst, filepath.Base(filepath.Clean(s))))
	}
}

// fileSHA256 is the hex SHA-256 of a file.
func fileSHA256(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// retriedCount extracts "N requests retried" from a put or get's stderr.
var retriedCount = regexp.MustCompile(`(\d+) requests? retried`)

// TestFaultsStream: a put of a few hundred MiB of random data, piped on
// stdin, through the fault proxy, then a get through the proxy and one
// without: both give back the same SHA-256. Every kind of fault must have
// happened, and put and get must tell the user they retried.
func TestFaultsStream(t *testing.T) {
	s := newStreamHarness(t)
	rate, mib := 0.02, 300
	if soak() {
		rate, mib = 0.05, 2048
	}
	proxy := newFaultProxy(t, rate)
	proxy.SetEnabled(true)
	src := randomFile(t, mib)
	want := fileSHA256(t, src)
	url := s.url("faulty-stream")

	f, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	start := time.Now()
	// struct{io.Reader} hides the *os.File, so s3blk reads a pipe.
	// 512K chunks: 600 PUTs and 600 GETs for 300 MiB, so every fault kind hits.
	r := s.pipe(struct{ io.Reader }{f}, io.Discard, "put", url, "--endpoint", proxy.URL, "--request-timeout", requestTimeout, "--chunk-size", "512K")
	if r.code != 0 {
		t.Fatalf("put through faults: exit %d after %s: %s", r.code, r.took.Round(time.Second), r.stderr)
	}
	t.Logf("put %d MiB through faults: %s; %s\nstderr:\n%s", mib, r.took.Round(time.Second), proxy.Summary(), lastLines(r.stderr, 5))
	if m := retriedCount.FindStringSubmatch(r.stderr); m == nil || m[1] == "0" {
		t.Errorf("put's output does not say it retried requests:\n%s", lastLines(r.stderr, 10))
	}

	getSum := func(args ...string) (string, result) {
		out := filepath.Join(t.TempDir(), "out")
		of, err := os.Create(out)
		if err != nil {
			t.Fatal(err)
		}
		// struct{io.Writer} hides the *os.File, so s3blk writes a pipe.
		res := s.pipe(nil, struct{ io.Writer }{of}, append([]string{"get", url}, args...)...)
		of.Close()
		if res.code != 0 {
			t.Fatalf("get %v: exit %d: %s", args, res.code, res.stderr)
		}
		sum := fileSHA256(t, out)
		os.Remove(out)
		return sum, res
	}
	sum, res := getSum("--endpoint", proxy.URL, "--request-timeout", requestTimeout)
	t.Logf("get through faults: %s; %s\nstderr:\n%s", res.took.Round(time.Second), proxy.Summary(), lastLines(res.stderr, 5))
	if sum != want {
		t.Fatalf("get through faults: SHA-256 %s, put %s", sum, want)
	}
	if m := retriedCount.FindStringSubmatch(res.stderr); m == nil || m[1] == "0" {
		t.Errorf("get's output does not say it retried requests:\n%s", lastLines(res.stderr, 10))
	}
	proxy.SetEnabled(false)
	if sum, _ := getSum(); sum != want {
		t.Fatalf("get without the proxy: SHA-256 %s, put %s", sum, want)
	}
	everyKindFaulted(t, proxy)
	t.Logf("total %s", time.Since(start).Round(time.Second))
}

// lastLines returns the last n lines of s.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

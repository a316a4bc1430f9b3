// Package e2e runs the s3blk binary the way users do: against a real MinIO,
// the kernel's FUSE, loop devices, ext4, rsync and tar. `make test` provides
// MinIO and root; without them these tests fail (S3BLK_REQUIRE_MINIO=1) or
// skip (a plain `go test`).
package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/s3blk/s3blk/internal/testenv"
)

var s3blkBin string

func TestMain(m *testing.M) {
	s3blkBin = os.Getenv("S3BLK_BIN")
	if s3blkBin == "" {
		dir, err := os.MkdirTemp("", "s3blk-e2e-")
		if err != nil {
			panic(err)
		}
		s3blkBin = filepath.Join(dir, "s3blk")
		out, err := exec.Command("go", "build", "-o", s3blkBin, "github.com/s3blk/s3blk/cmd/s3blk").CombinedOutput()
		if err != nil {
			fmt.Fprintf(os.Stderr, "building s3blk: %v\n%s", err, out)
			os.Exit(1)
		}
		defer os.RemoveAll(dir)
	}
	code := m.Run()
	os.Exit(code)
}

// harness is one test's bucket, mounts and helpers.
type harness struct {
	t      *testing.T
	bucket string
	client *s3.Client
	pidsMu *sync.Mutex    // shared by copies (harness.in): parallel subtests mount at once
	pids   map[string]int // mountpoint -> daemon PID, as `s3blk mount` reported it
	// passFile holds the passphrase every command gets by default (through
	// S3BLK_PASSPHRASE_FILE), so volumes are encrypted as users' are.
	passFile string
}

// testPassphrase is the content of harness.passFile.
const testPassphrase = "e2e passphrase: correct horse battery staple"

// writePassFile writes a mode-0600 passphrase file and returns its path.
func writePassFile(t *testing.T, pass string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "passphrase")
	if err := os.WriteFile(f, []byte(pass+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	testenv.NeedRoot(t)
	return &harness{t: t, bucket: testenv.Bucket(t), client: testenv.S3Client(t), pids: map[string]int{}, pidsMu: new(sync.Mutex),
		passFile: writePassFile(t, testPassphrase)}
}

func (h *harness) url(name string) string { return "s3://" + h.bucket + "/" + name }

type result struct {
	stdout, stderr string
	code           int
	took           time.Duration
}

// s3blkEnv runs the binary with extra environment variables ("K=V"), which
// override the defaults (no IMDS, the harness passphrase file).
func (h *harness) s3blkEnv(env []string, args ...string) result {
	h.t.Helper()
	return h.runBinary(s3blkBin, env, args...)
}

// runBinary is s3blkEnv with another build of s3blk (a race build, say).
func (h *harness) runBinary(bin string, env []string, args ...string) result {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	// Never let the SDK look for EC2 instance credentials from a test.
	cmd.Env = append(append(os.Environ(), "AWS_EC2_METADATA_DISABLED=true", "S3BLK_PASSPHRASE_FILE="+h.passFile), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String(), took: time.Since(start)}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		h.t.Fatalf("running s3blk %v: %v", args, err)
	}
	return r
}

func (h *harness) s3blk(args ...string) result { h.t.Helper(); return h.s3blkEnv(nil, args...) }

// must runs s3blk and fails the test unless it exits 0.
func (h *harness) must(args ...string) string {
	h.t.Helper()
	r := h.s3blk(args...)
	if r.code != 0 {
		h.t.Fatalf("s3blk %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

// sh runs a shell command and fails the test on error.
func sh(t *testing.T, script string) string {
	t.Helper()
	out, err := exec.Command("bash", "-euo", "pipefail", "-c", script).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", script, err, out)
	}
	return string(out)
}

// mount mounts url at a fresh directory and unmounts it (waiting for the
// daemon) when the test ends.
func (h *harness) mount(url string, extra ...string) string {
	h.t.Helper()
	mnt := filepath.Join(h.t.TempDir(), "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		h.t.Fatal(err)
	}
	h.mountAt(url, mnt, extra...)
	return mnt
}

func (h *harness) mountAt(url, mnt string, extra ...string) {
	h.t.Helper()
	h.mountWith(s3blkBin, url, mnt, extra...)
}

// mountWith is mountAt with another build of s3blk.
func (h *harness) mountWith(bin, url, mnt string, extra ...string) {
	h.t.Helper()
	r := h.runBinary(bin, nil, append([]string{"mount", url, mnt}, extra...)...)
	if r.code != 0 {
		h.t.Fatalf("s3blk mount %s %s: exit %d: %s", url, mnt, r.code, r.stderr)
	}
	m := regexp.MustCompile(`daemon pid (\d+)`).FindStringSubmatch(r.stderr)
	if m == nil {
		h.t.Fatalf("s3blk mount did not report the daemon PID: %q", r.stderr)
	}
	pid, _ := strconv.Atoi(m[1])
	h.pidsMu.Lock()
	h.pids[mnt] = pid
	h.pidsMu.Unlock()
	h.t.Cleanup(func() {
		if isMounted(mnt) {
			if r := h.s3blk("umount", mnt); r.code != 0 {
				h.t.Logf("cleanup: s3blk umount %s: %s", mnt, r.stderr)
				exec.Command("umount", "-l", mnt).Run()
			}
		}
	})
}

// loopMount mounts the ext4 filesystem in file and unmounts it at the end.
func (h *harness) loopMount(file string, opts ...string) string {
	h.t.Helper()
	dir := filepath.Join(h.t.TempDir(), "fs")
	os.Mkdir(dir, 0o755)
	o := "loop"
	if len(opts) > 0 {
		o += "," + strings.Join(opts, ",")
	}
	sh(h.t, fmt.Sprintf("mount -o %s %q %q", o, file, dir))
	h.t.Cleanup(func() {
		if isMounted(dir) {
			exec.Command("umount", dir).Run()
		}
	})
	return dir
}

func isMounted(dir string) bool {
	return exec.Command("mountpoint", "-q", dir).Run() == nil
}

// eachObject calls fn for every object under prefix in the test bucket, in
// key order.
func (h *harness) eachObject(prefix string, fn func(key, etag string, size int64)) {
	h.t.Helper()
	p := s3.NewListObjectsV2Paginator(h.client, &s3.ListObjectsV2Input{Bucket: aws.String(h.bucket), Prefix: aws.String(prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(context.Background())
		if err != nil {
			h.t.Fatal(err)
		}
		for _, o := range page.Contents {
			fn(aws.ToString(o.Key), aws.ToString(o.ETag), aws.ToInt64(o.Size))
		}
	}
}

// objects lists the keys under prefix in the test bucket, sorted.
func (h *harness) objects(prefix string) []string {
	h.t.Helper()
	var keys []string
	h.eachObject(prefix, func(key, _ string, _ int64) { keys = append(keys, key) })
	sort.Strings(keys)
	return keys
}

func (h *harness) blockObjects(vol string) int {
	return len(h.objects(vol + "/blocks/"))
}

// daemonPID returns the PID of the daemon serving mnt.
func (h *harness) daemonPID(mnt string) int {
	h.t.Helper()
	h.pidsMu.Lock()
	pid, ok := h.pids[mnt]
	h.pidsMu.Unlock()
	if !ok {
		h.t.Fatalf("no daemon mounted at %s by this test", mnt)
	}
	return pid
}

// waitGone waits for a process to exit.
func waitGone(t *testing.T, pid int, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err != nil {
			return
		}
		if data, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); bytes.Contains(data, []byte(") Z ")) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("process %d still running after %s", pid, limit)
}

// stat returns one counter from a mount's stats file.
func statValue(t *testing.T, mnt, name string) int64 {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(mnt, "stats"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == name {
			n, _ := strconv.ParseInt(f[1], 10, 64)
			return n
		}
	}
	t.Fatalf("no %s in stats:\n%s", name, data)
	return 0
}

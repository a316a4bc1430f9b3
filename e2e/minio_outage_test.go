package e2e

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// privateMinIO is a MinIO of the test's own (scripts/minio.sh with a
// private state directory), so that stopping it cannot disturb tests of
// other packages that share the main one.
type privateMinIO struct {
	t        *testing.T
	dir      string
	endpoint string
}

func startPrivateMinIO(t *testing.T) *privateMinIO {
	t.Helper()
	m := &privateMinIO{t: t, dir: filepath.Join(t.TempDir(), "minio")}
	out := m.script("start")
	match := regexp.MustCompile(`AWS_ENDPOINT_URL_S3=(\S+)`).FindStringSubmatch(out)
	if match == nil {
		t.Fatalf("minio.sh start printed no endpoint: %s", out)
	}
	m.endpoint = match[1]
	t.Cleanup(func() { m.script("stop") })
	return m
}

func (m *privateMinIO) script(cmd string) string {
	m.t.Helper()
	c := exec.Command("../scripts/minio.sh", cmd)
	c.Env = append(os.Environ(), "S3BLK_MINIO_DIR="+m.dir)
	var stderr strings.Builder
	c.Stderr = &stderr
	out, err := c.Output()
	if err != nil {
		m.t.Fatalf("minio.sh %s: %v: %s", cmd, err, stderr.String())
	}
	return string(out)
}

func (m *privateMinIO) pid() int {
	data, err := os.ReadFile(filepath.Join(m.dir, "pid"))
	if err != nil {
		m.t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(data)))
	return pid
}

// useFor points the harness's bucket and client at this MinIO. Commands
// then need "--endpoint", m.endpoint.
func (m *privateMinIO) useFor(h *harness) {
	cfg, err := config.LoadDefaultConfig(context.Background())
	if err != nil {
		m.t.Fatal(err)
	}
	h.client = s3.NewFromConfig(cfg, func(o *s3.Options) {
		o.BaseEndpoint = aws.String(m.endpoint)
		o.UsePathStyle = true
	})
	h.bucket = "outage"
	if _, err := h.client.CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String(h.bucket)}); err != nil {
		m.t.Fatal(err)
	}
}

// outage is one way for S3 to go away: "down" kills MinIO (connections are
// refused) and starts it again on the same port and data; "frozen" stops it
// with SIGSTOP (connections hang, which only timeouts can detect).
type outage struct {
	name       string
	start, end func(m *privateMinIO)
}

var outages = []outage{
	{"down", func(m *privateMinIO) { m.script("down") }, func(m *privateMinIO) { m.script("up") }},
	{"frozen", func(m *privateMinIO) { syscall.Kill(m.pid(), syscall.SIGSTOP) },
		func(m *privateMinIO) { syscall.Kill(m.pid(), syscall.SIGCONT) }},
}

// outageLength is 30 s, as issue 5 asks; S3BLK_OUTAGE overrides it.
func outageLength(t *testing.T) time.Duration {
	if s := os.Getenv("S3BLK_OUTAGE"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("S3BLK_OUTAGE=%q: %v", s, err)
		}
		return d
	}
	return 30 * time.Second
}

// rssKiB returns a process's resident set size from /proc.
func rssKiB(t *testing.T, pid int, field string) int64 {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if rest, ok := strings.CutPrefix(s.Text(), field+":"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return n
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}

// TestOutageDuringLargeWrite stops MinIO for 30 s in the middle of a
// 384 MiB `dd conv=fsync` into the mounted file, once killed and once
// frozen (where only --request-timeout notices). The writer blocks at the
// dirty bound and a reader of uncached blocks waits, instead of failing;
// the daemon's memory stays within the cache bound; and when MinIO is back
// the read completes, the dd completes, its fsync succeeds and every byte
// reads back after a remount.
func TestOutageDuringLargeWrite(t *testing.T) {
	const cacheMiB, fileMiB = 64, 384
	for _, o := range outages {
		t.Run(o.name, func(t *testing.T) {
			h := newHarness(t)
			m := startPrivateMinIO(t)
			m.useFor(h)
			ep := []string{"--endpoint", m.endpoint}
			url := h.url("vol")
			h.must(append([]string{"create", url, "--size", "1G", "--block-size", "1M"}, ep...)...)
			// Blocks stored before the outage and not cached during it, for
			// a reader to wait on.
			readBack := randomFile(t, 16)
			mnt0 := h.mount(url, ep...)
			sh(t, fmt.Sprintf("dd if=%s of=%s/file bs=1M seek=900 conv=fsync,notrunc status=none", readBack, mnt0))
			h.must("umount", mnt0)

			logFile := filepath.Join(t.TempDir(), "daemon.log")
			// A frozen server is noticed by the request timeout alone.
			mnt := h.mount(url, append(ep, "--cache-size", fmt.Sprint(cacheMiB, "M"), "--log-file", logFile,
				"--request-timeout", "5s")...)
			pid := h.daemonPID(mnt)
			src := randomFile(t, fileMiB)

			ddDone, ddOut := startCommand(t, exec.Command("dd", "if="+src, "of="+mnt+"/file", "bs=1M", "conv=fsync,notrunc", "status=none"))
			// Let the write get going: some blocks stored, more in flight.
			for deadline := time.Now().Add(time.Minute); statValue(t, mnt, "uploads") < 16; {
				if time.Now().After(deadline) {
					t.Fatal("no uploads within a minute")
				}
				time.Sleep(20 * time.Millisecond)
			}

			o.start(m)
			readerDone, readerOut := startCommand(t, exec.Command("cmp", "-n", "16777216", "-i", "0:"+fmt.Sprint(900<<20), readBack, mnt+"/file"))
			length := outageLength(t)
			outageStart := time.Now()
			rssAtStart := rssKiB(t, pid, "VmRSS")
			var rssMax, dirtyMax int64
			for time.Since(outageStart) < length {
				select {
				case err := <-ddDone:
					o.end(m)
					t.Fatalf("dd returned during the outage (err %v): %s", err, ddOut)
				case err := <-readerDone:
					o.end(m)
					t.Fatalf("a read of stored blocks returned during the outage (err %v): %s", err, readerOut)
				case <-time.After(500 * time.Millisecond):
				}
				rssMax = max(rssMax, rssKiB(t, pid, "VmRSS"))
				dirtyMax = max(dirtyMax, statValue(t, mnt, "dirty_bytes"))
			}
			retriesDuring := statValue(t, mnt, "retries")
			o.end(m)
			t.Logf("%s for %s: RSS %d MiB at the start, %d MiB at most; dirty at most %d MiB; %d retries; dd still blocked",
				o.name, length, rssAtStart>>10, rssMax>>10, dirtyMax>>20, retriesDuring)

			select {
			case err := <-ddDone:
				if err != nil {
					t.Fatalf("dd after the outage: %v: %s", err, ddOut)
				}
			case <-time.After(5 * time.Minute):
				t.Fatal("dd did not finish within 5 minutes of MinIO's return")
			}
			if err := <-readerDone; err != nil {
				t.Fatalf("the read waiting out the outage: %v: %s", err, readerOut)
			}
			t.Logf("dd conv=fsync completed %s after MinIO returned", time.Since(outageStart.Add(length)).Round(100*time.Millisecond))
			if dirtyMax > cacheMiB<<20 {
				t.Errorf("dirty bytes reached %d MiB, above the %d MiB cache", dirtyMax>>20, cacheMiB)
			}
			// The cache bounds memory; the allowance covers the Go runtime,
			// FUSE buffers and in-flight request bodies.
			if limit := int64(cacheMiB+96) << 10; rssMax > limit {
				t.Errorf("daemon RSS reached %d MiB during the outage, above cache + 96 MiB", rssMax>>10)
			}
			if retriesDuring == 0 {
				t.Error("stats showed no retries during the outage")
			}
			if log, _ := os.ReadFile(logFile); !strings.Contains(string(log), "retrying") {
				t.Errorf("the daemon log does not mention retrying: %s", log)
			}

			h.must("umount", mnt)
			mnt2 := h.mount(url, ep...)
			sh(t, fmt.Sprintf("cmp -n %d %s %s/file", fileMiB<<20, src, mnt2))
		})
	}
}

// TestOutageDuringStreamPut stops MinIO for 30 s in the middle of a stream
// put. With the default retries the put rides it out and the stream reads
// back intact; with --retries 1 the put fails loudly and the stream is left
// INCOMPLETE, which get refuses.
func TestOutageDuringStreamPut(t *testing.T) {
	h := newHarness(t)
	m := startPrivateMinIO(t)
	m.useFor(h)
	ep := []string{"--endpoint", m.endpoint}
	src := randomFile(t, 256)

	start := func(name string, extra ...string) (*exec.Cmd, *strings.Builder, chan error) {
		args := append([]string{"put", h.url(name), "--limit-rate", "32M"}, append(ep, extra...)...)
		cmd := exec.Command(s3blkBin, args...)
		cmd.Env = append(os.Environ(), "AWS_EC2_METADATA_DISABLED=true", "S3BLK_PASSPHRASE_FILE="+h.passFile)
		in, err := os.Open(src)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { in.Close() })
		cmd.Stdin = in
		done, stderr := startCommand(t, cmd)
		return cmd, stderr, done
	}
	// An outage of the default put, 2 s in (about 64 MiB sent).
	o := outages[0]
	_, stderr, done := start("resumes")
	time.Sleep(2 * time.Second)
	o.start(m)
	time.Sleep(outageLength(t))
	o.end(m)
	if err := <-done; err != nil {
		t.Fatalf("put with default retries across the outage: %v\n%s", err, stderr)
	}
	if !strings.Contains(stderr.String(), "retrying") {
		t.Errorf("put's stderr does not show the retries: %s", stderr)
	}
	sh(t, fmt.Sprintf("S3BLK_PASSPHRASE_FILE=%s %s get %s %s | cmp - %s", h.passFile, s3blkBin, h.url("resumes"), strings.Join(ep, " "), src))

	// With --retries 1 the same outage ends the put, loudly.
	_, stderr, done = start("fails", "--retries", "1")
	time.Sleep(2 * time.Second)
	o.start(m)
	var err error
	select {
	case err = <-done:
	case <-time.After(3 * time.Minute):
		o.end(m)
		t.Fatal("put --retries 1 still running 3 minutes into the outage")
	}
	o.end(m)
	if err == nil || !strings.Contains(stderr.String(), "INCOMPLETE") {
		t.Fatalf("put --retries 1 during an outage: %v, stderr %q; want a failure naming the stream INCOMPLETE", err, stderr)
	}
	t.Logf("put --retries 1: %s", lastLine(stderr.String()))
	if ls := h.must(append([]string{"ls", "s3://" + h.bucket + "/"}, ep...)...); !regexp.MustCompile(`(?m)^fails\b.*INCOMPLETE`).MatchString(ls) {
		t.Errorf("ls after the failed put:\n%s\nwant the stream listed as INCOMPLETE", ls)
	}
	if r := h.s3blk(append([]string{"get", h.url("fails")}, ep...)...); r.code == 0 || r.stdout != "" {
		t.Errorf("get of the INCOMPLETE stream: exit %d, %d bytes written", r.code, len(r.stdout))
	}
}

// startCommand starts cmd with its output collected, and returns a channel
// that gets its exit error.
func startCommand(t *testing.T, cmd *exec.Cmd) (chan error, *strings.Builder) {
	t.Helper()
	out := &strings.Builder{}
	if cmd.Stdout == nil {
		cmd.Stdout = out
	}
	cmd.Stderr = out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	return done, out
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

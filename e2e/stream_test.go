package e2e

// Stream mode end to end: `s3blk put`, `get`, `ls` and `rm` run as users run
// them, through real pipes, against MinIO.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
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
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/s3blk/s3blk/crypto"
)

const streamChunk = 64 << 10 // --chunk-size 64K: many chunks from little data

// streamHarness runs stream commands with a passphrase given explicitly
// (S3BLK_PASSPHRASE_FILE), whatever the harness's default.
type streamHarness struct {
	*harness
	env []string
	pw  string // the passphrase file
}

func newStreamHarness(t *testing.T) *streamHarness {
	h := newHarness(t)
	pw := writeSecret(t, "stream passphrase")
	return &streamHarness{harness: h, pw: pw, env: []string{"AWS_EC2_METADATA_DISABLED=true", "S3BLK_PASSPHRASE_FILE=" + pw}}
}

// writeSecret writes a 0600 passphrase file.
func writeSecret(t *testing.T, secret string) string {
	f := filepath.Join(t.TempDir(), "passphrase")
	if err := os.WriteFile(f, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// pipe runs s3blk with stdin from in (through a pipe, when not nil) and
// stdout into out (through a pipe).
func (s *streamHarness) pipe(in io.Reader, out io.Writer, args ...string) result {
	s.t.Helper()
	cmd := exec.Command(s3blkBin, args...)
	cmd.Env = append(os.Environ(), s.env...)
	var errb bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = in, out, &errb
	start := time.Now()
	err := cmd.Run()
	r := result{stderr: errb.String(), took: time.Since(start)}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		s.t.Fatalf("running s3blk %v: %v", args, err)
	}
	return r
}

func (s *streamHarness) put(data []byte, url string, flags ...string) result {
	s.t.Helper()
	return s.pipe(bytes.NewReader(data), io.Discard, append([]string{"put", url, "--quiet"}, flags...)...)
}

func (s *streamHarness) mustPut(data []byte, url string, flags ...string) {
	s.t.Helper()
	if r := s.put(data, url, flags...); r.code != 0 {
		s.t.Fatalf("put %s %v: exit %d: %s", url, flags, r.code, r.stderr)
	}
}

func (s *streamHarness) get(url string, flags ...string) ([]byte, result) {
	s.t.Helper()
	var out bytes.Buffer
	r := s.pipe(nil, &out, append([]string{"get", url, "--quiet"}, flags...)...)
	return out.Bytes(), r
}

func (s *streamHarness) mustGet(url string) []byte {
	s.t.Helper()
	out, r := s.get(url)
	if r.code != 0 {
		s.t.Fatalf("get %s: exit %d: %s", url, r.code, r.stderr)
	}
	return out
}

// streamData is n pseudorandom bytes, partly compressible.
func streamData(n int, seed uint64) []byte {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{byte(seed), 1}).Read(b)
	for i := 0; i < n; i += 2 {
		b[i] = 'a' + b[i]%8
	}
	return b
}

// chunkKeys lists a stream's chunk objects, in order.
func (s *streamHarness) chunkKeys(name string) []string {
	var out []string
	for _, k := range s.objects(name + "/") {
		if regexp.MustCompile(`/\d{12}$`).MatchString(k) {
			out = append(out, k)
		}
	}
	return out
}

func (s *streamHarness) getObject(key string) []byte {
	s.t.Helper()
	out, err := s.client.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(key)})
	if err != nil {
		s.t.Fatal(err)
	}
	defer out.Body.Close()
	data, err := io.ReadAll(out.Body)
	if err != nil {
		s.t.Fatal(err)
	}
	return data
}

func (s *streamHarness) putObject(key string, data []byte) {
	s.t.Helper()
	_, err := s.client.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(key), Body: bytes.NewReader(data)})
	if err != nil {
		s.t.Fatal(err)
	}
}

func (s *streamHarness) deleteObject(key string) {
	s.t.Helper()
	if _, err := s.client.DeleteObject(context.Background(), &s3.DeleteObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(key)}); err != nil {
		s.t.Fatal(err)
	}
}

func (s *streamHarness) hasManifest(name string) bool {
	for _, k := range s.objects(name + "/") {
		if k == name+"/manifest" {
			return true
		}
	}
	return false
}

// oneLine fails unless stderr is exactly one line containing want.
func oneLine(t *testing.T, r result, want string) {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
	switch {
	case r.code == 0:
		t.Fatalf("exit 0, want failure; stderr %q", r.stderr)
	case len(lines) != 1:
		t.Fatalf("want one line on stderr, got %d:\n%s", len(lines), r.stderr)
	case !strings.Contains(lines[0], want):
		t.Fatalf("stderr %q does not mention %q", lines[0], want)
	}
}

// TestStreamRoundTrip: sizes 0, 1, chunk-1, chunk, chunk+1 and many chunks
// plus 7 come back byte for byte, encrypted+compressed (the default, and
// with each cipher) and raw; raw chunks concatenated in key order are the
// stream.
func TestStreamRoundTrip(t *testing.T) {
	s := newStreamHarness(t)
	sizes := []int{0, 1, streamChunk - 1, streamChunk, streamChunk + 1, 20*streamChunk + 7}
	for _, mode := range []struct {
		name  string
		flags []string
	}{
		{"default", nil},
		{"xaes", []string{"--cipher", crypto.XAES256GCM}},
		{"xchacha", []string{"--cipher", crypto.XChaCha20Poly1305}},
		{"raw", []string{"--no-encryption", "--no-compression"}},
	} {
		for _, size := range sizes {
			name := fmt.Sprintf("%s-%d", mode.name, size)
			t.Run(name, func(t *testing.T) {
				data := streamData(size, uint64(size))
				url := s.url("rt/" + name)
				s.mustPut(data, url, append([]string{"--chunk-size", "64K"}, mode.flags...)...)
				if got := s.mustGet(url); !bytes.Equal(got, data) {
					t.Fatalf("get returned %d bytes that differ from the %d put", len(got), len(data))
				}
				if want := map[string]string{"xaes": crypto.XAES256GCM, "xchacha": crypto.XChaCha20Poly1305}[mode.name]; want != "" {
					var m struct{ Encryption string }
					if err := json.Unmarshal(s.getObject("rt/"+name+"/manifest"), &m); err != nil || m.Encryption != want {
						t.Fatalf("the manifest names encryption %q, want %s (%v)", m.Encryption, want, err)
					}
				}
				keys := s.chunkKeys("rt/" + name)
				if want := (size + streamChunk - 1) / streamChunk; len(keys) != want || !s.hasManifest("rt/"+name) {
					t.Fatalf("%d chunk objects, want %d (manifest: %v)", len(keys), want, s.hasManifest("rt/"+name))
				}
				if mode.name == "raw" {
					var cat []byte
					for _, k := range keys {
						cat = append(cat, s.getObject(k)...)
					}
					if !bytes.Equal(cat, data) {
						t.Fatal("raw chunk objects concatenated differ from the input")
					}
				}
			})
		}
	}
}

// TestStreamDamage: a chunk deleted, corrupted (one byte flipped) or two
// chunks swapped make get fail, saying the output written is bad, after
// writing only good bytes.
func TestStreamDamage(t *testing.T) {
	s := newStreamHarness(t)
	data := streamData(8*streamChunk+7, 1)
	for _, mode := range []struct {
		name  string
		flags []string
	}{{"default", nil}, {"raw", []string{"--no-encryption", "--no-compression"}}} {
		for _, d := range []struct {
			name string
			do   func(keys []string)
		}{
			{"deleted", func(keys []string) { s.deleteObject(keys[3]) }},
			{"flipped", func(keys []string) {
				obj := s.getObject(keys[3])
				obj[len(obj)/2] ^= 1
				s.putObject(keys[3], obj)
			}},
			{"swapped", func(keys []string) {
				a, b := s.getObject(keys[3]), s.getObject(keys[5])
				s.putObject(keys[3], b)
				s.putObject(keys[5], a)
			}},
		} {
			t.Run(mode.name+"-"+d.name, func(t *testing.T) {
				name := "dmg/" + mode.name + "-" + d.name
				s.mustPut(data, s.url(name), append([]string{"--chunk-size", "64K"}, mode.flags...)...)
				d.do(s.chunkKeys(name))
				out, r := s.get(s.url(name))
				if r.code == 0 {
					t.Fatal("get of a damaged stream exited 0")
				}
				if !bytes.Equal(out, data[:len(out)]) || len(out) > 3*streamChunk {
					t.Fatalf("get wrote %d bytes, not a good prefix before chunk 3", len(out))
				}
				if !strings.Contains(r.stderr, "chunk 3") || !strings.Contains(r.stderr, "must not be used") {
					t.Fatalf("get's error does not name chunk 3 and say the output is bad: %s", r.stderr)
				}
			})
		}
	}
}

// TestStreamKilledPut: a put killed (SIGKILL) or interrupted (SIGTERM)
// mid-stream leaves an INCOMPLETE stream that get refuses, writing
// nothing, and that ls shows.
func TestStreamKilledPut(t *testing.T) {
	s := newStreamHarness(t)
	for _, sig := range []syscall.Signal{syscall.SIGKILL, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			name := "killed-" + strconv.Itoa(int(sig))
			cmd := exec.Command(s3blkBin, "put", s.url(name), "--chunk-size", "64K", "--quiet")
			cmd.Env = append(os.Environ(), s.env...)
			stdin, err := cmd.StdinPipe()
			if err != nil {
				t.Fatal(err)
			}
			var errb bytes.Buffer
			cmd.Stderr = &errb
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			stdin.Write(streamData(10*streamChunk, 2)) // the pipe stays open: put waits for more
			deadline := time.Now().Add(30 * time.Second)
			for len(s.chunkKeys(name)) < 5 {
				if time.Now().After(deadline) {
					t.Fatalf("put stored no chunks: %s", errb.String())
				}
				time.Sleep(20 * time.Millisecond)
			}
			cmd.Process.Signal(sig)
			err = cmd.Wait()
			stdin.Close()
			if err == nil {
				t.Fatal("put exited 0 after the signal")
			}
			if sig == syscall.SIGTERM && !strings.Contains(errb.String(), "INCOMPLETE") {
				t.Fatalf("interrupted put did not say the stream is INCOMPLETE: %s", errb.String())
			}
			if s.hasManifest(name) {
				t.Fatal("a killed put left a manifest")
			}
			out, r := s.get(s.url(name))
			oneLine(t, r, "INCOMPLETE")
			if len(out) != 0 {
				t.Fatalf("get of an INCOMPLETE stream wrote %d bytes", len(out))
			}
			ls := s.must("ls", s.url(""))
			if !regexp.MustCompile(`(?m)^` + name + `\s.*INCOMPLETE`).MatchString(ls) {
				t.Fatalf("ls does not show %s as INCOMPLETE:\n%s", name, ls)
			}
		})
	}
}

// TestStreamProducer: `put URL -- COMMAND` stores COMMAND's output, and
// fails, leaving no complete stream, if COMMAND fails.
func TestStreamProducer(t *testing.T) {
	s := newStreamHarness(t)
	r := s.pipe(nil, io.Discard, "put", s.url("prod-ok"), "--quiet", "--chunk-size", "64K", "--", "sh", "-c", "seq 1 100000")
	if r.code != 0 {
		t.Fatalf("put -- seq: exit %d: %s", r.code, r.stderr)
	}
	want, _ := exec.Command("seq", "1", "100000").Output()
	if got := s.mustGet(s.url("prod-ok")); !bytes.Equal(got, want) {
		t.Fatal("the producer's output did not round-trip")
	}

	r = s.pipe(nil, io.Discard, "put", s.url("prod-bad"), "--quiet", "--", "sh", "-c", "echo partial; exit 3")
	if r.code == 0 || !strings.Contains(r.stderr, "exit status 3") || !strings.Contains(r.stderr, "INCOMPLETE") {
		t.Fatalf("put with a failing producer: exit %d: %s", r.code, r.stderr)
	}
	if s.hasManifest("prod-bad") {
		t.Fatal("a failing producer left a manifest")
	}
	// A producer that dies of a signal after a few chunks.
	r = s.pipe(nil, io.Discard, "put", s.url("prod-killed"), "--quiet", "--chunk-size", "64K", "--",
		"sh", "-c", "head -c 1000000 /dev/zero; kill -9 $$")
	if r.code == 0 || s.hasManifest("prod-killed") {
		t.Fatalf("put with a killed producer: exit %d: %s", r.code, r.stderr)
	}
}

// TestStreamOverwrite: put refuses an existing complete stream without
// --force; with --force the new stream replaces it, old chunks beyond its
// end included.
func TestStreamOverwrite(t *testing.T) {
	s := newStreamHarness(t)
	url := s.url("over")
	old := streamData(10*streamChunk, 1)
	s.mustPut(old, url, "--chunk-size", "64K")
	r := s.put([]byte("new"), url)
	oneLine(t, r, "--force")
	if got := s.mustGet(url); !bytes.Equal(got, old) {
		t.Fatal("a refused put changed the stream")
	}
	data := streamData(2*streamChunk+1, 2)
	s.mustPut(data, url, "--force", "--chunk-size", "64K", "--no-encryption")
	if got := s.mustGet(url); !bytes.Equal(got, data) {
		t.Fatal("the forced put did not replace the stream")
	}
	if n := len(s.chunkKeys("over")); n != 3 {
		t.Fatalf("%d chunk objects after --force, want 3", n)
	}
}

// TestStreamLsRm: ls lists name, size, chunks, creation time and status;
// rm removes complete and INCOMPLETE streams and refuses volumes.
func TestStreamLsRm(t *testing.T) {
	s := newStreamHarness(t)
	s.mustPut(streamData(3*streamChunk+5, 1), s.url("b/one"), "--chunk-size", "64K")
	s.mustPut(nil, s.url("b/empty"), "--no-encryption")
	s.putObject("b/partial/000000000000", []byte("leftover"))
	s.putObject("b/partial/000000000001", []byte("leftover"))
	ls := s.must("ls", s.url("b/"))
	for _, re := range []string{
		`(?m)^NAME\s+SIZE\s+CHUNKS\s+CREATED\s+STATUS$`,
		`(?m)^one\s+192\.0 KiB\s+4\s+\d{4}-\d\d-\d\dT\S+\s+complete$`,
		`(?m)^empty\s+0 B\s+0\s+\S+\s+complete$`,
		`(?m)^partial\s+-\s+2\s+-\s+INCOMPLETE`,
	} {
		if !regexp.MustCompile(re).MatchString(ls) {
			t.Fatalf("ls output does not match %s:\n%s", re, ls)
		}
	}
	for _, name := range []string{"b/one", "b/partial", "b/empty"} {
		s.must("rm", s.url(name))
		if left := s.objects(name + "/"); len(left) != 0 {
			t.Fatalf("rm %s left %v", name, left)
		}
	}
	oneLine(t, s.s3blk("rm", s.url("b/one")), "no stream")
	if r := s.s3blkEnv(s.env, "create", s.url("vol"), "--size", "1M", "--block-size", "64K"); r.code != 0 {
		t.Fatalf("create: %s", r.stderr)
	}
	oneLine(t, s.s3blk("rm", s.url("vol")), "volume")
	oneLine(t, s.s3blk("get", s.url("vol")), "volume")
	if len(s.objects("vol/")) == 0 {
		t.Fatal("rm removed a volume")
	}
}

// TestStreamBadInput: each bad input is one clear line and a non-zero exit,
// and changes nothing in the bucket.
func TestStreamBadInput(t *testing.T) {
	s := newStreamHarness(t)
	s.mustPut([]byte("hello"), s.url("good"))
	wrong := writeSecret(t, "not the passphrase")
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"missing bucket put", []string{"put", "s3://no-such-bucket-s3blk/a"}, "does not exist"},
		{"missing bucket get", []string{"get", "s3://no-such-bucket-s3blk/a"}, "does not exist"},
		{"missing bucket ls", []string{"ls", "s3://no-such-bucket-s3blk/"}, "does not exist"},
		{"missing bucket rm", []string{"rm", "s3://no-such-bucket-s3blk/a"}, "does not exist"},
		{"missing stream get", []string{"get", s.url("nothing")}, "no stream"},
		{"missing stream rm", []string{"rm", s.url("nothing")}, "no stream"},
		{"wrong passphrase", []string{"get", s.url("good"), "--passphrase-file", wrong}, "wrong passphrase"},
		{"empty name put", []string{"put", "s3://" + s.bucket}, "prefix"},
		{"empty name put slash", []string{"put", "s3://" + s.bucket + "/"}, "prefix"},
		{"empty name get", []string{"get", "s3://" + s.bucket + "/"}, "prefix"},
		{"empty name rm", []string{"rm", "s3://" + s.bucket}, "prefix"},
		{"not a store URL", []string{"put", "http://example.com/a"}, "scheme"},
		{"not a URL get", []string{"get", "bucket/name"}, "not a store URL"},
		{"bad chunk size", []string{"put", s.url("x"), "--chunk-size", "10X"}, "not a size"},
		{"chunk size too small", []string{"put", s.url("x"), "--chunk-size", "1K"}, "out of range"},
		{"chunk size too big", []string{"put", s.url("x"), "--chunk-size", "1G"}, "out of range"},
		{"bad retries", []string{"put", s.url("x"), "--retries", "often"}, "forever"},
		{"negative retries", []string{"get", s.url("good"), "--retries", "-1"}, "forever"},
		{"bad concurrency", []string{"get", s.url("good"), "--concurrency", "0"}, "concurrency"},
		{"bad limit", []string{"put", s.url("x"), "--limit-rate", "fast"}, "not a size"},
		{"two URLs", []string{"get", s.url("good"), s.url("x")}, "expected URL"},
		{"nothing after --", []string{"put", s.url("x"), "--"}, "COMMAND"},
		{"producer not found", []string{"put", s.url("x"), "--", "no-such-command-s3blk"}, "producer"},
	}
	before := strings.Join(s.objects(""), "\n")
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out bytes.Buffer
			r := s.pipe(strings.NewReader("data"), &out, c.args...)
			oneLine(t, r, c.want)
			if out.Len() != 0 || r.took > 20*time.Second {
				t.Fatalf("wrote %d bytes to stdout, took %s", out.Len(), r.took)
			}
		})
	}
	if after := strings.Join(s.objects(""), "\n"); after != before {
		t.Fatalf("bad input changed the bucket:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

// maxRSS runs s3blk under /usr/bin/time -v and returns its peak RSS.
func (s *streamHarness) maxRSS(in io.Reader, out io.Writer, args ...string) int64 {
	s.t.Helper()
	cmd := exec.Command("/usr/bin/time", append([]string{"-v", s3blkBin}, args...)...)
	cmd.Env = append(os.Environ(), s.env...)
	var errb bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = in, out, &errb
	if err := cmd.Run(); err != nil {
		s.t.Fatalf("s3blk %v: %v\n%s", args, err, errb.String())
	}
	m := regexp.MustCompile(`Maximum resident set size \(kbytes\): (\d+)`).FindStringSubmatch(errb.String())
	if m == nil {
		s.t.Fatalf("no max RSS in /usr/bin/time output:\n%s", errb.String())
	}
	kb, _ := strconv.ParseInt(m[1], 10, 64)
	return kb << 10
}

// hashingWriter hashes what passes through.
type hashingWriter struct {
	h interface {
		io.Writer
		Sum([]byte) []byte
	}
	n int64
}

func (w *hashingWriter) Write(p []byte) (int, error) { w.n += int64(len(p)); return w.h.Write(p) }

// TestStreamMemory: a 2 GiB put and get (encrypted and compressed, the
// defaults), from and to pipes, stay within chunk size x (concurrency + 1)
// + a fixed slack: memory does not grow with the stream. Random data, so
// zstd cannot shrink it.
func TestStreamMemory(t *testing.T) {
	if _, err := os.Stat("/usr/bin/time"); err != nil {
		t.Fatal("/usr/bin/time is missing: run scripts/install-deps.sh (Debian package time)")
	}
	s := newStreamHarness(t)
	const size = 2 << 30
	const chunk, concurrency = 8 << 20, 4
	// The slack: one more buffer to compress into (put) or decompress into
	// (get), zstd's encoder state (16 MiB), the Go runtime, the binary, the
	// AWS SDK and its connections. (Argon2id's 64 MiB come and go before
	// the buffers are allocated.) Measured: about 81 MiB for both.
	const slack = 56 << 20
	bound := int64(chunk*(concurrency+1) + slack)
	url := s.url("big")

	in := &hashingWriter{h: sha256.New()}
	src := io.TeeReader(io.LimitReader(rand.NewChaCha8([32]byte{42}), size), in)
	start := time.Now()
	putRSS := s.maxRSS(src, io.Discard, "put", url, "--quiet", "--chunk-size", "8M", "--concurrency", strconv.Itoa(concurrency))
	putTook := time.Since(start)

	out := &hashingWriter{h: sha256.New()}
	start = time.Now()
	getRSS := s.maxRSS(nil, out, "get", url, "--quiet", "--concurrency", strconv.Itoa(concurrency))
	getTook := time.Since(start)
	t.Logf("2 GiB put: %s (%.0f MiB/s), max RSS %d MiB; get: %s (%.0f MiB/s), max RSS %d MiB; bound %d MiB",
		putTook.Round(time.Millisecond), float64(size>>20)/putTook.Seconds(), putRSS>>20,
		getTook.Round(time.Millisecond), float64(size>>20)/getTook.Seconds(), getRSS>>20, bound>>20)
	if out.n != size || !bytes.Equal(in.h.Sum(nil), out.h.Sum(nil)) {
		t.Fatalf("get returned %d bytes, not the %d put", out.n, int64(size))
	}
	if putRSS > bound || getRSS > bound {
		t.Fatalf("max RSS put %d MiB, get %d MiB: beyond the %d MiB bound", putRSS>>20, getRSS>>20, bound>>20)
	}
}

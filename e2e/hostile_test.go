package e2e

// Hostile objects: every kind of object s3blk decodes (volume header, lock,
// block, stream manifest, stream chunk) is replaced in the bucket by a
// malformed one, and every command that reads it must fail cleanly: one
// line on stderr naming the problem, no panic, no hang, nothing mounted or
// locked afterwards, no other object changed, and no unbounded read.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
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
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/s3blk/s3blk/codec"
)

const (
	hostileTimeout = 60 * time.Second // a command still running then hangs
	hugeManifest   = 300 << 20        // beyond every object's size limit, the manifest's (256 MiB) too
	maxRSS         = 160 << 20        // far below what reading a huge object takes
)

// hostileRow is one malformed object and what each command must say.
type hostileRow struct {
	name string
	make func(h *harness, orig []byte) []byte // the hostile object, from the original; nil: a copy of the huge junk object
	want string                               // in the one error line
	ok   map[string]string                    // commands that must succeed instead, with a stdout substring
	huge bool                                 // check the peak memory of each command
}

// hostileKind is one kind of object: where it lives and who reads it.
type hostileKind struct {
	name   string
	plain  bool     // unencrypted: run without a passphrase file
	target string   // the volume or stream, under the kind's directory
	key    string   // the object replaced, under target
	cmds   []string // info mount verify passwd read get ls rm
	rows   []hostileRow
}

// run is a command's outcome.
type hrun struct {
	stdout, stderr string
	code           int
	rss            int64
}

// hrunCmd runs s3blk with a hang timeout, measuring its peak RSS.
func hrunCmd(t *testing.T, h *harness, env []string, stdin []byte, args ...string) hrun {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), hostileTimeout)
	defer cancel()
	rssFile := filepath.Join(t.TempDir(), "rss")
	cmd := exec.CommandContext(ctx, "/usr/bin/time", append([]string{"-f", "%M", "-o", rssFile, s3blkBin}, args...)...)
	cmd.Env = append(append(os.Environ(), "AWS_EC2_METADATA_DISABLED=true", "S3BLK_PASSPHRASE_FILE="+h.passFile), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	var out, errb bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = bytes.NewReader(stdin), &out, &errb
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("s3blk %s hung: killed after %s; stderr %q", strings.Join(args, " "), hostileTimeout, errb.String())
	}
	r := hrun{stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("running s3blk %v: %v", args, err)
	}
	// GNU time notes a non-zero status on a line of its own before %M.
	data, _ := os.ReadFile(rssFile)
	if f := strings.Fields(string(data)); len(f) > 0 {
		kb, _ := strconv.ParseInt(f[len(f)-1], 10, 64)
		r.rss = kb << 10
	}
	return r
}

// stackTrace matches what a Go panic or crash prints.
var stackTrace = regexp.MustCompile(`panic|goroutine \d|runtime error|fatal error|\.go:\d+`)

// notErrors are the stderr lines besides the error that a command may
// print: verify lists each bad chunk, and get says it downloads a chunk
// that failed its check once more.
var notErrors = regexp.MustCompile(`^bad chunk \d+: |^time=\S+ level=WARN msg="chunk failed its check; downloading it again"`)

// refusedCleanly checks a failure: non-zero exit, one error line, and the
// problem named on stderr.
func refusedCleanly(t *testing.T, what string, r hrun, want string) {
	t.Helper()
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(r.stderr), "\n") {
		if !notErrors.MatchString(l) {
			lines = append(lines, l)
		}
	}
	switch {
	case stackTrace.MatchString(r.stderr):
		t.Errorf("%s: a crash or stack trace on stderr:\n%s", what, r.stderr)
	case r.code == 0:
		t.Errorf("%s: exit 0, want a refusal mentioning %q; stdout %q", what, want, r.stdout)
	case len(lines) != 1 || !strings.Contains(r.stderr, want) || !strings.HasPrefix(lines[0], "s3blk "):
		t.Errorf("%s: exit %d, stderr %q; want one line mentioning %q", what, r.code, r.stderr, want)
	default:
		t.Logf("%s: exit %d: %s", what, r.code, lines[0])
	}
}

// listing is every object under prefix with its ETag, sorted by key.
func (h *harness) listing(prefix string) string {
	h.t.Helper()
	var b strings.Builder
	h.eachObject(prefix, func(key, etag string, size int64) { fmt.Fprintf(&b, "%s %s %d\n", key, etag, size) })
	return b.String()
}

// hugeKey holds hugeManifest bytes of junk, copied (in the server) over
// the object a huge row replaces.
const hugeKey = "hostile/huge-junk"

// uploadJunk stores size bytes of junk at key, built in the server from
// copies of one 8 MiB part: uploading it through the race-instrumented SDK
// would take most of a minute.
func (h *harness) uploadJunk(key string, size int) {
	h.t.Helper()
	const part = 8 << 20
	ctx := context.Background()
	h.putObject(key+".part", junk(part, 2))
	defer h.deleteObject(key + ".part")
	up, err := h.client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String(h.bucket), Key: aws.String(key)})
	if err != nil {
		h.t.Fatal(err)
	}
	var parts []types.CompletedPart
	for n := int32(1); int(n-1)*part < size; n++ {
		out, err := h.client.UploadPartCopy(ctx, &s3.UploadPartCopyInput{Bucket: aws.String(h.bucket), Key: aws.String(key),
			UploadId: up.UploadId, PartNumber: aws.Int32(n), CopySource: aws.String(h.bucket + "/" + key + ".part")})
		if err != nil {
			h.t.Fatal(err)
		}
		parts = append(parts, types.CompletedPart{ETag: out.CopyPartResult.ETag, PartNumber: aws.Int32(n)})
	}
	_, err = h.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: aws.String(h.bucket), Key: aws.String(key),
		UploadId: up.UploadId, MultipartUpload: &types.CompletedMultipartUpload{Parts: parts}})
	if err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) copyObject(from, to string) {
	h.t.Helper()
	_, err := h.client.CopyObject(context.Background(), &s3.CopyObjectInput{Bucket: aws.String(h.bucket), Key: aws.String(to),
		CopySource: aws.String(h.bucket + "/" + from)})
	if err != nil {
		h.t.Fatalf("copy %s to %s: %v", from, to, err)
	}
}

func (h *harness) deleteObject(key string) {
	h.t.Helper()
	if _, err := h.client.DeleteObject(context.Background(), &s3.DeleteObjectInput{Bucket: aws.String(h.bucket), Key: aws.String(key)}); err != nil {
		h.t.Fatal(err)
	}
}

// junk is n pseudorandom bytes.
func junk(n int, seed uint64) []byte {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{byte(seed), 7}).Read(b)
	return b
}

func truncated(_ *harness, o []byte) []byte { return o[:len(o)/2] }
func empty(*harness, []byte) []byte         { return []byte{} }
func random(_ *harness, o []byte) []byte    { return junk(max(len(o), 100), 1) }

// flip returns o with one byte changed at o's offset at (from the end if negative).
func flip(at int) func(*harness, []byte) []byte {
	return func(_ *harness, o []byte) []byte {
		c := bytes.Clone(o)
		c[(at+len(c))%len(c)] ^= 0x01
		return c
	}
}

// edit changes fields of a JSON object.
func edit(fn func(m map[string]any)) func(*harness, []byte) []byte {
	return func(h *harness, o []byte) []byte { return editJSON(h.t, o, fn) }
}

func set(kv ...any) func(*harness, []byte) []byte {
	return edit(func(m map[string]any) {
		for i := 0; i < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
	})
}

// plainBlock forges an unencrypted block object of the volume with ID id:
// the codec's header, payload and SHA-256 trailer, all valid.
func plainBlock(id []byte, index uint64, flags byte, payload []byte) []byte {
	obj := make([]byte, codec.HeaderSize, codec.HeaderSize+len(payload)+codec.TrailerSize)
	copy(obj, codec.Magic)
	obj[4], obj[5] = codec.Version, flags
	binary.BigEndian.PutUint32(obj[16:], uint32(len(payload)))
	obj = append(obj, payload...)
	sum := sha256.New()
	sum.Write(id)
	sum.Write(binary.BigEndian.AppendUint64(nil, index))
	sum.Write(obj)
	return sum.Sum(obj)
}

// volumeID reads the volume ID of the volume at prefix from its header.
func (h *harness) volumeID(prefix string) []byte {
	var hd struct {
		VolumeID string `json:"volume_id"`
	}
	json.Unmarshal(h.getObject(prefix+"/header"), &hd)
	id, err := hex.DecodeString(hd.VolumeID)
	if err != nil || len(id) != 16 {
		h.t.Fatalf("volume ID %q", hd.VolumeID)
	}
	return id
}

// TestHostileObjects plants malformed objects of every kind and runs every
// command that decodes them.
func TestHostileObjects(t *testing.T) {
	h := newHarness(t)
	newPass := writePassFile(t, "another passphrase")
	h.uploadJunk(hugeKey, hugeManifest)
	data := junk(3*cryptoBlockSize, 3)
	for _, k := range hostileKinds() {
		t.Run(k.name, func(t *testing.T) {
			t.Parallel()
			h := h.in(t)
			dir := "hostile/" + k.name + "/"
			setupHostile(t, h, dir, k, data)
			start := h.listing("")
			for _, row := range k.rows {
				t.Run(row.name, func(t *testing.T) {
					h := h.in(t)
					runHostileRow(t, h, dir, k, row, newPass, data)
				})
			}
			if end := h.listing(dir); !strings.Contains(start, end) || len(h.listing(dir)) == 0 {
				t.Errorf("%s was not restored:\nbefore:\n%s\nafter:\n%s", dir, start, end)
			}
		})
	}
}

// setupHostile creates the kind's target and a bystander beside it whose
// name extends the target's, which no command may touch.
func setupHostile(t *testing.T, h *harness, dir string, k hostileKind, data []byte) {
	for _, name := range []string{k.target, k.target + "x"} {
		url := h.url(dir + name)
		switch {
		case strings.HasPrefix(k.key, "blocks/") && name == k.target:
			flags := []string{}
			if k.target == "plain" {
				flags = []string{"--no-encryption"}
			}
			h.newVolume(dir+name, data, flags...)
		case k.key == "header" || k.key == "lock" || strings.HasPrefix(k.key, "blocks/"):
			h.createSmall(url)
		default:
			flags := []string{"put", url, "--quiet", "--chunk-size", "64K"}
			if k.target == "raw" {
				flags = append(flags, "--no-encryption")
			}
			if r := hrunCmd(t, h, nil, data, flags...); r.code != 0 {
				t.Fatalf("put %s: %s", url, r.stderr)
			}
		}
	}
}

// runHostileRow plants row's object, runs the kind's commands against it,
// checks each, and restores the target.
func runHostileRow(t *testing.T, h *harness, dir string, k hostileKind, row hostileRow, newPass string, data []byte) {
	prefix := dir + k.target
	url := h.url(prefix)
	key := prefix + "/" + k.key
	saved := h.snapshot(prefix + "/")
	if row.make == nil {
		h.copyObject(hugeKey, key)
	} else {
		h.putObject(key, row.make(h, saved[key]))
	}
	var env []string
	if k.plain {
		env = []string{"S3BLK_PASSPHRASE_FILE="}
	}
	before := h.listing(dir)
	defer func() { // restore exactly what was there
		for _, s := range h.objects(prefix + "/") {
			if _, ok := saved[s]; !ok {
				h.deleteObject(s)
			}
		}
		for s, b := range saved {
			h.putObject(s, b)
		}
		if _, ok := saved[key]; !ok {
			h.deleteObject(key)
		}
	}()
	for _, cmd := range k.cmds {
		var r hrun
		switch cmd {
		case "mount":
			mnt := h.mountpoint()
			r = hrunCmd(t, h, env, nil, "mount", url, mnt, "--log-file", filepath.Join(t.TempDir(), "log"))
			if isMounted(mnt) {
				t.Errorf("mount: %s is mounted after the command", mnt)
			}
		case "passwd":
			r = hrunCmd(t, h, env, nil, "passwd", url, "--new-passphrase-file", newPass)
		case "verify", "get":
			r = hrunCmd(t, h, env, nil, cmd, url, "--quiet")
		case "ls":
			r = hrunCmd(t, h, env, nil, "ls", h.url(dir))
		case "read":
			readHostileBlock(t, h, url, data, k.key)
			continue
		default:
			r = hrunCmd(t, h, env, nil, cmd, url)
		}
		what := cmd + " " + url
		if row.huge && r.rss > maxRSS {
			t.Errorf("%s: peak RSS %d MiB: the huge object was read", what, r.rss>>20)
		}
		if want, ok := row.ok[cmd]; ok {
			if r.code != 0 || !strings.Contains(r.stdout, want) || stackTrace.MatchString(r.stderr) {
				t.Errorf("%s: exit %d, stdout %q, stderr %q; want success mentioning %q", what, r.code, r.stdout, r.stderr, want)
			}
		} else {
			refusedCleanly(t, what, r, row.want)
		}
		after := h.listing(dir)
		if cmd == "rm" && r.code == 0 {
			// rm removes the stream, damaged or not, and nothing else.
			if strings.Contains(after, prefix+"/") || !strings.Contains(after, prefix+"x/manifest") {
				t.Errorf("rm left:\n%s", after)
			}
			continue
		}
		if after != before {
			t.Errorf("%s changed the bucket:\nbefore:\n%s\nafter:\n%s", what, before, after)
		}
	}
}

// readHostileBlock mounts the volume read-only and reads through the FUSE
// file: the planted block must be EIO, its neighbour must read correctly,
// and the daemon must not have read the huge object.
func readHostileBlock(t *testing.T, h *harness, url string, data []byte, key string) {
	index, _ := strconv.ParseUint(strings.TrimPrefix(key, "blocks/"), 16, 64)
	mnt, _ := h.mountLogged(url, "--read-only", "--read-ahead", "-1")
	f, err := os.Open(mnt + "/file")
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, cryptoBlockSize)
	other := (index + 1) % 3
	if _, err := f.ReadAt(buf, int64(other)*cryptoBlockSize); err != nil || !bytes.Equal(buf, data[other*cryptoBlockSize:][:cryptoBlockSize]) {
		t.Errorf("read of the good block %d: %v", other, err)
	}
	if _, err := f.ReadAt(buf, int64(index)*cryptoBlockSize); !errors.Is(err, syscall.EIO) {
		t.Errorf("read of the hostile block %d: %v, want EIO", index, err)
	}
	f.Close()
	status, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", h.daemonPID(mnt)))
	if m := regexp.MustCompile(`VmHWM:\s+(\d+) kB`).FindSubmatch(status); m != nil {
		if kb, _ := strconv.ParseInt(string(m[1]), 10, 64); kb<<10 > maxRSS {
			t.Errorf("the daemon's peak RSS is %d MiB after reading the hostile block", kb>>10)
		}
	} else {
		t.Errorf("no VmHWM for the daemon: %q", status)
	}
	if r := h.s3blk("umount", mnt); r.code != 0 || isMounted(mnt) {
		t.Errorf("umount after the hostile read: exit %d: %s", r.code, r.stderr)
	}
}

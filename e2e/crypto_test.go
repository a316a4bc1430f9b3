package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/s3blk/s3blk/crypto"
)

// The tests of issue 3: encrypted and checksummed blocks, end to end. They
// all start with TestCrypto, so `-run TestCrypto` selects them.

// cryptoBlockSize is the block size of every volume here: small volumes
// (64M) of many blocks.
const cryptoBlockSize = 64 << 10

// in returns a copy of h that reports to t, for use inside a subtest.
func (h *harness) in(t *testing.T) *harness {
	c := *h
	c.t = t
	return &c
}

// createSmall creates a 64M volume of 64K blocks.
func (h *harness) createSmall(url string, extra ...string) {
	h.t.Helper()
	h.must(append([]string{"create", url, "--size", "64M", "--block-size", "64K"}, extra...)...)
}

// mountLogged mounts url with the daemon's log in a temporary file (not in
// /var/log) and returns the mountpoint and the log's path.
func (h *harness) mountLogged(url string, extra ...string) (mnt, logFile string) {
	h.t.Helper()
	logFile = filepath.Join(h.t.TempDir(), "daemon.log")
	return h.mount(url, append([]string{"--log-file", logFile}, extra...)...), logFile
}

// mountpoint returns a fresh directory for a mount made outside mountAt
// (one expected to fail, or on a terminal); whatever is still mounted there
// when the test ends is unmounted.
func (h *harness) mountpoint() string {
	h.t.Helper()
	d := filepath.Join(h.t.TempDir(), "mnt")
	if err := os.Mkdir(d, 0o755); err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() {
		if isMounted(d) {
			if r := h.s3blk("umount", d); r.code != 0 {
				exec.Command("umount", "-l", d).Run()
			}
		}
	})
	return d
}

func blockKey(vol string, index uint64) string { return fmt.Sprintf("%s/blocks/%016x", vol, index) }

func (h *harness) getObject(key string) []byte {
	h.t.Helper()
	out, err := h.client.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(h.bucket), Key: aws.String(key)})
	if err != nil {
		h.t.Fatalf("GET %s: %v", key, err)
	}
	defer out.Body.Close()
	var b bytes.Buffer
	if _, err := b.ReadFrom(out.Body); err != nil {
		h.t.Fatalf("GET %s: %v", key, err)
	}
	return b.Bytes()
}

func (h *harness) putObject(key string, data []byte) {
	h.t.Helper()
	_, err := h.client.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String(h.bucket), Key: aws.String(key), Body: bytes.NewReader(data)})
	if err != nil {
		h.t.Fatalf("PUT %s: %v", key, err)
	}
}

// snapshot returns the contents of every object under prefix, by key.
func (h *harness) snapshot(prefix string) map[string][]byte {
	h.t.Helper()
	objs := map[string][]byte{}
	for _, k := range h.objects(prefix) {
		objs[k] = h.getObject(k)
	}
	return objs
}

// newVolume creates a small volume with the create flags given, writes data
// at its start through a mount, and unmounts. It returns the volume's URL.
func (h *harness) newVolume(name string, data []byte, flags ...string) string {
	h.t.Helper()
	url := h.url(name)
	h.createSmall(url, flags...)
	mnt, _ := h.mountLogged(url)
	writeSynced(h.t, mnt, data)
	h.must("umount", mnt)
	return url
}

// writeSynced writes data at offset 0 of the volume file in mnt and fsyncs.
func writeSynced(t *testing.T, mnt string, data []byte) {
	t.Helper()
	f, err := os.OpenFile(mnt+"/file", os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.WriteAt(data, 0)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatalf("writing %s/file: %v", mnt, err)
	}
}

func randomBytes(t *testing.T, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

var badLine = regexp.MustCompile(`(?m)^BAD block (\d+) \((blocks/[0-9a-f]{16})\): \S.*$`)

// verifyBad runs s3blk verify on url and returns its exit code and the
// indexes of the blocks it lists as bad, in order.
func (h *harness) verifyBad(url string, env ...string) (int, []uint64) {
	h.t.Helper()
	r := h.s3blkEnv(env, "verify", url)
	if strings.Contains(r.stderr, `unknown command "verify"`) {
		h.t.Fatalf("s3blk verify does not exist in %s yet", s3blkBin)
	}
	var bad []uint64
	for _, m := range badLine.FindAllStringSubmatch(r.stdout, -1) {
		i, _ := strconv.ParseUint(m[1], 10, 64)
		if m[2] != fmt.Sprintf("blocks/%016x", i) {
			h.t.Errorf("verify names block %d with key %s", i, m[2])
		}
		bad = append(bad, i)
	}
	if strings.Count(r.stdout, "BAD") != len(bad) {
		h.t.Errorf("verify printed BAD lines not in the form `BAD block N (blocks/KEY): reason`:\n%s", r.stdout)
	}
	h.t.Logf("verify %s: exit %d\n%s%s", url, r.code, r.stdout, r.stderr)
	return r.code, bad
}

// refused checks that a command failed with one line on stderr mentioning want.
func refused(t *testing.T, what string, r result, want string) {
	t.Helper()
	t.Logf("%s: exit %d after %s: %s", what, r.code, r.took.Round(time.Millisecond), strings.TrimSpace(r.stderr))
	lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
	switch {
	case r.code == 0:
		t.Errorf("%s: exit 0, want a refusal mentioning %q; stdout %q", what, want, r.stdout)
	case len(lines) != 1 || !strings.Contains(lines[0], want):
		t.Errorf("%s: exit %d, stderr %q; want one line mentioning %q", what, r.code, r.stderr, want)
	}
}

// TestCryptoNoPlaintext writes a known text through ext4 and searches every
// raw object for it: encrypted volumes must not show it, with or without
// compression; an unencrypted, uncompressed one (the control) must.
func TestCryptoNoPlaintext(t *testing.T) {
	h := newHarness(t)
	const canary = "S3BLK-CANARY"
	var text bytes.Buffer
	for i := 0; text.Len() < 4<<20; i++ {
		fmt.Fprintf(&text, "S3BLK-CANARY-PLAINTEXT-%07d\n", i)
	}
	src := filepath.Join(t.TempDir(), "canary.txt")
	if err := os.WriteFile(src, text.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	zeros := make([]byte, 64)

	for _, c := range []struct {
		vol       string
		flags     []string
		encrypted string // the cipher the header must name; "": the control
	}{
		{"default", nil, crypto.DefaultCipher()},
		{"nocompress", []string{"--no-compression"}, crypto.DefaultCipher()},
		{"xaes", []string{"--cipher", crypto.XAES256GCM}, crypto.XAES256GCM},
		{"xchacha", []string{"--cipher", crypto.XChaCha20Poly1305}, crypto.XChaCha20Poly1305},
		{"control", []string{"--no-encryption", "--no-compression"}, ""},
	} {
		url := h.url(c.vol)
		h.createSmall(url, c.flags...)
		mnt, _ := h.mountLogged(url)
		sh(t, "mkfs.ext4 -q -F "+mnt+"/file")
		fs := h.loopMount(mnt + "/file")
		// The text is in a large file, a file name and a small file.
		sh(t, fmt.Sprintf("mkdir %[1]s/d && cp %[2]s %[1]s/d/%[3]s-NAME.txt && head -c 100 %[2]s > %[1]s/small && sync && umount %[1]s",
			fs, src, canary))
		h.must("umount", mnt)

		objs := h.snapshot(c.vol + "/")
		if n := len(objs); n < 64 {
			t.Fatalf("%s: only %d objects for 4 MiB of text", c.vol, n)
		}
		var withCanary, withZeros []string
		for k, data := range objs {
			if bytes.Contains(data, []byte(canary)) {
				withCanary = append(withCanary, k)
			}
			if bytes.Contains(data, zeros) {
				withZeros = append(withZeros, k)
			}
			if bytes.Contains(data, []byte(testPassphrase)) {
				t.Errorf("%s: object %s contains the passphrase", c.vol, k)
			}
		}
		slices.Sort(withCanary)
		slices.Sort(withZeros)
		t.Logf("%s (%v): %d objects, %d with the canary, %d with a run of 64 zero bytes",
			c.vol, c.flags, len(objs), len(withCanary), len(withZeros))
		if c.encrypted != "" {
			if len(withCanary) > 0 {
				t.Errorf("%s: plaintext %q found in %d objects of an encrypted volume: %v", c.vol, canary, len(withCanary), withCanary)
			}
			// Ciphertext has no long runs of zeros; ext4's mostly empty
			// metadata blocks would, if stored in the clear.
			if len(withZeros) > 0 {
				t.Errorf("%s: %d objects of an encrypted volume hold 64 zero bytes in a row: %v", c.vol, len(withZeros), withZeros)
			}
			if hdr := objs[c.vol+"/header"]; !bytes.Contains(hdr, []byte(`"encryption": "`+c.encrypted+`"`)) {
				t.Errorf("%s: header does not say the volume is encrypted with %s:\n%s", c.vol, c.encrypted, hdr)
			}
		} else if len(withCanary) < 32 || len(withZeros) == 0 {
			t.Errorf("control: the canary is in only %d objects and zero runs in %d: the search itself is broken",
				len(withCanary), len(withZeros))
		}
	}
}

// checkReads reads the volume file in mnt block by block: the blocks in bad
// must fail with EIO (whole, in part, and in a read spanning a good block);
// every other block must read back as in want.
func checkReads(t *testing.T, mnt string, want []byte, bad []uint64) {
	t.Helper()
	f, err := os.Open(mnt + "/file")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	bs := cryptoBlockSize
	buf := make([]byte, 2*bs)
	isEIO := func(what string, n int, err error) {
		t.Helper()
		if !errors.Is(err, syscall.EIO) {
			t.Errorf("%s: read %d bytes, err %v; want EIO", what, n, err)
		}
	}
	for i := 0; i < len(want)/bs; i++ {
		off := int64(i * bs)
		n, err := f.ReadAt(buf[:bs], off)
		if !slices.Contains(bad, uint64(i)) {
			if err != nil || !bytes.Equal(buf[:n], want[off:off+int64(bs)]) {
				t.Errorf("good block %d: read %d bytes, err %v, equal %v", i, n, err, bytes.Equal(buf[:n], want[off:off+int64(bs)]))
			}
			continue
		}
		isEIO(fmt.Sprintf("bad block %d", i), n, err)
		n, err = f.ReadAt(buf[:4096], off+8192)
		isEIO(fmt.Sprintf("4 KiB inside bad block %d", i), n, err)
		if i > 0 {
			n, err = f.ReadAt(buf, off-int64(bs))
			isEIO(fmt.Sprintf("blocks %d-%d", i-1, i), n, err)
		}
	}
}

// TestCryptoTamper alters block objects in the bucket, the ways an attacker
// or a broken store could: each altered block reads as EIO (never as other
// data) while the rest of the volume reads fine; the daemon logs the key and
// counts it; verify lists exactly the altered blocks and exits 1.
func TestCryptoTamper(t *testing.T) {
	h := newHarness(t)
	const nblocks = 16
	data := randomBytes(t, nblocks*cryptoBlockSize)
	// "other" has the same passphrase and the same data: only the
	// volume binding can tell its blocks apart.
	vols := []struct {
		name  string
		flags []string
	}{{"enc", nil}, {"other", nil}, {"plain", []string{"--no-encryption"}}}
	orig := map[string]map[string][]byte{}
	for _, v := range vols {
		h.newVolume(v.name, data, v.flags...)
		orig[v.name] = h.snapshot(v.name + "/blocks/")
		if n := len(orig[v.name]); n != nblocks {
			t.Fatalf("%s holds %d block objects, want %d", v.name, n, nblocks)
		}
	}
	obj := func(vol string, i uint64) []byte { return bytes.Clone(orig[vol][blockKey(vol, i)]) }
	flip := func(h *harness, vol string, i uint64, at func(n int) int) {
		b := obj(vol, i)
		b[at(len(b))] ^= 0x01
		h.putObject(blockKey(vol, i), b)
	}
	middle := func(n int) int { return n / 2 }
	generation := func(int) int { return 15 } // a header byte nothing but the AEAD or checksum covers
	swap := func(h *harness, vol string, i, j uint64) {
		h.putObject(blockKey(vol, i), obj(vol, j))
		h.putObject(blockKey(vol, j), obj(vol, i))
	}
	cases := []struct {
		name, vol string
		tamper    func(h *harness)
		bad       []uint64
	}{
		{"flip one byte", "enc", func(h *harness) { flip(h, "enc", 3, middle); flip(h, "enc", 14, generation) }, []uint64{3, 14}},
		{"swap two blocks", "enc", func(h *harness) { swap(h, "enc", 5, 9) }, []uint64{5, 9}},
		{"block of another volume, same passphrase", "enc", func(h *harness) { h.putObject(blockKey("enc", 7), obj("other", 7)) }, []uint64{7}},
		{"truncated", "enc", func(h *harness) {
			b := obj("enc", 12)
			h.putObject(blockKey("enc", 12), b[:len(b)/2])
			b = obj("enc", 13)
			h.putObject(blockKey("enc", 13), b[:len(b)-1])
		}, []uint64{12, 13}},
		{"unencrypted object in an encrypted volume", "enc", func(h *harness) { h.putObject(blockKey("enc", 4), obj("plain", 4)) }, []uint64{4}},
		{"unencrypted: flip one byte", "plain", func(h *harness) { flip(h, "plain", 3, middle); flip(h, "plain", 14, generation) }, []uint64{3, 14}},
		{"unencrypted: swap two blocks", "plain", func(h *harness) { swap(h, "plain", 5, 9) }, []uint64{5, 9}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := h.in(t)
			url := h.url(c.vol)
			defer func() { // restore every block for the next case
				for k, b := range orig[c.vol] {
					h.putObject(k, b)
				}
			}()
			c.tamper(h)

			mnt, logFile := h.mountLogged(url)
			checkReads(t, mnt, data, c.bad)
			if n := statValue(t, mnt, "corrupt_blocks"); n == 0 {
				t.Errorf("stats: corrupt_blocks is 0 after reading %d bad blocks", len(c.bad))
			}
			h.must("umount", mnt)
			logged, err := os.ReadFile(logFile)
			if err != nil {
				t.Fatal(err)
			}
			for _, i := range c.bad {
				if !bytes.Contains(logged, []byte(blockKey(c.vol, i))) {
					t.Errorf("the daemon log does not name %s:\n%s", blockKey(c.vol, i), logged)
				}
			}

			code, bad := h.verifyBad(url)
			if code != 1 || !slices.Equal(bad, c.bad) {
				t.Errorf("verify: exit %d, bad blocks %v; want exit 1 and %v", code, bad, c.bad)
			}
		})
	}
	// Restored, the volumes are byte for byte as written (nothing above
	// altered them otherwise): verify finds nothing bad, and every block
	// reads back.
	for _, vol := range []string{"enc", "plain"} {
		if now := h.snapshot(vol + "/blocks/"); !maps.EqualFunc(now, orig[vol], bytes.Equal) {
			t.Fatalf("%s: block objects differ from the originals after restoring", vol)
		}
		mnt, _ := h.mountLogged(h.url(vol), "--read-only")
		checkContent(t, mnt, data)
		if n := statValue(t, mnt, "corrupt_blocks"); n != 0 {
			t.Errorf("%s: corrupt_blocks is %d on the untampered volume", vol, n)
		}
		// verify runs beside a read-only mount (it takes no lock).
		if code, bad := h.verifyBad(h.url(vol)); code != 0 || len(bad) != 0 {
			t.Errorf("verify of the untampered volume %s beside a read-only mount: exit %d, bad %v; want 0 and none", vol, code, bad)
		}
		h.must("umount", mnt)
	}
}

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/s3blk/s3blk/crypto"
)

// Passphrase handling end to end: wrong passphrases, passwd, passphrase
// files, the terminal prompt, and headers edited in the bucket.

// TestCryptoWrongPassphrase: mount, verify and passwd refuse a wrong
// passphrase up front, saying so, and change nothing.
func TestCryptoWrongPassphrase(t *testing.T) {
	h := newHarness(t)
	data := randomBytes(t, 4*cryptoBlockSize)
	url := h.newVolume("wp", data)
	before := h.snapshot("wp/")
	wrong := writePassFile(t, "not the passphrase")
	wrongEnv := []string{"S3BLK_PASSPHRASE_FILE=" + wrong}
	logFile := filepath.Join(t.TempDir(), "daemon.log")

	for _, c := range []struct {
		what string
		env  []string
		args []string
	}{
		{"mount, passphrase file from the environment", wrongEnv, []string{"mount", url, h.mountpoint(), "--log-file", logFile}},
		{"mount --passphrase-file", nil, []string{"mount", url, h.mountpoint(), "--log-file", logFile, "--passphrase-file", wrong}},
		{"mount --read-only", wrongEnv, []string{"mount", url, h.mountpoint(), "--log-file", logFile, "--read-only"}},
		{"passwd", wrongEnv, []string{"passwd", url, "--new-passphrase-file", writePassFile(t, "the next passphrase")}},
		{"verify", wrongEnv, []string{"verify", url}},
	} {
		r := h.s3blkEnv(c.env, c.args...)
		if c.args[0] == "verify" && strings.Contains(r.stderr, `unknown command "verify"`) {
			t.Errorf("s3blk verify does not exist in %s yet", s3blkBin)
			continue
		}
		refused(t, c.what, r, "wrong passphrase")
		if strings.Contains(r.stdout, "BAD") {
			t.Errorf("%s: reported bad blocks instead of refusing:\n%s", c.what, r.stdout)
		}
		if c.args[0] == "mount" && isMounted(c.args[2]) {
			t.Errorf("%s: %s is mounted after the refusal", c.what, c.args[2])
		}
		if keys := h.objects("wp/lock"); len(keys) != 0 {
			t.Fatalf("%s: lock left behind: %v", c.what, keys)
		}
	}
	if after := h.snapshot("wp/"); !maps.EqualFunc(after, before, bytes.Equal) {
		t.Errorf("a refused command changed the volume's objects")
	}
	// The right passphrase still opens it.
	mnt, _ := h.mountLogged(url, "--read-only")
	checkContent(t, mnt, data)
}

// checkContent fails the test unless the volume file in mnt starts with want.
func checkContent(t *testing.T, mnt string, want []byte) {
	t.Helper()
	f, err := os.Open(mnt + "/file")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got := make([]byte, len(want))
	if n, err := f.ReadAt(got, 0); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("reading %s/file: %d bytes, err %v, equal to what was written: %v", mnt, n, err, bytes.Equal(got, want))
	}
}

// TestCryptoPasswd changes the passphrase: the old one is refused from then
// on, the new one opens the same data, and no block object is rewritten.
func TestCryptoPasswd(t *testing.T) {
	h := newHarness(t)
	data := randomBytes(t, 8*cryptoBlockSize)
	url := h.newVolume("pw", data)
	blocks := h.snapshot("pw/blocks/")
	header := h.getObject("pw/header")
	next := writePassFile(t, "a brand new passphrase")

	if out := h.must("passwd", url, "--new-passphrase-file", next); !strings.Contains(out, "changed") {
		t.Errorf("passwd output %q does not say the passphrase changed", out)
	}
	if bytes.Equal(h.getObject("pw/header"), header) {
		t.Errorf("passwd left the header as it was")
	}
	if now := h.snapshot("pw/blocks/"); len(now) != 8 || !maps.EqualFunc(now, blocks, bytes.Equal) {
		t.Errorf("passwd changed the block objects (%d before, %d after): it must only re-wrap the key", len(blocks), len(now))
	}

	// The old passphrase (the harness default) no longer opens the volume.
	mnt := h.mountpoint()
	refused(t, "mount with the old passphrase", h.s3blk("mount", url, mnt, "--log-file", filepath.Join(t.TempDir(), "log")), "wrong passphrase")
	if isMounted(mnt) {
		t.Errorf("mounted with the old passphrase")
	}
	refused(t, "passwd with the old passphrase", h.s3blk("passwd", url, "--new-passphrase-file", writePassFile(t, "third")), "wrong passphrase")

	// The new one does, with the same data.
	mnt, _ = h.mountLogged(url, "--passphrase-file", next)
	checkContent(t, mnt, data)
	h.must("umount", mnt)
	if code, bad := h.verifyBad(url, "S3BLK_PASSPHRASE_FILE="+next); code != 0 || len(bad) != 0 {
		t.Errorf("verify with the new passphrase: exit %d, bad %v; want 0 and none", code, bad)
	}
	refused(t, "verify with the old passphrase", h.s3blk("verify", url), "wrong passphrase")
}

// TestCryptoPassphraseFile: a passphrase file that others can read, an empty
// one or a missing one is refused, by every command, and nothing is created
// or changed.
func TestCryptoPassphraseFile(t *testing.T) {
	h := newHarness(t)
	existing := h.url("existing")
	h.createSmall(existing)
	dir := t.TempDir()
	file := func(name, content string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil { // WriteFile's mode is subject to the umask
			t.Fatal(err)
		}
		return p
	}
	world := file("world", testPassphrase+"\n", 0o644)
	group := file("group", testPassphrase+"\n", 0o640)
	empty := file("empty", "", 0o600)
	newline := file("newline", "\n", 0o600)
	missing := filepath.Join(dir, "missing")
	env := func(f string) []string { return []string{"S3BLK_PASSPHRASE_FILE=" + f} }
	create := func(extra ...string) []string {
		return append([]string{"create", h.url("new"), "--size", "64M", "--block-size", "64K"}, extra...)
	}
	logFile := filepath.Join(dir, "daemon.log")
	mount := func(extra ...string) []string {
		return append([]string{"mount", existing, h.mountpoint(), "--log-file", logFile}, extra...)
	}
	passwd := func(newFile string) []string { return []string{"passwd", existing, "--new-passphrase-file", newFile} }

	before := h.snapshot("")
	for _, c := range []struct {
		what string
		env  []string
		args []string
		want string
	}{
		{"create: mode 0644 file from the environment", env(world), create(), "accessible by others"},
		{"create: --passphrase-file of mode 0644", nil, create("--passphrase-file", world), "accessible by others"},
		{"create: mode 0640 file", env(group), create(), "accessible by others"},
		{"create: empty file", env(empty), create(), "empty"},
		{"create: file holding only a newline", env(newline), create(), "empty"},
		{"create: missing file", env(missing), create(), "passphrase file"},
		{"create: --no-encryption and --passphrase-file", nil, create("--no-encryption", "--passphrase-file", h.passFile), "contradict"},
		{"create: --no-encryption and --cipher", nil, create("--no-encryption", "--cipher", crypto.XAES256GCM), "contradict"},
		{"create: unknown --cipher", nil, create("--cipher", "aes-128-cbc"), "not a cipher"},
		{"put: --no-encryption and --cipher", nil, []string{"put", h.url("newstream"), "--no-encryption", "--cipher", crypto.XChaCha20Poly1305}, "contradict"},
		{"put: unknown --cipher", nil, []string{"put", h.url("newstream"), "--cipher", "rot13"}, "not a cipher"},
		{"mount: mode 0644 file", env(world), mount(), "accessible by others"},
		{"mount: --passphrase-file of mode 0640", nil, mount("--passphrase-file", group), "accessible by others"},
		{"mount: empty file", env(empty), mount(), "empty"},
		{"passwd: new passphrase file of mode 0644", nil, passwd(world), "accessible by others"},
		{"passwd: empty new passphrase file", nil, passwd(empty), "empty"},
	} {
		r := h.s3blkEnv(c.env, c.args...)
		refused(t, c.what, r, c.want)
		if c.args[0] == "mount" && isMounted(c.args[2]) {
			t.Errorf("%s: %s is mounted after the refusal", c.what, c.args[2])
		}
	}
	if after := h.snapshot(""); !maps.EqualFunc(after, before, bytes.Equal) {
		t.Errorf("refused commands changed the bucket:\nbefore: %v\nafter:  %v", slices.Sorted(maps.Keys(before)), slices.Sorted(maps.Keys(after)))
	}
}

// onTerminal runs s3blk under script(1), so that it has a terminal to be
// asked on, and types input there. No passphrase file is configured.
func onTerminal(t *testing.T, input string, args ...string) (out string, code int) {
	t.Helper()
	quoted := []string{}
	for _, a := range append([]string{s3blkBin}, args...) {
		quoted = append(quoted, "'"+strings.ReplaceAll(a, "'", `'\''`)+"'")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "script", "--quiet", "--return", "--command", strings.Join(quoted, " "), "/dev/null")
	cmd.Env = []string{"AWS_EC2_METADATA_DISABLED=true"}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "S3BLK_PASSPHRASE_FILE=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Stdin = strings.NewReader(input)
	b, err := cmd.CombinedOutput()
	out = strings.ReplaceAll(string(b), "\r", "")
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("script %v: %v\n%s", args, err, out)
	}
	t.Logf("on a terminal, typing %q: s3blk %s: exit %d\n%s", input, strings.Join(args, " "), code, out)
	return out, code
}

// TestCryptoTerminalPrompt types passphrases on a terminal: create asks
// twice, mount asks once and hands the passphrase to its daemon, passwd asks
// for the current one and twice for the new one. A passphrase file holding
// the same text opens the same volume.
func TestCryptoTerminalPrompt(t *testing.T) {
	h := newHarness(t)
	url := h.url("tty")
	create := []string{"create", url, "--size", "64M", "--block-size", "64K"}

	if out, code := onTerminal(t, "pw\npx\n", create...); code == 0 || !strings.Contains(out, "do not match") {
		t.Errorf("create with two different passphrases: exit %d; want a refusal saying they do not match", code)
	}
	if keys := h.objects("tty/"); len(keys) != 0 {
		t.Fatalf("a refused create left objects: %v", keys)
	}
	if out, code := onTerminal(t, "pw\npw\n", create...); code != 0 || !strings.Contains(out, "encryption "+crypto.DefaultCipher()) {
		t.Fatalf("create on a terminal: exit %d; want an encrypted volume", code)
	}

	mnt := h.mountpoint()
	logFile := filepath.Join(t.TempDir(), "daemon.log")
	mount := []string{"mount", url, mnt, "--log-file", logFile}
	if out, code := onTerminal(t, "wrong\n", mount...); code == 0 || !strings.Contains(out, "wrong passphrase") || isMounted(mnt) {
		t.Errorf("mount with a wrong passphrase typed: exit %d, mounted %v; want a refusal saying wrong passphrase", code, isMounted(mnt))
	}
	if keys := h.objects("tty/lock"); len(keys) != 0 {
		t.Fatalf("a refused mount left its lock: %v", keys)
	}
	out, code := onTerminal(t, "pw\n", mount...)
	m := regexp.MustCompile(`daemon pid (\d+)`).FindStringSubmatch(out)
	if code != 0 || m == nil || !isMounted(mnt) {
		t.Fatalf("mount with the passphrase typed: exit %d, mounted %v; want it mounted and its daemon PID", code, isMounted(mnt))
	}
	pid, _ := strconv.Atoi(m[1])
	data := randomBytes(t, 2*cryptoBlockSize)
	writeSynced(t, mnt, data)
	checkContent(t, mnt, data)
	h.must("umount", mnt)
	waitGone(t, pid, 10*time.Second)

	// A passphrase file with the same text opens it.
	pwFile := writePassFile(t, "pw")
	mnt2, _ := h.mountLogged(url, "--passphrase-file", pwFile, "--read-only")
	checkContent(t, mnt2, data)
	h.must("umount", mnt2)

	if out, code := onTerminal(t, "pw\nnew\nnew\n", "passwd", url); code != 0 || !strings.Contains(out, "changed") {
		t.Fatalf("passwd on a terminal: exit %d", code)
	}
	refused(t, "mount with the passphrase passwd replaced",
		h.s3blk("mount", url, h.mountpoint(), "--passphrase-file", pwFile, "--log-file", logFile), "wrong passphrase")
	mnt3, _ := h.mountLogged(url, "--passphrase-file", writePassFile(t, "new"), "--read-only")
	checkContent(t, mnt3, data)
}

// TestCryptoUnencrypted: an unencrypted volume refuses an explicit
// --passphrase-file (whoever wrote it expects encryption: the header may
// have been replaced) and has no passphrase to change; the default
// passphrase file from the environment does not stop it from mounting.
func TestCryptoUnencrypted(t *testing.T) {
	h := newHarness(t)
	data := randomBytes(t, 2*cryptoBlockSize)
	url := h.newVolume("plain", data, "--no-encryption") // mounted with S3BLK_PASSPHRASE_FILE set
	if hdr := h.getObject("plain/header"); !regexp.MustCompile(`"encryption": *"none"`).Match(hdr) {
		t.Fatalf("create --no-encryption wrote the header\n%s", hdr)
	}
	mnt := h.mountpoint()
	r := h.s3blk("mount", url, mnt, "--passphrase-file", h.passFile, "--log-file", filepath.Join(t.TempDir(), "log"))
	refused(t, "mount --passphrase-file of an unencrypted volume", r, "is not encrypted")
	if isMounted(mnt) {
		t.Errorf("mounted after the refusal")
	}
	if keys := h.objects("plain/lock"); len(keys) != 0 {
		t.Errorf("a refused mount left its lock: %v", keys)
	}
	refused(t, "passwd of an unencrypted volume", h.s3blk("passwd", url, "--new-passphrase-file", h.passFile), "not encrypted")

	mnt, _ = h.mountLogged(url, "--read-only")
	checkContent(t, mnt, data)
}

// editJSON returns the JSON object doc with edit applied to it.
func editJSON(t *testing.T, doc []byte, edit func(m map[string]any)) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(doc, &m); err != nil {
		t.Fatalf("header %s: %v", doc, err)
	}
	edit(m)
	out, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestCryptoHeaderTamper edits volume headers in the bucket: mount refuses
// each edit before mounting anything. A header replaced by an unencrypted
// volume's (a downgrade) is refused when a passphrase file is named, and
// otherwise serves EIO, never the ciphertext as data.
func TestCryptoHeaderTamper(t *testing.T) {
	h := newHarness(t)
	data := randomBytes(t, 4*cryptoBlockSize)
	url := h.newVolume("hdr", data)
	plainURL := h.newVolume("plainhdr", data, "--no-encryption")
	plainHeader := h.getObject("plainhdr/header")
	kdf := func(m map[string]any) map[string]any { return m["key"].(map[string]any)["kdf"].(map[string]any) }
	logFile := filepath.Join(t.TempDir(), "daemon.log")

	for _, c := range []struct {
		what, vol string
		edit      func(m map[string]any)
		want      string // in the refusal
	}{
		{"size", "hdr", func(m map[string]any) { m["size"] = 128 << 20 }, "tampered"},
		{"block size", "hdr", func(m map[string]any) { m["block_size"] = 128 << 10 }, "tampered"},
		{"compression", "hdr", func(m map[string]any) { m["compression"] = "none" }, "tampered"},
		{"volume ID", "hdr", func(m map[string]any) { m["volume_id"] = strings.Repeat("0", 32) }, ""},
		{"KDF time", "hdr", func(m map[string]any) { kdf(m)["time"] = 4 }, ""},
		{"KDF memory below the minimum", "hdr", func(m map[string]any) { kdf(m)["memory_kib"] = 1024 }, "weaker"},
		{"MAC", "hdr", func(m map[string]any) { m["mac"] = "hmac-sha256:" + strings.Repeat("0", 64) }, "tampered"},
		{"unencrypted: size", "plainhdr", func(m map[string]any) { m["size"] = 128 << 20 }, "damaged"},
	} {
		key := c.vol + "/header"
		good := h.getObject(key)
		h.putObject(key, editJSON(t, good, c.edit))
		mnt := h.mountpoint()
		refused(t, "header with its "+c.what+" edited", h.s3blk("mount", h.url(c.vol), mnt, "--log-file", logFile), c.want)
		if isMounted(mnt) {
			t.Errorf("header with its %s edited: mounted", c.what)
		}
		if keys := h.objects(c.vol + "/lock"); len(keys) != 0 {
			t.Fatalf("header with its %s edited: lock left behind: %v", c.what, keys)
		}
		h.putObject(key, good)
	}

	// Restored, both volumes open and read back.
	for _, u := range []string{url, plainURL} {
		mnt, _ := h.mountLogged(u, "--read-only")
		checkContent(t, mnt, data)
		h.must("umount", mnt)
	}

	// The downgrade: the same geometry, no encryption, a valid checksum.
	h.putObject("hdr/header", plainHeader)
	refused(t, "mount --passphrase-file of a volume whose header was replaced by an unencrypted one",
		h.s3blk("mount", url, h.mountpoint(), "--passphrase-file", h.passFile, "--log-file", logFile), "is not encrypted")
	mnt, _ := h.mountLogged(url, "--read-only")
	checkReads(t, mnt, data, []uint64{0, 1, 2, 3})
	h.must("umount", mnt)
	if code, bad := h.verifyBad(url); code != 1 || !slices.Equal(bad, []uint64{0, 1, 2, 3}) {
		t.Errorf("verify of the downgraded volume: exit %d, bad %v; want 1 and every block", code, bad)
	}
}

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/s3blk/s3blk/internal/testenv"
)

func TestEscapePath(t *testing.T) {
	cases := map[string]string{
		"/":               "-",
		"/mnt/vol1":       "mnt-vol1",
		"/mnt/vol1/":      "mnt-vol1",
		"mnt/vol1":        "mnt-vol1",
		"//mnt//vol1":     "mnt-vol1",
		"/mnt/./vol1":     "mnt-vol1",
		"/mnt/my-vol":     `mnt-my\x2dvol`,
		"/srv/a/b/c":      "srv-a-b-c",
		"/-":              `\x2d`,
		"/mnt/vol with s": "mnt-vol with s",
	}
	for in, want := range cases {
		if got := escapePath(in); got != want {
			t.Errorf("escapePath(%q) = %q, want %q", in, got, want)
		}
	}
	// Distinct mountpoints must not share PID and status files.
	distinct := []string{"/a/b", "/a-b", "/a/b/c", "/a-b/c", "/a/b-c", "/ab", "/a", "/b"}
	seen := map[string]string{}
	for _, p := range distinct {
		e := escapePath(p)
		if other, ok := seen[e]; ok {
			t.Errorf("escapePath(%q) = escapePath(%q) = %q", p, other, e)
		}
		seen[e] = p
		if strings.Contains(e, "/") {
			t.Errorf("escapePath(%q) = %q contains a slash", p, e)
		}
	}
	if pidFile("/mnt/x") == statusFile("/mnt/x") || filepath.Dir(pidFile("/mnt/x")) != runtimeDir() {
		t.Errorf("pidFile %q / statusFile %q", pidFile("/mnt/x"), statusFile("/mnt/x"))
	}
}

func TestUnescapeMountinfo(t *testing.T) {
	cases := map[string]string{
		"":                        "",
		"/mnt/vol":                "/mnt/vol",
		`/mnt/my\040vol`:          "/mnt/my vol",
		`\040`:                    " ",
		`/a\040b\040c`:            "/a b c",
		`/tab\011x`:               "/tab\tx",
		`/nl\012x`:                "/nl\nx",
		`/back\134slash`:          `/back\slash`,
		`/trailing\040`:           "/trailing ",
		`/short\04`:               `/short\04`,     // incomplete escape kept
		`/short\0`:                `/short\0`,      // incomplete escape kept
		`/end\`:                   `/end\`,         // lone backslash kept
		`/bad\999`:                `/bad\999`,      // not octal
		`/big\400`:                `/big\400`,      // does not fit in a byte
		`/x\134040`:               `/x\040`,        // an escaped backslash is not re-read
		`/sysd\x2dname`:           `/sysd\x2dname`, // systemd escapes are not mountinfo's
		`s3blk\040file:///a\040b`: "s3blk file:///a b",
	}
	for in, want := range cases {
		if got := unescapeMountinfo(in); got != want {
			t.Errorf("unescapeMountinfo(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestFindMount(t *testing.T) {
	root, err := findMount("/")
	if err != nil {
		t.Fatal(err)
	}
	if root == nil {
		t.Fatal(`findMount("/") = nil`)
	}
	if root.point != "/" || root.fstype == "" {
		t.Fatalf(`findMount("/") = %+v`, root)
	}
	dir := t.TempDir()
	if m, err := findMount(dir); err != nil || m != nil {
		t.Fatalf("findMount(%q) of a plain directory = %+v, %v; want nil", dir, m, err)
	}
	if m, err := findMount(filepath.Join(dir, "missing")); err != nil || m != nil {
		t.Fatalf("findMount of a missing directory = %+v, %v", m, err)
	}
	// /proc is a mountpoint on any Linux that has /proc/self/mountinfo.
	if m, err := findMount("/proc"); err != nil || m == nil || m.fstype != "proc" {
		t.Fatalf(`findMount("/proc") = %+v, %v; want fstype proc`, m, err)
	}
}

// TestFindMountEscaped mounts a tmpfs at a path with a space and a source
// with a space, which mountinfo escapes as \040.
func TestFindMountEscaped(t *testing.T) {
	testenv.NeedRoot(t)
	dir := filepath.Join(t.TempDir(), "mount point")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("s3blk test src", dir, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatalf("mounting tmpfs: %v", err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, 0); err != nil {
			t.Errorf("unmounting %s: %v", dir, err)
		}
	})
	m, err := findMount(dir)
	if err != nil {
		t.Fatal(err)
	}
	if m == nil {
		t.Fatalf("findMount(%q) = nil for a mounted tmpfs", dir)
	}
	if m.point != dir || m.fstype != "tmpfs" || m.source != "s3blk test src" {
		t.Fatalf("findMount(%q) = %+v", dir, m)
	}
	// The parent is not the mountpoint.
	if m, _ := findMount(filepath.Dir(dir)); m != nil {
		t.Fatalf("findMount of the parent = %+v", m)
	}
}

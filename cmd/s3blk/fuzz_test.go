package main

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// FuzzParseSize: no input panics; an accepted size is non-negative, and
// both its decimal form and the form --help shows for it parse back to it.
func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"0", "4096", "512K", "1M", "10G", "2T", "1GiB", "1Gi", "4096B", "8P", "-1", "10X", " 1M ",
		"9223372036854775807", "8191P", "8192P", "1e3", "0x10", "+5", "K", "iB"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseSize(s)
		if err != nil {
			if n != 0 || !strings.Contains(err.Error(), "not a size") || strings.Contains(err.Error(), "\n") {
				t.Fatalf("ParseSize(%q) = %d, %q", s, n, err)
			}
			return
		}
		if n < 0 {
			t.Fatalf("ParseSize(%q) = %d", s, n)
		}
		if back, err := ParseSize(strconv.FormatInt(n, 10)); err != nil || back != n {
			t.Fatalf("ParseSize(%q) = %d, but %d reparses as %d, %v", s, n, n, back, err)
		}
		v := &sizeValue{v: &n}
		if shown := v.String(); shown != "" {
			if back, err := ParseSize(shown); err != nil || back != n {
				t.Fatalf("size %d is shown as %q, which parses as %d, %v", n, shown, back, err)
			}
		}
	})
}

// FuzzParseArgs: for any argument list (NUL-separated) parseArgs never
// panics; it returns either a one-line error or exactly the wanted number
// of positionals, each of them one of the arguments given.
func FuzzParseArgs(f *testing.F) {
	for _, s := range []string{"file:///v", "--size\x001G\x00file:///v", "a\x00--\x00--size", "--nope\x00a", "a\x00--size",
		"-size=4K\x00a\x00--force\x00b", "--force=maybe\x00a", "---size\x001", "-\x00a", "--\x00--", "--name=\x00a", "-h"} {
		f.Add(s, uint8(1))
	}
	f.Fuzz(func(t *testing.T, joined string, want uint8) {
		var args []string
		if joined != "" {
			args = strings.Split(joined, "\x00")
		}
		fs, _, _, _ := newTestFlags()
		fs.Usage = func() {} // --help would print usage on stderr
		pos, err := parseArgs(fs, args, int(want%4), "ARGS")
		if err != nil {
			// An argument may hold a newline, which the error names; main
			// prints every error through oneLine.
			if strings.Contains(err.Error(), "\n") && !strings.Contains(joined, "\n") || strings.Contains(oneLine(err), "\n") {
				t.Fatalf("parseArgs(%q): error %q is not one line", args, err)
			}
			return
		}
		if len(pos) != int(want%4) {
			t.Fatalf("parseArgs(%q, %d) returned %d positionals %q", args, want%4, len(pos), pos)
		}
		for _, p := range pos {
			if !slices.Contains(args, p) {
				t.Fatalf("parseArgs(%q) invented the positional %q", args, p)
			}
		}
	})
}

// escapeMountinfo escapes like the kernel does for /proc/self/mountinfo:
// space, tab, newline and backslash as three octal digits.
func escapeMountinfo(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == ' ' || c == '\t' || c == '\n' || c == '\\' {
			fmt.Fprintf(&b, "\\%03o", c)
		} else {
			b.WriteByte(c)
		}
	}
	return b.String()
}

// FuzzUnescapeMountinfo: unescaping inverts the kernel's escaping for any
// path, never panics, and never lengthens its input.
func FuzzUnescapeMountinfo(f *testing.F) {
	for _, s := range []string{"", "/mnt/vol", `/mnt/my\040vol`, `\`, `\04`, `\400`, `\134040`, `/a b\c`, "\n\t\\"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got := unescapeMountinfo(escapeMountinfo(s)); got != s {
			t.Fatalf("unescape(escape(%q)) = %q", s, got)
		}
		if got := unescapeMountinfo(s); len(got) > len(s) {
			t.Fatalf("unescape(%q) = %q is longer", s, got)
		}
	})
}

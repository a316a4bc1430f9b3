package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

func TestParseSize(t *testing.T) {
	good := []struct {
		in   string
		want int64
	}{
		{"0", 0},
		{"1", 1},
		{"4096", 4096},
		{"512K", 512 << 10},
		{"512k", 512 << 10},
		{"1M", 1 << 20},
		{"1m", 1 << 20},
		{"10G", 10 << 30},
		{"2T", 2 << 40},
		{"1P", 1 << 50},
		{"1GiB", 1 << 30},
		{"1MiB", 1 << 20},
		{"4KiB", 4 << 10},
		{"1MB", 1 << 20},
		{"1GB", 1 << 30},
		{"1Gi", 1 << 30},
		{"100B", 100},
		{" 64M ", 64 << 20},
		{"9223372036854775807", 1<<63 - 1},
		{"8388607T", 8388607 << 40}, // the largest whole number of TiB
		{"8191P", 8191 << 50},
	}
	for _, c := range good {
		got, err := ParseSize(c.in)
		if err != nil || got != c.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", c.in, got, err, c.want)
		}
	}
	bad := []string{
		"", " ", "x", "K", "MiB", "B",
		"-1", "-1G", "1.5G", "0.5M", "1e6",
		"1X", "1 G", "G1", "1GG", "1KM", "0x10",
		"99999999999T",        // overflows int64
		"8388608T",            // exactly 2^63
		"8192P",               // exactly 2^63
		"9223372036854775808", // 2^63
		"9223372036854775807K",
		"18446744073709551616",
	}
	for _, in := range bad {
		if got, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) = %d, want an error", in, got)
		} else if !strings.Contains(err.Error(), "not a size") {
			t.Errorf("ParseSize(%q) error %q is not the size message", in, err)
		}
	}
}

func TestFormatSize(t *testing.T) {
	cases := []struct {
		in   int64
		want string
	}{
		{0, "0 B"},
		{1, "1 B"},
		{1023, "1023 B"},
		{1024, "1 KiB"},
		{1536, "1.5 KiB"},
		{512 << 10, "512 KiB"},
		{1 << 20, "1 MiB"},
		{64 << 20, "64 MiB"},
		{3 << 29, "1.5 GiB"},
		{10 << 30, "10 GiB"},
		{2 << 40, "2 TiB"},
		{1 << 50, "1 PiB"},
		{1 << 60, "1024 PiB"}, // no unit above PiB
	}
	for _, c := range cases {
		if got := FormatSize(c.in); got != c.want {
			t.Errorf("FormatSize(%d) = %q, want %q", c.in, got, c.want)
		}
	}
	// Every exact size survives FormatSize -> ParseSize.
	for _, n := range []int64{1, 4096, 1 << 20, 100 << 30, 7 << 40, 3 << 50} {
		s := strings.ReplaceAll(FormatSize(n), " ", "")
		if got, err := ParseSize(s); err != nil || got != n {
			t.Errorf("ParseSize(FormatSize(%d) = %q) = %d, %v", n, s, got, err)
		}
	}
}

func TestSizeValue(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	v := sizeFlag(fs, "size", 256<<20, "")
	if *v.v != 256<<20 || v.set {
		t.Fatalf("default: %d, set=%v", *v.v, v.set)
	}
	if got := v.String(); got != "256M" {
		t.Errorf("String() of 256 MiB = %q, want 256M", got)
	}
	if err := fs.Parse([]string{"--size", "2G"}); err != nil {
		t.Fatal(err)
	}
	if *v.v != 2<<30 || !v.set {
		t.Fatalf("after --size 2G: %d, set=%v", *v.v, v.set)
	}
	if err := fs.Parse([]string{"--size", "two"}); err == nil {
		t.Fatal("--size two accepted")
	}
	if *v.v != 2<<30 {
		t.Fatalf("a bad --size changed the value to %d", *v.v)
	}
	// String must round-trip through Set for any value it renders.
	for _, n := range []int64{1, 4096, 5000, 1 << 20, 3 << 30, 1 << 40, 3 << 50} {
		*v.v = n
		s := v.String()
		w := &sizeValue{v: new(int64)}
		if err := w.Set(s); err != nil || *w.v != n {
			t.Errorf("Set(String() of %d = %q) = %d, %v", n, s, *w.v, err)
		}
	}
}

// newTestFlags is a flag set like create's.
func newTestFlags() (*flag.FlagSet, *sizeValue, *bool, *string) {
	fs := newFlagSet("create", "URL", "Create a volume")
	size := sizeFlag(fs, "size", 0, "volume size")
	force := fs.Bool("force", false, "force")
	name := fs.String("name", "", "name")
	return fs, size, force, name
}

func TestParseArgs(t *testing.T) {
	cases := []struct {
		args  []string
		want  int
		pos   []string
		size  int64
		force bool
		name  string
	}{
		{[]string{"file:///v"}, 1, []string{"file:///v"}, 0, false, ""},
		{[]string{"--size", "1G", "file:///v"}, 1, []string{"file:///v"}, 1 << 30, false, ""},
		{[]string{"file:///v", "--size", "1G"}, 1, []string{"file:///v"}, 1 << 30, false, ""},
		{[]string{"file:///v", "--size=1G", "--force"}, 1, []string{"file:///v"}, 1 << 30, true, ""},
		{[]string{"-size", "4K", "a", "--force", "b", "--name", "n"}, 2, []string{"a", "b"}, 4 << 10, true, "n"},
		{[]string{"a", "b", "--size", "1M"}, 2, []string{"a", "b"}, 1 << 20, false, ""},
		{[]string{"--force", "a", "--name=x", "b"}, 2, []string{"a", "b"}, 0, true, "x"},
		{[]string{"a", "--", "--size"}, 2, []string{"a", "--size"}, 0, false, ""},
		{[]string{}, 0, nil, 0, false, ""},
	}
	for _, c := range cases {
		fs, size, force, name := newTestFlags()
		pos, err := parseArgs(fs, c.args, c.want, "ARGS")
		if err != nil {
			t.Errorf("parseArgs(%q): %v", c.args, err)
			continue
		}
		if !reflect.DeepEqual(pos, c.pos) && !(len(pos) == 0 && len(c.pos) == 0) {
			t.Errorf("parseArgs(%q) positionals = %q, want %q", c.args, pos, c.pos)
		}
		if *size.v != c.size || *force != c.force || *name != c.name {
			t.Errorf("parseArgs(%q): size %d force %v name %q; want %d %v %q",
				c.args, *size.v, *force, *name, c.size, c.force, c.name)
		}
	}
}

func TestParseArgsErrors(t *testing.T) {
	cases := []struct {
		args []string
		want int
	}{
		{[]string{}, 1},
		{[]string{"a", "b"}, 1},
		{[]string{"--size", "1G"}, 1},
		{[]string{"a", "--size", "1G", "b"}, 1},
		{[]string{"a"}, 2},
		{[]string{"--nope", "a"}, 1},
		{[]string{"a", "--nope"}, 1},
		{[]string{"a", "--size"}, 1},        // flag needs a value
		{[]string{"a", "--size", "big"}, 1}, // bad size
		{[]string{"a", "--force=maybe"}, 1},
	}
	for _, c := range cases {
		fs, _, _, _ := newTestFlags()
		pos, err := parseArgs(fs, c.args, c.want, "URL")
		var ue usageError
		if !errors.As(err, &ue) {
			t.Errorf("parseArgs(%q, want %d) = %q, %v; want a usageError", c.args, c.want, pos, err)
			continue
		}
		if errors.Is(err, flag.ErrHelp) {
			t.Errorf("parseArgs(%q): a usage error is reported as --help", c.args)
		}
		if strings.Contains(ue.Error(), "\n") {
			t.Errorf("parseArgs(%q): usage error %q is not one line", c.args, ue.Error())
		}
	}
	fs, _, _, _ := newTestFlags()
	_, err := parseArgs(fs, []string{"a", "b"}, 1, "URL")
	if !strings.Contains(fmt.Sprint(err), "URL") || !strings.Contains(fmt.Sprint(err), "2") {
		t.Errorf("count error %q does not name what was expected and how many were given", err)
	}
}

func TestParseArgsHelp(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"-h"}, {"a", "--help"}, {"-help", "a", "b"}} {
		fs, _, _, _ := newTestFlags()
		pos, err := parseArgs(fs, args, 1, "URL")
		if !errors.Is(err, flag.ErrHelp) {
			t.Errorf("parseArgs(%q) = %q, %v; want flag.ErrHelp", args, pos, err)
		}
		var ue usageError
		if errors.As(err, &ue) {
			t.Errorf("parseArgs(%q): --help reported as a usage error", args)
		}
	}
}

// A request timeout that is not positive is refused before any request.
func TestRequestTimeoutMustBePositive(t *testing.T) {
	for _, v := range []string{"0s", "-1s"} {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		var sf storeFlags
		sf.register(fs)
		if err := fs.Parse([]string{"--request-timeout", v}); err != nil {
			t.Fatal(err)
		}
		_, err := sf.open(context.Background(), "s3://bucket/vol", nil)
		var ue usageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), "--request-timeout") {
			t.Errorf("--request-timeout %s: %v; want a usage error naming the flag", v, err)
		}
	}
}

package main

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"0": 0, "4096": 4096, "1K": 1 << 10, "256M": 256 << 20, "1G": 1 << 30, "1g": 1 << 30, "4GiB": 4 << 30, "1T": 1 << 40} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "M", "-1M", "1.5G", "1X", "99999999999T"} {
		if _, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q) succeeded", in)
		}
	}
}

func TestSummarize(t *testing.T) {
	if _, ok := summarize(nil); ok {
		t.Fatal("summary of nothing")
	}
	for _, c := range []struct {
		in               []float64
		median, min, max float64
	}{
		{[]float64{5}, 5, 5, 5},
		{[]float64{3, 1, 2}, 2, 1, 3},
		{[]float64{4, 1, 3, 2}, 2.5, 1, 4},
		{[]float64{10, 10, 1}, 10, 1, 10},
	} {
		s, _ := summarize(c.in)
		if s.median != c.median || s.min != c.min || s.max != c.max || s.n != len(c.in) {
			t.Errorf("summarize(%v) = %+v", c.in, s)
		}
	}
}

func TestNumAndRatio(t *testing.T) {
	for v, want := range map[float64]string{188.4: "188", 12.345: "12.3", 1.234: "1.23", 0: "0", 7: "7", math.NaN(): "n/a"} {
		if got := num(v); got != want {
			t.Errorf("num(%v) = %q, want %q", v, got, want)
		}
	}
	if got := ratio(180, 100); got != "1.80×" {
		t.Errorf("ratio = %q", got)
	}
	if got := ratio(1, 0); got != "n/a" {
		t.Errorf("ratio by zero = %q", got)
	}
}

func TestRequestClass(t *testing.T) {
	for _, c := range []struct{ method, target, want string }{
		{"PUT", "/b/vol/blocks/0000000000000001", "PUT"},
		{"PUT", "/b/stream/part?partNumber=3&uploadId=x", "PUT"},
		{"PUT", "/b", "OTHER"},
		{"GET", "/b/vol/header", "GET"},
		{"GET", "/b?list-type=2&prefix=vol%2Fblocks%2F", "LIST"},
		{"GET", "/b/", "LIST"},
		{"GET", "/b?location", "OTHER"},
		{"HEAD", "/b/sb1/00000000", "HEAD"},
		{"DELETE", "/b/vol/lock", "DELETE"},
		{"POST", "/b?delete", "DELETE"},
		{"POST", "/b/stream?uploads", "POST"},
	} {
		r := httptest.NewRequest(c.method, c.target, nil)
		if got := requestClass(r); got != c.want {
			t.Errorf("%s %s = %s, want %s", c.method, c.target, got, c.want)
		}
	}
}

func TestSurvived(t *testing.T) {
	mib := 1 << 20
	orig := bytes.Repeat([]byte{1}, 3*mib+100) // 4 chunks, the last short
	for _, c := range []struct {
		name  string
		copy  []byte
		equal int64
	}{
		{"identical", append([]byte(nil), orig...), 4},
		{"missing", nil, 0},
		{"truncated after two chunks", orig[:2*mib+5], 2},
		{"second chunk damaged", func() []byte {
			b := append([]byte(nil), orig...)
			b[mib+7] = 0
			return b
		}(), 3},
	} {
		var cp *bytes.Reader
		if c.copy != nil {
			cp = bytes.NewReader(c.copy)
		}
		var equal, total int64
		var err error
		if cp == nil {
			equal, total, err = survived(bytes.NewReader(orig), nil)
		} else {
			equal, total, err = survived(bytes.NewReader(orig), cp)
		}
		if err != nil || equal != c.equal || total != 4 {
			t.Errorf("%s: survived = %d of %d, %v; want %d of 4", c.name, equal, total, err, c.equal)
		}
	}
}

func TestFioIOPS(t *testing.T) {
	out := []byte("fio: some warning\n{\"jobs\": [{\"read\": {\"iops\": 1200.5}, \"write\": {\"iops\": 0}}, {\"read\": {\"iops\": 0}, \"write\": {\"iops\": 99.5}}]}")
	if got, err := fioIOPS(out); err != nil || got != 1300 {
		t.Errorf("fioIOPS = %v, %v", got, err)
	}
	if _, err := fioIOPS([]byte("no json")); err == nil {
		t.Error("fioIOPS accepted garbage")
	}
}

const sampleResults = `# section tool metric run value
ceiling-put	sdk	value	1	250
ceiling-put	sdk	value	2	240
ceiling-put	sdk	value	3	260
ceiling-get	sdk	value	1	500
ceiling-get-cold	sdk	value	1	600
write	s3blk	value	1	210
write	s3blk	value	2	190
write	s3blk	value	3	200
write	s3blk	rss	1	300
write	s3blk	rss	2	330
write	s3blk	stored	1	1024
write	s3blk-plain	value	1	210
write	s3backer	value	1	100
write	s3backer	stored	1	312
write	local	value	1	900
read	s3blk	value	1	450
rsync	s3blk	value	1	7
rsync	s3backer	value	1	10
put	s3blk	na	-	s3blk put is not built yet
put	aws	value	1	150
put	aws	rss	1	150
put	rclone	value	1	148
put	rclone	rss	1	95
crash	s3blk	survived	1	1024
crash	s3blk	lost	1	0
crash	s3blk	total	1	1024
crash	s3backer	survived	1	0
crash	s3backer	lost	1	1024
crash	s3backer	total	1	1024
crash	s3backer	note	1	ext4 mounted, file missing
requests	s3blk	write_PUT	1	1030
`

const sampleMeta = "date\t2026-01-01\nsize\t1G\ncache_mib\t256\nsetting\tcache 256 MiB\nversion\ts3backer 1.5.4\nlabel:local\tlocal disk\n"

func TestReport(t *testing.T) {
	r := newResults()
	if err := r.readResults(strings.NewReader(sampleResults)); err != nil {
		t.Fatal(err)
	}
	if err := r.readMeta(strings.NewReader(sampleMeta)); err != nil {
		t.Fatal(err)
	}
	targets := map[string]target{}
	for _, tg := range r.targets() {
		targets[tg.name] = tg
	}
	expect := func(name string, met *bool) {
		t.Helper()
		tg, ok := targets[name]
		if !ok {
			t.Fatalf("no target %q", name)
		}
		switch {
		case met == nil && tg.met != nil:
			t.Errorf("%s: measured (%s), want n/a", name, tg.measured)
		case met != nil && (tg.met == nil || *tg.met != *met):
			t.Errorf("%s: %+v, want met=%v", name, tg, *met)
		}
	}
	expect("Block write with a durable fsync vs raw PUT", check(true))                   // 200/250 = 0.8
	expect("Block write vs s3backer (whose fsync stores nothing)", check(true))          // 2.0
	expect("Cold read vs raw GET", check(true))                                          // 450/500 = 0.9
	expect("Cold read vs raw GET after drop_caches (the same cold start)", check(false)) // 450/600 = 0.75
	expect("rsync + durable sync, time vs s3backer's", check(true))                      // 0.7
	expect("Encrypted + compressed vs plain: block write", check(true))                  // 200/210
	expect("Encrypted + compressed vs plain: cold read", nil)                            // no plain read
	expect("Stream put vs the best peer (aws)", nil)                                     // s3blk put n/a
	expect("Stream put peak RSS vs the lowest peer's (rclone)", nil)                     //
	expect("Daemon peak RSS during block write (highest run)", check(false))             // 330 > 320
	expect("Crash after `dd conv=fsync`: s3blk loses nothing (worst run)", check(true))  //
	out := r.render()
	for _, want := range []string{
		"| Block sequential write (`dd conv=fsync`) | **s3blk** (encrypted + compressed) | 200 MiB/s | 190–210 | 315 | 0.80× raw PUT, 0.22× local ext4 | 2.00× s3backer | in the bucket when dd returned: 1024 MiB |",
		"| Block sequential write (`dd conv=fsync`) | s3backer | 100 MiB/s | (1 run) |  | 0.40× raw PUT, 0.11× local ext4 |  | in the bucket when dd returned: 312 MiB |",
		"| Stream put (stdin to S3) | **s3blk** (encrypted + compressed) | n/a | | | | | s3blk put is not built yet |",
		"| `rsync -a` Go source tree + `sync` | **s3blk** (encrypted + compressed) | 7 s | (1 run) |  | n/a vs local ext4 | 0.70× s3backer's time |",
		"| s3backer | 0 of 1024 | (1 run) | 1024 MiB | ext4 mounted, file missing |",
		"- s3backer 1.5.4",
		"| Block sequential write (`dd conv=fsync`) | local disk | 900 MiB/s |",
		"| Ceiling: raw S3 GET after `drop_caches` (MinIO reads its disk) | aws-sdk-go-v2 | 600 MiB/s |",
		"0.90× raw GET, 0.75× raw GET after drop_caches",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q\n%s", want, out)
		}
	}
}

func TestReadResultsRejectsGarbage(t *testing.T) {
	for _, in := range []string{"write\ts3blk\tvalue\t1\n", "write\ts3blk\tvalue\t1\tfast\n", "write\ts3blk\tvalue\t1\tNaN\n"} {
		if err := newResults().readResults(strings.NewReader(in)); err == nil {
			t.Errorf("accepted %q", in)
		}
	}
}

func TestProxyKeepsHostAndCounts(t *testing.T) {
	var gotHost string
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotHost = r.Host
		fmt.Fprint(w, "ok")
	}))
	defer backend.Close()
	target, _ := url.Parse(backend.URL)
	c := &counter{counts: map[string]int64{}}
	proxy := httptest.NewServer(proxyHandler(target, c))
	defer proxy.Close()

	for _, m := range []string{"PUT", "PUT", "GET"} {
		req, _ := http.NewRequest(m, proxy.URL+"/bucket/key", strings.NewReader("x"))
		req.Host = "signed.example:9000" // what a SigV4 signature covers
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	if gotHost != "signed.example:9000" {
		t.Errorf("backend saw Host %q; the signed Host must pass through", gotHost)
	}
	resp, err := http.Get(proxy.URL + "/.bench/counts")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "PUT 2\n") || !strings.Contains(string(body), "GET 1\n") {
		t.Errorf("counts = %q", body)
	}
	if resp, err := http.Get(proxy.URL + "/.bench/reset"); err == nil {
		resp.Body.Close()
	}
	if got := c.format(); strings.Contains(got, "PUT 2") {
		t.Errorf("after reset: %q", got)
	}
}

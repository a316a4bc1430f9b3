package faultproxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// upstream is a tiny object store: PUT stores the body under the path, GET
// returns it with a Content-Length. It records every request it handled.
type upstream struct {
	*httptest.Server
	mu      sync.Mutex
	objects map[string][]byte
	seen    []*http.Request
}

func newUpstream(t *testing.T) *upstream {
	u := &upstream{objects: map[string][]byte{}}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		u.mu.Lock()
		u.seen = append(u.seen, r)
		switch r.Method {
		case http.MethodPut:
			u.objects[r.URL.Path] = body
			u.mu.Unlock()
			w.Header().Set("ETag", `"etag"`)
		case http.MethodGet:
			data, ok := u.objects[r.URL.Path]
			u.mu.Unlock()
			if !ok {
				http.Error(w, "no such key", http.StatusNotFound)
				return
			}
			w.Header().Set("Content-Length", fmt.Sprint(len(data)))
			w.Header().Set("X-Upstream", "yes")
			w.Write(data)
		default:
			u.mu.Unlock()
		}
	}))
	t.Cleanup(u.Close)
	return u
}

func (u *upstream) requests() []*http.Request {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]*http.Request(nil), u.seen...)
}

func (u *upstream) object(path string) ([]byte, bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	data, ok := u.objects[path]
	return data, ok
}

func start(t *testing.T, cfg Config) *Proxy {
	t.Helper()
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// client opens a new connection per request, so that Go's transport never
// retries a request on a fresh connection and hides a fault.
func client(timeout time.Duration) *http.Client {
	return &http.Client{Timeout: timeout, Transport: &http.Transport{DisableKeepAlives: true}}
}

func do(t *testing.T, c *http.Client, method, url string, body []byte) (*http.Response, []byte, error) {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Host = "bucket.s3.example"
	req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=x, SignedHeaders=host, Signature=abc")
	resp, err := c.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	return resp, data, err
}

func TestTransparentWithRatesZero(t *testing.T) {
	up := newUpstream(t)
	p := start(t, Config{Upstream: up.URL, Seed: 1})
	c := client(10 * time.Second)
	payload := bytes.Repeat([]byte("0123456789"), 100_000)
	if resp, _, err := do(t, c, http.MethodPut, p.URL+"/b/key", payload); err != nil || resp.StatusCode != 200 {
		t.Fatalf("PUT through the proxy: %v %v", resp, err)
	}
	resp, data, err := do(t, c, http.MethodGet, p.URL+"/b/key?x=1", nil)
	if err != nil || resp.StatusCode != 200 || !bytes.Equal(data, payload) || resp.Header.Get("X-Upstream") != "yes" {
		t.Fatalf("GET through the proxy: status %v, %d bytes, err %v", resp, len(data), err)
	}
	seen := up.requests()
	if len(seen) != 2 {
		t.Fatalf("upstream saw %d requests, want 2", len(seen))
	}
	for _, r := range seen {
		if r.Host != "bucket.s3.example" || !strings.HasPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256") {
			t.Fatalf("upstream saw Host %q, Authorization %q: the signature's inputs changed", r.Host, r.Header.Get("Authorization"))
		}
	}
	if seen[1].URL.RawQuery != "x=1" {
		t.Fatalf("query %q did not pass through", seen[1].URL.RawQuery)
	}
	if p.Requests() != 2 {
		t.Fatalf("Requests() = %d, want 2", p.Requests())
	}
	for _, k := range Kinds {
		if n := p.Count(k); n != 0 {
			t.Fatalf("%s counted %d with every rate 0", k, n)
		}
	}
}

func TestErrorReplies(t *testing.T) {
	for _, c := range []struct {
		cfg    Config
		kind   Kind
		status int
		code   string
	}{
		{Config{SlowDown: 1}, SlowDown, 503, "<Code>SlowDown</Code>"},
		{Config{InternalError: 1}, InternalError, 500, "<Code>InternalError</Code>"},
	} {
		t.Run(c.kind.String(), func(t *testing.T) {
			up := newUpstream(t)
			c.cfg.Upstream = up.URL
			p := start(t, c.cfg)
			resp, body, err := do(t, client(10*time.Second), http.MethodPut, p.URL+"/b/k", []byte("data"))
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != c.status || !strings.Contains(string(body), c.code) || !strings.HasPrefix(string(body), "<?xml") {
				t.Fatalf("status %d, body %q; want %d with %s", resp.StatusCode, body, c.status, c.code)
			}
			if n := len(up.requests()); n != 0 {
				t.Fatalf("upstream saw %d requests; an error reply must not be forwarded", n)
			}
			if p.Count(c.kind) != 1 {
				t.Fatalf("%s counted %d, want 1", c.kind, p.Count(c.kind))
			}
		})
	}
}

func TestResetBeforeForwarding(t *testing.T) {
	up := newUpstream(t)
	p := start(t, Config{Upstream: up.URL, ResetBefore: 1})
	_, _, err := do(t, client(10*time.Second), http.MethodPut, p.URL+"/b/k", []byte("data"))
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("PUT: error %v, want a connection reset", err)
	}
	if _, ok := up.object("/b/k"); ok || len(up.requests()) != 0 {
		t.Fatal("a request reset before forwarding reached the upstream")
	}
	if p.Count(ResetBefore) != 1 {
		t.Fatalf("reset_before counted %d, want 1", p.Count(ResetBefore))
	}
}

func TestResetAfterHandled(t *testing.T) {
	up := newUpstream(t)
	p := start(t, Config{Upstream: up.URL, ResetAfter: 1})
	_, _, err := do(t, client(10*time.Second), http.MethodPut, p.URL+"/b/k", []byte("stored anyway"))
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("PUT: error %v, want a connection reset", err)
	}
	if data, ok := up.object("/b/k"); !ok || string(data) != "stored anyway" {
		t.Fatalf("upstream holds %q (%v); the PUT should have been stored before the reset", data, ok)
	}
	if p.Count(ResetAfter) != 1 {
		t.Fatalf("reset_after counted %d, want 1", p.Count(ResetAfter))
	}
}

func TestTruncatedBody(t *testing.T) {
	up := newUpstream(t)
	p := start(t, Config{Upstream: up.URL, TruncateBody: 1})
	payload := bytes.Repeat([]byte("x"), 1000)
	// A PUT is not a GET: it passes, and is not counted.
	if resp, _, err := do(t, client(10*time.Second), http.MethodPut, p.URL+"/b/k", payload); err != nil || resp.StatusCode != 200 {
		t.Fatalf("PUT with only truncation configured: %v %v", resp, err)
	}
	resp, data, err := do(t, client(10*time.Second), http.MethodGet, p.URL+"/b/k", nil)
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("GET: error %v, want an unexpected EOF", err)
	}
	if resp.StatusCode != 200 || resp.ContentLength != 1000 || len(data) != 500 || resp.Header.Get("X-Upstream") != "yes" {
		t.Fatalf("GET: status %d, Content-Length %d, %d bytes read; want 200, the full 1000, then 500",
			resp.StatusCode, resp.ContentLength, len(data))
	}
	if p.Count(TruncateBody) != 1 {
		t.Fatalf("truncate_body counted %d, want 1", p.Count(TruncateBody))
	}
	// A reply without a body to cut passes.
	resp, _, err = do(t, client(10*time.Second), http.MethodGet, p.URL+"/b/missing", nil)
	if err != nil || resp.StatusCode != 404 || p.Count(TruncateBody) != 1 {
		t.Fatalf("GET of a missing key: %v %v, truncations %d", resp, err, p.Count(TruncateBody))
	}
}

func TestStall(t *testing.T) {
	up := newUpstream(t)
	p := start(t, Config{Upstream: up.URL, Stall: 1, StallFor: 2 * time.Second})
	_, _, err := do(t, client(200*time.Millisecond), http.MethodPut, p.URL+"/b/impatient", []byte("data"))
	var te interface{ Timeout() bool }
	if !errors.As(err, &te) || !te.Timeout() {
		t.Fatalf("impatient PUT: error %v, want a client timeout", err)
	}
	start := time.Now()
	resp, _, err := do(t, client(time.Minute), http.MethodPut, p.URL+"/b/patient", []byte("data"))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("patient PUT: %v %v", resp, err)
	}
	if took := time.Since(start); took < 2*time.Second {
		t.Fatalf("a stalled request came back after %s, before the 2s stall", took)
	}
	if _, ok := up.object("/b/patient"); !ok {
		t.Fatal("the stalled request was not forwarded afterwards")
	}
	if p.Count(Stall) != 2 {
		t.Fatalf("stall counted %d, want 2", p.Count(Stall))
	}
	if n := p.StallsAbandoned(); n != 1 {
		t.Fatalf("%d stalls abandoned, want 1 (the impatient client's)", n)
	}
}

func TestLatency(t *testing.T) {
	up := newUpstream(t)
	p := start(t, Config{Upstream: up.URL, Latency: 1, MaxLatency: 20 * time.Millisecond})
	c := client(10 * time.Second)
	for i := range 5 {
		if resp, _, err := do(t, c, http.MethodPut, fmt.Sprintf("%s/b/%d", p.URL, i), []byte("d")); err != nil || resp.StatusCode != 200 {
			t.Fatalf("PUT %d: %v %v", i, resp, err)
		}
	}
	if p.Count(Latency) != 5 || len(up.requests()) != 5 {
		t.Fatalf("latency counted %d, upstream saw %d; want 5 and 5", p.Count(Latency), len(up.requests()))
	}
}

func TestSwitchOff(t *testing.T) {
	up := newUpstream(t)
	p := start(t, Config{Upstream: up.URL, SlowDown: 1})
	p.SetEnabled(false)
	if resp, _, err := do(t, client(10*time.Second), http.MethodPut, p.URL+"/b/k", []byte("d")); err != nil || resp.StatusCode != 200 {
		t.Fatalf("PUT with faulting off: %v %v", resp, err)
	}
	p.SetEnabled(true)
	if resp, _, err := do(t, client(10*time.Second), http.MethodPut, p.URL+"/b/k", []byte("d")); err != nil || resp.StatusCode != 503 {
		t.Fatalf("PUT with faulting back on: %v %v", resp, err)
	}
	if p.Count(SlowDown) != 1 || p.Requests() != 2 {
		t.Fatalf("slowdown %d, requests %d; want 1 and 2", p.Count(SlowDown), p.Requests())
	}
}

// TestSeedRepeats: one seed gives one sequence of decisions; another seed
// a different one.
func TestSeedRepeats(t *testing.T) {
	up := newUpstream(t)
	outcomes := func(seed uint64) string {
		p := start(t, Config{Upstream: up.URL, Seed: seed, SlowDown: 0.5})
		var b strings.Builder
		for range 64 {
			resp, _, err := do(t, client(10*time.Second), http.MethodPut, p.URL+"/b/k", []byte("d"))
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprint(&b, resp.StatusCode/100)
		}
		return b.String()
	}
	a, b, c := outcomes(7), outcomes(7), outcomes(8)
	if a != b {
		t.Fatalf("seed 7 gave %s, then %s", a, b)
	}
	if a == c || !strings.Contains(a, "5") || !strings.Contains(a, "2") {
		t.Fatalf("seed 7 gave %s, seed 8 %s; want a mix that differs", a, c)
	}
}

func TestBadConfig(t *testing.T) {
	for _, cfg := range []Config{
		{Upstream: "http://127.0.0.1:1", SlowDown: 0.6, ResetAfter: 0.6},
		{Upstream: "http://127.0.0.1:1", Latency: 1.5},
		{Upstream: "http://127.0.0.1:1", InternalError: -0.1},
		{Upstream: "not a url"},
	} {
		if p, err := New(cfg); err == nil {
			p.Close()
			t.Fatalf("New(%+v) accepted a bad configuration", cfg)
		}
	}
}

// TestCloseEndsStalls: Close does not wait for a stalled request's StallFor.
func TestCloseEndsStalls(t *testing.T) {
	up := newUpstream(t)
	p := start(t, Config{Upstream: up.URL, Stall: 1, StallFor: time.Hour})
	errc := make(chan error, 1)
	go func() {
		_, _, err := do(t, client(time.Hour), http.MethodGet, p.URL+"/b/k", nil)
		errc <- err
	}()
	for p.Count(Stall) == 0 {
		time.Sleep(10 * time.Millisecond)
	}
	p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	select {
	case err := <-errc:
		if err == nil {
			t.Fatal("a stalled request succeeded after Close")
		}
	case <-ctx.Done():
		t.Fatal("Close left a stalled request hanging")
	}
}

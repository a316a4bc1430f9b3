// Package faultproxy is an HTTP proxy that sits in front of an S3 endpoint
// (MinIO in tests and soak runs) and makes it misbehave the ways real S3
// and real networks do, at configurable rates: 503 SlowDown and 500
// InternalError replies, connections reset before a request is forwarded
// or after the upstream has handled it (a PUT is then stored although the
// client saw a failure), GET bodies cut short after the full Content-Length
// was promised, random latency, and stalls that outlast a client's patience.
//
// It exists to prove that s3blk loses nothing under such faults; nothing in
// the s3blk binary uses it.
//
// Invariants:
//   - Requests reach the upstream byte for byte as the client signed them:
//     the Host header, path, query and every header are kept, so SigV4
//     signatures stay valid.
//   - A request reset before forwarding never reaches the upstream; one
//     reset after forwarding was fully handled by it.
//   - The fault decisions come from one RNG seeded by Config.Seed; with
//     every rate 0, or faulting switched off, the proxy is transparent.
//   - Every injected fault is counted by kind (Count), every request in
//     Requests.
package faultproxy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Kind is one kind of injected fault.
type Kind int

const (
	SlowDown      Kind = iota // 503 SlowDown, not forwarded
	InternalError             // 500 InternalError, not forwarded
	ResetBefore               // connection reset, not forwarded
	ResetAfter                // forwarded and handled, then the connection reset instead of the reply
	TruncateBody              // GET: headers with the full Content-Length, half the body, then close
	Stall                     // held for Config.StallFor before forwarding
	Latency                   // delayed by up to Config.MaxLatency before forwarding
	numKinds
)

// Kinds lists every fault kind, in order.
var Kinds = []Kind{SlowDown, InternalError, ResetBefore, ResetAfter, TruncateBody, Stall, Latency}

func (k Kind) String() string {
	switch k {
	case SlowDown:
		return "slowdown"
	case InternalError:
		return "internal_error"
	case ResetBefore:
		return "reset_before"
	case ResetAfter:
		return "reset_after"
	case TruncateBody:
		return "truncate_body"
	case Stall:
		return "stall"
	case Latency:
		return "latency"
	}
	return fmt.Sprintf("kind(%d)", int(k))
}

// Config sets the upstream and the probability of each fault per request.
// SlowDown, InternalError, ResetBefore, ResetAfter, TruncateBody and Stall
// exclude each other (at most one per request) and must add up to at most
// 1; TruncateBody only hits GETs with a body. Latency is drawn on its own
// and may come on top of any of them.
type Config struct {
	Upstream string // base URL of the real endpoint, e.g. http://127.0.0.1:9000
	Seed     uint64 // seeds the RNG behind every fault decision

	SlowDown      float64
	InternalError float64
	ResetBefore   float64
	ResetAfter    float64
	TruncateBody  float64
	Stall         float64
	StallFor      time.Duration // how long a stalled request is held (default 1 minute)
	Latency       float64
	MaxLatency    time.Duration // latency is uniform in [0, MaxLatency] (default 50ms)
}

func (c *Config) rate(k Kind) float64 {
	switch k {
	case SlowDown:
		return c.SlowDown
	case InternalError:
		return c.InternalError
	case ResetBefore:
		return c.ResetBefore
	case ResetAfter:
		return c.ResetAfter
	case TruncateBody:
		return c.TruncateBody
	case Stall:
		return c.Stall
	case Latency:
		return c.Latency
	}
	return 0
}

// Proxy is a running fault-injecting proxy. Its methods are safe for
// concurrent use.
type Proxy struct {
	URL string // http://127.0.0.1:PORT, to give clients as their endpoint

	cfg       Config
	upstream  *url.URL
	transport *http.Transport
	srv       *http.Server
	done      chan struct{} // closed by Close: ends stalls

	rngMu sync.Mutex
	rng   *rand.Rand

	enabled         atomic.Bool
	requests        atomic.Int64
	counts          [numKinds]atomic.Int64
	stallsAbandoned atomic.Int64
}

// New starts a proxy on 127.0.0.1 at a free port, with faulting on.
func New(cfg Config) (*Proxy, error) {
	up, err := url.Parse(cfg.Upstream)
	if err != nil || up.Host == "" || (up.Scheme != "http" && up.Scheme != "https") {
		return nil, fmt.Errorf("faultproxy: upstream %q is not an http(s) URL", cfg.Upstream)
	}
	var exclusive float64
	for _, k := range Kinds {
		r := cfg.rate(k)
		if r < 0 || r > 1 {
			return nil, fmt.Errorf("faultproxy: %s rate %v is not a probability", k, r)
		}
		if k != Latency {
			exclusive += r
		}
	}
	if exclusive > 1+1e-9 {
		return nil, fmt.Errorf("faultproxy: the exclusive fault rates add up to %v, more than 1", exclusive)
	}
	if cfg.StallFor <= 0 {
		cfg.StallFor = time.Minute
	}
	if cfg.MaxLatency <= 0 {
		cfg.MaxLatency = 50 * time.Millisecond
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{
		URL:      "http://" + ln.Addr().String(),
		cfg:      cfg,
		upstream: up,
		// No transparent gzip: the client must get the upstream's bytes.
		transport: &http.Transport{
			Proxy:               nil,
			MaxIdleConns:        256,
			MaxIdleConnsPerHost: 256,
			DisableCompression:  true,
			IdleConnTimeout:     30 * time.Second,
		},
		done: make(chan struct{}),
		rng:  rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x5eed5eed5eed5eed)),
	}
	p.enabled.Store(true)
	p.srv = &http.Server{Handler: http.HandlerFunc(p.serve)}
	go p.srv.Serve(ln)
	return p, nil
}

// SetEnabled switches faulting on or off; off, the proxy only forwards.
func (p *Proxy) SetEnabled(on bool) { p.enabled.Store(on) }

// Enabled reports whether faults are being injected.
func (p *Proxy) Enabled() bool { return p.enabled.Load() }

// Count returns how many faults of kind k were injected.
func (p *Proxy) Count(k Kind) int64 { return p.counts[k].Load() }

// StallsAbandoned returns how many stalled requests the client gave up on
// (closed the connection) before StallFor was over: a client with a
// per-request timeout shorter than StallFor abandons every stall.
func (p *Proxy) StallsAbandoned() int64 { return p.stallsAbandoned.Load() }

// Requests returns how many requests the proxy received.
func (p *Proxy) Requests() int64 { return p.requests.Load() }

// Summary is "requests N, slowdown N, ..." for logs.
func (p *Proxy) Summary() string {
	parts := []string{fmt.Sprintf("requests %d", p.Requests())}
	for _, k := range Kinds {
		parts = append(parts, fmt.Sprintf("%s %d", k, p.Count(k)))
	}
	parts = append(parts, fmt.Sprintf("stalls_abandoned %d", p.StallsAbandoned()))
	return strings.Join(parts, ", ")
}

// Close stops the proxy: the listener, idle connections, stalled requests.
func (p *Proxy) Close() error {
	select {
	case <-p.done:
		return nil
	default:
	}
	close(p.done)
	err := p.srv.Close()
	p.transport.CloseIdleConnections()
	return err
}

// decide draws the faults for one request: an exclusive fault (or -1) and
// a latency (0 for none).
func (p *Proxy) decide(isGET bool) (Kind, time.Duration) {
	p.rngMu.Lock()
	defer p.rngMu.Unlock()
	var delay time.Duration
	if p.cfg.Latency > 0 && p.rng.Float64() < p.cfg.Latency {
		delay = time.Duration(p.rng.Int64N(int64(p.cfg.MaxLatency) + 1))
	}
	u := p.rng.Float64()
	for _, k := range []Kind{SlowDown, InternalError, ResetBefore, ResetAfter, TruncateBody, Stall} {
		r := p.cfg.rate(k)
		if k == TruncateBody && !isGET {
			continue
		}
		if u < r {
			return k, delay
		}
		u -= r
	}
	return -1, delay
}

func (p *Proxy) serve(w http.ResponseWriter, r *http.Request) {
	p.requests.Add(1)
	if !p.enabled.Load() {
		p.forward(w, r)
		return
	}
	kind, delay := p.decide(r.Method == http.MethodGet)
	if delay > 0 {
		p.counts[Latency].Add(1)
		if !p.sleep(r.Context(), delay) {
			abort(w)
			return
		}
	}
	switch kind {
	case SlowDown:
		p.counts[kind].Add(1)
		s3Error(w, r, http.StatusServiceUnavailable, "SlowDown", "Please reduce your request rate.")
	case InternalError:
		p.counts[kind].Add(1)
		s3Error(w, r, http.StatusInternalServerError, "InternalError", "We encountered an internal error. Please try again.")
	case ResetBefore:
		p.counts[kind].Add(1)
		abort(w)
	case ResetAfter:
		p.resetAfter(w, r)
	case TruncateBody:
		p.truncate(w, r)
	case Stall:
		p.counts[kind].Add(1)
		// Take the body first: only then does the server watch the
		// connection, and cancel the request when the client leaves.
		body, err := io.ReadAll(r.Body)
		if err != nil {
			abort(w)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		if p.sleep(r.Context(), p.cfg.StallFor) {
			p.forward(w, r)
			return
		}
		if r.Context().Err() != nil {
			p.stallsAbandoned.Add(1)
		}
		abort(w)
	default:
		p.forward(w, r)
	}
}

// sleep waits d, and reports false if the client or Close ended it first.
func (p *Proxy) sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
	case <-p.done:
	}
	return false
}

// upstreamRequest is r as it should go to the upstream: same method, path,
// query, headers, body and, above all, Host (the signature covers it).
func (p *Proxy) upstreamRequest(r *http.Request) *http.Request {
	out := r.Clone(r.Context())
	out.RequestURI = ""
	out.URL.Scheme = p.upstream.Scheme
	out.URL.Host = p.upstream.Host
	out.Host = r.Host
	out.Header.Del("Connection")
	if r.ContentLength == 0 {
		out.Body = nil // no "Transfer-Encoding: chunked" for an empty body
	}
	return out
}

// forward passes r to the upstream and its reply back, unchanged.
func (p *Proxy) forward(w http.ResponseWriter, r *http.Request) {
	resp, err := p.transport.RoundTrip(p.upstreamRequest(r))
	if err != nil {
		http.Error(w, "faultproxy: upstream: "+err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	io.Copy(w, resp.Body)
}

// resetAfter has the upstream handle r completely, then resets the
// client's connection instead of replying.
func (p *Proxy) resetAfter(w http.ResponseWriter, r *http.Request) {
	resp, err := p.transport.RoundTrip(p.upstreamRequest(r))
	if err != nil {
		http.Error(w, "faultproxy: upstream: "+err.Error(), http.StatusBadGateway)
		return
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	p.counts[ResetAfter].Add(1)
	abort(w)
}

// truncate forwards a GET and sends the upstream's status and headers,
// with the full Content-Length, but only half the body, then closes the
// connection. Replies without a body of at least 2 bytes pass unharmed.
func (p *Proxy) truncate(w http.ResponseWriter, r *http.Request) {
	resp, err := p.transport.RoundTrip(p.upstreamRequest(r))
	if err != nil {
		http.Error(w, "faultproxy: upstream: "+err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	ok := resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusPartialContent
	if !ok || resp.ContentLength < 2 {
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		io.Copy(w, resp.Body)
		return
	}
	conn, buf, err := hijack(w)
	if err != nil {
		return
	}
	defer conn.Close()
	p.counts[TruncateBody].Add(1)
	fmt.Fprintf(buf, "HTTP/1.1 %s\r\n", resp.Status)
	resp.Header.Set("Content-Length", fmt.Sprint(resp.ContentLength))
	resp.Header.Set("Connection", "close")
	resp.Header.Write(buf)
	buf.WriteString("\r\n")
	io.CopyN(buf, resp.Body, resp.ContentLength/2)
	buf.Flush()
}

// s3Error replies with an S3 error document.
func s3Error(w http.ResponseWriter, r *http.Request, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/xml")
	w.Header().Set("x-amz-request-id", "faultproxy")
	w.WriteHeader(status)
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>`+"\n"+
		`<Error><Code>%s</Code><Message>%s</Message><Resource>%s</Resource><RequestId>faultproxy</RequestId></Error>`,
		code, msg, xmlEscape(r.URL.Path))
}

func xmlEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;", "'", "&apos;").Replace(s)
}

// hijack takes the client's connection over from the HTTP server.
func hijack(w http.ResponseWriter) (net.Conn, *bufio.ReadWriter, error) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("faultproxy: connection cannot be hijacked")
	}
	conn, buf, err := hj.Hijack()
	if err != nil {
		return nil, nil, err
	}
	return conn, buf, nil
}

// abort resets the client's connection of a request given up on (the
// client left, or the proxy is closing): never an empty reply.
func abort(w http.ResponseWriter) {
	if conn, _, err := hijack(w); err == nil {
		reset(conn)
	}
}

// reset closes conn with SO_LINGER 0, so that the peer gets a TCP RST
// ("connection reset by peer") rather than an orderly end of stream.
func reset(conn net.Conn) {
	if tc, ok := conn.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	conn.Close()
}

package main

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"sort"
	"strings"
	"sync"
)

// requestClass names the kind of S3 request r is, for billing: PUT (objects
// and multipart parts), GET, HEAD, DELETE (single or multi-object), LIST,
// POST (multipart create and complete) or OTHER (bucket operations).
func requestClass(r *http.Request) string {
	path := strings.TrimPrefix(r.URL.Path, "/")
	_, key, _ := strings.Cut(path, "/") // path-style: bucket/key
	q := r.URL.Query()
	switch r.Method {
	case http.MethodHead:
		return "HEAD"
	case http.MethodDelete:
		return "DELETE"
	case http.MethodPost:
		if q.Has("delete") {
			return "DELETE"
		}
		return "POST"
	case http.MethodPut:
		if key == "" {
			return "OTHER"
		}
		return "PUT"
	case http.MethodGet:
		if key != "" {
			return "GET"
		}
		if len(q) == 0 || q.Has("list-type") || q.Has("prefix") || q.Has("marker") || q.Has("delimiter") {
			return "LIST"
		}
	}
	return "OTHER"
}

// counter counts requests by class.
type counter struct {
	mu     sync.Mutex
	counts map[string]int64
}

func (c *counter) add(class string) {
	c.mu.Lock()
	c.counts[class]++
	c.mu.Unlock()
}

// format renders "class count" lines, every class present, sorted.
func (c *counter) format() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var names []string
	for _, n := range []string{"PUT", "GET", "HEAD", "DELETE", "LIST", "POST", "OTHER"} {
		if _, ok := c.counts[n]; !ok {
			c.counts[n] = 0
		}
	}
	for n := range c.counts {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, n := range names {
		fmt.Fprintf(&b, "%s %d\n", n, c.counts[n])
	}
	return b.String()
}

func (c *counter) reset() {
	c.mu.Lock()
	c.counts = map[string]int64{}
	c.mu.Unlock()
}

// proxyHandler forwards S3 requests to target unchanged (the Host header is
// kept, so signatures stay valid) and counts them. /.bench/counts prints the
// counts and /.bench/reset zeroes them; no S3 bucket name starts with a dot.
func proxyHandler(target *url.URL, c *counter) http.Handler {
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Host = pr.In.Host
		},
		Transport: &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 256},
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/.bench/counts":
			fmt.Fprint(w, c.format())
			return
		case "/.bench/reset":
			c.reset()
			return
		}
		c.add(requestClass(r))
		rp.ServeHTTP(w, r)
	})
}

func runProxy(args []string) error {
	fs := flag.NewFlagSet("proxy", flag.ContinueOnError)
	target := fs.String("target", os.Getenv("AWS_ENDPOINT_URL_S3"), "S3 endpoint to forward to")
	listen := fs.String("listen", "127.0.0.1:0", "address to listen on")
	addrFile := fs.String("addr-file", "", "write the listening address here once ready")
	if err := fs.Parse(args); err != nil {
		return err
	}
	u, err := url.Parse(*target)
	if err != nil || u.Host == "" {
		return fmt.Errorf("bad -target %q", *target)
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	if *addrFile != "" {
		tmp := *addrFile + ".tmp"
		if err := os.WriteFile(tmp, []byte(ln.Addr().String()+"\n"), 0o644); err != nil {
			return err
		}
		if err := os.Rename(tmp, *addrFile); err != nil {
			return err
		}
	}
	c := &counter{counts: map[string]int64{}}
	err = http.Serve(ln, proxyHandler(u, c))
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

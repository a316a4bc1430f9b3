package main

// Profiling hook for performance work (issue 6): with S3BLK_PPROF set to a
// loopback address, any s3blk process (the mount daemon, put, get) serves
// net/http/pprof there. Unset, nothing listens.

import (
	"log/slog"
	"net"
	"net/http"
	_ "net/http/pprof" // registers /debug/pprof on http.DefaultServeMux
	"os"
)

func startPprof() {
	addr := os.Getenv("S3BLK_PPROF")
	if addr == "" {
		return
	}
	host, _, err := net.SplitHostPort(addr)
	if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
		slog.Warn("S3BLK_PPROF must be a loopback address such as 127.0.0.1:6060; not profiling", "addr", addr)
		return
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		slog.Warn("S3BLK_PPROF: cannot listen", "addr", addr, "err", err)
		return
	}
	go http.Serve(ln, nil)
}

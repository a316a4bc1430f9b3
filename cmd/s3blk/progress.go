package main

import (
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/term"
)

// progress draws one status line on stderr while a long operation runs:
// bytes done, rate, and (when the total is known) percentage and ETA. It is
// drawn only when stderr is a terminal. A nil *progress is valid and draws
// nothing, so callers need no conditionals:
//
//	p := newProgress(total) // 0 = unknown total; nil if stderr is no terminal
//	if quiet { p = nil }
//	p.Add(n)                // from any goroutine
//	p.Done()                // final line and newline; stops redrawing
type progress struct {
	out      io.Writer
	total    int64
	done     atomic.Int64
	start    time.Time
	stop     chan struct{}
	stopped  chan struct{}
	mu       sync.Mutex // serializes drawing and Log
	finished bool
}

// newProgress starts a progress line for total bytes (0 = unknown), or
// returns nil if stderr is not a terminal.
func newProgress(total int64) *progress {
	if !term.IsTerminal(int(os.Stderr.Fd())) {
		return nil
	}
	return startProgress(os.Stderr, total, 500*time.Millisecond)
}

// startProgress draws on out every interval.
func startProgress(out io.Writer, total int64, interval time.Duration) *progress {
	p := &progress{out: out, total: total, start: time.Now(), stop: make(chan struct{}), stopped: make(chan struct{})}
	go func() {
		defer close(p.stopped)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-t.C:
				p.draw(false)
			}
		}
	}()
	return p
}

// Add counts n more bytes done.
func (p *progress) Add(n int64) {
	if p != nil {
		p.done.Add(n)
	}
}

// Log prints a line of its own above the progress line (on stderr if p is nil).
func (p *progress) Log(format string, args ...any) {
	if p == nil {
		fmt.Fprintf(os.Stderr, format+"\n", args...)
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.out, "\r\033[K"+format+"\n", args...)
}

// Done draws the final line and ends it. Calling it twice is harmless.
func (p *progress) Done() {
	if p == nil {
		return
	}
	p.mu.Lock()
	if p.finished {
		p.mu.Unlock()
		return
	}
	p.finished = true
	p.mu.Unlock()
	close(p.stop)
	<-p.stopped
	p.draw(true)
}

func (p *progress) draw(final bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprint(p.out, "\r\033[K"+p.line(time.Since(p.start)))
	if final {
		fmt.Fprintln(p.out)
	}
}

// line renders the status for elapsed time.
func (p *progress) line(elapsed time.Duration) string {
	done := p.done.Load()
	rate := 0.0
	if s := elapsed.Seconds(); s > 0 {
		rate = float64(done) / s
	}
	s := FormatSize(done)
	if p.total > 0 {
		s += fmt.Sprintf(" of %s (%d%%)", FormatSize(p.total), done*100/p.total)
	}
	s += fmt.Sprintf("  %s/s", FormatSize(int64(rate)))
	if p.total > 0 && rate > 0 && done < p.total {
		eta := time.Duration(float64(p.total-done) / rate * float64(time.Second))
		s += "  ETA " + formatETA(eta)
	}
	return s + "  " + formatETA(elapsed) + " elapsed"
}

// formatETA renders a duration as m:ss or h:mm:ss.
func formatETA(d time.Duration) string {
	sec := int64(d.Round(time.Second) / time.Second)
	if sec >= 3600 {
		return fmt.Sprintf("%d:%02d:%02d", sec/3600, sec/60%60, sec%60)
	}
	return fmt.Sprintf("%d:%02d", sec/60, sec%60)
}

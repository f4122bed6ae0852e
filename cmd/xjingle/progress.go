package main

import (
	"fmt"
	"io"
	"math"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
	"github.com/xjingle/xjingle/jingle/filetransfer"
	"golang.org/x/term"
)

// Throttle detection: a transfer that, after throttleAfter, moves less than
// throttleRate bytes per second is most likely held back by the server's
// rate limit (Debian's Prosody config limits c2s to 10 kB/s), and we say so
// instead of looking hung.
const (
	throttleAfter = 8 * time.Second
	throttleRate  = 64 << 10
	pollInterval  = 200 * time.Millisecond
)

// tracked is what the progress display reads of a transfer
// (*filetransfer.Transfer).
type tracked interface {
	Name() string
	Size() int64
	// Offset is where the data starts in the file (a resumed transfer);
	// it may change from 0 once, when the receiver accepted.
	Offset() int64
	Bytes() int64
	Direction() filetransfer.Direction
	Done() <-chan struct{}
	Result() *filetransfer.Result
}

var _ tracked = (*filetransfer.Transfer)(nil)

// progress shows one bar per transfer on a terminal, and under them one
// overall bar (files done / total, bytes, rate, ETA) when there are several
// files, and watches every transfer for a throttled stream. It owns one
// goroutine per transfer; Wait waits for them.
//
// A resumed transfer's bar starts at its offset: the rate and the ETA count
// only the bytes that cross the stream.
type progress struct {
	p    *mpb.Progress // nil: no bars
	warn io.Writer
	wg   sync.WaitGroup

	// The overall view. With expect (send), the totals are known ahead;
	// else (receive) they grow with every transfer seen and the overall
	// bar appears with the second one. The decorators read only the
	// atomics (no lock is held in mpb's callbacks: bar methods are called
	// under mu).
	mu         sync.Mutex
	fixed      bool
	totalBytes int64 // sum of sizes
	overall    *mpb.Bar
	files      atomic.Int64 // total files (fixed) or seen
	filesDone  atomic.Int64
	// Bytes over all files: those that crossed a stream, and the offsets
	// of resumed transfers (not a rate sample). One goroutine (ovLoop)
	// feeds them to the overall bar: mpb's EWMA is not safe for
	// concurrent updates.
	crossed, jumped atomic.Int64
	ovStop          chan struct{}
	ovWG            sync.WaitGroup
}

func newProgress(g *globals) *progress {
	var p *mpb.Progress
	if f, ok := g.stderr.(*os.File); ok && !g.json && term.IsTerminal(int(f.Fd())) {
		p = mpb.New(mpb.WithOutput(g.stderr), mpb.WithRefreshRate(150*time.Millisecond))
	}
	return newProgressOn(p, g.stderr)
}

// newProgressOn returns a progress drawing on p (nil: no bars), warning on
// warn.
func newProgressOn(p *mpb.Progress, warn io.Writer) *progress {
	return &progress{p: p, warn: warn}
}

// expect announces the files that will be tracked (send): with more than
// one, the overall bar shows at once with these totals.
func (pr *progress) expect(files int, bytes int64) {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	pr.fixed, pr.totalBytes = true, bytes
	pr.files.Store(int64(files))
	if files > 1 {
		pr.addOverallLocked()
	}
}

// addOverallLocked adds the overall bar, last on the screen.
func (pr *progress) addOverallLocked() {
	if pr.p == nil || pr.overall != nil {
		return
	}
	pr.overall = pr.p.AddBar(pr.totalBytes,
		mpb.BarPriority(math.MaxInt),
		mpb.PrependDecorators(
			decor.Any(func(decor.Statistics) string {
				return fmt.Sprintf("= files %d/%d ", pr.filesDone.Load(), pr.files.Load())
			}, decor.WCSyncSpaceR),
			decor.CountersKibiByte("% .1f / % .1f"),
		),
		mpb.AppendDecorators(
			decor.EwmaSpeed(decor.SizeB1024(0), "% .1f", 30),
			decor.Name(" ETA "),
			decor.EwmaETA(decor.ET_STYLE_GO, 30),
		),
	)
	// What the transfers seen before did.
	pr.overall.SetCurrent(pr.jumped.Load() + pr.crossed.Load())
	pr.ovStop = make(chan struct{})
	pr.ovWG.Add(1)
	go pr.ovLoop(pr.overall, pr.jumped.Load(), pr.crossed.Load())
}

// ovLoop moves the overall bar until Wait stops it.
func (pr *progress) ovLoop(bar *mpb.Bar, jumped, crossed int64) {
	defer pr.ovWG.Done()
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	update := func() {
		if j := pr.jumped.Load(); j != jumped {
			bar.IncrInt64(j - jumped)
			jumped = j
		}
		c := pr.crossed.Load()
		bar.EwmaIncrInt64(c-crossed, pollInterval)
		crossed = c
	}
	for {
		select {
		case <-tick.C:
			update()
		case <-pr.ovStop:
			update()
			return
		}
	}
}

// see counts a transfer in the overall view (receive: totals grow).
func (pr *progress) see(t tracked) *mpb.Bar {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	if !pr.fixed {
		n := pr.files.Add(1)
		if t.Size() > 0 {
			pr.totalBytes += t.Size()
		}
		if n > 1 {
			if pr.overall == nil {
				pr.addOverallLocked()
			} else {
				pr.overall.SetTotal(pr.totalBytes, false)
			}
		}
	}
	return pr.overall
}

// overallBar is the overall bar, or nil.
func (pr *progress) overallBar() *mpb.Bar {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	return pr.overall
}

// track follows t until it is done. It does not block.
func (pr *progress) track(t *filetransfer.Transfer) { pr.follow(t) }

func (pr *progress) follow(t tracked) {
	pr.see(t)
	var bar *mpb.Bar
	if pr.p != nil {
		total := t.Size()
		if total < 0 {
			total = 0
		}
		arrow := "→"
		if t.Direction() == filetransfer.Incoming {
			arrow = "←"
		}
		bar = pr.p.AddBar(total,
			mpb.PrependDecorators(
				decor.Name(fmt.Sprintf("%s %s ", arrow, truncate(t.Name(), 28)), decor.WCSyncSpaceR),
				decor.CountersKibiByte("% .1f / % .1f"),
			),
			mpb.AppendDecorators(
				decor.EwmaSpeed(decor.SizeB1024(0), "% .1f", 30),
				decor.Name(" ETA "),
				decor.EwmaETA(decor.ET_STYLE_GO, 30),
			),
		)
	}
	pr.wg.Add(1)
	go func() {
		defer pr.wg.Done()
		start := time.Now()
		warned := false
		tick := time.NewTicker(pollInterval)
		defer tick.Stop()
		var last, lastOff int64
		// moved moves the bars to t's position: the offset jump (a
		// resumed transfer) is not a rate sample, the crossed bytes are.
		moved := func() int64 {
			n := t.Bytes()
			if off := t.Offset(); off != lastOff {
				pr.jumped.Add(off - lastOff)
				if bar != nil {
					bar.IncrInt64(off - lastOff)
				}
				lastOff = off
			}
			pr.crossed.Add(n - last)
			if bar != nil {
				bar.EwmaIncrInt64(n-last, pollInterval)
			}
			last = n
			return n
		}
		moved()
		for {
			select {
			case <-t.Done():
				n := moved()
				r := t.Result()
				failed := r == nil || r.Err != nil
				if bar != nil {
					if failed {
						bar.Abort(false)
					} else {
						bar.SetTotal(-1, true)
					}
				}
				pr.finished(t, lastOff+n, failed)
				return
			case <-tick.C:
				n := moved()
				el := time.Since(start)
				if !warned && el > throttleAfter && n > 0 && float64(n)/el.Seconds() < throttleRate && (t.Size() < 0 || lastOff+n < t.Size()) {
					warned = true
					fmt.Fprintf(pr.warn, "xjingle: %s is moving at only %.1f kB/s: the XMPP server is probably rate-limiting this stream (for Prosody, raise limits.c2s.rate; see README)\n",
						t.Name(), float64(n)/el.Seconds()/1000)
				}
			}
		}
	}()
}

// finished records the end of a transfer that reached pos in the file: a
// file that did not arrive (failed, or a range that ends early) takes its
// missing bytes out of the overall total.
func (pr *progress) finished(t tracked, pos int64, failed bool) {
	if !failed {
		pr.filesDone.Add(1)
	}
	pr.mu.Lock()
	defer pr.mu.Unlock()
	if size := t.Size(); size > pos {
		pr.totalBytes -= size - pos
		if pr.overall != nil {
			pr.overall.SetTotal(pr.totalBytes, false)
		}
	}
}

// Wait waits for every tracked transfer and the bars.
func (pr *progress) Wait() {
	pr.wg.Wait()
	if ov := pr.overallBar(); ov != nil {
		close(pr.ovStop)
		pr.ovWG.Wait()
		ov.SetTotal(-1, true)
	}
	if pr.p != nil {
		pr.p.Wait()
	}
}

func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

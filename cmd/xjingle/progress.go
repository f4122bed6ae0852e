package main

import (
	"fmt"
	"io"
	"os"
	"sync"
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

// progress shows one bar per transfer on a terminal and watches every
// transfer for a throttled stream. It owns one goroutine per transfer; Wait
// waits for them.
type progress struct {
	p    *mpb.Progress // nil: no bars
	warn io.Writer
	wg   sync.WaitGroup
}

func newProgress(g *globals) *progress {
	pr := &progress{warn: g.stderr}
	if f, ok := g.stderr.(*os.File); ok && !g.json && term.IsTerminal(int(f.Fd())) {
		pr.p = mpb.New(mpb.WithOutput(g.stderr), mpb.WithRefreshRate(150*time.Millisecond))
	}
	return pr
}

// track follows t until it is done. It does not block.
func (pr *progress) track(t *filetransfer.Transfer) {
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
		last := int64(0)
		for {
			select {
			case <-t.Done():
				if bar != nil {
					n := t.Bytes()
					bar.EwmaIncrInt64(n-last, pollInterval)
					if r := t.Result(); r != nil && r.Err != nil {
						bar.Abort(false)
					} else {
						bar.SetTotal(n, true)
					}
				}
				return
			case <-tick.C:
				n := t.Bytes()
				if bar != nil {
					bar.EwmaIncrInt64(n-last, pollInterval)
				}
				last = n
				el := time.Since(start)
				if !warned && el > throttleAfter && n > 0 && float64(n)/el.Seconds() < throttleRate && (t.Size() < 0 || n < t.Size()) {
					warned = true
					fmt.Fprintf(pr.warn, "xjingle: %s is moving at only %.1f kB/s: the XMPP server is probably rate-limiting this stream (for Prosody, raise limits.c2s.rate; see README)\n",
						t.Name(), float64(n)/el.Seconds()/1000)
				}
			}
		}
	}()
}

// Wait waits for every tracked transfer and the bars.
func (pr *progress) Wait() {
	pr.wg.Wait()
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

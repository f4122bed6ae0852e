package main

import (
	"bytes"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vbauerster/mpb/v8"
	"github.com/xjingle/xjingle/jingle/filetransfer"
	"go.uber.org/goleak"
)

// fakeTransfer is a transfer the test moves by hand.
type fakeTransfer struct {
	name      string
	size      int64
	off       atomic.Int64
	n         atomic.Int64
	done      chan struct{}
	res       *filetransfer.Result
	closeOnce sync.Once
}

func newFake(name string, size int64) *fakeTransfer {
	return &fakeTransfer{name: name, size: size, done: make(chan struct{})}
}

func (f *fakeTransfer) Name() string                      { return f.name }
func (f *fakeTransfer) Size() int64                       { return f.size }
func (f *fakeTransfer) Offset() int64                     { return f.off.Load() }
func (f *fakeTransfer) Bytes() int64                      { return f.n.Load() }
func (f *fakeTransfer) Direction() filetransfer.Direction { return filetransfer.Outgoing }
func (f *fakeTransfer) Done() <-chan struct{}             { return f.done }
func (f *fakeTransfer) Result() *filetransfer.Result {
	select {
	case <-f.done:
		return f.res
	default:
		return nil
	}
}

func (f *fakeTransfer) finish(err error) {
	f.res = &filetransfer.Result{Name: f.name, Err: err, Bytes: f.n.Load(), Offset: f.off.Load()}
	f.closeOnce.Do(func() { close(f.done) })
}

// syncBuffer is a bytes.Buffer safe for mpb's writer goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestProgressOverall: with several files the overall view counts files
// and bytes; a resumed transfer counts from its offset (the offset is a
// jump, not a rate sample); a failed file leaves the count of files done
// and takes its missing bytes out of the total.
func TestProgressOverall(t *testing.T) {
	defer goleak.VerifyNone(t)
	for _, bars := range []bool{true, false} {
		var out syncBuffer
		var p *mpb.Progress
		if bars {
			p = mpb.New(mpb.WithOutput(&out), mpb.WithWidth(120), mpb.WithAutoRefresh(), mpb.WithRefreshRate(10*time.Millisecond))
		}
		pr := newProgressOn(p, &bytes.Buffer{})
		a, b, c := newFake("resumed.bin", 1000), newFake("whole.bin", 500), newFake("broken.bin", 300)
		pr.expect(3, 1800)
		pr.follow(a)
		pr.follow(b)
		pr.follow(c)
		a.off.Store(400) // the receiver asked for the rest
		a.n.Store(600)
		b.n.Store(500)
		c.n.Store(100)
		a.finish(nil)
		b.finish(nil)
		c.finish(errors.New("peer gone"))
		pr.Wait()
		if got := pr.filesDone.Load(); got != 2 {
			t.Errorf("bars=%v: files done %d, want 2", bars, got)
		}
		if got := pr.jumped.Load() + pr.crossed.Load(); got != 1600 || pr.jumped.Load() != 400 {
			t.Errorf("bars=%v: position %d, want 1600 (offset 400 + 600 + 500 + 100)", bars, got)
		}
		if pr.totalBytes != 1600 {
			t.Errorf("bars=%v: total %d, want 1600 (the broken file's 200 missing bytes out)", bars, pr.totalBytes)
		}
		if bars {
			s := out.String()
			if !strings.Contains(s, "files 2/3") {
				t.Errorf("no overall bar in:\n%s", s)
			}
			for _, name := range []string{"resumed.bin", "whole.bin", "broken.bin"} {
				if !strings.Contains(s, name) {
					t.Errorf("no bar for %s", name)
				}
			}
		}
	}
}

// TestProgressReceiveGrows: receiving, the overall view appears with the
// second transfer and its totals grow.
func TestProgressReceiveGrows(t *testing.T) {
	defer goleak.VerifyNone(t)
	var out syncBuffer
	p := mpb.New(mpb.WithOutput(&out), mpb.WithWidth(120), mpb.WithAutoRefresh(), mpb.WithRefreshRate(10*time.Millisecond))
	pr := newProgressOn(p, &bytes.Buffer{})
	a := newFake("one", 100)
	pr.follow(a)
	if pr.overallBar() != nil {
		t.Fatal("overall bar for a single file")
	}
	a.n.Store(100)
	b := newFake("two", 50)
	pr.follow(b)
	if pr.overallBar() == nil || pr.files.Load() != 2 || pr.totalBytes != 150 {
		t.Fatalf("after the second transfer: bar %v, files %d, total %d", pr.overallBar() != nil, pr.files.Load(), pr.totalBytes)
	}
	b.n.Store(50)
	a.finish(nil)
	b.finish(nil)
	pr.Wait()
	if !strings.Contains(out.String(), "files 2/2") {
		t.Errorf("no overall bar in:\n%s", out.String())
	}
}

func TestParseRange(t *testing.T) {
	for in, want := range map[string]filetransfer.Range{
		"1000:5000": {Offset: 1000, Length: 5000},
		"1000":      {Offset: 1000},
		"0:1":       {Length: 1},
	} {
		got, err := parseRange(in)
		if err != nil || got.Offset != want.Offset || got.Length != want.Length {
			t.Errorf("parseRange(%q) = %+v, %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "x", "-1", "10:0", "10:-5", "10:", ":5", "1:2:3"} {
		if _, err := parseRange(bad); err == nil {
			t.Errorf("parseRange(%q) accepted", bad)
		}
	}
}

func TestSendSummary(t *testing.T) {
	var s sendSummary
	s.add(&filetransfer.Result{Size: 2_000_000, Bytes: 2_000_000, Verified: true}, nil)
	s.add(&filetransfer.Result{Size: 3_000_000, Bytes: 1_000_000, Offset: 2_000_000, Verified: true}, nil)
	s.add(&filetransfer.Result{Size: 5, Bytes: 1}, errors.New("x"))
	if got, want := s.line(3), "2 of 3 files sent, 5.0 MB (3.0 MB over the wire)"; got != want {
		t.Errorf("summary %q, want %q", got, want)
	}
	if got := resumed(&filetransfer.Result{Offset: 3 << 20, Bytes: 1}); got != "  resumed at 3.0 MiB" {
		t.Errorf("resumed note %q", got)
	}
}

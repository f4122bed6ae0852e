// Package deadline is the settable deadline behind the net.Conn
// implementations of package ibb and transports/inline: a channel that is
// closed when the deadline passes, re-armed by Set (the design of
// net.Pipe's). It is not a timer service and knows nothing of connections.
package deadline

import (
	"sync"
	"time"
)

// Deadline is a settable deadline: Wait returns a channel that is closed
// when the deadline passes. Setting a new deadline re-arms it; the zero time
// means none. Its methods are safe for concurrent use.
type Deadline struct {
	mu     sync.Mutex
	timer  *time.Timer
	cancel chan struct{} // closed when the deadline passed; never nil
}

// New returns a Deadline with no deadline set.
func New() *Deadline { return &Deadline{cancel: make(chan struct{})} }

// Set arms the deadline for t: a t in the past closes Wait's channel now,
// the zero time disarms it.
func (d *Deadline) Set(t time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.timer != nil && !d.timer.Stop() {
		<-d.cancel // the timer fired and closed cancel: wait is over
	}
	d.timer = nil
	closed := Closed(d.cancel)
	if t.IsZero() {
		if closed {
			d.cancel = make(chan struct{})
		}
		return
	}
	if dur := time.Until(t); dur > 0 {
		if closed {
			d.cancel = make(chan struct{})
		}
		ch := d.cancel
		d.timer = time.AfterFunc(dur, func() { close(ch) })
		return
	}
	if !closed {
		close(d.cancel)
	}
}

// Wait returns a channel that is closed when the current deadline passes.
func (d *Deadline) Wait() <-chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cancel
}

// Closed reports whether c is closed, without blocking.
func Closed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

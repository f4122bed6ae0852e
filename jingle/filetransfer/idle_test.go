package filetransfer

import (
	"errors"
	"net"
	"os"
	"testing"
	"time"
)

// deadlineConn counts deadline updates of one end of a net.Pipe.
type deadlineConn struct {
	net.Conn
	reads, writes int
}

func (c *deadlineConn) SetReadDeadline(t time.Time) error {
	c.reads++
	return c.Conn.SetReadDeadline(t)
}

func (c *deadlineConn) SetWriteDeadline(t time.Time) error {
	c.writes++
	return c.Conn.SetWriteDeadline(t)
}

// TestIdleConnSetsDeadlinesSparingly: a stream that moves quickly does not
// pay a deadline update per read or write, and one that stops still fails
// within the idle timeout.
func TestIdleConnSetsDeadlinesSparingly(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	dc := &deadlineConn{Conn: a}
	const idle = 10 * time.Second
	ic := &idleConn{c: dc, idle: idle}
	done := make(chan error, 1)
	go func() {
		buf := make([]byte, 1)
		for range 1000 {
			if _, err := b.Read(buf); err != nil {
				done <- err
				return
			}
		}
		_, err := b.Write(make([]byte, 1000))
		done <- err
	}()
	for range 1000 {
		if _, err := ic.Write([]byte{1}); err != nil {
			t.Fatal(err)
		}
	}
	buf := make([]byte, 1)
	for range 1000 {
		if _, err := ic.Read(buf); err != nil {
			t.Fatal(err)
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// 2000 operations well within idle/idleSlack of each other (a slow
	// machine may need one more update each).
	if dc.reads > 2 || dc.writes > 2 || dc.reads == 0 || dc.writes == 0 {
		t.Errorf("%d read and %d write deadline updates for 1000 reads and writes, want 1 or 2 each", dc.reads, dc.writes)
	}

	// A stall: nothing comes; the read fails after about the idle
	// timeout, not earlier than idle-idle/idleSlack.
	ic2 := &idleConn{c: a, idle: 160 * time.Millisecond}
	start := time.Now()
	_, err := ic2.Read(buf)
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read on a stalled stream: %v, want a deadline error", err)
	}
	if d := time.Since(start); d < 150*time.Millisecond || d > 5*time.Second {
		t.Errorf("stall detected after %v, want about 160 ms", d)
	}
}

package inline

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"github.com/xjingle/xjingle/internal/deadline"
	"mellium.im/xmpp/jid"
)

// CloseSendTimeout bounds the send Close does when CloseWrite was not
// called (one IQ round trip).
const CloseSendTimeout = 10 * time.Second

// Addr is an end of an inline stream: a full JID and the Jingle sid.
type Addr struct {
	JID jid.JID
	SID string
}

// Network implements net.Addr.
func (a Addr) Network() string { return "jingle-inline" }

// String implements net.Addr: "jid#sid".
func (a Addr) String() string { return a.JID.String() + "#" + a.SID }

// sendFunc delivers written bytes to the peer: with eof, the last (for the
// Jingle transport: the only) chunk. It returns when the peer has them.
type sendFunc func(ctx context.Context, b []byte, eof bool) error

// Conn is one inline stream as a net.Conn. Write buffers (at most MaxSize
// bytes in all, else ErrTooLarge); CloseWrite sends the buffered bytes in
// one transport-info and ends our direction; Close does the same if
// CloseWrite was not called, then releases the Conn. Read returns the bytes
// the peer sent, then io.EOF. Deadlines apply to Read, Write and the send of
// CloseWrite; Close unblocks every pending call.
type Conn struct {
	laddr, raddr Addr
	max          int64
	send         sendFunc // nil: a side that only receives

	wmu sync.Mutex // one Write / send at a time

	mu      sync.Mutex
	wbuf    []byte
	written int64
	wdone   bool // CloseWrite or Close took the write side
	rbuf    []byte
	reof    bool
	rerr    error
	ready   chan struct{} // closed when the read side got data, EOF or an error
	change  chan struct{} // closed and renewed when the read side changes

	closed    chan struct{}
	closeOnce sync.Once
	rdl, wdl  *deadline.Deadline
}

var _ net.Conn = (*Conn)(nil)

func newConn(laddr, raddr Addr, max int64, send sendFunc) *Conn {
	return &Conn{
		laddr: laddr, raddr: raddr, max: max, send: send,
		ready: make(chan struct{}), change: make(chan struct{}), closed: make(chan struct{}),
		rdl: deadline.New(), wdl: deadline.New(),
	}
}

// MaxSize is the most bytes this Conn sends or accepts.
func (c *Conn) MaxSize() int64 { return c.max }

// LocalAddr implements net.Conn.
func (c *Conn) LocalAddr() net.Addr { return c.laddr }

// RemoteAddr implements net.Conn.
func (c *Conn) RemoteAddr() net.Addr { return c.raddr }

// SetDeadline implements net.Conn.
func (c *Conn) SetDeadline(t time.Time) error {
	c.rdl.Set(t)
	c.wdl.Set(t)
	return nil
}

// SetReadDeadline implements net.Conn.
func (c *Conn) SetReadDeadline(t time.Time) error { c.rdl.Set(t); return nil }

// SetWriteDeadline implements net.Conn.
func (c *Conn) SetWriteDeadline(t time.Time) error { c.wdl.Set(t); return nil }

func (c *Conn) opErr(op string, err error) error {
	return &net.OpError{Op: op, Net: c.laddr.Network(), Source: c.laddr, Addr: c.raddr, Err: err}
}

// notifyLocked wakes whoever waits on the read side.
func (c *Conn) notifyLocked() {
	close(c.change)
	c.change = make(chan struct{})
}

// Read implements net.Conn.
func (c *Conn) Read(b []byte) (int, error) {
	for {
		c.mu.Lock()
		switch {
		case deadline.Closed(c.closed):
			c.mu.Unlock()
			return 0, c.opErr("read", net.ErrClosed)
		case deadline.Closed(c.rdl.Wait()):
			c.mu.Unlock()
			return 0, c.opErr("read", os.ErrDeadlineExceeded)
		case len(b) == 0:
			c.mu.Unlock()
			return 0, nil
		case len(c.rbuf) > 0:
			n := copy(b, c.rbuf)
			c.rbuf = c.rbuf[n:]
			if len(c.rbuf) == 0 {
				c.rbuf = nil
				c.notifyLocked() // room for the next chunk
			}
			c.mu.Unlock()
			return n, nil
		case c.rerr != nil:
			err := c.rerr
			c.mu.Unlock()
			return 0, c.opErr("read", err)
		case c.reof:
			c.mu.Unlock()
			return 0, io.EOF
		}
		ch := c.change
		c.mu.Unlock()
		select {
		case <-ch:
		case <-c.closed:
		case <-c.rdl.Wait():
		}
	}
}

// Write implements net.Conn: it buffers b. More than MaxSize bytes in all
// are refused with ErrTooLarge; nothing of b is taken then.
func (c *Conn) Write(b []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.writeLocked(b)
}

func (c *Conn) writeLocked(b []byte) (int, error) {
	if deadline.Closed(c.closed) {
		return 0, c.opErr("write", net.ErrClosed)
	}
	if deadline.Closed(c.wdl.Wait()) {
		return 0, c.opErr("write", os.ErrDeadlineExceeded)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.send == nil:
		return 0, c.opErr("write", fmt.Errorf("inline: this side only receives: %w", ErrWriteClosed))
	case c.wdone:
		return 0, c.opErr("write", ErrWriteClosed)
	case c.written+int64(len(b)) > c.max:
		return 0, fmt.Errorf("inline: write %d bytes after %d: %w (max-size %d)", len(b), c.written, ErrTooLarge, c.max)
	}
	c.wbuf = append(c.wbuf, b...)
	c.written += int64(len(b))
	return len(b), nil
}

// flushLocked sends the buffered bytes (wmu held); on failure they stay
// buffered. ctx ends the send; so do Close and the write deadline unless
// final is set by Close itself.
func (c *Conn) flushLocked(ctx context.Context, eof, fromClose bool) error {
	c.mu.Lock()
	data := c.wbuf
	c.wbuf = nil
	c.mu.Unlock()
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var timedOut bool
	if !fromClose {
		wdl := c.wdl.Wait()
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case <-c.closed:
			case <-wdl:
				timedOut = true
			case <-ctx.Done():
				return
			}
			cancel()
		}()
	}
	err := c.send(ctx, data, eof)
	cancel()
	wg.Wait()
	if err == nil {
		return nil
	}
	c.mu.Lock()
	c.wbuf = append(data, c.wbuf...)
	c.mu.Unlock()
	switch {
	case timedOut:
		return c.opErr("write", os.ErrDeadlineExceeded)
	case !fromClose && deadline.Closed(c.closed):
		return c.opErr("write", net.ErrClosed)
	}
	return c.opErr("write", err)
}

// CloseWrite sends the buffered bytes (possibly none: an empty stream) in
// one transport-info and ends our direction; the peer reads them, then
// io.EOF. It returns once the peer acknowledged them, with its error (a
// *jingle.StanzaError, wrapped) if it refused them. A second call returns
// nil. The write deadline and Close end the wait.
func (c *Conn) CloseWrite() error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if deadline.Closed(c.closed) {
		return c.opErr("close", net.ErrClosed)
	}
	c.mu.Lock()
	if c.wdone || c.send == nil {
		c.mu.Unlock()
		return nil
	}
	c.wdone = true
	c.mu.Unlock()
	return c.flushLocked(context.Background(), true, false)
}

// Close implements net.Conn: it unblocks pending calls and, if CloseWrite was
// not called, sends the buffered bytes first (bounded by CloseSendTimeout),
// returning that send's error. Later calls return nil.
func (c *Conn) Close() error {
	var err error
	c.closeOnce.Do(func() {
		c.mu.Lock()
		close(c.closed)
		c.notifyLocked()
		c.mu.Unlock()
		c.wmu.Lock() // a pending Write or CloseWrite returns now
		defer c.wmu.Unlock()
		c.mu.Lock()
		pending := !c.wdone && c.send != nil
		c.wdone = true
		c.mu.Unlock()
		if pending {
			ctx, cancel := context.WithTimeout(context.Background(), CloseSendTimeout)
			defer cancel()
			err = c.flushLocked(ctx, true, true)
		}
	})
	return err
}

// deliver hands the peer's bytes to the read side. With eof they are the
// last; without, deliver waits until the previous chunk was read (ctx, Close
// end the wait). It fails if the read side ended already.
func (c *Conn) deliver(ctx context.Context, b []byte, eof bool) error {
	for {
		c.mu.Lock()
		switch {
		case deadline.Closed(c.closed):
			c.mu.Unlock()
			return net.ErrClosed
		case c.reof || c.rerr != nil:
			c.mu.Unlock()
			return fmt.Errorf("inline: data after the end: %w", ErrBadData)
		case eof || len(c.rbuf) == 0:
			c.rbuf = append(c.rbuf, b...)
			c.reof = eof
			c.notifyLocked()
			c.readyLocked()
			c.mu.Unlock()
			return nil
		}
		ch := c.change
		c.mu.Unlock()
		select {
		case <-ch:
		case <-c.closed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// fail ends the read side with err unless it ended already.
func (c *Conn) fail(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.reof || c.rerr != nil {
		return
	}
	c.rerr = err
	c.notifyLocked()
	c.readyLocked()
}

func (c *Conn) readyLocked() {
	if !deadline.Closed(c.ready) {
		close(c.ready)
	}
}

// readErr is the read side's error, if it failed.
func (c *Conn) readErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.rerr
}

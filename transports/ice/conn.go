package ice

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"github.com/pion/datachannel"
	"github.com/pion/webrtc/v4"
)

// Conn is a WebRTC data channel (reliable, ordered) as a net.Conn.
//
// Writes are split into messages of at most the negotiated message size
// and block while more than the high-water mark is buffered in SCTP (the
// channel's BufferedAmount), so a fast writer keeps memory flat. Reads
// reassemble nothing: the byte stream is the concatenation of messages.
// CloseWrite waits until everything written was acknowledged by the peer,
// then closes the channel: the peer reads io.EOF after the last byte.
// Close is abortive: bytes not yet acknowledged may be lost, so a sender
// calls CloseWrite first.
type Conn struct {
	dc      *webrtc.DataChannel
	raw     datachannel.ReadWriteCloser
	local   net.Addr
	remote  net.Addr
	msgSize int
	high    uint64

	// read side: readLoop owns raw reads and hands messages over in.
	in       chan []byte
	readErr  error // set before in is closed
	rmu      sync.Mutex
	rbuf     []byte
	rdl      deadline
	loopDone chan struct{}

	// write side
	wmu      sync.Mutex
	wdl      deadline
	low      chan struct{} // signalled by OnBufferedAmountLow
	wclosed  bool
	closed   chan struct{}
	closeErr error
	once     sync.Once
	onClose  func()
	restart  func(context.Context) error
}

var _ net.Conn = (*Conn)(nil)

// Addr is a Conn's local or remote address: the selected ICE candidate.
type Addr struct {
	IP   net.IP
	Port int
	// Type is the candidate type: host, srflx, prflx or relay.
	Type string
}

// Network implements net.Addr.
func (a *Addr) Network() string { return "webrtc-datachannel" }

// String implements net.Addr.
func (a *Addr) String() string {
	return net.JoinHostPort(a.IP.String(), itoa(a.Port)) + " (" + a.Type + ")"
}

func itoa(i int) string { return utoa(uint64(max(i, 0))) }

// errClosed is returned by Read and Write after Close, like net.ErrClosed.
var errClosed = net.ErrClosed

// ErrWriteClosed is returned by Write after CloseWrite.
var ErrWriteClosed = errors.New("ice: write after CloseWrite")

const readQueue = 64 // messages buffered between readLoop and Read

func newConn(dc *webrtc.DataChannel, raw datachannel.ReadWriteCloser, msgSize int, local, remote net.Addr, onClose func()) *Conn {
	c := &Conn{
		dc: dc, raw: raw, local: local, remote: remote, msgSize: msgSize,
		high:     uint64(16 * msgSize),
		in:       make(chan []byte, readQueue),
		loopDone: make(chan struct{}),
		low:      make(chan struct{}, 1),
		closed:   make(chan struct{}),
		onClose:  onClose,
	}
	if c.high < 1<<20 {
		c.high = 1 << 20
	}
	c.rdl.init()
	c.wdl.init()
	dc.SetBufferedAmountLowThreshold(c.high / 2)
	dc.OnBufferedAmountLow(func() {
		select {
		case c.low <- struct{}{}:
		default:
		}
	})
	go c.readLoop()
	return c
}

// readLoop reads whole messages; it stops when the channel ends (EOF from
// the peer's CloseWrite/Close, or our Close).
func (c *Conn) readLoop() {
	defer close(c.loopDone)
	defer close(c.in)
	buf := make([]byte, recvMessageSize)
	for {
		n, err := c.raw.Read(buf)
		if n > 0 {
			select {
			case c.in <- append([]byte(nil), buf[:n]...):
			case <-c.closed:
				c.readErr = errClosed
				return
			}
		}
		if err != nil {
			if errors.Is(err, io.ErrShortBuffer) {
				// A message larger than what we announced: the
				// peer broke max-message-size (RFC 8841 §6).
				c.readErr = errors.New("ice: peer sent a message above max-message-size")
			} else {
				c.readErr = io.EOF
			}
			return
		}
	}
}

// Read implements net.Conn.
func (c *Conn) Read(p []byte) (int, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	if len(c.rbuf) == 0 {
		select {
		case <-c.closed:
			return 0, errClosed
		default:
		}
		if c.rdl.expired() {
			return 0, os.ErrDeadlineExceeded
		}
		select {
		case b, ok := <-c.in:
			if !ok {
				select {
				case <-c.closed:
					return 0, errClosed
				default:
				}
				return 0, c.readErr
			}
			c.rbuf = b
		case <-c.closed:
			return 0, errClosed
		case <-c.rdl.wait():
			return 0, os.ErrDeadlineExceeded
		}
	}
	n := copy(p, c.rbuf)
	c.rbuf = c.rbuf[n:]
	return n, nil
}

// Write implements net.Conn.
func (c *Conn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.wclosed {
		return 0, ErrWriteClosed
	}
	n := 0
	for len(p) > 0 {
		if err := c.waitBufferedLocked(c.high); err != nil {
			return n, err
		}
		m := min(len(p), c.msgSize)
		if _, err := c.raw.Write(p[:m]); err != nil {
			select {
			case <-c.closed:
				return n, errClosed
			default:
			}
			return n, err
		}
		n += m
		p = p[m:]
	}
	return n, nil
}

// waitBufferedLocked blocks until at most limit bytes are buffered, the
// write deadline passes or the conn closes.
func (c *Conn) waitBufferedLocked(limit uint64) error {
	for {
		select {
		case <-c.closed:
			return errClosed
		default:
		}
		if c.wdl.expired() {
			return os.ErrDeadlineExceeded
		}
		if c.dc.BufferedAmount() <= limit {
			return nil
		}
		// OnBufferedAmountLow fires when the amount crosses the
		// threshold downwards; poll as well in case it crossed
		// between our check and the wait (the callback is edge
		// triggered) or the limit is below the threshold.
		t := time.NewTimer(10 * time.Millisecond)
		select {
		case <-c.low:
		case <-t.C:
		case <-c.closed:
		case <-c.wdl.wait():
		}
		t.Stop()
	}
}

// CloseWrite waits until the peer acknowledged every byte written (or the
// write deadline passes) and closes the channel: the peer's Read returns
// io.EOF after the last byte. Reads on our side still work until the peer
// closes its side (which a data channel does at once).
func (c *Conn) CloseWrite() error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.wclosed {
		return nil
	}
	c.wclosed = true
	if err := c.waitBufferedLocked(0); err != nil {
		return err
	}
	return c.raw.Close()
}

// Close implements net.Conn. It unblocks Read and Write, then lets what was
// already written drain for up to a second (like TCP's close, which sends
// queued data in the background) and closes the channel. The transport that
// made the conn closes the PeerConnection under it (and waits for the
// conn's reader) when the Jingle session ends.
func (c *Conn) Close() error {
	c.closeWith(closeLinger)
	return nil
}

const closeLinger = time.Second

// closeWith closes the conn, waiting up to linger for buffered data.
func (c *Conn) closeWith(linger time.Duration) {
	c.once.Do(func() {
		close(c.closed)
		if linger > 0 {
			end := time.Now().Add(linger)
			for c.dc.BufferedAmount() > 0 && time.Now().Before(end) {
				t := time.NewTimer(10 * time.Millisecond)
				select {
				case <-c.low:
				case <-t.C:
				}
				t.Stop()
			}
		}
		c.closeErr = c.raw.Close()
		if c.onClose != nil {
			c.onClose()
		}
	})
}

// RestartICE restarts ICE under the open data channel (XEP-0176 §5.9, RFC
// 8445 §9): new credentials and candidates are exchanged in transport-info
// and the channel moves to the newly selected pair without losing a byte.
// It returns once ICE is connected again (or ctx ends). Use it when the
// network changed (a new address, a dead path). See Transport.Restart.
func (c *Conn) RestartICE(ctx context.Context) error {
	if c.restart == nil {
		return errors.New("ice: conn without a transport to restart")
	}
	return c.restart(ctx)
}

// LocalAddr implements net.Conn: our side of the selected candidate pair.
func (c *Conn) LocalAddr() net.Addr { return c.local }

// RemoteAddr implements net.Conn: the peer's side of the selected pair.
func (c *Conn) RemoteAddr() net.Addr { return c.remote }

// SetDeadline implements net.Conn.
func (c *Conn) SetDeadline(t time.Time) error {
	c.rdl.set(t)
	c.wdl.set(t)
	return nil
}

// SetReadDeadline implements net.Conn.
func (c *Conn) SetReadDeadline(t time.Time) error { c.rdl.set(t); return nil }

// SetWriteDeadline implements net.Conn.
func (c *Conn) SetWriteDeadline(t time.Time) error { c.wdl.set(t); return nil }

// deadline is a resettable deadline whose wait channel closes when it
// passes.
type deadline struct {
	mu    sync.Mutex
	gen   uint64
	timer *time.Timer
	ch    chan struct{}
}

func (d *deadline) init() { d.ch = make(chan struct{}) }

func (d *deadline) set(t time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.timer != nil {
		d.timer.Stop()
		d.timer = nil
	}
	select {
	case <-d.ch:
		d.ch = make(chan struct{}) // passed before: re-arm
	default:
	}
	d.gen++
	if t.IsZero() {
		return
	}
	dur := time.Until(t)
	if dur <= 0 {
		close(d.ch)
		return
	}
	ch, gen := d.ch, d.gen
	d.timer = time.AfterFunc(dur, func() {
		d.mu.Lock()
		defer d.mu.Unlock()
		if d.gen == gen {
			select {
			case <-ch:
			default:
				close(ch)
			}
		}
	})
}

func (d *deadline) wait() <-chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.ch
}

func (d *deadline) expired() bool {
	select {
	case <-d.wait():
		return true
	default:
		return false
	}
}

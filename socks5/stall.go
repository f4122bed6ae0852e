package socks5

import (
	"errors"
	"fmt"
	"net"
	"os"

	"mellium.im/xmpp/jid"
)

// ErrStalled means a mediated bytestream stopped moving: a read or write on
// the connection through a proxy (XEP-0065 §6) hit its deadline. The caller
// sets the deadline as its stall timeout (jingle/filetransfer's idle
// timeout). Prosody 0.12's mod_proxy65 under its default epoll network
// backend is known to keep the last few KiB of a transfer this way
// (network_backend = "select" avoids it). The error is a *StallError.
var ErrStalled = errors.New("socks5: proxy stalled")

// StallError is a deadline that expired on a bytestream through a proxy. It
// matches ErrStalled and os.ErrDeadlineExceeded with errors.Is, and is a
// net.Error whose Timeout is true, so code that treats deadlines as idle
// timeouts keeps working.
type StallError struct {
	// Proxy is the JID of the streamhost that carries the bytestream.
	Proxy jid.JID
	// Op is "read" or "write".
	Op string
	// Err is the connection's error (wraps os.ErrDeadlineExceeded).
	Err error
}

// Error implements error.
func (e *StallError) Error() string {
	return fmt.Sprintf("socks5: proxy %s stalled (no data could be %s in time): %v", e.Proxy, pastOp(e.Op), e.Err)
}

func pastOp(op string) string {
	if op == "write" {
		return "written"
	}
	return "read"
}

// Unwrap returns Err.
func (e *StallError) Unwrap() error { return e.Err }

// Is reports whether target is ErrStalled.
func (e *StallError) Is(target error) bool { return target == ErrStalled }

// Timeout implements net.Error.
func (e *StallError) Timeout() bool { return true }

// Temporary implements net.Error.
func (e *StallError) Temporary() bool { return true }

// proxiedConn is the bytestream through a proxy: an expired deadline is
// reported as a *StallError naming the proxy. It keeps CloseWrite, the
// sender's end of file.
type proxiedConn struct {
	net.Conn
	proxy jid.JID
}

func (c *proxiedConn) stalled(op string, err error) error {
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		return &StallError{Proxy: c.proxy, Op: op, Err: err}
	}
	return err
}

func (c *proxiedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	return n, c.stalled("read", err)
}

func (c *proxiedConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	return n, c.stalled("write", err)
}

// CloseWrite half-closes the connection (TCP FIN): the proxy passes the end
// of file on to the peer.
func (c *proxiedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Conn.Close()
}

// Proxy returns the JID of the proxy that carries the bytestream.
func (c *proxiedConn) Proxy() jid.JID { return c.proxy }

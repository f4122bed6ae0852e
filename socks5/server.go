package socks5

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"time"
)

// Server defaults.
const (
	DefaultHandshakeTimeout = 10 * time.Second
	DefaultMaxHandshakes    = 64
)

// ErrServerClosed is returned by Server.Serve and Server.Expect after Close.
var ErrServerClosed = errors.New("socks5: server closed")

// ErrAlreadyExpected is returned by Server.Expect for a DST.ADDR that is
// already expected.
var ErrAlreadyExpected = errors.New("socks5: dstaddr already expected")

// AcceptFunc receives a connection whose handshake completed for an expected
// DST.ADDR. via is the address of the listener it came through. It must not
// block; it owns c if it returns true, otherwise the Server closes c.
type AcceptFunc func(c net.Conn, via net.Addr) bool

// Server is the streamhost side of XEP-0065 for the bytestreams we offer
// ourselves (a "direct" candidate, XEP-0065 §5): it accepts SOCKS5 clients on
// the listeners it is given and hands over only those whose DST.ADDR was
// registered with Expect. It never relays traffic.
//
// Set the exported fields before the first Serve. The zero value is usable.
type Server struct {
	// HandshakeTimeout bounds a client's whole handshake; a client that
	// stalls is dropped. Zero means DefaultHandshakeTimeout.
	HandshakeTimeout time.Duration
	// MaxHandshakes bounds handshakes in progress; connections beyond it
	// are closed at once. Zero means DefaultMaxHandshakes.
	MaxHandshakes int

	mu        sync.Mutex
	expect    map[string]AcceptFunc
	listeners map[net.Listener]struct{}
	conns     map[net.Conn]struct{} // in handshake
	closed    bool
	wg        sync.WaitGroup
}

// Expect registers f for connections requesting dstaddr. The returned cancel
// func unregisters it (idempotent). It fails if dstaddr is already expected
// or the Server is closed.
func (s *Server) Expect(dstaddr string, f AcceptFunc) (cancel func(), err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrServerClosed
	}
	if s.expect == nil {
		s.expect = map[string]AcceptFunc{}
	}
	if _, ok := s.expect[dstaddr]; ok {
		return nil, fmt.Errorf("%w: %s", ErrAlreadyExpected, dstaddr)
	}
	s.expect[dstaddr] = f
	return func() {
		s.mu.Lock()
		delete(s.expect, dstaddr)
		s.mu.Unlock()
	}, nil
}

func (s *Server) lookup(dstaddr string) AcceptFunc {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.expect[dstaddr]
}

// Serve accepts connections on l until l fails or the Server is closed; it
// always returns a non-nil error (ErrServerClosed after Close). Close closes
// l; Serve does not close l when it returns for another reason.
func (s *Server) Serve(l net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrServerClosed
	}
	if s.listeners == nil {
		s.listeners = map[net.Listener]struct{}{}
		s.conns = map[net.Conn]struct{}{}
	}
	s.listeners[l] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, l)
		s.mu.Unlock()
	}()
	max := s.MaxHandshakes
	if max <= 0 {
		max = DefaultMaxHandshakes
	}
	for {
		c, err := l.Accept()
		if err != nil {
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if closed {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("socks5: accept on %s: %w", l.Addr(), err)
		}
		s.mu.Lock()
		if s.closed || len(s.conns) >= max {
			s.mu.Unlock()
			c.Close()
			continue
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go s.handle(c, l.Addr())
	}
}

func (s *Server) handle(c net.Conn, via net.Addr) {
	defer s.wg.Done()
	timeout := s.HandshakeTimeout
	if timeout <= 0 {
		timeout = DefaultHandshakeTimeout
	}
	c.SetDeadline(time.Now().Add(timeout))
	var f AcceptFunc
	dst, err := serverHandshake(c, func(dst string) bool {
		f = s.lookup(dst)
		return f != nil
	})
	s.mu.Lock()
	delete(s.conns, c)
	closed := s.closed
	s.mu.Unlock()
	if err != nil || closed {
		c.Close()
		return
	}
	c.SetDeadline(noDeadline)
	_ = dst
	if !f(c, via) {
		c.Close()
	}
}

// Close stops every Serve, closes their listeners and the connections still
// in handshake, and waits for them. Connections already handed to an
// AcceptFunc are not touched. Close is idempotent.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		s.wg.Wait()
		return nil
	}
	s.closed = true
	var errs []error
	for l := range s.listeners {
		if err := l.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, err)
		}
	}
	for c := range s.conns {
		c.Close()
	}
	s.expect = nil
	s.mu.Unlock()
	s.wg.Wait()
	return errors.Join(errs...)
}

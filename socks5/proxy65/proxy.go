package proxy65

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"mellium.im/xmpp/jid"

	"github.com/xjingle/xjingle/socks5"
)

// Proxy defaults.
const (
	// DefaultUnmatchedTimeout is how long a bytestream may wait for its
	// second party and its activation.
	DefaultUnmatchedTimeout = 60 * time.Second
	// DefaultMaxConns bounds the proxy's TCP connections in all states.
	DefaultMaxConns = 1024
)

// Config configures a Proxy. The zero value is usable.
type Config struct {
	// UnmatchedTimeout bounds the time from a DST.ADDR's first connection
	// to its activation; then its connections are closed. Zero means
	// DefaultUnmatchedTimeout.
	UnmatchedTimeout time.Duration
	// HandshakeTimeout bounds one SOCKS5 handshake. Zero means
	// socks5.DefaultHandshakeTimeout.
	HandshakeTimeout time.Duration
	// MaxConns bounds the open connections (in handshake, waiting and
	// spliced); more are closed at accept. Zero means DefaultMaxConns.
	MaxConns int
	// Registerer, if set, receives the proxy's metrics (prefix
	// xjingle_proxy65_). Registration fails New on a name clash.
	Registerer prometheus.Registerer
	// Logger receives debug and info records; nil discards them.
	Logger *slog.Logger
}

func (c *Config) validate() error {
	switch {
	case c.UnmatchedTimeout < 0:
		return fmt.Errorf("%w: negative unmatched timeout %v", ErrInvalidConfig, c.UnmatchedTimeout)
	case c.HandshakeTimeout < 0:
		return fmt.Errorf("%w: negative handshake timeout %v", ErrInvalidConfig, c.HandshakeTimeout)
	case c.MaxConns < 0:
		return fmt.Errorf("%w: negative connection limit %d", ErrInvalidConfig, c.MaxConns)
	}
	if c.UnmatchedTimeout == 0 {
		c.UnmatchedTimeout = DefaultUnmatchedTimeout
	}
	if c.HandshakeTimeout == 0 {
		c.HandshakeTimeout = socks5.DefaultHandshakeTimeout
	}
	if c.MaxConns == 0 {
		c.MaxConns = DefaultMaxConns
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// stream is one DST.ADDR: up to two connections, then a splice.
type stream struct {
	dst    string
	conns  []net.Conn // at most 2, filed before the "succeeded" reply
	active bool
	timer  *time.Timer // unmatched timeout; nil once stopped
	halves atomic.Int32
}

// Proxy is the SOCKS5 side of a XEP-0065 proxy (see the package comment).
// Create it with New, give it listeners with Serve, activate bytestreams
// with Activate (the Component does, on <activate/>), and Close it.
type Proxy struct {
	cfg Config
	m   *metrics

	mu        sync.Mutex
	streams   map[string]*stream
	conns     map[net.Conn]struct{} // every open connection
	listeners map[net.Listener]struct{}
	closed    bool
	draining  bool           // Shutdown: no new connections or activations
	drained   chan struct{}  // closed by forgetLocked when draining and no stream is left
	wg        sync.WaitGroup // Serve, handshakes, splice halves, armed timers

	bytes atomic.Int64

	onRelease func(dst string) // test hook: a stream was forgotten (p.mu held)
}

// New returns a Proxy with cfg's defaults filled in. It listens nowhere
// until Serve.
func New(cfg Config) (*Proxy, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	return &Proxy{cfg: cfg, m: m, streams: map[string]*stream{}, conns: map[net.Conn]struct{}{},
		listeners: map[net.Listener]struct{}{}}, nil
}

// Serve accepts SOCKS5 connections on l until l fails or the Proxy is
// closed; it always returns a non-nil error (ErrClosed after Close). Close
// closes l; Serve does not close l when it returns for another reason.
func (p *Proxy) Serve(l net.Listener) error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return ErrClosed
	}
	p.listeners[l] = struct{}{}
	p.wg.Add(1)
	p.mu.Unlock()
	defer p.wg.Done()
	defer func() {
		p.mu.Lock()
		delete(p.listeners, l)
		p.mu.Unlock()
	}()
	for {
		c, err := l.Accept()
		if err != nil {
			p.mu.Lock()
			closed := p.closed || p.draining
			p.mu.Unlock()
			if closed {
				return ErrClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("proxy65: accept on %s: %w", l.Addr(), err)
		}
		p.mu.Lock()
		if p.closed || p.draining || len(p.conns) >= p.cfg.MaxConns {
			p.mu.Unlock()
			p.m.rejected.WithLabelValues("limit").Inc()
			c.Close()
			continue
		}
		p.conns[c] = struct{}{}
		p.wg.Add(1)
		p.mu.Unlock()
		p.m.connsTotal.Inc()
		p.m.connsActive.Inc()
		go p.handle(c)
	}
}

// dropLocked forgets c (closing it); p.mu is held.
func (p *Proxy) dropLocked(c net.Conn) {
	if _, ok := p.conns[c]; ok {
		delete(p.conns, c)
		p.m.connsActive.Dec()
	}
	c.Close()
}

// handle runs the SOCKS5 handshake of c and parks it under its DST.ADDR.
func (p *Proxy) handle(c net.Conn) {
	defer p.wg.Done()
	var s *stream
	accept := func(dst string) bool {
		if !socks5.ValidDstAddr(dst) {
			return false
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.closed || p.draining {
			return false
		}
		st := p.streams[dst]
		if st == nil {
			st = &stream{dst: dst}
			p.armLocked(st)
			p.streams[dst] = st
		}
		// XEP-0065 §6.3.2/§6.3.4: the target and the requester; a third
		// party has no business with this stream.
		if st.active || len(st.conns) >= 2 {
			return false
		}
		// Filed before the "succeeded" reply: a party that got it can
		// have the stream activated at once.
		st.conns = append(st.conns, c)
		s = st
		return true
	}
	ctx, cancel := context.WithTimeout(context.Background(), p.cfg.HandshakeTimeout)
	dst, err := socks5.ServerHandshake(ctx, c, accept)
	cancel()
	p.mu.Lock()
	defer p.mu.Unlock()
	if err != nil || p.closed || p.draining || s == nil || p.streams[s.dst] != s {
		if s != nil && !s.active {
			s.conns = slices.DeleteFunc(s.conns, func(x net.Conn) bool { return x == c })
			if len(s.conns) == 0 && p.streams[s.dst] == s {
				p.disarmLocked(s)
				p.forgetLocked(s)
			}
		}
		reason := "handshake"
		if err == nil {
			reason = "expired"
		}
		p.m.rejected.WithLabelValues(reason).Inc()
		p.cfg.Logger.Debug("proxy65: connection refused", "remote", c.RemoteAddr().String(), "err", err)
		p.dropLocked(c)
		return
	}
	p.cfg.Logger.Debug("proxy65: connection waiting", "remote", c.RemoteAddr().String(), "dstaddr", dst, "parties", len(s.conns))
}

// armLocked starts s's unmatched timeout; p.mu is held. An armed timer
// counts in p.wg until it has run or been stopped.
func (p *Proxy) armLocked(s *stream) {
	p.wg.Add(1)
	s.timer = time.AfterFunc(p.cfg.UnmatchedTimeout, func() {
		defer p.wg.Done()
		p.mu.Lock()
		defer p.mu.Unlock()
		if s.timer == nil || p.streams[s.dst] != s { // stopped too late, or closed
			return
		}
		s.timer = nil
		p.forgetLocked(s)
		for _, c := range s.conns {
			p.dropLocked(c)
		}
		p.m.timeouts.Inc()
		p.cfg.Logger.Debug("proxy65: bytestream not activated in time", "dstaddr", s.dst, "parties", len(s.conns))
	})
}

// disarmLocked stops s's timer if it has not fired; p.mu is held.
func (p *Proxy) disarmLocked(s *stream) {
	if s.timer == nil {
		return
	}
	if s.timer.Stop() {
		p.wg.Done()
	}
	s.timer = nil
}

// Activate activates the bytestream sid from requester to target
// (XEP-0065 §6.3.5): both must be connected with DST.ADDR
// SHA1(sid + requester + target), where requester is the full JID the
// activation came from. From then on the two connections are spliced until
// both directions ended. Errors wrap ErrNotFound, ErrOneSided,
// ErrAlreadyActive or ErrClosed.
func (p *Proxy) Activate(requester jid.JID, sid string, target jid.JID) error {
	dst := socks5.DstAddr(sid, requester, target)
	p.mu.Lock()
	var err error
	s := p.streams[dst]
	switch {
	case p.closed || p.draining:
		err = ErrClosed
	case s == nil:
		err = ErrNotFound
	case s.active:
		err = ErrAlreadyActive
	case len(s.conns) < 2:
		err = ErrOneSided
	}
	if err != nil {
		p.mu.Unlock()
		p.m.activations.WithLabelValues(activationResult(err)).Inc()
		return fmt.Errorf("proxy65: activate %s (sid %q, requester %s, target %s): %w", dst, sid, requester, target, err)
	}
	s.active = true
	p.disarmLocked(s)
	a, b := s.conns[0], s.conns[1]
	p.wg.Add(2)
	p.mu.Unlock()
	p.m.activations.WithLabelValues("ok").Inc()
	p.m.spliced.Inc()
	p.cfg.Logger.Debug("proxy65: bytestream activated", "dstaddr", dst, "requester", requester.String(), "target", target.String())
	go p.pipe(s, a, b)
	go p.pipe(s, b, a)
	return nil
}

func activationResult(err error) string {
	switch {
	case errors.Is(err, ErrNotFound):
		return "not_found"
	case errors.Is(err, ErrOneSided):
		return "one_sided"
	case errors.Is(err, ErrAlreadyActive):
		return "already_active"
	default:
		return "closed"
	}
}

// countChunk is how many bytes pipe splices between two updates of the
// byte counters.
const countChunk = 4 << 20

type closeWriter interface{ CloseWrite() error }

// pipe copies src to dst (splice(2) between two *net.TCPConn on Linux) and
// passes src's end of file on as a half-close of dst, so that a sender's
// shutdown(SHUT_WR) reaches the receiver and the reverse direction keeps
// working. An error aborts both directions. The last half to end closes
// both connections and forgets the stream.
func (p *Proxy) pipe(s *stream, dst, src net.Conn) {
	defer p.wg.Done()
	var err error
	for {
		// In chunks, so that the byte count moves during a long
		// transfer; CopyN's *io.LimitedReader still splices.
		var n int64
		n, err = io.CopyN(dst, src, countChunk)
		p.bytes.Add(n)
		p.m.bytes.Add(float64(n))
		if err != nil {
			if err == io.EOF {
				err = nil
			}
			break
		}
	}
	cw, ok := dst.(closeWriter)
	if err == nil && ok {
		err = cw.CloseWrite()
	}
	if err != nil || !ok {
		// Abort: closing both unblocks the other half.
		dst.Close()
		src.Close()
	}
	if s.halves.Add(1) < 2 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range s.conns {
		p.dropLocked(c)
	}
	if p.streams[s.dst] == s {
		p.forgetLocked(s)
	}
	p.m.spliced.Dec()
}

// forgetLocked removes s from the streams; p.mu is held.
func (p *Proxy) forgetLocked(s *stream) {
	delete(p.streams, s.dst)
	if p.onRelease != nil {
		p.onRelease(s.dst)
	}
	if p.draining && len(p.streams) == 0 && p.drained != nil {
		close(p.drained)
		p.drained = nil
	}
}

// Shutdown drains the proxy: it closes the listeners and the connections
// of bytestreams not yet activated, refuses new activations (ErrClosed),
// and waits until the activated bytestreams have ended or ctx is done;
// then it closes everything like Close. It returns ctx.Err() when it had
// to cut bytestreams short. Stop the Component first, so that clients stop
// being offered the proxy.
func (p *Proxy) Shutdown(ctx context.Context) error {
	p.mu.Lock()
	if p.closed || p.draining {
		p.mu.Unlock()
		return p.Close()
	}
	p.draining = true
	var errs []error
	for l := range p.listeners {
		if err := l.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, fmt.Errorf("proxy65: close listener: %w", err))
		}
	}
	for _, s := range p.streams {
		if s.active {
			continue
		}
		p.disarmLocked(s)
		for _, c := range s.conns {
			p.dropLocked(c)
		}
		p.forgetLocked(s)
	}
	drained := make(chan struct{})
	if len(p.streams) == 0 {
		close(drained)
	} else {
		p.drained = drained
	}
	p.mu.Unlock()
	var cut error
	select {
	case <-drained:
	case <-ctx.Done():
		cut = ctx.Err()
	}
	errs = append(errs, p.Close(), cut)
	return errors.Join(errs...)
}

// Stats is a snapshot of a Proxy's state.
type Stats struct {
	Conns   int   // open connections, in every state
	Streams int   // DST.ADDRs held (waiting or spliced)
	Bytes   int64 // bytes spliced so far, both directions (updated every 4 MiB and at the end)
}

// Stats returns a snapshot of the proxy's state.
func (p *Proxy) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return Stats{Conns: len(p.conns), Streams: len(p.streams), Bytes: p.bytes.Load()}
}

// Close stops every Serve, closes their listeners and every connection
// (waiting or spliced), and waits until all of the proxy's goroutines
// ended. It is idempotent.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		p.wg.Wait()
		return nil
	}
	p.closed = true
	var errs []error
	for l := range p.listeners {
		if err := l.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, fmt.Errorf("proxy65: close listener: %w", err))
		}
	}
	for _, s := range p.streams {
		p.disarmLocked(s)
	}
	for c := range p.conns {
		p.dropLocked(c)
	}
	p.mu.Unlock()
	p.wg.Wait()
	return errors.Join(errs...)
}

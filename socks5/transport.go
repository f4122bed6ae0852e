package socks5

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/xjingle/xjingle/jingle"
	"mellium.im/xmpp/jid"
)

// Errors callers branch on. A failed negotiation wraps
// jingle.ErrTransportFailed (compare with errors.Is) so that the caller can
// fall back to another transport.
var (
	// ErrConnTaken is returned by Transport.Conn after it returned the
	// conn once.
	ErrConnTaken = errors.New("socks5: conn already taken")
	// ErrTransportClosed is returned by Transport.Conn after Close.
	ErrTransportClosed = errors.New("socks5: transport closed")
)

var emptyJID jid.JID

// Factory is the jingle.TransportFactory of XEP-0260. Its transports offer a
// direct candidate per usable local address (a listener on an ephemeral
// port each) and, with WithProxy, a proxy candidate; they connect to the
// peer's candidates in parallel and return the nominated connection.
type Factory struct {
	ifaces           []string
	addrs            []netip.Addr
	addrsSet         bool
	proxy            *StreamHost
	connectTimeout   time.Duration
	handshakeTimeout time.Duration
	stagger          time.Duration
	dialer           ContextDialer
	listen           func(ctx context.Context, network, address string) (net.Listener, error)
}

var _ jingle.TransportFactory = (*Factory)(nil)

// NewFactory returns a Factory configured by opts.
func NewFactory(opts ...Option) (*Factory, error) {
	f := &Factory{
		connectTimeout:   DefaultConnectTimeout,
		handshakeTimeout: DefaultHandshakeTimeout,
		stagger:          DefaultStagger,
		dialer:           &net.Dialer{},
	}
	var lc net.ListenConfig
	f.listen = lc.Listen
	for _, o := range opts {
		if err := o(f); err != nil {
			return nil, err
		}
	}
	if len(f.addrs) > MaxCandidates-1 {
		f.addrs = f.addrs[:MaxCandidates-1]
	}
	return f, nil
}

// Namespace implements jingle.TransportFactory.
func (f *Factory) Namespace() string { return NS }

// NewTransport implements jingle.TransportFactory.
func (f *Factory) NewTransport(link jingle.TransportLink) (jingle.Transport, error) {
	ctx, cancel := context.WithCancel(context.Background())
	actx, acancel := context.WithCancel(ctx)
	t := &Transport{
		f: f, link: link, log: link.Logger().With("transport", "s5b"),
		ctx: ctx, cancel: cancel, actx: actx, acancel: acancel,
		wake: make(chan struct{}, 1), done: make(chan struct{}),
		localByCID: map[string]Candidate{}, viaCID: map[string]string{},
		remoteByCID: map[string]Candidate{}, attempts: map[string]*attempt{},
		accepted: map[string]net.Conn{},
	}
	t.srv.HandshakeTimeout = f.handshakeTimeout
	return t, nil
}

// Transport is one XEP-0260 transport. See jingle.Transport for the calling
// sequence. Its goroutines (listeners, connection attempts, the negotiation)
// stop when the negotiation ends or on Close.
type Transport struct {
	f    *Factory
	link jingle.TransportLink
	log  *slog.Logger

	ctx     context.Context // the transport's lifetime
	cancel  context.CancelFunc
	actx    context.Context // connection attempts; cancelled once we report
	acancel context.CancelFunc
	wg      sync.WaitGroup
	srv     Server
	wake    chan struct{} // cap 1: state changed, the negotiation looks again
	done    chan struct{} // closed when res* are set

	closeOnce sync.Once

	mu         sync.Mutex
	started    bool // Offer or Accept ran
	running    bool // the negotiation goroutine runs
	closed     bool
	sid        string
	dstLocal   string // DST.ADDR for our candidates: SHA1(sid + us + peer)
	dstRemote  string // DST.ADDR for the peer's candidates
	local      []Candidate
	localByCID map[string]Candidate
	viaCID     map[string]string // listener address → our cid
	remote     []Candidate
	// remoteByCID holds the peer's candidates.
	remoteByCID map[string]Candidate
	attempts    map[string]*attempt // by the peer's cid
	accepted    map[string]net.Conn // by our cid: the peer's connection to it

	ourReport  *report
	ourSent    bool
	peerReport *report
	activated  string // cid of the peer's <activated/>
	proxyError bool
	failErr    error

	win        *winner
	activating bool
	timedOut   bool
	timer      *time.Timer

	finished bool
	resConn  net.Conn
	resErr   error
	taken    bool
}

var _ jingle.Transport = (*Transport)(nil)

// report is a party's candidate-used (cid set) or candidate-error (cid "").
type report struct{ cid string }

// winner is the nominated candidate (XEP-0260 §2.4).
type winner struct {
	ours bool // the peer's candidate we connected to; else ours, used by the peer
	c    Candidate
}

type attempt struct {
	c    Candidate
	done bool
	conn net.Conn
	err  error
}

func randomID(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func (t *Transport) poke() {
	select {
	case t.wake <- struct{}{}:
	default:
	}
}

// goLocked starts f as a goroutine the transport waits for, unless closed.
func (t *Transport) goLocked(f func()) bool {
	if t.closed {
		return false
	}
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		f()
	}()
	return true
}

// Offer implements jingle.Transport: a new transport sid, our candidates,
// and the dstaddr the peer needs for our proxy candidate (XEP-0260 §2.2).
func (t *Transport) Offer(ctx context.Context) (jingle.Element, error) {
	if err := t.setup(ctx, randomID(12), nil); err != nil {
		return jingle.Element{}, err
	}
	t.mu.Lock()
	p := payload{SID: t.sid, DstAddr: t.dstLocal, Mode: "tcp", Candidates: t.local}
	t.mu.Unlock()
	return p.element()
}

// Accept implements jingle.Transport: it takes the peer's candidates,
// answers with ours (never one with a host and port the peer offered,
// XEP-0260 §2.2) and starts connecting to the peer's. Our candidate-used or
// candidate-error follows as soon as the attempts end, which on a fast
// network can be before the session-accept carrying the answer is sent
// unless the Manager holds transport-info until then (XEP-0166 §7.2.13
// allows transport-info in the pending state; this transport accepts the
// peer's report at any time after its offer).
func (t *Transport) Accept(ctx context.Context, offer jingle.Element) (jingle.Element, error) {
	p, err := parseTransport(offer)
	if err != nil {
		return jingle.Element{}, jingle.ErrBadRequest.WithText("%v", err)
	}
	if p.Used != "" || p.Activated != "" || p.CandidateError || p.ProxyError {
		return jingle.Element{}, jingle.ErrBadRequest.WithText("socks5: offer carries a transport-info action")
	}
	if p.Mode != "tcp" {
		return jingle.Element{}, fmt.Errorf("socks5: accept: mode %s: %w", p.Mode, jingle.ErrTransportFailed)
	}
	exclude := map[string]bool{}
	for _, c := range p.Candidates {
		exclude[c.Addr()] = true
	}
	if err := t.setup(ctx, p.SID, exclude); err != nil {
		return jingle.Element{}, err
	}
	t.mu.Lock()
	t.setRemoteLocked(p)
	// The responder's transport carries no mode (XEP-0260 §2.2 rule 3).
	a := payload{SID: t.sid, DstAddr: t.dstLocal, Candidates: t.local}
	t.startLocked()
	t.mu.Unlock()
	return a.element()
}

// Accepted implements jingle.Transport: it takes the peer's candidates and
// starts connecting to them.
func (t *Transport) Accepted(ctx context.Context, answer jingle.Element) error {
	p, err := parseTransport(answer)
	if err != nil {
		return jingle.ErrBadRequest.WithText("%v", err)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.started {
		return fmt.Errorf("socks5: accepted before offer")
	}
	if p.SID != t.sid {
		// XEP-0260 §2.2: the answer's sid MUST be the offer's.
		t.failLocked(fmt.Errorf("socks5: answer sid %q, offered %q: %w", trunc(p.SID), t.sid, jingle.ErrTransportFailed))
		return jingle.ErrBadRequest.WithText("socks5: sid %q does not match %q", trunc(p.SID), t.sid)
	}
	t.setRemoteLocked(p)
	t.startLocked()
	return nil
}

// setup picks the sid, opens our listeners and lists our candidates.
func (t *Transport) setup(ctx context.Context, sid string, exclude map[string]bool) error {
	t.mu.Lock()
	if t.started || t.closed {
		t.mu.Unlock()
		return fmt.Errorf("socks5: transport already set up or closed")
	}
	t.started = true
	t.sid = sid
	local, peer := t.link.Local(), t.link.Peer()
	t.dstLocal = DstAddr(sid, local, peer)
	t.dstRemote = DstAddr(sid, peer, local)
	t.log = t.log.With("sid", sid)
	t.mu.Unlock()

	if _, err := t.srv.Expect(t.dstLocal, t.onAccepted); err != nil {
		return fmt.Errorf("socks5: setup %s: %w", sid, err)
	}
	addrs := t.f.addrs
	if !t.f.addrsSet {
		var err error
		if addrs, err = localAddrs(t.f.ifaces); err != nil {
			return fmt.Errorf("socks5: setup %s: %w: %w", sid, jingle.ErrTransportFailed, err)
		}
		if len(addrs) > MaxCandidates-1 {
			addrs = addrs[:MaxCandidates-1]
		}
	}
	var cands []Candidate
	var ls []net.Listener
	for i, a := range addrs {
		network := "tcp4"
		if a.Is6() && !a.Is4In6() {
			network = "tcp6"
		}
		l, err := t.f.listen(ctx, network, net.JoinHostPort(a.String(), "0"))
		if err != nil {
			t.log.Info("socks5: cannot listen", "addr", a, "err", err)
			continue
		}
		ap, err := netip.ParseAddrPort(l.Addr().String())
		if err != nil || ap.Port() == 0 {
			l.Close()
			continue
		}
		c := Candidate{
			CID: randomID(6), Host: a.String(), Port: ap.Port(), JID: local,
			Priority: Priority(TypeDirect, uint16(65535-i)), Type: TypeDirect,
		}
		cands = append(cands, c)
		ls = append(ls, l)
	}
	if h := t.f.proxy; h != nil && !exclude[h.Addr()] {
		cands = append(cands, Candidate{
			CID: randomID(6), Host: h.Host, Port: h.Port, JID: h.JID,
			Priority: Priority(TypeProxy, 65535), Type: TypeProxy,
		})
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.local = cands
	for i, c := range cands {
		t.localByCID[c.CID] = c
		if i < len(ls) {
			t.viaCID[ls[i].Addr().String()] = c.CID
		}
	}
	for _, l := range ls {
		if !t.goLocked(func() { t.srv.Serve(l) }) {
			l.Close()
		}
	}
	return nil
}

func (t *Transport) setRemoteLocked(p *payload) {
	if p.DstAddr != "" {
		// The peer's own value for its candidates (XEP-0260 §2.2 rule 2).
		t.dstRemote = p.DstAddr
	}
	t.addRemoteLocked(p.Candidates)
	if p.Dropped > 0 {
		t.log.Info("socks5: ignored malformed candidates", "count", p.Dropped)
	}
}

func (t *Transport) addRemoteLocked(cs []Candidate) {
	for _, c := range cs {
		if len(t.remote) >= MaxCandidates {
			return
		}
		if _, dup := t.remoteByCID[c.CID]; dup {
			continue
		}
		t.remote = append(t.remote, c)
		t.remoteByCID[c.CID] = c
	}
}

func (t *Transport) startLocked() {
	if t.running {
		return
	}
	if t.goLocked(t.run) {
		t.running = true
	}
}

// onAccepted receives the peer's connections to our direct candidates.
func (t *Transport) onAccepted(c net.Conn, via net.Addr) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.finished || t.closed {
		return false
	}
	cid := t.viaCID[via.String()]
	if cid == "" {
		return false
	}
	if _, dup := t.accepted[cid]; dup {
		return false
	}
	t.accepted[cid] = c
	t.poke()
	return true
}

// Info implements jingle.Transport: candidate-used, candidate-error,
// activated and proxy-error (XEP-0260 §2.3, §2.4), and candidates sent
// after the answer (§2.2).
func (t *Transport) Info(ctx context.Context, el jingle.Element) error {
	p, err := parseTransport(el)
	if err != nil {
		return jingle.ErrBadRequest.WithText("%v", err)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.started {
		return jingle.ErrBadRequest.WithText("socks5: transport-info before any offer")
	}
	if p.SID != t.sid {
		return jingle.ErrBadRequest.WithText("socks5: transport-info for sid %q, ours is %q", trunc(p.SID), t.sid)
	}
	defer t.poke()
	switch {
	case p.Used != "" || p.CandidateError:
		r := &report{cid: p.Used}
		if r.cid != "" {
			if _, ok := t.localByCID[r.cid]; !ok {
				err := fmt.Errorf("socks5: peer used candidate %q we never offered: %w", trunc(r.cid), jingle.ErrTransportFailed)
				t.failLocked(err)
				return jingle.ErrItemNotFound.WithText("socks5: unknown candidate %q", trunc(r.cid))
			}
		}
		if t.peerReport != nil {
			if *t.peerReport == *r {
				return nil // a retransmission
			}
			return jingle.ErrBadRequest.WithText("socks5: candidate already reported")
		}
		t.peerReport = r
	case p.Activated != "":
		c, ok := t.remoteByCID[p.Activated]
		if !ok || c.Type != TypeProxy {
			err := fmt.Errorf("socks5: peer activated candidate %q, not one of its proxies: %w", trunc(p.Activated), jingle.ErrTransportFailed)
			t.failLocked(err)
			return jingle.ErrItemNotFound.WithText("socks5: unknown proxy candidate %q", trunc(p.Activated))
		}
		t.activated = p.Activated
	case p.ProxyError:
		t.proxyError = true
	case len(p.Candidates) > 0:
		if t.ourReport != nil {
			return nil // too late to matter
		}
		t.addRemoteLocked(p.Candidates)
	default:
		return jingle.ErrBadRequest.WithText("socks5: empty transport-info")
	}
	return nil
}

// failLocked ends the negotiation with err unless it already ended.
func (t *Transport) failLocked(err error) {
	if t.failErr == nil {
		t.failErr = err
	}
}

// Conn implements jingle.Transport. It returns the nominated connection:
// a *net.TCPConn with the default dialer, so CloseWrite (the sender's end of
// file) is available; through a proxy, a wrapper that keeps CloseWrite and
// reports an expired deadline as a *StallError (ErrStalled) naming the
// proxy. An error wraps jingle.ErrTransportFailed when the
// negotiation failed (both sides sent candidate-error, proxy-error, a bad
// nomination).
func (t *Transport) Conn(ctx context.Context) (net.Conn, error) {
	select {
	case <-t.done:
	case <-ctx.Done():
		return nil, fmt.Errorf("socks5: conn: %w", ctx.Err())
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case t.resErr != nil:
		return nil, t.resErr
	case t.taken:
		return nil, ErrConnTaken
	}
	t.taken = true
	return t.resConn, nil
}

// Close implements jingle.Transport: it stops the negotiation, closes the
// listeners and every connection except one Conn returned, and waits for
// the transport's goroutines.
func (t *Transport) Close() error {
	t.closeOnce.Do(func() {
		t.mu.Lock()
		t.closed = true
		closers := t.finishLocked(nil, ErrTransportClosed)
		var keep net.Conn
		if !t.taken && t.resConn != nil {
			keep = t.resConn
		}
		t.mu.Unlock()
		t.cancel()
		closers()
		t.srv.Close()
		t.wg.Wait()
		if keep != nil {
			keep.Close()
		}
	})
	return nil
}

// finishLocked records the outcome (the first one wins) and returns a func
// that closes what lost; call it without t.mu held.
func (t *Transport) finishLocked(conn net.Conn, err error) func() {
	if t.finished {
		if conn != nil {
			return func() { conn.Close() }
		}
		return func() {}
	}
	t.finished = true
	t.resConn, t.resErr = conn, err
	close(t.done)
	if t.timer != nil {
		t.timer.Stop()
	}
	var losers []net.Conn
	for _, a := range t.attempts {
		if a.conn != nil && a.conn != conn {
			losers = append(losers, a.conn)
		}
		a.conn = nil
	}
	for cid, c := range t.accepted {
		if c != conn {
			losers = append(losers, c)
		}
		delete(t.accepted, cid)
	}
	t.acancel()
	if err != nil {
		t.log.Info("socks5: negotiation failed", "err", err)
	} else {
		t.log.Debug("socks5: bytestream established", "local", conn.LocalAddr(), "remote", conn.RemoteAddr())
	}
	return func() {
		for _, c := range losers {
			c.Close()
		}
		// No new connection is useful now.
		t.srv.Close()
	}
}

// run is the negotiation (XEP-0260 §2.3, §2.4). It owns no state of its
// own: Info, the attempts and the listeners update t under t.mu and wake it.
func (t *Transport) run() {
	for {
		if t.step() {
			return
		}
		select {
		case <-t.wake:
		case <-t.ctx.Done():
			return
		}
	}
}

// step advances the negotiation as far as it can; true means it ended.
func (t *Transport) step() bool {
	t.mu.Lock()
	if t.finished {
		t.mu.Unlock()
		return true
	}
	if t.failErr != nil {
		cl := t.finishLocked(nil, t.failErr)
		t.mu.Unlock()
		cl()
		return true
	}
	t.launchLocked()

	// 1. Our report (§2.3).
	if t.ourReport == nil {
		r, ok := t.decideLocked()
		if !ok {
			t.mu.Unlock()
			return false
		}
		t.ourReport = r
		t.acancel()
		var losers []net.Conn
		for cid, a := range t.attempts {
			if cid != r.cid && a.conn != nil {
				losers = append(losers, a.conn)
				a.conn = nil
			}
		}
		t.mu.Unlock()
		for _, c := range losers {
			c.Close()
		}
		el := payload{SID: t.sid, Used: r.cid, CandidateError: r.cid == ""}
		err := t.sendInfo(el)
		t.mu.Lock()
		if err != nil {
			cl := t.finishLocked(nil, fmt.Errorf("socks5: send candidate report: %w", err))
			t.mu.Unlock()
			cl()
			return true
		}
		t.ourSent = true
		t.log.Debug("socks5: reported", "candidate-used", r.cid)
	}
	if !t.ourSent || t.peerReport == nil {
		t.mu.Unlock()
		return false
	}

	// 2. Nomination (§2.4).
	if t.win == nil {
		w, err := t.nominateLocked()
		if err != nil {
			cl := t.finishLocked(nil, err)
			t.mu.Unlock()
			cl()
			return true
		}
		t.win = w
		t.timer = time.AfterFunc(t.f.connectTimeout+t.f.handshakeTimeout, func() {
			t.mu.Lock()
			t.timedOut = true
			t.mu.Unlock()
			t.poke()
		})
		t.log.Debug("socks5: nominated", "cid", w.c.CID, "type", w.c.Type, "ours", w.ours)
	}
	w := t.win

	// 3. The stream.
	switch {
	case w.ours && w.c.Type != TypeProxy:
		return t.finishWith(t.attempts[w.c.CID].conn, nil)
	case w.ours:
		// The peer offered the proxy: it activates, then tells us
		// (§2.4).
		switch {
		case t.proxyError:
			return t.finishWith(nil, fmt.Errorf("socks5: peer sent proxy-error: %w", jingle.ErrTransportFailed))
		case t.activated == w.c.CID:
			return t.finishWith(t.attempts[w.c.CID].conn, nil)
		case t.activated != "":
			return t.finishWith(nil, fmt.Errorf("socks5: peer activated %q, nominated %q: %w", t.activated, w.c.CID, jingle.ErrTransportFailed))
		case t.timedOut:
			return t.finishWith(nil, fmt.Errorf("socks5: proxy %s not activated in time: %w", w.c.JID, jingle.ErrTransportFailed))
		}
	case w.c.Type != TypeProxy:
		if c := t.accepted[w.c.CID]; c != nil {
			return t.finishWith(c, nil)
		}
		if t.timedOut {
			return t.finishWith(nil, fmt.Errorf("socks5: peer's connection to %s never arrived: %w", w.c.Addr(), jingle.ErrTransportFailed))
		}
	case t.proxyError:
		return t.finishWith(nil, fmt.Errorf("socks5: peer sent proxy-error: %w", jingle.ErrTransportFailed))
	case !t.activating:
		// We offered the proxy: connect to it too, activate, and tell
		// the peer (§2.4).
		t.activating = true
		t.mu.Unlock()
		conn, err := t.activateProxy(w.c)
		t.mu.Lock()
		if err != nil {
			t.mu.Unlock()
			t.sendInfo(payload{SID: t.sid, ProxyError: true})
			t.mu.Lock()
			return t.finishWith(nil, fmt.Errorf("socks5: proxy %s: %w: %w", w.c.JID, jingle.ErrTransportFailed, err))
		}
		return t.finishWith(conn, nil)
	}
	t.mu.Unlock()
	return false
}

// finishWith finishes with t.mu held and releases it.
func (t *Transport) finishWith(conn net.Conn, err error) bool {
	if conn == nil && err == nil {
		err = fmt.Errorf("socks5: nominated connection lost: %w", jingle.ErrTransportFailed)
	}
	if conn != nil {
		// The winner is no longer the attempt's or the listener's.
		for _, a := range t.attempts {
			if a.conn == conn {
				a.conn = nil
			}
		}
		for cid, c := range t.accepted {
			if c == conn {
				delete(t.accepted, cid)
			}
		}
	}
	if conn != nil && t.win != nil && t.win.c.Type == TypeProxy {
		// A stalled proxy (Prosody 0.12's mod_proxy65 under epoll) shows
		// as an expired deadline; say which proxy (ErrStalled).
		conn = &proxiedConn{Conn: conn, proxy: t.win.c.JID}
	}
	cl := t.finishLocked(conn, err)
	t.mu.Unlock()
	cl()
	return true
}

func (t *Transport) sendInfo(p payload) error {
	el, err := p.element()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(t.ctx, t.f.connectTimeout+t.f.handshakeTimeout)
	defer cancel()
	return t.link.SendTransportInfo(ctx, el)
}

// activateProxy connects to our own proxy candidate, activates the
// bytestream (XEP-0065 §6.3.4, §6.3.5) and sends <activated/> (XEP-0260
// §2.4).
func (t *Transport) activateProxy(c Candidate) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(t.ctx, t.f.connectTimeout+t.f.handshakeTimeout)
	defer cancel()
	d := Dialer{Forward: t.f.dialer}
	conn, err := d.Dial(ctx, c.Addr(), t.dstLocal)
	if err != nil {
		return nil, err
	}
	if err := Activate(ctx, t.link.Signaller(), c.JID, t.sid, t.link.Peer()); err != nil {
		conn.Close()
		return nil, err
	}
	if err := t.sendInfo(payload{SID: t.sid, Activated: c.CID}); err != nil {
		conn.Close()
		return nil, fmt.Errorf("socks5: send activated: %w", err)
	}
	return conn, nil
}

// sortedRemoteLocked is the peer's candidates, highest priority first
// (XEP-0260 §2.3, §4 item 1), in offer order among equals.
func (t *Transport) sortedRemoteLocked() []Candidate {
	cs := append([]Candidate(nil), t.remote...)
	sort.SliceStable(cs, func(i, j int) bool { return cs[i].Priority > cs[j].Priority })
	return cs
}

// launchLocked starts an attempt for each of the peer's candidates that has
// none yet, staggered in priority order (XEP-0260 §4 items 2 and 3).
func (t *Transport) launchLocked() {
	if t.ourReport != nil {
		return
	}
	n := 0
	cs := t.sortedRemoteLocked()
	direct := false // a non-proxy candidate worth a head start over the proxies
	for _, c := range cs {
		direct = direct || c.Type != TypeProxy
	}
	for _, c := range cs {
		if _, ok := t.attempts[c.CID]; ok {
			continue
		}
		delay := time.Duration(n) * t.f.stagger
		if c.Type == TypeProxy && direct {
			delay += t.f.stagger
		}
		n++
		a := &attempt{c: c}
		t.attempts[c.CID] = a
		dst := t.dstRemote
		if !t.goLocked(func() { t.try(a, delay, dst) }) {
			a.done, a.err = true, ErrTransportClosed
		}
	}
}

// try connects to one of the peer's candidates.
func (t *Transport) try(a *attempt, delay time.Duration, dst string) {
	var conn net.Conn
	var err error
	if delay > 0 {
		timer := time.NewTimer(delay)
		select {
		case <-timer.C:
		case <-t.actx.Done():
			timer.Stop()
			err = t.actx.Err()
		}
	}
	if err == nil {
		ctx, cancel := context.WithTimeout(t.actx, t.f.connectTimeout)
		d := Dialer{Forward: t.f.dialer}
		conn, err = d.Dial(ctx, a.c.Addr(), dst)
		cancel()
	}
	t.mu.Lock()
	a.done, a.err = true, err
	keep := conn != nil && t.ourReport == nil && !t.finished
	if keep {
		a.conn = conn
	}
	t.mu.Unlock()
	if conn != nil && !keep {
		conn.Close()
	}
	if err != nil {
		t.log.Debug("socks5: candidate failed", "cid", a.c.CID, "addr", a.c.Addr(), "err", err)
	}
	t.poke()
}

// decideLocked picks our report once it is known (XEP-0260 §2.3): the
// highest-priority candidate of the peer that we could connect to, once
// every higher one failed; candidate-error when all failed, or when the
// peer's candidate-used beats every candidate we still wait for.
func (t *Transport) decideLocked() (*report, bool) {
	for _, c := range t.sortedRemoteLocked() {
		a := t.attempts[c.CID]
		if a != nil && a.done {
			if a.conn != nil {
				return &report{cid: c.CID}, true
			}
			continue
		}
		if pr := t.peerReport; pr != nil && pr.cid != "" {
			p := t.localByCID[pr.cid].Priority
			if c.Priority < p || c.Priority == p && t.link.Role() != jingle.RoleInitiator {
				// §2.3: stop trying, the peer's choice wins
				// (§2.4 rules 3 and 4).
				return &report{}, true
			}
		}
		return nil, false
	}
	return &report{}, true
}

// nominateLocked applies XEP-0260 §2.4.
func (t *Transport) nominateLocked() (*winner, error) {
	our, peer := t.ourReport, t.peerReport
	switch {
	case our.cid == "" && peer.cid == "":
		// Rule 1.
		return nil, fmt.Errorf("socks5: both parties sent candidate-error: %w", jingle.ErrTransportFailed)
	case peer.cid == "":
		// Rule 2.
		return &winner{ours: true, c: t.remoteByCID[our.cid]}, nil
	case our.cid == "":
		return &winner{c: t.localByCID[peer.cid]}, nil
	}
	mine, theirs := t.remoteByCID[our.cid], t.localByCID[peer.cid]
	switch {
	case mine.Priority > theirs.Priority: // rule 3
		return &winner{ours: true, c: mine}, nil
	case mine.Priority < theirs.Priority:
		return &winner{c: theirs}, nil
	case t.link.Role() == jingle.RoleInitiator: // rule 4: the initiator's choice
		return &winner{ours: true, c: mine}, nil
	default:
		return &winner{c: theirs}, nil
	}
}

// String describes the transport for logs.
func (t *Transport) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return "s5b " + t.sid + " (" + strconv.Itoa(len(t.local)) + " local, " + strconv.Itoa(len(t.remote)) + " remote candidates)"
}

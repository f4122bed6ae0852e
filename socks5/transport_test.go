package socks5

import (
	"context"
	"encoding/xml"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xjingle/xjingle/internal/xjtest"
	"github.com/xjingle/xjingle/jingle"
	"mellium.im/xmpp/jid"
)

var (
	romeo  = "romeo@montague.lit/orchard"
	juliet = "juliet@capulet.lit/balcony"
	proxyJ = "streamer.shakespeare.lit"
	lo     = netip.MustParseAddr("127.0.0.1")
)

// link is a jingle.TransportLink that delivers transport-info straight to
// the peer transport's Info, playing the Manager's role.
type link struct {
	sig              jingle.Signaller
	local, peer, ini jid.JID
	role             jingle.Role
	other            func() jingle.Transport

	mu   sync.Mutex
	sent []jingle.Element
	// intercept, if set, sees each transport-info first; true drops it.
	intercept func(el jingle.Element) bool
}

func (l *link) SID() string                 { return "a73sjjvkla37jfea" }
func (l *link) ContentName() string         { return "ex" }
func (l *link) Local() jid.JID              { return l.local }
func (l *link) Peer() jid.JID               { return l.peer }
func (l *link) Initiator() jid.JID          { return l.ini }
func (l *link) Role() jingle.Role           { return l.role }
func (l *link) Signaller() jingle.Signaller { return l.sig }
func (l *link) Logger() *slog.Logger        { return slog.New(slog.DiscardHandler) }
func (l *link) SendTransportInfo(ctx context.Context, el jingle.Element) error {
	l.mu.Lock()
	l.sent = append(l.sent, el)
	icpt := l.intercept
	l.mu.Unlock()
	if icpt != nil && icpt(el) {
		return nil
	}
	return l.other().Info(ctx, el)
}

func (l *link) sentPayloads(t *testing.T) []*payload {
	l.mu.Lock()
	defer l.mu.Unlock()
	var ps []*payload
	for _, el := range l.sent {
		p, err := parseTransport(el)
		if err != nil {
			t.Fatalf("we sent a bad transport-info: %v", err)
		}
		ps = append(ps, p)
	}
	return ps
}

// pair is two transports of one content, negotiated by the test.
type pair struct {
	net        *xjtest.Network
	ini, res   *Transport
	lini, lres *link
	sigI, sigR *xjtest.Signaller
}

func newPair(t *testing.T, fi, fr *Factory) *pair {
	t.Helper()
	n := xjtest.NewNetwork()
	p := &pair{net: n, sigI: n.Add(romeo), sigR: n.Add(juliet)}
	r, j := jid.MustParse(romeo), jid.MustParse(juliet)
	p.lini = &link{sig: p.sigI, local: r, peer: j, ini: r, role: jingle.RoleInitiator, other: func() jingle.Transport { return p.res }}
	p.lres = &link{sig: p.sigR, local: j, peer: r, ini: r, role: jingle.RoleResponder, other: func() jingle.Transport { return p.ini }}
	ti, err := fi.NewTransport(p.lini)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := fr.NewTransport(p.lres)
	if err != nil {
		t.Fatal(err)
	}
	p.ini, p.res = ti.(*Transport), tr.(*Transport)
	t.Cleanup(func() {
		p.ini.Close()
		p.res.Close()
		p.sigI.Close()
		p.sigR.Close()
	})
	return p
}

// negotiate runs offer → accept → accepted and returns both Conn results.
func (p *pair) negotiate(t *testing.T) (ci, cr net.Conn, ei, er error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	offer, err := p.ini.Offer(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ans, err := p.res.Accept(ctx, offer)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.ini.Accepted(ctx, ans); err != nil {
		t.Fatal(err)
	}
	return p.conns(ctx)
}

func (p *pair) conns(ctx context.Context) (ci, cr net.Conn, ei, er error) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		cr, er = p.res.Conn(ctx)
	}()
	ci, ei = p.ini.Conn(ctx)
	wg.Wait()
	return
}

func factory(t testing.TB, opts ...Option) *Factory {
	t.Helper()
	f, err := NewFactory(append([]Option{WithAddresses(lo), WithStagger(0), WithConnectTimeout(2 * time.Second)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// exchange checks that a and b carry data both ways and that CloseWrite on
// either end is EOF on the other.
func exchange(t *testing.T, a, b net.Conn) {
	t.Helper()
	a.SetDeadline(time.Now().Add(5 * time.Second))
	b.SetDeadline(time.Now().Add(5 * time.Second))
	msg := []byte("it is the east, and Juliet is the sun")
	for _, d := range [][2]net.Conn{{a, b}, {b, a}} {
		go d[0].Write(msg)
		buf := make([]byte, len(msg))
		if _, err := io.ReadFull(d[1], buf); err != nil || string(buf) != string(msg) {
			t.Fatalf("read %q, %v", buf, err)
		}
	}
	for _, d := range [][2]net.Conn{{b, a}, {a, b}} {
		cw, ok := d[0].(interface{ CloseWrite() error })
		if !ok {
			t.Fatalf("%T has no CloseWrite", d[0])
		}
		d[0].Write([]byte("bye"))
		if err := cw.CloseWrite(); err != nil {
			t.Fatal(err)
		}
		rest, err := io.ReadAll(d[1])
		if err != nil || string(rest) != "bye" {
			t.Fatalf("after CloseWrite read %q, %v; want bye then EOF", rest, err)
		}
	}
}

func TestDirect(t *testing.T) {
	p := newPair(t, factory(t), factory(t))
	ci, cr, ei, er := p.negotiate(t)
	if ei != nil || er != nil {
		t.Fatalf("Conn: initiator %v, responder %v", ei, er)
	}
	defer ci.Close()
	defer cr.Close()
	// Both used the other's candidate with equal priority: the
	// initiator's choice (the responder's candidate) wins (§2.4 rule 4),
	// so the initiator dialed and the responder accepted.
	if ci.RemoteAddr().String() != cr.LocalAddr().String() {
		t.Errorf("initiator connected to %v, responder's end is %v", ci.RemoteAddr(), cr.LocalAddr())
	}
	if ps := p.lini.sentPayloads(t); len(ps) != 1 || ps[0].Used == "" {
		t.Errorf("initiator sent %+v, want one candidate-used", ps)
	}
	// The responder reports either: candidate-error is right when the
	// initiator's candidate-used (a tie it loses, §2.4 rule 4) arrived
	// before its own attempt finished (§2.3).
	if ps := p.lres.sentPayloads(t); len(ps) != 1 || ps[0].Used == "" && !ps[0].CandidateError {
		t.Errorf("responder sent %+v, want one report", ps)
	}
	exchange(t, ci, cr)
	if _, err := p.ini.Conn(context.Background()); !errors.Is(err, ErrConnTaken) {
		t.Errorf("second Conn: %v, want ErrConnTaken", err)
	}
}

func TestOneSidedRule2(t *testing.T) {
	// The responder offers nothing: the initiator sends candidate-error,
	// the responder candidate-used, which is nominated (§2.4 rule 2).
	p := newPair(t, factory(t), factory(t, WithoutDirect()))
	ci, cr, ei, er := p.negotiate(t)
	if ei != nil || er != nil {
		t.Fatalf("Conn: initiator %v, responder %v", ei, er)
	}
	defer ci.Close()
	defer cr.Close()
	if ps := p.lini.sentPayloads(t); len(ps) != 1 || !ps[0].CandidateError {
		t.Errorf("initiator sent %+v, want candidate-error", ps)
	}
	exchange(t, cr, ci)
}

func TestBothCandidateError(t *testing.T) {
	p := newPair(t, factory(t, WithoutDirect()), factory(t, WithoutDirect()))
	_, _, ei, er := p.negotiate(t)
	if !errors.Is(ei, jingle.ErrTransportFailed) || !errors.Is(er, jingle.ErrTransportFailed) {
		t.Fatalf("Conn: initiator %v, responder %v; want ErrTransportFailed", ei, er)
	}
}

// A candidate that accepts TCP but never answers SOCKS (a black hole on
// loopback) costs one connect timeout, not more.
func TestStalledCandidate(t *testing.T) {
	hole := listen(t)
	defer hole.Close()
	var held []net.Conn
	var hmu sync.Mutex
	go func() {
		for {
			c, err := hole.Accept()
			if err != nil {
				return
			}
			hmu.Lock()
			held = append(held, c)
			hmu.Unlock()
		}
	}()
	defer func() {
		hmu.Lock()
		for _, c := range held {
			c.Close()
		}
		hmu.Unlock()
	}()
	const timeout = 300 * time.Millisecond
	p := newPair(t, factory(t, WithConnectTimeout(timeout)), factory(t, WithConnectTimeout(timeout)))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	offer, err := p.ini.Offer(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Add the black hole to the offer, above the real candidate.
	ap := netip.MustParseAddrPort(hole.Addr().String())
	op, _ := parseTransport(offer)
	op.Candidates = append([]Candidate{{CID: "hole", Host: "127.0.0.1", Port: ap.Port(), JID: jid.MustParse(romeo), Priority: Priority(TypeDirect, 65535) + 1, Type: TypeDirect}}, op.Candidates...)
	offer, _ = op.element()
	// The responder's own candidate is withheld from the initiator, so
	// the responder must get past the hole.
	ans, err := p.res.Accept(ctx, offer)
	if err != nil {
		t.Fatal(err)
	}
	ap2, _ := parseTransport(ans)
	ap2.Candidates = nil
	ans, _ = ap2.element()
	start := time.Now()
	if err := p.ini.Accepted(ctx, ans); err != nil {
		t.Fatal(err)
	}
	ci, cr, ei, er := p.conns(ctx)
	if ei != nil || er != nil {
		t.Fatalf("Conn: initiator %v, responder %v", ei, er)
	}
	defer ci.Close()
	defer cr.Close()
	if d := time.Since(start); d > timeout+2*time.Second {
		t.Errorf("negotiation took %v with a %v connect timeout", d, timeout)
	}
	if ps := p.lres.sentPayloads(t); len(ps) != 1 || ps[0].Used == "hole" || ps[0].Used == "" {
		t.Errorf("responder sent %+v, want candidate-used of the real candidate", ps)
	}
	exchange(t, ci, cr)
}

func TestUnknownCIDNominated(t *testing.T) {
	p := newPair(t, factory(t), factory(t))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := p.ini.Offer(ctx); err != nil {
		t.Fatal(err)
	}
	el, _ := (&payload{SID: p.ini.sid, Used: "never-offered"}).element()
	err := p.ini.Info(ctx, el)
	if !errors.Is(err, jingle.ErrItemNotFound) {
		t.Fatalf("Info: %v, want item-not-found", err)
	}
	// The negotiation starts (Accepted) and fails at once.
	ans, _ := (&payload{SID: p.ini.sid}).element()
	if err := p.ini.Accepted(ctx, ans); err != nil {
		t.Fatal(err)
	}
	if _, err := p.ini.Conn(ctx); !errors.Is(err, jingle.ErrTransportFailed) {
		t.Fatalf("Conn: %v, want ErrTransportFailed", err)
	}
}

func TestInfoValidation(t *testing.T) {
	p := newPair(t, factory(t), factory(t))
	ctx := context.Background()
	offer, err := p.ini.Offer(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.ini.Offer(ctx); err == nil {
		t.Error("second Offer succeeded")
	}
	for name, raw := range map[string]string{
		"wrong sid":      `<transport xmlns='urn:xmpp:jingle:transports:s5b:1' sid='other'><candidate-error/></transport>`,
		"no sid":         `<transport xmlns='urn:xmpp:jingle:transports:s5b:1'><candidate-error/></transport>`,
		"empty":          `<transport xmlns='urn:xmpp:jingle:transports:s5b:1' sid='SID'/>`,
		"two actions":    `<transport xmlns='urn:xmpp:jingle:transports:s5b:1' sid='SID'><candidate-error/><proxy-error/></transport>`,
		"wrong ns":       `<transport xmlns='urn:xmpp:jingle:transports:ibb:1' sid='SID'/>`,
		"activated ours": `<transport xmlns='urn:xmpp:jingle:transports:s5b:1' sid='SID'><activated cid='x'/></transport>`,
	} {
		el, err := jingle.ParseElement([]byte(replaceSID(raw, p.ini.sid)))
		if err != nil {
			t.Fatal(err)
		}
		err = p.ini.Info(ctx, el)
		var se *jingle.StanzaError
		if !errors.As(err, &se) {
			t.Errorf("%s: Info: %v, want a stanza error", name, err)
		}
	}
	// The peer answering with another sid is refused.
	bad, _ := (&payload{SID: "not-" + p.ini.sid}).element()
	if err := p.ini.Accepted(ctx, bad); !errors.Is(err, jingle.ErrBadRequest) {
		t.Errorf("Accepted with wrong sid: %v, want bad-request", err)
	}
	_ = offer
}

func replaceSID(s, sid string) string {
	out := []byte{}
	for i := 0; i < len(s); i++ {
		if i+3 <= len(s) && s[i:i+3] == "SID" {
			out = append(out, sid...)
			i += 2
			continue
		}
		out = append(out, s[i])
	}
	return string(out)
}

func TestAcceptRefusesUDP(t *testing.T) {
	p := newPair(t, factory(t), factory(t))
	el, _ := jingle.ParseElement([]byte(`<transport xmlns='urn:xmpp:jingle:transports:s5b:1' sid='s1' mode='udp'/>`))
	if _, err := p.res.Accept(context.Background(), el); !errors.Is(err, jingle.ErrTransportFailed) {
		t.Fatalf("Accept(mode=udp): %v, want ErrTransportFailed", err)
	}
}

func TestCloseUnblocksConn(t *testing.T) {
	p := newPair(t, factory(t), factory(t))
	if _, err := p.ini.Offer(context.Background()); err != nil {
		t.Fatal(err)
	}
	res := make(chan error, 1)
	go func() {
		_, err := p.ini.Conn(context.Background())
		res <- err
	}()
	p.ini.Close()
	if err := <-res; !errors.Is(err, ErrTransportClosed) {
		t.Fatalf("Conn after Close: %v, want ErrTransportClosed", err)
	}
}

// fakeProxy is an in-process XEP-0065 proxy on loopback: it pairs the two
// connections of a DST.ADDR and relays between them once the requester
// activates the stream with an IQ to its JID on the xjtest network.
type fakeProxy struct {
	l    net.Listener
	sig  *xjtest.Signaller
	mu   sync.Mutex
	byDA map[string][]net.Conn
	wg   sync.WaitGroup
	// refuse makes activation fail.
	refuse bool
	// stallAfter, if positive, makes the relay pass on only that many
	// bytes in each direction and then stop reading and writing (the
	// stuck tail of Prosody 0.12's mod_proxy65 under epoll).
	stallAfter int64
	quit       chan struct{}
}

func newFakeProxy(t *testing.T, n *xjtest.Network) *fakeProxy {
	fp := &fakeProxy{l: listen(t), sig: n.Add(proxyJ), byDA: map[string][]net.Conn{}, quit: make(chan struct{})}
	fp.sig.HandleIQ(xml.Name{Space: NSBytestreams, Local: "query"}, fp.handle)
	fp.wg.Add(1)
	go func() {
		defer fp.wg.Done()
		for {
			c, err := fp.l.Accept()
			if err != nil {
				return
			}
			fp.wg.Add(1)
			go func() {
				defer fp.wg.Done()
				c.SetDeadline(time.Now().Add(5 * time.Second))
				// Register before the reply goes out: the client may
				// activate as soon as it reads it.
				_, err := serverHandshake(c, func(da string) bool {
					fp.mu.Lock()
					fp.byDA[da] = append(fp.byDA[da], c)
					fp.mu.Unlock()
					return true
				})
				if err != nil {
					c.Close()
					return
				}
				c.SetDeadline(time.Time{})
			}()
		}
	}()
	t.Cleanup(func() {
		close(fp.quit)
		fp.l.Close()
		fp.sig.Close()
		fp.mu.Lock()
		for _, cs := range fp.byDA {
			for _, c := range cs {
				c.Close()
			}
		}
		fp.mu.Unlock()
		fp.wg.Wait()
	})
	return fp
}

func (fp *fakeProxy) streamHost() StreamHost {
	ap := netip.MustParseAddrPort(fp.l.Addr().String())
	return StreamHost{JID: jid.MustParse(proxyJ), Host: "127.0.0.1", Port: ap.Port()}
}

func (fp *fakeProxy) handle(iq *jingle.IQ, reply jingle.ReplyFunc) {
	sid, target, err := ParseActivate(iq.Payload)
	if err != nil {
		reply(nil, jingle.ErrBadRequest)
		return
	}
	da := DstAddr(sid, iq.From, target) // XEP-0065 §6.3.5
	fp.mu.Lock()
	cs := fp.byDA[da]
	if fp.refuse || len(cs) != 2 {
		fp.mu.Unlock()
		reply(nil, jingle.NewStanzaError(jingle.ErrorTypeCancel, "not-allowed", ""))
		return
	}
	fp.wg.Add(2)
	fp.mu.Unlock()
	relay := func(dst, src net.Conn) {
		defer fp.wg.Done()
		if fp.stallAfter > 0 {
			io.CopyN(dst, src, fp.stallAfter)
			<-fp.quit // hold the rest, neither reading nor writing
			return
		}
		io.Copy(dst, src)
		dst.(*net.TCPConn).CloseWrite()
	}
	go relay(cs[0], cs[1])
	go relay(cs[1], cs[0])
	reply(nil, nil)
}

// proxyOnly negotiates a stream between two sides that offer no direct
// candidate, only the same fake proxy, with opts on both factories; the
// conns close at cleanup.
func proxyOnly(t *testing.T, opts ...Option) (p *pair, ci, cr net.Conn) {
	t.Helper()
	n := xjtest.NewNetwork()
	fp := newFakeProxy(t, n)
	opts = append([]Option{WithoutDirect(), WithProxy(fp.streamHost())}, opts...)
	p = newPairOn(t, n, factory(t, opts...), factory(t, opts...))
	ci, cr, ei, er := p.negotiate(t)
	if ei != nil || er != nil {
		t.Fatalf("Conn: initiator %v, responder %v", ei, er)
	}
	t.Cleanup(func() {
		ci.Close()
		cr.Close()
	})
	return p, ci, cr
}

func TestProxyCandidate(t *testing.T) {
	p, ci, cr := proxyOnly(t)
	// The responder must not repeat the initiator's proxy (§2.2), so it
	// offered nothing and sent candidate-used for the initiator's proxy;
	// the initiator sent candidate-error, then activated (§2.4).
	pi, pr := p.lini.sentPayloads(t), p.lres.sentPayloads(t)
	if len(pr) != 1 || pr[0].Used == "" {
		t.Fatalf("responder sent %+v, want candidate-used", pr)
	}
	if len(pi) != 2 || !pi[0].CandidateError || pi[1].Activated != pr[0].Used {
		t.Fatalf("initiator sent %+v, want candidate-error then activated %s", pi, pr[0].Used)
	}
	exchange(t, ci, cr)
}

// TestProxyOnlyNoStagger: when the peer offers only proxy candidates there
// is no direct attempt to give a head start, so the proxy is tried at once
// (it used to wait one stagger, 200 ms per proxied transfer). With a stagger
// of an hour, the transfer would otherwise never start within the test.
func TestProxyOnlyNoStagger(t *testing.T) {
	_, ci, cr := proxyOnly(t, WithStagger(time.Hour))
	exchange(t, ci, cr)
}

func TestProxyActivationRefused(t *testing.T) {
	n := xjtest.NewNetwork()
	fp := newFakeProxy(t, n)
	fp.refuse = true
	fi := factory(t, WithoutDirect(), WithProxy(fp.streamHost()))
	fr := factory(t, WithoutDirect())
	p := newPairOn(t, n, fi, fr)
	_, _, ei, er := p.negotiate(t)
	if !errors.Is(ei, jingle.ErrTransportFailed) || !errors.Is(er, jingle.ErrTransportFailed) {
		t.Fatalf("Conn: initiator %v, responder %v; want ErrTransportFailed", ei, er)
	}
	pi := p.lini.sentPayloads(t)
	if len(pi) != 2 || !pi[1].ProxyError {
		t.Fatalf("initiator sent %+v, want candidate-error then proxy-error", pi)
	}
}

// newPairOn is newPair on an existing network (for the proxy's Signaller).
func newPairOn(t *testing.T, n *xjtest.Network, fi, fr *Factory) *pair {
	t.Helper()
	p := &pair{net: n, sigI: n.Add(romeo), sigR: n.Add(juliet)}
	r, j := jid.MustParse(romeo), jid.MustParse(juliet)
	p.lini = &link{sig: p.sigI, local: r, peer: j, ini: r, role: jingle.RoleInitiator, other: func() jingle.Transport { return p.res }}
	p.lres = &link{sig: p.sigR, local: j, peer: r, ini: r, role: jingle.RoleResponder, other: func() jingle.Transport { return p.ini }}
	ti, _ := fi.NewTransport(p.lini)
	tr, _ := fr.NewTransport(p.lres)
	p.ini, p.res = ti.(*Transport), tr.(*Transport)
	t.Cleanup(func() {
		p.ini.Close()
		p.res.Close()
		p.sigI.Close()
		p.sigR.Close()
	})
	return p
}

func TestPriorityRule3(t *testing.T) {
	// The responder's candidate ranks above the initiator's: the
	// responder's candidate (used by the initiator) wins whatever the
	// roles.
	for _, hi := range []string{"initiator", "responder"} {
		t.Run(hi+" offers higher", func(t *testing.T) {
			p := newPair(t, factory(t), factory(t))
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			offer, _ := p.ini.Offer(ctx)
			if hi == "responder" {
				op, _ := parseTransport(offer)
				op.Candidates[0].Priority = Priority(TypeAssisted, 0)
				p.ini.mu.Lock()
				p.ini.local[0].Priority = op.Candidates[0].Priority
				p.ini.localByCID[op.Candidates[0].CID] = op.Candidates[0]
				p.ini.mu.Unlock()
				offer, _ = op.element()
			}
			ans, err := p.res.Accept(ctx, offer)
			if err != nil {
				t.Fatal(err)
			}
			if hi == "initiator" {
				ap, _ := parseTransport(ans)
				ap.Candidates[0].Priority = Priority(TypeAssisted, 0)
				p.res.mu.Lock()
				p.res.local[0].Priority = ap.Candidates[0].Priority
				p.res.localByCID[ap.Candidates[0].CID] = ap.Candidates[0]
				p.res.mu.Unlock()
				ans, _ = ap.element()
			}
			if err := p.ini.Accepted(ctx, ans); err != nil {
				t.Fatal(err)
			}
			ci, cr, ei, er := p.conns(ctx)
			if ei != nil || er != nil {
				t.Fatalf("Conn: %v, %v", ei, er)
			}
			defer ci.Close()
			defer cr.Close()
			// The initiator's candidate ranks higher: the responder
			// dialed it, so the initiator holds the accepted end.
			dialer, acceptor := cr, ci
			if hi == "responder" {
				dialer, acceptor = ci, cr
			}
			if dialer.RemoteAddr().String() != acceptor.LocalAddr().String() {
				t.Errorf("%s's candidate should have won: dialer %v→%v, acceptor %v", hi, dialer.LocalAddr(), dialer.RemoteAddr(), acceptor.LocalAddr())
			}
			exchange(t, ci, cr)
		})
	}
}

func TestFactoryOptions(t *testing.T) {
	for name, o := range map[string]Option{
		"empty iface":     WithInterfaces(""),
		"bad addr":        WithAddresses(netip.Addr{}),
		"unspecified":     WithAddresses(netip.MustParseAddr("0.0.0.0")),
		"bad proxy":       WithProxy(StreamHost{}),
		"zero timeout":    WithConnectTimeout(0),
		"neg stagger":     WithStagger(-1),
		"zero handshake":  WithHandshakeTimeout(0),
		"nil dialer":      WithDialer(nil),
		"nil listen func": WithListen(nil),
	} {
		if _, err := NewFactory(o); err == nil {
			t.Errorf("%s: NewFactory succeeded", name)
		}
	}
	f, err := NewFactory()
	if err != nil || f.Namespace() != NS {
		t.Fatalf("NewFactory() = %v, %v", f, err)
	}
}

func TestLocalAddrsLoopback(t *testing.T) {
	ifs, err := net.Interfaces()
	if err != nil {
		t.Skip(err)
	}
	var loName string
	for _, i := range ifs {
		if i.Flags&net.FlagLoopback != 0 && i.Flags&net.FlagUp != 0 {
			loName = i.Name
		}
	}
	if loName == "" {
		t.Skip("no loopback interface")
	}
	addrs, err := localAddrs([]string{loName})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, a := range addrs {
		found = found || a == lo
	}
	if !found {
		t.Errorf("localAddrs(%s) = %v, want 127.0.0.1 among them", loName, addrs)
	}
	all, err := localAddrs(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range all {
		if a.IsLoopback() {
			t.Errorf("default addresses include loopback %v", a)
		}
	}
	if _, err := localAddrs([]string{"no-such-if0"}); err == nil {
		t.Error("unknown interface accepted")
	}
}

// TestProxyStalledTail: a proxy that keeps the last 4 KiB of the stream
// (Prosody 0.12's mod_proxy65 under epoll) makes the receiver's read hit
// its deadline; the error says the proxy stalled and names it, and stays a
// deadline error for callers that only know about those.
func TestProxyStalledTail(t *testing.T) {
	const size, tail = 256 << 10, 4 << 10
	n := xjtest.NewNetwork()
	fp := newFakeProxy(t, n)
	fp.stallAfter = size - tail
	fi := factory(t, WithoutDirect(), WithProxy(fp.streamHost()))
	fr := factory(t, WithoutDirect(), WithProxy(fp.streamHost()))
	p := newPairOn(t, n, fi, fr)
	ci, cr, ei, er := p.negotiate(t)
	if ei != nil || er != nil {
		t.Fatalf("Conn: initiator %v, responder %v", ei, er)
	}
	defer ci.Close()
	defer cr.Close()
	if _, ok := ci.(interface{ CloseWrite() error }); !ok {
		t.Fatalf("%T through a proxy has no CloseWrite", ci)
	}
	go func() {
		ci.Write(make([]byte, size))
		ci.(interface{ CloseWrite() error }).CloseWrite()
	}()
	const stall = 300 * time.Millisecond
	var got int64
	var err error
	buf := make([]byte, 32<<10)
	start := time.Now()
	for {
		cr.SetReadDeadline(time.Now().Add(stall))
		var k int
		k, err = cr.Read(buf)
		got += int64(k)
		if err != nil {
			break
		}
	}
	if got != size-tail {
		t.Errorf("read %d bytes, want the %d the proxy relayed", got, size-tail)
	}
	var se *StallError
	if !errors.Is(err, ErrStalled) || !errors.As(err, &se) || !se.Proxy.Equal(jid.MustParse(proxyJ)) {
		t.Fatalf("read error %v, want a StallError (ErrStalled) naming %s", err, proxyJ)
	}
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("%v does not match os.ErrDeadlineExceeded", err)
	}
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("%v is not a net.Error timeout", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("stall noticed after %v", d)
	}
	t.Logf("stall error: %v", err)
}

// TestDirectConnNotWrapped: only a proxied stream is reported as a stall;
// a direct one stays the plain TCP connection.
func TestDirectConnNotWrapped(t *testing.T) {
	p := newPair(t, factory(t), factory(t))
	ci, cr, ei, er := p.negotiate(t)
	if ei != nil || er != nil {
		t.Fatalf("Conn: initiator %v, responder %v", ei, er)
	}
	defer ci.Close()
	defer cr.Close()
	if _, ok := ci.(*net.TCPConn); !ok {
		t.Errorf("direct conn is %T, want *net.TCPConn", ci)
	}
	cr.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
	if _, err := cr.Read(make([]byte, 1)); errors.Is(err, ErrStalled) || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("direct read error %v, want a deadline error that is not ErrStalled", err)
	}
}

// TestHangingCandidatesInParallel: the initiator offers, above its real
// candidate, two that hang (a listener that never accepts: the kernel
// completes the TCP handshake and the SOCKS5 greeting gets no answer, as
// behind a firewall that swallows it) and one that refuses. The responder
// tries them staggered, in parallel, each bounded by the connect timeout,
// so the working one is used after about one timeout, not the sum.
func TestHangingCandidatesInParallel(t *testing.T) {
	var holes []net.Listener
	for range 2 {
		l := listen(t) // never Accept
		defer l.Close()
		holes = append(holes, l)
	}
	refused := listen(t)
	refusedPort := netip.MustParseAddrPort(refused.Addr().String()).Port()
	refused.Close()

	const timeout = 2 * time.Second
	opts := []Option{WithConnectTimeout(timeout), WithStagger(DefaultStagger)}
	p := newPair(t, factory(t, opts...), factory(t, opts...))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	offer, err := p.ini.Offer(ctx)
	if err != nil {
		t.Fatal(err)
	}
	op, _ := parseTransport(offer)
	top := Priority(TypeDirect, 65535)
	var extra []Candidate
	for i, l := range holes {
		ap := netip.MustParseAddrPort(l.Addr().String())
		extra = append(extra, Candidate{CID: "hole" + strconv.Itoa(i), Host: "127.0.0.1", Port: ap.Port(), JID: jid.MustParse(romeo), Priority: top + 3 - uint32(i), Type: TypeDirect})
	}
	extra = append(extra, Candidate{CID: "refused", Host: "127.0.0.1", Port: refusedPort, JID: jid.MustParse(romeo), Priority: top + 1, Type: TypeDirect})
	op.Candidates = append(extra, op.Candidates...)
	offer, _ = op.element()
	start := time.Now()
	ans, err := p.res.Accept(ctx, offer)
	if err != nil {
		t.Fatal(err)
	}
	// Withhold the responder's candidates: it must get past the holes.
	ap2, _ := parseTransport(ans)
	ap2.Candidates = nil
	ans, _ = ap2.element()
	if err := p.ini.Accepted(ctx, ans); err != nil {
		t.Fatal(err)
	}
	ci, cr, ei, er := p.conns(ctx)
	if ei != nil || er != nil {
		t.Fatalf("Conn: initiator %v, responder %v", ei, er)
	}
	defer ci.Close()
	defer cr.Close()
	took := time.Since(start)
	t.Logf("stream up after %v (connect timeout %v, 2 hanging + 1 refused candidate above the good one)", took, timeout)
	// In sequence the holes alone would cost two timeouts (4 s); in
	// parallel one timeout plus a stagger step.
	if took > timeout+time.Second {
		t.Errorf("stream up after %v, want about one %v connect timeout", took, timeout)
	}
	if ps := p.lres.sentPayloads(t); len(ps) != 1 || ps[0].Used == "" || strings.HasPrefix(ps[0].Used, "hole") || ps[0].Used == "refused" {
		t.Errorf("responder sent %+v, want candidate-used of the real candidate", ps)
	}
	exchange(t, ci, cr)
}

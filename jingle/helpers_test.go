package jingle_test

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/xjingle/xjingle/internal/xjtest"
	"github.com/xjingle/xjingle/jingle"
	"go.uber.org/goleak"
	"mellium.im/xmpp/jid"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	nsApp   = "urn:xjingle:test:app:0"
	nsInfo  = "urn:xjingle:test:app:info:0"
	nsPipe  = "urn:xjingle:test:pipe:0"
	nsPipe2 = "urn:xjingle:test:pipe:1"
	nsNope  = "urn:xjingle:test:nope:0"

	aliceJID = "alice@example.test/a"
	bobJID   = "bob@example.test/b"
)

// testCtx bounds a test step; nothing in these tests should take long.
func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// hub pairs the two ends of the toy transports by transport id.
type hub struct {
	mu    sync.Mutex
	pipes map[string][2]net.Conn
}

func newHub() *hub { return &hub{pipes: map[string][2]net.Conn{}} }

func (h *hub) end(id string, offerer bool) net.Conn {
	h.mu.Lock()
	defer h.mu.Unlock()
	p, ok := h.pipes[id]
	if !ok {
		a, b := net.Pipe()
		p = [2]net.Conn{a, b}
		h.pipes[id] = p
	}
	if offerer {
		return p[0]
	}
	return p[1]
}

// pipeFactory makes toy transports: the offer names a net.Pipe in a hub; Conn
// is ready once the offer was answered.
type pipeFactory struct {
	ns     string
	h      *hub
	refuse bool // Accept fails with ErrTransportFailed
	infos  chan jingle.Element

	mu    sync.Mutex
	links []jingle.TransportLink
}

func (f *pipeFactory) lastLink() jingle.TransportLink {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.links[len(f.links)-1]
}

func newPipeFactory(ns string, h *hub) *pipeFactory {
	return &pipeFactory{ns: ns, h: h, infos: make(chan jingle.Element, 16)}
}

func (f *pipeFactory) Namespace() string { return f.ns }

func (f *pipeFactory) NewTransport(l jingle.TransportLink) (jingle.Transport, error) {
	f.mu.Lock()
	f.links = append(f.links, l)
	f.mu.Unlock()
	return &pipeTransport{f: f, l: l, ready: make(chan struct{}), closed: make(chan struct{})}, nil
}

type pipeTransport struct {
	f         *pipeFactory
	l         jingle.TransportLink
	id        string
	offerer   bool
	ready     chan struct{}
	readyOnce sync.Once
	closed    chan struct{}
	closeOnce sync.Once
}

func (t *pipeTransport) el(id string) jingle.Element {
	return jingle.Element{XMLName: xml.Name{Space: t.f.ns, Local: "transport"}, Attrs: []xml.Attr{{Name: xml.Name{Local: "id"}, Value: id}}}
}

func (t *pipeTransport) Offer(ctx context.Context) (jingle.Element, error) {
	t.offerer = true
	t.id = fmt.Sprintf("%s/%s/%s", t.l.SID(), t.l.ContentName(), t.f.ns)
	return t.el(t.id), nil
}

func (t *pipeTransport) Accept(ctx context.Context, offer jingle.Element) (jingle.Element, error) {
	if t.f.refuse {
		return jingle.Element{}, fmt.Errorf("pipe: %w", jingle.ErrTransportFailed)
	}
	t.id = offer.Attr("id")
	t.readyOnce.Do(func() { close(t.ready) })
	return t.el(t.id), nil
}

func (t *pipeTransport) Accepted(ctx context.Context, answer jingle.Element) error {
	if answer.Attr("id") != t.id {
		return fmt.Errorf("pipe: answer for %q, offered %q", answer.Attr("id"), t.id)
	}
	t.readyOnce.Do(func() { close(t.ready) })
	return nil
}

func (t *pipeTransport) Info(ctx context.Context, el jingle.Element) error {
	if el.Attr("fail") != "" {
		return jingle.ErrNotAcceptable.WithText("pipe: told to fail")
	}
	select {
	case t.f.infos <- el:
	default:
	}
	return nil
}

func (t *pipeTransport) Conn(ctx context.Context) (net.Conn, error) {
	select {
	case <-t.ready:
		return t.f.h.end(t.id, t.offerer), nil
	case <-t.closed:
		return nil, fmt.Errorf("pipe: closed: %w", jingle.ErrTransportFailed)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (t *pipeTransport) Close() error {
	t.closeOnce.Do(func() { close(t.closed) })
	return nil
}

// testApp hands incoming sessions to the test.
type testApp struct {
	ns  string
	got chan *jingle.Session
}

func newTestApp(ns string) *testApp { return &testApp{ns: ns, got: make(chan *jingle.Session, 8)} }

func (a *testApp) Namespace() string        { return a.ns }
func (a *testApp) InfoNamespaces() []string { return []string{nsInfo} }
func (a *testApp) HandleSession(ctx context.Context, s *jingle.Session) {
	select {
	case a.got <- s:
	case <-ctx.Done():
	}
}

func (a *testApp) next(t *testing.T) *jingle.Session {
	t.Helper()
	select {
	case s := <-a.got:
		return s
	case <-time.After(10 * time.Second):
		t.Fatal("no incoming session")
		return nil
	}
}

func appDesc(name string) jingle.Element {
	return jingle.Element{XMLName: xml.Name{Space: nsApp, Local: "description"}, Inner: []byte("<file><name>" + name + "</name></file>")}
}

type node struct {
	sig *xjtest.Signaller
	m   *jingle.Manager
	app *testApp
	p1  *pipeFactory
	p2  *pipeFactory
}

// newNode starts a Manager on a new Signaller with the toy application and
// both pipe transports (unless withoutPipe2).
func newNode(t *testing.T, n *xjtest.Network, h *hub, j string, withoutPipe2 bool, opts ...jingle.Option) *node {
	t.Helper()
	nd := &node{sig: n.Add(j), app: newTestApp(nsApp), p1: newPipeFactory(nsPipe, h), p2: newPipeFactory(nsPipe2, h)}
	opts = append([]jingle.Option{jingle.WithApplication(nd.app), jingle.WithTransport(nd.p1)}, opts...)
	if !withoutPipe2 {
		opts = append(opts, jingle.WithTransport(nd.p2))
	}
	m, err := jingle.NewManager(nd.sig, opts...)
	if err != nil {
		t.Fatal(err)
	}
	nd.m = m
	t.Cleanup(func() {
		m.Close()
		nd.sig.Close()
	})
	return nd
}

// rawPeer is a bare Signaller with a <jingle/> handler that records what it
// gets, for driving a Manager with hand-written stanzas.
type rawPeer struct {
	sig *xjtest.Signaller
	in  chan rawIQ
}

type rawIQ struct {
	j     *jingle.Jingle
	reply jingle.ReplyFunc
}

func newRawPeer(t *testing.T, n *xjtest.Network, j string, autoAck bool) *rawPeer {
	t.Helper()
	p := &rawPeer{sig: n.Add(j), in: make(chan rawIQ, 64)}
	p.sig.HandleIQ(xml.Name{Space: jingle.NS, Local: "jingle"}, func(iq *jingle.IQ, reply jingle.ReplyFunc) {
		jj, err := jingle.ParseJingle(iq.Payload)
		if err != nil {
			reply(nil, jingle.ErrBadRequest)
			return
		}
		if autoAck {
			reply(nil, nil)
		}
		select {
		case p.in <- rawIQ{jj, reply}:
		default:
		}
	})
	t.Cleanup(func() { p.sig.Close() })
	return p
}

func (p *rawPeer) next(t *testing.T, want jingle.Action) rawIQ {
	t.Helper()
	for {
		select {
		case r := <-p.in:
			if r.j.Action == want {
				return r
			}
			t.Logf("raw peer: skipping %s", r.j.Action)
		case <-time.After(10 * time.Second):
			t.Fatalf("raw peer: no %s", want)
		}
	}
}

func (p *rawPeer) send(t *testing.T, to string, raw string) error {
	t.Helper()
	_, err := p.sig.SendIQ(testCtx(t), jid.MustParse(to), "set", []byte(raw))
	return err
}

// wantStanzaError checks that err is exactly want (type, condition, Jingle
// condition).
func wantStanzaError(t *testing.T, err error, want *jingle.StanzaError) {
	t.Helper()
	var se *jingle.StanzaError
	if !errors.As(err, &se) {
		t.Fatalf("error %v (%T), want stanza error %v", err, err, want)
	}
	if se.Type != want.Type || se.Condition != want.Condition || se.AppCondition != want.AppCondition {
		t.Fatalf("stanza error %+v, want %+v", se, want)
	}
}

// waitEvent returns the next event of type E, skipping others.
func waitEvent[E jingle.Event](t *testing.T, s *jingle.Session) E {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case ev, ok := <-s.Events():
			if !ok {
				var zero E
				t.Fatalf("events closed before %T", zero)
			}
			if e, ok := ev.(E); ok {
				return e
			}
		case <-timeout:
			var zero E
			t.Fatalf("no %T", zero)
		}
	}
}

func waitDone(t *testing.T, s *jingle.Session) {
	t.Helper()
	select {
	case <-s.Done():
	case <-time.After(10 * time.Second):
		t.Fatalf("session %s did not end", s.SID())
	}
}

// terminateVia terminates s whose peer is the raw peer p, answering the
// session-terminate on p's behalf.
func terminateVia(t *testing.T, s *jingle.Session, p *rawPeer) {
	t.Helper()
	go func() {
		timeout := time.After(10 * time.Second)
		for {
			select {
			case r := <-p.in:
				if r.j.Action == jingle.ActionSessionTerminate {
					r.reply(nil, nil)
					return
				}
			case <-timeout:
				return
			}
		}
	}()
	if err := s.Terminate(testCtx(t), jingle.Reason{}); err != nil {
		t.Fatalf("terminate: %v", err)
	}
}

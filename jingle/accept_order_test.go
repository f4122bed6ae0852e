package jingle_test

import (
	"context"
	"encoding/xml"
	"net"
	"testing"
	"time"

	"github.com/xjingle/xjingle/internal/xjtest"
	"github.com/xjingle/xjingle/jingle"
)

// eagerFactory makes transports that, while answering the offer, send a
// transport-info from another goroutine (as SOCKS5 sends candidate-used as
// soon as a connection succeeds) and give it a moment to reach the wire.
type eagerFactory struct {
	ns   string
	sent chan error
}

func (f *eagerFactory) Namespace() string { return f.ns }
func (f *eagerFactory) NewTransport(l jingle.TransportLink) (jingle.Transport, error) {
	return &eagerTransport{f: f, l: l}, nil
}

type eagerTransport struct {
	f *eagerFactory
	l jingle.TransportLink
}

func (t *eagerTransport) el() jingle.Element {
	return jingle.Element{XMLName: xml.Name{Space: t.f.ns, Local: "transport"}}
}
func (t *eagerTransport) Offer(context.Context) (jingle.Element, error) { return t.el(), nil }
func (t *eagerTransport) Accept(ctx context.Context, _ jingle.Element) (jingle.Element, error) {
	acked := make(chan error, 1)
	go func() {
		err := t.l.SendTransportInfo(context.Background(), t.el())
		acked <- err
		t.f.sent <- err
	}()
	// Without the hold the info would be acknowledged now; with it, it
	// waits for the session-accept.
	select {
	case <-acked:
	case <-time.After(200 * time.Millisecond):
	}
	return t.el(), nil
}
func (t *eagerTransport) Accepted(context.Context, jingle.Element) error { return nil }
func (t *eagerTransport) Info(context.Context, jingle.Element) error     { return nil }
func (t *eagerTransport) Conn(ctx context.Context) (net.Conn, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}
func (t *eagerTransport) Close() error { return nil }

// TestAcceptBeforeTransportInfo: a transport-info a responder's transport
// sends while answering the offer goes out after the session-accept
// (XEP-0166 §6.5: the initiator must know the session was accepted before
// a candidate-used, XEP-0260 §2.4, refers to it).
func TestAcceptBeforeTransportInfo(t *testing.T) {
	n := xjtest.NewNetwork()
	const nsEager = "urn:xjingle:test:eager"
	f := &eagerFactory{ns: nsEager, sent: make(chan error, 1)}
	app := newTestApp(nsApp)
	sig := n.Add(bobJID)
	m, err := jingle.NewManager(sig, jingle.WithApplication(app), jingle.WithTransport(f))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close(); sig.Close() })
	carol := newRawPeer(t, n, "carol@example.test/c", true)
	if err := carol.send(t, bobJID, initiateXML("ord1", "carol@example.test/c", nsApp, nsEager)); err != nil {
		t.Fatal(err)
	}
	s := app.next(t)
	if err := s.Accept(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	var order []jingle.Action
	for len(order) < 2 {
		select {
		case r := <-carol.in:
			order = append(order, r.j.Action)
		case <-time.After(10 * time.Second):
			t.Fatalf("got only %v", order)
		}
	}
	if order[0] != jingle.ActionSessionAccept || order[1] != jingle.ActionTransportInfo {
		t.Fatalf("carol got %v, want session-accept then transport-info", order)
	}
	if err := <-f.sent; err != nil {
		t.Fatalf("transport-info: %v", err)
	}
}

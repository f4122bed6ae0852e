package jingle_test

import (
	"encoding/xml"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/xjingle/xjingle/internal/xjtest"
	"github.com/xjingle/xjingle/jingle"
)

// setup returns alice and bob Managers on one network.
func setup(t *testing.T, bobWithoutPipe2 bool, opts ...jingle.Option) (*xjtest.Network, *node, *node) {
	n := xjtest.NewNetwork()
	h := newHub()
	alice := newNode(t, n, h, aliceJID, false, opts...)
	bob := newNode(t, n, h, bobJID, bobWithoutPipe2, opts...)
	return n, alice, bob
}

// activeSession runs initiate + accept and returns both sides.
func activeSession(t *testing.T, alice, bob *node) (*jingle.Session, *jingle.Session) {
	t.Helper()
	ctx := testCtx(t)
	as, err := alice.m.Initiate(ctx, bob.sig.LocalJID(), jingle.ContentSpec{Name: "f", Senders: jingle.SendersInitiator, Description: appDesc("a.bin"), Transport: nsPipe})
	if err != nil {
		t.Fatal(err)
	}
	bs := bob.app.next(t)
	if bs.SID() != as.SID() || !bs.Peer().Equal(alice.sig.LocalJID()) || bs.Role() != jingle.RoleResponder || !bs.Initiator().Equal(alice.sig.LocalJID()) {
		t.Fatalf("bob's session: sid %s peer %s role %v", bs.SID(), bs.Peer(), bs.Role())
	}
	if err := bs.Accept(ctx); err != nil {
		t.Fatal(err)
	}
	if err := as.WaitActive(ctx); err != nil {
		t.Fatal(err)
	}
	waitEvent[*jingle.AcceptedEvent](t, as)
	return as, bs
}

// exchange checks that the two conns carry bytes both ways.
func exchange(t *testing.T, a, b net.Conn) {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		_, err := a.Write([]byte("ping"))
		errc <- err
	}()
	buf := make([]byte, 4)
	if _, err := io.ReadFull(b, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("read %q, %v", buf, err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

func TestInitiateAcceptInfoTerminate(t *testing.T) {
	_, alice, bob := setup(t, false)
	ctx := testCtx(t)
	as, bs := activeSession(t, alice, bob)
	if as.State() != jingle.StateActive || bs.State() != jingle.StateActive {
		t.Fatalf("states %v %v", as.State(), bs.State())
	}
	bc := bs.Content("f")
	if bc == nil || bc.Senders != jingle.SendersInitiator || bc.TransportNamespace() != nsPipe || bc.Description.Namespace() != nsApp {
		t.Fatalf("bob's content: %+v", bc)
	}
	if len(as.Contents()) != 1 {
		t.Fatalf("alice's contents: %d", len(as.Contents()))
	}

	// The content's stream.
	ac, err := as.Content("f").Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer ac.Close()
	bconn, err := bc.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer bconn.Close()
	exchange(t, ac, bconn)

	// session-info: ping, payloads in the app's namespaces, and one in no
	// namespace the app knows (§6.8).
	if err := as.SendInfo(ctx, jingle.Element{}); err != nil {
		t.Fatalf("ping: %v", err)
	}
	payload := jingle.Element{XMLName: xml.Name{Space: nsInfo, Local: "ringing"}}
	if err := as.SendInfo(ctx, payload); err != nil {
		t.Fatalf("info: %v", err)
	}
	ev := waitEvent[*jingle.SessionInfoEvent](t, bs)
	if len(ev.Payload) != 1 || ev.Payload[0].XMLName != payload.XMLName {
		t.Fatalf("info event: %+v", ev)
	}
	err = as.SendInfo(ctx, jingle.Element{XMLName: xml.Name{Space: "urn:example:unknown", Local: "x"}})
	wantStanzaError(t, err, jingle.ErrUnsupportedInfo)

	// transport-info through the TransportLink; an error of Info goes back.
	ti := jingle.Element{XMLName: xml.Name{Space: nsPipe, Local: "transport"}, Attrs: []xml.Attr{{Name: xml.Name{Local: "cand"}, Value: "1"}}}
	if err := sendTransportInfo(t, alice, as, ti); err != nil {
		t.Fatal(err)
	}
	select {
	case el := <-bob.p1.infos:
		if el.Attr("cand") != "1" {
			t.Fatalf("info %+v", el)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("transport-info not delivered")
	}
	ti.Attrs = append(ti.Attrs, xml.Attr{Name: xml.Name{Local: "fail"}, Value: "1"})
	wantStanzaError(t, sendTransportInfo(t, alice, as, ti), jingle.ErrNotAcceptable)

	// Terminate.
	if err := bs.Terminate(ctx, jingle.Reason{Condition: jingle.ReasonSuccess, Text: "done"}); err != nil {
		t.Fatal(err)
	}
	if bs.State() != jingle.StateEnded {
		t.Fatalf("bob state %v", bs.State())
	}
	te := waitEvent[*jingle.TerminatedEvent](t, as)
	if !te.ByPeer || te.Reason.Condition != jingle.ReasonSuccess || te.Reason.Text != "done" {
		t.Fatalf("terminated event %+v", te)
	}
	waitDone(t, as)
	if _, ok := <-as.Events(); ok {
		t.Fatal("events not closed after TerminatedEvent")
	}
	if as.Reason().Condition != jingle.ReasonSuccess {
		t.Fatalf("reason %v", as.Reason())
	}
	if err := bs.Terminate(ctx, jingle.Reason{}); err != nil {
		t.Fatalf("second terminate: %v", err)
	}
	if err := as.Terminate(ctx, jingle.Reason{}); err != nil {
		t.Fatalf("terminate of a session ended by the peer: %v", err)
	}
	if err := as.SendInfo(ctx, jingle.Element{}); !errors.Is(err, jingle.ErrSessionEnded) {
		t.Fatalf("info after end: %v", err)
	}
	if alice.m.Session(bob.sig.LocalJID(), as.SID()) != nil || len(bob.m.Sessions()) != 0 {
		t.Fatal("ended sessions still registered")
	}
}

// sendTransportInfo sends el as transport-info through the TransportLink the
// Manager gave nd's last pipe transport.
func sendTransportInfo(t *testing.T, nd *node, s *jingle.Session, el jingle.Element) error {
	t.Helper()
	l := nd.p1.lastLink()
	if l.SID() != s.SID() || l.ContentName() != "f" || l.Role() != s.Role() || !l.Peer().Equal(s.Peer()) {
		t.Fatalf("link: sid %s content %s", l.SID(), l.ContentName())
	}
	return l.SendTransportInfo(testCtx(t), el)
}

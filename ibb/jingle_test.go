package ibb

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/xjingle/xjingle/jingle"
	"mellium.im/xmpp/jid"
)

// link is a jingle.TransportLink for tests.
type link struct {
	sig         jingle.Signaller
	peer, init  jid.JID
	role        jingle.Role
	contentName string
}

func (l *link) SID() string                                             { return "jsid" }
func (l *link) ContentName() string                                     { return l.contentName }
func (l *link) Local() jid.JID                                          { return l.sig.LocalJID() }
func (l *link) Peer() jid.JID                                           { return l.peer }
func (l *link) Initiator() jid.JID                                      { return l.init }
func (l *link) Role() jingle.Role                                       { return l.role }
func (l *link) Signaller() jingle.Signaller                             { return l.sig }
func (l *link) Logger() *slog.Logger                                    { return slog.New(slog.DiscardHandler) }
func (l *link) SendTransportInfo(context.Context, jingle.Element) error { return nil }

// transports returns alice's (the session initiator) and bob's transports.
func (e *env) transports(t *testing.T) (ta, tb jingle.Transport) {
	t.Helper()
	var err error
	ta, err = e.ha.JingleTransport().NewTransport(&link{sig: e.sa, peer: e.sb.LocalJID(), init: e.sa.LocalJID(), role: jingle.RoleInitiator})
	if err != nil {
		t.Fatal(err)
	}
	tb, err = e.hb.JingleTransport().NewTransport(&link{sig: e.sb, peer: e.sa.LocalJID(), init: e.sa.LocalJID(), role: jingle.RoleResponder})
	if err != nil {
		t.Fatal(err)
	}
	return ta, tb
}

// connPair gets both transports' conns; the responder asks after the
// initiator opened, as a slow application would.
func connPair(t *testing.T, opener, waiter jingle.Transport) (net.Conn, net.Conn) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	co, err := opener.Conn(ctx)
	if err != nil {
		t.Fatalf("opener Conn: %v", err)
	}
	cw, err := waiter.Conn(ctx)
	if err != nil {
		t.Fatalf("waiter Conn: %v", err)
	}
	return co, cw
}

func TestJingleSession(t *testing.T) {
	e := newEnvSplit(t, []Option{WithBlockSize(65535)}, []Option{WithBlockSize(8192)})
	defer e.close()
	ta, tb := e.transports(t)
	defer ta.Close()
	defer tb.Close()
	ctx := context.Background()

	offer, err := ta.Offer(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if offer.Namespace() != NSJingle || offer.Attr("block-size") != "65535" || offer.Attr("sid") == "" {
		t.Fatalf("offer %s", offer.Bytes())
	}
	answer, err := tb.Accept(ctx, offer)
	if err != nil {
		t.Fatal(err)
	}
	// The answer carries the sid and a block size clamped to ours.
	if answer.Attr("sid") != offer.Attr("sid") || answer.Attr("block-size") != "8192" {
		t.Fatalf("answer %s", answer.Bytes())
	}
	if err := ta.Accepted(ctx, answer); err != nil {
		t.Fatal(err)
	}
	ca, cb := connPair(t, ta, tb)
	if ca.(*Conn).BlockSize() != 8192 || cb.(*Conn).BlockSize() != 8192 {
		t.Fatalf("block sizes %d/%d", ca.(*Conn).BlockSize(), cb.(*Conn).BlockSize())
	}
	// Conn again: the same stream.
	if again, err := ta.Conn(ctx); err != nil || again != ca {
		t.Fatalf("second Conn: %v", err)
	}
	transfer(t, ca, cb, 100000)
}

// Conversations offers 8192 (captures/dino-0.4.2.xml, cv-ibb-to-dino).
func TestJingleConversationsOffer(t *testing.T) {
	e := newEnv(t)
	defer e.close()
	_, tb := e.transports(t)
	defer tb.Close()
	offer, err := jingle.ParseElement([]byte(`<transport xmlns="urn:xmpp:jingle:transports:ibb:1" block-size="8192" sid="4db275f3-6d8d-4c21-8f2b-a7b9cfa1341b" />`))
	if err != nil {
		t.Fatal(err)
	}
	answer, err := tb.Accept(context.Background(), offer)
	if err != nil {
		t.Fatal(err)
	}
	if answer.Attr("sid") != "4db275f3-6d8d-4c21-8f2b-a7b9cfa1341b" || answer.Attr("block-size") != "8192" {
		t.Fatalf("answer %s", answer.Bytes())
	}
	// Its <open/> has no stanza attribute.
	_, err = e.sa.SendIQ(context.Background(), e.sb.LocalJID(), "set",
		[]byte(`<open xmlns="http://jabber.org/protocol/ibb" block-size="8192" sid="4db275f3-6d8d-4c21-8f2b-a7b9cfa1341b" />`))
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	c, err := tb.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
}

// The responder offers (transport-replace); the initiator still opens.
func TestJingleReplaceByResponder(t *testing.T) {
	e := newEnv(t)
	defer e.close()
	ta, tb := e.transports(t)
	defer ta.Close()
	defer tb.Close()
	ctx := context.Background()
	offer, err := tb.Offer(ctx)
	if err != nil {
		t.Fatal(err)
	}
	answer, err := ta.Accept(ctx, offer)
	if err != nil {
		t.Fatal(err)
	}
	if err := tb.Accepted(ctx, answer); err != nil {
		t.Fatal(err)
	}
	ca, cb := connPair(t, ta, tb)
	if ca.LocalAddr().(Addr).JID.String() != aliceJID {
		t.Fatal("initiator did not open")
	}
	transfer(t, cb, ca, 5000)
}

func TestJingleAnswerClampedAndChecked(t *testing.T) {
	e := newEnv(t, WithBlockSize(4096))
	defer e.close()
	ta, tb := e.transports(t)
	defer ta.Close()
	defer tb.Close()
	ctx := context.Background()
	offer, _ := ta.Offer(ctx)
	sid := offer.Attr("sid")

	bad, _ := jingle.NewElement(transportElem{BlockSize: 4096, SID: "other"})
	if err := ta.Accepted(ctx, bad); !errors.Is(err, jingle.ErrTransportFailed) {
		t.Fatalf("answer with another sid: %v", err)
	}
	big, _ := jingle.NewElement(transportElem{BlockSize: 65535, SID: sid})
	if err := ta.Accepted(ctx, big); err != nil {
		t.Fatal(err)
	}
	if got := ta.(*transport).blockSize; got != 4096 {
		t.Fatalf("block size %d after a larger answer, want 4096", got)
	}
	if err := ta.Info(ctx, offer); !errors.Is(err, jingle.ErrFeatureNotImplemented) {
		t.Fatalf("Info: %v", err)
	}
	// bob expects sid, accepts the open with our block size.
	if _, err := tb.Accept(ctx, offer); err != nil {
		t.Fatal(err)
	}
	ca, cb := connPair(t, ta, tb)
	ca.Close()
	cb.Close()
}

func TestJingleBadOffer(t *testing.T) {
	e := newEnv(t)
	defer e.close()
	_, tb := e.transports(t)
	defer tb.Close()
	for _, raw := range []string{
		`<transport xmlns="urn:xmpp:jingle:transports:ibb:1" block-size="4096"/>`,
		`<transport xmlns="urn:xmpp:jingle:transports:ibb:1" block-size="4096" sid="a b"/>`,
		`<transport xmlns="urn:xmpp:jingle:transports:s5b:1" sid="x"/>`,
	} {
		el, err := jingle.ParseElement([]byte(raw))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tb.Accept(context.Background(), el); !errors.Is(err, jingle.ErrBadRequest) {
			t.Errorf("Accept(%s): %v, want bad-request", raw, err)
		}
	}
}

// Close before Conn: the stream the peer opened is closed, Conn fails.
func TestJingleCloseBeforeConn(t *testing.T) {
	e := newEnv(t)
	defer e.close()
	ta, tb := e.transports(t)
	ctx := context.Background()
	offer, _ := ta.Offer(ctx)
	answer, _ := tb.Accept(ctx, offer)
	ta.Accepted(ctx, answer)
	ca, err := ta.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tb.Close()
	if _, err := tb.Conn(ctx); err == nil {
		t.Fatal("Conn after Close succeeded")
	}
	if _, err := ca.Read(make([]byte, 1)); err == nil {
		t.Fatal("unclaimed stream not closed")
	}
	ca.Close()
	ta.Close()
}

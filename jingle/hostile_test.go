package jingle_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"

	"github.com/xjingle/xjingle/internal/xjtest"
	"github.com/xjingle/xjingle/jingle"
	"mellium.im/xmpp/jid"
)

func TestTransportReplaceBothDirections(t *testing.T) {
	_, alice, bob := setup(t, false)
	ctx := testCtx(t)
	as, bs := activeSession(t, alice, bob)

	// Bob waits for his stream before anything is ready on the old
	// transport... it is ready, so first take and drop one conn, then
	// start a Conn that can only complete on the new transport: the old
	// transport of bob is closed by the replace.
	bc := bs.Content("f")
	if err := as.ReplaceTransport(ctx, "f", nsPipe2); err != nil {
		t.Fatalf("alice replace: %v", err)
	}
	if got := as.Content("f").TransportNamespace(); got != nsPipe2 {
		t.Fatalf("alice transport %s", got)
	}
	if ev := waitEvent[*jingle.TransportReplacedEvent](t, bs); ev.Namespace != nsPipe2 || !ev.ByPeer || ev.Content != "f" {
		t.Fatalf("bob event %+v", ev)
	}
	if got := bc.TransportNamespace(); got != nsPipe2 {
		t.Fatalf("bob transport %s", got)
	}
	a2, err := as.Content("f").Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer a2.Close()
	b2, err := bc.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer b2.Close()
	exchange(t, b2, a2)

	// Now bob (responder) replaces back to pipe:0 while alice waits in
	// Conn on... alice's Conn is already satisfied; check bob's side
	// follows: start a Conn on a content whose transport is replaced.
	if err := bs.ReplaceTransport(ctx, "f", nsPipe); err != nil {
		t.Fatalf("bob replace: %v", err)
	}
	ev := waitEvent[*jingle.TransportReplacedEvent](t, as)
	if !ev.ByPeer { // alice's own replace came first
		ev = waitEvent[*jingle.TransportReplacedEvent](t, as)
	}
	if ev.Namespace != nsPipe || !ev.ByPeer {
		t.Fatalf("alice event %+v", ev)
	}
	if as.Content("f").TransportNamespace() != nsPipe || bc.TransportNamespace() != nsPipe {
		t.Fatal("transport not back to pipe:0")
	}
}

// TestConnFollowsReplace: a Conn waiting on a transport that is not ready
// moves to the transport that replaces it.
func TestConnFollowsReplace(t *testing.T) {
	n := xjtest.NewNetwork()
	h := newHub()
	alice := newNode(t, n, h, aliceJID, false)
	carol := newRawPeer(t, n, "carol@example.test/c", true)
	ctx := testCtx(t)
	as, err := alice.m.Initiate(ctx, carol.sig.LocalJID(), jingle.ContentSpec{Description: appDesc("x"), Transport: nsPipe})
	if err != nil {
		t.Fatal(err)
	}
	carol.next(t, jingle.ActionSessionInitiate)
	// No session-accept: alice's pipe:0 transport never becomes ready and
	// her Conn waits.
	type res struct {
		c   net.Conn
		err error
	}
	got := make(chan res, 1)
	go func() {
		c, err := as.Content("c0").Conn(ctx)
		got <- res{c, err}
	}()
	done := make(chan error, 1)
	go func() { done <- as.ReplaceTransport(ctx, "c0", nsPipe2) }()
	rep := carol.next(t, jingle.ActionTransportReplace)
	id := rep.j.Contents[0].Transport.Attr("id")
	if err := carol.send(t, aliceJID, actionXML("transport-accept", as.SID(), `<content creator="initiator" name="c0"><transport xmlns="`+nsPipe2+`" id="`+id+`"/></content>`)); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	r := <-got
	if r.err != nil {
		t.Fatal(r.err)
	}
	defer r.c.Close()
	other := h.end(id, false) // carol's end of the pipe:1 transport
	defer other.Close()
	exchange(t, r.c, other)
	terminateVia(t, as, carol)
}

func TestTransportReplaceRejected(t *testing.T) {
	_, alice, bob := setup(t, true) // bob has no pipe:1
	ctx := testCtx(t)
	as, _ := activeSession(t, alice, bob)
	err := as.ReplaceTransport(ctx, "f", nsPipe2)
	if !errors.Is(err, jingle.ErrTransportRejected) {
		t.Fatalf("replace: %v", err)
	}
	if as.Content("f").TransportNamespace() != nsPipe {
		t.Fatal("transport changed after reject")
	}
	if err := as.ReplaceTransport(ctx, "f", nsNope); !errors.Is(err, jingle.ErrNoTransport) {
		t.Fatalf("replace with unregistered ns: %v", err)
	}
	if err := as.ReplaceTransport(ctx, "nope", nsPipe2); !errors.Is(err, jingle.ErrUnknownContent) {
		t.Fatalf("replace of unknown content: %v", err)
	}
}

func initiateXML(sid, from, appNS, transportNS string) string {
	return fmt.Sprintf(`<jingle xmlns="urn:xmpp:jingle:1" action="session-initiate" initiator="%s" sid="%s">`+
		`<content creator="initiator" name="c"><description xmlns="%s"/><transport xmlns="%s" id="%s/c/%s"/></content></jingle>`,
		from, sid, appNS, transportNS, sid, transportNS)
}

func actionXML(action, sid, inner string) string {
	return fmt.Sprintf(`<jingle xmlns="urn:xmpp:jingle:1" action="%s" sid="%s">%s</jingle>`, action, sid, inner)
}

// TestSessionAcceptAsTransportAccept: a peer (Conversations/Gajim) answers
// our transport-replace with session-accept.
func TestSessionAcceptAsTransportAccept(t *testing.T) {
	n := xjtest.NewNetwork()
	alice := newNode(t, n, newHub(), aliceJID, false)
	carol := newRawPeer(t, n, "carol@example.test/cv", true)
	ctx := testCtx(t)
	as, err := alice.m.Initiate(ctx, carol.sig.LocalJID(), jingle.ContentSpec{Name: "f", Description: appDesc("x"), Transport: nsPipe})
	if err != nil {
		t.Fatal(err)
	}
	ini := carol.next(t, jingle.ActionSessionInitiate)
	tr := ini.j.Contents[0].Transport
	accept := actionXML("session-accept", as.SID(), fmt.Sprintf(`<content creator="initiator" name="f"><description xmlns="%s"/><transport xmlns="%s" id="%s"/></content>`, nsApp, nsPipe, tr.Attr("id")))
	if err := carol.send(t, aliceJID, accept); err != nil {
		t.Fatal(err)
	}
	if err := as.WaitActive(ctx); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- as.ReplaceTransport(ctx, "f", nsPipe2) }()
	rep := carol.next(t, jingle.ActionTransportReplace)
	id := rep.j.Contents[0].Transport.Attr("id")
	bogus := actionXML("session-accept", as.SID(), fmt.Sprintf(`<content creator="initiator" name="f"><description xmlns="%s"/><transport xmlns="%s" id="%s"/></content>`, nsApp, nsPipe2, id))
	if err := carol.send(t, aliceJID, bogus); err != nil {
		t.Fatalf("session-accept as transport-accept refused: %v", err)
	}
	if err := <-done; err != nil {
		t.Fatalf("replace: %v", err)
	}
	if ns := as.Content("f").TransportNamespace(); ns != nsPipe2 {
		t.Fatalf("namespace %s", ns)
	}
	// Without a pending replace, a second session-accept is out of order.
	wantStanzaError(t, carol.send(t, aliceJID, bogus), jingle.ErrOutOfOrder)
}

func TestHostile(t *testing.T) {
	n := xjtest.NewNetwork()
	bob := newNode(t, n, newHub(), bobJID, false)
	alice := newRawPeer(t, n, aliceJID, true)
	mallory := newRawPeer(t, n, "mallory@example.test/m", true)
	aliceBare2 := newRawPeer(t, n, "alice@example.test/other", true)

	// A live session alice → bob, pending (bob's app does not accept).
	if err := alice.send(t, bobJID, initiateXML("s1", aliceJID, nsApp, nsPipe)); err != nil {
		t.Fatal(err)
	}
	bs := bob.app.next(t)

	cases := []struct {
		name string
		from *rawPeer
		typ  string
		raw  string
		want *jingle.StanzaError
	}{
		{"unknown sid", alice, "set", actionXML("session-info", "nope", ""), jingle.ErrUnknownSession},
		{"third JID, live sid", mallory, "set", actionXML("session-info", "s1", ""), jingle.ErrUnknownSession},
		{"transport-replace from a third JID", mallory, "set", actionXML("transport-replace", "s1", `<content creator="initiator" name="c"><transport xmlns="`+nsPipe+`"/></content>`), jingle.ErrUnknownSession},
		{"same bare JID, other resource", aliceBare2, "set", actionXML("session-terminate", "s1", "<reason><success/></reason>"), jingle.ErrUnknownSession},
		{"second session-initiate, same sid", alice, "set", initiateXML("s1", aliceJID, nsApp, nsPipe), jingle.ErrOutOfOrder},
		{"session-accept from the initiator", alice, "set", actionXML("session-accept", "s1", `<content creator="initiator" name="c"><description xmlns="`+nsApp+`"/><transport xmlns="`+nsPipe+`"/></content>`), jingle.ErrOutOfOrder},
		{"missing sid", alice, "set", `<jingle xmlns="urn:xmpp:jingle:1" action="session-info"/>`, jingle.ErrBadRequest},
		{"missing action", alice, "set", `<jingle xmlns="urn:xmpp:jingle:1" sid="s1"/>`, jingle.ErrBadRequest},
		{"unknown action", alice, "set", actionXML("session-dance", "s1", ""), jingle.ErrBadRequest},
		{"IQ get", alice, "get", actionXML("session-info", "s1", ""), jingle.ErrBadRequest},
		{"transport-info without transport", alice, "set", `<jingle xmlns="urn:xmpp:jingle:1" action="transport-info" sid="s1"><content name="c"/></jingle>`, jingle.ErrBadRequest},
		{"initiate without transport", alice, "set", `<jingle xmlns="urn:xmpp:jingle:1" action="session-initiate" sid="s2"><content creator="initiator" name="c"><description xmlns="` + nsApp + `"/></content></jingle>`, jingle.ErrBadRequest},
		{"initiate without content", alice, "set", actionXML("session-initiate", "s3", ""), jingle.ErrBadRequest},
		{"initiate, only early-session", alice, "set", `<jingle xmlns="urn:xmpp:jingle:1" action="session-initiate" sid="s4"><content creator="initiator" disposition="early-session" name="c"><description xmlns="` + nsApp + `"/><transport xmlns="` + nsPipe + `"/></content></jingle>`, jingle.ErrBadRequest},
		{"initiate, duplicate content", alice, "set", `<jingle xmlns="urn:xmpp:jingle:1" action="session-initiate" sid="s5"><content creator="initiator" name="c"><description xmlns="` + nsApp + `"/><transport xmlns="` + nsPipe + `"/></content><content name="c"><description xmlns="` + nsApp + `"/><transport xmlns="` + nsPipe + `"/></content></jingle>`, jingle.ErrBadRequest},
		{"session-info, unknown payload", alice, "set", actionXML("session-info", "s1", `<x xmlns="urn:example:what"/>`), jingle.ErrUnsupportedInfo},
		{"transport-info, unknown content", alice, "set", actionXML("transport-info", "s1", `<content creator="initiator" name="zz"><transport xmlns="`+nsPipe+`"/></content>`), jingle.ErrBadRequest},
		{"transport-accept without replace", alice, "set", actionXML("transport-accept", "s1", `<content creator="initiator" name="c"><transport xmlns="`+nsPipe+`"/></content>`), jingle.ErrOutOfOrder},
		{"content-modify without senders", alice, "set", actionXML("content-modify", "s1", `<content creator="initiator" name="c"/>`), jingle.ErrBadRequest},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.from.sig.SendIQ(testCtx(t), jid.MustParse(bobJID), tc.typ, []byte(tc.raw))
			wantStanzaError(t, err, tc.want)
		})
	}
	if bs.State() != jingle.StatePending {
		t.Fatalf("session state after hostile stanzas: %v", bs.State())
	}
	// The legitimate peer still gets through; after the end, unknown-session.
	if err := alice.send(t, bobJID, actionXML("session-info", "s1", "")); err != nil {
		t.Fatalf("ping: %v", err)
	}
	if err := alice.send(t, bobJID, actionXML("content-modify", "s1", `<content creator="initiator" name="c" senders="none"/>`)); err != nil {
		t.Fatalf("content-modify: %v", err)
	}
	if ev := waitEvent[*jingle.ActionEvent](t, bs); ev.Jingle.Action != jingle.ActionContentModify || bs.Content("c").SendersNow() != jingle.SendersNone {
		t.Fatalf("content-modify event %+v, senders %s", ev.Jingle, bs.Content("c").SendersNow())
	}
	if err := alice.send(t, bobJID, actionXML("session-terminate", "s1", "<reason><decline/></reason>")); err != nil {
		t.Fatal(err)
	}
	waitDone(t, bs)
	if r := bs.Reason(); r.Condition != jingle.ReasonDecline {
		t.Fatalf("reason %v", r)
	}
	wantStanzaError(t, alice.send(t, bobJID, actionXML("session-info", "s1", "")), jingle.ErrUnknownSession)
}

// TestUnsupported: unknown application or transport → ack, then
// session-terminate with the matching reason (§6.3.1, §6.7).
func TestUnsupported(t *testing.T) {
	n := xjtest.NewNetwork()
	newNode(t, n, newHub(), bobJID, false)
	alice := newRawPeer(t, n, aliceJID, true)
	for _, tc := range []struct{ app, tr, reason string }{
		{"urn:example:no-app", nsPipe, jingle.ReasonUnsupportedApplications},
		{nsApp, nsNope, jingle.ReasonUnsupportedTransports},
	} {
		sid := "u-" + tc.reason
		if err := alice.send(t, bobJID, initiateXML(sid, aliceJID, tc.app, tc.tr)); err != nil {
			t.Fatalf("%s: initiate not acked: %v", tc.reason, err)
		}
		term := alice.next(t, jingle.ActionSessionTerminate)
		if term.j.SID != sid || term.j.Reason == nil || term.j.Reason.Condition != tc.reason {
			t.Fatalf("terminate %+v", term.j)
		}
	}
}

func TestContentRemoveLastEndsSession(t *testing.T) {
	n := xjtest.NewNetwork()
	bob := newNode(t, n, newHub(), bobJID, false)
	alice := newRawPeer(t, n, aliceJID, true)
	if err := alice.send(t, bobJID, initiateXML("cr", aliceJID, nsApp, nsPipe)); err != nil {
		t.Fatal(err)
	}
	bs := bob.app.next(t)
	if err := alice.send(t, bobJID, actionXML("content-remove", "cr", `<content creator="initiator" name="c"/>`)); err != nil {
		t.Fatal(err)
	}
	term := alice.next(t, jingle.ActionSessionTerminate)
	if term.j.Reason == nil || term.j.Reason.Condition != jingle.ReasonSuccess {
		t.Fatalf("terminate %+v", term.j)
	}
	waitDone(t, bs)
	if len(bs.Contents()) != 0 {
		t.Fatal("content still there")
	}
}

func TestSessionTimeout(t *testing.T) {
	_, alice, bob := setup(t, false, jingle.WithSessionTimeout(50_000_000)) // 50ms
	ctx := testCtx(t)
	as, err := alice.m.Initiate(ctx, bob.sig.LocalJID(), jingle.ContentSpec{Description: appDesc("x"), Transport: nsPipe})
	if err != nil {
		t.Fatal(err)
	}
	bs := bob.app.next(t) // never accepted
	err = as.WaitActive(ctx)
	var te *jingle.TerminatedError
	if !errors.As(err, &te) || te.Reason.Condition != jingle.ReasonTimeout || !errors.Is(err, jingle.ErrSessionEnded) {
		t.Fatalf("WaitActive: %v", err)
	}
	waitDone(t, bs)
	if bs.Reason().Condition != jingle.ReasonTimeout {
		t.Fatalf("bob reason %v", bs.Reason())
	}
}

func TestAcceptRefusedByTransport(t *testing.T) {
	_, alice, bob := setup(t, false)
	bob.p1.refuse = true
	ctx := testCtx(t)
	as, err := alice.m.Initiate(ctx, bob.sig.LocalJID(), jingle.ContentSpec{Description: appDesc("x"), Transport: nsPipe})
	if err != nil {
		t.Fatal(err)
	}
	bs := bob.app.next(t)
	if err := bs.Accept(ctx); !errors.Is(err, jingle.ErrTransportFailed) {
		t.Fatalf("accept: %v", err)
	}
	err = as.WaitActive(ctx)
	var te *jingle.TerminatedError
	if !errors.As(err, &te) || te.Reason.Condition != jingle.ReasonFailedTransport || !te.ByPeer {
		t.Fatalf("WaitActive: %v", err)
	}
}

// TestTieBreakSameSID: §7.2.16, both sides sent session-initiate with the
// same sid; the lower JID wins.
func TestTieBreakSameSID(t *testing.T) {
	n := xjtest.NewNetwork()
	alice := newNode(t, n, newHub(), aliceJID, false)
	for _, tc := range []struct {
		peer      string
		aliceWins bool
	}{
		{"carol@example.test/c", true},  // alice < carol
		{"aaron@example.test/a", false}, // aaron < alice
	} {
		t.Run(tc.peer, func(t *testing.T) {
			peer := newRawPeer(t, n, tc.peer, false) // holds its answers
			ctx := testCtx(t)
			type res struct {
				s   *jingle.Session
				err error
			}
			out := make(chan res, 1)
			go func() {
				s, err := alice.m.Initiate(ctx, jid.MustParse(tc.peer), jingle.ContentSpec{Description: appDesc("x"), Transport: nsPipe})
				out <- res{s, err}
			}()
			held := peer.next(t, jingle.ActionSessionInitiate)
			sid := held.j.SID
			err := peer.send(t, aliceJID, initiateXML(sid, tc.peer, nsApp, nsPipe))
			if tc.aliceWins {
				wantStanzaError(t, err, jingle.ErrTieBreak)
				held.reply(nil, nil)
				r := <-out
				if r.err != nil {
					t.Fatal(r.err)
				}
				terminateVia(t, r.s, peer)
				return
			}
			if err != nil {
				t.Fatalf("peer's initiate refused: %v", err)
			}
			held.reply(nil, jingle.ErrTieBreak)
			r := <-out
			if !errors.Is(r.err, jingle.ErrTieBreak) {
				t.Fatalf("alice's initiate: %v", r.err)
			}
			s := alice.app.next(t)
			if s.SID() != sid || s.Role() != jingle.RoleResponder || alice.m.Session(jid.MustParse(tc.peer), sid) != s {
				t.Fatalf("alice's session: %s %v", s.SID(), s.Role())
			}
			terminateVia(t, s, peer)
		})
	}
}

// TestTieBreakDifferentSIDs: the lower sid wins.
func TestTieBreakDifferentSIDs(t *testing.T) {
	n := xjtest.NewNetwork()
	alice := newNode(t, n, newHub(), aliceJID, false)
	peer := newRawPeer(t, n, "carol@example.test/c", false)
	ctx := testCtx(t)
	errc := make(chan error, 1)
	go func() {
		_, err := alice.m.Initiate(ctx, peer.sig.LocalJID(), jingle.ContentSpec{Description: appDesc("x"), Transport: nsPipe})
		errc <- err
	}()
	held := peer.next(t, jingle.ActionSessionInitiate)
	// "~" sorts after any hex sid: carol's loses.
	wantStanzaError(t, peer.send(t, aliceJID, initiateXML("~higher", "carol@example.test/c", nsApp, nsPipe)), jingle.ErrTieBreak)
	// "0" sorts before it: carol's wins, alice acks it.
	if err := peer.send(t, aliceJID, initiateXML("0", "carol@example.test/c", nsApp, nsPipe)); err != nil {
		t.Fatalf("lower sid refused: %v", err)
	}
	held.reply(nil, jingle.ErrTieBreak)
	if err := <-errc; !errors.Is(err, jingle.ErrTieBreak) {
		t.Fatalf("alice's initiate: %v", err)
	}
	terminateVia(t, alice.app.next(t), peer)
}

// TestTieBreakTransportReplace: both replace the same content at once; the
// initiator's wins (§7.2.16, existing session).
func TestTieBreakTransportReplace(t *testing.T) {
	n := xjtest.NewNetwork()
	h := newHub()

	t.Run("we are the responder", func(t *testing.T) {
		ctx := testCtx(t)
		bob := newNode(t, n, h, bobJID, false)
		alice := newRawPeer(t, n, aliceJID, false)
		if err := alice.send(t, bobJID, initiateXML("tb", aliceJID, nsApp, nsPipe)); err != nil {
			t.Fatal(err)
		}
		bs := bob.app.next(t)
		go bs.Accept(ctx)
		acc := alice.next(t, jingle.ActionSessionAccept)
		acc.reply(nil, nil)
		if err := bs.WaitActive(ctx); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- bs.ReplaceTransport(ctx, "c", nsPipe2) }()
		held := alice.next(t, jingle.ActionTransportReplace) // not answered yet
		// Alice, the initiator, replaces too: bob must yield.
		if err := alice.send(t, bobJID, actionXML("transport-replace", "tb", `<content creator="initiator" name="c"><transport xmlns="`+nsPipe2+`" id="alice-replace"/></content>`)); err != nil {
			t.Fatalf("initiator's replace refused: %v", err)
		}
		// The initiator answers bob's replace with tie-break (bob sends
		// one IQ at a time, so his transport-accept follows).
		held.reply(nil, jingle.ErrTieBreak)
		ta := alice.next(t, jingle.ActionTransportAccept)
		ta.reply(nil, nil)
		if id := ta.j.Contents[0].Transport.Attr("id"); id != "alice-replace" {
			t.Fatalf("transport-accept for %q", id)
		}
		if err := <-done; !errors.Is(err, jingle.ErrTieBreak) {
			t.Fatalf("bob's replace: %v", err)
		}
		if ns := bs.Content("c").TransportNamespace(); ns != nsPipe2 {
			t.Fatalf("namespace %s", ns)
		}
		go func() {
			term := alice.next(t, jingle.ActionSessionTerminate)
			term.reply(nil, nil)
		}()
		if err := bs.Terminate(ctx, jingle.Reason{}); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("we are the initiator", func(t *testing.T) {
		ctx := testCtx(t)
		alice := newNode(t, n, h, "alice2@example.test/a", false)
		bob := newRawPeer(t, n, "bob2@example.test/b", false)
		type res struct {
			s   *jingle.Session
			err error
		}
		out := make(chan res, 1)
		go func() {
			s, err := alice.m.Initiate(ctx, bob.sig.LocalJID(), jingle.ContentSpec{Name: "c", Description: appDesc("x"), Transport: nsPipe})
			out <- res{s, err}
		}()
		var ini rawIQ
		select {
		case ini = <-bob.in:
		case r := <-out:
			t.Fatalf("initiate returned early: %v", r.err)
		}
		ini.reply(nil, nil)
		r := <-out
		if r.err != nil {
			t.Fatal(r.err)
		}
		as := r.s
		id := ini.j.Contents[0].Transport.Attr("id")
		if err := bob.send(t, "alice2@example.test/a", actionXML("session-accept", as.SID(), `<content creator="initiator" name="c"><transport xmlns="`+nsPipe+`" id="`+id+`"/></content>`)); err != nil {
			t.Fatal(err)
		}
		if err := as.WaitActive(ctx); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- as.ReplaceTransport(ctx, "c", nsPipe2) }()
		held := bob.next(t, jingle.ActionTransportReplace)
		err := bob.send(t, "alice2@example.test/a", actionXML("transport-replace", as.SID(), `<content creator="initiator" name="c"><transport xmlns="`+nsPipe2+`" id="bob-replace"/></content>`))
		wantStanzaError(t, err, jingle.ErrTieBreak)
		held.reply(nil, nil)
		newID := held.j.Contents[0].Transport.Attr("id")
		if err := bob.send(t, "alice2@example.test/a", actionXML("transport-accept", as.SID(), `<content creator="initiator" name="c"><transport xmlns="`+nsPipe2+`" id="`+newID+`"/></content>`)); err != nil {
			t.Fatal(err)
		}
		if err := <-done; err != nil {
			t.Fatalf("alice's replace: %v", err)
		}
		go func() {
			term := bob.next(t, jingle.ActionSessionTerminate)
			term.reply(nil, nil)
		}()
		if err := as.Terminate(ctx, jingle.Reason{}); err != nil {
			t.Fatal(err)
		}
	})
}

func TestManagerCloseTerminates(t *testing.T) {
	_, alice, bob := setup(t, false)
	as, bs := activeSession(t, alice, bob)
	if err := alice.m.Close(); err != nil {
		t.Fatal(err)
	}
	waitDone(t, as)
	te := waitEvent[*jingle.TerminatedEvent](t, bs)
	if te.Reason.Condition != jingle.ReasonGone || !te.ByPeer {
		t.Fatalf("bob: %+v", te)
	}
	if _, err := alice.m.Initiate(context.Background(), bob.sig.LocalJID(), jingle.ContentSpec{Description: appDesc("x"), Transport: nsPipe}); !errors.Is(err, jingle.ErrClosed) {
		t.Fatalf("initiate after close: %v", err)
	}
}

func TestDuplicateRegistrationPanics(t *testing.T) {
	n := xjtest.NewNetwork()
	sig := n.Add("dup@example.test/d")
	defer sig.Close()
	defer func() {
		if recover() == nil {
			t.Fatal("no panic")
		}
	}()
	f := newPipeFactory(nsPipe, newHub())
	jingle.NewManager(sig, jingle.WithTransport(f), jingle.WithTransport(f))
}

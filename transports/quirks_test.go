package transports_test

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xjingle/xjingle/ibb"
	"github.com/xjingle/xjingle/internal/xjtest"
	"github.com/xjingle/xjingle/jingle"
	"github.com/xjingle/xjingle/jingle/filetransfer"
	"github.com/xjingle/xjingle/socks5"
	"mellium.im/xmpp/jid"
)

// stanzaJS plays StanzaJS 12.22.1 as a file receiver, as captured in
// shared/captures/stanzajs-12.22.1.xml §4: a session-initiate offering
// SOCKS5 gets no answer at all (StanzaJS throws parsing the candidates as
// ICE ones, and its session queue stalls), or, with ackSOCKS5, only the IQ
// result and then silence; one offering IBB gets the IQ result and then
// session-terminate <failed-application/>. It records every Jingle action
// it receives.
type stanzaJS struct {
	sig       *xjtest.Signaller
	peer      jid.JID
	ackSOCKS5 bool

	ctx    context.Context
	cancel context.CancelFunc
	mu     sync.Mutex
	seen   []string // "action transport-namespace" or "action reason"
	got    chan string
	pend   sync.WaitGroup
}

type rawJingle struct {
	Action   string `xml:"action,attr"`
	SID      string `xml:"sid,attr"`
	Contents []struct {
		Transport struct {
			XMLName xml.Name
		} `xml:",any"`
	} `xml:"content"`
	Reason *struct {
		Conds []struct {
			XMLName xml.Name
		} `xml:",any"`
	} `xml:"reason"`
}

func newStanzaJS(t *testing.T, n *xjtest.Network, j string, ackSOCKS5 bool) *stanzaJS {
	p := &stanzaJS{sig: n.Add(j), ackSOCKS5: ackSOCKS5, got: make(chan string, 16)}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	p.sig.AddFeature(filetransfer.NS)
	p.sig.AddFeature(socks5.NS)
	p.sig.AddFeature(ibb.NSJingle)
	p.sig.HandleIQ(xml.Name{Space: jingle.NS, Local: "jingle"}, p.handle)
	t.Cleanup(func() {
		p.cancel()
		p.pend.Wait()
		p.sig.Close()
	})
	return p
}

func (p *stanzaJS) handle(iq *jingle.IQ, reply jingle.ReplyFunc) {
	var j rawJingle
	if err := xml.Unmarshal(iq.Payload, &j); err != nil {
		reply(nil, jingle.ErrBadRequest)
		return
	}
	ns := ""
	if len(j.Contents) > 0 {
		ns = j.Contents[0].Transport.XMLName.Space
	}
	what := j.Action + " " + ns
	if j.Reason != nil && len(j.Reason.Conds) > 0 {
		what = j.Action + " " + j.Reason.Conds[0].XMLName.Local
	}
	p.mu.Lock()
	p.seen = append(p.seen, strings.TrimSpace(what))
	p.mu.Unlock()
	select {
	case p.got <- strings.TrimSpace(what):
	default:
	}
	switch {
	case j.Action == "session-initiate" && ns == socks5.NS:
		if p.ackSOCKS5 {
			reply(nil, nil)
		}
		// else: no answer at all (the captured behaviour)
	case j.Action == "session-initiate" && ns == ibb.NSJingle:
		reply(nil, nil)
		term := fmt.Sprintf(`<jingle xmlns='%s' action='session-terminate' sid='%s'><reason><failed-application/></reason></jingle>`, jingle.NS, j.SID)
		p.pend.Add(1)
		if err := p.sig.SendIQAsync(p.ctx, iq.From, "set", []byte(term), func([]byte, error) { p.pend.Done() }); err != nil {
			p.pend.Done()
		}
	default:
		reply(nil, nil)
	}
}

// await waits for the peer to receive what (an entry of actions).
func (p *stanzaJS) await(t *testing.T, what string) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case got := <-p.got:
			if got == what {
				return
			}
		case <-timeout:
			t.Fatalf("peer never got %q (saw %v)", what, p.actions())
		}
	}
}

func (p *stanzaJS) actions() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.seen...)
}

// TestStanzaJSNeverAnswersSOCKS5: the captured behaviour. The offer with
// SOCKS5 gets no IQ answer; after the rung timeout the sender records the
// rung as failed and offers the next one (IBB) in a new session, which
// StanzaJS refuses with failed-application: the transfer fails quickly with
// a clear error instead of hanging, and the report says why SOCKS5 failed.
func TestStanzaJSNeverAnswersSOCKS5(t *testing.T) {
	n := xjtest.NewNetwork()
	alice := newSide(t, n, "alice@example.test/a", sideOpts{})
	js := newStanzaJS(t, n, "bob@example.test/stanzajs", false)
	path, _ := writeFile(t, 1000)
	const rung = 500 * time.Millisecond
	start := time.Now()
	res, err := alice.app.Send(ctxT(t), alice.m, js.sig.LocalJID(), path, filetransfer.SendOptions{
		Transports: []string{socks5.NS, ibb.NSJingle}, RungTimeout: rung, Features: alice.sig,
	})
	took := time.Since(start)
	t.Logf("send: %v after %v; tried %+v; peer saw %v", err, took, res.Tried, js.actions())
	if !errors.Is(err, filetransfer.ErrPeerGone) || !strings.Contains(err.Error(), "failed-application") {
		t.Errorf("send: %v, want the peer's failed-application (ErrPeerGone)", err)
	}
	if len(res.Tried) != 1 || res.Tried[0].Transport != socks5.NS || !strings.Contains(res.Tried[0].Err, "no answer to session-initiate") {
		t.Errorf("tried %+v, want socks5 without an answer to session-initiate", res.Tried)
	}
	want := []string{"session-initiate " + socks5.NS, "session-initiate " + ibb.NSJingle}
	if got := js.actions(); !equal(got, want) {
		t.Errorf("peer saw %v, want %v", got, want)
	}
	if took > rung+5*time.Second {
		t.Errorf("send took %v with a %v rung timeout", took, rung)
	}
}

// TestSilentAfterAck: a peer that acknowledges the session-initiate and
// then says nothing cannot be told from a user who has not decided yet:
// the sender does not replace the transport of a session nobody looked at
// (XEP-0166 §5.1 would allow transport-replace while PENDING, but it cannot
// help), it waits for the Manager's session timeout and ends the session
// with <timeout/> (XEP-0166 §7.4: "a request has not been answered"), and
// the error says the offer was never accepted.
func TestSilentAfterAck(t *testing.T) {
	n := xjtest.NewNetwork()
	const accept = time.Second
	alice := newSide(t, n, "alice@example.test/a", sideOpts{jingleOps: []jingle.Option{jingle.WithSessionTimeout(accept)}})
	js := newStanzaJS(t, n, "bob@example.test/stanzajs", true)
	path, _ := writeFile(t, 1000)
	start := time.Now()
	res, err := alice.app.Send(ctxT(t), alice.m, js.sig.LocalJID(), path, filetransfer.SendOptions{
		Transports: []string{socks5.NS, ibb.NSJingle}, RungTimeout: 300 * time.Millisecond, Features: alice.sig,
	})
	took := time.Since(start)
	t.Logf("send: %v after %v; peer saw %v", err, took, js.actions())
	if !errors.Is(err, filetransfer.ErrTimeout) || !strings.Contains(err.Error(), "never accepted") {
		t.Errorf("send: %v, want ErrTimeout saying the offer was never accepted", err)
	}
	if len(res.Tried) != 0 {
		t.Errorf("tried %+v, want none: the offer was acknowledged", res.Tried)
	}
	js.await(t, "session-terminate timeout")
	want := []string{"session-initiate " + socks5.NS, "session-terminate timeout"}
	if got := js.actions(); !equal(got, want) {
		t.Errorf("peer saw %v, want %v", got, want)
	}
	if took < accept || took > accept+5*time.Second {
		t.Errorf("send took %v with a %v session timeout", took, accept)
	}
}

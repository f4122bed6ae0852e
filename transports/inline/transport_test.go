package inline

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/xjingle/xjingle/jingle"
	"github.com/xjingle/xjingle/transports"
	"mellium.im/xmpp/jid"
)

// testLink is a jingle.TransportLink whose transport-infos go straight to
// the peer transport's Info, as the Manager would deliver them.
type testLink struct {
	local, peer jid.JID
	role        jingle.Role
	senders     string
	to          jingle.Transport // the peer's transport
}

func (l *testLink) SID() string                 { return "jsid" }
func (l *testLink) ContentName() string         { return "c" }
func (l *testLink) Local() jid.JID              { return l.local }
func (l *testLink) Peer() jid.JID               { return l.peer }
func (l *testLink) Initiator() jid.JID          { return aliceJID }
func (l *testLink) Role() jingle.Role           { return l.role }
func (l *testLink) Signaller() jingle.Signaller { return nil }
func (l *testLink) Logger() *slog.Logger        { return slog.New(slog.DiscardHandler) }
func (l *testLink) Senders() string             { return l.senders }
func (l *testLink) SendTransportInfo(ctx context.Context, el jingle.Element) error {
	// Through XML and back, as on the wire.
	wire, err := jingle.ParseElement(el.Bytes())
	if err != nil {
		return err
	}
	return l.to.Info(ctx, wire)
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// pair negotiates alice's (initiator, offering) and bob's transports for a
// content with senders; maxA and maxB are the factories' limits.
func pair(t *testing.T, senders string, maxA, maxB int64) (ta, tb jingle.Transport) {
	t.Helper()
	fa, err := NewFactory(WithMaxSize(maxA))
	if err != nil {
		t.Fatal(err)
	}
	fb, err := NewFactory(WithMaxSize(maxB))
	if err != nil {
		t.Fatal(err)
	}
	la := &testLink{local: aliceJID, peer: bobJID, role: jingle.RoleInitiator, senders: senders}
	lb := &testLink{local: bobJID, peer: aliceJID, role: jingle.RoleResponder, senders: senders}
	ta, _ = fa.NewTransport(la)
	tb, _ = fb.NewTransport(lb)
	la.to, lb.to = tb, ta
	t.Cleanup(func() { ta.Close(); tb.Close() })
	ctx := ctxT(t)
	offer, err := ta.Offer(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if offer.Namespace() != NS || offer.Attr("max-size") == "" {
		t.Fatalf("offer %s", offer.Bytes())
	}
	answer, err := tb.Accept(ctx, offer)
	if err != nil {
		t.Fatal(err)
	}
	if want := min(maxA, maxB); answer.Attr("max-size") != itoa(want) {
		t.Fatalf("answer %s, want max-size %d", answer.Bytes(), want)
	}
	if err := ta.Accepted(ctx, answer); err != nil {
		t.Fatal(err)
	}
	return ta, tb
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func random(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// notYet checks that a receiving side's Conn is not ready (the data has not
// arrived): with a cancelled context it must fail with that.
func notYet(t *testing.T, tr jingle.Transport) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if c, err := tr.Conn(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("receiver Conn before the data: %v %v", c, err)
	}
}

func TestRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name    string
		senders string
		n       int
		maxB    int64
	}{
		{"push", jingle.SendersInitiator, 5 << 10, DefaultMaxSize},
		{"pull", jingle.SendersResponder, 3000, DefaultMaxSize},
		{"push at the limit", jingle.SendersInitiator, 4096, 4096},
		{"empty", jingle.SendersInitiator, 0, DefaultMaxSize},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ta, tb := pair(t, tc.senders, DefaultMaxSize, tc.maxB)
			writer, reader := ta, tb
			if tc.senders == jingle.SendersResponder {
				writer, reader = tb, ta
			}
			notYet(t, reader)
			wc, err := writer.Conn(ctxT(t))
			if err != nil {
				t.Fatal(err)
			}
			data := random(tc.n)
			if _, err := wc.Write(data); err != nil {
				t.Fatal(err)
			}
			notYet(t, reader)
			if err := wc.(interface{ CloseWrite() error }).CloseWrite(); err != nil {
				t.Fatal(err)
			}
			rc, err := reader.Conn(ctxT(t))
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(rc)
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("read %d bytes, %v; want %d", len(got), err, len(data))
			}
			if _, err := rc.Write([]byte("x")); !errors.Is(err, ErrWriteClosed) {
				t.Fatalf("receiver write: %v", err)
			}
			if rc.RemoteAddr().String() != writer.(*transport).link.Local().String()+"#jsid" {
				t.Fatalf("remote addr %s", rc.RemoteAddr())
			}
			wc.Close()
			rc.Close()
		})
	}
}

// Close before any Write: a zero-byte stream arrives.
func TestCloseBeforeWrite(t *testing.T) {
	ta, tb := pair(t, jingle.SendersInitiator, 100, 100)
	wc, err := ta.Conn(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := wc.Close(); err != nil {
		t.Fatal(err)
	}
	rc, err := tb.Conn(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if n, err := rc.Read(make([]byte, 8)); n != 0 || err != io.EOF {
		t.Fatalf("read %d %v, want 0 EOF", n, err)
	}
}

func TestOversize(t *testing.T) {
	ta, tb := pair(t, jingle.SendersInitiator, 8192, 1000)
	// The ladder announces a stream larger than the agreed 1000 bytes:
	// the writer's Conn fails as a transport failure, before any byte.
	_, err := ta.Conn(transports.WithStreamSize(ctxT(t), 1001))
	if !errors.Is(err, ErrTooLarge) || !errors.Is(err, jingle.ErrTransportFailed) {
		t.Fatalf("Conn for 1001 bytes: %v", err)
	}
	wc, err := ta.Conn(transports.WithStreamSize(ctxT(t), 1000))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := wc.Write(make([]byte, 1001)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("write 1001: %v", err)
	}
	if _, err := wc.Write(make([]byte, 1000)); err != nil {
		t.Fatal(err)
	}
	if _, err := wc.Write(make([]byte, 1)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("write past the limit: %v", err)
	}
	wc.Close()
	rc, err := tb.Conn(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := io.ReadAll(rc); err != nil || len(got) != 1000 {
		t.Fatalf("read %d %v", len(got), err)
	}
}

// Hostile or broken transport-infos: refused with a stanza error, and the
// transport fails for the reader.
func TestBadData(t *testing.T) {
	good := []byte("some bytes")
	b64 := "c29tZSBieXRlcw==" // "some bytes"
	cid := CID(good)
	big := random(101)
	cases := []struct {
		name string
		xml  string
		cond string
		err  error
	}{
		{"cid mismatch", `<transport xmlns='` + NS + `'><data xmlns='urn:xmpp:bob' cid='` + CID([]byte("other")) + `' type='application/octet-stream'>` + b64 + `</data></transport>`, "bad-request", ErrCIDMismatch},
		{"two data", `<transport xmlns='` + NS + `'><data xmlns='urn:xmpp:bob' cid='` + cid + `'>` + b64 + `</data><data xmlns='urn:xmpp:bob' cid='` + cid + `'>` + b64 + `</data></transport>`, "bad-request", ErrBadData},
		{"no data", `<transport xmlns='` + NS + `'/>`, "bad-request", ErrBadData},
		{"bad base64", `<transport xmlns='` + NS + `'><data xmlns='urn:xmpp:bob' cid='` + cid + `'>c29tZSBieXRlcw=!</data></transport>`, "bad-request", ErrBadData},
		{"non-canonical base64", `<transport xmlns='` + NS + `'><data xmlns='urn:xmpp:bob' cid='` + cid + `'>c29tZSBieXRlcx==</data></transport>`, "bad-request", ErrBadData},
		{"bad cid form", `<transport xmlns='` + NS + `'><data xmlns='urn:xmpp:bob' cid='md5+abc@bob.xmpp.org'>` + b64 + `</data></transport>`, "bad-request", ErrBadData},
		{"oversize", string(DataElement(big).Bytes()), "not-acceptable", ErrTooLarge},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, tb := pair(t, jingle.SendersInitiator, 100, 100)
			el, err := jingle.ParseElement([]byte(tc.xml))
			if err != nil {
				t.Fatal(err)
			}
			err = tb.Info(ctxT(t), el)
			se := jingle.AsStanzaError(err)
			if se == nil || se.Condition != tc.cond {
				t.Fatalf("Info: %v, want %s", err, tc.cond)
			}
			_, err = tb.Conn(ctxT(t))
			if !errors.Is(err, jingle.ErrTransportFailed) || !errors.Is(err, tc.err) {
				t.Fatalf("Conn: %v, want ErrTransportFailed and %v", err, tc.err)
			}
			// A second transport-info is refused.
			if err := tb.Info(ctxT(t), DataElement(good)); jingle.AsStanzaError(err) == nil {
				t.Fatalf("second Info: %v", err)
			}
		})
	}
	// Whitespace in the base64 (as in XEP-0231's examples) is fine.
	_, tb := pair(t, jingle.SendersInitiator, 100, 100)
	el, _ := jingle.ParseElement([]byte(`<transport xmlns='` + NS + `'><data xmlns='urn:xmpp:bob' cid='` + strings.ToUpper(cid[:5]) + cid[5:] + `' max-age='0'>
	  c29tZSBi
	  eXRlcw==
	</data></transport>`))
	if err := tb.Info(ctxT(t), el); err == nil {
		t.Fatal("upper-case algorithm name accepted") // sha1+ is case-sensitive
	}
	_, tb = pair(t, jingle.SendersInitiator, 100, 100)
	el, _ = jingle.ParseElement([]byte(`<transport xmlns='` + NS + `'><data xmlns='urn:xmpp:bob' cid='sha1+` + strings.ToUpper(cid[5:45]) + `@bob.xmpp.org' max-age='0'>
	  c29tZSBi
	  eXRlcw==
	</data></transport>`))
	if err := tb.Info(ctxT(t), el); err != nil {
		t.Fatalf("wrapped base64, upper-case hex: %v", err)
	}
	rc, err := tb.Conn(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := io.ReadAll(rc); !bytes.Equal(got, good) {
		t.Fatalf("got %q", got)
	}
}

func TestBadOfferAndAnswer(t *testing.T) {
	f, _ := NewFactory()
	for _, raw := range []string{
		`<transport xmlns='` + NS + `'/>`,
		`<transport xmlns='` + NS + `' max-size='0'/>`,
		`<transport xmlns='` + NS + `' max-size='-5'/>`,
		`<transport xmlns='` + NS + `' max-size='x'/>`,
		`<transport xmlns='urn:xmpp:jingle:transports:ibb:1' max-size='10'/>`,
	} {
		tr, _ := f.NewTransport(&testLink{local: bobJID, peer: aliceJID, role: jingle.RoleResponder})
		el, _ := jingle.ParseElement([]byte(raw))
		if _, err := tr.Accept(ctxT(t), el); !errors.Is(err, jingle.ErrBadRequest) {
			t.Errorf("Accept(%s): %v, want bad-request", raw, err)
		}
		ta, _ := f.NewTransport(&testLink{local: aliceJID, peer: bobJID, role: jingle.RoleInitiator})
		ta.Offer(ctxT(t))
		if err := ta.Accepted(ctxT(t), el); !errors.Is(err, jingle.ErrTransportFailed) {
			t.Errorf("Accepted(%s): %v, want ErrTransportFailed", raw, err)
		}
		tr.Close()
		ta.Close()
	}
	// An answer larger than our offer is clamped to it.
	ta, _ := f.NewTransport(&testLink{local: aliceJID, peer: bobJID, role: jingle.RoleInitiator, senders: jingle.SendersInitiator})
	defer ta.Close()
	ta.Offer(ctxT(t))
	if err := ta.Accepted(ctxT(t), offerElement(1<<20)); err != nil {
		t.Fatal(err)
	}
	c, err := ta.Conn(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if c.(*Conn).MaxSize() != DefaultMaxSize {
		t.Fatalf("max-size %d after a larger answer", c.(*Conn).MaxSize())
	}
	if _, err := NewFactory(WithMaxSize(0)); err == nil {
		t.Fatal("max-size 0 accepted")
	}
}

// The transport closes (session ended, content replaced) before the data:
// a waiting receiver's Conn fails; data before negotiation is out of order.
func TestCloseBeforeData(t *testing.T) {
	f, _ := NewFactory()
	tr, _ := f.NewTransport(&testLink{local: bobJID, peer: aliceJID, role: jingle.RoleResponder, senders: jingle.SendersInitiator})
	if err := tr.Info(ctxT(t), DataElement(nil)); !errors.Is(err, jingle.ErrOutOfOrder) {
		t.Fatalf("Info before negotiation: %v", err)
	}
	if _, err := tr.Accept(ctxT(t), offerElement(100)); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		_, err := tr.Conn(context.Background())
		errc <- err
	}()
	tr.Close()
	if err := <-errc; !errors.Is(err, ErrTransportClosed) {
		t.Fatalf("Conn after Close: %v", err)
	}
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
}

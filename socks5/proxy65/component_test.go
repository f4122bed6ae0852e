package proxy65

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/xjingle/xjingle/socks5"
)

// render encodes r to a string.
func render(t testing.TB, r xml.TokenReader) string {
	t.Helper()
	var b bytes.Buffer
	e := xml.NewEncoder(&b)
	if _, err := xmlstream.Copy(e, r); err != nil {
		t.Fatal(err)
	}
	if err := e.Flush(); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func testComponent(p *Proxy) *Component {
	return &Component{JID: jid.MustParse("proxy.example.test"), Host: "192.0.2.7", Port: 7777, Proxy: p,
		Server: "127.0.0.1:1", Secret: []byte("s")}
}

func iqFrom(typ stanza.IQType, from jid.JID) stanza.IQ {
	return stanza.IQ{XMLName: xml.Name{Space: "jabber:component:accept", Local: "iq"}, ID: "i1", Type: typ,
		From: from, To: jid.MustParse("proxy.example.test")}
}

func TestAnswer(t *testing.T) {
	p, addr := startProxy(t, Config{})
	c := testComponent(p)
	q := func(ns string) *query { return &query{XMLName: xml.Name{Space: ns, Local: "query"}} }
	act := func(sid, to string) *query { qq := q(NSBytestreams); qq.SID, qq.Activate = sid, &to; return qq }
	dst := socks5.DstAddr("sid1", requester, target)
	mustDial(t, addr, dst)

	for _, tc := range []struct {
		name string
		iq   stanza.IQ
		q    *query
		want []string
		pre  func()
	}{
		{"disco#info", iqFrom(stanza.GetIQ, requester), q(NSDiscoInfo),
			[]string{`type="result"`, `category="proxy"`, `type="bytestreams"`, `var="http://jabber.org/protocol/bytestreams"`, `to="alice@example.test/a"`, `from="proxy.example.test"`}, nil},
		{"disco#info node", iqFrom(stanza.GetIQ, requester), &query{XMLName: xml.Name{Space: NSDiscoInfo, Local: "query"}, Node: "x"},
			[]string{`type="error"`, "item-not-found"}, nil},
		{"streamhost", iqFrom(stanza.GetIQ, requester), q(NSBytestreams),
			[]string{`type="result"`, `<streamhost`, `jid="proxy.example.test"`, `host="192.0.2.7"`, `port="7777"`}, nil},
		{"ping", iqFrom(stanza.GetIQ, requester), &query{XMLName: xml.Name{Space: NSPing, Local: "ping"}}, []string{`type="result"`}, nil},
		{"disco#items", iqFrom(stanza.GetIQ, requester), q(NSDiscoItems), []string{`type="result"`, NSDiscoItems}, nil},
		{"unknown", iqFrom(stanza.GetIQ, requester), q("urn:example:nope"), []string{`type="error"`, "service-unavailable"}, nil},
		{"no payload", iqFrom(stanza.SetIQ, requester), nil, []string{`type="error"`, "bad-request"}, nil},
		{"bad sid", iqFrom(stanza.SetIQ, requester), act("", target.String()), []string{"bad-request"}, nil},
		{"bad target", iqFrom(stanza.SetIQ, requester), act("sid1", "@@"), []string{"jid-malformed"}, nil},
		{"one sided", iqFrom(stanza.SetIQ, requester), act("sid1", target.String()), []string{`type="error"`, "not-allowed"}, nil},
		{"wrong requester", iqFrom(stanza.SetIQ, jid.MustParse("mallory@example.test/m")), act("sid1", target.String()),
			[]string{`type="error"`, "item-not-found"}, func() { mustDial(t, addr, dst) }},
		{"remote streamhost", iqFrom(stanza.GetIQ, jid.MustParse("eve@elsewhere.example/e")), q(NSBytestreams),
			[]string{`type="error"`, `type="auth"`, "forbidden"}, nil},
		{"remote activate", iqFrom(stanza.SetIQ, jid.MustParse("eve@elsewhere.example/e")), act("sid1", target.String()),
			[]string{`type="error"`, "forbidden"}, nil},
		{"remote disco", iqFrom(stanza.GetIQ, jid.MustParse("eve@elsewhere.example/e")), q(NSDiscoInfo), []string{`type="result"`}, nil},
		{"activate", iqFrom(stanza.SetIQ, requester), act("sid1", target.String()), []string{`type="result"`, `id="i1"`}, nil},
		{"again", iqFrom(stanza.SetIQ, requester), act("sid1", target.String()), []string{`type="error"`, "not-allowed"}, nil},
	} {
		if tc.pre != nil {
			tc.pre()
		}
		got := render(t, c.answer(tc.iq, tc.q))
		for _, w := range tc.want {
			if !strings.Contains(got, w) {
				t.Errorf("%s: reply %s lacks %s", tc.name, got, w)
			}
		}
	}
}

func TestComponentAccess(t *testing.T) {
	for _, tc := range []struct {
		comp  string
		allow []string
		open  bool
		from  string
		want  bool
	}{
		{"proxy.example.test", nil, false, "alice@example.test/a", true},
		{"proxy.example.test", nil, false, "example.test", true},
		{"proxy.example.test", nil, false, "alice@EXAMPLE.test/a", true},
		{"proxy.example.test", nil, false, "eve@evil.test/e", false},
		{"proxy.example.test", nil, false, "eve@sub.example.test/e", false},
		{"proxy.example.test", nil, true, "eve@evil.test/e", true},
		{"example.test", nil, false, "alice@example.test/a", true},
		{"proxy.example.test", []string{"friends.test"}, false, "bob@friends.test/x", true},
		{"proxy.example.test", []string{"friends.test"}, false, "alice@example.test/a", false},
		{"proxy.example.test", []string{"bob@friends.test"}, false, "bob@friends.test/x", true},
		{"proxy.example.test", []string{"bob@friends.test"}, false, "carol@friends.test/x", false},
		{"proxy.example.test", []string{"bob@friends.test/x"}, false, "bob@friends.test/y", false},
		{"proxy.example.test", []string{"@@"}, false, "bob@friends.test/x", false},
	} {
		c := &Component{JID: jid.MustParse(tc.comp), Allow: tc.allow, OpenAccess: tc.open}
		if got := c.permitted(jid.MustParse(tc.from)); got != tc.want {
			t.Errorf("component %s allow %v open %v: permitted(%s) = %v, want %v", tc.comp, tc.allow, tc.open, tc.from, got, tc.want)
		}
	}
}

// fakeServer is the server side of XEP-0114 §3 on a loopback listener.
type fakeServer struct {
	t      *testing.T
	l      net.Listener
	secret string
}

// accept takes one component connection, checks its handshake and returns
// the conn and a decoder positioned after it.
func (s *fakeServer) accept(id string) (net.Conn, *xml.Decoder) {
	s.t.Helper()
	c, err := s.l.Accept()
	if err != nil {
		s.t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	d := xml.NewDecoder(c)
	next := func() xml.StartElement {
		for {
			tok, err := d.Token()
			if err != nil {
				s.t.Fatalf("fake server: %v", err)
			}
			if se, ok := tok.(xml.StartElement); ok {
				return se
			}
		}
	}
	if se := next(); se.Name.Local != "stream" {
		s.t.Fatalf("fake server: got %v, want a stream header", se.Name)
	}
	fmt.Fprintf(c, `<?xml version='1.0'?><stream:stream xmlns:stream='http://etherx.jabber.org/streams' xmlns='jabber:component:accept' id='%s' from='proxy.example.test'>`, id)
	se := next()
	var hs string
	if err := d.DecodeElement(&hs, &se); err != nil || se.Name.Local != "handshake" {
		s.t.Fatalf("fake server: handshake %v: %v", se.Name, err)
	}
	sum := sha1.Sum([]byte(id + s.secret))
	if hs != hex.EncodeToString(sum[:]) {
		s.t.Fatalf("fake server: handshake %q, want SHA1(id+secret) (XEP-0114 §3)", hs)
	}
	fmt.Fprint(c, `<handshake/>`)
	return c, d
}

type reply struct {
	Type     string `xml:"type,attr"`
	ID       string `xml:"id,attr"`
	Children []struct {
		XMLName xml.Name
		Inner   string `xml:",innerxml"`
	} `xml:",any"`
}

func (s *fakeServer) roundTrip(c net.Conn, d *xml.Decoder, iq string) reply {
	s.t.Helper()
	if _, err := fmt.Fprint(c, iq); err != nil {
		s.t.Fatal(err)
	}
	for {
		tok, err := d.Token()
		if err != nil {
			s.t.Fatalf("fake server: reading the reply: %v", err)
		}
		if se, ok := tok.(xml.StartElement); ok {
			var r reply
			if err := d.DecodeElement(&r, &se); err != nil {
				s.t.Fatal(err)
			}
			return r
		}
	}
}

func TestComponentSessionAndReconnect(t *testing.T) {
	p, addr := startProxy(t, Config{})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	srv := &fakeServer{t: t, l: l, secret: "s3cret"}
	states := make(chan bool, 8)
	c := &Component{JID: jid.MustParse("proxy.example.test"), Server: l.Addr().String(), Secret: []byte("s3cret"),
		Host: "127.0.0.1", Port: 1080, Proxy: p, MinBackoff: 10 * time.Millisecond, MaxBackoff: 20 * time.Millisecond,
		OnState: func(up bool, _ error) { states <- up }}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- c.Run(ctx) }()

	conn, d := srv.accept("stream-1")
	if !<-states {
		t.Fatal("first state is down")
	}
	r := srv.roundTrip(conn, d, `<iq type='get' id='d1' from='alice@example.test/a' to='proxy.example.test'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`)
	if r.Type != "result" || r.ID != "d1" || len(r.Children) != 1 || !strings.Contains(r.Children[0].Inner, `category="proxy"`) {
		t.Errorf("disco#info reply %+v", r)
	}
	dst := socks5.DstAddr("sidX", requester, target)
	mustDial(t, addr, dst)
	mustDial(t, addr, dst)
	r = srv.roundTrip(conn, d, `<iq type='set' id='a1' from='alice@example.test/a' to='proxy.example.test'><query xmlns='http://jabber.org/protocol/bytestreams' sid='sidX'><activate>bob@example.test/b</activate></query></iq>`)
	if r.Type != "result" || r.ID != "a1" {
		t.Errorf("activation reply %+v, want result", r)
	}

	// The server drops the stream: the component comes back.
	conn.Close()
	if <-states {
		t.Fatal("no down state after the server closed the stream")
	}
	conn2, d2 := srv.accept("stream-2")
	defer conn2.Close()
	if !<-states || !c.Connected() {
		t.Fatal("component did not reconnect")
	}
	r = srv.roundTrip(conn2, d2, `<iq type='get' id='q2' from='bob@example.test/b' to='proxy.example.test'><query xmlns='http://jabber.org/protocol/bytestreams'/></iq>`)
	if r.Type != "result" || len(r.Children) != 1 || !strings.Contains(r.Children[0].Inner, `port="1080"`) {
		t.Errorf("streamhost reply %+v", r)
	}

	cancel()
	if err := <-ran; err != nil {
		t.Errorf("Run after cancel: %v", err)
	}
	if c.Connected() {
		t.Error("still connected after Run returned")
	}
}

func TestComponentConfig(t *testing.T) {
	p, _ := startProxy(t, Config{})
	for _, mod := range []func(*Component){
		func(c *Component) { c.JID = jid.MustParse("user@proxy.example.test") },
		func(c *Component) { c.Server = "" },
		func(c *Component) { c.Secret = nil },
		func(c *Component) { c.Port = 0 },
		func(c *Component) { c.Proxy = nil },
	} {
		c := testComponent(p)
		mod(c)
		if err := c.Run(context.Background()); !errors.Is(err, ErrBadComponent) {
			t.Errorf("Run: %v, want ErrBadComponent", err)
		}
	}
}

// FuzzAnswer feeds arbitrary IQ payloads through the component's decoding
// and reply: no panic, and the reply is always well-formed XML.
func FuzzAnswer(f *testing.F) {
	for _, s := range []string{
		`<query xmlns='http://jabber.org/protocol/disco#info'/>`,
		`<query xmlns='http://jabber.org/protocol/bytestreams'/>`,
		`<query xmlns='http://jabber.org/protocol/bytestreams' sid='s'><activate>bob@example.test/b</activate></query>`,
		`<query xmlns='http://jabber.org/protocol/bytestreams' sid='s'><activate></activate><activate>x</activate></query>`,
		`<x/>`, ``,
	} {
		f.Add(s, true)
		f.Add(s, false)
	}
	p, err := New(Config{})
	if err != nil {
		f.Fatal(err)
	}
	defer p.Close()
	c := testComponent(p)
	f.Fuzz(func(t *testing.T, payload string, set bool) {
		typ := stanza.GetIQ
		if set {
			typ = stanza.SetIQ
		}
		d := xml.NewDecoder(strings.NewReader(payload))
		var q *query
		for {
			tok, err := d.Token()
			if err != nil {
				break
			}
			if se, ok := tok.(xml.StartElement); ok {
				q = &query{}
				if d.DecodeElement(q, &se) != nil {
					return // the stream would be broken; the server's problem
				}
				break
			}
		}
		out := render(t, c.answer(iqFrom(typ, requester), q))
		dd := xml.NewDecoder(strings.NewReader(out))
		for {
			if _, err := dd.Token(); err != nil {
				if err.Error() != "EOF" {
					t.Fatalf("reply %q is not well-formed: %v", out, err)
				}
				break
			}
		}
	})
}

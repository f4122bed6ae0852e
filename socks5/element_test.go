package socks5

import (
	"bytes"
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/xjingle/xjingle/jingle"
)

// XEP-0260 Example 3 (the responder's session-accept transport), verbatim
// except for the two documentation addresses that are not IP addresses.
const example3 = `<transport xmlns='urn:xmpp:jingle:transports:s5b:1'
                 dstaddr='1a12fb7bc625e55f3ed5b29a53dbe0e4aa7d80ba'
                 sid='vj3hs98y'>
        <candidate cid='ht567dq' host='192.169.1.10' jid='juliet@capulet.lit/balcony' port='6539' priority='8257636' type='direct'/>
        <candidate cid='grt654q2' host='2001:638:708:30c9:219:d1ff:fea4:a17d' jid='juliet@capulet.lit/balcony' port='6539' priority='8257606' type='direct'/>
        <candidate cid='hr65dqyd' host='134.102.201.180' jid='juliet@capulet.lit/balcony' port='16453' priority='7929856' type='assisted'/>
        <candidate cid='pzv14s74' host='234.567.8.9' jid='proxy.marlowe.lit' port='7676' priority='7788877' type='proxy'/>
      </transport>`

func mustParse(t testing.TB, raw string) jingle.Element {
	t.Helper()
	el, err := jingle.ParseElement([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	return el
}

func TestParseExample3(t *testing.T) {
	p, err := parseTransport(mustParse(t, example3))
	if err != nil {
		t.Fatal(err)
	}
	if p.SID != "vj3hs98y" || p.DstAddr != "1a12fb7bc625e55f3ed5b29a53dbe0e4aa7d80ba" || p.Mode != "tcp" {
		t.Errorf("parsed %+v", p)
	}
	// 234.567.8.9 is not an address (nor a host name: labels of digits
	// only are allowed by validHost, so it passes as a name); check the
	// rest.
	if len(p.Candidates) != 4 {
		t.Fatalf("%d candidates, want 4 (dropped %d)", len(p.Candidates), p.Dropped)
	}
	c := p.Candidates[2]
	if c.CID != "hr65dqyd" || c.Type != TypeAssisted || c.Port != 16453 || c.Priority != 7929856 || c.JID.String() != "juliet@capulet.lit/balcony" {
		t.Errorf("candidate 2 = %+v", c)
	}
	if p.Candidates[3].Type != TypeProxy || p.Candidates[3].JID.String() != "proxy.marlowe.lit" {
		t.Errorf("candidate 3 = %+v", p.Candidates[3])
	}
}

func TestParseDinoCapture(t *testing.T) {
	// captures/dino-0.4.2.xml, Dino's session-initiate (dino-to-cv).
	raw := `<transport xmlns="urn:xmpp:jingle:transports:s5b:1" sid="fbee2833-a8dc-48e0-8db4-aa239cdcf5a6" dstaddr="a197a11f9ff8e51b3726a7a4f3f350b91042f597" mode="tcp"><candidate priority="8290304" type="direct" cid="32d2018c-cfac-4224-a05c-0ae4a1c9948e" port="37735" host="10.81.0.4" jid="dino@example.test/dino" /><candidate priority="688128" type="proxy" cid="ed095e47-066d-4a34-be22-2dc925aa73eb" port="5000" host="10.81.0.1" jid="proxy.example.test" /></transport>`
	p, err := parseTransport(mustParse(t, raw))
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Candidates) != 2 || p.Dropped != 0 || p.Candidates[1].Addr() != "10.81.0.1:5000" {
		t.Fatalf("parsed %+v", p)
	}
}

func TestParseRejects(t *testing.T) {
	many := "<transport xmlns='urn:xmpp:jingle:transports:s5b:1' sid='s'>" +
		strings.Repeat("<candidate cid='c' host='127.0.0.1' jid='a@b/c' port='1' priority='1'/>", MaxCandidates+1) + "</transport>"
	for name, raw := range map[string]string{
		"no sid":          `<transport xmlns='urn:xmpp:jingle:transports:s5b:1'/>`,
		"long sid":        `<transport xmlns='urn:xmpp:jingle:transports:s5b:1' sid='` + strings.Repeat("x", 200) + `'/>`,
		"bad mode":        `<transport xmlns='urn:xmpp:jingle:transports:s5b:1' sid='s' mode='sctp'/>`,
		"wrong ns":        `<transport xmlns='urn:xmpp:jingle:transports:ibb:1' sid='s'/>`,
		"too many":        many,
		"used and cands":  `<transport xmlns='urn:xmpp:jingle:transports:s5b:1' sid='s'><candidate-used cid='x'/><candidate cid='c' host='127.0.0.1' jid='a@b/c' port='1' priority='1'/></transport>`,
		"used empty cid":  `<transport xmlns='urn:xmpp:jingle:transports:s5b:1' sid='s'><candidate-used/></transport>`,
		"activated space": `<transport xmlns='urn:xmpp:jingle:transports:s5b:1' sid='s'><activated cid='a b'/></transport>`,
	} {
		if p, err := parseTransport(mustParse(t, raw)); err == nil {
			t.Errorf("%s: parsed %+v", name, p)
		}
	}
}

func TestParseDropsBadCandidates(t *testing.T) {
	raw := `<transport xmlns='urn:xmpp:jingle:transports:s5b:1' sid='s'>
	<candidate cid='ok' host='127.0.0.1' jid='a@b/c' port='1' priority='1'/>
	<candidate cid='ok' host='127.0.0.1' jid='a@b/c' port='2' priority='1'/>
	<candidate cid='p0' host='127.0.0.1' jid='a@b/c' port='0' priority='1'/>
	<candidate cid='pbig' host='127.0.0.1' jid='a@b/c' port='65536' priority='1'/>
	<candidate cid='prio0' host='127.0.0.1' jid='a@b/c' port='1' priority='0'/>
	<candidate cid='prbig' host='127.0.0.1' jid='a@b/c' port='1' priority='4294967296'/>
	<candidate cid='zone' host='fe80::1%eth0' jid='a@b/c' port='1' priority='1'/>
	<candidate cid='any' host='0.0.0.0' jid='a@b/c' port='1' priority='1'/>
	<candidate cid='host' host='a b' jid='a@b/c' port='1' priority='1'/>
	<candidate cid='nojid' host='127.0.0.1' port='1' priority='1'/>
	<candidate cid='type' host='127.0.0.1' jid='a@b/c' port='1' priority='1' type='ice'/>
	<candidate host='127.0.0.1' jid='a@b/c' port='1' priority='1'/>
	<candidate cid='noport' host='example.net' jid='a@b/c' priority='1'/>
	</transport>`
	p, err := parseTransport(mustParse(t, raw))
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Candidates) != 2 || p.Candidates[0].CID != "ok" || p.Candidates[1].CID != "noport" || p.Candidates[1].Port != 1080 {
		t.Fatalf("kept %+v", p.Candidates)
	}
	if p.Dropped != 11 {
		t.Errorf("dropped %d, want 11", p.Dropped)
	}
}

func TestElementRoundTrip(t *testing.T) {
	p, err := parseTransport(mustParse(t, example3))
	if err != nil {
		t.Fatal(err)
	}
	el, err := p.element()
	if err != nil {
		t.Fatal(err)
	}
	q, err := parseTransport(el)
	if err != nil {
		t.Fatal(err)
	}
	if len(q.Candidates) != len(p.Candidates) || q.SID != p.SID || q.DstAddr != p.DstAddr {
		t.Fatalf("round trip %+v → %+v", p, q)
	}
	for i := range p.Candidates {
		a, b := p.Candidates[i], q.Candidates[i]
		if a.CID != b.CID || a.Host != b.Host || a.Port != b.Port || !a.JID.Equal(b.JID) || a.Priority != b.Priority || a.Type != b.Type {
			t.Errorf("candidate %d: %+v → %+v", i, p.Candidates[i], q.Candidates[i])
		}
	}
	for _, r := range []payload{{SID: "s", Used: "c1"}, {SID: "s", CandidateError: true}, {SID: "s", Activated: "c2"}, {SID: "s", ProxyError: true}} {
		el, err := r.element()
		if err != nil {
			t.Fatal(err)
		}
		got, err := parseTransport(el)
		if err != nil {
			t.Fatalf("%s: %v", el.Bytes(), err)
		}
		if got.Used != r.Used || got.CandidateError != r.CandidateError || got.Activated != r.Activated || got.ProxyError != r.ProxyError {
			t.Errorf("%s parsed as %+v", el.Bytes(), got)
		}
	}
}

func TestPriority(t *testing.T) {
	// XEP-0260 §2.2: priority = 2^16 * type preference + local preference.
	if got := Priority(TypeDirect, 0); got != 8257536 {
		t.Errorf("direct = %d", got)
	}
	if got := Priority(TypeProxy, 0); got != 655360 {
		t.Errorf("proxy = %d", got)
	}
	if !(Priority(TypeDirect, 0) > Priority(TypeAssisted, 65535) && Priority(TypeAssisted, 0) > Priority(TypeTunnel, 65535) && Priority(TypeTunnel, 0) > Priority(TypeProxy, 65535)) {
		t.Error("type preferences do not dominate local preferences")
	}
}

func TestActivatePayload(t *testing.T) {
	sid, target, err := ParseActivate([]byte(`<query xmlns='http://jabber.org/protocol/bytestreams' sid='vxf9n471bn46'><activate>target@example.org/bar</activate></query>`))
	if err != nil || sid != "vxf9n471bn46" || target.String() != "target@example.org/bar" {
		t.Fatalf("ParseActivate = %q, %v, %v", sid, target, err)
	}
	if _, _, err := ParseActivate([]byte(`<query xmlns='http://jabber.org/protocol/bytestreams'><activate>a@b</activate></query>`)); err == nil {
		t.Error("activate without sid accepted")
	}
}

func FuzzParseTransport(f *testing.F) {
	f.Add([]byte(example3))
	f.Add([]byte(`<transport xmlns='urn:xmpp:jingle:transports:s5b:1' sid='s'><candidate-used cid='x'/></transport>`))
	f.Add([]byte(`<transport xmlns='urn:xmpp:jingle:transports:s5b:1' sid='s'><activated cid='x'/></transport>`))
	f.Add([]byte(`<transport xmlns='urn:xmpp:jingle:transports:s5b:1' sid='s' mode='udp'><proxy-error/></transport>`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		el, err := jingle.ParseElement(raw)
		if err != nil {
			return
		}
		p, err := parseTransport(el)
		if err != nil {
			return
		}
		if len(p.Candidates) > MaxCandidates || p.SID == "" || len(p.SID) > maxSIDLen {
			t.Fatalf("unbounded result %+v", p)
		}
		for _, c := range p.Candidates {
			if c.Port == 0 || c.Priority == 0 || !validCID(c.CID) || !validHost(c.Host) {
				t.Fatalf("invalid candidate kept: %+v", c)
			}
		}
		// What we accept we can write back and read again.
		out, err := p.element()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := parseTransport(out); err != nil {
			t.Fatalf("re-parse of %s: %v", out.Bytes(), err)
		}
	})
}

func FuzzReadRequest(f *testing.F) {
	f.Add(request(testDst, 0))
	f.Add([]byte{5, 1, 0, 1, 127, 0, 0, 1, 0, 80})
	f.Add([]byte{5, 1, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 80})
	f.Add([]byte{5, 1, 0, 3, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		r := bytes.NewReader(b)
		req, err := ReadRequest(r)
		if read := len(b) - r.Len(); read > 262 {
			t.Fatalf("read %d bytes", read)
		}
		if err == nil && req.AddrType == atypDomain && (len(req.Addr) == 0 || len(req.Addr) > 255) {
			t.Fatalf("domain of %d bytes", len(req.Addr))
		}
	})
}

// rw is a client's bytes in, the server's bytes out.
type rw struct {
	io.Reader
	out bytes.Buffer
}

func (r *rw) Write(b []byte) (int, error) { return r.out.Write(b) }

func FuzzServerHandshake(f *testing.F) {
	f.Add(append([]byte{5, 1, 0}, request(testDst, 0)...))
	f.Add(append([]byte{5, 1, 0}, request(testDst, 7)...))
	f.Add([]byte{5, 2, 2, 0, 5, 3, 0, 3, 1, 'x', 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		conn := &rw{Reader: bytes.NewReader(b)}
		dst, err := serverHandshake(conn, func(d string) bool { return d == testDst })
		if err == nil && dst != testDst {
			t.Fatalf("accepted %q", dst)
		}
		if err == nil {
			// The client must have asked for exactly this.
			want := append([]byte{5, 0}, 5, 0, 0, 3, 40)
			if !bytes.HasPrefix(conn.out.Bytes(), want) {
				t.Fatalf("success reply %x", conn.out.Bytes())
			}
		}
	})
}

// scriptConn is a net.Conn that reads a fixed script and swallows writes.
type scriptConn struct {
	net.Conn // nil: only the methods below are used
	r        io.Reader
}

func (c *scriptConn) Read(b []byte) (int, error)  { return c.r.Read(b) }
func (c *scriptConn) Write(b []byte) (int, error) { return len(b), nil }
func (c *scriptConn) SetDeadline(time.Time) error { return nil }
func (c *scriptConn) LocalAddr() net.Addr         { return &net.TCPAddr{} }
func (c *scriptConn) RemoteAddr() net.Addr        { return &net.TCPAddr{} }

// The client must cope with whatever a streamhost answers.
func FuzzClientHandshake(f *testing.F) {
	f.Add([]byte{5, 0, 5, 0, 0, 3, 40})
	f.Add([]byte{5, 0, 5, 0, 0, 1, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{5, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		r := bytes.NewReader(b)
		err := ClientHandshake(context.Background(), &scriptConn{r: r}, testDst)
		if read := len(b) - r.Len(); read > 2+4+1+255+2 {
			t.Fatalf("read %d bytes", read)
		}
		if err == nil && (len(b) < 9 || b[3] != 0) {
			t.Fatalf("accepted reply %x", b)
		}
	})
}

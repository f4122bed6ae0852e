package ice_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	pice "github.com/pion/ice/v4"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
	"github.com/xjingle/xjingle/internal/engine"
	"github.com/xjingle/xjingle/internal/xjtest"
	"github.com/xjingle/xjingle/jingle"
	"github.com/xjingle/xjingle/jingle/filetransfer"
	"github.com/xjingle/xjingle/transports/ice"
	"mellium.im/xmpp/jid"
)

// This file plays a StanzaJS 12.22.1 peer from the stanzas captured in
// ../../shared/captures/stanzajs-12.22.1.xml: every stanza it sends has the
// captured shape (no initiator or senders attributes, a session-initiate
// without candidates, candidates without id/generation/network trickled in
// transport-info, a non-standard <gathering-complete/>, <hash-used/> in the
// offer and the hash only in a later checksum session-info, the receiver
// ending the session with session-terminate success), and the media is a
// real Pion PeerConnection on 127.0.0.1, as in a browser. Our side is the
// real file-transfer application with both ICE factories.

// stanzaJSFeatures is what StanzaJS advertises with an RTCPeerConnection
// (its jingle plugin's caps).
var stanzaJSFeatures = []string{
	"urn:xmpp:jingle:1", "urn:xmpp:jingle:transports:ice:0", ice.NSICEUDP, ice.NSSCTP, ice.NSDTLS,
	"urn:ietf:rfc:5888", "urn:xmpp:jingle:apps:file-transfer:5", "urn:xmpp:jingle:apps:file-transfer:4",
}

const nsFT = "urn:xmpp:jingle:apps:file-transfer:5"

// sjsPeer is the scripted StanzaJS peer.
type sjsPeer struct {
	t    *testing.T
	sig  *xjtest.Signaller
	us   jid.JID
	pc   *webrtc.PeerConnection
	in   chan sjsIQ
	sid  string
	name string // content name

	mu    sync.Mutex
	local sjsCreds
}

type sjsCreds struct{ ufrag, pwd, fp string }

// sjsIQ is a Jingle IQ we sent to the peer, parsed.
type sjsIQ struct {
	Action  string `xml:"action,attr"`
	SID     string `xml:"sid,attr"`
	Content []struct {
		Name        string          `xml:"name,attr"`
		Transport   jingleRaw       `xml:"urn:xmpp:jingle:transports:ice-udp:1 transport"`
		Description *sjsDescription `xml:"urn:xmpp:jingle:apps:file-transfer:5 description"`
	} `xml:"content"`
	Checksum *struct {
		Hashes []sjsHash `xml:"file>hash"`
	} `xml:"urn:xmpp:jingle:apps:file-transfer:5 checksum"`
	Reason *struct {
		Inner []byte `xml:",innerxml"`
	} `xml:"reason"`
}

type sjsHash struct {
	Algo  string `xml:"algo,attr"`
	Value string `xml:",chardata"`
}

type sjsDescription struct {
	Name string    `xml:"file>name"`
	Size int64     `xml:"file>size"`
	Hash []sjsHash `xml:"file>hash"`
}

// jingleRaw keeps an element's XML for ice.ParseICEUDP.
type jingleRaw struct {
	Raw []byte `xml:",innerxml"`
	Set bool
}

func (r *jingleRaw) UnmarshalXML(d *xml.Decoder, start xml.StartElement) error {
	var b bytes.Buffer
	e := xml.NewEncoder(&b)
	if err := e.EncodeToken(start); err != nil {
		return err
	}
	for {
		tok, err := d.Token()
		if err != nil {
			return err
		}
		if err := e.EncodeToken(xml.CopyToken(tok)); err != nil {
			return err
		}
		if end, ok := tok.(xml.EndElement); ok && end.Name == start.Name {
			break
		}
	}
	e.Flush()
	r.Raw, r.Set = b.Bytes(), true
	return nil
}

func (r jingleRaw) ice(t *testing.T) *ice.ICEUDP {
	t.Helper()
	el, err := jingle.ParseElement(r.Raw)
	if err != nil {
		t.Fatalf("our transport: %v", err)
	}
	tr, err := ice.ParseICEUDP(el)
	if err != nil {
		t.Fatalf("our transport: %v\n%s", err, r.Raw)
	}
	return tr
}

func newSJSPeer(t *testing.T, n *xjtest.Network, self string, us jid.JID) *sjsPeer {
	p := &sjsPeer{t: t, sig: n.Add(self), us: us, in: make(chan sjsIQ, 256)}
	for _, f := range stanzaJSFeatures {
		p.sig.AddFeature(f)
	}
	p.sig.HandleIQ(xml.Name{Space: jingle.NS, Local: "jingle"}, func(iq *jingle.IQ, reply jingle.ReplyFunc) {
		var j sjsIQ
		if err := xml.Unmarshal(iq.Payload, &j); err != nil {
			reply(nil, jingle.ErrBadRequest)
			return
		}
		reply(nil, nil)
		select {
		case p.in <- j:
		default:
			t.Error("stanzajs peer: inbox full")
		}
	})
	var se webrtc.SettingEngine
	se.SetIncludeLoopbackCandidate(true)
	se.SetInterfaceFilter(func(n string) bool { return n == "lo" })
	se.SetIPFilter(func(ip net.IP) bool { return ip.Equal(net.IPv4(127, 0, 0, 1)) })
	se.SetICEMulticastDNSMode(pice.MulticastDNSModeDisabled)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	pc, err := webrtc.NewAPI(webrtc.WithSettingEngine(se)).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	p.pc = pc
	t.Cleanup(func() {
		pc.Close()
		p.sig.Close()
	})
	return p
}

func (p *sjsPeer) send(ctx context.Context, payload string) {
	p.t.Helper()
	if _, err := p.sig.SendIQ(ctx, p.us, "set", []byte(payload)); err != nil {
		p.t.Errorf("stanzajs peer: %v\n%s", err, payload)
	}
}

// sendTrickle sends a trickled candidate. One gathered late can reach us
// after the transfer ended and the session is gone: we answer it with
// unknown-session (XEP-0166 §10), which a browser ignores, and so does this
// peer; anything else fails the test.
func (p *sjsPeer) sendTrickle(ctx context.Context, payload string) {
	if _, err := p.sig.SendIQ(ctx, p.us, "set", []byte(payload)); err != nil && !strings.Contains(err.Error(), "unknown-session") && ctx.Err() == nil {
		p.t.Errorf("stanzajs peer: %v\n%s", err, payload)
	}
}

// next returns the next Jingle IQ with one of actions, skipping others'
// (transport-info are fed to Pion on the way).
func (p *sjsPeer) next(ctx context.Context, actions ...string) sjsIQ {
	p.t.Helper()
	for {
		select {
		case j := <-p.in:
			if j.Action == "transport-info" {
				p.addCandidates(j)
			}
			for _, a := range actions {
				if j.Action == a {
					return j
				}
			}
		case <-ctx.Done():
			p.t.Fatalf("stanzajs peer: no %v", actions)
			return sjsIQ{}
		}
	}
}

func (p *sjsPeer) addCandidates(j sjsIQ) {
	for _, c := range j.Content {
		if !c.Transport.Set {
			continue
		}
		tr := c.Transport.ice(p.t)
		for _, cand := range tr.Candidates {
			if err := p.pc.AddICECandidate(webrtc.ICECandidateInit{Candidate: cand.SDP()}); err != nil {
				p.t.Errorf("stanzajs peer: add candidate: %v", err)
			}
		}
	}
}

// describe sets the local description and reads StanzaJS's transport
// parameters from it.
func (p *sjsPeer) describe(desc webrtc.SessionDescription) {
	p.t.Helper()
	if err := p.pc.SetLocalDescription(desc); err != nil {
		p.t.Fatal(err)
	}
	var s sdp.SessionDescription
	if err := s.UnmarshalString(p.pc.LocalDescription().SDP); err != nil {
		p.t.Fatal(err)
	}
	var c sjsCreds
	attrs := s.Attributes
	for _, m := range s.MediaDescriptions {
		attrs = append(attrs, m.Attributes...)
	}
	{
		for _, a := range attrs {
			switch a.Key {
			case "ice-ufrag":
				c.ufrag = a.Value
			case "ice-pwd":
				c.pwd = a.Value
			case "fingerprint":
				c.fp = strings.TrimPrefix(a.Value, "sha-256 ")
			}
		}
	}
	p.mu.Lock()
	p.local = c
	p.mu.Unlock()
}

// trickle sends each local candidate as StanzaJS does (1c), then
// <gathering-complete/> (1d).
func (p *sjsPeer) trickle(ctx context.Context, creator string) {
	p.pc.OnICECandidate(func(c *webrtc.ICECandidate) {
		p.mu.Lock()
		ufrag := p.local.ufrag
		p.mu.Unlock()
		inner := `<gathering-complete/>`
		if c != nil {
			inner = fmt.Sprintf(`<candidate component="%d" foundation="%s" ip="%s" port="%d" priority="%d" protocol="udp" type="%s"/>`,
				c.Component, c.Foundation, c.Address, c.Port, c.Priority, c.Typ.String())
		}
		go p.sendTrickle(ctx, fmt.Sprintf(`<jingle xmlns="urn:xmpp:jingle:1" sid="%s" action="transport-info"><content creator="%s" name="%s"><transport xmlns="urn:xmpp:jingle:transports:ice-udp:1" ufrag="%s">%s</transport></content></jingle>`,
			p.sid, creator, p.name, ufrag, inner))
	})
}

// remoteSDP is the SDP a browser builds from our ICE-UDP transport.
func remoteSDPFor(tr *ice.ICEUDP) string {
	var b strings.Builder
	b.WriteString("v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n")
	b.WriteString("m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\n")
	fmt.Fprintf(&b, "a=ice-ufrag:%s\r\na=ice-pwd:%s\r\na=fingerprint:%s %s\r\na=setup:%s\r\na=mid:0\r\na=sctp-port:%d\r\n",
		tr.Ufrag, tr.Pwd, tr.Fingerprint.Hash, tr.Fingerprint.Value, tr.Fingerprint.Setup, tr.SCTPMap.Number)
	for _, c := range tr.Candidates {
		b.WriteString("a=" + c.SDP() + "\r\n")
	}
	return b.String()
}

// ourSide is our real file-transfer stack.
type ourSide struct {
	sig   *xjtest.Signaller
	m     *jingle.Manager
	app   *filetransfer.App
	inbox string
	in    chan *filetransfer.Transfer
}

func newOurSide(t *testing.T, n *xjtest.Network, self string) *ourSide {
	o := &ourSide{sig: n.Add(self), inbox: t.TempDir(), in: make(chan *filetransfer.Transfer, 2)}
	dc, err := ice.NewFactory(loopbackOpts()...)
	if err != nil {
		t.Fatal(err)
	}
	iu, err := ice.NewICEUDPFactory(loopbackOpts()...)
	if err != nil {
		t.Fatal(err)
	}
	o.app = filetransfer.New(&filetransfer.Store{Dir: o.inbox},
		filetransfer.WithAcceptPolicy(filetransfer.AcceptAll),
		filetransfer.WithLogger(testLogger(t)),
		filetransfer.WithOnTransfer(func(tr *filetransfer.Transfer) {
			if tr.Direction() == filetransfer.Incoming {
				o.in <- tr
			}
		}))
	o.m, err = jingle.NewManager(o.sig, jingle.WithApplication(o.app), jingle.WithTransport(dc), jingle.WithTransport(iu),
		jingle.WithLogger(testLogger(t).With("who", self)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		o.m.Close()
		o.sig.Close()
	})
	return o
}

// TestStanzaJSSendsToUs: a StanzaJS peer sends us a file (captures 1a-1f).
func TestStanzaJSSendsToUs(t *testing.T) {
	ctx := testCtx(t, 30*time.Second)
	n := xjtest.NewNetwork()
	us := newOurSide(t, n, bobJID)
	p := newSJSPeer(t, n, "alice@example.test/stanzajs", us.sig.LocalJID())
	p.sid, p.name = "c5342f3a-6865-4636-8980-902434894291", "0"

	data := make([]byte, 1<<20+123)
	rand.Read(data)
	sum := sha256.Sum256(data)
	opened := make(chan *webrtc.DataChannel, 1)
	ordered := true
	dc, err := p.pc.CreateDataChannel("filetransfer", &webrtc.DataChannelInit{Ordered: &ordered})
	if err != nil {
		t.Fatal(err)
	}
	dc.OnOpen(func() { opened <- dc })
	p.trickle(ctx, "initiator")
	offer, err := p.pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	p.describe(offer)
	// 1a: no initiator, no senders, no candidates, only <hash-used/>.
	p.send(ctx, fmt.Sprintf(`<jingle xmlns="urn:xmpp:jingle:1" sid="%s" action="session-initiate"><content creator="initiator" name="0"><description xmlns="urn:xmpp:jingle:apps:file-transfer:5"><file><date>2026-11-23T20:09:49.251Z</date><hash-used xmlns="urn:xmpp:hashes:2" algo="sha-256"/><name>file-transfer-src.bin</name><size>%d</size></file></description><transport xmlns="urn:xmpp:jingle:transports:ice-udp:1" ufrag="%s" pwd="%s"><fingerprint xmlns="urn:xmpp:jingle:apps:dtls:0" hash="sha-256" setup="actpass">%s</fingerprint><sctpmap xmlns="urn:xmpp:jingle:transports:dtls-sctp:1" number="5000" protocol="webrtc-datachannel"/></transport></content><group xmlns="urn:xmpp:jingle:apps:grouping:0" semantics="BUNDLE"><content name="0"/></group></jingle>`,
		p.sid, len(data), p.local.ufrag, p.local.pwd, p.local.fp))

	acc := p.next(ctx, "session-accept", "session-terminate")
	if acc.Action != "session-accept" || len(acc.Content) != 1 || !acc.Content[0].Transport.Set {
		t.Fatalf("our answer: %+v", acc)
	}
	tr := acc.Content[0].Transport.ice(t)
	if tr.SCTPMap == nil || tr.Fingerprint == nil || tr.Fingerprint.Setup != "active" {
		t.Fatalf("our answer's transport %+v: want the v0.3 form, setup active", tr)
	}
	if err := p.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: remoteSDPFor(tr)}); err != nil {
		t.Fatal(err)
	}
	// Our trickled candidates arrive as transport-info; feed them while
	// waiting for the channel.
	var ch *webrtc.DataChannel
	for ch == nil {
		select {
		case ch = <-opened:
		case j := <-p.in:
			if j.Action == "transport-info" {
				p.addCandidates(j)
			}
		case <-ctx.Done():
			t.Fatal("data channel did not open")
		}
	}
	for off := 0; off < len(data); off += 16 << 10 {
		if err := ch.Send(data[off:min(off+16<<10, len(data))]); err != nil {
			t.Fatal(err)
		}
	}
	// 1f: the checksum after the last byte was written.
	p.send(ctx, fmt.Sprintf(`<jingle xmlns="urn:xmpp:jingle:1" sid="%s" action="session-info"><checksum xmlns="urn:xmpp:jingle:apps:file-transfer:5" creator="initiator" name="0"><file><hash xmlns="urn:xmpp:hashes:2" algo="sha-256">%s</hash></file></checksum></jingle>`,
		p.sid, base64.StdEncoding.EncodeToString(sum[:])))

	var in *filetransfer.Transfer
	select {
	case in = <-us.in:
	case <-ctx.Done():
		t.Fatal("no incoming transfer")
	}
	select {
	case <-in.Done():
	case <-ctx.Done():
		t.Fatal("our receiver did not finish")
	}
	r := in.Result()
	if r.Err != nil || !r.Verified || r.SHA256 != hex.EncodeToString(sum[:]) || r.Transport != ice.NSICEUDP {
		t.Fatalf("we received %+v (err %v), want verified %x over ICE-UDP", r, r.Err, sum)
	}
	got, err := os.ReadFile(r.Path)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("file on disk: %d bytes, %v", len(got), err)
	}
	// StanzaJS expects the receiver to end the session (1g).
	term := p.next(ctx, "session-terminate")
	if term.Reason == nil || !bytes.Contains(term.Reason.Inner, []byte("success")) {
		t.Errorf("our session-terminate: %+v, want success", term)
	}
}

// TestStanzaJSReceivesFromUs: we send a file to a StanzaJS peer: the ice
// rung takes the form it advertises (ICE-UDP with <sctpmap/>), and it
// answers as captured (1e session-accept, 1c/1d trickle, 1g terminate).
func TestStanzaJSReceivesFromUs(t *testing.T) {
	ctx := testCtx(t, 30*time.Second)
	n := xjtest.NewNetwork()
	us := newOurSide(t, n, aliceJID)
	p := newSJSPeer(t, n, "bob@example.test/stanzajs", us.sig.LocalJID())

	path := filepath.Join(t.TempDir(), "report.bin")
	data := make([]byte, 1<<20+77)
	rand.Read(data)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	fs, err := us.sig.PeerFeatures(ctx, p.sig.LocalJID())
	if err != nil {
		t.Fatal(err)
	}
	ns := engine.ICENamespace(fs)
	if ns != ice.NSICEUDP {
		t.Fatalf("ice rung for StanzaJS: %q, want %s", ns, ice.NSICEUDP)
	}
	type sendResult struct {
		r   *filetransfer.Result
		err error
	}
	sent := make(chan sendResult, 1)
	go func() {
		r, err := us.app.Send(ctx, us.m, p.sig.LocalJID(), path, filetransfer.SendOptions{Transports: []string{ns}, Features: us.sig})
		sent <- sendResult{r, err}
	}()

	ini := p.next(ctx, "session-initiate")
	if len(ini.Content) != 1 || !ini.Content[0].Transport.Set || ini.Content[0].Description == nil {
		t.Fatalf("our offer: %+v", ini)
	}
	p.sid, p.name = ini.SID, ini.Content[0].Name
	tr := ini.Content[0].Transport.ice(t)
	if tr.SCTPMap == nil || tr.Fingerprint == nil || tr.Fingerprint.Setup != "actpass" {
		t.Fatalf("our offer's transport %+v: want the v0.3 form, setup actpass", tr)
	}
	var (
		mu     sync.Mutex
		got    bytes.Buffer
		closed = make(chan struct{})
		once   sync.Once
	)
	p.pc.OnDataChannel(func(dc *webrtc.DataChannel) {
		dc.OnMessage(func(m webrtc.DataChannelMessage) {
			mu.Lock()
			got.Write(m.Data)
			full := got.Len() >= len(data)
			mu.Unlock()
			if full {
				once.Do(func() { close(closed) })
			}
		})
	})
	if err := p.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: remoteSDPFor(tr)}); err != nil {
		t.Fatal(err)
	}
	p.trickle(ctx, "initiator")
	answer, err := p.pc.CreateAnswer(nil)
	if err != nil {
		t.Fatal(err)
	}
	p.describe(answer)
	// 1e: setup active, sctpmap echoed, no candidates (they follow in
	// transport-info, 1c/1d).
	p.send(ctx, fmt.Sprintf(`<jingle xmlns="urn:xmpp:jingle:1" sid="%s" action="session-accept"><content creator="initiator" name="%s"><transport xmlns="urn:xmpp:jingle:transports:ice-udp:1" ufrag="%s" pwd="%s"><fingerprint xmlns="urn:xmpp:jingle:apps:dtls:0" hash="sha-256" setup="active">%s</fingerprint><sctpmap xmlns="urn:xmpp:jingle:transports:dtls-sctp:1" number="5000" protocol="webrtc-datachannel"/></transport></content><group xmlns="urn:xmpp:jingle:apps:grouping:0" semantics="BUNDLE"><content name="%s"/></group></jingle>`,
		p.sid, p.name, p.local.ufrag, p.local.pwd, p.local.fp, p.name))

	// Our checksum session-info, and every byte.
	var checksum *sjsIQ
	for checksum == nil {
		select {
		case j := <-p.in:
			if j.Action == "transport-info" {
				p.addCandidates(j)
			}
			if j.Action == "session-info" && j.Checksum != nil {
				checksum = &j
			}
		case <-ctx.Done():
			t.Fatal("no checksum from us")
		}
	}
	select {
	case <-closed:
	case <-ctx.Done():
		t.Fatalf("stanzajs peer got %d of %d bytes", got.Len(), len(data))
	}
	mu.Lock()
	recvSum := sha256.Sum256(got.Bytes())
	mu.Unlock()
	found := false
	for _, h := range checksum.Checksum.Hashes {
		if h.Algo == "sha-256" && strings.TrimSpace(h.Value) == base64.StdEncoding.EncodeToString(recvSum[:]) {
			found = true
		}
	}
	if !found || recvSum != sum {
		t.Fatalf("checksum %+v does not match what the peer received", checksum.Checksum)
	}
	// 1g: the receiver ends the session once the hash matched.
	p.send(ctx, fmt.Sprintf(`<jingle xmlns="urn:xmpp:jingle:1" sid="%s" action="session-terminate"><reason><success/></reason></jingle>`, p.sid))
	var res sendResult
	select {
	case res = <-sent:
	case <-ctx.Done():
		t.Fatal("our Send did not return")
	}
	if res.err != nil || res.r.Transport != ice.NSICEUDP || res.r.Bytes != int64(len(data)) {
		t.Fatalf("our Send: %+v, %v", res.r, res.err)
	}
}

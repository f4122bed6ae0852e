package ice_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xjingle/xjingle/internal/xjtest"
	"github.com/xjingle/xjingle/jingle"
	"github.com/xjingle/xjingle/transports/ice"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	nsBlob   = "urn:xjingle:test:blob:0"
	aliceJID = "alice@example.test/a"
	bobJID   = "bob@example.test/b"
	carolJID = "carol@example.test/c"
)

// loopbackOpts confine ICE to 127.0.0.1: no other interface of the machine
// is ever used (the tests' network rule).
func loopbackOpts(extra ...ice.Option) []ice.Option {
	return append([]ice.Option{
		ice.WithInterfaces("lo"),
		ice.WithLoopback(),
		ice.WithIPFilter(func(ip net.IP) bool { return ip.Equal(net.IPv4(127, 0, 0, 1)) }),
		ice.WithUDP4Only(),
		ice.WithGatherWait(200 * time.Millisecond),
		ice.WithConnectTimeout(10 * time.Second),
	}, extra...)
}

func testCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// blobApp accepts every session, reads its content's stream to EOF and
// reports the SHA-256 and length of what it read.
type blobApp struct {
	results  chan blobResult
	sessions chan *jingle.Session
}

type blobResult struct {
	sum  [32]byte
	n    int64
	err  error
	conn net.Conn
}

func (a *blobApp) Namespace() string { return nsBlob }

func (a *blobApp) HandleSession(ctx context.Context, s *jingle.Session) {
	select {
	case a.sessions <- s:
	default:
	}
	if err := s.Accept(ctx); err != nil {
		a.results <- blobResult{err: err}
		return
	}
	c := s.Contents()[0]
	cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	conn, err := c.Conn(cctx)
	if err != nil {
		a.results <- blobResult{err: err}
		return
	}
	defer conn.Close()
	h := sha256.New()
	n, err := io.Copy(h, conn)
	var r blobResult
	copy(r.sum[:], h.Sum(nil))
	r.n, r.err, r.conn = n, err, conn
	a.results <- r
}

func blobDesc() jingle.Element {
	return jingle.Element{XMLName: xml.Name{Space: nsBlob, Local: "description"}}
}

// spyFactory wraps a factory: it records the links and may rewrite the
// peer's offer before the real transport sees it.
type spyFactory struct {
	jingle.TransportFactory
	tamper func(jingle.Element) jingle.Element
	mu     sync.Mutex
	links  []jingle.TransportLink
	ts     []jingle.Transport
	infos  atomic.Int32 // transport-infos handled
}

func (f *spyFactory) NewTransport(l jingle.TransportLink) (jingle.Transport, error) {
	f.mu.Lock()
	f.links = append(f.links, l)
	f.mu.Unlock()
	t, err := f.TransportFactory.NewTransport(l)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	f.ts = append(f.ts, t)
	f.mu.Unlock()
	return &spyTransport{Transport: t, f: f}, nil
}

func (f *spyFactory) lastTransport() *ice.Transport {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ts[len(f.ts)-1].(*ice.Transport)
}

func (f *spyFactory) lastLink() jingle.TransportLink {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.links[len(f.links)-1]
}

type spyTransport struct {
	jingle.Transport
	f *spyFactory
}

func (t *spyTransport) Info(ctx context.Context, el jingle.Element) error {
	t.f.infos.Add(1)
	return t.Transport.Info(ctx, el)
}

func (t *spyTransport) Accept(ctx context.Context, offer jingle.Element) (jingle.Element, error) {
	if t.f.tamper != nil {
		offer = t.f.tamper(offer)
	}
	return t.Transport.Accept(ctx, offer)
}

type peer struct {
	sig *xjtest.Signaller
	m   *jingle.Manager
	app *blobApp
	dc  *spyFactory // webrtc-datachannel:1 form
	iu  *spyFactory // ICE-UDP + sctpmap form
}

func newPeer(t *testing.T, n *xjtest.Network, j string, opts ...ice.Option) *peer {
	t.Helper()
	return newPeerWith(t, n, j, loopbackOpts(opts...))
}

// newPeerWith is newPeer with exactly opts (vnet tests, which need no
// loopback confinement).
func newPeerWith(t *testing.T, n *xjtest.Network, j string, opts []ice.Option) *peer {
	t.Helper()
	sig := n.Add(j)
	dcf, err := ice.NewFactory(opts...)
	if err != nil {
		t.Fatal(err)
	}
	iuf, err := ice.NewICEUDPFactory(opts...)
	if err != nil {
		t.Fatal(err)
	}
	p := &peer{sig: sig, app: &blobApp{results: make(chan blobResult, 4), sessions: make(chan *jingle.Session, 4)},
		dc: &spyFactory{TransportFactory: dcf}, iu: &spyFactory{TransportFactory: iuf}}
	m, err := jingle.NewManager(sig, jingle.WithApplication(p.app), jingle.WithTransport(p.dc), jingle.WithTransport(p.iu),
		jingle.WithLogger(testLogger(t).With("who", j)))
	if err != nil {
		t.Fatal(err)
	}
	p.m = m
	t.Cleanup(func() {
		m.Close()
		sig.Close()
	})
	return p
}

// start initiates a session from a to b over transport ns and returns
// alice's session and conn.
func start(t *testing.T, a, b *peer, ns string) (*jingle.Session, net.Conn) {
	t.Helper()
	ctx := testCtx(t, 20*time.Second)
	s, err := a.m.Initiate(ctx, b.sig.LocalJID(), jingle.ContentSpec{Name: "f", Senders: jingle.SendersInitiator, Description: blobDesc(), Transport: ns})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.WaitActive(ctx); err != nil {
		t.Fatal(err)
	}
	conn, err := s.Content("f").Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return s, conn
}

func transfer(t *testing.T, ns string, size int, opts ...ice.Option) (alice, bob *peer) {
	n := xjtest.NewNetwork()
	alice = newPeer(t, n, aliceJID, opts...)
	bob = newPeer(t, n, bobJID, opts...)
	s, conn := start(t, alice, bob, ns)
	defer conn.Close()

	if a, ok := conn.RemoteAddr().(*ice.Addr); !ok || !a.IP.IsLoopback() || a.Type != "host" {
		t.Fatalf("remote addr %v", conn.RemoteAddr())
	}
	h := sha256.New()
	src := io.TeeReader(io.LimitReader(rand.Reader, int64(size)), h)
	if _, err := io.CopyBuffer(conn, src, make([]byte, 256<<10)); err != nil {
		t.Fatalf("write: %v", err)
	}
	cw, ok := conn.(interface{ CloseWrite() error })
	if !ok {
		t.Fatal("conn has no CloseWrite")
	}
	if err := cw.CloseWrite(); err != nil {
		t.Fatalf("close write: %v", err)
	}
	var want [32]byte
	copy(want[:], h.Sum(nil))
	select {
	case r := <-bob.app.results:
		if r.err != nil || r.n != int64(size) || r.sum != want {
			t.Fatalf("bob read %d bytes (want %d), hash match %v, err %v", r.n, size, r.sum == want, r.err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("bob did not finish")
	}
	if err := s.Terminate(testCtx(t, 5*time.Second), jingle.Reason{Condition: jingle.ReasonSuccess}); err != nil {
		t.Fatal(err)
	}
	return alice, bob
}

func TestTransfer16MiB(t *testing.T) {
	alice, bob := transfer(t, ice.NSDataChannel, 16<<20)
	// Loopback gathering completes within the gather wait: all candidates
	// went in the offer and answer, none in transport-info.
	if a, b := alice.dc.infos.Load(), bob.dc.infos.Load(); a != 0 || b != 0 {
		t.Errorf("transport-infos %d %d in complete-candidates mode", a, b)
	}
}

func TestTransferSCTPMapForm(t *testing.T) { transfer(t, ice.NSICEUDP, 1<<20) }

// TestOnConnect: WithOnConnect reports the selected pair once per side,
// matching the conn's addresses (host candidates on loopback here).
func TestOnConnect(t *testing.T) {
	var mu sync.Mutex
	var got []ice.Addr
	hook := ice.WithOnConnect(func(local, remote *ice.Addr) {
		mu.Lock()
		defer mu.Unlock()
		if local != nil && remote != nil {
			got = append(got, *local, *remote)
		}
	})
	transfer(t, ice.NSDataChannel, 64<<10, hook)
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 4 {
		t.Fatalf("hook saw %+v, want one pair per side", got)
	}
	for _, a := range got {
		if a.Type != "host" || !a.IP.IsLoopback() || a.Port == 0 {
			t.Errorf("pair address %s, want a loopback host candidate", a.String())
		}
	}
	// Each side's local address is the other's remote one.
	if got[0].String() != got[3].String() || got[1].String() != got[2].String() {
		t.Errorf("pairs do not mirror: %v", got)
	}
}

// TestTransferTrickle: no gather wait, so offer and answer carry no
// candidates and every candidate travels in transport-info (XEP-0176 §5.5),
// some of them before the peer's description is known.
func TestTransferTrickle(t *testing.T) {
	for _, ns := range []string{ice.NSDataChannel, ice.NSICEUDP} {
		alice, bob := transfer(t, ns, 1<<20, ice.WithGatherWait(0))
		a, b := alice.dc.infos.Load()+alice.iu.infos.Load(), bob.dc.infos.Load()+bob.iu.infos.Load()
		if a == 0 || b == 0 {
			t.Errorf("%s: transport-infos %d %d, want trickle both ways", ns, a, b)
		}
	}
}

// flipFingerprint changes one hex digit of the fingerprint: the DTLS
// certificate the peer presents no longer matches what we were told.
func flipFingerprint(t *testing.T) func(jingle.Element) jingle.Element {
	return func(el jingle.Element) jingle.Element {
		dc, err := ice.ParseDataChannel(el)
		if err != nil {
			t.Errorf("tamper: %v", err)
			return el
		}
		v := []byte(dc.ICE.Fingerprint.Value)
		if v[0] == 'A' {
			v[0] = 'B'
		} else {
			v[0] = 'A'
		}
		dc.ICE.Fingerprint.Value = string(v)
		return dc.Element()
	}
}

func TestFingerprintMismatch(t *testing.T) {
	n := xjtest.NewNetwork()
	alice := newPeer(t, n, aliceJID, ice.WithConnectTimeout(4*time.Second))
	bob := newPeer(t, n, bobJID, ice.WithConnectTimeout(4*time.Second))
	bob.dc.tamper = flipFingerprint(t)
	ctx := testCtx(t, 20*time.Second)
	s, err := alice.m.Initiate(ctx, bob.sig.LocalJID(), jingle.ContentSpec{Name: "f", Senders: jingle.SendersInitiator, Description: blobDesc(), Transport: ice.NSDataChannel})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.WaitActive(ctx); err != nil {
		t.Fatal(err)
	}
	// Bob checks Alice's certificate against the (tampered) fingerprint:
	// his side must fail with ErrDTLS and never hand out a stream.
	select {
	case r := <-bob.app.results:
		if r.err == nil {
			t.Fatalf("bob got a stream despite a wrong fingerprint")
		}
		t.Logf("bob: %v", r.err)
		if !errors.Is(r.err, ice.ErrDTLS) {
			t.Fatalf("bob: %v, want ErrDTLS", r.err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("bob's conn neither failed nor succeeded")
	}
	// Alice never gets a working data channel either.
	conn, err := s.Content("f").Conn(testCtx(t, 8*time.Second))
	if err == nil {
		conn.Close()
		t.Fatal("alice got a stream though bob refused the DTLS peer")
	}
	t.Logf("alice: %v", err)
	s.Terminate(testCtx(t, 5*time.Second), jingle.Reason{Condition: jingle.ReasonSecurityError})
}

// hostileInfo sends el as a transport-info from alice's side of the
// session and returns bob's answer.
func hostileInfo(t *testing.T, alice *peer, el jingle.Element) error {
	t.Helper()
	return alice.dc.lastLink().SendTransportInfo(testCtx(t, 5*time.Second), el)
}

func candEl(attrs string) jingle.Element {
	raw := fmt.Sprintf(`<transport xmlns='%s'><transport xmlns='%s' ufrag='%s'>%s</transport></transport>`, ice.NSDataChannel, ice.NSICEUDP, "", attrs)
	el, err := jingle.ParseElement([]byte(raw))
	if err != nil {
		panic(err)
	}
	return el
}

func TestHostileTransportInfo(t *testing.T) {
	n := xjtest.NewNetwork()
	alice := newPeer(t, n, aliceJID)
	bob := newPeer(t, n, bobJID)
	s, conn := start(t, alice, bob, ice.NSDataChannel)
	defer conn.Close()

	// A malformed candidate: bad-request, and the session goes on.
	for _, bad := range []string{
		`<candidate component='1' foundation='1' ip='not-an-ip' port='1' priority='1' protocol='udp' type='host'/>`,
		`<candidate component='1' foundation='1' ip='127.0.0.1' port='99999' priority='1' protocol='udp' type='host'/>`,
		`<candidate component='1' foundation='1' ip='127.0.0.1' port='1' priority='1' protocol='udp' type='bogus'/>`,
		`<candidate foundation='1' ip='127.0.0.1' port='1' priority='1' protocol='udp' type='host'/>`,
	} {
		err := hostileInfo(t, alice, candEl(bad))
		var se *jingle.StanzaError
		if !errors.As(err, &se) || se.Condition != "bad-request" {
			t.Fatalf("%s: got %v, want bad-request", bad, err)
		}
	}
	// An absurd number of candidates in one element: refused, bounded.
	var many strings.Builder
	for i := range 1000 {
		fmt.Fprintf(&many, `<candidate component='1' foundation='%d' ip='127.0.0.1' port='%d' priority='1' protocol='udp' type='host'/>`, i+1, 1000+i)
	}
	if err := hostileInfo(t, alice, candEl(many.String())); err == nil {
		t.Fatal("1000 candidates accepted")
	}
	// Many valid transport-infos: the total is bounded too.
	var refused bool
	for i := 0; i < ice.MaxRemoteCandidates/ice.MaxCandidates+2 && !refused; i++ {
		var b strings.Builder
		for j := range ice.MaxCandidates {
			fmt.Fprintf(&b, `<candidate component='1' foundation='%d' ip='127.0.0.%d' port='%d' priority='1' protocol='udp' type='host'/>`, j+1, 2+i, 2000+j)
		}
		err := hostileInfo(t, alice, candEl(b.String()))
		if err != nil {
			if !errors.Is(err, jingle.ErrNotAcceptable) {
				t.Fatalf("flood: %v", err)
			}
			refused = true
		}
	}
	if !refused {
		t.Fatal("total candidates unbounded")
	}
	// A third JID naming the session: unknown-session (XEP-0166 §10).
	carol := n.Add(carolJID)
	defer carol.Close()
	payload := fmt.Sprintf(`<jingle xmlns='urn:xmpp:jingle:1' action='transport-info' sid='%s'><content creator='initiator' name='f'>%s</content></jingle>`,
		s.SID(), candEl(`<candidate component='1' foundation='1' ip='127.0.0.1' port='9' priority='1' protocol='udp' type='host'/>`).Bytes())
	if _, err := carol.SendIQ(testCtx(t, 5*time.Second), bob.sig.LocalJID(), "set", []byte(payload)); !errors.Is(err, jingle.ErrUnknownSession) {
		t.Fatalf("third party: %v", err)
	}

	// The session and its stream still work.
	msg := []byte("still alive")
	if _, err := conn.Write(msg); err != nil {
		t.Fatal(err)
	}
	if err := conn.(interface{ CloseWrite() error }).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-bob.app.results:
		if r.err != nil || r.n != int64(len(msg)) || r.sum != sha256.Sum256(msg) {
			t.Fatalf("after hostile infos: %d bytes, %v", r.n, r.err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no result")
	}
	if s.State() != jingle.StateActive {
		t.Fatalf("session state %v", s.State())
	}
	s.Terminate(testCtx(t, 5*time.Second), jingle.Reason{Condition: jingle.ReasonSuccess})
}

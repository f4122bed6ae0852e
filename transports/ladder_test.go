package transports_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/xml"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/xjingle/xjingle/ibb"
	"github.com/xjingle/xjingle/internal/xjtest"
	"github.com/xjingle/xjingle/jingle"
	"github.com/xjingle/xjingle/jingle/filetransfer"
	"github.com/xjingle/xjingle/socks5"
	"github.com/xjingle/xjingle/transports"
	"go.uber.org/goleak"
	"mellium.im/xmpp/jid"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var lo = netip.MustParseAddr("127.0.0.1")

// nsSilent is a transport that never carries a stream (a peer ignoring our
// candidates); nsOther one the responder does not support.
const (
	nsSilent = "urn:xjingle:test:silent"
	nsOther  = "urn:xjingle:test:other"
)

type silentFactory struct{ ns string }

func (f silentFactory) Namespace() string { return f.ns }
func (f silentFactory) NewTransport(jingle.TransportLink) (jingle.Transport, error) {
	return &silent{ns: f.ns, closed: make(chan struct{})}, nil
}

type silent struct {
	ns     string
	once   sync.Once
	closed chan struct{}
}

func (t *silent) el() jingle.Element {
	return jingle.Element{XMLName: xml.Name{Space: t.ns, Local: "transport"}}
}
func (t *silent) Offer(context.Context) (jingle.Element, error) { return t.el(), nil }
func (t *silent) Accept(context.Context, jingle.Element) (jingle.Element, error) {
	return t.el(), nil
}
func (t *silent) Accepted(context.Context, jingle.Element) error { return nil }
func (t *silent) Info(context.Context, jingle.Element) error     { return nil }
func (t *silent) Conn(ctx context.Context) (net.Conn, error) {
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-t.closed:
		return nil, errors.New("silent: closed")
	}
}
func (t *silent) Close() error { t.once.Do(func() { close(t.closed) }); return nil }

type side struct {
	jid   jid.JID
	sig   *xjtest.Signaller
	m     *jingle.Manager
	app   *filetransfer.App
	store *filetransfer.Store
	done  chan *filetransfer.Transfer
}

type sideOpts struct {
	socks5    []socks5.Option
	noSocks5  bool
	extra     []jingle.TransportFactory
	jingleOps []jingle.Option
	appOpts   []filetransfer.Option
}

func testLogger(t *testing.T, who string) *slog.Logger {
	if !testing.Verbose() {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("who", who)
}

func newSide(t *testing.T, n *xjtest.Network, j string, o sideOpts) *side {
	t.Helper()
	sig := n.Add(j)
	s := &side{jid: sig.LocalJID(), sig: sig, store: &filetransfer.Store{Dir: t.TempDir()}, done: make(chan *filetransfer.Transfer, 4)}
	log := testLogger(t, j)
	s.app = filetransfer.New(s.store, append([]filetransfer.Option{filetransfer.WithLogger(log), filetransfer.WithAcceptPolicy(filetransfer.AcceptAll),
		filetransfer.WithChecksumWait(100 * time.Millisecond),
		filetransfer.WithOnTransfer(func(tr *filetransfer.Transfer) { s.done <- tr })}, o.appOpts...)...)
	ih, err := ibb.NewHandler(sig)
	if err != nil {
		t.Fatal(err)
	}
	opts := []jingle.Option{jingle.WithLogger(log), jingle.WithApplication(s.app), jingle.WithTransport(ih.JingleTransport())}
	if !o.noSocks5 {
		f, err := socks5.NewFactory(append([]socks5.Option{socks5.WithAddresses(lo)}, o.socks5...)...)
		if err != nil {
			t.Fatal(err)
		}
		opts = append(opts, jingle.WithTransport(f))
	}
	for _, f := range o.extra {
		opts = append(opts, jingle.WithTransport(f))
	}
	m, err := jingle.NewManager(sig, append(opts, o.jingleOps...)...)
	if err != nil {
		t.Fatal(err)
	}
	s.m = m
	t.Cleanup(func() {
		m.Close()
		ih.Close()
		sig.Close()
	})
	return s
}

func (s *side) result(t *testing.T) *filetransfer.Result {
	t.Helper()
	select {
	case tr := <-s.done:
		select {
		case <-tr.Done():
			return tr.Result()
		case <-time.After(20 * time.Second):
		}
	case <-time.After(20 * time.Second):
	}
	t.Fatal("no transfer finished")
	return nil
}

func writeFile(t *testing.T, size int) (string, []byte) {
	t.Helper()
	data := make([]byte, size)
	rand.Read(data)
	path := filepath.Join(t.TempDir(), "f.bin")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path, data
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func namespaces(as []transports.Attempt) []string {
	var out []string
	for _, a := range as {
		out = append(out, a.Transport)
	}
	return out
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestLadder sends a file over the ladder in the situations it must
// handle, over the in-memory network and loopback only.
func TestLadder(t *testing.T) {
	refused := []socks5.Option{socks5.WithoutDirect()} // no candidate: candidate-error both ways
	cases := []struct {
		name       string
		alice, bob sideOpts
		rungs      []string
		want       string   // transport that carried the file
		wantTried  []string // rungs that failed, in order
		wantErr    error
		noFeatures bool // offer every rung, whatever the peer advertises
		// rungTimeout is the ladder's per-rung wait: short only where a
		// rung must time out, generous elsewhere (a loaded CI machine).
		rungTimeout time.Duration
	}{
		{name: "direct socks5", rungs: []string{socks5.NS, ibb.NSJingle}, want: socks5.NS},
		{
			name: "socks5 fails both ways, fallback to ibb", alice: sideOpts{socks5: refused}, bob: sideOpts{socks5: refused},
			rungs: []string{socks5.NS, ibb.NSJingle}, want: ibb.NSJingle, wantTried: []string{socks5.NS},
		},
		{
			name:  "peer never answers, rung timeout",
			alice: sideOpts{extra: []jingle.TransportFactory{silentFactory{nsSilent}}},
			bob:   sideOpts{extra: []jingle.TransportFactory{silentFactory{nsSilent}}},
			rungs: []string{nsSilent, ibb.NSJingle}, want: ibb.NSJingle, wantTried: []string{nsSilent},
			rungTimeout: 500 * time.Millisecond,
		},
		{
			name:  "rejected rung skipped",
			alice: sideOpts{socks5: refused, extra: []jingle.TransportFactory{silentFactory{nsOther}}},
			bob:   sideOpts{socks5: refused},
			rungs: []string{socks5.NS, nsOther, ibb.NSJingle}, want: ibb.NSJingle, wantTried: []string{socks5.NS, nsOther},
			noFeatures: true,
		},
		{
			name: "exhausted", alice: sideOpts{socks5: refused}, bob: sideOpts{socks5: refused},
			rungs: []string{socks5.NS}, wantTried: []string{socks5.NS}, wantErr: transports.ErrExhausted,
		},
		{
			name: "narrowed to the peer's features", bob: sideOpts{noSocks5: true},
			rungs: []string{socks5.NS, ibb.NSJingle}, want: ibb.NSJingle,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n := xjtest.NewNetwork()
			alice := newSide(t, n, "alice@example.test/a", tc.alice)
			bob := newSide(t, n, "bob@example.test/b", tc.bob)
			path, data := writeFile(t, 200<<10+3)
			rt := tc.rungTimeout
			if rt == 0 {
				rt = 10 * time.Second
			}
			opt := filetransfer.SendOptions{Transports: tc.rungs, RungTimeout: rt}
			if !tc.noFeatures {
				opt.Features = alice.sig
			}
			res, err := alice.app.Send(ctxT(t), alice.m, bob.jid, path, opt)
			if got := namespaces(res.Tried); !equal(got, tc.wantTried) {
				t.Errorf("tried %v, want %v (%+v)", got, tc.wantTried, res.Tried)
			}
			for _, a := range res.Tried {
				if a.Err == "" {
					t.Errorf("attempt %s without a reason", a.Transport)
				}
			}
			rr := bob.result(t)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("send: err %v, want %v", err, tc.wantErr)
				}
				if rr.Err == nil {
					t.Fatalf("receiver succeeded: %+v", rr)
				}
				return
			}
			if err != nil || !res.Verified || res.Transport != tc.want {
				t.Fatalf("send: %+v %v; want transport %s", res, err, tc.want)
			}
			got, _ := os.ReadFile(rr.Path)
			if rr.Err != nil || !rr.Verified || rr.Transport != tc.want || !bytes.Equal(got, data) {
				t.Fatalf("receive: %+v", rr)
			}
			if len(tc.wantTried) > 0 && len(rr.Tried) == 0 {
				t.Errorf("receiver did not report the replaced transport: %+v", rr)
			}
		})
	}
}

// TestResponderWaitsForReplace: the responder's SOCKS5 fails first (it sent
// candidate-error and got one); it must not end the session but follow the
// initiator's transport-replace, even when that comes late.
func TestResponderWaitsForReplace(t *testing.T) {
	n := xjtest.NewNetwork()
	refused := []socks5.Option{socks5.WithoutDirect()}
	alice := newSide(t, n, "alice@example.test/a", sideOpts{socks5: refused})
	bob := newSide(t, n, "bob@example.test/b", sideOpts{socks5: refused})
	// Alice's ladder has only socks5: she sees the failure, and then
	// replaces by hand, after a delay the responder must sit out.
	app := newRawInitiator(t, alice)
	s := app.initiate(t, bob.jid)
	c := s.Contents()[0]
	if _, err := c.Conn(ctxT(t)); !errors.Is(err, jingle.ErrTransportFailed) {
		t.Fatalf("initiator conn: %v, want ErrTransportFailed", err)
	}
	select {
	case tr := <-bob.done:
		select {
		case <-tr.Done():
			t.Fatalf("responder gave up before the replace: %+v", tr.Result())
		case <-time.After(300 * time.Millisecond):
		}
		bob.done <- tr
	case <-time.After(10 * time.Second):
		t.Fatal("responder did not start")
	}
	if err := s.ReplaceTransport(ctxT(t), c.Name, ibb.NSJingle); err != nil {
		t.Fatal(err)
	}
	conn, err := c.Conn(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	payload := bytes.Repeat([]byte("x"), app.size)
	if _, err := conn.Write(payload); err != nil {
		t.Fatal(err)
	}
	conn.Close()
	rr := bob.result(t)
	if rr.Bytes != int64(app.size) || rr.Transport != ibb.NSJingle {
		t.Fatalf("receiver: %+v", rr)
	}
	_ = s.Terminate(ctxT(t), jingle.Reason{})
}

// rawInitiator offers a file with a hand-driven session (no App.Send), to
// control the timing of the transport-replace.
type rawInitiator struct {
	s    *side
	size int
}

func newRawInitiator(t *testing.T, s *side) *rawInitiator { return &rawInitiator{s: s, size: 1000} }

func (r *rawInitiator) initiate(t *testing.T, peer jid.JID) *jingle.Session {
	t.Helper()
	d := filetransfer.Description{File: filetransfer.File{Name: "late.bin", Size: int64(r.size), HasSize: true}}
	s, err := r.s.m.Initiate(ctxT(t), peer, jingle.ContentSpec{
		Name: "f", Senders: jingle.SendersInitiator, Description: d.Element(), Transport: socks5.NS,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.WaitActive(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestFilter(t *testing.T) {
	got := transports.Filter([]string{"a", "b", "c"}, []string{"c", "x", "a"})
	if !equal(got, []string{"a", "c"}) {
		t.Fatalf("Filter: %v", got)
	}
	l := transports.NewLadder([]string{"a", "", "b", "a"})
	if !equal(l.Rungs(), []string{"a", "b"}) || l.First() != "a" {
		t.Fatalf("NewLadder: %v", l.Rungs())
	}
}

func TestForPeer(t *testing.T) {
	n := xjtest.NewNetwork()
	a, b := n.Add("a@x.test/1"), n.Add("b@x.test/1")
	defer a.Close()
	defer b.Close()
	b.AddFeature("urn:two")
	l := transports.NewLadder([]string{"urn:one", "urn:two"})
	nl, err := l.ForPeer(context.Background(), a, b.LocalJID())
	if err != nil || !equal(nl.Rungs(), []string{"urn:two"}) {
		t.Fatalf("ForPeer: %v %v", nl.Rungs(), err)
	}
	if _, err := transports.NewLadder([]string{"urn:one"}).ForPeer(context.Background(), a, b.LocalJID()); !errors.Is(err, transports.ErrNoCommonTransport) {
		t.Fatalf("ForPeer without common transport: %v", err)
	}
	// An unreachable peer: the ladder stays whole, the error says why.
	nl, err = l.ForPeer(context.Background(), a, jid.MustParse("c@x.test/1"))
	if err == nil || !equal(nl.Rungs(), l.Rungs()) {
		t.Fatalf("ForPeer, unknown peer: %v %v", nl.Rungs(), err)
	}
}

func TestForSize(t *testing.T) {
	l := transports.NewLadder([]string{"urn:small", "urn:big"}, transports.WithSizeLimit("urn:small", 100))
	for _, tc := range []struct {
		size int64
		want []string
	}{
		{0, []string{"urn:small", "urn:big"}},
		{100, []string{"urn:small", "urn:big"}},
		{101, []string{"urn:big"}},
		{-1, []string{"urn:big"}}, // unknown size: limited rungs are skipped
	} {
		nl, err := l.ForSize(tc.size)
		if err != nil || !equal(nl.Rungs(), tc.want) || len(nl.Tried()) != 0 {
			t.Errorf("ForSize(%d): %v %v, want %v", tc.size, nl.Rungs(), err, tc.want)
		}
	}
	only := transports.NewLadder([]string{"urn:small"}, transports.WithSizeLimit("urn:small", 100))
	if _, err := only.ForSize(101); !errors.Is(err, transports.ErrTooLarge) {
		t.Fatalf("ForSize over the only rung's limit: %v", err)
	}
	ctx := transports.WithStreamSize(context.Background(), 42)
	if n, ok := transports.StreamSize(ctx); !ok || n != 42 {
		t.Fatalf("StreamSize: %d %v", n, ok)
	}
	if _, ok := transports.StreamSize(context.Background()); ok {
		t.Fatal("StreamSize without a size")
	}
}

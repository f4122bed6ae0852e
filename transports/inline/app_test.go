package inline_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/xjingle/xjingle/ibb"
	"github.com/xjingle/xjingle/internal/xjtest"
	"github.com/xjingle/xjingle/jingle"
	"github.com/xjingle/xjingle/jingle/filetransfer"
	"github.com/xjingle/xjingle/transports"
	"github.com/xjingle/xjingle/transports/inline"
	"mellium.im/xmpp/jid"
)

// side is one account on the in-memory network with the file-transfer
// application, IBB and (unless max is 0) the inline transport.
type side struct {
	jid  jid.JID
	sig  *xjtest.Signaller
	m    *jingle.Manager
	app  *filetransfer.App
	done chan *filetransfer.Transfer
	max  int64
}

func newSide(t *testing.T, n *xjtest.Network, j string, max int64, extra ...jingle.TransportFactory) *side {
	t.Helper()
	sig := n.Add(j)
	s := &side{jid: sig.LocalJID(), sig: sig, done: make(chan *filetransfer.Transfer, 4), max: max}
	s.app = filetransfer.New(&filetransfer.Store{Dir: t.TempDir()},
		filetransfer.WithAcceptPolicy(filetransfer.AcceptAll),
		filetransfer.WithChecksumWait(100*time.Millisecond),
		filetransfer.WithOnTransfer(func(tr *filetransfer.Transfer) { s.done <- tr }))
	ih, err := ibb.NewHandler(sig)
	if err != nil {
		t.Fatal(err)
	}
	opts := []jingle.Option{jingle.WithApplication(s.app), jingle.WithTransport(ih.JingleTransport())}
	if max > 0 {
		f, err := inline.NewFactory(inline.WithMaxSize(max))
		if err != nil {
			t.Fatal(err)
		}
		opts = append(opts, jingle.WithTransport(f))
	}
	for _, f := range extra {
		opts = append(opts, jingle.WithTransport(f))
	}
	m, err := jingle.NewManager(sig, opts...)
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

// sendOpts is what the engine passes: inline first, limited to our max.
func (s *side) sendOpts(rungs ...string) filetransfer.SendOptions {
	if len(rungs) == 0 {
		rungs = []string{inline.NS, ibb.NSJingle}
	}
	return filetransfer.SendOptions{
		Transports: rungs, Features: s.sig, RungTimeout: 2 * time.Second,
		SizeLimits: map[string]int64{inline.NS: s.max},
	}
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

func tried(as []transports.Attempt) []string {
	var out []string
	for _, a := range as {
		out = append(out, a.Transport)
	}
	return out
}

// TestSendFile sends files through App.Send with the engine's policy
// (inline first, for files up to the limit, if the peer has it) and checks
// the transport that carried each, the rungs tried, and that the receiver's
// safe path (size and SHA-256 checked, final name) saved the exact bytes.
func TestSendFile(t *testing.T) {
	cases := []struct {
		name       string
		size       int
		aMax, bMax int64
		want       string
		wantTried  []string
	}{
		{name: "5 KiB inline", size: 5 << 10, aMax: 8192, bMax: 8192, want: inline.NS},
		{name: "empty file inline", size: 0, aMax: 8192, bMax: 8192, want: inline.NS},
		{name: "receiver lacks inline", size: 5 << 10, aMax: 8192, bMax: 0, want: ibb.NSJingle},
		{name: "too large for inline, skipped", size: 8193, aMax: 8192, bMax: 8192, want: ibb.NSJingle},
		// bob accepts 1 KiB only: the answer lowers max-size, the
		// writer's Conn fails, the ladder replaces inline with IBB.
		{name: "peer's limit smaller", size: 5 << 10, aMax: 8192, bMax: 1024, want: ibb.NSJingle, wantTried: []string{inline.NS}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n := xjtest.NewNetwork()
			alice := newSide(t, n, "alice@example.test/a", tc.aMax)
			bob := newSide(t, n, "bob@example.test/b", tc.bMax)
			path, data := writeFile(t, tc.size)
			res, err := alice.app.Send(ctxT(t), alice.m, bob.jid, path, alice.sendOpts())
			if err != nil || !res.Verified || res.Transport != tc.want {
				t.Fatalf("send: %+v %v; want transport %s", res, err, tc.want)
			}
			if got := tried(res.Tried); !slicesEqual(got, tc.wantTried) {
				t.Errorf("tried %v, want %v", got, tc.wantTried)
			}
			rr := bob.result(t)
			sum := sha256.Sum256(data)
			got, _ := os.ReadFile(rr.Path)
			if rr.Err != nil || !rr.Verified || rr.Transport != tc.want || !bytes.Equal(got, data) ||
				rr.SHA256 != hex.EncodeToString(sum[:]) || rr.Bytes != int64(tc.size) {
				t.Fatalf("receive: %+v (%d bytes on disk)", rr, len(got))
			}
		})
	}
}

func slicesEqual(a, b []string) bool {
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

// With only inline, a file over the limit fails before anything is sent.
func TestOnlyInlineTooLarge(t *testing.T) {
	n := xjtest.NewNetwork()
	alice := newSide(t, n, "alice@example.test/a", 8192)
	bob := newSide(t, n, "bob@example.test/b", 8192)
	path, _ := writeFile(t, 8193)
	res, err := alice.app.Send(ctxT(t), alice.m, bob.jid, path, alice.sendOpts(inline.NS))
	if !errors.Is(err, transports.ErrTooLarge) || res.Err == nil {
		t.Fatalf("send: %+v %v; want ErrTooLarge", res, err)
	}
	if len(bob.done) != 0 {
		t.Fatal("the receiver saw a transfer")
	}
}

// The receiver rejects the transport-replace to inline (it does not
// support it; the sender did not ask disco): the ladder records it and
// moves on to IBB, as for any rung.
func TestInlineRejected(t *testing.T) {
	n := xjtest.NewNetwork()
	alice := newSide(t, n, "alice@example.test/a", 8192, silentFactory{})
	bob := newSide(t, n, "bob@example.test/b", 0, silentFactory{})
	path, data := writeFile(t, 3000)
	opt := alice.sendOpts(nsSilent, inline.NS, ibb.NSJingle)
	opt.Features = nil
	opt.RungTimeout = 300 * time.Millisecond
	res, err := alice.app.Send(ctxT(t), alice.m, bob.jid, path, opt)
	if err != nil || res.Transport != ibb.NSJingle {
		t.Fatalf("send: %+v %v", res, err)
	}
	if got := tried(res.Tried); !slicesEqual(got, []string{nsSilent, inline.NS}) {
		t.Fatalf("tried %v", res.Tried)
	}
	rr := bob.result(t)
	got, _ := os.ReadFile(rr.Path)
	if rr.Err != nil || !bytes.Equal(got, data) {
		t.Fatalf("receive: %+v", rr)
	}
}

// nsSilent is a transport that never carries a stream (a peer ignoring
// our candidates): its rung times out.
const nsSilent = "urn:xjingle:test:silent"

type silentFactory struct{}

func (silentFactory) Namespace() string { return nsSilent }
func (silentFactory) NewTransport(jingle.TransportLink) (jingle.Transport, error) {
	return &silent{closed: make(chan struct{})}, nil
}

type silent struct {
	once   sync.Once
	closed chan struct{}
}

func (t *silent) el() jingle.Element {
	return jingle.Element{XMLName: xml.Name{Space: nsSilent, Local: "transport"}}
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

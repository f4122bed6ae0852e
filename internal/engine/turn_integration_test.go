package engine_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xjingle/xjingle/client"
	"github.com/xjingle/xjingle/internal/engine"
	"github.com/xjingle/xjingle/internal/testbed"
	"github.com/xjingle/xjingle/jingle/filetransfer"
	"github.com/xjingle/xjingle/relay"
	"github.com/xjingle/xjingle/transports/ice"
	"go.uber.org/goleak"
	"mellium.im/xmpp/jid"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const turnSecret = "xjingle-test-secret"

// startRelay runs xjingle's TURN server in-process on a UDP loopback port.
// Relaying to loopback is denied by default (relay.DefaultDeniedPeers); the
// test allows 127.0.0.0/8 explicitly, since both peers' relayed addresses
// are on 127.0.0.1.
func startRelay(t *testing.T) *relay.Server {
	t.Helper()
	srv, err := relay.New(relay.Config{
		Listen:              []relay.Listen{{Addr: "127.0.0.1:0"}},
		Secrets:             []string{turnSecret},
		Peers:               relay.PeerPolicy{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}},
		SocketsPerUDPListen: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(context.Background()) }()
	t.Cleanup(func() {
		srv.Close()
		<-done
	})
	return srv
}

// pathRecorder collects the selected candidate pairs ice.WithOnConnect
// reports.
type pathRecorder struct {
	mu    sync.Mutex
	pairs [][2]ice.Addr
}

func (r *pathRecorder) record(local, remote *ice.Addr) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var p [2]ice.Addr
	if local != nil {
		p[0] = *local
	}
	if remote != nil {
		p[1] = *remote
	}
	r.pairs = append(r.pairs, p)
}

func (r *pathRecorder) get() [][2]ice.Addr {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([][2]ice.Addr(nil), r.pairs...)
}

// peers are two engines on the test bed: alice sends, bob accepts every
// offer into inbox and reports each incoming transfer on incoming.
type peers struct {
	alice, bob *engine.Engine
	inbox      string
	incoming   chan *filetransfer.Transfer
}

func newPeers(t *testing.T, bed *testbed.Bed, name string, base engine.Config) *peers {
	t.Helper()
	a := bed.AddUser(t, "alice-"+name)
	b := bed.AddUser(t, "bob-"+name)
	bed.Subscribe(t, a.JID, b.JID)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p := &peers{inbox: t.TempDir(), incoming: make(chan *filetransfer.Transfer, 4)}
	mk := func(acct testbed.Account, store *filetransfer.Store, opts ...filetransfer.Option) *engine.Engine {
		cfg := base
		cfg.Client = client.Config{JID: jid.MustParse(acct.JID), Password: acct.Password, Server: bed.C2SAddr, CAFile: bed.CAFile}
		cfg.Store = store
		cfg.AppOpts = opts
		cfg.NoProxy = true
		e, err := engine.New(ctx, cfg)
		if err != nil {
			t.Fatalf("engine %s: %v", acct.JID, err)
		}
		t.Cleanup(func() { e.Close() })
		return e
	}
	p.bob = mk(b, &filetransfer.Store{Dir: p.inbox},
		filetransfer.WithAcceptPolicy(filetransfer.AcceptAll),
		filetransfer.WithOnTransfer(func(tr *filetransfer.Transfer) {
			if tr.Direction() == filetransfer.Incoming {
				select {
				case p.incoming <- tr:
				default:
				}
			}
		}))
	p.alice = mk(a, nil)
	return p
}

// send sends path from alice to bob over the ladder names and returns both
// sides' results.
func (p *peers) send(ctx context.Context, t *testing.T, path string, names []string, rung time.Duration) (sent, got *filetransfer.Result) {
	t.Helper()
	order, err := engine.ParseTransports(names)
	if err != nil {
		t.Fatal(err)
	}
	to, err := p.alice.ResolvePeer(ctx, p.bob.Client.LocalJID().String())
	if err != nil {
		t.Fatal(err)
	}
	opt := p.alice.SendOptions(ctx, to, order)
	opt.RungTimeout = rung
	sent, err = p.alice.App.Send(ctx, p.alice.Manager, to, path, opt)
	if err != nil {
		t.Fatalf("send: %v (%+v)", err, sent)
	}
	select {
	case tr := <-p.incoming:
		select {
		case <-tr.Done():
		case <-ctx.Done():
			t.Fatal("receiver did not finish")
		}
		got = tr.Result()
	case <-ctx.Done():
		t.Fatal("no incoming transfer")
	}
	return sent, got
}

func writeRandom(t *testing.T, size int64) (path, sum string) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "payload.bin")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.CopyN(io.MultiWriter(f, h), rand.Reader, size); err != nil {
		t.Fatal(err)
	}
	return path, hex.EncodeToString(h.Sum(nil))
}

// TestICEThroughTURN needs Prosody (the test bed); it runs the ICE rung
// against xjingle's own relay with the credentials Prosody hands out.
func TestICEThroughTURN(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	srv := startRelay(t)
	relayAddr := srv.UDPAddrs()[0].String()
	bed := testbed.Start(t, testbed.WithTURN(relayAddr, turnSecret), testbed.WithoutProxy65())

	// Issue 4/5: a file transfer forced through the TURN relay (ICE
	// transport policy "relay", RFC 8445 §5.1.1 gathering of relayed
	// candidates only), the relay found and its REST credentials obtained
	// from Prosody by XEP-0215 (engine asks for urn:xmpp:extdisco:2
	// services; nothing is configured by hand here).
	t.Run("relay-only", func(t *testing.T) {
		const size = 16 << 20
		var paths pathRecorder
		p := newPeers(t, bed, "relay", engine.Config{
			Interfaces: []string{"lo"},
			ICEOptions: []ice.Option{ice.WithRelayOnly(), ice.WithOnConnect(paths.record)},
		})
		path, sum := writeRandom(t, size)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		sent, got := p.send(ctx, t, path, []string{"ice"}, 0)
		for who, r := range map[string]*filetransfer.Result{"sender": sent, "receiver": got} {
			if r.Err != nil || !r.Verified || r.SHA256 != sum || r.Bytes != size || r.Transport != ice.NSDataChannel {
				t.Errorf("%s: %+v (err %v), want %d bytes verified %s over %s", who, r, r.Err, size, sum, ice.NSDataChannel)
			}
		}
		pairs := paths.get()
		if len(pairs) != 2 { // one data channel opened on each side
			t.Errorf("selected pairs: %+v, want one per side", pairs)
		}
		for _, pr := range pairs {
			if pr[0].Type != "relay" || pr[1].Type != "relay" {
				t.Errorf("selected pair %s -> %s, want relay on both ends", pr[0].String(), pr[1].String())
			}
		}
		if n := counter(t, srv, "xjingle_relay_allocations_total"); n < 2 {
			t.Errorf("relay counted %v allocations, want at least 2 (one per peer)", n)
		}
		if n := counter(t, srv, "xjingle_relay_relayed_bytes_total", "direction", "client_to_peer"); n < size {
			t.Errorf("relay relayed %v bytes client->peer, want at least the file's %d", n, size)
		}
		if n := counter(t, srv, "xjingle_relay_auth_failures_total"); n != 0 {
			t.Errorf("relay counted %v auth failures with Prosody's credentials", n)
		}
	})

	// Issue 4: ICE failing falls back down the ladder with
	// transport-replace (XEP-0260 §2.7): relay-only with no TURN server
	// gathers no candidate at all, so the ICE rung fails at its connect
	// timeout and the file goes over IBB.
	t.Run("fallback", func(t *testing.T) {
		const size = 256 << 10
		var paths pathRecorder
		p := newPeers(t, bed, "fallback", engine.Config{
			Interfaces:         []string{"lo"},
			NoExternalServices: true,
			ICEOptions:         []ice.Option{ice.WithRelayOnly(), ice.WithConnectTimeout(2 * time.Second), ice.WithOnConnect(paths.record)},
		})
		path, sum := writeRandom(t, size)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		start := time.Now()
		sent, got := p.send(ctx, t, path, []string{"ice,ibb"}, 20*time.Second)
		for who, r := range map[string]*filetransfer.Result{"sender": sent, "receiver": got} {
			if r.Err != nil || !r.Verified || r.SHA256 != sum || r.Transport != engine.Rungs["ibb"] {
				t.Errorf("%s: %+v (err %v), want verified %s over ibb", who, r, r.Err, sum)
			}
		}
		if len(sent.Tried) != 1 || sent.Tried[0].Transport != ice.NSDataChannel || sent.Tried[0].Err == "" {
			t.Errorf("sender tried %+v, want the ice rung with a reason", sent.Tried)
		} else {
			t.Logf("ice rung failed with: %s", sent.Tried[0].Err)
		}
		// The ICE failure, not the 20 s rung timeout, moved the ladder on.
		if d := time.Since(start); d > 15*time.Second {
			t.Errorf("fallback took %v; the ICE connect timeout is 2 s", d)
		}
		if pairs := paths.get(); len(pairs) != 0 {
			t.Errorf("a data channel opened with no candidates: %+v", pairs)
		}
	})
}

// counter reads a counter from the relay's registry, summing the series that
// carry the given label pairs.
func counter(t *testing.T, srv *relay.Server, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := srv.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, lp := range m.GetLabel() {
					if lp.GetName() == labels[i] && strings.EqualFold(lp.GetValue(), labels[i+1]) {
						found = true
					}
				}
				if !found {
					continue next
				}
			}
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}

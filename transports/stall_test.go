package transports_test

import (
	"context"
	"encoding/xml"
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xjingle/xjingle/internal/xjtest"
	"github.com/xjingle/xjingle/jingle"
	"github.com/xjingle/xjingle/jingle/filetransfer"
	"github.com/xjingle/xjingle/socks5"
	"mellium.im/xmpp/jid"
)

const stallProxyJID = "proxy.example.test"

// stallingProxy is a XEP-0065 proxy on loopback that relays only the first
// relay bytes of each direction of an activated stream and then neither
// reads nor writes: the stuck tail Prosody 0.12's mod_proxy65 shows under
// its epoll backend, made deterministic.
type stallingProxy struct {
	l     net.Listener
	sig   *xjtest.Signaller
	relay int64
	quit  chan struct{}
	wg    sync.WaitGroup

	mu    sync.Mutex
	byDA  map[string][]net.Conn
	conns []net.Conn
}

func newStallingProxy(t *testing.T, n *xjtest.Network, relay int64) *stallingProxy {
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &stallingProxy{l: l, sig: n.Add(stallProxyJID), relay: relay, quit: make(chan struct{}), byDA: map[string][]net.Conn{}}
	p.sig.HandleIQ(xml.Name{Space: socks5.NSBytestreams, Local: "query"}, p.activate)
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			p.conns = append(p.conns, c)
			p.mu.Unlock()
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				// Register in accept, before the reply goes out: the
				// client may activate as soon as it reads it.
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				socks5.ServerHandshake(ctx, c, func(da string) bool {
					p.mu.Lock()
					p.byDA[da] = append(p.byDA[da], c)
					p.mu.Unlock()
					return true
				})
				cancel()
			}()
		}
	}()
	t.Cleanup(func() {
		close(p.quit)
		l.Close()
		p.sig.Close()
		p.mu.Lock()
		for _, c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

func (p *stallingProxy) streamHost() socks5.StreamHost {
	ap := netip.MustParseAddrPort(p.l.Addr().String())
	return socks5.StreamHost{JID: jid.MustParse(stallProxyJID), Host: "127.0.0.1", Port: ap.Port()}
}

func (p *stallingProxy) activate(iq *jingle.IQ, reply jingle.ReplyFunc) {
	sid, target, err := socks5.ParseActivate(iq.Payload)
	if err != nil {
		reply(nil, jingle.ErrBadRequest)
		return
	}
	da := socks5.DstAddr(sid, iq.From, target) // XEP-0065 §6.3.5
	p.mu.Lock()
	cs := p.byDA[da]
	if len(cs) != 2 {
		p.mu.Unlock()
		reply(nil, jingle.NewStanzaError(jingle.ErrorTypeCancel, "not-allowed", ""))
		return
	}
	p.wg.Add(2)
	p.mu.Unlock()
	relay := func(dst, src net.Conn) {
		defer p.wg.Done()
		io.CopyN(dst, src, p.relay)
		<-p.quit // the tail stays here
	}
	go relay(cs[0], cs[1])
	go relay(cs[1], cs[0])
	reply(nil, nil)
}

// TestProxyStalledTail: through a proxy that keeps the last 4 KiB, the
// receiver notices that no byte came for its stall timeout while the file
// is incomplete and fails with an error that names the proxy
// (socks5.ErrStalled, filetransfer.ErrTimeout); the sender learns it from the
// receiver's session-terminate instead of hanging. Without the receiver's
// verdict, the sender's own confirm wait ends it (ErrUnconfirmed).
func TestProxyStalledTail(t *testing.T) {
	const size, tail = 1 << 20, 4 << 10
	const stall = time.Second
	for _, tc := range []struct {
		name               string
		bobIdle, aliceWait time.Duration
		wantBob, wantAlice error
	}{
		{"receiver detects", stall, time.Minute, socks5.ErrStalled, filetransfer.ErrPeerGone},
		{"silent receiver, sender's bound", time.Minute, stall, filetransfer.ErrTimeout, filetransfer.ErrUnconfirmed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := xjtest.NewNetwork()
			px := newStallingProxy(t, n, size-tail)
			s5 := []socks5.Option{socks5.WithoutDirect(), socks5.WithProxy(px.streamHost())}
			alice := newSide(t, n, "alice@example.test/a", sideOpts{socks5: s5,
				appOpts: []filetransfer.Option{filetransfer.WithConfirmWait(tc.aliceWait)}})
			bob := newSide(t, n, "bob@example.test/b", sideOpts{socks5: s5,
				appOpts: []filetransfer.Option{filetransfer.WithIdleTimeout(tc.bobIdle)}})
			path, _ := writeFile(t, size)
			start := time.Now()
			res, err := alice.app.Send(ctxT(t), alice.m, bob.jid, path, filetransfer.SendOptions{Transports: []string{socks5.NS}})
			took := time.Since(start)
			rr := bob.result(t)
			t.Logf("sender: %v after %v; receiver: %v", err, took, rr.Err)
			if !errors.Is(err, tc.wantAlice) || res.Verified {
				t.Errorf("sender: %v (verified %v), want %v", err, res.Verified, tc.wantAlice)
			}
			if !errors.Is(rr.Err, tc.wantBob) || rr.Path != "" {
				t.Errorf("receiver: %v (path %q), want %v and nothing stored", rr.Err, rr.Path, tc.wantBob)
			}
			if errors.Is(tc.wantBob, socks5.ErrStalled) {
				if !errors.Is(rr.Err, filetransfer.ErrTimeout) || !strings.Contains(rr.Err.Error(), stallProxyJID) {
					t.Errorf("receiver error %q should be a timeout naming the proxy %s", rr.Err, stallProxyJID)
				}
				if rr.Bytes != size-tail {
					t.Errorf("receiver got %d bytes, want the %d relayed", rr.Bytes, size-tail)
				}
			}
			if took > 10*time.Second {
				t.Errorf("sender took %v with a %v stall bound", took, stall)
			}
		})
	}
}

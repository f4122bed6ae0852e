package ice_test

import (
	"context"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/xjingle/xjingle/jingle"
	"github.com/xjingle/xjingle/transports/ice"
	"golang.org/x/net/nettest"
	"mellium.im/xmpp/jid"
)

// fakeLink connects two transports without a Manager: SendTransportInfo
// hands the element to the other side's Info.
type fakeLink struct {
	role  jingle.Role
	mu    sync.Mutex
	other jingle.Transport
}

func (l *fakeLink) SID() string                 { return "sid" }
func (l *fakeLink) ContentName() string         { return "c" }
func (l *fakeLink) Local() jid.JID              { return jid.MustParse(aliceJID) }
func (l *fakeLink) Peer() jid.JID               { return jid.MustParse(bobJID) }
func (l *fakeLink) Initiator() jid.JID          { return jid.MustParse(aliceJID) }
func (l *fakeLink) Role() jingle.Role           { return l.role }
func (l *fakeLink) Signaller() jingle.Signaller { return nil }
func (l *fakeLink) Logger() *slog.Logger        { return slog.New(slog.DiscardHandler) }
func (l *fakeLink) SendTransportInfo(ctx context.Context, el jingle.Element) error {
	l.mu.Lock()
	o := l.other
	l.mu.Unlock()
	return o.Info(ctx, el)
}

// pair negotiates two transports directly and returns both conns.
func pair(ctx context.Context, opts ...ice.Option) (c1, c2 net.Conn, stop func(), err error) {
	f, err := ice.NewFactory(loopbackOpts(opts...)...)
	if err != nil {
		return nil, nil, nil, err
	}
	la, lb := &fakeLink{role: jingle.RoleInitiator}, &fakeLink{role: jingle.RoleResponder}
	ta, _ := f.NewTransport(la)
	tb, _ := f.NewTransport(lb)
	la.other, lb.other = tb, ta
	stop = func() {
		ta.Close()
		tb.Close()
	}
	offer, err := ta.Offer(ctx)
	if err == nil {
		var answer jingle.Element
		if answer, err = tb.Accept(ctx, offer); err == nil {
			err = ta.Accepted(ctx, answer)
		}
	}
	if err == nil {
		c1, err = ta.Conn(ctx)
	}
	if err == nil {
		c2, err = tb.Conn(ctx)
	}
	if err != nil {
		stop()
		return nil, nil, nil, err
	}
	return c1, c2, stop, nil
}

// TestNetConn runs x/net's net.Conn conformance suite on a Conn pair.
func TestNetConn(t *testing.T) {
	nettest.TestConn(t, func() (net.Conn, net.Conn, func(), error) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		return pair(ctx)
	})
}

// TestMemoryFlat: a writer much faster than the reader is held back by
// the buffered-amount high-water mark, so what sits in SCTP stays bounded.
func TestBackpressure(t *testing.T) {
	ctx := testCtx(t, 20*time.Second)
	c1, c2, stop, err := pair(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	// Nobody reads c2: writes must block (deadline), not buffer 64 MiB.
	c1.SetWriteDeadline(time.Now().Add(2 * time.Second))
	n, err := c1.Write(make([]byte, 64<<20))
	if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
		t.Fatalf("write to a stalled reader: %d bytes, %v", n, err)
	}
	if n > 8<<20 {
		t.Fatalf("%d bytes accepted with no reader", n)
	}
	_ = c2
}

package socks5

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/xjingle/xjingle/internal/xjtest"
	"github.com/xjingle/xjingle/jingle"
	"golang.org/x/net/nettest"
	"mellium.im/xmpp/jid"
)

// connPair negotiates a transport pair on loopback and returns the two
// conns (initiator's, responder's) and a func that releases everything.
func connPair(fi, fr *Factory) (ci, cr net.Conn, stop func(), err error) {
	n := xjtest.NewNetwork()
	p := &pair{net: n, sigI: n.Add(romeo), sigR: n.Add(juliet)}
	r, j := jid.MustParse(romeo), jid.MustParse(juliet)
	p.lini = &link{sig: p.sigI, local: r, peer: j, ini: r, role: jingle.RoleInitiator, other: func() jingle.Transport { return p.res }}
	p.lres = &link{sig: p.sigR, local: j, peer: r, ini: r, role: jingle.RoleResponder, other: func() jingle.Transport { return p.ini }}
	ti, _ := fi.NewTransport(p.lini)
	tr, _ := fr.NewTransport(p.lres)
	p.ini, p.res = ti.(*Transport), tr.(*Transport)
	release := func() {
		p.ini.Close()
		p.res.Close()
		p.sigI.Close()
		p.sigR.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	offer, err := p.ini.Offer(ctx)
	if err == nil {
		var ans jingle.Element
		if ans, err = p.res.Accept(ctx, offer); err == nil {
			err = p.ini.Accepted(ctx, ans)
		}
	}
	if err != nil {
		release()
		return nil, nil, nil, err
	}
	ci, cr, ei, er := p.conns(ctx)
	if err := errors.Join(ei, er); err != nil {
		if ci != nil {
			ci.Close()
		}
		if cr != nil {
			cr.Close()
		}
		release()
		return nil, nil, nil, err
	}
	return ci, cr, func() { ci.Close(); cr.Close(); release() }, nil
}

// The negotiated conn honours the whole net.Conn contract.
func TestNettestConn(t *testing.T) {
	f := factory(t)
	nettest.TestConn(t, func() (c1, c2 net.Conn, stop func(), err error) {
		return connPair(f, f)
	})
}

// Two real jingle.Managers on the xjtest network negotiate the transport.
type echoApp struct {
	conns chan net.Conn
}

func (echoApp) Namespace() string { return "urn:xmpp:example" }

func (a echoApp) HandleSession(ctx context.Context, s *jingle.Session) {
	if err := s.Accept(ctx); err != nil {
		a.conns <- nil
		return
	}
	c, err := s.Contents()[0].Conn(ctx)
	if err != nil {
		a.conns <- nil
		return
	}
	a.conns <- c
}

func TestWithManagers(t *testing.T) {
	n := xjtest.NewNetwork()
	sigI, sigR := n.Add(romeo), n.Add(juliet)
	defer sigI.Close()
	defer sigR.Close()
	app := echoApp{conns: make(chan net.Conn, 1)}
	mi, err := jingle.NewManager(sigI, jingle.WithApplication(app), jingle.WithTransport(factory(t)))
	if err != nil {
		t.Fatal(err)
	}
	defer mi.Close()
	mr, err := jingle.NewManager(sigR, jingle.WithApplication(app), jingle.WithTransport(factory(t)))
	if err != nil {
		t.Fatal(err)
	}
	defer mr.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	desc, _ := jingle.ParseElement([]byte(`<description xmlns='urn:xmpp:example'/>`))
	s, err := mi.Initiate(ctx, jid.MustParse(juliet), jingle.ContentSpec{Name: "ex", Description: desc, Transport: NS})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.WaitActive(ctx); err != nil {
		t.Fatal(err)
	}
	ci, err := s.Contents()[0].Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer ci.Close()
	cr := <-app.conns
	if cr == nil {
		t.Fatal("responder got no conn")
	}
	defer cr.Close()
	exchange(t, ci, cr)
	s.Terminate(ctx, jingle.Reason{})
}

// Fallback signal: with no usable candidate the Manager's Conn error wraps
// ErrTransportFailed, which the ladder branches on.
func TestWithManagersBothFail(t *testing.T) {
	n := xjtest.NewNetwork()
	sigI, sigR := n.Add(romeo), n.Add(juliet)
	defer sigI.Close()
	defer sigR.Close()
	app := echoApp{conns: make(chan net.Conn, 1)}
	mi, _ := jingle.NewManager(sigI, jingle.WithApplication(app), jingle.WithTransport(factory(t, WithoutDirect())))
	defer mi.Close()
	mr, _ := jingle.NewManager(sigR, jingle.WithApplication(app), jingle.WithTransport(factory(t, WithoutDirect())))
	defer mr.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	desc, _ := jingle.ParseElement([]byte(`<description xmlns='urn:xmpp:example'/>`))
	s, err := mi.Initiate(ctx, jid.MustParse(juliet), jingle.ContentSpec{Name: "ex", Description: desc, Transport: NS})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.WaitActive(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Contents()[0].Conn(ctx); !errors.Is(err, jingle.ErrTransportFailed) {
		t.Fatalf("Conn: %v, want ErrTransportFailed", err)
	}
	// The responder waits for the initiator's transport-replace (the
	// ladder's next rung); ending the session ends that wait.
	s.Terminate(ctx, jingle.Reason{})
	if c := <-app.conns; c != nil {
		c.Close()
		t.Fatal("responder got a conn")
	}
}

func BenchmarkThroughput(b *testing.B) {
	const size = 64 << 20
	f := factory(b)
	ci, cr, stop, err := connPair(f, f)
	if err != nil {
		b.Fatal(err)
	}
	defer stop()
	buf := make([]byte, 256<<10)
	b.SetBytes(size)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			io.CopyN(io.Discard, cr, size)
		}()
		left := size
		for left > 0 {
			n := min(left, len(buf))
			if _, err := ci.Write(buf[:n]); err != nil {
				b.Fatal(err)
			}
			left -= n
		}
		wg.Wait()
	}
}

// Example: the DST.ADDR of XEP-0260 Example 1, where Romeo (the initiator)
// offers candidates: his JID comes first.
func ExampleDstAddr() {
	romeo := jid.MustParse("romeo@montague.lit/orchard")
	juliet := jid.MustParse("juliet@capulet.lit/balcony")
	fmt.Println(DstAddr("vj3hs98y", romeo, juliet))
	// Juliet's candidates (Example 3) put her JID first.
	fmt.Println(DstAddr("vj3hs98y", juliet, romeo))
	// Output:
	// 972b7bf47291ca609517f67f86b5081086052dad
	// 1a12fb7bc625e55f3ed5b29a53dbe0e4aa7d80ba
}

// Example: a streamhost on loopback that accepts one expected bytestream,
// and a client that connects to it.
func ExampleServer() {
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	var srv Server
	dst := DstAddr("sid1", jid.MustParse("a@example.test/x"), jid.MustParse("b@example.test/y"))
	got := make(chan net.Conn, 1)
	srv.Expect(dst, func(c net.Conn, _ net.Addr) bool { got <- c; return true })
	go srv.Serve(l)
	defer srv.Close()

	var d Dialer
	c, err := d.Dial(context.Background(), l.Addr().String(), dst)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	sc := <-got
	defer sc.Close()
	c.Write([]byte("hello"))
	buf := make([]byte, 5)
	io.ReadFull(sc, buf)
	fmt.Println(string(buf))
	// Output: hello
}

// Example: wiring the transport into a jingle.Manager, as the CLI does.
func ExampleNewFactory() {
	f, err := NewFactory(
		WithInterfaces("lo"), // the CLI's repeatable --interface
		WithConnectTimeout(5*time.Second),
	)
	if err != nil {
		fmt.Println(err)
		return
	}
	n := xjtest.NewNetwork()
	sig := n.Add("romeo@montague.lit/orchard")
	defer sig.Close()
	m, err := jingle.NewManager(sig, jingle.WithTransport(f))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer m.Close()
	fmt.Println(f.Namespace())
	// Output: urn:xmpp:jingle:transports:s5b:1
}

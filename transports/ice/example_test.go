package ice_test

import (
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/xjingle/xjingle/internal/xjtest"
	"github.com/xjingle/xjingle/jingle"
	"github.com/xjingle/xjingle/transports/ice"
	"mellium.im/xmpp/jid"
)

// printApp accepts a session and prints what its stream carries.
type printApp struct{ done chan struct{} }

func (printApp) Namespace() string { return "urn:example:print" }

func (a printApp) HandleSession(ctx context.Context, s *jingle.Session) {
	defer close(a.done)
	if err := s.Accept(ctx); err != nil {
		return
	}
	conn, err := s.Contents()[0].Conn(ctx)
	if err != nil {
		return
	}
	defer conn.Close()
	b, _ := io.ReadAll(conn)
	fmt.Printf("bob read %q\n", b)
}

// Two Managers on an in-memory XMPP network move a stream over a WebRTC
// data channel on loopback.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	opts := []ice.Option{
		ice.WithInterfaces("lo"),
		ice.WithIPFilter(func(ip net.IP) bool { return ip.IsLoopback() }),
		ice.WithUDP4Only(),
	}
	network := xjtest.NewNetwork()
	manager := func(j string, app jingle.Application) (*jingle.Manager, func()) {
		sig := network.Add(j)
		f, err := ice.NewFactory(opts...)
		if err != nil {
			panic(err)
		}
		m, err := jingle.NewManager(sig, jingle.WithApplication(app), jingle.WithTransport(f))
		if err != nil {
			panic(err)
		}
		return m, func() { m.Close(); sig.Close() }
	}
	app := printApp{done: make(chan struct{})}
	alice, closeAlice := manager("alice@example.test/a", printApp{done: make(chan struct{})})
	defer closeAlice()
	_, closeBob := manager("bob@example.test/b", app)
	defer closeBob()

	s, err := alice.Initiate(ctx, jid.MustParse("bob@example.test/b"), jingle.ContentSpec{
		Name: "f", Senders: jingle.SendersInitiator, Transport: ice.NSDataChannel,
		Description: jingle.Element{XMLName: xml.Name{Space: "urn:example:print", Local: "description"}},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := s.WaitActive(ctx); err != nil {
		fmt.Println(err)
		return
	}
	conn, err := s.Content("f").Conn(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer conn.Close()
	fmt.Fprint(conn, "hello over ICE")
	conn.(*ice.Conn).CloseWrite() // flush, then end of stream
	<-app.done
	s.Terminate(ctx, jingle.Reason{Condition: jingle.ReasonSuccess})
	// Output: bob read "hello over ICE"
}

package proxy65_test

import (
	"context"
	"log"
	"net"

	"mellium.im/xmpp/jid"

	"github.com/xjingle/xjingle/socks5/proxy65"
)

// A proxy for example.org: SOCKS5 on port 7777, announced as
// 203.0.113.7:7777, joined to the server's component port as
// proxy.example.org. Cancelling ctx stops the component; Close stops the
// proxy and cuts the bytestreams in flight.
func Example() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	p, err := proxy65.New(proxy65.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()
	l, err := net.Listen("tcp", ":7777")
	if err != nil {
		log.Fatal(err)
	}
	go p.Serve(l) // returns ErrClosed after p.Close

	c := &proxy65.Component{
		JID:    jid.MustParse("proxy.example.org"),
		Server: "127.0.0.1:5347",
		Secret: []byte("the component_secret"),
		Host:   "203.0.113.7",
		Port:   7777,
		Proxy:  p,
	}
	if err := c.Run(ctx); err != nil { // reconnects until ctx is cancelled
		log.Fatal(err)
	}
}

package socks5bench

import (
	"context"
	"net"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/xjingle/xjingle/internal/testbed"
	"github.com/xjingle/xjingle/socks5/proxy65"
)

// BenchmarkComponentProxy65 is BenchmarkProxy65 with our own proxy
// (socks5/proxy65, kernel splice) connected to Prosody as a XEP-0114
// component instead of Prosody's mod_proxy65, which the bed disables.
func BenchmarkComponentProxy65(b *testing.B) {
	const secret = "bench-secret"
	compJID := jid.MustParse("proxy2." + testbed.DefaultDomain)
	bed := testbed.Start(b, testbed.WithoutProxy65(), testbed.WithComponent(compJID.String(), secret))

	p, err := proxy65.New(proxy65.Config{})
	if err != nil {
		b.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- p.Serve(l) }()
	up := make(chan bool, 1)
	comp := &proxy65.Component{JID: compJID, Server: bed.ComponentAddr, Secret: []byte(secret), Host: "127.0.0.1",
		Port: uint16(l.Addr().(*net.TCPAddr).Port), Proxy: p,
		OnState: func(u bool, _ error) {
			select {
			case up <- u:
			default:
			}
		}}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- comp.Run(ctx) }()
	b.Cleanup(func() {
		cancel()
		<-ran
		p.Close()
		<-served
	})
	select {
	case u := <-up:
		if !u {
			b.Fatal("component session failed")
		}
	case <-time.After(15 * time.Second):
		b.Fatal("component did not connect")
	}

	benchViaProxy(b, bed, &compJID, "c", "plain SOCKS5 via our component")
}

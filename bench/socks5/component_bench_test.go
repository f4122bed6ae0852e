package socks5bench

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/xjingle/xjingle/internal/testbed"
	"github.com/xjingle/xjingle/socks5"
	"github.com/xjingle/xjingle/socks5/proxy65"
)

// BenchmarkComponentProxy65 is BenchmarkProxy65 with our own proxy
// (socks5/proxy65, kernel splice) connected to Prosody as a XEP-0114
// component instead of Prosody's mod_proxy65, which the bed disables.
func BenchmarkComponentProxy65(b *testing.B) {
	size := benchSize(b)
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

	src, sum := payload(b, size)
	inbox := filepath.Join(benchDir(b), "inbox")
	clearDir(b, inbox)
	alice, bob := pair(b, bed, "c", inbox, pairOpts{noDirect: true})
	if alice.Proxy == nil || !alice.Proxy.JID.Equal(compJID) {
		b.Fatalf("engine found proxy %+v, want %s", alice.Proxy, compJID)
	}
	scratch := benchDir(b)

	round := 0
	base := func() result {
		round++
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
		defer cancel()
		sid := fmt.Sprintf("cbench%d", round)
		a, t := alice.Client.LocalJID(), bob.Client.LocalJID()
		dst := socks5.DstAddr(sid, a, t)
		var d socks5.Dialer
		m := startMem()
		start := time.Now()
		cr, err := d.Dial(ctx, alice.Proxy.Addr(), dst)
		if err != nil {
			b.Fatal(err)
		}
		cw, err := d.Dial(ctx, alice.Proxy.Addr(), dst)
		if err != nil {
			b.Fatal(err)
		}
		if err := socks5.Activate(ctx, alice.Client, alice.Proxy.JID, sid, t); err != nil {
			b.Fatal(err)
		}
		s1, s2 := hashedCopy(b, src, size, cw, cr, filepath.Join(scratch, "raw.bin"))
		el := time.Since(start)
		cw.Close()
		cr.Close()
		heap, hwm := m.end()
		if s1 != sum || s2 != sum {
			b.Fatalf("baseline hashes %s %s, want %s", s1, s2, sum)
		}
		os.Remove(filepath.Join(scratch, "raw.bin"))
		return result{name: baseName("plain SOCKS5 via our component"), seconds: el.Seconds(), heap: heap, hwm: hwm}
	}
	xfer := func() result {
		r := send(b, alice, bob, src, sum, inbox)
		clearDir(b, inbox)
		return r
	}
	b.SetBytes(size)
	var bases, xfers []result
	for i := 0; i < b.N; i++ {
		bb, xx := runRounds(benchRounds(b), base, xfer)
		bases, xfers = append(bases, bb...), append(xfers, xx...)
	}
	report(b, size, bases, xfers)
}

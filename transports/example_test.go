package transports_test

import (
	"fmt"

	"github.com/xjingle/xjingle/ibb"
	"github.com/xjingle/xjingle/socks5"
	"github.com/xjingle/xjingle/transports"
)

// A ladder of SOCKS5 then IBB, narrowed to what a peer advertises. Send
// files over it with filetransfer.SendOptions{Transports: l.Rungs()}, or
// drive a session yourself with Ladder.Connect.
func ExampleNewLadder() {
	l := transports.NewLadder([]string{socks5.NS, ibb.NSJingle})
	fmt.Println("offer first:", l.First())

	peerFeatures := []string{"urn:xmpp:jingle:1", ibb.NSJingle}
	fmt.Println("usable with this peer:", transports.Filter(l.Rungs(), peerFeatures))
	// Output:
	// offer first: urn:xmpp:jingle:transports:s5b:1
	// usable with this peer: [urn:xmpp:jingle:transports:ibb:1]
}

package socks5

import (
	"context"
	"testing"
	"time"

	"github.com/xjingle/xjingle/internal/testbed"
	"mellium.im/xmpp/jid"
)

// Our client handshake against Prosody's mod_proxy65 (a real streamhost):
// both parties of a bytestream connect with the same DST.ADDR and get
// "succeeded". Activation needs a logged-in XMPP client and is left to the
// client package's integration test.
func TestProsodyProxy65Handshake(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Prosody")
	}
	bed := testbed.Start(t)
	if bed.Proxy65Addr == "" {
		t.Skip("testbed has no proxy65")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	dst := DstAddr("s5btest", jid.MustParse("alice@"+bed.Domain+"/a"), jid.MustParse("bob@"+bed.Domain+"/b"))
	var d Dialer
	for _, who := range []string{"target", "requester"} {
		c, err := d.Dial(ctx, bed.Proxy65Addr, dst)
		if err != nil {
			t.Fatalf("%s: %v", who, err)
		}
		defer c.Close()
	}
}

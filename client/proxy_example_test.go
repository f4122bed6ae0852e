package client_test

import (
	"fmt"

	"github.com/xjingle/xjingle/client"
	"mellium.im/xmpp/jid"
)

// A client behind Tor: socks5h:// makes the proxy resolve every name, so Dial
// looks up no SRV record and connects to the domain on port 5222 through it.
// Pass the same dialer to socks5.WithDialer so that streamhosts are reached
// through the proxy too.
func ExampleParseProxy() {
	d, err := client.ParseProxy("socks5h://tor:secret@127.0.0.1:9050")
	if err != nil {
		fmt.Println(err)
		return
	}
	cfg := client.Config{
		JID:    jid.MustParse("alice@example.onion"),
		Dialer: d,
	}
	_ = cfg // client.Dial(ctx, cfg)
	fmt.Println(d, d.RemoteDNS())
	// Output: socks5h://tor:xxxxx@127.0.0.1:9050 true
}

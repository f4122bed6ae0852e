package relay_test

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/xjingle/xjingle/relay"
)

// The REST API credentials an XMPP server hands out (XEP-0215) for the relay: the relay checks them with the
// same shared secret.
func ExampleRESTCredentials() {
	now := time.Unix(1699996400, 0)
	user, pass := relay.RESTCredentials("north", "alice", time.Hour, now)
	fmt.Println(user, pass)
	fmt.Println(relay.CheckRESTCredentials("north", user, pass, now))
	// Output:
	// 1700000000:alice Cd/49soE35ICqcJF/bCTn8Z4OyE=
	// <nil>
}

func ExamplePeerPolicy() {
	p := relay.PeerPolicy{Allow: []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16")}}
	for _, ip := range []string{"198.51.100.7", "203.0.114.7", "10.1.2.3", "10.2.0.1", "169.254.169.254"} {
		fmt.Println(ip, p.Allowed(netip.MustParseAddr(ip)))
	}
	// Output:
	// 198.51.100.7 false
	// 203.0.114.7 true
	// 10.1.2.3 true
	// 10.2.0.1 false
	// 169.254.169.254 false
}

// A relay on loopback, stopped gracefully.
func ExampleServer() {
	srv, err := relay.New(relay.Config{
		Listen:  []relay.Listen{{Addr: "127.0.0.1:0"}},
		Secrets: []string{"north"},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(context.Background()) }()
	// ... serve srv.Handler() for metrics, wait for SIGTERM ...
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = srv.Shutdown(ctx)
	fmt.Println(<-done)
	// Output: relay: server closed
}

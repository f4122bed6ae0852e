package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/xjingle/xjingle/client"
	"github.com/xjingle/xjingle/jingle"
	"mellium.im/xmpp/jid"
)

// Dial logs in and serves until Close. The Client is a jingle.Signaller; here
// it is used directly to find a peer's resource and ping it.
func ExampleDial() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, client.Config{
		JID:      jid.MustParse("alice@example.com"),
		Password: "secret",
		// Server: "127.0.0.1:5222" skips the SRV lookup;
		// CAFile: "ca.pem" trusts a private CA.
	})
	switch {
	case errors.Is(err, client.ErrAuth):
		log.Fatal("wrong password")
	case errors.Is(err, client.ErrTLS):
		log.Fatal("the server's certificate is not trusted (see CAFile)")
	case err != nil:
		log.Fatal(err)
	}
	defer c.Close()

	var _ jingle.Signaller = c
	peers, err := c.Resolve(ctx, jid.MustParse("bob@example.com"), "urn:xmpp:jingle:1")
	if err != nil {
		log.Fatal(err)
	}
	if _, err := c.SendIQ(ctx, peers[0], "get", []byte(`<ping xmlns="urn:xmpp:ping"/>`)); err != nil {
		log.Fatal(err)
	}
	fmt.Println("bob is at", peers[0])
}

// Dial's errors wrap a sentinel that says what went wrong. Nothing listens on
// port 1 of the loopback address, so this Dial fails at once.
func ExampleDial_errors() {
	_, err := client.Dial(context.Background(), client.Config{
		JID:      jid.MustParse("alice@example.com"),
		Password: "secret",
		Server:   "127.0.0.1:1",
	})
	fmt.Println(errors.Is(err, client.ErrUnreachable), errors.Is(err, client.ErrAuth))
	// Output: true false
}

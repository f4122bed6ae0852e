package ibb_test

import (
	"context"
	"fmt"
	"io"

	"github.com/xjingle/xjingle/ibb"
	"github.com/xjingle/xjingle/internal/xjtest"
)

// Two entities on an in-memory network: bob prepares for a stream, alice
// opens it and writes; bob reads until alice closes.
func Example() {
	network := xjtest.NewNetwork()
	alice, bob := network.Add("alice@example.test/a"), network.Add("bob@example.test/b")
	defer alice.Close()
	defer bob.Close()
	ha, _ := ibb.NewHandler(alice)
	hb, _ := ibb.NewHandler(bob, ibb.WithBlockSize(4096))
	defer ha.Close()
	defer hb.Close()
	ctx := context.Background()

	// The sid is agreed out of band (Jingle does it for ibb's
	// JingleTransport); bob registers before alice may open.
	exp, err := hb.Prepare(alice.LocalJID(), "stream1")
	if err != nil {
		fmt.Println(err)
		return
	}
	got := make(chan string)
	go func() {
		c, err := exp.Wait(ctx)
		if err != nil {
			got <- err.Error()
			return
		}
		defer c.Close()
		b, _ := io.ReadAll(c)
		got <- string(b)
	}()

	c, err := ha.Open(ctx, bob.LocalJID(), "stream1", 4096)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Fprint(c, "hello over XMPP")
	c.Close()
	fmt.Println(<-got)
	// Output: hello over XMPP
}

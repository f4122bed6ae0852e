package jingle_test

import (
	"context"
	"fmt"
	"io"

	"github.com/xjingle/xjingle/internal/xjtest"
	"github.com/xjingle/xjingle/jingle"
)

func ExampleParseJingle() {
	j, err := jingle.ParseJingle([]byte(`<jingle xmlns='urn:xmpp:jingle:1' action='session-terminate' sid='a73sjjvkla37jfea'>
	  <reason><success/><text>done</text></reason></jingle>`))
	if err != nil {
		panic(err)
	}
	fmt.Println(j.Action, j.SID, j.Reason)
	out, _ := (&jingle.Jingle{Action: jingle.ActionSessionInfo, SID: j.SID}).Marshal()
	fmt.Println(string(out))
	// Output:
	// session-terminate a73sjjvkla37jfea success: done
	// <jingle xmlns="urn:xmpp:jingle:1" action="session-info" sid="a73sjjvkla37jfea"></jingle>
}

// A session between two Managers on the in-memory network: alice offers,
// bob's application accepts, bytes flow over the content's transport.
func ExampleManager() {
	ctx := context.Background()
	n := xjtest.NewNetwork()
	h := newHub()
	aliceSig, bobSig := n.Add("alice@example.test/a"), n.Add("bob@example.test/b")
	defer aliceSig.Close()
	defer bobSig.Close()

	app := newTestApp(nsApp) // hands incoming sessions to us
	alice, _ := jingle.NewManager(aliceSig, jingle.WithApplication(newTestApp(nsApp)), jingle.WithTransport(newPipeFactory(nsPipe, h)))
	bob, _ := jingle.NewManager(bobSig, jingle.WithApplication(app), jingle.WithTransport(newPipeFactory(nsPipe, h)))
	defer alice.Close()
	defer bob.Close()

	s, err := alice.Initiate(ctx, bobSig.LocalJID(), jingle.ContentSpec{
		Name: "file", Senders: jingle.SendersInitiator, Description: appDesc("hello.txt"), Transport: nsPipe,
	})
	if err != nil {
		panic(err)
	}
	incoming := <-app.got
	if err := incoming.Accept(ctx); err != nil {
		panic(err)
	}
	if err := s.WaitActive(ctx); err != nil {
		panic(err)
	}
	w, _ := s.Content("file").Conn(ctx)
	r, _ := incoming.Content("file").Conn(ctx)
	go func() {
		w.Write([]byte("hello"))
		w.Close()
	}()
	b, _ := io.ReadAll(r)
	r.Close()
	fmt.Printf("%s over %s\n", b, incoming.Content("file").TransportNamespace())
	s.Terminate(ctx, jingle.Reason{Condition: jingle.ReasonSuccess})
	<-incoming.Done()
	fmt.Println("bob:", incoming.Reason().Condition)
	// Output:
	// hello over urn:xjingle:test:pipe:0
	// bob: success
}

// Command sendfile shows how an application embeds xjingle: one XMPP
// connection, a Jingle manager with the file-transfer application and the IBB
// transport, and one file sent to a peer.
//
//	XJINGLE_JID=alice@example.org XJINGLE_PASSWORD=... go run ./examples/sendfile bob@example.org FILE
package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/xjingle/xjingle/client"
	"github.com/xjingle/xjingle/ibb"
	"github.com/xjingle/xjingle/jingle"
	"github.com/xjingle/xjingle/jingle/filetransfer"
	"mellium.im/xmpp/jid"
)

func main() {
	if len(os.Args) != 3 {
		log.Fatal("usage: sendfile PEER FILE")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()

	// 1. The XMPP connection (TLS, SCRAM, caps, disco).
	c, err := client.Dial(ctx, client.Config{
		JID:      jid.MustParse(os.Getenv("XJINGLE_JID")),
		Password: os.Getenv("XJINGLE_PASSWORD"),
		Server:   os.Getenv("XJINGLE_SERVER"), // empty: SRV lookup
		CAFile:   os.Getenv("XJINGLE_CA"),
	})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	// 2. A transport and the application, registered on a Jingle manager.
	ib, err := ibb.NewHandler(c)
	if err != nil {
		log.Fatal(err)
	}
	defer ib.Close()
	app := filetransfer.New(nil) // nil store: this program receives nothing
	m, err := jingle.NewManager(c, jingle.WithApplication(app), jingle.WithTransport(ib.JingleTransport()))
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()

	// 3. Find the peer's resource that does Jingle file transfer, and send.
	peers, err := c.Resolve(ctx, jid.MustParse(os.Args[1]), filetransfer.NS)
	if err != nil {
		log.Fatal(err)
	}
	res, err := app.Send(ctx, m, peers[0], os.Args[2], filetransfer.SendOptions{Transport: ibb.NSJingle})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("sent %s (%d bytes, sha256 %s), confirmed: %v\n", res.Name, res.Bytes, res.SHA256, res.Verified)
}

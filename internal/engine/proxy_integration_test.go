package engine_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/xjingle/xjingle/client"
	"github.com/xjingle/xjingle/internal/engine"
	"github.com/xjingle/xjingle/internal/testbed"
	"github.com/xjingle/xjingle/jingle/filetransfer"
	"github.com/xjingle/xjingle/socks5"
	"github.com/xjingle/xjingle/transports/ice"
	"mellium.im/xmpp/jid"
)

// TestEngineBehindProxy: alice is behind her own SOCKS5 proxy. She offers no
// direct candidate (none named with Interfaces) and advertises no ICE; the
// only path is her connecting to bob's direct candidate on loopback, and
// that connection, like her c2s connection, goes through her proxy.
func TestEngineBehindProxy(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	bed := testbed.Start(t, testbed.WithoutProxy65())
	px := testbed.StartSOCKSProxy(t, testbed.SOCKSProxyOptions{})
	pd, err := client.ParseProxy(px.URL("socks5"))
	if err != nil {
		t.Fatal(err)
	}
	a := bed.AddUser(t, "alice-proxy")
	b := bed.AddUser(t, "bob-proxy")
	bed.Subscribe(t, a.JID, b.JID)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	inbox := t.TempDir()
	incoming := make(chan *filetransfer.Transfer, 1)
	bob, err := engine.New(ctx, engine.Config{
		Client:     client.Config{JID: jid.MustParse(b.JID), Password: b.Password, Server: bed.C2SAddr, CAFile: bed.CAFile},
		Store:      &filetransfer.Store{Dir: inbox},
		Interfaces: []string{"lo"},
		AppOpts: []filetransfer.Option{
			filetransfer.WithAcceptPolicy(filetransfer.AcceptAll),
			filetransfer.WithOnTransfer(func(tr *filetransfer.Transfer) {
				if tr.Direction() == filetransfer.Incoming {
					select {
					case incoming <- tr:
					default:
					}
				}
			}),
		},
		NoProxy:            true,
		NoExternalServices: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bob.Close() })
	alice, err := engine.New(ctx, engine.Config{
		Client:  client.Config{JID: jid.MustParse(a.JID), Password: a.Password, Server: bed.C2SAddr, CAFile: bed.CAFile},
		Proxy:   pd,
		NoProxy: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { alice.Close() })

	feats := alice.Client.Features()
	for _, ns := range []string{ice.NSDataChannel, ice.NSICEUDP} {
		if slices.Contains(feats, ns) {
			t.Errorf("behind a proxy alice advertises %s", ns)
		}
	}
	if !slices.Contains(feats, socks5.NS) {
		t.Errorf("alice does not advertise %s", socks5.NS)
	}
	if !px.Saw(bed.C2SAddr) {
		t.Errorf("alice's c2s connection did not go through her proxy: %+v", px.Requests())
	}

	const size = 1 << 20
	path, sum := writeRandom(t, size)
	to, err := alice.ResolvePeer(ctx, b.JID)
	if err != nil {
		t.Fatal(err)
	}
	order, _ := engine.ParseTransports([]string{"socks5"})
	sent, err := alice.App.Send(ctx, alice.Manager, to, path, alice.SendOptions(ctx, to, order))
	if err != nil {
		t.Fatalf("send: %v (%+v)", err, sent)
	}
	var got *filetransfer.Result
	select {
	case tr := <-incoming:
		select {
		case <-tr.Done():
		case <-ctx.Done():
			t.Fatal("receiver did not finish")
		}
		got = tr.Result()
	case <-ctx.Done():
		t.Fatal("no incoming transfer")
	}
	for who, r := range map[string]*filetransfer.Result{"sender": sent, "receiver": got} {
		if r.Err != nil || !r.Verified || r.SHA256 != sum || r.Transport != socks5.NS {
			t.Errorf("%s: %+v (err %v), want verified %s over socks5", who, r, r.Err, sum)
		}
	}
	// Besides c2s, alice's proxy carried her connection to bob's
	// candidate: the only SOCKS5 path there was.
	var up int64
	for _, r := range px.Requests() {
		if r.Dest != bed.C2SAddr && r.Reply == 0 {
			up += r.Up
		}
	}
	if up < size {
		t.Errorf("alice's proxy carried %d bytes to streamhosts, want the file's %d: %+v", up, size, px.Requests())
	}
}

// Package ibbbench measures In-Band Bytestream throughput through a real
// Prosody (the test bed on loopback), against a baseline measured in the same
// run: the same bytes sent as base64 in message stanzas with no flow control,
// which is what the server and the XML path can carry at best.
//
// Run: go test -run '^$' -bench . -benchtime 1x ./bench/ibb
package ibbbench

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xjingle/xjingle/client"
	"github.com/xjingle/xjingle/internal/engine"
	"github.com/xjingle/xjingle/internal/testbed"
	"github.com/xjingle/xjingle/jingle"
	"github.com/xjingle/xjingle/jingle/filetransfer"
	"mellium.im/xmpp/jid"
)

const fileSize = 64 << 20

func pair(b *testing.B, bed *testbed.Bed, block int, store *filetransfer.Store) (alice, bob *engine.Engine) {
	b.Helper()
	a := bed.AddUser(b, fmt.Sprintf("alice%d", block))
	o := bed.AddUser(b, fmt.Sprintf("bob%d", block))
	bed.Subscribe(b, a.JID, o.JID)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	mk := func(acct testbed.Account, st *filetransfer.Store, opts ...filetransfer.Option) *engine.Engine {
		e, err := engine.New(ctx, engine.Config{
			Client:       client.Config{JID: jid.MustParse(acct.JID), Password: acct.Password, Server: bed.C2SAddr, CAFile: bed.CAFile},
			Store:        st,
			AppOpts:      opts,
			IBBBlockSize: block,
		})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { e.Close() })
		return e
	}
	bob = mk(o, store, filetransfer.WithAcceptPolicy(filetransfer.AcceptAll))
	alice = mk(a, nil)
	return alice, bob
}

func BenchmarkIBBThroughProsody(b *testing.B) {
	bed := testbed.Start(b)
	src := filepath.Join(b.TempDir(), "payload.bin")
	f, err := os.Create(src)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := io.CopyN(f, rand.Reader, fileSize); err != nil {
		b.Fatal(err)
	}
	f.Close()

	b.Run("baseline=messages", func(b *testing.B) {
		alice, bob := pair(b, bed, 0, nil)
		benchMessages(b, alice.Client, bob.Client)
	})
	for _, block := range []int{4096, 8192, 32767, 65535} {
		b.Run(fmt.Sprintf("block=%d", block), func(b *testing.B) {
			inbox := b.TempDir()
			alice, bob := pair(b, bed, block, &filetransfer.Store{Dir: inbox})
			ctx := context.Background()
			peer, err := alice.ResolvePeer(ctx, bob.Client.LocalJID().String())
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(fileSize)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				res, err := alice.App.Send(ctx, alice.Manager, peer, src, filetransfer.SendOptions{Transport: engine.Rungs["ibb"]})
				if err != nil || !res.Verified {
					b.Fatalf("send: %v (%+v)", err, res)
				}
				b.StopTimer()
				os.RemoveAll(inbox)
				os.Mkdir(inbox, 0o700)
				b.StartTimer()
			}
		})
	}
}

// benchMessages sends fileSize bytes as base64 in 32 KiB message payloads
// and waits until bob has them all: the server's and the XML path's ceiling,
// without IBB's acknowledgements.
func benchMessages(b *testing.B, alice, bob *client.Client) {
	const chunk = 32 << 10
	var got atomic.Int64
	done := make(chan struct{}, 1)
	bob.HandleMessage(xml.Name{Space: "urn:xjingle:bench", Local: "data"}, func(m *jingle.Message) {
		if got.Add(1) == fileSize/chunk {
			select {
			case done <- struct{}{}:
			default:
			}
		}
	})
	buf := make([]byte, chunk)
	rand.Read(buf)
	payload := []byte(`<data xmlns="urn:xjingle:bench">` + base64.StdEncoding.EncodeToString(buf) + `</data>`)
	b.SetBytes(fileSize)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		got.Store(0)
		ctx := context.Background()
		for sent := int64(0); sent < fileSize; sent += chunk {
			if err := alice.SendMessage(ctx, bob.LocalJID(), "normal", payload); err != nil {
				b.Fatal(err)
			}
		}
		select {
		case <-done:
		case <-time.After(2 * time.Minute):
			b.Fatalf("bob got %d of %d messages", got.Load(), fileSize/chunk)
		}
	}
}

package ice_test

import (
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/xjingle/xjingle/internal/xjtest"
	"github.com/xjingle/xjingle/jingle"
	"github.com/xjingle/xjingle/transports/ice"
)

// TestICERestart: XEP-0176 §5.9 restarts by either side, under an open data
// channel: new ufrag/pwd on both sides each time, the generation goes up,
// and the stream carries on with every byte in order.
func TestICERestart(t *testing.T) {
	for _, ns := range []string{ice.NSDataChannel, ice.NSICEUDP} {
		t.Run(ns, func(t *testing.T) {
			n := xjtest.NewNetwork()
			alice := newPeer(t, n, aliceJID)
			bob := newPeer(t, n, bobJID)
			s, conn := start(t, alice, bob, ns)
			defer conn.Close()
			spy := func(p *peer) *spyFactory {
				if ns == ice.NSDataChannel {
					return p.dc
				}
				return p.iu
			}
			at, bt := spy(alice).lastTransport(), spy(bob).lastTransport()
			h := sha256.New()
			var total int64
			send := func(size int64) {
				t.Helper()
				m, err := io.Copy(io.MultiWriter(conn, h), io.LimitReader(rand.Reader, size))
				total += m
				if err != nil {
					t.Fatalf("write: %v", err)
				}
			}
			send(1 << 20)
			for i, who := range []*ice.Transport{at, bt} { // alice restarts, then bob
				pl0, _ := at.SelectedPair()
				if pl0 == nil {
					t.Fatal("no selected pair")
				}
				al0, ar0 := at.Ufrags()
				bl0, br0 := bt.Ufrags()
				if al0 != br0 || bl0 != ar0 {
					t.Fatalf("ufrags before restart %d: alice %s/%s bob %s/%s", i, al0, ar0, bl0, br0)
				}
				if err := who.Restart(testCtx(t, 15*time.Second)); err != nil {
					t.Fatalf("restart %d: %v", i, err)
				}
				// The peer's side has its new ufrag once it handled
				// the answer's transport-info; ours already does.
				deadline := time.Now().Add(10 * time.Second)
				for {
					al, ar := at.Ufrags()
					bl, br := bt.Ufrags()
					if al != al0 && bl != bl0 && al == br && bl == ar {
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("after restart %d: alice %s/%s bob %s/%s (before %s/%s)", i, al, ar, bl, br, al0, bl0)
					}
					time.Sleep(10 * time.Millisecond) // polling Ufrags, bounded
				}
				// Pion gathers on new sockets: the new pair has a
				// new local port.
				for {
					pl, _ := at.SelectedPair()
					if pl != nil && pl.Port != pl0.Port {
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("after restart %d alice still uses %v", i, pl)
					}
					time.Sleep(10 * time.Millisecond) // polling, bounded
				}
				if g1, g2 := at.Generation(), bt.Generation(); g1 != uint32(i+1) || g2 != uint32(i+1) {
					t.Errorf("generations %d %d after %d restarts", g1, g2, i+1)
				}
				send(1 << 20)
			}
			// A third one through the Conn, as an application does.
			if err := conn.(*ice.Conn).RestartICE(testCtx(t, 15*time.Second)); err != nil {
				t.Fatalf("restart through the conn: %v", err)
			}
			send(512 << 10)
			if err := conn.(interface{ CloseWrite() error }).CloseWrite(); err != nil {
				t.Fatal(err)
			}
			var want [32]byte
			copy(want[:], h.Sum(nil))
			select {
			case r := <-bob.app.results:
				if r.err != nil || r.n != total || r.sum != want {
					t.Fatalf("bob read %d of %d bytes, hash ok %v, err %v", r.n, total, r.sum == want, r.err)
				}
			case <-time.After(30 * time.Second):
				t.Fatal("bob did not finish")
			}
			if g := at.Generation(); g != 3 {
				t.Errorf("alice's generation %d after 3 restarts", g)
			}
			s.Terminate(testCtx(t, 5*time.Second), jingle.Reason{Condition: jingle.ReasonSuccess})
		})
	}
}

func TestRestartBeforeNegotiation(t *testing.T) {
	f, err := ice.NewFactory(loopbackOpts()...)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := f.NewTransport(&fakeLink{})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	if err := tr.(*ice.Transport).Restart(testCtx(t, time.Second)); !errors.Is(err, ice.ErrRestart) {
		t.Fatalf("restart before negotiation: %v, want ErrRestart", err)
	}
}

// TestICERestartGlare: both sides restart at once. Each takes the other's
// offer as the answer to its own (both carry new credentials), so both end
// on the new generation and the stream goes on.
func TestICERestartGlare(t *testing.T) {
	n := xjtest.NewNetwork()
	alice := newPeer(t, n, aliceJID)
	bob := newPeer(t, n, bobJID)
	s, conn := start(t, alice, bob, ice.NSDataChannel)
	defer conn.Close()
	at, bt := alice.dc.lastTransport(), bob.dc.lastTransport()
	errs := make(chan error, 2)
	for _, tr := range []*ice.Transport{at, bt} {
		go func() { errs <- tr.Restart(testCtx(t, 15*time.Second)) }()
	}
	ok := 0
	for range 2 {
		err := <-errs
		switch {
		case err == nil:
			ok++
		case errors.Is(err, ice.ErrRestart):
		default:
			t.Logf("restart: %v", err)
		}
	}
	if ok == 0 {
		t.Fatal("neither restart completed")
	}
	t.Logf("%d of 2 restarts completed; generations %d %d", ok, at.Generation(), bt.Generation())
	msg := []byte("after glare")
	conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Write(msg); err != nil {
		t.Fatal(err)
	}
	if err := conn.(*ice.Conn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-bob.app.results:
		if r.err != nil || r.n != int64(len(msg)) || r.sum != sha256.Sum256(msg) {
			t.Fatalf("bob read %d bytes, %v", r.n, r.err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("bob did not finish")
	}
	al, ar := at.Ufrags()
	bl, br := bt.Ufrags()
	if al != br || bl != ar {
		t.Errorf("ufrags disagree after glare: alice %s/%s bob %s/%s", al, ar, bl, br)
	}
	s.Terminate(testCtx(t, 5*time.Second), jingle.Reason{Condition: jingle.ReasonSuccess})
}

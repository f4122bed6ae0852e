package ice_test

import (
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xjingle/xjingle/ibb"
	"github.com/xjingle/xjingle/internal/xjtest"
	"github.com/xjingle/xjingle/jingle"
	"github.com/xjingle/xjingle/jingle/filetransfer"
	"github.com/xjingle/xjingle/transports/ice"
)

// ftPeer is the file-transfer stack with the ICE data channel (behind a
// spy that can tamper with the peer's offer) and IBB as the next rung.
type ftPeer struct {
	sig   *xjtest.Signaller
	m     *jingle.Manager
	app   *filetransfer.App
	dc    *spyFactory
	inbox string
	in    chan *filetransfer.Transfer
}

func newFTPeer(t *testing.T, n *xjtest.Network, self string, opts ...ice.Option) *ftPeer {
	t.Helper()
	p := &ftPeer{sig: n.Add(self), inbox: t.TempDir(), in: make(chan *filetransfer.Transfer, 2)}
	f, err := ice.NewFactory(loopbackOpts(opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	p.dc = &spyFactory{TransportFactory: f}
	h, err := ibb.NewHandler(p.sig)
	if err != nil {
		t.Fatal(err)
	}
	p.app = filetransfer.New(&filetransfer.Store{Dir: p.inbox},
		filetransfer.WithAcceptPolicy(filetransfer.AcceptAll),
		filetransfer.WithLogger(testLogger(t).With("who", self)),
		filetransfer.WithOnTransfer(func(tr *filetransfer.Transfer) {
			if tr.Direction() == filetransfer.Incoming {
				p.in <- tr
			}
		}))
	p.m, err = jingle.NewManager(p.sig, jingle.WithApplication(p.app), jingle.WithTransport(p.dc), jingle.WithTransport(h.JingleTransport()),
		jingle.WithLogger(testLogger(t).With("who", self)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.m.Close()
		h.Close()
		p.sig.Close()
	})
	return p
}

// TestFingerprintMismatchNoFallback: issue 4's hostile case at the ladder
// level. Bob is told a fingerprint that does not match Alice's DTLS
// certificate: the transfer must fail, and the ladder must not carry the
// file over IBB instead (that would hand the bytes to whoever spoofed the
// signalling, unauthenticated). XEP-0320 §3.
func TestFingerprintMismatchNoFallback(t *testing.T) {
	n := xjtest.NewNetwork()
	alice := newFTPeer(t, n, aliceJID, ice.WithConnectTimeout(4*time.Second))
	bob := newFTPeer(t, n, bobJID, ice.WithConnectTimeout(4*time.Second))
	bob.dc.tamper = flipFingerprint(t)
	path := filepath.Join(t.TempDir(), "secret.bin")
	data := make([]byte, 64<<10)
	rand.Read(data)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t, 45*time.Second)
	res, err := alice.app.Send(ctx, alice.m, bob.sig.LocalJID(), path, filetransfer.SendOptions{
		Transports:  []string{ice.NSDataChannel, ibb.NSJingle},
		RungTimeout: 15 * time.Second,
	})
	t.Logf("alice: %+v, %v", res, err)
	if err == nil || res.Verified || res.Bytes != 0 {
		t.Fatalf("send succeeded (%+v) despite a fingerprint mismatch", res)
	}
	if res.Transport == ibb.NSJingle {
		t.Fatalf("the ladder fell back to IBB after a DTLS authentication failure: %+v", res)
	}
	// Whichever side saw the mismatch first, the session ends as a
	// security error (XEP-0166 §7.4), not a mere transport failure.
	if !errors.Is(err, jingle.ErrTransportSecurity) && !strings.Contains(err.Error(), jingle.ReasonSecurityError) {
		t.Errorf("alice's error %v, want a security error", err)
	}
	select {
	case tr := <-bob.in:
		select {
		case <-tr.Done():
		case <-ctx.Done():
			t.Fatal("bob's transfer did not end")
		}
		r := tr.Result()
		t.Logf("bob: %+v, %v", r, r.Err)
		if r.Err == nil || r.Bytes != 0 {
			t.Fatalf("bob received %d bytes (err %v)", r.Bytes, r.Err)
		}
		if !errors.Is(r.Err, ice.ErrDTLS) {
			t.Errorf("bob's error %v, want ErrDTLS", r.Err)
		}
	case <-ctx.Done():
		t.Fatal("bob saw no transfer")
	}
	if ents, _ := os.ReadDir(bob.inbox); len(ents) != 0 {
		t.Errorf("bob's inbox holds %d entries", len(ents))
	}
}

package filetransfer

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/xjingle/xjingle/ibb"
	"github.com/xjingle/xjingle/internal/xjtest"
	"github.com/xjingle/xjingle/jingle"
	"go.uber.org/goleak"
	"mellium.im/xmpp/jid"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testLogger logs to t.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}

// side is one party of a test: its Manager, App, Store and the transfers
// its App reported.
type side struct {
	jid       jid.JID
	m         *jingle.Manager
	app       *App
	store     *Store
	transfers chan *Transfer
}

// newPair returns alice and bob, each with a Manager on an in-memory
// network, the pipe transport and an App built with the given options.
func newPair(t *testing.T, aliceOpts, bobOpts []Option) (alice, bob *side) {
	t.Helper()
	network := xjtest.NewNetwork()
	hub := newPipeHub()
	mk := func(j string, opts []Option) *side {
		sig := network.Add(j)
		s := &side{jid: sig.LocalJID(), store: &Store{Dir: t.TempDir()}, transfers: make(chan *Transfer, 16)}
		opts = append([]Option{
			WithLogger(testLogger(t).With("who", j)),
			WithChecksumWait(100 * time.Millisecond),
			WithOnTransfer(func(tr *Transfer) { s.transfers <- tr }),
		}, opts...)
		s.app = New(s.store, opts...)
		ih, err := ibb.NewHandler(sig)
		if err != nil {
			t.Fatal(err)
		}
		m, err := jingle.NewManager(sig, jingle.WithApplication(s.app), jingle.WithTransport(hub), jingle.WithTransport(ih.JingleTransport()),
			jingle.WithLogger(testLogger(t).With("who", j, "component", "jingle")))
		if err != nil {
			t.Fatal(err)
		}
		s.m = m
		t.Cleanup(func() {
			m.Close()
			ih.Close()
			sig.Close()
		})
		return s
	}
	return mk("alice@example.test/a", aliceOpts), mk("bob@example.test/b", bobOpts)
}

// next returns the next transfer the side's App reported, and its result.
func (s *side) next(t *testing.T) (*Transfer, *Result) {
	t.Helper()
	select {
	case tr := <-s.transfers:
		select {
		case <-tr.Done():
			return tr, tr.Result()
		case <-time.After(20 * time.Second):
			t.Fatal("transfer did not finish")
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no transfer started")
	}
	return nil, nil
}

func writeFile(t *testing.T, name string, size int) (string, []byte) {
	t.Helper()
	data := make([]byte, size)
	rand.Read(data)
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path, data
}

func sha256hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestPush(t *testing.T) {
	for _, size := range []int{0, 1, 1 << 20, 3<<20 + 17} {
		t.Run(byteSize(size), func(t *testing.T) {
			alice, bob := newPair(t, nil, []Option{WithAcceptPolicy(AcceptAll)})
			path, data := writeFile(t, "photo.jpg", size)
			res, err := alice.app.Send(ctxT(t), alice.m, bob.jid, path, SendOptions{Transport: nsPipe})
			if err != nil {
				t.Fatalf("send: %v", err)
			}
			if !res.Verified || res.Bytes != int64(size) || res.SHA256 != sha256hex(data) || res.Transport != nsPipe {
				t.Fatalf("send result %+v", res)
			}
			tr, rr := bob.next(t)
			if rr.Err != nil || !rr.Verified || rr.Bytes != int64(size) || rr.SHA256 != sha256hex(data) {
				t.Fatalf("receive result %+v", rr)
			}
			if tr.Direction() != Incoming || !tr.Peer().Equal(alice.jid) || tr.Size() != int64(size) || tr.Bytes() != int64(size) {
				t.Fatalf("transfer %v %v %d %d", tr.Direction(), tr.Peer(), tr.Size(), tr.Bytes())
			}
			if rr.Path != filepath.Join(bob.store.Dir, "photo.jpg") {
				t.Fatalf("stored at %s", rr.Path)
			}
			got, _ := os.ReadFile(rr.Path)
			if !bytes.Equal(got, data) {
				t.Fatal("content differs")
			}
			if names := dirNames(t, bob.store.Dir); len(names) != 1 {
				t.Fatalf("store holds %v", names)
			}
			// Alice's own transfer was reported too.
			if out, _ := alice.next(t); out.Direction() != Outgoing {
				t.Fatal("outgoing transfer not reported")
			}
		})
	}
}

func byteSize(n int) string {
	switch {
	case n >= 1<<20:
		return string(rune('0'+n>>20)) + "MiB"
	default:
		return string(rune('0'+n%10)) + "B"
	}
}

func TestPushHostileName(t *testing.T) {
	alice, bob := newPair(t, nil, []Option{WithAcceptPolicy(AcceptAll)})
	path, _ := writeFile(t, "x", 10)
	for _, name := range []string{"../../etc/passwd", "/abs/path", `C:\x`, "CON", "\x00evil", ".."} {
		if _, err := alice.app.Send(ctxT(t), alice.m, bob.jid, path, SendOptions{Transport: nsPipe, Name: name}); err != nil {
			t.Fatalf("%q: %v", name, err)
		}
		_, rr := bob.next(t)
		if rr.Err != nil || !insideDir(t, bob.store.Dir, rr.Path) || rr.Path != filepath.Join(bob.store.Dir, filepath.FromSlash(SanitizePath(name))) {
			t.Fatalf("%q stored at %q (%v)", name, rr.Path, rr.Err)
		}
		alice.next(t)
	}
	if got := regularFiles(t, bob.store.Dir); len(got) != 6 {
		t.Fatalf("store holds %v", got)
	}
}

func TestDecline(t *testing.T) {
	var seen *Offer
	alice, bob := newPair(t, nil, []Option{WithAcceptPolicy(func(_ context.Context, o *Offer) (bool, error) {
		seen = o
		return false, nil
	})})
	path, _ := writeFile(t, "no.txt", 100)
	res, err := alice.app.Send(ctxT(t), alice.m, bob.jid, path, SendOptions{Transport: nsPipe, Desc: "hi"})
	if !errors.Is(err, ErrDeclined) || !errors.Is(res.Err, ErrDeclined) {
		t.Fatalf("send: %v", err)
	}
	if seen == nil || seen.Name != "no.txt" || seen.Size != 100 || seen.File.Desc != "hi" || seen.File.MediaType != "text/plain; charset=utf-8" ||
		len(seen.File.HashUsed) != 1 || seen.File.HashUsed[0] != AlgoSHA256 || seen.File.Date.IsZero() {
		t.Fatalf("offer seen by the policy: %+v", seen)
	}
	if got := dirNames(t, bob.store.Dir); len(got) != 0 {
		t.Fatalf("store holds %v", got)
	}
	// Without a policy, offers are declined too.
	alice2, bob2 := newPair(t, nil, nil)
	if _, err := alice2.app.Send(ctxT(t), alice2.m, bob2.jid, path, SendOptions{Transport: nsPipe}); !errors.Is(err, ErrDeclined) {
		t.Fatalf("send without policy: %v", err)
	}
}

func TestOfferTooLarge(t *testing.T) {
	alice, bob := newPair(t, nil, []Option{WithAcceptPolicy(AcceptAll)})
	bob.store.MaxSize = 10
	path, _ := writeFile(t, "big", 11)
	if _, err := alice.app.Send(ctxT(t), alice.m, bob.jid, path, SendOptions{Transport: nsPipe}); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("send: %v", err)
	}
}

// fakeSend offers desc from alice's Manager to bob and returns the session
// and the stream, for tests that misbehave as a sender.
func fakeSend(t *testing.T, alice, bob *side, f File) (*jingle.Session, *jingle.Content) {
	t.Helper()
	ctx := ctxT(t)
	s, err := alice.m.Initiate(ctx, bob.jid, jingle.ContentSpec{
		Name: "f", Senders: jingle.SendersInitiator, Description: Description{File: f}.Element(), Transport: nsPipe,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.WaitActive(ctx); err != nil {
		t.Fatal(err)
	}
	return s, s.Contents()[0]
}

func waitEnd(t *testing.T, s *jingle.Session) jingle.Reason {
	t.Helper()
	select {
	case <-s.Done():
		return s.Reason()
	case <-time.After(20 * time.Second):
		t.Fatal("session did not end")
	}
	return jingle.Reason{}
}

func TestWrongHash(t *testing.T) {
	alice, bob := newPair(t, nil, []Option{WithAcceptPolicy(AcceptAll)})
	data := []byte("the real data")
	s, c := fakeSend(t, alice, bob, File{Name: "doc.txt", Size: int64(len(data)), HasSize: true, HashUsed: []string{AlgoSHA256}})
	conn, err := c.Conn(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	conn.Write(data)
	wrong := sha256.Sum256([]byte("other data"))
	s.SendInfo(ctxT(t), Checksum{Creator: "initiator", Name: c.Name, File: File{Hashes: []Hash{{Algo: AlgoSHA256, Value: wrong[:]}}}}.Element())
	if r := waitEnd(t, s); r.Condition != jingle.ReasonMediaError {
		t.Fatalf("terminated with %v", r)
	}
	_, rr := bob.next(t)
	if !errors.Is(rr.Err, ErrHashMismatch) || rr.Path != "" {
		t.Fatalf("result %+v", rr)
	}
	if names := dirNames(t, bob.store.Dir); len(names) != 0 {
		t.Fatalf("store holds %v", names)
	}
}

func TestWrongHashKeepPartial(t *testing.T) {
	alice, bob := newPair(t, nil, []Option{WithAcceptPolicy(AcceptAll)})
	bob.store.KeepPartial = true
	data := []byte("the real data")
	wrong := sha256.Sum256([]byte("other data"))
	// The hash is in the offer this time.
	s, c := fakeSend(t, alice, bob, File{Name: "doc.txt", Size: int64(len(data)), HasSize: true, Hashes: []Hash{{Algo: AlgoSHA256, Value: wrong[:]}}})
	conn, _ := c.Conn(ctxT(t))
	conn.Write(data)
	waitEnd(t, s)
	_, rr := bob.next(t)
	if !errors.Is(rr.Err, ErrHashMismatch) || rr.Path != filepath.Join(bob.store.Dir, "doc.txt.failed") {
		t.Fatalf("result %+v", rr)
	}
	if _, err := os.Stat(filepath.Join(bob.store.Dir, "doc.txt")); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("file under its final name")
	}
}

func TestChecksumBeforeLastBytes(t *testing.T) {
	// Conversations over IBB: the checksum arrives before the last block.
	alice, bob := newPair(t, nil, []Option{WithAcceptPolicy(AcceptAll), WithChecksumWait(time.Hour)})
	data := make([]byte, 100<<10)
	rand.Read(data)
	s, c := fakeSend(t, alice, bob, File{Name: "cv.bin", Size: int64(len(data)), HasSize: true})
	conn, _ := c.Conn(ctxT(t))
	conn.Write(data[:len(data)-1]) // net.Pipe: returns once bob read it
	sum := sha256.Sum256(data)
	s1 := NewHasher(AlgoSHA1)
	s1.Write(data)
	sha1v, _ := s1.Sum(AlgoSHA1)
	// Conversations' shape: no creator, sha-1 and sha-256.
	if err := s.SendInfo(ctxT(t), Checksum{Name: c.Name, File: File{Hashes: []Hash{sha1v, {Algo: AlgoSHA256, Value: sum[:]}}}}.Element()); err != nil {
		t.Fatal(err)
	}
	conn.Write(data[len(data)-1:])
	// Like Conversations, never close the stream.
	if r := waitEnd(t, s); r.Condition != jingle.ReasonSuccess {
		t.Fatalf("terminated with %v", r)
	}
	_, rr := bob.next(t)
	if rr.Err != nil || !rr.Verified {
		t.Fatalf("result %+v", rr)
	}
	if got, _ := os.ReadFile(rr.Path); !bytes.Equal(got, data) {
		t.Fatal("content differs")
	}
}

func TestNoHash(t *testing.T) {
	// Dino sends no hash at all: kept, unverified.
	alice, bob := newPair(t, nil, []Option{WithAcceptPolicy(AcceptAll)})
	data := []byte("dino data")
	s, c := fakeSend(t, alice, bob, File{Name: "d.bin", Size: int64(len(data)), HasSize: true})
	conn, _ := c.Conn(ctxT(t))
	conn.Write(data)
	if r := waitEnd(t, s); r.Condition != jingle.ReasonSuccess {
		t.Fatalf("terminated with %v", r)
	}
	_, rr := bob.next(t)
	if rr.Err != nil || rr.Verified || rr.VerifyNote != "peer sent no hash" || rr.Path == "" {
		t.Fatalf("result %+v", rr)
	}

	// With WithRequireHash, refused.
	alice2, bob2 := newPair(t, nil, []Option{WithAcceptPolicy(AcceptAll), WithRequireHash(true)})
	s2, c2 := fakeSend(t, alice2, bob2, File{Name: "d.bin", Size: int64(len(data)), HasSize: true})
	conn2, _ := c2.Conn(ctxT(t))
	conn2.Write(data)
	if r := waitEnd(t, s2); r.Condition == jingle.ReasonSuccess {
		t.Fatalf("terminated with %v", r)
	}
	_, rr2 := bob2.next(t)
	if !errors.Is(rr2.Err, ErrNoHash) || len(dirNames(t, bob2.store.Dir)) != 0 {
		t.Fatalf("result %+v", rr2)
	}
}

func TestSizeLie(t *testing.T) {
	t.Run("short", func(t *testing.T) {
		alice, bob := newPair(t, nil, []Option{WithAcceptPolicy(AcceptAll)})
		s, c := fakeSend(t, alice, bob, File{Name: "s.bin", Size: 10, HasSize: true})
		conn, _ := c.Conn(ctxT(t))
		conn.Write([]byte("12345"))
		conn.Close()
		if r := waitEnd(t, s); r.Condition != jingle.ReasonMediaError {
			t.Fatalf("terminated with %v", r)
		}
		_, rr := bob.next(t)
		if !errors.Is(rr.Err, ErrSizeMismatch) || len(dirNames(t, bob.store.Dir)) != 0 {
			t.Fatalf("result %+v", rr)
		}
	})
	t.Run("long", func(t *testing.T) {
		alice, bob := newPair(t, nil, []Option{WithAcceptPolicy(AcceptAll)})
		s, c := fakeSend(t, alice, bob, File{Name: "l.bin", Size: 5, HasSize: true, HashUsed: []string{AlgoSHA256}})
		conn, _ := c.Conn(ctxT(t))
		conn.Write([]byte("1234567890")) // returns when bob closes
		if r := waitEnd(t, s); r.Condition != jingle.ReasonMediaError {
			t.Fatalf("terminated with %v", r)
		}
		_, rr := bob.next(t)
		if !errors.Is(rr.Err, ErrSizeMismatch) || len(dirNames(t, bob.store.Dir)) != 0 {
			t.Fatalf("result %+v", rr)
		}
	})
	t.Run("peer cancels", func(t *testing.T) {
		alice, bob := newPair(t, nil, []Option{WithAcceptPolicy(AcceptAll)})
		s, c := fakeSend(t, alice, bob, File{Name: "c.bin", Size: 10, HasSize: true})
		conn, _ := c.Conn(ctxT(t))
		conn.Write([]byte("123"))
		s.Terminate(ctxT(t), jingle.Reason{Condition: jingle.ReasonCancel})
		_, rr := bob.next(t)
		if !errors.Is(rr.Err, ErrPeerGone) || len(dirNames(t, bob.store.Dir)) != 0 {
			t.Fatalf("result %+v", rr)
		}
	})
}

func TestRequest(t *testing.T) {
	path, data := writeFile(t, "shared.pdf", 200<<10)
	alice, bob := newPair(t, nil, []Option{WithShared(func(req File) (string, bool) {
		if req.Name == "shared.pdf" {
			return path, true
		}
		return "", false
	})})
	res, err := alice.app.Request(ctxT(t), alice.m, bob.jid, File{Name: "shared.pdf"}, RequestOptions{Transport: nsPipe})
	if err != nil {
		t.Fatalf("request: %v", err)
	}
	if !res.Verified || res.Bytes != int64(len(data)) || res.SHA256 != sha256hex(data) {
		t.Fatalf("result %+v", res)
	}
	if got, _ := os.ReadFile(res.Path); !bytes.Equal(got, data) || filepath.Dir(res.Path) != alice.store.Dir {
		t.Fatalf("stored at %s", res.Path)
	}
	_, sr := bob.next(t)
	if sr.Err != nil || !sr.Verified {
		t.Fatalf("sender result %+v", sr)
	}

	// A file not shared: file-not-available (§9.1).
	if _, err := alice.app.Request(ctxT(t), alice.m, bob.jid, File{Name: "/etc/passwd"}, RequestOptions{Transport: nsPipe}); !errors.Is(err, ErrNotAvailable) {
		t.Fatalf("request of an unshared file: %v", err)
	}
}

func TestMalformedOffer(t *testing.T) {
	alice, bob := newPair(t, nil, []Option{WithAcceptPolicy(AcceptAll)})
	raw := mustParse(t, `<description xmlns='urn:xmpp:jingle:apps:file-transfer:5'><file><size>-3</size></file></description>`)
	s, err := alice.m.Initiate(ctxT(t), bob.jid, jingle.ContentSpec{Name: "f", Senders: jingle.SendersInitiator, Description: raw, Transport: nsPipe})
	if err != nil {
		t.Fatal(err)
	}
	var te *jingle.TerminatedError
	if err := s.WaitActive(ctxT(t)); !errors.As(err, &te) || te.Reason.Condition != jingle.ReasonFailedApplication {
		t.Fatalf("wait: %v", err)
	}
}

func TestSendCancel(t *testing.T) {
	// The receiver's policy blocks; the sender gives up.
	release := make(chan struct{})
	alice, bob := newPair(t, nil, []Option{WithAcceptPolicy(func(ctx context.Context, _ *Offer) (bool, error) {
		select {
		case <-release:
		case <-ctx.Done():
		}
		return false, nil
	})})
	defer close(release)
	path, _ := writeFile(t, "x", 10)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := alice.app.Send(ctx, alice.m, bob.jid, path, SendOptions{Transport: nsPipe}); !errors.Is(err, ErrTimeout) {
		t.Fatalf("send: %v", err)
	}
	// Bob's policy is released by the session's end (ctx cancelled).
	select {
	case <-bob.transfers:
		t.Fatal("bob started a transfer")
	default:
	}
}

func TestMemoryFlat(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	alice, bob := newPair(t, nil, []Option{WithAcceptPolicy(AcceptAll)})
	const size = 32 << 20
	path, _ := writeFile(t, "big.bin", size)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	if _, err := alice.app.Send(ctxT(t), alice.m, bob.jid, path, SendOptions{Transport: nsPipe}); err != nil {
		t.Fatal(err)
	}
	bob.next(t)
	runtime.ReadMemStats(&after)
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > size/4 {
		t.Fatalf("a %d MiB transfer allocated %d KiB", size>>20, alloc>>10)
	}
}

func TestOverIBB(t *testing.T) {
	alice, bob := newPair(t, nil, []Option{WithAcceptPolicy(AcceptAll)})
	path, data := writeFile(t, "ibb.bin", 300<<10+5)
	res, err := alice.app.Send(ctxT(t), alice.m, bob.jid, path, SendOptions{Transport: ibb.NSJingle})
	if err != nil || !res.Verified || res.Transport != ibb.NSJingle {
		t.Fatalf("send: %+v %v", res, err)
	}
	_, rr := bob.next(t)
	if got, _ := os.ReadFile(rr.Path); rr.Err != nil || !rr.Verified || !bytes.Equal(got, data) {
		t.Fatalf("receive: %+v", rr)
	}

	// And a pull over IBB, the other way.
	bob.app.shared = func(File) (string, bool) { return path, true }
	res, err = alice.app.Request(ctxT(t), alice.m, bob.jid, File{Name: "ibb.bin", Size: int64(len(data)), HasSize: true}, RequestOptions{Transport: ibb.NSJingle})
	if got, _ := os.ReadFile(res.Path); err != nil || !res.Verified || !bytes.Equal(got, data) {
		t.Fatalf("request: %+v %v", res, err)
	}
}

// scriptedReceiver accepts, reads the stream to its end, optionally sends
// <received/>, and never terminates (Dino over IBB never completes).
type scriptedReceiver struct{ sendReceived bool }

func (*scriptedReceiver) Namespace() string { return NS }

func (r *scriptedReceiver) HandleSession(ctx context.Context, s *jingle.Session) {
	if err := s.Accept(ctx); err != nil {
		return
	}
	c := s.Contents()[0]
	conn, err := c.Conn(ctx)
	if err != nil {
		return
	}
	defer conn.Close()
	io.Copy(io.Discard, conn)
	if r.sendReceived {
		s.SendInfo(ctx, Received{Creator: c.Creator, Name: c.Name}.Element())
	}
	select {
	case <-s.Done():
	case <-ctx.Done():
	}
}

func TestSenderConfirmation(t *testing.T) {
	for _, tc := range []struct {
		name         string
		sendReceived bool
		verified     bool
		note         string
		wantErr      error
	}{
		{"received, no terminate", true, true, "", nil},
		{"silent receiver", false, false, "receiver did not confirm", ErrUnconfirmed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			network := xjtest.NewNetwork()
			hub := newPipeHub()
			sa, sb := network.Add("alice@example.test/a"), network.Add("bob@example.test/b")
			defer sa.Close()
			defer sb.Close()
			alice := New(nil, WithConfirmWait(100*time.Millisecond), WithLogger(testLogger(t)))
			alice.grace = 50 * time.Millisecond
			ma, _ := jingle.NewManager(sa, jingle.WithApplication(alice), jingle.WithTransport(hub))
			defer ma.Close()
			mb, _ := jingle.NewManager(sb, jingle.WithApplication(&scriptedReceiver{sendReceived: tc.sendReceived}), jingle.WithTransport(hub))
			defer mb.Close()
			path, _ := writeFile(t, "f", 1000)
			res, err := alice.Send(ctxT(t), ma, sb.LocalJID(), path, SendOptions{Transport: nsPipe})
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) || res.Verified != tc.verified || res.VerifyNote != tc.note {
				t.Fatalf("%+v %v", res, err)
			}
			for _, s := range ma.Sessions() {
				t.Fatalf("session %s still live", s.SID())
			}
		})
	}
}

func TestIdleTimeout(t *testing.T) {
	alice, bob := newPair(t, nil, []Option{WithAcceptPolicy(AcceptAll), WithIdleTimeout(100 * time.Millisecond)})
	s, c := fakeSend(t, alice, bob, File{Name: "stall.bin", Size: 10, HasSize: true})
	conn, _ := c.Conn(ctxT(t))
	conn.Write([]byte("123"))
	// ... and nothing more.
	if r := waitEnd(t, s); r.Condition != jingle.ReasonConnectivityError {
		t.Fatalf("terminated with %v", r)
	}
	_, rr := bob.next(t)
	if !errors.Is(rr.Err, ErrTimeout) || len(dirNames(t, bob.store.Dir)) != 0 {
		t.Fatalf("result %+v", rr)
	}
}

package ibb

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"math/rand"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/xjingle/xjingle/internal/xjtest"
	"github.com/xjingle/xjingle/jingle"
	"go.uber.org/goleak"
	"golang.org/x/net/nettest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	aliceJID = "alice@example.test/a"
	bobJID   = "bob@example.test/b"
)

// env is two Handlers on an in-memory network.
type env struct {
	net    *xjtest.Network
	sa, sb *xjtest.Signaller
	ha, hb *Handler
}

func newEnv(t testing.TB, opts ...Option) *env { return newEnvSplit(t, opts, opts) }

// newEnvSplit gives alice's and bob's Handlers their own options.
func newEnvSplit(t testing.TB, optsA, optsB []Option) *env {
	t.Helper()
	e := &env{net: xjtest.NewNetwork()}
	e.sa, e.sb = e.net.Add(aliceJID), e.net.Add(bobJID)
	var err error
	if e.ha, err = NewHandler(e.sa, optsA...); err != nil {
		t.Fatal(err)
	}
	if e.hb, err = NewHandler(e.sb, optsB...); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *env) close() {
	e.ha.Close()
	e.hb.Close()
	e.sa.Close()
	e.sb.Close()
}

// open opens sid from alice to bob and returns (alice's, bob's) conns.
func (e *env) open(t testing.TB, sid string, blockSize int) (*Conn, *Conn) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	type res struct {
		c   *Conn
		err error
	}
	ch := make(chan res, 1)
	exp, err := e.hb.expect(e.sa.LocalJID(), sid, MaxBlockSize)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		c, err := e.hb.wait(ctx, exp)
		ch <- res{c, err}
	}()
	a, err := e.ha.Open(ctx, e.sb.LocalJID(), sid, blockSize)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	r := <-ch
	if r.err != nil {
		t.Fatalf("Expect: %v", r.err)
	}
	return a, r.c
}

func TestNetConn(t *testing.T) {
	nettest.TestConn(t, func() (c1, c2 net.Conn, stop func(), err error) {
		e := newEnv(t, WithBlockSize(4096), WithReadBuffer(64<<10), WithCloseTimeout(2*time.Second))
		a, b := e.open(t, "s1", 0)
		return a, b, func() {
			var wg sync.WaitGroup
			wg.Add(2)
			go func() { defer wg.Done(); a.Close() }()
			go func() { defer wg.Done(); b.Close() }()
			wg.Wait()
			e.close()
		}, nil
	})
}

// transfer sends size random bytes from a to b and compares SHA-256.
func transfer(t testing.TB, a, b net.Conn, size int) {
	t.Helper()
	src := make([]byte, size)
	rand.New(rand.NewSource(1)).Read(src)
	want := sha256.Sum256(src)
	errc := make(chan error, 1)
	go func() {
		_, err := io.Copy(a, bytes.NewReader(src))
		if cerr := a.Close(); err == nil {
			err = cerr
		}
		errc <- err
	}()
	h := sha256.New()
	n, err := io.Copy(h, b)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("write: %v", err)
	}
	if n != int64(size) {
		t.Fatalf("got %d bytes, want %d", n, size)
	}
	if got := h.Sum(nil); !bytes.Equal(got, want[:]) {
		t.Fatal("sha-256 mismatch")
	}
	b.Close()
}

func TestTransfer16MiB(t *testing.T) {
	e := newEnv(t, WithBlockSize(65535))
	defer e.close()
	a, b := e.open(t, "big", 0)
	transfer(t, a, b, 16<<20)
}

// syncOnly hides AsyncIQSender: the window falls back to 1.
type syncOnly struct{ jingle.Signaller }

func TestTransferWithoutAsyncSender(t *testing.T) {
	n := xjtest.NewNetwork()
	sa, sb := n.Add(aliceJID), n.Add(bobJID)
	defer sa.Close()
	defer sb.Close()
	ha, err := NewHandler(syncOnly{sa}, WithBlockSize(8192))
	if err != nil {
		t.Fatal(err)
	}
	defer ha.Close()
	hb, err := NewHandler(syncOnly{sb})
	if err != nil {
		t.Fatal(err)
	}
	defer hb.Close()
	ctx := context.Background()
	exp, err := hb.expect(sa.LocalJID(), "sync", MaxBlockSize)
	if err != nil {
		t.Fatal(err)
	}
	a, err := ha.Open(ctx, sb.LocalJID(), "sync", 0)
	if err != nil {
		t.Fatal(err)
	}
	b, err := hb.wait(ctx, exp)
	if err != nil {
		t.Fatal(err)
	}
	if cap(a.slots) != 1 {
		t.Fatalf("window %d without AsyncIQSender, want 1", cap(a.slots))
	}
	transfer(t, a, b, 1<<20+17)
}

func TestSeqWrap(t *testing.T) {
	e := newEnv(t, WithBlockSize(16), withInitialSeq(65530))
	defer e.close()
	a, b := e.open(t, "wrap", 0)
	// 20 blocks of 16 bytes: seq 65530..65535, 0..13.
	transfer(t, a, b, 20*16)
	if a.wseq != 14 {
		t.Fatalf("next seq after wrap = %d, want 14", a.wseq)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.rseq != 14 {
		t.Fatalf("receiver next seq = %d, want 14", b.rseq)
	}
}

func TestBidirectional(t *testing.T) {
	e := newEnv(t, WithBlockSize(1000))
	defer e.close()
	a, b := e.open(t, "bi", 0)
	msgA, msgB := bytes.Repeat([]byte("a"), 5000), bytes.Repeat([]byte("b"), 7000)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); a.Write(msgA) }()
	go func() { defer wg.Done(); b.Write(msgB) }()
	gotB := make([]byte, len(msgB))
	if _, err := io.ReadFull(a, gotB); err != nil || !bytes.Equal(gotB, msgB) {
		t.Fatalf("a read: %v", err)
	}
	gotA := make([]byte, len(msgA))
	if _, err := io.ReadFull(b, gotA); err != nil || !bytes.Equal(gotA, msgA) {
		t.Fatalf("b read: %v", err)
	}
	wg.Wait()
	a.Close()
	if _, err := b.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("after peer close: %v, want io.EOF", err)
	}
	if _, err := b.Write([]byte("x")); !errors.Is(err, ErrClosedByPeer) {
		t.Fatalf("write after peer close: %v, want ErrClosedByPeer", err)
	}
	b.Close()
}

func TestDeadlines(t *testing.T) {
	e := newEnv(t, WithBlockSize(1024), WithReadBuffer(2048), WithWindow(2))
	defer e.close()
	a, b := e.open(t, "dl", 0)
	defer a.Close()
	defer b.Close()

	// Read: nothing arrives.
	b.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	start := time.Now()
	_, err := b.Read(make([]byte, 10))
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read: %v, want a timeout", err)
	}
	if time.Since(start) < 20*time.Millisecond {
		t.Fatal("Read timed out early")
	}
	b.SetReadDeadline(time.Time{})

	// Write: b does not read; its buffer fills, acks stop, the window
	// fills, Write blocks until the deadline.
	a.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
	n, err := a.Write(make([]byte, 1<<20))
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("Write: %v, want a timeout", err)
	}
	// Bounded: buffer (2048) + window (2 blocks) + delayed blocks.
	if n > 2048+MaxWindow*1024 {
		t.Fatalf("Write sent %d bytes to a reader that does not read", n)
	}
	b.mu.Lock()
	buffered, deferred := len(b.rbuf)-b.roff, len(b.deferred)
	b.mu.Unlock()
	if buffered != n || deferred == 0 {
		t.Fatalf("receiver holds %d bytes (want %d) and %d delayed acks (want > 0)", buffered, n, deferred)
	}

	// Reading releases the acks: a Write without deadline completes.
	a.SetWriteDeadline(time.Time{})
	done := make(chan error, 1)
	go func() {
		_, err := a.Write(make([]byte, 10000))
		done <- err
	}()
	if _, err := io.ReadFull(b, make([]byte, n+10000)); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestCloseUnblocks(t *testing.T) {
	e := newEnv(t)
	defer e.close()
	a, b := e.open(t, "cl", 0)
	errc := make(chan error, 1)
	go func() {
		_, err := b.Read(make([]byte, 10))
		errc <- err
	}()
	b.Close()
	if err := <-errc; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Read after Close: %v, want net.ErrClosed", err)
	}
	// The peer got <close/>.
	if _, err := a.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("peer Read: %v, want io.EOF", err)
	}
	a.Close()
}

func TestOpenNotExpected(t *testing.T) {
	e := newEnv(t)
	defer e.close()
	_, err := e.ha.Open(context.Background(), e.sb.LocalJID(), "nobody", 0)
	if !errors.Is(err, &jingle.StanzaError{Condition: "not-acceptable"}) {
		t.Fatalf("Open: %v, want not-acceptable", err)
	}
	if e.ha.lookup(e.sb.LocalJID(), "nobody") != nil {
		t.Fatal("failed stream left in table")
	}
}

func TestOpenBlockSizeTooLarge(t *testing.T) {
	e := newEnv(t)
	defer e.close()
	exp, err := e.hb.expect(e.sa.LocalJID(), "bs", 4096)
	if err != nil {
		t.Fatal(err)
	}
	defer e.hb.abandon(exp)
	_, err = e.ha.Open(context.Background(), e.sb.LocalJID(), "bs", 8192)
	if !errors.Is(err, jingle.ErrResourceConstraint) {
		t.Fatalf("Open: %v, want resource-constraint", err)
	}
	// The expectation survives: a smaller block size works.
	a, err := e.ha.Open(context.Background(), e.sb.LocalJID(), "bs", 4096)
	if err != nil {
		t.Fatal(err)
	}
	b, err := e.hb.wait(context.Background(), exp)
	if err != nil {
		t.Fatal(err)
	}
	if b.BlockSize() != 4096 {
		t.Fatalf("block size %d", b.BlockSize())
	}
	a.Close()
	b.Close()
}

func TestExpectReplacedAndCancelled(t *testing.T) {
	e := newEnv(t)
	defer e.close()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	first, err := e.hb.expect(e.sa.LocalJID(), "x", 100)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		_, err := e.hb.wait(context.Background(), first)
		errc <- err
	}()
	second, err := e.hb.expect(e.sa.LocalJID(), "x", 100)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-errc; !errors.Is(err, ErrExpectReplaced) {
		t.Fatalf("first Expect: %v", err)
	}
	cancel()
	if _, err := e.hb.wait(ctx, second); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled Expect: %v", err)
	}
	if _, err := e.ha.Open(context.Background(), e.sb.LocalJID(), "x", 0); !errors.Is(err, jingle.ErrNotAcceptable) {
		t.Fatalf("Open after cancelled Expect: %v", err)
	}
}

func TestHandlerCloseFailsExpect(t *testing.T) {
	e := newEnv(t)
	defer e.close()
	errc := make(chan error, 1)
	exp, _ := e.hb.expect(e.sa.LocalJID(), "y", 100)
	go func() {
		_, err := e.hb.wait(context.Background(), exp)
		errc <- err
	}()
	e.hb.Close()
	if err := <-errc; !errors.Is(err, ErrHandlerClosed) {
		t.Fatalf("Expect: %v", err)
	}
	if _, err := e.hb.Open(context.Background(), e.sa.LocalJID(), "z", 0); !errors.Is(err, ErrHandlerClosed) {
		t.Fatalf("Open: %v", err)
	}
}

func TestAddr(t *testing.T) {
	e := newEnv(t)
	defer e.close()
	a, b := e.open(t, "addr", 0)
	defer a.Close()
	defer b.Close()
	la := a.LocalAddr().(Addr)
	if la.JID.String() != aliceJID || la.SID != "addr" || a.LocalAddr().Network() != "ibb" {
		t.Fatalf("LocalAddr %v", la)
	}
	if b.RemoteAddr().String() != aliceJID+"#addr" {
		t.Fatalf("RemoteAddr %v", b.RemoteAddr())
	}
}

func TestDataInMessage(t *testing.T) {
	e := newEnv(t)
	defer e.close()
	a, b := e.open(t, "msg", 0)
	defer a.Close()
	defer b.Close()
	// XEP-0047 §4: <data/> in a message stanza.
	payload := []byte("<data xmlns='" + NS + "' seq='0' sid='msg'>aGk=</data>")
	if err := e.sa.SendMessage(context.Background(), e.sb.LocalJID(), "normal", payload); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2)
	if _, err := io.ReadFull(b, buf); err != nil || string(buf) != "hi" {
		t.Fatalf("got %q, %v", buf, err)
	}
}

// An error answer to <data/> fails the stream (XEP-0047 §2.2).
func TestDataErrorFailsSender(t *testing.T) {
	e := newEnv(t)
	defer e.close()
	a, b := e.open(t, "de", 0)
	defer a.Close()
	b.abort() // bob forgets the stream without <close/>
	// A Write returns before its answer; once the window is full, the
	// next Write waits for an answer and reports the error.
	var err error
	for i := 0; i <= DefaultWindow && err == nil; i++ {
		_, err = a.Write([]byte("x"))
	}
	if !errors.Is(err, jingle.ErrItemNotFound) {
		t.Fatalf("Write: %v, want item-not-found", err)
	}
	if _, err := a.Read(make([]byte, 1)); !errors.Is(err, jingle.ErrItemNotFound) {
		t.Fatalf("Read: %v", err)
	}
}

func TestHandlerCloseClosesStreams(t *testing.T) {
	e := newEnv(t)
	defer e.close()
	a, b := e.open(t, "hc", 0)
	defer b.Close()
	e.ha.Close()
	if _, err := a.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Write on a stream of a closed Handler: %v", err)
	}
	if _, err := b.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("peer Read: %v, want io.EOF", err)
	}
}

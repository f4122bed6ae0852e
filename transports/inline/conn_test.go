package inline

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"testing"

	"go.uber.org/goleak"
	"golang.org/x/net/nettest"
	"mellium.im/xmpp/jid"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var (
	aliceJID = jid.MustParse("alice@example.test/a")
	bobJID   = jid.MustParse("bob@example.test/b")
)

// connPipe connects two Conns in memory: what one sends the other
// receives, with the same deliver the Jingle transport uses.
func connPipe(max int64) (a, b *Conn) {
	aa, ba := Addr{JID: aliceJID, SID: "s"}, Addr{JID: bobJID, SID: "s"}
	to := func(peer **Conn) sendFunc {
		return func(ctx context.Context, p []byte, eof bool) error {
			err := (*peer).deliver(ctx, bytes.Clone(p), eof)
			if eof && errors.Is(err, net.ErrClosed) {
				return nil // like a FIN to a closed socket
			}
			return err
		}
	}
	a = newConn(aa, ba, max, to(&b))
	b = newConn(ba, aa, max, to(&a))
	return a, b
}

// flushing sends every Write at once (the Conn's own Write only buffers
// until CloseWrite: one stanza). nettest needs a stream that moves while
// open; this adapter flushes on the application's behalf (STYLE rule 4)
// and exercises the same buffer, deadline, close and delivery code.
type flushing struct{ *Conn }

func (f flushing) Write(b []byte) (int, error) {
	f.wmu.Lock()
	defer f.wmu.Unlock()
	n, err := f.writeLocked(b)
	if err != nil {
		return n, err
	}
	if err := f.flushLocked(context.Background(), false, false); err != nil {
		return n, err
	}
	return n, nil
}

func TestConnNettest(t *testing.T) {
	nettest.TestConn(t, func() (c1, c2 net.Conn, stop func(), err error) {
		a, b := connPipe(1 << 40)
		return flushing{a}, flushing{b}, func() { a.Close(); b.Close() }, nil
	})
}

// The one-shot use: writes are held until CloseWrite, then the reader gets
// them and io.EOF.
func TestConnOneShot(t *testing.T) {
	a, b := connPipe(10)
	defer a.Close()
	defer b.Close()
	if _, err := a.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Write([]byte("world")); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Write([]byte("!")); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("write past max-size: %v, want ErrTooLarge", err)
	}
	b.mu.Lock()
	early := len(b.rbuf)
	b.mu.Unlock()
	if early != 0 {
		t.Fatal("data left before CloseWrite")
	}
	if err := a.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Write([]byte("x")); !errors.Is(err, ErrWriteClosed) {
		t.Fatalf("write after CloseWrite: %v", err)
	}
	got, err := io.ReadAll(b)
	if err != nil || string(got) != "helloworld" {
		t.Fatalf("read %q, %v", got, err)
	}
	// Close after CloseWrite sends nothing more.
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
}

// Close without CloseWrite sends what was written: here nothing, an empty
// stream.
func TestConnCloseSendsEmpty(t *testing.T) {
	a, b := connPipe(10)
	defer b.Close()
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	n, err := b.Read(make([]byte, 4))
	if n != 0 || err != io.EOF {
		t.Fatalf("read %d, %v; want 0, EOF", n, err)
	}
	if _, err := a.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("write after Close: %v", err)
	}
}

// A receive-only Conn refuses writes and sends nothing on Close.
func TestConnReceiveOnly(t *testing.T) {
	c := newConn(Addr{}, Addr{}, 10, nil)
	if _, err := c.Write([]byte("x")); !errors.Is(err, ErrWriteClosed) {
		t.Fatalf("write: %v", err)
	}
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	c.fail(ErrTransportClosed)
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, ErrTransportClosed) {
		t.Fatalf("read after fail: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
}

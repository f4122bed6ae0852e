package proxy65

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"strconv"
	"testing"
	"time"

	"go.uber.org/goleak"
	"mellium.im/xmpp/jid"

	"github.com/xjingle/xjingle/socks5"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var (
	requester = jid.MustParse("alice@example.test/a")
	target    = jid.MustParse("bob@example.test/b")
)

// startProxy serves a Proxy with cfg on a loopback listener; the Proxy is
// closed at the end of the test and Serve must have returned ErrClosed.
func startProxy(t *testing.T, cfg Config) (*Proxy, string) {
	t.Helper()
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- p.Serve(l) }()
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if err := <-served; !errors.Is(err, ErrClosed) {
			t.Errorf("Serve returned %v, want ErrClosed", err)
		}
	})
	return p, l.Addr().String()
}

func dial(t *testing.T, addr, dst string) (net.Conn, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := (&socks5.Dialer{}).Dial(ctx, addr, dst)
	if err == nil {
		t.Cleanup(func() { c.Close() })
	}
	return c, err
}

func mustDial(t *testing.T, addr, dst string) net.Conn {
	t.Helper()
	c, err := dial(t, addr, dst)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestPairActivateSpliceHalfClose(t *testing.T) {
	p, addr := startProxy(t, Config{})
	released := make(chan string, 1)
	p.mu.Lock()
	p.onRelease = func(dst string) { released <- dst }
	p.mu.Unlock()
	dst := socks5.DstAddr("s1", requester, target)
	tc := mustDial(t, addr, dst) // the target connects first (XEP-0065 §6.3.2)
	rc := mustDial(t, addr, dst) // then the requester (§6.3.4)
	if err := p.Activate(requester, "s1", target); err != nil {
		t.Fatalf("Activate: %v", err)
	}
	if st := p.Stats(); st.Conns != 2 || st.Streams != 1 {
		t.Errorf("stats after activation %+v, want 2 conns, 1 stream", st)
	}

	up := make([]byte, 1<<20)
	rand.Read(up)
	down := []byte("thanks, got it")
	sent := make(chan error, 1)
	go func() {
		_, err := rc.Write(up)
		if err == nil {
			err = rc.(*net.TCPConn).CloseWrite() // end of file, keep reading
		}
		sent <- err
	}()
	got, err := io.ReadAll(tc) // ends only with the half-close passed on
	if err != nil || !bytes.Equal(got, up) {
		t.Fatalf("target read %d bytes (%v), want the %d sent", len(got), err, len(up))
	}
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	// The other direction still works after the half-close.
	if _, err := tc.Write(down); err != nil {
		t.Fatal(err)
	}
	tc.(*net.TCPConn).CloseWrite()
	back, err := io.ReadAll(rc)
	if err != nil || !bytes.Equal(back, down) {
		t.Fatalf("requester read %q (%v), want %q", back, err, down)
	}
	// Both directions ended: the proxy closes both and forgets the stream.
	select {
	case d := <-released:
		if d != dst {
			t.Errorf("released %s, want %s", d, dst)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("stream not released after both directions ended")
	}
	if st := p.Stats(); st.Streams != 0 || st.Conns != 0 {
		t.Errorf("stats %+v, want everything released", st)
	}
	if b := p.Stats().Bytes; b != int64(len(up)+len(down)) {
		t.Errorf("bytes spliced %d, want %d", b, len(up)+len(down))
	}
}

func TestActivationChecks(t *testing.T) {
	p, addr := startProxy(t, Config{})
	dst := socks5.DstAddr("s2", requester, target)
	mustDial(t, addr, dst)
	// Only the target is there (XEP-0065 §6.3.5: not-allowed).
	if err := p.Activate(requester, "s2", target); !errors.Is(err, ErrOneSided) {
		t.Errorf("with one party: %v, want ErrOneSided", err)
	}
	mustDial(t, addr, dst)
	mallory := jid.MustParse("mallory@example.test/m")
	// Someone else (or the target) asks: the hash differs (item-not-found).
	for _, tc := range []struct {
		req, tgt jid.JID
		sid      string
	}{{mallory, target, "s2"}, {target, requester, "s2"}, {requester, target, "s3"}, {requester.Bare(), target, "s2"}} {
		if err := p.Activate(tc.req, tc.sid, tc.tgt); !errors.Is(err, ErrNotFound) {
			t.Errorf("Activate(%s, %s, %s): %v, want ErrNotFound", tc.req, tc.sid, tc.tgt, err)
		}
	}
	if err := p.Activate(requester, "s2", target); err != nil {
		t.Fatalf("Activate by the requester: %v", err)
	}
	if err := p.Activate(requester, "s2", target); !errors.Is(err, ErrAlreadyActive) {
		t.Errorf("second activation: %v, want ErrAlreadyActive", err)
	}
}

func TestThirdConnectionRefused(t *testing.T) {
	p, addr := startProxy(t, Config{})
	dst := socks5.DstAddr("s4", requester, target)
	mustDial(t, addr, dst)
	mustDial(t, addr, dst)
	_, err := dial(t, addr, dst)
	var rep socks5.ReplyError
	if !errors.As(err, &rep) || rep != socks5.ReplyConnectionRefused {
		t.Fatalf("third connection: %v, want connection refused", err)
	}
	// And after activation, no newcomer either.
	if err := p.Activate(requester, "s4", target); err != nil {
		t.Fatal(err)
	}
	if _, err := dial(t, addr, dst); !errors.As(err, &rep) {
		t.Fatalf("connection after activation: %v, want a refusal", err)
	}
	// Malformed DST.ADDRs are refused by the handshake (package socks5).
	if _, err := dial(t, addr, "not-a-hash"); err == nil {
		t.Fatal("bad DST.ADDR accepted")
	}
}

func TestUnmatchedTimeout(t *testing.T) {
	p, addr := startProxy(t, Config{UnmatchedTimeout: 50 * time.Millisecond})
	dst := socks5.DstAddr("s5", requester, target)
	c := mustDial(t, addr, dst)
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	start := time.Now()
	n, err := c.Read(make([]byte, 1)) // the proxy closes it
	if n != 0 || err == nil {
		t.Fatalf("read %d, %v; want the connection closed", n, err)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the proxy did not drop the unmatched connection: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("dropped after %v", d)
	}
	if err := p.Activate(requester, "s5", target); !errors.Is(err, ErrNotFound) {
		t.Errorf("Activate after the timeout: %v, want ErrNotFound", err)
	}
	// The DST.ADDR is free again.
	mustDial(t, addr, dst)
}

func TestConnectionLimit(t *testing.T) {
	p, addr := startProxy(t, Config{MaxConns: 1})
	mustDial(t, addr, socks5.DstAddr("s6", requester, target))
	if _, err := dial(t, addr, socks5.DstAddr("s7", requester, target)); err == nil {
		t.Fatal("connection beyond MaxConns accepted")
	}
	if st := p.Stats(); st.Conns != 1 {
		t.Errorf("stats %+v, want 1 conn", st)
	}
}

func TestCloseReleasesSplices(t *testing.T) {
	p, addr := startProxy(t, Config{})
	dst := socks5.DstAddr("s8", requester, target)
	tc := mustDial(t, addr, dst)
	mustDial(t, addr, dst)
	if err := p.Activate(requester, "s8", target); err != nil {
		t.Fatal(err)
	}
	mustDial(t, addr, socks5.DstAddr("s9", requester, target)) // one waiting
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	tc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := tc.Read(make([]byte, 1)); err == nil {
		t.Fatal("spliced connection still open after Close")
	}
	if err := p.Activate(requester, "s8", target); !errors.Is(err, ErrClosed) {
		t.Errorf("Activate after Close: %v", err)
	}
}

func TestConfigValidation(t *testing.T) {
	for _, c := range []Config{{UnmatchedTimeout: -1}, {HandshakeTimeout: -1}, {MaxConns: -1}} {
		if _, err := New(c); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("New(%+v): %v, want ErrInvalidConfig", c, err)
		}
	}
}

func mustPort(t *testing.T, s string) uint16 {
	t.Helper()
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil {
		t.Fatal(err)
	}
	return uint16(n)
}

func itoa(n int) string { return strconv.Itoa(n) }

// TestShutdownDrains: Shutdown drops the bytestreams still waiting, keeps
// the activated one running until it ends, and then returns nil.
func TestShutdownDrains(t *testing.T) {
	p, addr := startProxy(t, Config{})
	dst := socks5.DstAddr("d1", requester, target)
	tc := mustDial(t, addr, dst)
	rc := mustDial(t, addr, dst)
	if err := p.Activate(requester, "d1", target); err != nil {
		t.Fatal(err)
	}
	waiting := mustDial(t, addr, socks5.DstAddr("d2", requester, target))

	done := make(chan error, 1)
	go func() { done <- p.Shutdown(context.Background()) }()
	waiting.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := waiting.Read(make([]byte, 1)); err == nil || isTimeout(err) {
		t.Fatalf("waiting connection after Shutdown: %v, want it closed", err)
	}
	if _, err := dial(t, addr, socks5.DstAddr("d3", requester, target)); err == nil {
		t.Error("new connection accepted while draining")
	}
	// The activated stream still carries data both ways.
	if _, err := rc.Write([]byte("still here")); err != nil {
		t.Fatal(err)
	}
	rc.(*net.TCPConn).CloseWrite()
	got, err := io.ReadAll(tc)
	if err != nil || string(got) != "still here" {
		t.Fatalf("target read %q, %v", got, err)
	}
	select {
	case err := <-done:
		t.Fatalf("Shutdown returned (%v) while a bytestream is open", err)
	default:
	}
	tc.(*net.TCPConn).CloseWrite()
	if err := <-done; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}

// TestShutdownDeadline: a bytestream that outlives ctx is cut.
func TestShutdownDeadline(t *testing.T) {
	p, addr := startProxy(t, Config{})
	dst := socks5.DstAddr("d4", requester, target)
	tc := mustDial(t, addr, dst)
	mustDial(t, addr, dst)
	if err := p.Activate(requester, "d4", target); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := p.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown: %v, want DeadlineExceeded", err)
	}
	tc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := tc.Read(make([]byte, 1)); err == nil || isTimeout(err) {
		t.Fatalf("bytestream after the deadline: %v, want it closed", err)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

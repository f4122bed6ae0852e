package socks5

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"go.uber.org/goleak"
	"mellium.im/xmpp/jid"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const testDst = "972b7bf47291ca609517f67f86b5081086052dad"

// listen opens a loopback listener (tests use 127.0.0.1 only).
func listen(t testing.TB) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// serve runs a Server on a loopback listener expecting testDst; accepted
// conns are sent on the returned channel. Everything stops at cleanup.
func serve(t *testing.T, timeout time.Duration) (*Server, string, <-chan net.Conn) {
	t.Helper()
	s := &Server{HandshakeTimeout: timeout}
	got := make(chan net.Conn, 4)
	if _, err := s.Expect(testDst, func(c net.Conn, via net.Addr) bool {
		select {
		case got <- c:
			return true
		default:
			return false
		}
	}); err != nil {
		t.Fatal(err)
	}
	l := listen(t)
	served := make(chan error, 1)
	go func() { served <- s.Serve(l) }()
	t.Cleanup(func() {
		s.Close()
		if err := <-served; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve: %v, want ErrServerClosed", err)
		}
		close(got)
		for c := range got {
			c.Close()
		}
	})
	return s, l.Addr().String(), got
}

func TestHandshakeGood(t *testing.T) {
	_, addr, got := serve(t, time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var d Dialer
	c, err := d.Dial(ctx, addr, testDst)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sc := <-got
	// The handshake left no deadline behind and no byte unread.
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(sc, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("server read %q, %v", buf, err)
	}
	if _, ok := c.(interface{ CloseWrite() error }); !ok {
		t.Errorf("dialed conn %T has no CloseWrite", c)
	}
}

func TestHandshakeWrongDstAddr(t *testing.T) {
	_, addr, got := serve(t, time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var d Dialer
	_, err := d.Dial(ctx, addr, "0000000000000000000000000000000000000000")
	var rep ReplyError
	if !errors.As(err, &rep) || rep != ReplyConnectionRefused {
		t.Fatalf("Dial: %v, want ReplyConnectionRefused", err)
	}
	var oe *net.OpError
	if !errors.As(err, &oe) {
		t.Errorf("Dial: %T is not a *net.OpError", err)
	}
	select {
	case c := <-got:
		t.Fatalf("server handed over %v for a wrong dstaddr", c.RemoteAddr())
	default:
	}
}

// rawClient connects and returns the conn for hand-written SOCKS bytes.
func rawClient(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(5 * time.Second))
	return c
}

func request(dst string, port uint16) []byte {
	b := []byte{5, 1, 0, 3, byte(len(dst))}
	b = append(b, dst...)
	return append(b, byte(port>>8), byte(port))
}

func TestHandshakePortNotZero(t *testing.T) {
	_, addr, got := serve(t, time.Second)
	c := rawClient(t, addr)
	c.Write([]byte{5, 1, 0})
	c.Write(request(testDst, 1080))
	reply, _ := io.ReadAll(c) // the server closes after its reply
	if len(reply) < 4 || reply[2+1] != byte(ReplyNotAllowed) {
		t.Fatalf("reply %x, want method 00 then REP 02", reply)
	}
	select {
	case <-got:
		t.Fatal("server accepted DST.PORT 1080")
	default:
	}
}

func TestClientSendsPortZero(t *testing.T) {
	l := listen(t)
	defer l.Close()
	reqc := make(chan *Request, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			close(reqc)
			return
		}
		defer c.Close()
		if ok, err := ReadGreeting(c); err != nil || !ok {
			close(reqc)
			return
		}
		c.Write([]byte{5, 0})
		req, err := ReadRequest(c)
		if err != nil {
			close(reqc)
			return
		}
		writeReply(c, ReplySucceeded, req.Addr)
		reqc <- req
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var d Dialer
	c, err := d.Dial(ctx, l.Addr().String(), testDst)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	req := <-reqc
	if req == nil {
		t.Fatal("server saw no request")
	}
	want := Request{Cmd: 1, AddrType: 3, Addr: testDst, Port: 0}
	if *req != want {
		t.Fatalf("request %+v, want %+v", *req, want)
	}
}

func TestHandshakeNoAcceptableMethod(t *testing.T) {
	_, addr, _ := serve(t, time.Second)
	c := rawClient(t, addr)
	c.Write([]byte{5, 1, 2}) // username/password only
	reply, _ := io.ReadAll(c)
	if !bytes.Equal(reply, []byte{5, 0xff}) {
		t.Fatalf("reply %x, want 05ff", reply)
	}
}

func TestHandshakeUnsupported(t *testing.T) {
	_, addr, _ := serve(t, time.Second)
	for _, tc := range []struct {
		name string
		req  []byte
		rep  ReplyError
	}{
		{"bind", append([]byte{5, 2, 0, 3, 40}, append([]byte(testDst), 0, 0)...), ReplyCommandNotSupported},
		{"ipv4", []byte{5, 1, 0, 1, 127, 0, 0, 1, 0, 0}, ReplyAddressTypeNotSupported},
		{"bad atyp", []byte{5, 1, 0, 9}, ReplyAddressTypeNotSupported},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := rawClient(t, addr)
			c.Write([]byte{5, 1, 0})
			c.Write(tc.req)
			reply, _ := io.ReadAll(c)
			if len(reply) < 4 || reply[3] != byte(tc.rep) {
				t.Fatalf("reply %x, want REP %02x", reply, byte(tc.rep))
			}
		})
	}
}

func TestHandshakeStalledClientDropped(t *testing.T) {
	_, addr, got := serve(t, 100*time.Millisecond)
	c := rawClient(t, addr)
	c.Write([]byte{5, 1, 0})
	c.Write([]byte{5, 1, 0, 3, 40, 'a'}) // and then nothing
	start := time.Now()
	reply, err := io.ReadAll(c) // returns when the server drops us
	if err != nil {
		t.Fatalf("read: %v (the server did not close the stalled conn)", err)
	}
	if !bytes.Equal(reply, []byte{5, 0}) {
		t.Errorf("reply %x, want only the method selection", reply)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("dropped after %v", d)
	}
	select {
	case <-got:
		t.Fatal("stalled conn handed over")
	default:
	}
}

func TestServerMaxHandshakes(t *testing.T) {
	s := &Server{HandshakeTimeout: 5 * time.Second, MaxHandshakes: 1}
	s.Expect(testDst, func(net.Conn, net.Addr) bool { return false })
	l := listen(t)
	done := make(chan error, 1)
	go func() { done <- s.Serve(l) }()
	defer func() { s.Close(); <-done }()
	first := rawClient(t, l.Addr().String())
	first.Write([]byte{5, 1, 0})
	buf := make([]byte, 2)
	if _, err := io.ReadFull(first, buf); err != nil { // first is in handshake now
		t.Fatal(err)
	}
	second := rawClient(t, l.Addr().String())
	if n, err := second.Read(buf); err == nil {
		t.Fatalf("second conn beyond MaxHandshakes read %x", buf[:n])
	}
}

func TestClientHandshakeCancel(t *testing.T) {
	l := listen(t)
	defer l.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := l.Accept()
		if err == nil {
			accepted <- c // and never answer
		}
		close(accepted)
	}()
	c, err := net.Dial("tcp4", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithCancel(context.Background())
	res := make(chan error, 1)
	go func() { res <- ClientHandshake(ctx, c, testDst) }()
	sc := <-accepted
	if sc != nil {
		defer sc.Close()
		buf := make([]byte, 3)
		io.ReadFull(sc, buf) // the client is now waiting for our answer
	}
	cancel()
	select {
	case err := <-res:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("ClientHandshake: %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("ClientHandshake ignored cancellation")
	}
}

func TestClientHandshakeDeadline(t *testing.T) {
	l := listen(t)
	defer l.Close()
	c, err := net.Dial("tcp4", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sc, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err = ClientHandshake(ctx, c, testDst)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("ClientHandshake: %v, want a timeout", err)
	}
}

func TestClientHandshakeBadDstAddr(t *testing.T) {
	c1, c2 := net.Pipe()
	defer c1.Close()
	defer c2.Close()
	if err := ClientHandshake(context.Background(), c1, "not-a-hash"); !errors.Is(err, errBadDstAddr) {
		t.Fatalf("ClientHandshake: %v, want errBadDstAddr", err)
	}
}

func TestDstAddr(t *testing.T) {
	for _, tc := range []struct {
		name                string
		sid, req, tgt, want string
	}{
		// XEP-0260 Example 1: the initiator's candidates.
		{"xep-0260 initiator", "vj3hs98y", "romeo@montague.lit/orchard", "juliet@capulet.lit/balcony", "972b7bf47291ca609517f67f86b5081086052dad"},
		// XEP-0260 Example 3: the responder's candidates, its JID first.
		{"xep-0260 responder", "vj3hs98y", "juliet@capulet.lit/balcony", "romeo@montague.lit/orchard", "1a12fb7bc625e55f3ed5b29a53dbe0e4aa7d80ba"},
		// Dino 0.4.2 as initiator (captures/dino-0.4.2.xml, dino-to-cv).
		{"dino initiator", "fbee2833-a8dc-48e0-8db4-aa239cdcf5a6", "dino@example.test/dino", "alice@example.test/cv", "a197a11f9ff8e51b3726a7a4f3f350b91042f597"},
		// Dino 0.4.2 as responder (cv-s5b-to-dino): offerer first too.
		{"dino responder", "fdab3022-d862-4527-97ba-57f9de11a41b", "dino@example.test/dino", "alice@example.test/cv", "be48fb8c23df4aae9bb78bb23f5875eb59aae34a"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := DstAddr(tc.sid, jid.MustParse(tc.req), jid.MustParse(tc.tgt))
			if got != tc.want {
				t.Errorf("DstAddr = %s, want %s", got, tc.want)
			}
			if !ValidDstAddr(got) {
				t.Errorf("ValidDstAddr(%s) = false", got)
			}
		})
	}
}

func TestReplyError(t *testing.T) {
	if got := ReplyConnectionRefused.Error(); got != "socks5: connection refused" {
		t.Errorf("Error() = %q", got)
	}
	if got := ReplyError(0x42).Error(); got != "socks5: unknown reply code 66" {
		t.Errorf("Error() = %q", got)
	}
}

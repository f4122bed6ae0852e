package testbed

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// SOCKSProxy is a minimal SOCKS5 CONNECT proxy (RFC 1928, with RFC 1929
// user/password authentication) on 127.0.0.1 for tests of xjingle's
// --proxy: it stands for the user's own proxy (e.g. Tor). It records every
// CONNECT it is asked for, so a test can prove which connections went
// through it and whether it saw a name or an address.
//
// It connects only to loopback addresses: a name resolves only through
// SOCKSProxyOptions.Hosts (or "localhost"), and any other destination is
// refused with "connection not allowed by ruleset". It is test code: no
// BIND, no UDP ASSOCIATE, no IPv6 listener.
type SOCKSProxy struct {
	// Addr is 127.0.0.1:PORT.
	Addr string

	opts SOCKSProxyOptions
	ln   net.Listener
	wg   sync.WaitGroup

	mu       sync.Mutex
	conns    map[net.Conn]struct{}
	requests []SOCKSRequest
	counts   []*[2]atomic.Int64 // per request: bytes up, down
	accepted int
	closed   bool
}

// SOCKSProxyOptions configure StartSOCKSProxy.
type SOCKSProxyOptions struct {
	// User and Password, when User is set, make the proxy require RFC
	// 1929 authentication with them (a client offering only "no
	// authentication" is refused).
	User, Password string
	// Refuse answers every CONNECT with "connection not allowed by
	// ruleset" (RFC 1928 §6, reply 0x02).
	Refuse bool
	// Hosts maps names (as requested, without port) to the loopback
	// address they resolve to at the proxy; "localhost" is 127.0.0.1.
	Hosts map[string]string
	// PortMap rewrites a requested "name:port" to the host:port the proxy
	// connects to instead, e.g. "xjingle.test:5222" → the bed's c2s port.
	PortMap map[string]string
}

// SOCKSRequest is one CONNECT the proxy was asked for.
type SOCKSRequest struct {
	// Dest is the requested destination as host:port: a name stays a
	// name (Domain is then true), an address is printed as one.
	Dest   string
	Domain bool
	// User is the RFC 1929 user name the client authenticated with.
	User string
	// Reply is the RFC 1928 §6 reply code sent (0 = succeeded).
	Reply byte
	// Up and Down count the bytes relayed to and from the destination so
	// far (counted as the proxy reads them, before it passes them on).
	Up, Down int64
}

// SOCKS5 reply codes (RFC 1928 §6).
const (
	socksOK          = 0x00
	socksFailure     = 0x01
	socksNotAllowed  = 0x02
	socksHostUnreach = 0x04
	socksRefused     = 0x05
	socksBadCommand  = 0x07
	socksBadAddrType = 0x08
)

// StartSOCKSProxy starts a proxy on 127.0.0.1:0; t.Cleanup closes it.
func StartSOCKSProxy(t testing.TB, opts SOCKSProxyOptions) *SOCKSProxy {
	t.Helper()
	p, err := NewSOCKSProxy(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// NewSOCKSProxy starts a proxy on 127.0.0.1:0. Close stops it.
func NewSOCKSProxy(opts SOCKSProxyOptions) (*SOCKSProxy, error) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("testbed: socks proxy: %w", err)
	}
	p := &SOCKSProxy{Addr: ln.Addr().String(), opts: opts, ln: ln, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.serve()
	return p, nil
}

// URL is "socks5://[user:password@]ADDR" (scheme "socks5" or "socks5h").
func (p *SOCKSProxy) URL(scheme string) string {
	if p.opts.User != "" {
		return scheme + "://" + p.opts.User + ":" + p.opts.Password + "@" + p.Addr
	}
	return scheme + "://" + p.Addr
}

// Requests returns the CONNECTs so far, in order.
func (p *SOCKSProxy) Requests() []SOCKSRequest {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := append([]SOCKSRequest(nil), p.requests...)
	for i := range out {
		out[i].Up, out[i].Down = p.counts[i][0].Load(), p.counts[i][1].Load()
	}
	return out
}

// Accepted is the number of TCP connections the proxy accepted.
func (p *SOCKSProxy) Accepted() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.accepted
}

// Saw reports whether a successful CONNECT to dest (host:port as requested)
// happened.
func (p *SOCKSProxy) Saw(dest string) bool {
	for _, r := range p.Requests() {
		if r.Dest == dest && r.Reply == socksOK {
			return true
		}
	}
	return false
}

// Close stops accepting, closes every connection and waits for the relays.
func (p *SOCKSProxy) Close() error {
	p.mu.Lock()
	p.closed = true
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	err := p.ln.Close()
	p.wg.Wait()
	return err
}

// track registers c for Close; false if the proxy is closed.
func (p *SOCKSProxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *SOCKSProxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	c.Close()
}

func (p *SOCKSProxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		if !p.track(c) {
			c.Close()
			return
		}
		p.mu.Lock()
		p.accepted++
		p.mu.Unlock()
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			defer p.untrack(c)
			p.handle(c)
		}()
	}
}

// handshakeTimeout bounds a client's greeting, authentication and request.
const handshakeTimeout = 10 * time.Second

func (p *SOCKSProxy) handle(c net.Conn) {
	_ = c.SetDeadline(time.Now().Add(handshakeTimeout))
	user, err := p.greet(c)
	if err != nil {
		return
	}
	var hdr [4]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil || hdr[0] != 5 {
		return
	}
	var host string
	domain := false
	switch hdr[3] {
	case 1, 4:
		b := make([]byte, 4)
		if hdr[3] == 4 {
			b = make([]byte, 16)
		}
		if _, err := io.ReadFull(c, b); err != nil {
			return
		}
		a, _ := netip.AddrFromSlice(b)
		host = a.Unmap().String()
	case 3:
		var n [1]byte
		if _, err := io.ReadFull(c, n[:]); err != nil {
			return
		}
		b := make([]byte, n[0])
		if _, err := io.ReadFull(c, b); err != nil {
			return
		}
		host, domain = string(b), true
	default:
		reply(c, socksBadAddrType)
		return
	}
	var pb [2]byte
	if _, err := io.ReadFull(c, pb[:]); err != nil {
		return
	}
	dest := net.JoinHostPort(host, strconv.Itoa(int(binary.BigEndian.Uint16(pb[:]))))
	code, up := p.connect(hdr[1], dest, host, domain)
	n := new([2]atomic.Int64)
	p.mu.Lock()
	p.requests = append(p.requests, SOCKSRequest{Dest: dest, Domain: domain, User: user, Reply: code})
	p.counts = append(p.counts, n)
	p.mu.Unlock()
	reply(c, code)
	if up == nil {
		return
	}
	if !p.track(up) {
		up.Close()
		return
	}
	defer p.untrack(up)
	_ = c.SetDeadline(time.Time{})
	relay(c, up, &n[0], &n[1])
}

// greet negotiates the method (RFC 1928 §3) and authenticates (RFC 1929);
// it returns the user name.
func (p *SOCKSProxy) greet(c net.Conn) (string, error) {
	var b [2]byte
	if _, err := io.ReadFull(c, b[:]); err != nil {
		return "", err
	}
	if b[0] != 5 {
		return "", errors.New("not SOCKS5")
	}
	methods := make([]byte, b[1])
	if _, err := io.ReadFull(c, methods); err != nil {
		return "", err
	}
	want := byte(0x00)
	if p.opts.User != "" {
		want = 0x02
	}
	found := false
	for _, m := range methods {
		found = found || m == want
	}
	if !found {
		_, _ = c.Write([]byte{5, 0xff})
		return "", errors.New("no acceptable method")
	}
	if _, err := c.Write([]byte{5, want}); err != nil {
		return "", err
	}
	if want == 0x00 {
		return "", nil
	}
	// RFC 1929 §2: VER=1 ULEN UNAME PLEN PASSWD.
	if _, err := io.ReadFull(c, b[:]); err != nil || b[0] != 1 {
		return "", errors.New("bad auth request")
	}
	u := make([]byte, b[1])
	if _, err := io.ReadFull(c, u); err != nil {
		return "", err
	}
	if _, err := io.ReadFull(c, b[:1]); err != nil {
		return "", err
	}
	pw := make([]byte, b[0])
	if _, err := io.ReadFull(c, pw); err != nil {
		return "", err
	}
	if string(u) != p.opts.User || string(pw) != p.opts.Password {
		_, _ = c.Write([]byte{1, 1})
		return "", errors.New("bad credentials")
	}
	_, err := c.Write([]byte{1, 0})
	return string(u), err
}

// connect carries out a request; it returns the reply code and, on success,
// the connection to the destination.
func (p *SOCKSProxy) connect(cmd byte, dest, host string, domain bool) (byte, net.Conn) {
	if cmd != 1 {
		return socksBadCommand, nil
	}
	if p.opts.Refuse {
		return socksNotAllowed, nil
	}
	target := dest
	if m, ok := p.opts.PortMap[dest]; ok {
		target = m
	} else if domain {
		ip, ok := p.opts.Hosts[host]
		if !ok && host == "localhost" {
			ip, ok = "127.0.0.1", true
		}
		if !ok {
			return socksHostUnreach, nil
		}
		_, port, _ := net.SplitHostPort(dest)
		target = net.JoinHostPort(ip, port)
	}
	// Test network rule: loopback only, whatever a client asks for.
	th, _, err := net.SplitHostPort(target)
	if err != nil {
		return socksFailure, nil
	}
	if a, err := netip.ParseAddr(th); err != nil || !a.IsLoopback() {
		return socksNotAllowed, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var d net.Dialer
	up, err := d.DialContext(ctx, "tcp", target)
	if err != nil {
		return socksRefused, nil
	}
	return socksOK, up
}

// reply sends a reply (RFC 1928 §6) with BND.ADDR 0.0.0.0:0.
func reply(c net.Conn, code byte) {
	_, _ = c.Write([]byte{5, code, 0, 1, 0, 0, 0, 0, 0, 0})
}

// counter counts what is read through it.
type counter struct {
	r io.Reader
	n *atomic.Int64
}

func (c counter) Read(b []byte) (int, error) {
	k, err := c.r.Read(b)
	c.n.Add(int64(k))
	return k, err
}

// relay copies both ways until both directions ended, passing a half-close
// on as a half-close; ab and ba count the bytes read from a and from b.
func relay(a, b net.Conn, ab, ba *atomic.Int64) {
	var wg sync.WaitGroup
	wg.Add(2)
	pipe := func(dst, src net.Conn, n *atomic.Int64) {
		defer wg.Done()
		_, err := io.Copy(dst, counter{src, n})
		if cw, ok := dst.(interface{ CloseWrite() error }); ok && err == nil {
			_ = cw.CloseWrite()
		} else {
			dst.Close()
			src.Close()
		}
	}
	go pipe(b, a, ab)
	go pipe(a, b, ba)
	wg.Wait()
}

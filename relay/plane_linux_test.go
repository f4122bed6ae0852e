//go:build !xjnoplane

package relay

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/pion/stun/v4"
	"github.com/pion/turn/v5"
	"go.uber.org/goleak"
)

// rawClient is a minimal TURN client over UDP that sends exactly what a test asks for: ChannelData on any
// channel, bound or not.
type rawClient struct {
	t       testing.TB
	conn    net.PacketConn
	server  net.Addr
	user    string
	pass    string
	realm   stun.Realm
	nonce   stun.Nonce
	relayed *net.UDPAddr
}

// xorAddr adds an XOR address attribute of type t (XOR-PEER-ADDRESS, RFC 8656 §18.3).
type xorAddr struct {
	addr *net.UDPAddr
	t    stun.AttrType
}

func (a xorAddr) AddTo(m *stun.Message) error {
	return (&stun.XORMappedAddress{IP: a.addr.IP, Port: a.addr.Port}).AddToAs(m, a.t)
}

func channelNumber(ch uint16) stun.RawAttribute {
	return stun.RawAttribute{Type: stun.AttrChannelNumber, Value: []byte{byte(ch >> 8), byte(ch), 0, 0}}
}

func newRawClient(t testing.TB, s *Server) *rawClient {
	t.Helper()
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	u, p := RESTCredentials(testSecret, "raw", time.Hour, time.Now())
	return &rawClient{t: t, conn: conn, server: s.UDPAddrs()[0], user: u, pass: p}
}

// roundTrip sends m and returns the response with its transaction ID; other packets are skipped.
func (c *rawClient) roundTrip(m *stun.Message) *stun.Message {
	c.t.Helper()
	if _, err := c.conn.WriteTo(m.Raw, c.server); err != nil {
		c.t.Fatal(err)
	}
	buf := make([]byte, 2048)
	_ = c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		n, _, err := c.conn.ReadFrom(buf)
		if err != nil {
			c.t.Fatalf("waiting for %s response: %v", m.Type, err)
		}
		res := &stun.Message{Raw: append([]byte(nil), buf[:n]...)}
		if res.Decode() == nil && res.TransactionID == m.TransactionID {
			return res
		}
	}
}

// request sends an authenticated request and returns the STUN error code of the answer, 0 on success.
func (c *rawClient) request(method stun.Method, attrs ...stun.Setter) int {
	c.t.Helper()
	setters := append([]stun.Setter{stun.TransactionID, stun.NewType(method, stun.ClassRequest)}, attrs...)
	setters = append(setters, stun.NewUsername(c.user), c.realm, c.nonce,
		stun.NewLongTermIntegrity(c.user, c.realm.String(), c.pass), stun.Fingerprint)
	res := c.roundTrip(stun.MustBuild(setters...))
	if res.Type.Class == stun.ClassSuccessResponse {
		if method == stun.MethodAllocate {
			var relayed stun.XORMappedAddress
			if err := relayed.GetFromAs(res, stun.AttrXORRelayedAddress); err != nil {
				c.t.Fatal(err)
			}
			c.relayed = &net.UDPAddr{IP: relayed.IP, Port: relayed.Port}
		}
		return 0
	}
	var code stun.ErrorCodeAttribute
	_ = code.GetFrom(res)
	return int(code.Code)
}

func (c *rawClient) allocate() {
	c.t.Helper()
	transport := stun.RawAttribute{Type: stun.AttrRequestedTransport, Value: []byte{17, 0, 0, 0}}
	res := c.roundTrip(stun.MustBuild(stun.TransactionID, stun.NewType(stun.MethodAllocate, stun.ClassRequest),
		transport, stun.Fingerprint))
	if err := c.nonce.GetFrom(res); err != nil {
		c.t.Fatal(err)
	}
	if err := c.realm.GetFrom(res); err != nil {
		c.t.Fatal(err)
	}
	if code := c.request(stun.MethodAllocate, transport); code != 0 {
		c.t.Fatalf("Allocate: error %d", code)
	}
}

// sync makes a round trip through pion's read loop for this client: everything sent before it has been
// handled by pion (and relayed, if pion relays it) when it returns.
func (c *rawClient) sync() {
	c.t.Helper()
	if code := c.request(stun.MethodRefresh, stun.RawAttribute{Type: stun.AttrLifetime, Value: []byte{0, 0, 2, 0}}); code != 0 {
		c.t.Fatalf("Refresh: error %d", code)
	}
}

func (c *rawClient) channelData(ch uint16, data []byte) {
	c.t.Helper()
	msg := binary.BigEndian.AppendUint16(nil, ch)
	msg = binary.BigEndian.AppendUint16(msg, uint16(len(data)))
	if _, err := c.conn.WriteTo(append(msg, data...), c.server); err != nil {
		c.t.Fatal(err)
	}
}

// next returns the next packet from the relay that is not a STUN response.
func (c *rawClient) next() []byte {
	c.t.Helper()
	buf := make([]byte, 2048)
	_ = c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		n, _, err := c.conn.ReadFrom(buf)
		if err != nil {
			c.t.Fatalf("client read: %v", err)
		}
		if buf[0]&0xC0 == 0x40 || peekSTUN(buf[:n]).isSTUN && buf[0]&0x01 == 0 && buf[1]&0x10 != 0 { // indication
			return append([]byte(nil), buf[:n]...)
		}
	}
}

// readNothing asserts that nothing is queued on pc (what would have been relayed is there already: see sync).
func readNothing(t testing.TB, pc net.PacketConn, what string) {
	t.Helper()
	_ = pc.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	buf := make([]byte, 2048)
	if n, from, err := pc.ReadFrom(buf); err == nil {
		t.Errorf("%s: got %d bytes from %s, want nothing", what, n, from)
	}
}

func listenUDP(t testing.TB, addr string) net.PacketConn {
	t.Helper()
	pc, err := net.ListenPacket("udp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	return pc
}

func readFrom(t testing.TB, pc net.PacketConn) ([]byte, net.Addr) {
	t.Helper()
	buf := make([]byte, 2048)
	_ = pc.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, from, err := pc.ReadFrom(buf)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return buf[:n], from
}

// TestDataPlaneChannelData checks the data plane's ChannelData path both ways, and that it relays nothing on
// a channel that was never bound or whose allocation is gone.
func TestDataPlaneChannelData(t *testing.T) {
	s := startServer(t, nil)
	c := newRawClient(t, s)
	c.allocate()
	peer := listenUDP(t, "127.0.0.1:0")
	pa := peer.LocalAddr().(*net.UDPAddr)

	c.channelData(0x4001, []byte("before bind"))
	c.sync()
	readNothing(t, peer, "ChannelData before ChannelBind")

	if code := c.request(stun.MethodChannelBind, channelNumber(0x4001), xorAddr{pa, stun.AttrXORPeerAddress}); code != 0 {
		t.Fatalf("ChannelBind: error %d", code)
	}
	if n := s.routes.installed(); n != 1 {
		t.Fatalf("%d routes installed, want 1", n)
	}
	ca, _ := addrPortOf(c.conn.LocalAddr())
	la, _ := addrPortOf(s.UDPAddrs()[0])
	peerAP, _ := addrPortOf(pa)
	rt := s.routes.byClient(la, ca, 0x4001)
	if rt == nil || s.routes.byPeer(rt.relay, peerAP) != rt {
		t.Fatal("the data plane has no route for the bound channel")
	}

	// Padding after the data (RFC 8656 §12.5) is not relayed.
	c.channelData(0x4001, []byte("to peer\x00"))
	if got, from := readFrom(t, peer); string(got) != "to peer\x00" || from.String() != c.relayed.String() {
		t.Errorf("peer got %q from %s, want %q from %s", got, from, "to peer\x00", c.relayed)
	}
	if _, err := peer.WriteTo([]byte("to client"), c.relayed); err != nil {
		t.Fatal(err)
	}
	want := append([]byte{0x40, 0x01, 0, 9}, "to client"...)
	if got := c.next(); !bytes.Equal(got, want) {
		t.Errorf("client got % x, want % x", got, want)
	}
	for dir, n := range map[string]float64{"client_to_peer": 1, "peer_to_client": 1} {
		if got := metric(t, s, "xjingle_relay_relayed_packets_total", "direction", dir); got != n {
			t.Errorf("relayed_packets_total{%s} = %v, want %v", dir, got, n)
		}
	}
	if got := metric(t, s, "xjingle_relay_relayed_bytes_total", "direction", "peer_to_client"); got != 9 {
		t.Errorf("relayed_bytes_total{peer_to_client} = %v, want 9", got)
	}

	// A channel number that was never bound, and a length beyond the datagram.
	c.channelData(0x4002, []byte("unbound"))
	if _, err := c.conn.WriteTo([]byte{0x40, 0x01, 0x00, 0x10, 'x'}, c.server); err != nil {
		t.Fatal(err)
	}
	c.sync()
	readNothing(t, peer, "ChannelData on an unbound channel")

	// Deleting the allocation deletes its channels.
	if code := c.request(stun.MethodRefresh, stun.RawAttribute{Type: stun.AttrLifetime, Value: []byte{0, 0, 0, 0}}); code != 0 {
		t.Fatalf("Refresh(0): error %d", code)
	}
	if n := s.routes.installed(); n != 0 {
		t.Errorf("%d routes installed after the allocation was deleted, want 0", n)
	}
	c.channelData(0x4001, []byte("after delete"))
	c.roundTrip(stun.MustBuild(stun.TransactionID, stun.BindingRequest, stun.Fingerprint))
	readNothing(t, peer, "ChannelData after the allocation was deleted")
}

// TestDataPlaneDeniedPeer checks that a denied peer gets nothing through the data plane and that nothing from
// it reaches the client.
func TestDataPlaneDeniedPeer(t *testing.T) {
	s := startServer(t, nil) // allows 127.0.0.1 only; 127.0.0.2 is loopback and denied by default
	c := newRawClient(t, s)
	c.allocate()
	denied := listenUDP(t, "127.0.0.2:0")
	allowed := listenUDP(t, "127.0.0.1:0")
	da, aa := denied.LocalAddr().(*net.UDPAddr), allowed.LocalAddr().(*net.UDPAddr)

	// pion answers 401 here, not 403 (RFC 8656 §12.2); what matters is that no channel is bound.
	if code := c.request(stun.MethodChannelBind, channelNumber(0x4001), xorAddr{da, stun.AttrXORPeerAddress}); code == 0 {
		t.Fatal("ChannelBind to a denied peer succeeded")
	}
	if n := s.routes.installed(); n != 0 {
		t.Fatalf("%d routes installed for a denied peer", n)
	}
	c.channelData(0x4001, []byte("to denied"))
	c.sync()
	readNothing(t, denied, "denied peer")

	// The allowed peer has a permission but no channel: its datagram goes through pion's relay loop, after the
	// denied peer's, as a Data indication. So the first thing the client gets must be that indication.
	if code := c.request(stun.MethodCreatePermission, xorAddr{aa, stun.AttrXORPeerAddress}); code != 0 {
		t.Fatalf("CreatePermission: error %d", code)
	}
	if _, err := denied.WriteTo([]byte("from denied"), c.relayed); err != nil {
		t.Fatal(err)
	}
	if _, err := allowed.WriteTo([]byte("from allowed"), c.relayed); err != nil {
		t.Fatal(err)
	}
	m := &stun.Message{Raw: c.next()}
	if err := m.Decode(); err != nil || m.Type != stun.NewType(stun.MethodData, stun.ClassIndication) {
		t.Fatalf("client got %v (%v), want a Data indication", m.Type, err)
	}
	var data stun.RawAttribute
	if v, err := m.Get(stun.AttrData); err == nil {
		data.Value = v
	}
	if string(data.Value) != "from allowed" {
		t.Errorf("client got %q, want %q", data.Value, "from allowed")
	}
	if got := metric(t, s, "xjingle_relay_denied_peer_total"); got != 1 {
		t.Errorf("denied_peer_total = %v, want 1", got)
	}
}

// TestDataPlaneStops checks that the data-plane loops end with the server, served or not, and close their
// descriptors.
func TestDataPlaneStops(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	fds := openFDs()
	cfg := Config{Listen: []Listen{{Addr: "127.0.0.1:0"}}, Secrets: []string{testSecret}, SocketsPerUDPListen: 3}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	ctx, cancel := context.WithCancel(context.Background())
	go func() { served <- s.Serve(ctx) }()
	c := newRawClient(t, s)
	c.allocate()
	cancel()
	if err := <-served; !errors.Is(err, ErrServerClosed) {
		t.Errorf("Serve: %v", err)
	}
	_ = c.conn.Close()
	if got := openFDs(); got != fds {
		t.Errorf("%d open descriptors after Close, %d before", got, fds)
	}
}

func TestSockaddr(t *testing.T) {
	for _, tc := range []struct {
		ap string
		v6 bool
	}{{"192.0.2.1:3478", false}, {"192.0.2.1:3478", true}, {"[2001:db8::1]:5349", true}} {
		ap := netip.MustParseAddrPort(tc.ap)
		var sa sockaddr
		if !sa.set(ap, tc.v6) {
			t.Fatalf("set(%s, v6=%v) failed", ap, tc.v6)
		}
		if got := sa.addrPort(); got != ap {
			t.Errorf("set(%s, v6=%v).addrPort() = %s", ap, tc.v6, got)
		}
	}
	var sa sockaddr
	if sa.set(netip.MustParseAddrPort("[2001:db8::1]:1"), false) {
		t.Error("an IPv6 address was accepted for an IPv4 socket")
	}
}

func TestIsChannelData(t *testing.T) {
	for _, tc := range []struct {
		in   []byte
		ch   uint16
		data string
		ok   bool
	}{
		{[]byte{0x40, 0x00, 0, 2, 'h', 'i'}, 0x4000, "hi", true},
		{[]byte{0x4f, 0xff, 0, 2, 'h', 'i', 0, 0}, 0x4fff, "hi", true}, // padded
		{[]byte{0x7f, 0xfe, 0, 0}, 0x7ffe, "", true},                   // RFC 5766 range
		{[]byte{0x40, 0x00, 0, 3, 'h', 'i'}, 0, "", false},             // longer than the datagram
		{[]byte{0x40, 0x00, 0}, 0, "", false},                          // short header
		{[]byte{0x00, 0x01, 0, 0}, 0, "", false},                       // STUN
		{[]byte{0x80, 0x00, 0, 0}, 0, "", false},                       // RTP (RFC 7983)
		{[]byte{0x16, 0xfe, 0xfd, 0}, 0, "", false},                    // DTLS
	} {
		ch, data, ok := isChannelData(tc.in)
		if ok != tc.ok || ch != tc.ch || string(data) != tc.data {
			t.Errorf("isChannelData(% x) = %#x, %q, %v; want %#x, %q, %v", tc.in, ch, data, ok, tc.ch, tc.data, tc.ok)
		}
	}
}

// FuzzChannelData checks the demultiplexer: it never reads past the datagram, accepts only the ChannelData
// first-byte range, and agrees with the STUN classifier.
func FuzzChannelData(f *testing.F) {
	f.Add([]byte{0x40, 0x01, 0, 4, 1, 2, 3, 4})
	f.Add([]byte{0x7f, 0xff, 0xff, 0xff})
	f.Add(stun.MustBuild(stun.TransactionID, stun.BindingRequest).Raw)
	f.Fuzz(func(t *testing.T, b []byte) {
		ch, data, ok := isChannelData(b)
		if !ok {
			return
		}
		if b[0]&0xC0 != 0x40 || ch < 0x4000 || ch > 0x7FFF {
			t.Fatalf("channel %#x accepted from first byte %#x", ch, b[0])
		}
		if len(data) != int(binary.BigEndian.Uint16(b[2:4])) || 4+len(data) > len(b) {
			t.Fatalf("data of %d bytes from a %d-byte datagram with length field %d", len(data), len(b),
				binary.BigEndian.Uint16(b[2:4]))
		}
		if len(data) > 0 && &data[0] != &b[4] {
			t.Fatal("data does not start after the header")
		}
		if peekSTUN(b).isSTUN {
			t.Fatal("classified as both ChannelData and STUN")
		}
	})
}

// TestDataPlaneFamilies relays through the data plane on an IPv6 listener and on a dual-stack [::] listener
// with an IPv4 client (IPv4-mapped source addresses), with pion's client.
func TestDataPlaneFamilies(t *testing.T) {
	if pc, err := net.ListenPacket("udp6", "[::1]:0"); err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	} else {
		_ = pc.Close()
	}
	for _, tc := range []struct{ listen, client, host string }{
		{"[::1]:0", "udp6", "::1"},
		{"[::]:0", "udp6", "::1"},
		{"[::]:0", "udp4", "127.0.0.1"},
	} {
		t.Run(tc.listen+"/"+tc.client, func(t *testing.T) {
			s := startServer(t, func(c *Config) {
				c.Listen = []Listen{{Addr: tc.listen}}
				c.PublicIPv6 = netip.MustParseAddr("::1")
				c.PublicIP = netip.MustParseAddr("127.0.0.1")
				c.Peers = PeerPolicy{Allow: []netip.Prefix{netip.MustParsePrefix("::1/128"),
					netip.MustParsePrefix("127.0.0.1/32")}}
			})
			conn, err := net.ListenPacket(tc.client, net.JoinHostPort(tc.host, "0"))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			_, port, _ := net.SplitHostPort(s.UDPAddrs()[0].String())
			addr := net.JoinHostPort(tc.host, port)
			u, p := RESTCredentials(testSecret, "families", time.Hour, time.Now())
			c, err := turn.NewClient(&turn.ClientConfig{STUNServerAddr: addr, TURNServerAddr: addr, Conn: conn,
				Username: u, Password: p, Realm: DefaultRealm, RTO: 100 * time.Millisecond,
				LoggerFactory: pionLoggerFactory{slog.New(slog.DiscardHandler)}})
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Listen(); err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			r, err := c.Allocate()
			if err != nil {
				t.Fatalf("Allocate: %v", err)
			}
			defer r.Close()
			peer, err := net.ListenPacket(tc.client, net.JoinHostPort(tc.host, "0"))
			if err != nil {
				t.Fatal(err)
			}
			defer peer.Close()
			_ = r.SetDeadline(time.Now().Add(5 * time.Second))
			buf := make([]byte, 1500)
			// pion's client binds a channel after its first write, so later rounds take the data plane.
			for i := range 3 {
				msg := fmt.Sprintf("round %d", i)
				if _, err := r.WriteTo([]byte(msg), peer.LocalAddr()); err != nil {
					t.Fatal(err)
				}
				got, from := readFrom(t, peer)
				if string(got) != msg {
					t.Fatalf("peer got %q, want %q", got, msg)
				}
				if _, err := peer.WriteTo(got, from); err != nil {
					t.Fatal(err)
				}
				n, _, err := r.ReadFrom(buf)
				if err != nil || string(buf[:n]) != msg {
					t.Fatalf("client got %q, %v; want %q", buf[:n], err, msg)
				}
			}
			if n := s.routes.installed(); n != 1 {
				t.Errorf("%d routes installed, want 1", n)
			}
		})
	}
}

package ice_test

import (
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/pion/logging"
	"github.com/pion/transport/v5/vnet"
	"github.com/pion/turn/v5"
	"github.com/pion/webrtc/v4"
	"github.com/xjingle/xjingle/internal/xjtest"
	"github.com/xjingle/xjingle/jingle"
	"github.com/xjingle/xjingle/transports/ice"
)

// The simulated Internet of the NAT tests (pion/transport/v5/vnet; no real
// socket is opened): a WAN with a STUN/TURN server, and two LANs, each
// behind its own NAT router.
const (
	vnetServerIP = "1.2.3.4"
	vnetPublicA  = "27.1.1.1"
	vnetLocalA   = "192.168.0.1"
	vnetPublicB  = "28.1.1.1"
	vnetLocalB   = "10.2.0.1"
	vnetUser     = "user"
	vnetPass     = "pass"
	vnetRealm    = "xjingle.test"
)

type simNet struct {
	wan        *vnet.Router
	netA, netB *vnet.Net
	turn       *turn.Server
}

// newSimNet builds the WAN, the two NATed LANs and the TURN server; it is
// torn down when the test ends.
func newSimNet(t *testing.T, nat vnet.NATType) *simNet {
	t.Helper()
	lf := logging.NewDefaultLoggerFactory()
	lf.DefaultLogLevel = logging.LogLevelError // NAT drops are the point, not news
	wan, err := vnet.NewRouter(&vnet.RouterConfig{CIDR: "0.0.0.0/0", LoggerFactory: lf})
	if err != nil {
		t.Fatal(err)
	}
	wanNet, err := vnet.NewNet(&vnet.NetConfig{StaticIPs: []string{vnetServerIP}})
	if err != nil {
		t.Fatal(err)
	}
	if err := wan.AddNet(wanNet); err != nil {
		t.Fatal(err)
	}
	lan := func(public, local string) *vnet.Net {
		nt := nat
		r, err := vnet.NewRouter(&vnet.RouterConfig{StaticIPs: []string{public}, CIDR: local + "/24", NATType: &nt, LoggerFactory: lf})
		if err != nil {
			t.Fatal(err)
		}
		n, err := vnet.NewNet(&vnet.NetConfig{StaticIPs: []string{local}})
		if err != nil {
			t.Fatal(err)
		}
		if err := r.AddNet(n); err != nil {
			t.Fatal(err)
		}
		if err := wan.AddRouter(r); err != nil {
			t.Fatal(err)
		}
		return n
	}
	s := &simNet{wan: wan, netA: lan(vnetPublicA, vnetLocalA), netB: lan(vnetPublicB, vnetLocalB)}
	if err := wan.Start(); err != nil {
		t.Fatal(err)
	}
	pc, err := wanNet.ListenPacket("udp4", net.JoinHostPort(vnetServerIP, "3478"))
	if err != nil {
		t.Fatal(err)
	}
	s.turn, err = turn.NewServer(turn.ServerConfig{
		Realm: vnetRealm,
		AuthHandler: func(ra *turn.RequestAttributes) (string, []byte, bool) {
			if ra.Username != vnetUser {
				return "", nil, false
			}
			return vnetUser, turn.GenerateAuthKey(vnetUser, ra.Realm, vnetPass), true
		},
		PacketConnConfigs: []turn.PacketConnConfig{{
			PacketConn: pc,
			RelayAddressGenerator: &turn.RelayAddressGeneratorStatic{
				RelayAddress: net.ParseIP(vnetServerIP), Address: "0.0.0.0", Net: wanNet,
			},
		}},
		LoggerFactory: lf,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.turn.Close()
		s.wan.Stop()
	})
	return s
}

// vnetOpts put a peer on n with the WAN's STUN and TURN server: only vnet
// interfaces exist there, so nothing real is touched.
func vnetOpts(n *vnet.Net, hook ice.Option) []ice.Option {
	server := net.JoinHostPort(vnetServerIP, "3478")
	return []ice.Option{
		ice.WithNet(n),
		ice.WithUDP4Only(),
		ice.WithICEServers(
			webrtc.ICEServer{URLs: []string{"stun:" + server}},
			webrtc.ICEServer{URLs: []string{"turn:" + server + "?transport=udp"}, Username: vnetUser, Credential: vnetPass},
		),
		ice.WithGatherWait(300 * time.Millisecond),
		ice.WithConnectTimeout(15 * time.Second),
		hook,
	}
}

// vnetTransfer sends size bytes from a peer on LAN A to a peer on LAN B
// and returns both conns' selected pairs (local, remote).
func vnetTransfer(t *testing.T, nat vnet.NATType, size int) (alice, bob [2]*ice.Addr) {
	t.Helper()
	sim := newSimNet(t, nat)
	n := xjtest.NewNetwork()
	hook := ice.WithOnConnect(func(*ice.Addr, *ice.Addr) {})
	a := newPeerWith(t, n, aliceJID, vnetOpts(sim.netA, hook))
	b := newPeerWith(t, n, bobJID, vnetOpts(sim.netB, hook))
	s, conn := start(t, a, b, ice.NSDataChannel)
	defer conn.Close()
	h := sha256.New()
	if _, err := io.Copy(conn, io.TeeReader(io.LimitReader(rand.Reader, int64(size)), h)); err != nil {
		t.Fatalf("write: %v", err)
	}
	if err := conn.(interface{ CloseWrite() error }).CloseWrite(); err != nil {
		t.Fatalf("close write: %v", err)
	}
	var want [32]byte
	copy(want[:], h.Sum(nil))
	select {
	case r := <-b.app.results:
		if r.err != nil || r.n != int64(size) || r.sum != want {
			t.Fatalf("bob read %d bytes (want %d), hash match %v, err %v", r.n, size, r.sum == want, r.err)
		}
		bob = addrs(t, r.conn)
	case <-time.After(60 * time.Second):
		t.Fatal("bob did not finish")
	}
	alice = addrs(t, conn)
	if err := s.Terminate(testCtx(t, 5*time.Second), jingle.Reason{Condition: jingle.ReasonSuccess}); err != nil {
		t.Fatal(err)
	}
	return alice, bob
}

func addrs(t *testing.T, c net.Conn) [2]*ice.Addr {
	t.Helper()
	l, ok1 := c.LocalAddr().(*ice.Addr)
	r, ok2 := c.RemoteAddr().(*ice.Addr)
	if !ok1 || !ok2 {
		t.Fatalf("conn addresses %T %T, want *ice.Addr", c.LocalAddr(), c.RemoteAddr())
	}
	return [2]*ice.Addr{l, r}
}

func pairString(p [2]*ice.Addr) string { return fmt.Sprintf("%s -> %s", p[0], p[1]) }

// TestVNetConeNAT: both peers behind endpoint-independent NATs (RFC 4787
// §4.1 mapping, §5 filtering: "full cone") reach each other through their
// server-reflexive addresses (RFC 8445 §5.1.1.2), NAT to NAT; the TURN
// relay, though offered, is not used: srflx outranks relay (RFC 8445
// §5.1.2.2).
func TestVNetConeNAT(t *testing.T) {
	nat := vnet.NATType{MappingBehavior: vnet.EndpointIndependent, FilteringBehavior: vnet.EndpointIndependent}
	alice, bob := vnetTransfer(t, nat, 1<<20)
	for who, p := range map[string][2]*ice.Addr{"alice": alice, "bob": bob} {
		t.Logf("%s: %s", who, pairString(p))
		if p[0].Type == "relay" || p[1].Type == "relay" {
			t.Errorf("%s: pair %s uses the relay behind cone NATs", who, pairString(p))
		}
	}
	// Each side reaches the other at its NAT's public address, not its
	// private one nor the relay's.
	if alice[1].IP.String() != vnetPublicB || bob[1].IP.String() != vnetPublicA {
		t.Errorf("remote addresses %s, %s; want %s and %s", alice[1], bob[1], vnetPublicB, vnetPublicA)
	}
	// The remote end is the peer's server-reflexive address. Pion often
	// labels it prflx: the peer's connectivity check arrives before its
	// trickled srflx candidate, and RFC 8445 §7.3.1.3 makes the source a
	// peer-reflexive candidate; with endpoint-independent mapping it is
	// the same address as the srflx one.
	for who, p := range map[string][2]*ice.Addr{"alice": alice, "bob": bob} {
		if p[1].Type != "srflx" && p[1].Type != "prflx" {
			t.Errorf("%s: remote end %s, want the peer's server-reflexive address", who, p[1])
		}
	}
}

// TestVNetSymmetricNAT: behind address-and-port-dependent ("symmetric")
// NATs on both sides, srflx candidates are useless (RFC 8445 §2.2, RFC 4787
// §4.1): every working pair goes through the TURN relay. One relayed
// candidate is enough (a peer reaches the other's allocation directly
// through its own NAT, as peer-reflexive), so the test asserts that each
// side's pair has a relayed end at the TURN server, and that no pair runs
// between the two NATs' public addresses.
func TestVNetSymmetricNAT(t *testing.T) {
	nat := vnet.NATType{MappingBehavior: vnet.EndpointAddrPortDependent, FilteringBehavior: vnet.EndpointAddrPortDependent}
	alice, bob := vnetTransfer(t, nat, 1<<20)
	for who, p := range map[string][2]*ice.Addr{"alice": alice, "bob": bob} {
		t.Logf("%s: %s", who, pairString(p))
		relayed := false
		for _, a := range p {
			if a.Type == "relay" && a.IP.String() == vnetServerIP {
				relayed = true
			}
		}
		if !relayed {
			t.Errorf("%s: pair %s has no relayed end at the TURN server %s", who, pairString(p), vnetServerIP)
		}
		if p[0].IP.String() != vnetServerIP && p[1].IP.String() != vnetServerIP {
			t.Errorf("%s: pair %s bypasses the relay", who, pairString(p))
		}
	}
	// Both sides see the same path: alice's remote is bob's local.
	if alice[1].String() != bob[0].String() && alice[0].String() != bob[1].String() {
		t.Errorf("pairs do not match: %s / %s", pairString(alice), pairString(bob))
	}
}

//go:build !linux || xjnoplane

package relay

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"

	"github.com/pion/transport/v5/reuseport"
)

// Where epoll does not exist there is no own data plane: every UDP socket is
// a plain net.UDPConn read by pion's own loops (one goroutine per listening
// socket and per allocation), and pion relays every packet. The types below
// keep the Server's code the same on every system. The build tag xjnoplane
// selects this file on Linux too, to test this path there
// (go test -tags xjnoplane ./relay).

const (
	clientHandoffQueue = 0
	relayHandoffQueue  = 0
)

// loop stands for a data-plane loop; it does nothing here.
type loop struct{}

func newLoop(*Server) (*loop, error) { return &loop{}, nil }
func (*loop) add(*udpSock) error     { return nil }
func (*loop) start()                 {}
func (*loop) stop()                  {}

// udpSock is a plain UDP socket that pion reads and writes.
type udpSock struct {
	*net.UDPConn
	plane *loop
	local *net.UDPAddr
	relay *relayConn
}

// openUDP binds a UDP socket for network on addr (SO_REUSEPORT when reuse is set).
func openUDP(l *loop, network string, addr netip.AddrPort, reuse bool, _ int) (*udpSock, error) {
	lc := net.ListenConfig{}
	if reuse {
		lc.Control = reuseport.Control
	}
	host := addr.Addr().String()
	if addr.Addr().Is6() && !addr.Addr().Is4In6() {
		host = addr.Addr().WithZone(addr.Addr().Zone()).String()
	}
	pc, err := lc.ListenPacket(context.Background(), network, net.JoinHostPort(host, strconv.Itoa(int(addr.Port()))))
	if err != nil {
		return nil, fmt.Errorf("relay: listen %s %s: %w", network, addr, err)
	}
	uc := pc.(*net.UDPConn)
	return &udpSock{UDPConn: uc, plane: l, local: uc.LocalAddr().(*net.UDPAddr)}, nil
}

// setBuffers asks for the receive and send buffer sizes.
func (s *udpSock) setBuffers(n int) {
	_ = s.SetReadBuffer(n)
	_ = s.SetWriteBuffer(n)
}

// route stands for a bound channel of the data plane; there are none here.
type route struct{}

// routeTable keeps nothing here: pion relays every packet itself.
type routeTable struct{}

func (*routeTable) init()                                     {}
func (*routeTable) addListener(*udpSock)                      {}
func (*routeTable) reserveRelay(netip.AddrPort) bool          { return true }
func (*routeTable) setRelay(adv netip.AddrPort, r *relayConn) { r.adv = adv }
func (*routeTable) removeRelay(*relayConn)                    {}
func (*routeTable) channelCreated(_, _ net.Addr, _ string, _, _ net.Addr, _ uint16) {
}
func (*routeTable) channelDeleted(_, _ net.Addr, _ string, _ uint16) {}

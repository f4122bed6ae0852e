//go:build !xjnoplane

package relay

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// This file holds the UDP sockets of the relay's own data plane (see plane.go). They are non-blocking sockets
// outside Go's netpoller, read only by a data-plane loop; what the loop does not relay itself it hands to
// pion through the socket's net.PacketConn face.

// handoffQueue is how many packets a socket holds for pion before the loop drops more.
const (
	clientHandoffQueue = 1024
	relayHandoffQueue  = 64
)

// maxPacket is the largest datagram the data plane reads; pion's own buffers are 1600 bytes (its inbound MTU),
// so larger datagrams would have been truncated and dropped by pion anyway.
const maxPacket = 1600

// errQueueFull is a handed-off packet dropped because pion is not keeping up.
var errQueueFull = errors.New("relay: handoff queue full")

// sockaddr is a raw socket address as the kernel reads and writes it.
type sockaddr struct {
	raw unix.RawSockaddrInet6 // large enough for sockaddr_in too
	len uint32
}

// set fills sa with ap, as an AF_INET6 address (IPv4-mapped for IPv4) when v6 is set, else as AF_INET.
func (sa *sockaddr) set(ap netip.AddrPort, v6 bool) bool {
	ip := ap.Addr()
	if v6 {
		*sa = sockaddr{len: unix.SizeofSockaddrInet6}
		sa.raw.Family = unix.AF_INET6
		sa.raw.Addr = ip.As16()
		binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&sa.raw.Port))[:], ap.Port())
		if ip.Is6() && !ip.Is4In6() && ip.Zone() != "" {
			if ifi, err := net.InterfaceByName(ip.Zone()); err == nil {
				sa.raw.Scope_id = uint32(ifi.Index)
			}
		}
		return true
	}
	ip = ip.Unmap()
	if !ip.Is4() {
		return false
	}
	*sa = sockaddr{len: unix.SizeofSockaddrInet4}
	r4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(&sa.raw))
	r4.Family = unix.AF_INET
	r4.Addr = ip.As4()
	binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&r4.Port))[:], ap.Port())
	return true
}

// addrPort returns sa as an address with IPv4-mapped addresses unmapped.
func (sa *sockaddr) addrPort() netip.AddrPort {
	switch sa.raw.Family {
	case unix.AF_INET:
		r4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(&sa.raw))
		port := binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&r4.Port))[:])
		return netip.AddrPortFrom(netip.AddrFrom4(r4.Addr), port)
	case unix.AF_INET6:
		port := binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&sa.raw.Port))[:])
		return netip.AddrPortFrom(netip.AddrFrom16(sa.raw.Addr).Unmap(), port)
	}
	return netip.AddrPort{}
}

// recvfrom reads one datagram without blocking; it returns unix.EAGAIN when none is queued. The socket is
// non-blocking, so the raw system call does not enter the scheduler.
func recvfrom(fd int, b []byte, from *sockaddr) (int, error) {
	from.len = unix.SizeofSockaddrInet6
	n, _, errno := syscall.RawSyscall6(unix.SYS_RECVFROM, uintptr(fd), uintptr(unsafe.Pointer(&b[0])),
		uintptr(len(b)), unix.MSG_TRUNC, uintptr(unsafe.Pointer(&from.raw)), uintptr(unsafe.Pointer(&from.len)))
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}

// sendto sends one datagram without blocking (a full send buffer gives unix.EAGAIN and the datagram is lost,
// as it would be anywhere else on a UDP path).
func sendto(fd int, b []byte, to *sockaddr) error {
	var p unsafe.Pointer
	if len(b) > 0 {
		p = unsafe.Pointer(&b[0])
	}
	_, _, errno := syscall.RawSyscall6(unix.SYS_SENDTO, uintptr(fd), uintptr(p), uintptr(len(b)), 0,
		uintptr(unsafe.Pointer(&to.raw)), uintptr(to.len))
	if errno != 0 {
		return errno
	}
	return nil
}

// packet is a datagram handed from a data-plane loop to pion.
type packet struct {
	buf  [maxPacket]byte
	n    int
	from netip.AddrPort
}

var packetPool = sync.Pool{New: func() any { return new(packet) }}

// udpSock is a UDP socket served by a data-plane loop. As a net.PacketConn (what pion sees) it reads the
// packets the loop hands over and writes directly. Deadlines are not supported (pion sets none on UDP).
type udpSock struct {
	plane *loop
	id    uint64 // the loop's key for it
	v6    bool   // AF_INET6
	local *net.UDPAddr
	ap    netip.AddrPort // local, unmapped

	// relay is the allocation this relayed socket belongs to; nil for a client-facing socket.
	relay *relayConn

	mu sync.RWMutex
	fd int // -1 once closed; I/O holds mu for reading, Close for writing

	in        chan *packet
	done      chan struct{}
	closeOnce sync.Once
}

// openUDP opens a non-blocking UDP socket for network ("udp", "udp4", "udp6") bound to addr, with
// SO_REUSEPORT if reuse is set, and registers it with l.
func openUDP(l *loop, network string, addr netip.AddrPort, reuse bool, queue int) (*udpSock, error) {
	v6 := network == "udp6" || (network == "udp" && !addr.Addr().Unmap().Is4())
	family := unix.AF_INET
	if v6 {
		family = unix.AF_INET6
	}
	fd, err := unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_UDP)
	if err != nil {
		return nil, fmt.Errorf("relay: socket: %w", err)
	}
	fail := func(what string, err error) (*udpSock, error) {
		_ = unix.Close(fd)
		return nil, fmt.Errorf("relay: %s %s %s: %w", what, network, addr, &net.OpError{Op: "listen", Net: network,
			Err: &syscallError{what, err}})
	}
	if v6 {
		only := 1
		if network == "udp" {
			only = 0 // [::] serves IPv4 too
		}
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, only); err != nil {
			return fail("setsockopt", err)
		}
	}
	if reuse {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); err != nil {
			return fail("setsockopt", err)
		}
	}
	var sa sockaddr
	if !sa.set(addr, v6) {
		return fail("bind", unix.EAFNOSUPPORT)
	}
	if _, _, errno := syscall.Syscall(unix.SYS_BIND, uintptr(fd), uintptr(unsafe.Pointer(&sa.raw)), uintptr(sa.len)); errno != 0 {
		return fail("bind", errno)
	}
	bound, err := unix.Getsockname(fd)
	if err != nil {
		return fail("getsockname", err)
	}
	local := &net.UDPAddr{}
	switch b := bound.(type) {
	case *unix.SockaddrInet4:
		local.IP, local.Port = net.IPv4(b.Addr[0], b.Addr[1], b.Addr[2], b.Addr[3]), b.Port
	case *unix.SockaddrInet6:
		local.IP, local.Port = append(net.IP(nil), b.Addr[:]...), b.Port
	}
	s := &udpSock{plane: l, v6: v6, local: local, fd: fd, in: make(chan *packet, queue), done: make(chan struct{})}
	ip, _ := netip.AddrFromSlice(local.IP)
	s.ap = netip.AddrPortFrom(ip.Unmap(), uint16(local.Port))
	return s, nil
}

// syscallError names the failing system call, like os.SyscallError.
type syscallError struct {
	call string
	err  error
}

func (e *syscallError) Error() string { return e.call + ": " + e.err.Error() }
func (e *syscallError) Unwrap() error { return e.err }

// setBuffers asks for the receive and send buffer sizes (the kernel caps them at net.core.[rw]mem_max).
func (s *udpSock) setBuffers(n int) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.fd >= 0 {
		_ = unix.SetsockoptInt(s.fd, unix.SOL_SOCKET, unix.SO_RCVBUF, n)
		_ = unix.SetsockoptInt(s.fd, unix.SOL_SOCKET, unix.SO_SNDBUF, n)
	}
}

// handoff queues p for pion's ReadFrom; it drops p when pion is behind.
func (s *udpSock) handoff(p *packet) error {
	select {
	case s.in <- p:
		return nil
	default:
		packetPool.Put(p)
		return errQueueFull
	}
}

// ReadFrom returns the next packet the data-plane loop handed over, or net.ErrClosed once closed.
func (s *udpSock) ReadFrom(b []byte) (int, net.Addr, error) {
	select {
	case p := <-s.in:
		n := copy(b, p.buf[:p.n])
		addr := net.UDPAddrFromAddrPort(p.from)
		packetPool.Put(p)
		return n, addr, nil
	case <-s.done:
		return 0, nil, &net.OpError{Op: "read", Net: "udp", Addr: s.local, Err: net.ErrClosed}
	}
}

// WriteTo sends b to addr.
func (s *udpSock) WriteTo(b []byte, addr net.Addr) (int, error) {
	ua, ok := addr.(*net.UDPAddr)
	if !ok {
		return 0, &net.OpError{Op: "write", Net: "udp", Addr: addr, Err: net.InvalidAddrError("not a UDP address")}
	}
	var sa sockaddr
	if !sa.set(ua.AddrPort(), s.v6) {
		return 0, &net.OpError{Op: "write", Net: "udp", Addr: addr, Err: unix.EAFNOSUPPORT}
	}
	if err := s.send(b, &sa); err != nil {
		return 0, &net.OpError{Op: "write", Net: "udp", Addr: addr, Err: err}
	}
	return len(b), nil
}

// send sends b to sa. A full send buffer is waited out (briefly) on pion's path; the loop never waits.
func (s *udpSock) send(b []byte, sa *sockaddr) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.fd < 0 {
		return net.ErrClosed
	}
	err := sendto(s.fd, b, sa)
	if err == unix.EAGAIN {
		fds := []unix.PollFd{{Fd: int32(s.fd), Events: unix.POLLOUT}}
		if _, perr := unix.Poll(fds, 100); perr == nil {
			err = sendto(s.fd, b, sa)
		}
	}
	return err
}

// sendNow sends b to sa without waiting; the data plane's send.
func (s *udpSock) sendNow(b []byte, sa *sockaddr) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.fd < 0 {
		return net.ErrClosed
	}
	return sendto(s.fd, b, sa)
}

// Close unregisters and closes the socket; pending and later ReadFroms return net.ErrClosed.
func (s *udpSock) Close() error {
	err := error(&net.OpError{Op: "close", Net: "udp", Addr: s.local, Err: net.ErrClosed})
	s.closeOnce.Do(func() {
		err = nil
		close(s.done)
		if s.plane != nil {
			s.plane.remove(s)
		}
		s.mu.Lock()
		if cerr := unix.Close(s.fd); cerr != nil {
			err = fmt.Errorf("relay: close udp %s: %w", s.local, cerr)
		}
		s.fd = -1
		s.mu.Unlock()
		for {
			select {
			case p := <-s.in:
				packetPool.Put(p)
				continue
			default:
			}
			break
		}
	})
	return err
}

// LocalAddr returns the bound address.
func (s *udpSock) LocalAddr() net.Addr { return s.local }

// SetDeadline is not supported; it returns nil so that callers that clear deadlines work.
func (s *udpSock) SetDeadline(time.Time) error { return nil }

// SetReadDeadline is not supported; see SetDeadline.
func (s *udpSock) SetReadDeadline(time.Time) error { return nil }

// SetWriteDeadline is not supported; see SetDeadline.
func (s *udpSock) SetWriteDeadline(time.Time) error { return nil }

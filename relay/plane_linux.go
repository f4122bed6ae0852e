//go:build !xjnoplane

package relay

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The data plane. pion/turn runs the control plane (Allocate, Refresh, CreatePermission, ChannelBind,
// authentication) and would relay with two goroutines per message: its listener read loop and the
// allocation's read loop, each woken through Go's netpoller. That costs more in scheduler wake-ups than the
// relaying itself. So the UDP sockets (client-facing and relayed) live outside the netpoller, each read by
// one of a few event loops, each an OS thread blocked in epoll_wait. A loop relays ChannelData itself both
// ways (RFC 8656 §12) when pion has bound the channel for a UDP client, and hands every other packet to pion
// unchanged: STUN messages, ChannelData on channels it does not know, and peer datagrams without a channel
// (pion checks the permission and sends a Data indication, §11.4, or drops them).
//
// The routing table is kept from pion's channel events. A channel binding implies a permission and is
// deleted with its allocation or when it expires (10 minutes without a refresh, §12), so the fast path only
// relays what pion itself would relay at that moment. Bandwidth caps and counters are those of the
// allocation's relayConn, the same as on pion's path.

// loopBatch is how many datagrams a loop reads from a socket before it relays them, and loopBudget how many
// it reads from one socket before it serves the others (the epoll set is level-triggered).
const (
	loopBatch  = 16
	loopBudget = 64
	loopEvents = 128
)

// wakeID is the epoll key of a loop's eventfd.
const wakeID = 0

// loop is one data-plane event loop.
type loop struct {
	s    *Server
	ep   int // epoll fd
	wake int // eventfd that stops the loop

	mu     sync.Mutex
	socks  map[uint64]*udpSock
	nextID uint64

	stopped chan struct{} // closed when run returns
	started bool

	bufs  [loopBatch][4 + maxPacket]byte // ChannelData header room, then the datagram
	froms [loopBatch]sockaddr
	ns    [loopBatch]int
	msgs  [loopBatch]unix.Mmsghdr
	iovs  [loopBatch]unix.Iovec
}

func newLoop(s *Server) (*loop, error) {
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("relay: epoll_create: %w", err)
	}
	wake, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		_ = unix.Close(ep)
		return nil, fmt.Errorf("relay: eventfd: %w", err)
	}
	if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, wake, &unix.EpollEvent{Events: unix.EPOLLIN}); err != nil {
		_ = unix.Close(ep)
		_ = unix.Close(wake)
		return nil, fmt.Errorf("relay: epoll_ctl: %w", err)
	}
	return &loop{s: s, ep: ep, wake: wake, socks: map[uint64]*udpSock{}, nextID: wakeID + 1,
		stopped: make(chan struct{})}, nil
}

// add registers s: from now on the loop reads it.
func (l *loop) add(s *udpSock) error {
	l.mu.Lock()
	s.id = l.nextID
	l.nextID++
	l.socks[s.id] = s
	l.mu.Unlock()
	s.mu.RLock()
	defer s.mu.RUnlock()
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(uint32(s.id)), Pad: int32(uint32(s.id >> 32))}
	if err := unix.EpollCtl(l.ep, unix.EPOLL_CTL_ADD, s.fd, &ev); err != nil {
		l.mu.Lock()
		delete(l.socks, s.id)
		l.mu.Unlock()
		return fmt.Errorf("relay: epoll_ctl add %s: %w", s.local, err)
	}
	return nil
}

// remove unregisters s (before it is closed).
func (l *loop) remove(s *udpSock) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.socks[s.id]; !ok || l.ep < 0 {
		return
	}
	delete(l.socks, s.id)
	s.mu.RLock()
	_ = unix.EpollCtl(l.ep, unix.EPOLL_CTL_DEL, s.fd, nil)
	s.mu.RUnlock()
}

// start runs the loop on its own goroutine; stop ends it.
func (l *loop) start() {
	l.started = true
	go l.run()
}

// stop ends the loop, waits for it and closes its descriptors. It is called once, by the Server.
func (l *loop) stop() {
	if l.started {
		var one [8]byte
		binary.NativeEndian.PutUint64(one[:], 1)
		_, _ = unix.Write(l.wake, one[:])
		<-l.stopped
	}
	l.mu.Lock()
	_ = unix.Close(l.ep)
	_ = unix.Close(l.wake)
	l.ep = -1
	l.mu.Unlock()
}

func (l *loop) run() {
	defer close(l.stopped)
	var events [loopEvents]unix.EpollEvent
	yielded := time.Now()
	for {
		n, err := epollWait(l.ep, events[:])
		if err != nil {
			if err == unix.EINTR {
				continue
			}
			l.s.log.Error("relay data plane stopped", "err", err)
			return
		}
		for i := range n {
			id := uint64(uint32(events[i].Fd)) | uint64(uint32(events[i].Pad))<<32
			if id == wakeID {
				return
			}
			l.mu.Lock()
			s := l.socks[id]
			l.mu.Unlock()
			if s != nil {
				l.serve(s)
			}
		}
		// A goroutine that runs for 10 ms without passing through the scheduler makes sysmon take its P
		// away while it sits in epoll_wait, and then poll every 20 µs. Yielding now and then keeps sysmon
		// asleep; the loop is not locked to its thread, so a yield with nothing else to run is cheap.
		if now := time.Now(); now.Sub(yielded) > yieldEvery {
			yielded = now
			runtime.Gosched()
		}
	}
}

// yieldEvery is how often a busy loop passes through the scheduler (well under sysmon's 10 ms).
const yieldEvery = time.Millisecond

// epollWait blocks until a socket is readable. It goes through the scheduler (the P is released if the wait
// is long and another goroutine needs it).
func epollWait(ep int, events []unix.EpollEvent) (int, error) {
	return unix.EpollWait(ep, events, -1)
}

// serve reads what s has queued (up to loopBudget datagrams) and relays or hands over each.
func (l *loop) serve(s *udpSock) {
	for read := 0; read < loopBudget; {
		s.mu.RLock()
		if s.fd < 0 {
			s.mu.RUnlock()
			return
		}
		n, err := l.recvmmsg(s.fd)
		s.mu.RUnlock()
		// Relay without holding s: relaying takes other sockets' locks, one at a time.
		for i := range n {
			if l.ns[i] > maxPacket {
				continue // truncated; pion would not take it either
			}
			if s.relay != nil {
				l.fromPeer(s, i)
			} else {
				l.fromClient(s, i)
			}
		}
		read += n
		if err != nil {
			if err != unix.EAGAIN && err != unix.EINTR && err != unix.ECONNREFUSED {
				l.s.log.Debug("relay data plane read", "socket", s.local.String(), "err", err)
			}
			return
		}
		if n < loopBatch {
			return // drained; the level-triggered epoll set reports anything that arrived since
		}
	}
}

// recvmmsg reads up to loopBatch datagrams from fd into l.bufs (after 4 bytes of header room), without
// blocking, in one system call.
func (l *loop) recvmmsg(fd int) (int, error) {
	for i := range l.msgs {
		h := &l.msgs[i].Hdr
		if h.Iov == nil {
			l.iovs[i].Base = &l.bufs[i][4]
			l.iovs[i].SetLen(maxPacket)
			h.Iov = &l.iovs[i]
			h.SetIovlen(1)
			h.Name = (*byte)(unsafe.Pointer(&l.froms[i].raw))
		}
		h.Namelen = unix.SizeofSockaddrInet6
		h.Flags = 0
	}
	r, _, errno := syscall.RawSyscall6(unix.SYS_RECVMMSG, uintptr(fd), uintptr(unsafe.Pointer(&l.msgs[0])),
		loopBatch, unix.MSG_DONTWAIT, 0, 0)
	if errno != 0 {
		return 0, errno
	}
	n := int(r)
	for i := range n {
		l.froms[i].len = l.msgs[i].Hdr.Namelen
		l.ns[i] = int(l.msgs[i].Len)
		if l.msgs[i].Hdr.Flags&unix.MSG_TRUNC != 0 {
			l.ns[i] = maxPacket + 1
		}
	}
	return n, nil
}

// isChannelData reports whether b is a whole ChannelData message (RFC 8656 §12.4) and returns its channel
// number and application data. The top two bits 01 distinguish it from STUN (00) and from the other protocols
// that may share the port (RFC 7983 §7). RFC 8656 §12 narrowed channel numbers to 0x4000-0x4FFF, but RFC 5766
// §11 allowed up to 0x7FFE, pion binds those too and clients (coturn's uclient) use them, so the whole
// 0x4000-0x7FFF range is taken here; only channels pion bound are ever relayed. Over UDP the message may
// carry padding after the data (§12.5), which is ignored; a length beyond the datagram is not ChannelData.
func isChannelData(b []byte) (uint16, []byte, bool) {
	if len(b) < 4 || b[0]&0xC0 != 0x40 {
		return 0, nil, false
	}
	ch := binary.BigEndian.Uint16(b[0:2])
	size := int(binary.BigEndian.Uint16(b[2:4]))
	if 4+size > len(b) {
		return 0, nil, false
	}
	return ch, b[4 : 4+size], true
}

// fromClient relays ChannelData on a channel the table knows to its peer, and hands anything else to pion.
func (l *loop) fromClient(s *udpSock, i int) {
	b := l.bufs[i][4 : 4+l.ns[i]]
	if ch, data, ok := isChannelData(b); ok {
		from := l.froms[i].addrPort()
		if r := l.s.routes.byClient(s.ap, from, ch); r != nil {
			r.relay.toPeer(data, &r.peerSA)
			return
		}
	}
	l.handoff(s, b, &l.froms[i])
}

// fromPeer relays a peer's datagram to the client as ChannelData when a channel is bound to the peer, and
// hands it to pion otherwise (Data indication if a permission exists, RFC 8656 §11.4; else dropped).
func (l *loop) fromPeer(s *udpSock, i int) {
	n := l.ns[i]
	from := l.froms[i].addrPort()
	if r := l.s.routes.byPeer(s.relay, from); r != nil {
		msg := l.bufs[i][:4+n]
		binary.BigEndian.PutUint16(msg[0:2], r.ch)
		binary.BigEndian.PutUint16(msg[2:4], uint16(n))
		s.relay.toClient(msg, r)
		return
	}
	l.handoff(s, l.bufs[i][4:4+n], &l.froms[i])
}

func (l *loop) handoff(s *udpSock, b []byte, from *sockaddr) {
	p := packetPool.Get().(*packet)
	p.n = copy(p.buf[:], b)
	p.from = from.addrPort()
	if s.handoff(p) != nil {
		dir := dirClientToPeer
		if s.relay != nil {
			dir = dirPeerToClient
		}
		l.s.m.dropped.WithLabelValues("queue", dirNames[dir]).Inc()
	}
}

// route is one bound channel of a UDP client's allocation.
type route struct {
	relay    *relayConn
	ch       uint16
	client   *udpSock
	clientSA sockaddr // the client, in client's address family
	peerSA   sockaddr // the peer, in the relayed socket's address family
	ck       clientKey
	pk       peerKey
}

type clientKey struct {
	listen, client netip.AddrPort
	ch             uint16
}

type peerKey struct {
	relay *relayConn
	peer  netip.AddrPort
}

// routeTable maps channels to relayed sockets and back. Writes come from pion's events; the loops read it
// per packet.
type routeTable struct {
	mu        sync.RWMutex
	client    map[clientKey]*route
	peer      map[peerKey]*route
	relays    map[netip.AddrPort]*relayConn // by relayed transport address as advertised
	listeners map[netip.AddrPort]*udpSock   // one client-facing socket per listen address, to send from
}

func (t *routeTable) init() {
	t.client = map[clientKey]*route{}
	t.peer = map[peerKey]*route{}
	t.relays = map[netip.AddrPort]*relayConn{}
	t.listeners = map[netip.AddrPort]*udpSock{}
}

// installed is the number of routes (bound channels) in the table.
func (t *routeTable) installed() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return len(t.client)
}

func (t *routeTable) byClient(listen, client netip.AddrPort, ch uint16) *route {
	t.mu.RLock()
	r := t.client[clientKey{listen, client, ch}]
	t.mu.RUnlock()
	return r
}

func (t *routeTable) byPeer(relay *relayConn, peer netip.AddrPort) *route {
	t.mu.RLock()
	r := t.peer[peerKey{relay, peer}]
	t.mu.RUnlock()
	return r
}

// addListener records the socket replies to clients of listen address ap are sent from.
func (t *routeTable) addListener(s *udpSock) {
	t.mu.Lock()
	if _, ok := t.listeners[s.ap]; !ok {
		t.listeners[s.ap] = s
	}
	t.mu.Unlock()
}

// reserveRelay claims an advertised relayed address; false if another allocation has it (two listeners
// with the same external address), so the caller picks another port.
func (t *routeTable) reserveRelay(adv netip.AddrPort) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.relays[adv]; ok {
		return false
	}
	t.relays[adv] = nil
	return true
}

// setRelay records r under the address reserveRelay claimed.
func (t *routeTable) setRelay(adv netip.AddrPort, r *relayConn) {
	t.mu.Lock()
	r.adv = adv
	t.relays[adv] = r
	t.mu.Unlock()
}

// removeRelay forgets r and its channels.
func (t *routeTable) removeRelay(r *relayConn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if r.adv.IsValid() && t.relays[r.adv] == r {
		delete(t.relays, r.adv)
	}
	for rt := range r.routes {
		t.deleteLocked(rt)
	}
}

func (t *routeTable) deleteLocked(rt *route) {
	if t.client[rt.ck] == rt {
		delete(t.client, rt.ck)
	}
	if t.peer[rt.pk] == rt {
		delete(t.peer, rt.pk)
	}
	delete(rt.relay.routes, rt)
}

// addrPortOf returns a UDP address as an unmapped netip.AddrPort.
func addrPortOf(a net.Addr) (netip.AddrPort, bool) {
	ua, ok := a.(*net.UDPAddr)
	if !ok {
		return netip.AddrPort{}, false
	}
	ap := ua.AddrPort()
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), ap.IsValid()
}

// channelCreated installs the route for a channel pion bound (OnChannelCreated). Only UDP clients of the
// data plane's sockets are routed; pion relays the rest.
func (t *routeTable) channelCreated(src, dst net.Addr, protocol string, relayAddr, peer net.Addr, ch uint16) {
	if protocol != "UDP" {
		return
	}
	client, ok1 := addrPortOf(src)
	listen, ok2 := addrPortOf(dst)
	adv, ok3 := addrPortOf(relayAddr)
	pa, ok4 := addrPortOf(peer)
	if !ok1 || !ok2 || !ok3 || !ok4 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	cs, relay := t.listeners[listen], t.relays[adv]
	if cs == nil || relay == nil {
		return
	}
	rt := &route{relay: relay, ch: ch, client: cs, ck: clientKey{listen, client, ch}, pk: peerKey{relay, pa}}
	if !rt.clientSA.set(client, cs.v6) || !rt.peerSA.set(pa, relay.sock.v6) {
		return
	}
	if old := t.client[rt.ck]; old != nil {
		t.deleteLocked(old)
	}
	if old := t.peer[rt.pk]; old != nil {
		t.deleteLocked(old)
	}
	t.client[rt.ck] = rt
	t.peer[rt.pk] = rt
	if relay.routes == nil {
		relay.routes = map[*route]struct{}{}
	}
	relay.routes[rt] = struct{}{}
}

// channelDeleted removes a channel's route (OnChannelDeleted: expiry, allocation deleted).
func (t *routeTable) channelDeleted(src, dst net.Addr, protocol string, ch uint16) {
	if protocol != "UDP" {
		return
	}
	client, ok1 := addrPortOf(src)
	listen, ok2 := addrPortOf(dst)
	if !ok1 || !ok2 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if rt := t.client[clientKey{listen, client, ch}]; rt != nil {
		t.deleteLocked(rt)
	}
}

// toPeer is the data plane's WriteTo: ChannelData from the client on a bound channel (RFC 8656 §12.6).
func (c *relayConn) toPeer(data []byte, peer *sockaddr) {
	if !c.allow(dirClientToPeer, len(data)) {
		return
	}
	if c.sock.sendNow(data, peer) == nil {
		c.count(dirClientToPeer, len(data))
	}
}

// toClient sends a peer's datagram, already framed as ChannelData in msg, to the client (RFC 8656 §12.7).
func (c *relayConn) toClient(msg []byte, rt *route) {
	n := len(msg) - 4
	if !c.allow(dirPeerToClient, n) {
		return
	}
	if rt.client.sendNow(msg, &rt.clientSA) == nil {
		c.count(dirPeerToClient, n)
	}
}

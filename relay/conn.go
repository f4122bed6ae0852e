package relay

import (
	"bufio"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"time"
)

// clientPacketConn is a client-facing UDP socket as pion sees it: packets that inspect rejects never reach
// pion, and the first read error (the socket was closed) marks pion's read loop as finished.
type clientPacketConn struct {
	net.PacketConn
	s        *Server
	loopDone func()
}

func (c *clientPacketConn) ReadFrom(p []byte) (int, net.Addr, error) {
	for {
		n, addr, err := c.PacketConn.ReadFrom(p)
		if err != nil {
			c.loopDone()
			return n, addr, err
		}
		if c.s.inspect(p[:n], addr) {
			return n, addr, nil
		}
	}
}

// relayConn is an allocation's relayed UDP socket (RFC 8656 §2.2 "relayed transport address"). It counts
// traffic, enforces the bandwidth cap and the maximum age, and gives the quota slot back on Close. The data
// plane relays through it (toPeer, toClient); pion uses it as a net.PacketConn for what the data plane hands
// over.
type relayConn struct {
	net.PacketConn
	sock   *udpSock
	s      *Server
	user   string
	adv    netip.AddrPort      // advertised relayed address; set by routeTable.addRelay
	routes map[*route]struct{} // its channels in s.routes; guarded by s.routes.mu
	stats  counters
	lim    [2]*bucket
	timer  *time.Timer
	closed sync.Once
}

func (s *Server) newRelayConn(sock *udpSock, user string) *relayConn {
	c := &relayConn{PacketConn: sock, sock: sock, s: s, user: user}
	sock.relay = c
	if bw := s.cfg.MaxBandwidth; bw > 0 {
		for d := range c.lim {
			// Burst of one second of traffic, at least a few full-size packets.
			c.lim[d] = newBucket(float64(bw), float64(max(bw, 16*1500)))
		}
	}
	s.traffic.add(&c.stats)
	if age := s.cfg.MaxAllocationAge; age > 0 {
		// Closing the socket ends pion's relay read loop, which deletes the allocation.
		c.timer = time.AfterFunc(age, func() { _ = c.Close() })
	}
	return c
}

// allow applies the bandwidth cap of direction d to n bytes, counting a drop.
func (c *relayConn) allow(d int, n int) bool {
	if c.lim[d] != nil && !c.lim[d].allow(float64(n), time.Now()) {
		c.s.m.dropped.WithLabelValues("bandwidth", dirNames[d]).Inc()
		return false
	}
	return true
}

func (c *relayConn) count(d int, n int) {
	c.stats.packets[d].Add(1)
	c.stats.bytes[d].Add(uint64(n))
}

// WriteTo sends a client's data to a peer (pion checked the permission).
func (c *relayConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	if !c.allow(dirClientToPeer, len(p)) {
		return len(p), nil
	}
	n, err := c.PacketConn.WriteTo(p, addr)
	if err == nil {
		c.count(dirClientToPeer, n)
	}
	return n, err
}

// ReadFrom receives a peer's data for the client (what the data plane did not relay itself).
func (c *relayConn) ReadFrom(p []byte) (int, net.Addr, error) {
	for {
		n, addr, err := c.PacketConn.ReadFrom(p)
		if err != nil {
			return n, addr, err
		}
		if !c.allow(dirPeerToClient, n) {
			continue
		}
		c.count(dirPeerToClient, n)
		return n, addr, nil
	}
}

// Close closes the socket once; later calls return nil. The maximum-age
// timer closes it first and pion's allocation closes it again when its read
// loop ends, which it would log as an error.
func (c *relayConn) Close() error {
	var err error
	c.closed.Do(func() {
		err = c.PacketConn.Close()
		if c.timer != nil {
			c.timer.Stop()
		}
		c.s.routes.removeRelay(c)
		c.s.traffic.remove(&c.stats)
		c.s.quota.release(c.user)
	})
	return err
}

// relayListener is an RFC 6062 TCP allocation's relayed listener; it holds a quota slot like relayConn.
type relayListener struct {
	net.Listener
	s      *Server
	user   string
	closed sync.Once
}

// Accept hands pion a peer's connection to the relayed address (RFC 6062 §4.3), counted.
func (l *relayListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return l.s.newPeerConn(c), nil
}

// peerConn is an RFC 6062 peer data connection, accepted on a relayed listener or dialled for a Connect. It
// counts the bytes pion copies through it into xjingle_relay_tcp_relayed_bytes_total.
type peerConn struct {
	net.Conn
	t *traffic
}

func (s *Server) newPeerConn(c net.Conn) *peerConn {
	s.m.tcpPeerConns.Inc()
	return &peerConn{Conn: c, t: &s.traffic}
}

// Read receives the peer's bytes for the client; they are counted before pion forwards them.
func (c *peerConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.t.tcp[dirPeerToClient].Add(uint64(n))
	}
	return n, err
}

// Write sends the client's bytes to the peer. They are counted before the write, so that the metric already
// shows them when the peer has them; what was not written is taken back.
func (c *peerConn) Write(p []byte) (int, error) {
	c.t.tcp[dirClientToPeer].Add(uint64(len(p)))
	n, err := c.Conn.Write(p)
	if n < len(p) {
		c.t.tcp[dirClientToPeer].Add(^uint64(len(p) - n - 1)) // subtract len(p)-n
	}
	return n, err
}

// Close closes the listener once; later calls return nil (as relayConn.Close).
func (l *relayListener) Close() error {
	var err error
	l.closed.Do(func() {
		err = l.Listener.Close()
		l.s.quota.release(l.user)
	})
	return err
}

// clientListener accepts client TCP (or TLS) connections for pion, bounded by MaxTCPConns, and hands each over
// as a framedConn. It tracks the connections so Close can end them (pion does not).
type clientListener struct {
	net.Listener
	s        *Server
	tls      *tls.Config // nil for plain TCP
	loopDone func()
}

func (l *clientListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			l.loopDone()
			return nil, err
		}
		if l.s.draining.Load() || !l.s.conns.add() {
			l.s.m.tcpRejected.Inc()
			_ = c.Close()
			continue
		}
		if l.tls != nil {
			c = tls.Server(c, l.tls)
		}
		fc := newFramedConn(c, l.s)
		l.s.m.tcpConns.Inc()
		if !l.s.conns.track(fc) {
			// Closing already: pion gets nothing more.
			_ = fc.Close()
			continue
		}
		return fc, nil
	}
}

// connSet tracks client stream connections.
type connSet struct {
	max    int
	mu     sync.Mutex
	n      int
	conns  map[*framedConn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// add reserves room for one more connection.
func (cs *connSet) add() bool {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.closed || cs.n >= cs.max {
		return false
	}
	cs.n++
	cs.wg.Add(1)
	return true
}

func (cs *connSet) track(c *framedConn) bool {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.closed {
		return false
	}
	if cs.conns == nil {
		cs.conns = make(map[*framedConn]struct{})
	}
	cs.conns[c] = struct{}{}
	return true
}

func (cs *connSet) done(c *framedConn) {
	cs.mu.Lock()
	delete(cs.conns, c)
	cs.n--
	cs.mu.Unlock()
	cs.wg.Done()
}

// closeAll closes every tracked connection and refuses new ones.
func (cs *connSet) closeAll() {
	cs.mu.Lock()
	cs.closed = true
	conns := make([]*framedConn, 0, len(cs.conns))
	for c := range cs.conns {
		conns = append(conns, c)
	}
	cs.mu.Unlock()
	for _, c := range conns {
		_ = c.Conn.Close()
	}
}

// maxStreamFrame is the largest TURN frame accepted on a stream connection: pion reads into a buffer of its
// inbound MTU (1600 bytes) and could not take a larger one anyway.
const maxStreamFrame = 1600

// methodConnectionBindRequest is the STUN message type of an RFC 6062 ConnectionBind request.
const methodConnectionBindRequest = 0x000B

// errFrame is a stream that is not a sequence of STUN and ChannelData frames.
var errFrame = errors.New("relay: not a STUN or ChannelData frame")

// framedConn delivers a client stream to pion one whole frame per Read (RFC 8656 §12.5: over TCP, STUN
// messages and ChannelData, padded to 4 bytes, are back to back), so that each frame can be inspected like a
// UDP packet. It applies the handshake and idle timeouts.
type framedConn struct {
	net.Conn
	s       *Server
	r       *bufio.Reader
	buf     [maxStreamFrame]byte
	pending []byte
	started bool
	raw     bool
	once    sync.Once
}

func newFramedConn(c net.Conn, s *Server) *framedConn {
	return &framedConn{Conn: c, s: s, r: bufio.NewReaderSize(c, 4096)}
}

func (c *framedConn) Read(p []byte) (int, error) {
	for len(c.pending) == 0 {
		if c.raw {
			if c.s.cfg.TCPIdleTimeout > 0 {
				if err := c.Conn.SetReadDeadline(time.Now().Add(c.s.cfg.TCPIdleTimeout)); err != nil {
					return 0, err
				}
			}
			return c.r.Read(p)
		}
		if err := c.readFrame(); err != nil {
			return 0, err
		}
	}
	n := copy(p, c.pending)
	c.pending = c.pending[n:]
	return n, nil
}

func (c *framedConn) readFrame() error {
	timeout := c.s.cfg.TCPIdleTimeout
	if !c.started {
		timeout = c.s.cfg.HandshakeTimeout
	}
	if timeout > 0 {
		if err := c.Conn.SetReadDeadline(time.Now().Add(timeout)); err != nil {
			return err
		}
	}
	hdr := c.buf[:4]
	if _, err := io.ReadFull(c.r, hdr); err != nil {
		return err
	}
	var size int
	switch {
	case hdr[0]&0xC0 == 0: // STUN, RFC 8489 §5
		size = stunHeaderSize + int(binary.BigEndian.Uint16(hdr[2:4]))
	case hdr[0]&0xC0 == 0x40: // ChannelData 0x4000-0x7FFF, RFC 8656 §12.4
		size = 4 + (int(binary.BigEndian.Uint16(hdr[2:4]))+3)&^3
	default:
		return fmt.Errorf("%w from %s", errFrame, c.RemoteAddr())
	}
	if size > maxStreamFrame || size < 4 {
		return fmt.Errorf("%w: %d-byte frame from %s", errFrame, size, c.RemoteAddr())
	}
	if _, err := io.ReadFull(c.r, c.buf[4:size]); err != nil {
		return err
	}
	c.started = true
	if binary.BigEndian.Uint16(c.buf[0:2]) == methodConnectionBindRequest {
		// RFC 6062 §4.3: after ConnectionBind the connection carries the peer's raw byte stream, which pion
		// copies with plain Reads.
		c.raw = true
	}
	if c.s.inspect(c.buf[:size], c.RemoteAddr()) {
		c.pending = c.buf[:size]
	}
	return nil
}

func (c *framedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.s.m.tcpConns.Dec()
		c.s.conns.done(c)
	})
	return err
}

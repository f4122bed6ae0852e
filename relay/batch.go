package relay

import (
	"net"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// Batch sizes for recvmmsg(2): client-facing sockets are few and busy; an allocation's relayed socket gets
// its batch buffers only once it has carried relayBatchAfter packets, so that idle allocations (most of them,
// and all of the 10,000 in TestTenThousandAllocations) cost no extra memory.
const (
	listenBatch     = 32
	relayBatch      = 8
	relayBatchAfter = 256
	batchBufSize    = 1600 // pion's inbound MTU and relay buffer size
)

// batchConn is what ipv4.PacketConn and ipv6.PacketConn have in common (their Message types are both
// aliases of the same type).
type batchConn interface {
	ReadBatch(ms []ipv4.Message, flags int) (int, error)
}

// batchReader reads datagrams from a UDP socket several at a time with recvmmsg(2) (through
// golang.org/x/net's ReadBatch) and hands them out one per readFrom call, so that pion's read loops, which
// call ReadFrom once per packet, pay one system call and at most one netpoll wake-up per burst instead of
// per packet. It has a single reader, like the read loop that owns it.
type batchReader struct {
	rb   batchConn
	msgs []ipv4.Message
	next int
	n    int
}

// newBatchReader returns nil when pc is not a UDP socket (vnet, tests); callers then read unbatched.
func newBatchReader(pc net.PacketConn, size int) *batchReader {
	uc, ok := pc.(*net.UDPConn)
	if !ok {
		return nil
	}
	br := &batchReader{msgs: make([]ipv4.Message, size)}
	if la, ok := uc.LocalAddr().(*net.UDPAddr); ok && la.IP.To4() != nil {
		br.rb = ipv4.NewPacketConn(uc)
	} else {
		br.rb = ipv6.NewPacketConn(uc)
	}
	buf := make([]byte, size*batchBufSize)
	for i := range br.msgs {
		br.msgs[i].Buffers = [][]byte{buf[i*batchBufSize : (i+1)*batchBufSize : (i+1)*batchBufSize]}
	}
	return br
}

// readFrom returns the next buffered datagram, reading a new batch when none is left. A datagram larger
// than p is cut to len(p), which pion's loops treat as too large (they read into MTU-sized buffers).
func (b *batchReader) readFrom(p []byte) (int, net.Addr, error) {
	if b.next >= b.n {
		n, err := b.rb.ReadBatch(b.msgs, 0)
		if err != nil {
			b.next, b.n = 0, 0
			return 0, nil, err
		}
		b.next, b.n = 0, n
	}
	m := &b.msgs[b.next]
	b.next++
	return copy(p, m.Buffers[0][:m.N]), m.Addr, nil
}

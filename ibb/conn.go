package ibb

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"

	"github.com/xjingle/xjingle/internal/deadline"
	"github.com/xjingle/xjingle/jingle"
	"mellium.im/xmpp/jid"
)

// Addr is the address of one end of an IBB stream: a full JID and the
// stream's sid.
type Addr struct {
	JID jid.JID
	SID string
}

// Network implements net.Addr.
func (a Addr) Network() string { return "ibb" }

// String implements net.Addr: "jid#sid".
func (a Addr) String() string { return a.JID.String() + "#" + a.SID }

// Conn is one In-Band Bytestream (XEP-0047) as a net.Conn.
//
// Write splits its data into blocks of at most BlockSize bytes and sends each
// in a <data/> IQ; it returns once every block is on its way (handed to the
// Signaller), keeping at most the Handler's window of blocks unacknowledged,
// so a slow reader on the other side stalls it. A failed block (an error
// answer) fails the stream: the next Write reports it and a <close/> is sent
// (XEP-0047 §2.2).
//
// Read returns data in order; it returns io.EOF once the peer closed the
// stream (XEP-0047 §2.3) and the buffered data is read. The receive buffer is
// bounded: when it is full, acknowledgements are delayed until Read makes
// room.
//
// Deadlines work as in net.Conn: an expired deadline makes pending and future
// calls fail with an error wrapping os.ErrDeadlineExceeded (Timeout() true).
// Close sends <close/> (unless the stream already ended) after the data
// already written, waits for the peer's answer (bounded by the Handler's close
// timeout) and unblocks everything. All methods are safe for concurrent use.
type Conn struct {
	h            *Handler
	key          streamKey
	sig          jingle.Signaller
	async        jingle.AsyncIQSender // nil: one block in flight, via SendIQ
	local, peer  jid.JID
	sid, sidAttr string
	blockSize    int
	readBuffer   int // soft limit: acks are delayed above it
	hardBuffer   int // hard limit: the stream fails above it
	closeTimeout time.Duration
	log          *slog.Logger

	ctx      context.Context // bounds in-flight IQs; cancelled by Close
	cancel   context.CancelFunc
	wg       sync.WaitGroup // goroutines: fallback senders, failure <close/>
	inflight sync.WaitGroup // SendIQAsync calls whose done is pending

	rdl, wdl  *deadline.Deadline
	closed    chan struct{} // closed by Close
	closeOnce sync.Once
	fatal     chan struct{} // closed when the stream ends (any reason)

	wlock  chan struct{} // serialises Writes
	slots  chan struct{} // window of blocks in flight
	sendMu sync.Mutex    // orders sends; see send and sendClose
	wseq   uint16        // next seq to send; under wlock

	mu       sync.Mutex
	rbuf     []byte // rbuf[roff:] is unread
	roff     int
	rseq     uint16
	deferred []jingle.ReplyFunc // delayed acks, oldest first
	notify   chan struct{}      // closed and replaced when read state changes
	rerr     error              // after rbuf drains
	werr     error
	ended    bool // out of the Handler's table; no more data accepted
}

var _ net.Conn = (*Conn)(nil)

func (h *Handler) newConn(peer jid.JID, sid string, blockSize int) *Conn {
	ctx, cancel := context.WithCancel(context.Background())
	window := h.cfg.window
	async, ok := h.sig.(jingle.AsyncIQSender)
	if !ok {
		window = 1
	}
	c := &Conn{
		h: h, key: streamKey{peer.String(), sid}, sig: h.sig, async: async,
		local: h.sig.LocalJID(), peer: peer, sid: sid, sidAttr: attrEscape(sid),
		blockSize:    blockSize,
		readBuffer:   h.cfg.readBuffer,
		hardBuffer:   h.cfg.readBuffer + MaxWindow*blockSize,
		closeTimeout: h.cfg.closeTimeout,
		log:          h.cfg.logger.With("component", "ibb", "sid", sid, "peer", peer.String()),
		ctx:          ctx, cancel: cancel,
		rdl: deadline.New(), wdl: deadline.New(),
		closed: make(chan struct{}), fatal: make(chan struct{}),
		wlock: make(chan struct{}, 1), slots: make(chan struct{}, window),
		wseq: h.cfg.initialSeq, rseq: h.cfg.initialSeq,
		notify: make(chan struct{}),
	}
	return c
}

// SID is the stream's session id.
func (c *Conn) SID() string { return c.sid }

// BlockSize is the negotiated block size.
func (c *Conn) BlockSize() int { return c.blockSize }

// LocalAddr implements net.Conn; it returns an Addr.
func (c *Conn) LocalAddr() net.Addr { return Addr{c.local, c.sid} }

// RemoteAddr implements net.Conn; it returns an Addr.
func (c *Conn) RemoteAddr() net.Addr { return Addr{c.peer, c.sid} }

// SetDeadline implements net.Conn.
func (c *Conn) SetDeadline(t time.Time) error {
	c.rdl.Set(t)
	c.wdl.Set(t)
	return nil
}

// SetReadDeadline implements net.Conn.
func (c *Conn) SetReadDeadline(t time.Time) error { c.rdl.Set(t); return nil }

// SetWriteDeadline implements net.Conn.
func (c *Conn) SetWriteDeadline(t time.Time) error { c.wdl.Set(t); return nil }

func (c *Conn) opErr(op string, err error) error {
	return &net.OpError{Op: op, Net: "ibb", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
}

// Read implements net.Conn.
func (c *Conn) Read(b []byte) (int, error) {
	for {
		if deadline.Closed(c.closed) {
			return 0, c.opErr("read", net.ErrClosed)
		}
		if deadline.Closed(c.rdl.Wait()) {
			return 0, c.opErr("read", os.ErrDeadlineExceeded)
		}
		c.mu.Lock()
		if c.roff < len(c.rbuf) {
			if len(b) == 0 {
				c.mu.Unlock()
				return 0, nil
			}
			n := copy(b, c.rbuf[c.roff:])
			c.roff += n
			if c.roff == len(c.rbuf) {
				c.rbuf, c.roff = c.rbuf[:0], 0
			}
			var acks []jingle.ReplyFunc
			if len(c.rbuf)-c.roff <= c.readBuffer {
				acks, c.deferred = c.deferred, nil
			}
			c.mu.Unlock()
			ack(acks)
			return n, nil
		}
		if err := c.rerr; err != nil {
			c.mu.Unlock()
			return 0, err
		}
		ch := c.notify
		c.mu.Unlock()
		select {
		case <-ch:
		case <-c.closed:
		case <-c.rdl.Wait():
		}
	}
}

// ack answers delayed data IQs with a result.
func ack(acks []jingle.ReplyFunc) {
	for _, r := range acks {
		if r != nil {
			_ = r(nil, nil)
		}
	}
}

// writeErr is the error a Write must return now, if any.
func (c *Conn) writeErr() error {
	if deadline.Closed(c.closed) {
		return c.opErr("write", net.ErrClosed)
	}
	c.mu.Lock()
	err := c.werr
	c.mu.Unlock()
	if err != nil {
		return c.opErr("write", err)
	}
	if deadline.Closed(c.wdl.Wait()) {
		return c.opErr("write", os.ErrDeadlineExceeded)
	}
	return nil
}

// Write implements net.Conn.
func (c *Conn) Write(b []byte) (int, error) {
	select {
	case c.wlock <- struct{}{}:
	case <-c.closed:
		return 0, c.opErr("write", net.ErrClosed)
	case <-c.wdl.Wait():
		return 0, c.opErr("write", os.ErrDeadlineExceeded)
	}
	defer func() { <-c.wlock }()
	n := 0
	for {
		// Every byte handed off is a complete Write, even if the peer
		// closed right after it read the last block (its <close/> can
		// overtake our loop).
		if n == len(b) && n > 0 {
			return n, nil
		}
		if err := c.writeErr(); err != nil {
			return n, err
		}
		if n == len(b) {
			return n, nil
		}
		select {
		case c.slots <- struct{}{}:
		case <-c.closed:
			continue // writeErr reports it
		case <-c.fatal:
			continue
		case <-c.wdl.Wait():
			continue
		}
		chunk := b[n:min(len(b), n+c.blockSize)]
		if err := c.send(chunk); err != nil {
			<-c.slots
			return n, c.opErr("write", err)
		}
		n += len(chunk)
	}
}

// send sends one block; the caller holds wlock and a window slot, which
// the answer releases.
func (c *Conn) send(block []byte) error {
	buf := getBuf()
	*buf = appendData((*buf)[:0], c.sidAttr, c.wseq, block)
	payload := *buf

	// sendMu makes "check that the stream is open, then send" atomic with
	// respect to sendClose, so no <data/> follows our <close/>.
	c.sendMu.Lock()
	defer c.sendMu.Unlock()
	c.mu.Lock()
	ended, werr := c.ended, c.werr
	c.mu.Unlock()
	if ended {
		putBuf(buf)
		if werr == nil {
			werr = net.ErrClosed
		}
		return werr
	}
	if c.async != nil {
		c.inflight.Add(1)
		err := c.async.SendIQAsync(c.ctx, c.peer, "set", payload, func(_ []byte, err error) {
			defer c.inflight.Done()
			c.dataDone(buf, err)
		})
		if err != nil {
			c.inflight.Done()
			putBuf(buf)
			return fmt.Errorf("ibb: send data: %w", err)
		}
	} else {
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			_, err := c.sig.SendIQ(c.ctx, c.peer, "set", payload)
			c.dataDone(buf, err)
		}()
	}
	c.wseq++ // wraps from 65535 to 0 (XEP-0047 §2.2)
	return nil
}

// dataDone handles the answer to a <data/> IQ. It runs on the Signaller's
// goroutine and must not block.
func (c *Conn) dataDone(buf *[]byte, err error) {
	var se *jingle.StanzaError
	if err == nil || errors.As(err, &se) {
		// Answered: the Signaller is done with the payload.
		putBuf(buf)
	}
	// Fail before the slot is released: a Write waiting for it then sees
	// the error instead of sending more.
	if err != nil && !(deadline.Closed(c.closed) && c.ctx.Err() != nil) {
		// XEP-0047 §2.2: on an error about a data packet the sender
		// MUST close the bytestream.
		c.fail(fmt.Errorf("ibb: data for %s: %w", c.sid, err))
	}
	<-c.slots
}

// endLocked takes the stream out of the Handler's table and sets its final
// errors. It returns the delayed acks to answer (their data was buffered: it
// was processed). c.mu is held.
func (c *Conn) endLocked(rerr, werr error) []jingle.ReplyFunc {
	c.ended = true
	if c.rerr == nil {
		c.rerr = rerr
	}
	if c.werr == nil {
		c.werr = werr
	}
	close(c.fatal)
	close(c.notify)
	c.notify = make(chan struct{})
	acks := c.deferred
	c.deferred = nil
	c.h.remove(c)
	return acks
}

// fail ends the stream because of err and sends <close/> in the
// background. It does nothing if the stream already ended.
func (c *Conn) fail(err error) {
	c.mu.Lock()
	if c.ended {
		c.mu.Unlock()
		return
	}
	acks := c.endLocked(err, err)
	c.wg.Add(1) // under mu: Close waits only after it saw ended
	c.mu.Unlock()
	c.log.Debug("ibb stream failed", "err", err)
	ack(acks)
	go func() {
		defer c.wg.Done()
		c.sendClose()
	}()
}

// sendClose sends <close/> after every <data/> already sent and waits for
// the answer (XEP-0047 §2.3), bounded by the close timeout and by Close.
func (c *Conn) sendClose() {
	ctx, cancel := context.WithTimeout(c.ctx, c.closeTimeout)
	defer cancel()
	payload := marshalClose(c.sid)
	var err error
	if c.async != nil {
		ch := make(chan error, 1)
		c.sendMu.Lock()
		err = c.async.SendIQAsync(ctx, c.peer, "set", payload, func(_ []byte, err error) { ch <- err })
		c.sendMu.Unlock()
		if err == nil {
			err = <-ch
		}
	} else {
		// SendIQ does not tell when a block is on the wire: wait until
		// the one in flight is answered, so <close/> cannot overtake it.
	fill:
		for range cap(c.slots) {
			select {
			case c.slots <- struct{}{}:
			case <-ctx.Done():
				break fill
			}
		}
		c.sendMu.Lock()
		c.sendMu.Unlock() //nolint:staticcheck // a barrier: no send after ended
		_, err = c.sig.SendIQ(ctx, c.peer, "set", payload)
	}
	if err != nil {
		// "In either case, both parties MUST consider the bytestream
		// to be closed" (XEP-0047 §2.3).
		c.log.Debug("ibb close not acknowledged", "err", err)
	}
}

// Close implements net.Conn. It is idempotent; see Conn for what it does.
func (c *Conn) Close() error {
	c.closeOnce.Do(func() {
		close(c.closed)
		c.mu.Lock()
		wasEnded := c.ended
		var acks []jingle.ReplyFunc
		if !wasEnded {
			acks = c.endLocked(net.ErrClosed, net.ErrClosed)
		}
		c.rbuf = nil
		c.mu.Unlock()
		ack(acks)
		if !wasEnded {
			c.sendClose()
		}
		c.cancel()
		c.sendMu.Lock()   // barrier: wg.Add/inflight.Add happen under it
		c.sendMu.Unlock() //nolint:staticcheck
		c.wg.Wait()
		c.inflight.Wait()
	})
	return nil
}

// abort ends a stream that never opened, without <close/>.
func (c *Conn) abort() {
	c.closeOnce.Do(func() {
		close(c.closed)
		c.mu.Lock()
		if !c.ended {
			c.endLocked(net.ErrClosed, net.ErrClosed)
		}
		c.mu.Unlock()
		c.cancel()
	})
}

// handleData processes one <data/> (XEP-0047 §2.2). reply is nil for data
// in a message stanza (§4).
func (c *Conn) handleData(e dataElem, reply jingle.ReplyFunc) {
	respond := func(err error) {
		if reply != nil {
			_ = reply(nil, err)
		}
	}
	block, derr := decodeBlock(e.Text, c.blockSize)
	if block != nil {
		defer putBuf(block)
	}
	c.mu.Lock()
	if c.ended {
		c.mu.Unlock()
		respond(errItemNotFound)
		return
	}
	var serr *jingle.StanzaError
	switch {
	case e.Seq != c.rseq:
		// Out of order or duplicate: a packet was lost. Do not process
		// it nor any that follow; close (XEP-0047 §2.2).
		serr = errUnexpectedRequest.WithText("seq %d, expected %d", e.Seq, c.rseq)
	case errors.Is(derr, errTooLarge):
		// XEP-0047 §2.2 "MUST NOT be larger than the 'block-size'"
		// names no error; resource-constraint is what §2.1 uses
		// for block sizes.
		serr = errResourceModify.WithText("block larger than block-size %d", c.blockSize)
	case derr != nil:
		serr = errBadRequest.WithText("invalid base64")
	case len(c.rbuf)-c.roff+len(*block) > c.hardBuffer:
		// The peer ignored our delayed acks.
		serr = errResourceWait.WithText("receive buffer full")
	}
	if serr != nil {
		err := fmt.Errorf("ibb: %w: %w", ErrProtocol, serr)
		acks := c.endLocked(err, err)
		c.wg.Add(1)
		c.mu.Unlock()
		c.log.Debug("ibb stream failed", "err", err)
		ack(acks)
		respond(serr)
		go func() {
			defer c.wg.Done()
			c.sendClose()
		}()
		return
	}
	c.rseq++
	c.appendLocked(*block)
	close(c.notify)
	c.notify = make(chan struct{})
	if reply != nil && (len(c.rbuf)-c.roff > c.readBuffer || len(c.deferred) > 0) {
		// Flow control: answer when Read makes room.
		c.deferred = append(c.deferred, reply)
		c.mu.Unlock()
		return
	}
	c.mu.Unlock()
	respond(nil)
}

// appendLocked appends p to the receive buffer, which never grows beyond
// hardBuffer (checked by the caller).
func (c *Conn) appendLocked(p []byte) {
	if len(c.rbuf)+len(p) > cap(c.rbuf) && c.roff > 0 {
		n := copy(c.rbuf, c.rbuf[c.roff:])
		c.rbuf, c.roff = c.rbuf[:n], 0
	}
	if need := len(c.rbuf) + len(p); need > cap(c.rbuf) {
		newCap := min(max(2*cap(c.rbuf), need, 16<<10), c.hardBuffer)
		newCap = max(newCap, need)
		nb := make([]byte, len(c.rbuf), newCap)
		copy(nb, c.rbuf)
		c.rbuf = nb
	}
	c.rbuf = append(c.rbuf, p...)
}

// handlePeerClose processes <close/> (XEP-0047 §2.3): Read returns the
// buffered data, then io.EOF.
func (c *Conn) handlePeerClose(reply jingle.ReplyFunc) {
	c.mu.Lock()
	if c.ended {
		c.mu.Unlock()
		_ = reply(nil, errItemNotFound)
		return
	}
	acks := c.endLocked(io.EOF, ErrClosedByPeer)
	c.mu.Unlock()
	ack(acks)
	_ = reply(nil, nil)
}

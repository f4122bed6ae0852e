package ibb

import (
	"context"
	"fmt"
	"sync"

	"github.com/xjingle/xjingle/jingle"
	"mellium.im/xmpp/jid"
)

// Handler serves the In-Band Bytestreams of one Signaller (one XMPP
// connection): it registers the <open/>, <data/> and <close/> IQ handlers
// (and a <data/> message handler, XEP-0047 §4) and routes them to streams by
// peer full JID and sid. Streams are created with Open (we open) or Expect
// (the peer opens); an <open/> nobody expects is refused with
// <not-acceptable/> (XEP-0047 §2.1).
type Handler struct {
	sig jingle.Signaller
	cfg config

	mu      sync.Mutex
	closed  bool
	streams map[streamKey]*Conn
	expects map[streamKey]*Expectation
}

type streamKey struct{ peer, sid string }

// Expectation is a registered wait for a peer's <open/>: see
// Handler.Prepare.
type Expectation struct {
	h        *Handler
	key      streamKey
	maxBlock int
	done     chan struct{} // closed once conn or err is set
	conn     *Conn         // nil once claimed
	err      error
}

// NewHandler registers IBB on sig and advertises the IBB feature. Call it
// once per Signaller (a second call panics, as the Signaller refuses a
// duplicate handler) and before the Signaller serves, for Signallers that
// require it.
func NewHandler(sig jingle.Signaller, opts ...Option) (*Handler, error) {
	cfg := defaultConfig()
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	h := &Handler{sig: sig, cfg: cfg, streams: map[streamKey]*Conn{}, expects: map[streamKey]*Expectation{}}
	sig.HandleIQ(nameOpen, h.handleOpen)
	sig.HandleIQ(nameData, h.handleData)
	sig.HandleIQ(nameClose, h.handleClose)
	sig.HandleMessage(nameData, h.handleMessageData)
	sig.AddFeature(NS)
	return h, nil
}

// BlockSize is the configured block size (see WithBlockSize).
func (h *Handler) BlockSize() int { return h.cfg.blockSize }

// Open opens a stream to peer (XEP-0047 §2.1) with this sid and block size
// (0 means the Handler's). If the peer refuses the block size, the error
// matches jingle.ErrResourceConstraint with errors.Is: try again smaller.
func (h *Handler) Open(ctx context.Context, peer jid.JID, sid string, blockSize int) (*Conn, error) {
	if blockSize == 0 {
		blockSize = h.cfg.blockSize
	}
	if blockSize < 1 || blockSize > MaxBlockSize {
		return nil, fmt.Errorf("ibb: open %s: block size %d out of range 1..%d", sid, blockSize, MaxBlockSize)
	}
	if !validSID(sid) {
		return nil, fmt.Errorf("ibb: open %q: invalid sid", sid)
	}
	key := streamKey{peer.String(), sid}
	h.mu.Lock()
	switch {
	case h.closed:
		h.mu.Unlock()
		return nil, fmt.Errorf("ibb: open %s: %w", sid, ErrHandlerClosed)
	case h.streams[key] != nil || h.expects[key] != nil:
		h.mu.Unlock()
		return nil, fmt.Errorf("ibb: open %s with %s: %w", sid, peer, ErrStreamExists)
	}
	// Registered before <open/> goes out: the peer may send data right
	// after its answer, before SendIQ returns here.
	c := h.newConn(peer, sid, blockSize)
	h.streams[key] = c
	h.mu.Unlock()
	_, err := h.sig.SendIQ(ctx, peer, "set", marshalOpen(openElem{SID: sid, BlockSize: blockSize, Stanza: "iq"}))
	if err != nil {
		c.abort()
		return nil, fmt.Errorf("ibb: open %s with %s: %w", sid, peer, err)
	}
	return c, nil
}

// Expect waits for peer to open the stream sid, with a block size no larger
// than the Handler's (a larger one is refused with <resource-constraint/>).
// A second Expect for the same peer and sid makes the first return
// ErrExpectReplaced. An <open/> that arrives before Expect is called is
// refused: when the peer may open as soon as it learns the sid, use Prepare
// before telling it.
func (h *Handler) Expect(ctx context.Context, peer jid.JID, sid string) (*Conn, error) {
	e, err := h.Prepare(peer, sid)
	if err != nil {
		return nil, err
	}
	return e.Wait(ctx)
}

// Prepare registers now that peer may open the stream sid, and returns the
// Expectation to wait on. Like Expect, it replaces an earlier one for the
// same peer and sid.
func (h *Handler) Prepare(peer jid.JID, sid string) (*Expectation, error) {
	return h.expect(peer, sid, h.cfg.blockSize)
}

// Wait waits for the peer's <open/> and returns the stream. If ctx ends
// first, the expectation is cancelled. Only one Wait gets the stream.
func (e *Expectation) Wait(ctx context.Context) (*Conn, error) { return e.h.wait(ctx, e) }

// Cancel withdraws the expectation; a stream that arrived and that no Wait
// claimed is closed.
func (e *Expectation) Cancel() { e.h.abandon(e) }

// expect registers an expectation.
func (h *Handler) expect(peer jid.JID, sid string, maxBlock int) (*Expectation, error) {
	e := &Expectation{h: h, key: streamKey{peer.String(), sid}, maxBlock: maxBlock, done: make(chan struct{})}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, fmt.Errorf("ibb: expect %s: %w", sid, ErrHandlerClosed)
	}
	if h.streams[e.key] != nil {
		return nil, fmt.Errorf("ibb: expect %s from %s: %w", sid, peer, ErrStreamExists)
	}
	if old := h.expects[e.key]; old != nil {
		old.err = ErrExpectReplaced
		close(old.done)
	}
	h.expects[e.key] = e
	return e, nil
}

// wait waits for e and claims its conn; on ctx's end it abandons e.
func (h *Handler) wait(ctx context.Context, e *Expectation) (*Conn, error) {
	select {
	case <-e.done:
		h.mu.Lock()
		c, err := e.conn, e.err
		e.conn = nil
		h.mu.Unlock()
		if err != nil {
			return nil, fmt.Errorf("ibb: expect %s: %w", e.key.sid, err)
		}
		if c == nil {
			return nil, fmt.Errorf("ibb: expect %s: already claimed", e.key.sid)
		}
		return c, nil
	case <-ctx.Done():
		h.abandon(e)
		return nil, fmt.Errorf("ibb: expect %s from %s: %w", e.key.sid, e.key.peer, ctx.Err())
	}
}

// abandon withdraws e and closes the stream it got, if nobody claimed it.
func (h *Handler) abandon(e *Expectation) {
	h.mu.Lock()
	if h.expects[e.key] == e {
		delete(h.expects, e.key)
	}
	c := e.conn
	e.conn = nil
	h.mu.Unlock()
	if c != nil {
		_ = c.Close()
	}
}

// remove takes c out of the table (called with c.mu held).
func (h *Handler) remove(c *Conn) {
	h.mu.Lock()
	if h.streams[c.key] == c {
		delete(h.streams, c.key)
	}
	h.mu.Unlock()
}

func (h *Handler) lookup(peer jid.JID, sid string) *Conn {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.streams[streamKey{peer.String(), sid}]
}

// Close closes every stream (sending <close/>) and fails pending Expects
// with ErrHandlerClosed. Afterwards incoming <open/> is refused. The
// handlers stay registered on the Signaller (it has no way to remove them).
func (h *Handler) Close() error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil
	}
	h.closed = true
	conns := make([]*Conn, 0, len(h.streams))
	for _, c := range h.streams {
		conns = append(conns, c)
	}
	for k, e := range h.expects {
		e.err = ErrHandlerClosed
		close(e.done)
		delete(h.expects, k)
	}
	h.mu.Unlock()
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = c.Close()
		}()
	}
	wg.Wait()
	return nil
}

// handleOpen answers <open/> (XEP-0047 §2.1).
func (h *Handler) handleOpen(iq *jingle.IQ, reply jingle.ReplyFunc) {
	if iq.Type != "set" {
		_ = reply(nil, errBadRequest)
		return
	}
	o, err := parseOpen(iq.Payload)
	if err != nil {
		_ = reply(nil, errBadRequest.WithText("%v", err))
		return
	}
	key := streamKey{iq.From.String(), o.SID}
	h.mu.Lock()
	e := h.expects[key]
	switch {
	case h.closed || e == nil:
		h.mu.Unlock()
		_ = reply(nil, errNotAcceptable)
		return
	case h.streams[key] != nil:
		h.mu.Unlock()
		_ = reply(nil, errNotAcceptable.WithText("stream exists"))
		return
	case o.BlockSize > e.maxBlock:
		// "prefers smaller chunks" (§2.1), or not what the Jingle
		// negotiation agreed (XEP-0261 §2.2). The expectation stays:
		// the peer may retry smaller.
		h.mu.Unlock()
		_ = reply(nil, errResourceModify.WithText("block-size at most %d", e.maxBlock))
		return
	}
	c := h.newConn(iq.From, o.SID, o.BlockSize)
	h.streams[key] = c
	delete(h.expects, key)
	e.conn = c
	h.mu.Unlock()
	_ = reply(nil, nil)
	close(e.done)
}

func (h *Handler) handleData(iq *jingle.IQ, reply jingle.ReplyFunc) {
	if iq.Type != "set" {
		_ = reply(nil, errBadRequest)
		return
	}
	e, err := parseData(iq.Payload)
	if err != nil {
		_ = reply(nil, errBadRequest.WithText("%v", err))
		return
	}
	c := h.lookup(iq.From, e.SID)
	if c == nil {
		// Unknown sid, or a sid of another peer (§2.2).
		_ = reply(nil, errItemNotFound)
		return
	}
	c.handleData(e, reply)
}

func (h *Handler) handleMessageData(msg *jingle.Message) {
	if msg.Type == "error" {
		return
	}
	e, err := parseData(msg.Payload)
	if err != nil {
		return
	}
	if c := h.lookup(msg.From, e.SID); c != nil {
		c.handleData(e, nil)
	}
}

func (h *Handler) handleClose(iq *jingle.IQ, reply jingle.ReplyFunc) {
	if iq.Type != "set" {
		_ = reply(nil, errBadRequest)
		return
	}
	sid, err := parseClose(iq.Payload)
	if err != nil {
		_ = reply(nil, errBadRequest.WithText("%v", err))
		return
	}
	c := h.lookup(iq.From, sid)
	if c == nil {
		_ = reply(nil, errItemNotFound) // §2.3 Example 10
		return
	}
	c.handlePeerClose(reply)
}

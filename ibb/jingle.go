package ibb

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"net"
	"strconv"
	"sync"

	"github.com/xjingle/xjingle/jingle"
)

// JingleTransport returns the Jingle IBB transport (XEP-0261) over h, to be
// registered on a jingle.Manager with jingle.WithTransport. Its offers carry
// the Handler's block size.
func (h *Handler) JingleTransport() jingle.TransportFactory { return &transportFactory{h: h} }

type transportFactory struct{ h *Handler }

func (f *transportFactory) Namespace() string { return NSJingle }

func (f *transportFactory) NewTransport(link jingle.TransportLink) (jingle.Transport, error) {
	return &transport{
		h: f.h, link: link,
		// XEP-0261 §2.2: the session initiator sends <open/>, after
		// the session (or, for a transport-replace, the transport)
		// is accepted, whichever side offered.
		opener:     link.Role() == jingle.RoleInitiator,
		sem:        make(chan struct{}, 1),
		negotiated: make(chan struct{}),
	}, nil
}

// transport is one content's IBB transport.
type transport struct {
	h      *Handler
	link   jingle.TransportLink
	opener bool

	sem        chan struct{} // serialises Conn
	negotiated chan struct{} // closed once sid and block size are agreed

	mu        sync.Mutex
	sid       string
	blockSize int
	exp       *Expectation // when the peer opens
	conn      *Conn        // handed out by Conn
	closed    bool
	once      sync.Once
}

// transportElem is <transport xmlns='urn:xmpp:jingle:transports:ibb:1'/>.
type transportElem struct {
	XMLName   xml.Name `xml:"urn:xmpp:jingle:transports:ibb:1 transport"`
	BlockSize int      `xml:"block-size,attr"`
	SID       string   `xml:"sid,attr"`
	Stanza    string   `xml:"stanza,attr,omitempty"`
}

func newSID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return "ibb-" + hex.EncodeToString(b[:])
}

func (t *transport) element() (jingle.Element, error) {
	return jingle.NewElement(transportElem{BlockSize: t.blockSize, SID: t.sid, Stanza: "iq"})
}

// parseTransport reads sid and block-size from a peer's <transport/>;
// a missing or invalid block-size yields 0.
func parseTransport(el jingle.Element) (sid string, blockSize int, err error) {
	if el.XMLName.Space != NSJingle || el.XMLName.Local != "transport" {
		return "", 0, jingle.ErrBadRequest.WithText("not an IBB transport: <%s xmlns=%q>", el.XMLName.Local, el.XMLName.Space)
	}
	sid = el.Attr("sid")
	if sid != "" && !validSID(sid) {
		return "", 0, jingle.ErrBadRequest.WithText("invalid IBB sid")
	}
	if n, err := strconv.Atoi(el.Attr("block-size")); err == nil && n >= 1 && n <= MaxBlockSize {
		blockSize = n
	}
	return sid, blockSize, nil
}

// Offer implements jingle.Transport.
func (t *transport) Offer(ctx context.Context) (jingle.Element, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return jingle.Element{}, fmt.Errorf("ibb: offer: %w", net.ErrClosed)
	}
	t.sid, t.blockSize = newSID(), t.h.cfg.blockSize
	if !t.opener {
		// The peer may open as soon as it accepted: be ready before
		// the offer leaves. It may open with a smaller block size.
		exp, err := t.h.expect(t.link.Peer(), t.sid, t.blockSize)
		if err != nil {
			return jingle.Element{}, err
		}
		t.exp = exp
	}
	return t.element()
}

// Accept implements jingle.Transport. The answer carries the offer's sid
// and a block size no larger than the offer's nor ours (XEP-0261 §2.2).
func (t *transport) Accept(ctx context.Context, offer jingle.Element) (jingle.Element, error) {
	sid, bs, err := parseTransport(offer)
	if err != nil {
		return jingle.Element{}, err
	}
	if sid == "" {
		return jingle.Element{}, jingle.ErrBadRequest.WithText("IBB transport without sid")
	}
	if bs == 0 {
		bs = 4096 // the XEP-0047 §5 recommendation, for a bad offer
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return jingle.Element{}, fmt.Errorf("ibb: accept: %w", net.ErrClosed)
	}
	t.sid, t.blockSize = sid, min(bs, t.h.cfg.blockSize)
	if !t.opener {
		exp, err := t.h.expect(t.link.Peer(), t.sid, t.blockSize)
		if err != nil {
			return jingle.Element{}, fmt.Errorf("%w: %w", jingle.ErrTransportFailed, err)
		}
		t.exp = exp
	}
	t.once.Do(func() { close(t.negotiated) })
	return t.element()
}

// Accepted implements jingle.Transport. The peer's block size is clamped to
// our offer; an answer without sid keeps ours.
func (t *transport) Accepted(ctx context.Context, answer jingle.Element) error {
	sid, bs, err := parseTransport(answer)
	if err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if sid != "" && sid != t.sid {
		return fmt.Errorf("ibb: answer changed sid %q to %q: %w", t.sid, sid, jingle.ErrTransportFailed)
	}
	if bs > 0 {
		t.blockSize = min(bs, t.blockSize)
	}
	t.once.Do(func() { close(t.negotiated) })
	return nil
}

// Info implements jingle.Transport. Additional IBB sessions in one
// bytestream (XEP-0261 §2.4) are not supported.
func (t *transport) Info(ctx context.Context, el jingle.Element) error {
	return jingle.ErrFeatureNotImplemented.WithText("ibb: additional IBB sessions are not supported")
}

// Conn implements jingle.Transport: the session initiator opens the stream,
// the responder waits for it (XEP-0261 §2.2). Errors wrap
// jingle.ErrTransportFailed. Later calls return the same Conn.
func (t *transport) Conn(ctx context.Context) (net.Conn, error) {
	select {
	case t.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("ibb: transport conn: %w", ctx.Err())
	}
	defer func() { <-t.sem }()
	select {
	case <-t.negotiated:
	case <-ctx.Done():
		return nil, fmt.Errorf("ibb: transport conn before negotiation: %w", ctx.Err())
	}
	t.mu.Lock()
	if t.conn != nil || t.closed {
		c, closed := t.conn, t.closed
		t.mu.Unlock()
		if closed {
			return nil, fmt.Errorf("ibb: transport conn: %w", net.ErrClosed)
		}
		return c, nil
	}
	sid, bs, exp := t.sid, t.blockSize, t.exp
	t.mu.Unlock()

	var c *Conn
	var err error
	if t.opener {
		c, err = t.h.Open(ctx, t.link.Peer(), sid, bs)
	} else {
		if exp == nil {
			if exp, err = t.h.expect(t.link.Peer(), sid, bs); err == nil {
				t.mu.Lock()
				t.exp = exp
				t.mu.Unlock()
			}
		}
		if err == nil {
			c, err = t.h.wait(ctx, exp)
			t.mu.Lock()
			t.exp = nil // claimed or abandoned
			t.mu.Unlock()
		}
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", jingle.ErrTransportFailed, err)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		_ = c.Close()
		return nil, fmt.Errorf("ibb: transport conn: %w", net.ErrClosed)
	}
	t.conn = c
	return c, nil
}

// Close implements jingle.Transport. It withdraws a pending expectation
// (closing a stream nobody claimed); a Conn already handed out belongs to
// the caller.
func (t *transport) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	exp := t.exp
	t.exp = nil
	t.mu.Unlock()
	if exp != nil {
		t.h.abandon(exp)
	}
	return nil
}

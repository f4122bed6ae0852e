package inline

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"

	"github.com/xjingle/xjingle/jingle"
	"github.com/xjingle/xjingle/transports"
)

// Factory is the inline transport's jingle.TransportFactory: register it on
// a jingle.Manager with jingle.WithTransport (the Manager then advertises NS
// in disco#info).
type Factory struct {
	max int64
}

var _ jingle.TransportFactory = (*Factory)(nil)

// Option configures a Factory.
type Option func(*Factory) error

// WithMaxSize sets the largest stream offered or accepted (default
// DefaultMaxSize). It must be positive; keep it at most MaxStanzaSize for
// use through a server.
func WithMaxSize(n int64) Option {
	return func(f *Factory) error {
		if n < 1 {
			return fmt.Errorf("inline: max-size %d must be positive", n)
		}
		f.max = n
		return nil
	}
}

// NewFactory returns the inline transport factory.
func NewFactory(opts ...Option) (*Factory, error) {
	f := &Factory{max: DefaultMaxSize}
	for _, o := range opts {
		if err := o(f); err != nil {
			return nil, err
		}
	}
	return f, nil
}

// Namespace implements jingle.TransportFactory.
func (f *Factory) Namespace() string { return NS }

// MaxSize is the factory's limit (what it offers and accepts at most).
func (f *Factory) MaxSize() int64 { return f.max }

// NewTransport implements jingle.TransportFactory.
func (f *Factory) NewTransport(link jingle.TransportLink) (jingle.Transport, error) {
	return &transport{f: f, link: link, negotiated: make(chan struct{}), closed: make(chan struct{})}, nil
}

// transport is one content's inline transport.
type transport struct {
	f    *Factory
	link jingle.TransportLink

	negotiated chan struct{} // closed once max-size is agreed; conn is set
	closed     chan struct{}

	mu       sync.Mutex
	max      int64 // our offer, then the agreed max-size
	conn     *Conn
	received bool // a data transport-info was handled
	isClosed bool
}

// Offer implements jingle.Transport: <transport max-size/> with our limit.
func (t *transport) Offer(ctx context.Context) (jingle.Element, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.isClosed {
		return jingle.Element{}, fmt.Errorf("inline: offer: %w", net.ErrClosed)
	}
	t.max = t.f.max
	return offerElement(t.max), nil
}

// Accept implements jingle.Transport: the answer carries the smaller of the
// offer's max-size and ours.
func (t *transport) Accept(ctx context.Context, offer jingle.Element) (jingle.Element, error) {
	n, err := ParseMaxSize(offer)
	if err != nil {
		return jingle.Element{}, jingle.ErrBadRequest.WithText("%v", err)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.isClosed {
		return jingle.Element{}, fmt.Errorf("inline: accept: %w", net.ErrClosed)
	}
	t.negotiateLocked(min(n, t.f.max))
	return offerElement(t.max), nil
}

// Accepted implements jingle.Transport: the agreed max-size is the smaller
// of ours and the answer's.
func (t *transport) Accepted(ctx context.Context, answer jingle.Element) error {
	n, err := ParseMaxSize(answer)
	if err != nil {
		return fmt.Errorf("inline: answer: %w: %w", jingle.ErrTransportFailed, err)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.isClosed {
		return fmt.Errorf("inline: accepted: %w", net.ErrClosed)
	}
	t.negotiateLocked(min(n, t.max))
	return nil
}

// negotiateLocked fixes the max-size and makes the Conn.
func (t *transport) negotiateLocked(max int64) {
	if t.conn != nil {
		return
	}
	t.max = max
	local := Addr{JID: t.link.Local(), SID: t.link.SID()}
	peer := Addr{JID: t.link.Peer(), SID: t.link.SID()}
	var send sendFunc
	if t.mayWrite() {
		send = t.send
	}
	t.conn = newConn(local, peer, max, send)
	close(t.negotiated)
}

// mayWrite tells whether our side sends on this content (XEP-0166 §7.3
// 'senders'); without that information (a TransportLink other than the
// Manager's), both sides may.
func (t *transport) mayWrite() bool {
	sl, ok := t.link.(interface{ Senders() string })
	if !ok {
		return true
	}
	switch sl.Senders() {
	case jingle.SendersInitiator:
		return t.link.Role() == jingle.RoleInitiator
	case jingle.SendersResponder:
		return t.link.Role() == jingle.RoleResponder
	case jingle.SendersNone:
		return false
	}
	return true
}

// send is the Conn's: the one data transport-info.
func (t *transport) send(ctx context.Context, b []byte, eof bool) error {
	if !eof {
		return errors.New("inline: the transport sends the whole stream at once") // only CloseWrite/Close call it
	}
	if err := t.link.SendTransportInfo(ctx, DataElement(b)); err != nil {
		return fmt.Errorf("inline: send %d bytes: %w", len(b), err)
	}
	return nil
}

// Info implements jingle.Transport: the peer's data. A malformed one is
// answered with bad-request (not-acceptable when too large) and fails the
// transport: the reader sees an error wrapping jingle.ErrTransportFailed.
func (t *transport) Info(ctx context.Context, el jingle.Element) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case t.conn == nil:
		return jingle.ErrOutOfOrder.WithText("inline: data before the transport was negotiated")
	case t.received:
		return jingle.NewStanzaError(jingle.ErrorTypeCancel, "unexpected-request", "inline: the data was sent already")
	}
	t.received = true
	b, err := ParseData(el, t.max)
	if err != nil {
		t.conn.fail(fmt.Errorf("%w: %w", jingle.ErrTransportFailed, err))
		if errors.Is(err, ErrTooLarge) {
			return jingle.ErrNotAcceptable.WithText("%v", err)
		}
		return jingle.ErrBadRequest.WithText("%v", err)
	}
	if err := t.conn.deliver(ctx, b, true); err != nil {
		// The application closed its Conn: nobody wants the data.
		return jingle.NewStanzaError(jingle.ErrorTypeCancel, "unexpected-request", "inline: stream closed")
	}
	return nil
}

// Conn implements jingle.Transport. A side that sends gets the Conn once the
// max-size is agreed; a side that only receives once the data arrived (until
// then the initiator may replace the transport). If ctx carries the stream's
// size (transports.StreamSize) and it exceeds the agreed max-size, Conn fails
// with an error wrapping ErrTooLarge and jingle.ErrTransportFailed.
func (t *transport) Conn(ctx context.Context) (net.Conn, error) {
	select {
	case <-t.negotiated:
	case <-t.closed:
		return nil, fmt.Errorf("inline: conn: %w: %w", ErrTransportClosed, net.ErrClosed)
	case <-ctx.Done():
		return nil, fmt.Errorf("inline: conn before negotiation: %w", ctx.Err())
	}
	t.mu.Lock()
	c, max := t.conn, t.max
	t.mu.Unlock()
	if n, ok := transports.StreamSize(ctx); ok && n > max {
		return nil, fmt.Errorf("inline: stream of %d bytes, agreed max-size %d: %w: %w", n, max, ErrTooLarge, jingle.ErrTransportFailed)
	}
	if c.send == nil {
		select {
		case <-c.ready:
			if err := c.readErr(); err != nil {
				return nil, fmt.Errorf("inline: conn: %w", err)
			}
		case <-t.closed:
			return nil, fmt.Errorf("inline: conn: %w", ErrTransportClosed)
		case <-ctx.Done():
			return nil, fmt.Errorf("inline: waiting for the data: %w", ctx.Err())
		}
	}
	return c, nil
}

// Close implements jingle.Transport. A Conn handed out belongs to the
// caller; if its data has not arrived, its reads fail with
// ErrTransportClosed.
func (t *transport) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.isClosed {
		return nil
	}
	t.isClosed = true
	close(t.closed)
	if t.conn != nil {
		t.conn.fail(ErrTransportClosed)
	}
	return nil
}

package jingle

import (
	"context"
	"log/slog"
	"net"

	"mellium.im/xmpp/jid"
)

// Role is our role in a session (XEP-0166 §4.1).
type Role int

// Roles.
const (
	RoleInitiator Role = iota
	RoleResponder
)

// String implements fmt.Stringer.
func (r Role) String() string {
	if r == RoleInitiator {
		return "initiator"
	}
	return "responder"
}

// TransportFactory creates transports of one namespace (for example
// urn:xmpp:jingle:transports:ibb:1). Factories are registered on a Manager with
// WithTransport; one Manager may have several, and a session may move from one
// to another with transport-replace.
type TransportFactory interface {
	// Namespace is the transport's XML namespace.
	Namespace() string
	// NewTransport returns a transport for one content of one session. It is
	// called on the side that offers (with Offer next) and on the side that
	// answers (with Accept next).
	NewTransport(link TransportLink) (Transport, error)
}

// TransportLink is what a transport may use of the session it serves.
type TransportLink interface {
	SID() string
	ContentName() string
	// Local is our full JID, Peer the peer's.
	Local() jid.JID
	Peer() jid.JID
	// Initiator is the session initiator's full JID.
	Initiator() jid.JID
	// Role is our role in the session (not in the transport: after a
	// transport-replace sent by the responder, the responder offers).
	Role() Role
	// Signaller carries stanzas outside Jingle (IBB data, SOCKS5 activation).
	Signaller() Signaller
	// SendTransportInfo sends a transport-info for this content with el as its
	// transport child (XEP-0166 §7.2.13), and waits for the ack.
	SendTransportInfo(ctx context.Context, el Element) error
	// Logger never returns nil.
	Logger() *slog.Logger
}

// Transport is the transport of one content (XEP-0166 §8). A transport
// negotiates its own parameters (candidates, block size) through the methods
// below, and once it carries a stream it hands the application a net.Conn that
// honours the whole net.Conn contract.
//
// The offering side calls Offer, then Accepted with the peer's answer. The
// answering side calls Accept with the offer. Both then call Conn.
type Transport interface {
	// Offer returns the transport element for a session-initiate,
	// content-add or transport-replace.
	Offer(ctx context.Context) (Element, error)
	// Accept takes the peer's offer and returns our answer for
	// session-accept or transport-accept. An error that is a *StanzaError, or
	// ErrTransportFailed, makes the Manager refuse the offer.
	Accept(ctx context.Context, offer Element) (Element, error)
	// Accepted takes the peer's answer to our offer.
	Accepted(ctx context.Context, answer Element) error
	// Info handles a transport-info for this content. Returning a
	// *StanzaError sends that error to the peer.
	Info(ctx context.Context, el Element) error
	// Conn blocks until the transport carries a stream (or fails, with an
	// error wrapping ErrTransportFailed when another transport may do
	// better). The caller owns and closes the returned conn.
	Conn(ctx context.Context) (net.Conn, error)
	// Close releases everything the transport holds. It is idempotent.
	Close() error
}

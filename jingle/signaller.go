package jingle

import (
	"context"
	"encoding/xml"

	"mellium.im/xmpp/jid"
)

// IQ is an incoming IQ request (type get or set) as a Signaller hands it to a
// handler.
type IQ struct {
	ID   string
	Type string // "get" or "set"
	From jid.JID
	To   jid.JID
	// Payload is the IQ's single child element as raw XML.
	Payload []byte
}

// ReplyFunc answers an IQ. Exactly one call per IQ: with a result payload
// (raw XML of one element, or nil for an empty result) and a nil error, or with
// a non-nil error. An error that is (or wraps) a *StanzaError is sent as that
// stanza error; any other error is sent as <internal-server-error/>.
//
// A ReplyFunc may be called later and from any goroutine: handlers that must
// wait (for example IBB flow control) keep it and answer when ready.
type ReplyFunc func(result []byte, err error) error

// IQHandler handles an incoming IQ. It runs on the Signaller's read loop: it
// must not block. It validates, and either replies at once or hands the work
// (and the ReplyFunc) to a goroutine that owns it.
type IQHandler func(iq *IQ, reply ReplyFunc)

// Message is an incoming message stanza carrying a payload a handler was
// registered for.
type Message struct {
	ID   string
	Type string
	From jid.JID
	To   jid.JID
	// Payload is the registered child element as raw XML.
	Payload []byte
}

// MessageHandler handles an incoming message. Like IQHandler it must not block.
type MessageHandler func(msg *Message)

// Signaller is what Jingle needs from an XMPP connection. The client package
// implements it over a real c2s stream; a serverless (XEP-0174) link can
// implement it too.
//
// Handlers are registered before the Signaller starts serving, or at any time
// for implementations that say so; registering two handlers for one name is a
// programmer error and panics.
type Signaller interface {
	// LocalJID is our full JID.
	LocalJID() jid.JID

	// SendIQ sends an IQ of type "get" or "set" whose child is payload (raw XML
	// of one element) and waits for the answer. On a result it returns the
	// answer's child element as raw XML (nil if empty). On an error answer it
	// returns a *StanzaError. ctx bounds the wait.
	SendIQ(ctx context.Context, to jid.JID, typ string, payload []byte) ([]byte, error)

	// HandleIQ registers h for IQ requests whose child element has this name.
	HandleIQ(name xml.Name, h IQHandler)

	// SendMessage sends a message stanza of the given type ("chat", "normal",
	// ...) carrying payload (raw XML of one or more elements).
	SendMessage(ctx context.Context, to jid.JID, typ string, payload []byte) error

	// HandleMessage registers h for messages carrying a child with this name.
	HandleMessage(name xml.Name, h MessageHandler)

	// AddFeature advertises a disco#info feature (XEP-0030) and updates entity
	// caps (XEP-0115).
	AddFeature(ns string)
}

// FeatureQuerier is implemented by Signallers that can tell what a peer
// supports (disco#info, cached by entity caps).
type FeatureQuerier interface {
	PeerFeatures(ctx context.Context, peer jid.JID) ([]string, error)
}

// AsyncIQSender is implemented by Signallers that can pipeline IQs: send one
// and return without waiting for its answer. Stream transports that keep
// several requests in flight (IBB <data/> with a window, XEP-0047 §2.2) need
// it to keep their requests in order on the wire: SendIQ merges "written" and
// "answered", so IQs sent from several goroutines could be reordered.
//
// SendIQAsync writes the IQ (or queues it for writing) before it returns, so
// IQs sent by consecutive calls reach the peer in call order (RFC 6120 §10.1).
// If it returns nil, done is called exactly once, later and from any
// goroutine, with the answer as SendIQ would return it, or with ctx.Err() if
// ctx ends first. done must not block. If it returns an error, done is never
// called.
type AsyncIQSender interface {
	SendIQAsync(ctx context.Context, to jid.JID, typ string, payload []byte, done func(result []byte, err error)) error
}

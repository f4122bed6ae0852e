package ibb

import (
	"errors"

	"github.com/xjingle/xjingle/jingle"
)

// Errors callers branch on (compare with errors.Is). Errors the peer sent
// are *jingle.StanzaError, wrapped.
var (
	// ErrHandlerClosed is returned by a Handler's methods after Close.
	ErrHandlerClosed = errors.New("ibb: handler closed")
	// ErrClosedByPeer is returned by Write once the peer closed the stream
	// (XEP-0047 §2.3); Read returns io.EOF after the buffered data.
	ErrClosedByPeer = errors.New("ibb: stream closed by peer")
	// ErrExpectReplaced is returned by Expect when a later Expect for the
	// same peer and sid replaced it.
	ErrExpectReplaced = errors.New("ibb: expectation replaced")
	// ErrStreamExists means a stream with this peer and sid is open or
	// expected already.
	ErrStreamExists = errors.New("ibb: stream already exists")
	// ErrProtocol is wrapped by the errors that end a stream because the
	// peer broke XEP-0047 (bad sequence number, bad base64, oversized
	// block, receive buffer overrun).
	ErrProtocol = errors.New("ibb: protocol violation by peer")
)

// Stanza errors we send (XEP-0047 §2.1, §2.2). Types follow the XEP.
var (
	errUnexpectedRequest = jingle.NewStanzaError(jingle.ErrorTypeCancel, "unexpected-request", "")
	errBadRequest        = jingle.NewStanzaError(jingle.ErrorTypeCancel, "bad-request", "")
	errItemNotFound      = jingle.NewStanzaError(jingle.ErrorTypeCancel, "item-not-found", "")
	errNotAcceptable     = jingle.NewStanzaError(jingle.ErrorTypeCancel, "not-acceptable", "")
	errResourceModify    = jingle.NewStanzaError(jingle.ErrorTypeModify, "resource-constraint", "")
	errResourceWait      = jingle.NewStanzaError(jingle.ErrorTypeWait, "resource-constraint", "")
)

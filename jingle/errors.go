package jingle

import (
	"errors"
	"fmt"
)

// Errors callers branch on (compare with errors.Is). Errors a peer sent are
// *StanzaError (see stanzaerror.go for the Jingle ones, e.g. ErrTieBreak).
var (
	// ErrClosed is returned by a Manager's methods after Close.
	ErrClosed = errors.New("jingle: manager closed")
	// ErrSessionEnded is returned by a Session's methods once it ended.
	ErrSessionEnded = errors.New("jingle: session ended")
	// ErrNoTransport means no TransportFactory is registered for a namespace.
	ErrNoTransport = errors.New("jingle: no transport for namespace")
	// ErrUnknownContent means the session has no content of that name.
	ErrUnknownContent = errors.New("jingle: unknown content")
	// ErrWrongState means a local action is not allowed in the session's
	// state or our role (for example Accept as the initiator).
	ErrWrongState = errors.New("jingle: action not allowed in this state")
	// ErrReplacePending means a transport-replace for the content is
	// already waiting for an answer.
	ErrReplacePending = errors.New("jingle: transport-replace already pending")
	// ErrTransportRejected means the peer answered our transport-replace
	// with transport-reject (XEP-0166 §7.2.14).
	ErrTransportRejected = errors.New("jingle: transport rejected by peer")
	// ErrTransportFailed is wrapped by Transport errors when the transport
	// cannot carry the stream and another transport might
	// (transport-replace, XEP-0166 §7.2.15). From Transport.Accept it makes
	// the Manager refuse the offer.
	ErrTransportFailed = errors.New("jingle: transport failed")
	// ErrTransportSecurity is wrapped by Transport errors when the peer at
	// the other end of the stream could not be authenticated (a DTLS
	// fingerprint that does not match the certificate, XEP-0320). The
	// session ends with security-error (XEP-0166 §7.4) and no other
	// transport is tried: falling back would hand the bytes to whoever
	// broke the first one.
	ErrTransportSecurity = errors.New("jingle: transport peer not authenticated")
	// errEventsDropped is the text of the log line when a session's event
	// queue is full; see Session.Events.
	errEventsDropped = errors.New("jingle: event queue full, event dropped")
)

// TerminatedError is returned by Session.WaitActive (and by the methods of an
// ended session that report why) when the session ended.
type TerminatedError struct {
	Reason Reason
	// ByPeer is true when the peer sent the session-terminate.
	ByPeer bool
}

// Error implements error.
func (e *TerminatedError) Error() string {
	by := "locally"
	if e.ByPeer {
		by = "by peer"
	}
	return fmt.Sprintf("jingle: session terminated %s: %s", by, e.Reason)
}

// Is makes errors.Is(err, ErrSessionEnded) true for a *TerminatedError.
func (e *TerminatedError) Is(target error) bool { return target == ErrSessionEnded }

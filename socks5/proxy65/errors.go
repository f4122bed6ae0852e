package proxy65

import "errors"

// Errors callers branch on. Proxy.Activate returns them (wrapped with the
// DST.ADDR); the Component maps them to the stanza errors of XEP-0065
// §6.3.5.
var (
	// ErrClosed is returned by Serve and Activate after Close.
	ErrClosed = errors.New("proxy65: closed")
	// ErrNotFound means no connection waits with the DST.ADDR computed
	// from the activation (sid, sender's JID, target): the sender is not the
	// requester, or nobody connected (item-not-found, XEP-0065 §6.3.5).
	ErrNotFound = errors.New("proxy65: no bytestream for this sid, requester and target")
	// ErrOneSided means only one of the two parties is connected
	// (not-allowed, XEP-0065 §6.3.5).
	ErrOneSided = errors.New("proxy65: only one party is connected")
	// ErrAlreadyActive means the bytestream was activated before.
	ErrAlreadyActive = errors.New("proxy65: bytestream already activated")
	// ErrInvalidConfig wraps every Config validation failure.
	ErrInvalidConfig = errors.New("proxy65: invalid config")
)

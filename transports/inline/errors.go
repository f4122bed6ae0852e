package inline

import "errors"

// Errors callers branch on (compare with errors.Is).
var (
	// ErrTooLarge: more bytes than the negotiated max-size were written,
	// or received, or the stream announced to Conn would not fit.
	ErrTooLarge = errors.New("inline: data larger than max-size")
	// ErrCIDMismatch: the received data does not hash to its cid
	// (XEP-0231 §2.5).
	ErrCIDMismatch = errors.New("inline: cid does not match the data")
	// ErrBadData: a malformed transport-info (no or several <data/>,
	// bad base64, a cid not of the form sha1+HEX@bob.xmpp.org).
	ErrBadData = errors.New("inline: malformed data")
	// ErrWriteClosed: Write after CloseWrite (the data was sent).
	ErrWriteClosed = errors.New("inline: write after the data was sent")
	// ErrTransportClosed: the transport was closed (the session ended or
	// the content moved to another transport) before the data arrived.
	ErrTransportClosed = errors.New("inline: transport closed before the data arrived")
)

package relay

import "errors"

// Errors callers branch on.
var (
	// ErrServerClosed is returned by Serve after Shutdown or Close, like http.ErrServerClosed.
	ErrServerClosed = errors.New("relay: server closed")
	// ErrBadCredentials means a password or message integrity did not match.
	ErrBadCredentials = errors.New("relay: bad credentials")
	// ErrCredentialsExpired means a REST API username's expiry has passed.
	ErrCredentialsExpired = errors.New("relay: credentials expired")
	// ErrBadUsername means a username is not of the REST API form "<unix expiry>:<user>".
	ErrBadUsername = errors.New("relay: malformed REST API username")
	// ErrInvalidConfig wraps every Config validation failure.
	ErrInvalidConfig = errors.New("relay: invalid config")
)

package jingle

import "context"

// Application is an application format (XEP-0166 §12.1): file transfer
// (XEP-0234), RTP (XEP-0167). It is registered on a Manager with
// WithApplication and receives the sessions that peers start with its
// description namespace.
type Application interface {
	// Namespace is the namespace of the application's <description/>.
	Namespace() string
	// HandleSession is called in a goroutine owned by the Manager for each
	// incoming session-initiate whose contents all use this application,
	// after the Manager acknowledged it and checked its transports. The
	// application decides: s.Accept or s.Terminate. ctx is cancelled when the
	// Manager closes; the Manager waits for HandleSession to return.
	HandleSession(ctx context.Context, s *Session)
}

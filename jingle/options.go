package jingle

import (
	"fmt"
	"log/slog"
	"time"

	"mellium.im/xmpp/jid"
)

// Defaults of the Manager's options.
const (
	DefaultSessionTimeout = 2 * time.Minute
	DefaultMaxSessions    = 1024
	// DefaultEventQueue is the number of events a session queues for a
	// reader of Events before it drops them.
	DefaultEventQueue = 256
	// DefaultIQTimeout bounds the wait for the ack of an IQ the Manager
	// sends on its own (session-terminate on timeout, transport-accept, ...).
	DefaultIQTimeout = 30 * time.Second
	// DefaultFallbackWait is how long a responder's Content.Conn waits for
	// the initiator's transport-replace after its transport failed.
	DefaultFallbackWait = time.Minute
)

// Option configures a Manager. Options apply only in NewManager.
type Option func(*Manager)

// WithApplication registers an application format. Registering two
// applications with one namespace panics in NewManager.
func WithApplication(app Application) Option {
	return func(m *Manager) {
		ns := app.Namespace()
		if _, dup := m.apps[ns]; dup {
			panic(fmt.Sprintf("jingle: duplicate application %q", ns))
		}
		m.apps[ns] = app
	}
}

// WithTransport registers a transport method. Registering two factories with
// one namespace panics in NewManager.
func WithTransport(f TransportFactory) Option {
	return func(m *Manager) {
		ns := f.Namespace()
		if _, dup := m.transports[ns]; dup {
			panic(fmt.Sprintf("jingle: duplicate transport %q", ns))
		}
		m.transports[ns] = f
	}
}

// WithLogger sets the logger; nil (the default) discards.
func WithLogger(l *slog.Logger) Option {
	return func(m *Manager) {
		if l != nil {
			m.log = l
		}
	}
}

// WithSessionTimeout sets how long a session may stay pending (not accepted)
// before the Manager terminates it with reason timeout. Zero or negative
// disables the timeout. Default DefaultSessionTimeout.
func WithSessionTimeout(d time.Duration) Option {
	return func(m *Manager) { m.timeout = d }
}

// WithAllowedPeer sets a filter for incoming session-initiates: a peer for
// which f returns false gets <service-unavailable/> (XEP-0166 §6.3.2).
func WithAllowedPeer(f func(jid.JID) bool) Option {
	return func(m *Manager) { m.allowPeer = f }
}

// WithMaxSessions bounds the number of live sessions (both directions); an
// incoming session-initiate beyond it gets <resource-constraint/> (XEP-0166
// §6.3.2). Default DefaultMaxSessions.
func WithMaxSessions(n int) Option {
	return func(m *Manager) {
		if n > 0 {
			m.maxSessions = n
		}
	}
}

// WithEventQueue sets the capacity of each session's event queue (see
// Session.Events). Default DefaultEventQueue.
func WithEventQueue(n int) Option {
	return func(m *Manager) {
		if n > 0 {
			m.eventQueue = n
		}
	}
}

// WithFallbackWait sets how long Content.Conn, on the responder's side, waits
// for the initiator's transport-replace once the content's transport failed
// (an error wrapping ErrTransportFailed): XEP-0260 §2.7 has the initiator fall
// back (typically to IBB), so the responder does not give up on the session
// at once. Zero or negative returns the failure at once. Default
// DefaultFallbackWait.
func WithFallbackWait(d time.Duration) Option {
	return func(m *Manager) { m.fallbackWait = d }
}

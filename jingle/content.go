package jingle

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"mellium.im/xmpp/jid"
)

// ContentSpec describes one content of a session we initiate.
type ContentSpec struct {
	Name        string  // default "c0", "c1", ...
	Creator     string  // default "initiator"
	Senders     string  // default "both" ("initiator" for a file push)
	Description Element // the application's <description/>
	Transport   string  // namespace of a registered TransportFactory
}

// Content is one content of a session (XEP-0166 §7.3) as the Manager keeps
// it: its identity, the application's description and the current transport.
//
// The exported fields are set when the content is created (from the
// session-initiate) and never change; SendersNow reflects content-modify.
type Content struct {
	Name        string
	Creator     string
	Senders     string
	Disposition string
	// Description is the <description/> of the session-initiate (or of
	// the content-add).
	Description Element

	s *Session

	// Guarded by s.mu; written only by the session's owner goroutine.
	senders   string
	transport Transport
	tns       string
	past      []string // earlier transports' namespaces, oldest first
	offer     *Element // the peer's transport offer (responder side)
	answer    *Element // our answer, once Transport.Accept ran
	changed   chan struct{}
	replace   *replaceState
	removed   bool
	// acceptDesc is the description our session-accept carries instead of
	// Description (responder, SetAcceptDescription); accepted is the one
	// the peer's session-accept carried (initiator).
	acceptDesc *Element
	accepted   *Element
}

// SetAcceptDescription sets the <description/> the responder's
// session-accept carries for this content, instead of echoing the
// session-initiate's (XEP-0166 §7.2.8; e.g. a narrowed file description with
// a XEP-0234 §6.4 <range/>). It has effect only before Session.Accept.
func (c *Content) SetAcceptDescription(el Element) {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	d := el
	c.acceptDesc = &d
}

// AcceptedDescription is the <description/> of this content in the peer's
// session-accept (initiator side), or the zero Element if the session is not
// accepted yet or the peer sent none. It is set before Session.WaitActive
// returns nil and before the AcceptedEvent is delivered. The peer controls
// it: parse it as untrusted input.
func (c *Content) AcceptedDescription() Element {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	if c.accepted == nil {
		return Element{}
	}
	return *c.accepted
}

// replaceState is a transport-replace waiting for its answer.
type replaceState struct {
	t      Transport
	ns     string
	result chan error // cap 1
}

// TransportNamespace is the namespace of the content's current transport.
func (c *Content) TransportNamespace() string {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	return c.tns
}

// ReplacedTransports returns the namespaces of the transports this content
// used before its current one (each left by a transport-replace, XEP-0166
// §7.2.15), oldest first; nil if it never changed.
func (c *Content) ReplacedTransports() []string {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	return append([]string(nil), c.past...)
}

// SendersNow is the content's current 'senders' value (XEP-0166 §7.3),
// updated by content-modify.
func (c *Content) SendersNow() string {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	return c.senders
}

// Conn waits for the stream of the content's current transport and returns
// it. If a transport-replace completes while it waits, it follows to the new
// transport. The caller owns the conn and closes it.
func (c *Content) Conn(ctx context.Context) (net.Conn, error) {
	s := c.s
	for {
		s.mu.Lock()
		t, changed, removed, state := c.transport, c.changed, c.removed, s.state
		s.mu.Unlock()
		switch {
		case state == StateEnded:
			return nil, fmt.Errorf("jingle: content %s conn: %w", c.Name, s.endErr())
		case removed:
			return nil, fmt.Errorf("jingle: content %s conn: %w", c.Name, ErrUnknownContent)
		case t == nil:
			// The responder's transport is created once the
			// session-initiate was checked.
			select {
			case <-changed:
				continue
			case <-s.done:
				continue
			case <-ctx.Done():
				return nil, fmt.Errorf("jingle: content %s conn: %w", c.Name, ctx.Err())
			}
		}
		conn, err := connFollowing(ctx, t, changed, s.done)
		select {
		case <-changed:
			// Replaced while we waited: this transport is being
			// closed; use the new one.
			if conn != nil {
				conn.Close()
			}
			continue
		default:
		}
		if err != nil {
			if c.awaitReplace(ctx, err, changed) {
				continue
			}
			return nil, fmt.Errorf("jingle: content %s conn (%s): %w", c.Name, c.TransportNamespace(), err)
		}
		return conn, nil
	}
}

// awaitReplace decides, after the transport's Conn failed with err, whether
// to wait for a replacement: on the responder's side a failed transport
// (ErrTransportFailed) is the initiator's to replace (XEP-0260 §2.7: both
// parties sent candidate-error, the initiator sends transport-replace, e.g.
// with IBB). It waits up to the Manager's fallback wait and reports whether
// the content changed (or the session ended: Conn then reports that).
func (c *Content) awaitReplace(ctx context.Context, err error, changed <-chan struct{}) bool {
	s := c.s
	d := s.m.fallbackWait
	if s.role != RoleResponder || d <= 0 || !errors.Is(err, ErrTransportFailed) || ctx.Err() != nil {
		return false
	}
	s.log.Debug("jingle: transport failed, waiting for the initiator's transport-replace", "content", c.Name, "err", err, "wait", d)
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-changed:
		return true
	case <-s.done:
		return true
	case <-ctx.Done():
		return false
	case <-timer.C:
		return false
	}
}

// connFollowing calls t.Conn with a context that is also cancelled when the
// transport changes or the session ends.
func connFollowing(ctx context.Context, t Transport, changed, done <-chan struct{}) (net.Conn, error) {
	cctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		select {
		case <-changed:
			cancel()
		case <-done:
			cancel()
		case <-cctx.Done():
		}
	}()
	conn, err := t.Conn(cctx)
	cancel()
	wg.Wait()
	return conn, err
}

// wire returns the content's <content/> element with the given transport.
func (c *Content) wire(transport *Element, withDescription bool) WireContent {
	w := WireContent{Creator: c.Creator, Name: c.Name, Transport: transport}
	if withDescription && !c.Description.IsZero() {
		d := c.Description
		w.Description = &d
	}
	return w
}

// link is the TransportLink of one content.
type link struct{ c *Content }

var _ TransportLink = link{}

func (l link) SID() string          { return l.c.s.sid }
func (l link) ContentName() string  { return l.c.Name }
func (l link) Local() jid.JID       { return l.c.s.local }
func (l link) Peer() jid.JID        { return l.c.s.peer }
func (l link) Initiator() jid.JID   { return l.c.s.initiator }
func (l link) Role() Role           { return l.c.s.role }
func (l link) Signaller() Signaller { return l.c.s.m.sig }
func (l link) Logger() *slog.Logger { return l.c.s.log.With("content", l.c.Name) }

// Senders is the content's current 'senders' (XEP-0166 §7.3). It is not
// part of TransportLink: a transport that carries one direction only (the
// inline transport) may look for it with a type assertion.
func (l link) Senders() string { return l.c.SendersNow() }

// SendTransportInfo implements TransportLink (XEP-0166 §7.2.13). It may be
// called from any goroutine; it must not be called synchronously from
// Transport.Info or Transport.Accept (the session's owner goroutine would
// wait for an ack the peer may only send after its own owner is free).
func (l link) SendTransportInfo(ctx context.Context, el Element) error {
	s := l.c.s
	w := l.c.wire(&el, false)
	j := &Jingle{Action: ActionTransportInfo, SID: s.sid, Contents: []WireContent{w}}
	if err := s.send(ctx, j, false); err != nil {
		return fmt.Errorf("jingle: transport-info %s/%s: %w", s.sid, l.c.Name, err)
	}
	return nil
}

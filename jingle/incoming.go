package jingle

import (
	"errors"
	"fmt"
)

// This file holds the owner goroutine's handling of incoming actions. Each
// handler answers the IQ exactly once.

// setupIncoming checks the applications and transports of a session-initiate
// we acknowledged, creates the transports and hands the session to its
// application (XEP-0166 §6.3.1).
func (s *Session) setupIncoming() {
	if s.State() == StateEnded {
		return
	}
	m := s.m
	var app Application
	for _, c := range s.contents {
		a := m.apps[c.Description.Namespace()]
		if a == nil || (app != nil && a != app) {
			s.log.Info("jingle: unsupported application", "ns", c.Description.Namespace())
			s.terminateAsync(Reason{Condition: ReasonUnsupportedApplications})
			return
		}
		app = a
	}
	for _, c := range s.contents {
		if m.transports[c.tns] == nil {
			s.log.Info("jingle: unsupported transport", "ns", c.tns)
			s.terminateAsync(Reason{Condition: ReasonUnsupportedTransports})
			return
		}
	}
	for _, c := range s.contents {
		t, err := m.transports[c.tns].NewTransport(link{c})
		if err != nil {
			s.log.Info("jingle: new transport", "ns", c.tns, "err", err)
			s.terminateAsync(Reason{Condition: ReasonFailedTransport, Text: err.Error()})
			return
		}
		s.mu.Lock()
		c.transport = t
		close(c.changed)
		c.changed = make(chan struct{})
		s.mu.Unlock()
	}
	s.mu.Lock()
	s.ready = true
	s.app = app
	s.mu.Unlock()
	s.startTimer()
	if !m.goTracked(func() { app.HandleSession(m.ctx, s) }) {
		s.terminateAsync(Reason{Condition: ReasonGone})
	}
}

// peerRole is the peer's role in the session.
func (s *Session) peerRole() Role {
	if s.role == RoleInitiator {
		return RoleResponder
	}
	return RoleInitiator
}

// findContent returns our content matching wc: by (creator, name), or by name
// alone when the creator is absent (StanzaJS omits it in some actions).
func (s *Session) findContent(wc WireContent) *Content {
	for _, c := range s.contents {
		if c.Name == wc.Name && c.Creator == wc.EffectiveCreator() {
			return c
		}
	}
	if wc.Creator == "" {
		for _, c := range s.contents {
			if c.Name == wc.Name {
				return c
			}
		}
	}
	return nil
}

func badRequest(format string, args ...any) error {
	return ErrBadRequest.WithText(format, args...)
}

// handleIncoming applies an action the peer sent (owner goroutine).
func (s *Session) handleIncoming(j *Jingle, answer func(error)) {
	cur := s.State()
	if j.Action == ActionSessionAccept && cur == StateActive && s.hasOurReplace() {
		// Conversations/Gajim answer transport-replace with
		// session-accept: take it as transport-accept.
		s.onTransportAnswer(j, true, true, answer)
		return
	}
	if _, err := next(cur, j.Action, s.peerRole()); err != nil {
		answer(err)
		return
	}
	switch j.Action {
	case ActionSessionAccept:
		s.onSessionAccept(j, answer)
	case ActionSessionTerminate:
		answer(nil)
		r := Reason{Condition: ReasonSuccess}
		if j.Reason != nil {
			r = *j.Reason
		}
		s.end(r, true)
	case ActionSessionInfo:
		s.onSessionInfo(j, answer)
	case ActionTransportInfo:
		s.onTransportInfo(j, answer)
	case ActionTransportReplace:
		s.onTransportReplace(j, answer)
	case ActionTransportAccept:
		s.onTransportAnswer(j, true, false, answer)
	case ActionTransportReject:
		s.onTransportAnswer(j, false, false, answer)
	case ActionContentRemove, ActionContentReject:
		s.onContentRemove(j, answer)
	case ActionContentModify:
		s.onContentModify(j, answer)
	case ActionContentAdd:
		if err := validateContents(j); err != nil {
			answer(badRequest("jingle: %v", err))
			return
		}
		for _, wc := range j.Contents {
			if s.findContent(wc) != nil {
				answer(badRequest("jingle: content-add: content %s exists", wc.Name))
				return
			}
		}
		answer(nil)
		s.emit(&ActionEvent{Jingle: j})
	default: // content-accept, description-info, security-info
		answer(nil)
		s.emit(&ActionEvent{Jingle: j})
	}
}

func (s *Session) hasOurReplace() bool {
	for _, c := range s.contents {
		if c.replace != nil {
			return true
		}
	}
	return false
}

// onSessionAccept: the responder accepted our session (§6.5, §7.2.8).
func (s *Session) onSessionAccept(j *Jingle, answer func(error)) {
	if len(j.Contents) == 0 {
		answer(badRequest("jingle: session-accept without content"))
		return
	}
	type pair struct {
		c  *Content
		wc WireContent
	}
	var pairs []pair
	for _, wc := range j.Contents {
		c := s.findContent(wc)
		if c == nil {
			answer(badRequest("jingle: session-accept: unknown content %s", wc.Name))
			return
		}
		if wc.Transport == nil {
			answer(badRequest("jingle: session-accept: content %s without transport", wc.Name))
			return
		}
		pairs = append(pairs, pair{c, wc})
	}
	s.mu.Lock()
	for _, p := range pairs {
		if p.wc.Description != nil {
			d := *p.wc.Description
			p.c.accepted = &d
		}
	}
	s.mu.Unlock()
	s.setState(StateActive)
	s.stopTimer()
	answer(nil)
	close(s.active)
	s.emit(&AcceptedEvent{})
	ctx, cancel := s.opCtx()
	defer cancel()
	for _, p := range pairs {
		c, el := p.c, *p.wc.Transport
		if rs := c.replace; rs != nil && el.Namespace() == rs.ns {
			// We replaced the transport before the peer accepted:
			// the answer is for the new one.
			s.applyTransportAccept(c, rs, &el)
			continue
		}
		if el.Namespace() != c.tns {
			s.terminateAsync(Reason{Condition: ReasonFailedTransport, Text: "session-accept with transport " + el.Namespace()})
			return
		}
		if err := c.transport.Accepted(ctx, el); err != nil {
			s.log.Info("jingle: transport refused the answer", "content", c.Name, "err", err)
			s.terminateAsync(Reason{Condition: ReasonFailedTransport, Text: err.Error()})
			return
		}
	}
}

// infoNamespaces are the namespaces of session-info payloads the session's
// application understands.
func (s *Session) infoNamespaces() map[string]bool {
	ns := map[string]bool{}
	for _, c := range s.contents {
		d := c.Description.Namespace()
		ns[d] = true
		app := s.app
		if app == nil {
			app = s.m.apps[d]
		}
		if in, ok := app.(InfoNamespacer); ok {
			for _, n := range in.InfoNamespaces() {
				ns[n] = true
			}
		}
	}
	return ns
}

// onSessionInfo: §6.8.
func (s *Session) onSessionInfo(j *Jingle, answer func(error)) {
	if len(j.Extra) == 0 {
		answer(nil) // a ping
		return
	}
	known := s.infoNamespaces()
	for _, p := range j.Extra {
		if !known[p.Namespace()] {
			answer(ErrUnsupportedInfo)
			return
		}
	}
	answer(nil)
	s.emit(&SessionInfoEvent{Payload: j.Extra})
}

// onTransportInfo: §7.2.13.
func (s *Session) onTransportInfo(j *Jingle, answer func(error)) {
	if len(j.Contents) == 0 {
		answer(badRequest("jingle: transport-info without content"))
		return
	}
	ctx, cancel := s.opCtx()
	defer cancel()
	for _, wc := range j.Contents {
		c := s.findContent(wc)
		if c == nil {
			answer(badRequest("jingle: transport-info: unknown content %s", wc.Name))
			return
		}
		if wc.Transport == nil {
			answer(badRequest("jingle: transport-info: content %s without transport", wc.Name))
			return
		}
		var t Transport
		switch ns := wc.Transport.Namespace(); {
		case c.replace != nil && ns == c.replace.ns:
			t = c.replace.t
		case ns == c.tns:
			t = c.transport
		}
		if t == nil {
			// Late info for a transport we replaced, or one not
			// set up yet: nothing to give it to.
			s.log.Debug("jingle: transport-info for no transport", "content", c.Name, "ns", wc.Transport.Namespace())
			continue
		}
		if err := t.Info(ctx, *wc.Transport); err != nil {
			var se *StanzaError
			if !errors.As(err, &se) {
				s.log.Info("jingle: transport-info", "content", c.Name, "err", err)
			}
			answer(AsStanzaError(err))
			return
		}
	}
	answer(nil)
}

// onTransportReplace: the peer offers a new transport (§7.2.15).
func (s *Session) onTransportReplace(j *Jingle, answer func(error)) {
	if len(j.Contents) == 0 {
		answer(badRequest("jingle: transport-replace without content"))
		return
	}
	var targets []*Content
	for _, wc := range j.Contents {
		c := s.findContent(wc)
		if c == nil {
			answer(badRequest("jingle: transport-replace: unknown content %s", wc.Name))
			return
		}
		if wc.Transport == nil {
			answer(badRequest("jingle: transport-replace: content %s without transport", wc.Name))
			return
		}
		if c.replace != nil && s.role == RoleInitiator {
			// §7.2.16, existing session: the initiator's action wins.
			answer(ErrTieBreak)
			return
		}
		targets = append(targets, c)
	}
	answer(nil)
	ctx, cancel := s.opCtx()
	defer cancel()
	var accepted, rejected []WireContent
	for i, c := range targets {
		offer := *j.Contents[i].Transport
		if rs := c.replace; rs != nil {
			// We are the responder: the initiator's replace overrules
			// ours (§7.2.16).
			s.mu.Lock()
			c.replace = nil
			s.mu.Unlock()
			rs.t.Close()
			rs.result <- ErrTieBreak
		}
		ns := offer.Namespace()
		f := s.m.transports[ns]
		if f == nil {
			rejected = append(rejected, c.wire(&offer, false))
			continue
		}
		t, err := f.NewTransport(link{c})
		if err != nil {
			s.log.Info("jingle: new transport", "ns", ns, "err", err)
			rejected = append(rejected, c.wire(&offer, false))
			continue
		}
		ans, err := t.Accept(ctx, offer)
		if err != nil {
			s.log.Info("jingle: transport refused the offer", "ns", ns, "err", err)
			t.Close()
			rejected = append(rejected, c.wire(&offer, false))
			continue
		}
		s.swapTransport(c, t, ns)
		s.mu.Lock()
		c.offer, c.answer = &offer, &ans
		s.mu.Unlock()
		accepted = append(accepted, c.wire(&ans, false))
		s.emit(&TransportReplacedEvent{Content: c.Name, Namespace: ns, ByPeer: true})
	}
	if len(accepted) > 0 {
		s.sendAsync(&Jingle{Action: ActionTransportAccept, SID: s.sid, Contents: accepted}, false)
	}
	if len(rejected) > 0 {
		s.sendAsync(&Jingle{Action: ActionTransportReject, SID: s.sid, Contents: rejected}, false)
	}
}

// swapTransport makes t the content's transport and closes the old one; a
// Content.Conn waiting on the old one moves to t.
func (s *Session) swapTransport(c *Content, t Transport, ns string) {
	s.mu.Lock()
	old := c.transport
	if c.tns != ns {
		c.past = append(c.past, c.tns)
	}
	c.transport, c.tns = t, ns
	close(c.changed)
	c.changed = make(chan struct{})
	s.mu.Unlock()
	if old != nil {
		if err := old.Close(); err != nil {
			s.log.Debug("jingle: close replaced transport", "content", c.Name, "err", err)
		}
	}
}

// applyTransportAccept completes our transport-replace rs of c.
func (s *Session) applyTransportAccept(c *Content, rs *replaceState, answerEl *Element) {
	s.mu.Lock()
	c.replace = nil
	s.mu.Unlock()
	ctx, cancel := s.opCtx()
	defer cancel()
	var el Element
	if answerEl != nil {
		el = *answerEl
	}
	if err := rs.t.Accepted(ctx, el); err != nil {
		rs.t.Close()
		rs.result <- fmt.Errorf("transport %s refused the answer: %w", rs.ns, err)
		return
	}
	s.swapTransport(c, rs.t, rs.ns)
	rs.result <- nil
	s.emit(&TransportReplacedEvent{Content: c.Name, Namespace: rs.ns})
}

// onTransportAnswer: transport-accept or transport-reject of our
// transport-replace (§7.2.12, §7.2.14), or a session-accept standing for
// transport-accept (lenient: contents without a pending replace are skipped).
func (s *Session) onTransportAnswer(j *Jingle, accept, lenient bool, answer func(error)) {
	type pair struct {
		c  *Content
		rs *replaceState
		el *Element
	}
	var pairs []pair
	for _, wc := range j.Contents {
		c := s.findContent(wc)
		if c == nil {
			if lenient {
				continue
			}
			answer(badRequest("jingle: %s: unknown content %s", j.Action, wc.Name))
			return
		}
		rs := c.replace
		if rs == nil {
			if lenient {
				continue
			}
			answer(ErrOutOfOrder)
			return
		}
		if accept && wc.Transport != nil && wc.Transport.Namespace() != rs.ns {
			answer(badRequest("jingle: %s: content %s: transport %s, offered %s", j.Action, wc.Name, wc.Transport.Namespace(), rs.ns))
			return
		}
		pairs = append(pairs, pair{c, rs, wc.Transport})
	}
	if len(pairs) == 0 {
		if lenient {
			answer(ErrOutOfOrder)
		} else {
			answer(badRequest("jingle: %s without content", j.Action))
		}
		return
	}
	answer(nil)
	for _, p := range pairs {
		if accept {
			s.applyTransportAccept(p.c, p.rs, p.el)
			continue
		}
		s.mu.Lock()
		p.c.replace = nil
		s.mu.Unlock()
		p.rs.t.Close()
		p.rs.result <- ErrTransportRejected
	}
}

// onContentRemove: content-remove (§7.2.5) or content-reject (§7.2.4).
func (s *Session) onContentRemove(j *Jingle, answer func(error)) {
	if len(j.Contents) == 0 {
		answer(badRequest("jingle: %s without content", j.Action))
		return
	}
	var gone []*Content
	for _, wc := range j.Contents {
		if c := s.findContent(wc); c != nil {
			gone = append(gone, c)
		}
	}
	answer(nil)
	for _, c := range gone {
		s.mu.Lock()
		c.removed = true
		rs := c.replace
		c.replace = nil
		kept := s.contents[:0:0]
		for _, x := range s.contents {
			if x != c {
				kept = append(kept, x)
			}
		}
		s.contents = kept
		close(c.changed)
		c.changed = make(chan struct{})
		s.mu.Unlock()
		if c.transport != nil {
			c.transport.Close()
		}
		if rs != nil {
			rs.t.Close()
			rs.result <- ErrUnknownContent
		}
	}
	s.emit(&ActionEvent{Jingle: j})
	if len(s.contents) == 0 {
		// §7.2.4, §7.2.5: a session without contents is void.
		s.terminateAsync(Reason{Condition: ReasonSuccess, Text: "no content left"})
	}
}

// onContentModify: §7.2.3; 'senders' is required (§7.3).
func (s *Session) onContentModify(j *Jingle, answer func(error)) {
	if len(j.Contents) == 0 {
		answer(badRequest("jingle: content-modify without content"))
		return
	}
	var cs []*Content
	for _, wc := range j.Contents {
		c := s.findContent(wc)
		if c == nil {
			answer(badRequest("jingle: content-modify: unknown content %s", wc.Name))
			return
		}
		switch wc.Senders {
		case SendersBoth, SendersInitiator, SendersResponder, SendersNone:
		default:
			answer(badRequest("jingle: content-modify: content %s: bad senders %q", wc.Name, wc.Senders))
			return
		}
		cs = append(cs, c)
	}
	answer(nil)
	s.mu.Lock()
	for i, c := range cs {
		c.senders = j.Contents[i].Senders
	}
	s.mu.Unlock()
	s.emit(&ActionEvent{Jingle: j})
}

package jingle

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"mellium.im/xmpp/jid"
)

// maxTasks bounds the work queued for one session's owner goroutine; an
// incoming action beyond it gets <resource-constraint/>.
const maxTasks = 1024

var errQueueFull = ErrResourceConstraint.WithText("jingle: session busy")

// Event is something that happened in a session, delivered in order on
// Session.Events: *AcceptedEvent, *SessionInfoEvent, *TransportReplacedEvent,
// *ActionEvent, *TerminatedEvent.
type Event interface{ jingleEvent() }

// AcceptedEvent: the peer accepted the session we initiated (session-accept,
// XEP-0166 §6.5).
type AcceptedEvent struct{}

// SessionInfoEvent carries the payloads of a session-info (XEP-0166 §6.8)
// that the session's application understands.
type SessionInfoEvent struct{ Payload []Element }

// TransportReplacedEvent: a content moved to a new transport
// (transport-replace accepted, XEP-0166 §7.2.15).
type TransportReplacedEvent struct {
	Content   string
	Namespace string
	ByPeer    bool // the peer sent the transport-replace
}

// ActionEvent carries an incoming content-add, content-accept,
// content-reject, content-remove, content-modify, description-info or
// security-info, after the Manager validated and acknowledged it. The Manager
// already applied content-remove/-reject (the contents are gone) and
// content-modify (SendersNow); the application answers a content-add with
// SendAction (content-accept or content-reject, XEP-0166 §7.2.2).
type ActionEvent struct{ Jingle *Jingle }

// TerminatedEvent is the last event of a session.
type TerminatedEvent struct {
	Reason Reason
	ByPeer bool
}

func (*AcceptedEvent) jingleEvent()          {}
func (*SessionInfoEvent) jingleEvent()       {}
func (*TransportReplacedEvent) jingleEvent() {}
func (*ActionEvent) jingleEvent()            {}
func (*TerminatedEvent) jingleEvent()        {}

// Session is one Jingle session (XEP-0166), owned by a Manager. Its methods
// are safe for concurrent use.
//
// One goroutine (the owner) applies every change to the session's state, in
// order: incoming actions and local calls are queued to it. Transport methods
// other than Conn are called on that goroutine.
type Session struct {
	m         *Manager
	sid       string
	peer      jid.JID
	local     jid.JID
	initiator jid.JID
	role      Role
	log       *slog.Logger
	ctx       context.Context // ends with the session or the Manager
	cancel    context.CancelFunc

	// The owner's task queue.
	qmu     sync.Mutex
	queue   []func()
	qsig    chan struct{} // cap 1
	qclosed bool

	// The outbox: IQ-sets to the peer, sent one at a time, in order.
	omu      sync.Mutex
	outbox   []*outItem
	oheld    bool // initiator: until the session-initiate is queued
	orunning bool

	inFlight atomic.Bool // our session-initiate awaits its ack (§7.2.16)

	mu       sync.Mutex // guards the fields below; only the owner writes them
	state    State
	contents []*Content
	reason   Reason
	byPeer   bool
	ready    bool // responder: contents checked and transports created
	app      Application
	timer    *time.Timer
	dropped  int

	active chan struct{} // closed on session-accept
	done   chan struct{} // closed when the session ended
	events chan Event
}

type outItem struct {
	ctx   context.Context // nil: the Manager's, with DefaultIQTimeout
	j     *Jingle
	force bool       // send even when the session ended (session-terminate)
	res   chan error // cap 1; nil: log the error
}

func newSession(m *Manager, peer jid.JID, sid string, role Role) *Session {
	ctx, cancel := context.WithCancel(m.ctx)
	s := &Session{
		m: m, sid: sid, peer: peer, local: m.local, role: role,
		ctx: ctx, cancel: cancel,
		qsig:   make(chan struct{}, 1),
		state:  StatePending,
		active: make(chan struct{}), done: make(chan struct{}),
		events: make(chan Event, m.eventQueue+1),
	}
	s.initiator = m.local
	if role == RoleResponder {
		s.initiator = peer
	}
	s.log = m.log.With("sid", sid, "peer", peer.String(), "role", role.String())
	return s
}

// SID is the session ID.
func (s *Session) SID() string { return s.sid }

// Peer is the peer's full JID.
func (s *Session) Peer() jid.JID { return s.peer }

// Local is our full JID.
func (s *Session) Local() jid.JID { return s.local }

// Initiator is the full JID of the session's initiator.
func (s *Session) Initiator() jid.JID { return s.initiator }

// Role is our role in the session.
func (s *Session) Role() Role { return s.role }

// State is the session's state.
func (s *Session) State() State {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state
}

// Contents returns the session's current contents.
func (s *Session) Contents() []*Content {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*Content(nil), s.contents...)
}

// Content returns the content with this name, or nil.
func (s *Session) Content(name string) *Content {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.contents {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// Events returns the session's events, in order. The channel is closed after
// the *TerminatedEvent, when the session ended.
//
// The owner goroutine never waits for a reader: events wait in a queue of
// WithEventQueue entries; when it is full, further events are dropped (and
// logged), except the *TerminatedEvent, which always has room. A session
// whose application does not read Events loses only events.
func (s *Session) Events() <-chan Event { return s.events }

// Done is closed when the session ended.
func (s *Session) Done() <-chan struct{} { return s.done }

// Reason is why the session ended; valid after Done is closed.
func (s *Session) Reason() Reason {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reason
}

func (s *Session) endErr() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return &TerminatedError{Reason: s.reason, ByPeer: s.byPeer}
}

// WaitActive waits until the peer accepted the session (nil), the session
// ended (*TerminatedError) or ctx is done.
func (s *Session) WaitActive(ctx context.Context) error {
	select {
	case <-s.active:
		return nil
	case <-s.done:
		// An accept followed at once by a terminate still counts.
		select {
		case <-s.active:
			return nil
		default:
		}
		return s.endErr()
	case <-ctx.Done():
		return fmt.Errorf("jingle: wait active %s: %w", s.sid, ctx.Err())
	}
}

// Accept accepts the session (responder): it hands every content's transport
// the peer's offer and sends session-accept (XEP-0166 §6.5) with the answers,
// then waits for the ack. If a transport refuses the offer, the session is
// terminated with failed-transport.
func (s *Session) Accept(ctx context.Context) error {
	// The session-accept goes out ahead of any transport-info the
	// transports send while (or right after) they answer the offer: a
	// candidate-used (XEP-0260 §2.4) must not reach the initiator before it
	// knows the session was accepted (XEP-0166 §6.5). As Initiate does, the
	// outbox is held while the transports answer, and the session-accept is
	// queued first when the hold is released. The queueing happens on the
	// owner goroutine so that the hold is released even if ctx ends while
	// the owner is busy.
	it := &outItem{ctx: ctx, res: make(chan error, 1)}
	err := s.call(ctx, func() error {
		if s.role != RoleResponder {
			return ErrWrongState
		}
		if err := s.checkLive(); err != nil {
			return err
		}
		if s.state != StatePending || !s.ready {
			return ErrWrongState
		}
		s.holdOut(true)
		var wcs []WireContent
		for _, c := range s.contents {
			s.mu.Lock()
			t, offer, answer := c.transport, c.offer, c.answer
			s.mu.Unlock()
			if answer == nil {
				ans, err := t.Accept(ctx, *offer)
				if err != nil {
					s.holdOut(false)
					s.terminateAsync(Reason{Condition: ReasonFailedTransport, Text: err.Error()})
					return fmt.Errorf("content %s: transport %s: %w", c.Name, c.tns, err)
				}
				s.mu.Lock()
				c.answer = &ans
				s.mu.Unlock()
				answer = &ans
			}
			w := c.wire(answer, true)
			w.Senders = c.Senders
			s.mu.Lock()
			if c.acceptDesc != nil {
				d := *c.acceptDesc
				w.Description = &d
			}
			s.mu.Unlock()
			wcs = append(wcs, w)
		}
		st, err := next(s.state, ActionSessionAccept, RoleResponder)
		if err != nil {
			s.holdOut(false)
			return ErrWrongState
		}
		s.setState(st)
		close(s.active)
		s.stopTimer()
		it.j = &Jingle{Action: ActionSessionAccept, SID: s.sid, Responder: s.local.String(), Contents: wcs}
		s.enqueueOut(it, true) // releases the hold
		return nil
	})
	if err == nil {
		select {
		case err = <-it.res:
		case <-ctx.Done():
			err = ctx.Err()
		}
	}
	if err != nil {
		return fmt.Errorf("jingle: accept %s: %w", s.sid, err)
	}
	return nil
}

// Terminate ends the session: it sends session-terminate with r (default
// success) and waits for the ack. The session is ended as soon as it is sent
// (XEP-0166 §6.7). Terminate on an ended session does nothing and returns nil.
func (s *Session) Terminate(ctx context.Context, r Reason) error {
	if r.Condition == "" {
		r.Condition = ReasonSuccess
	}
	var sendIt bool
	err := s.call(ctx, func() error {
		if s.State() == StateEnded {
			return nil
		}
		s.end(r, false)
		sendIt = true
		return nil
	})
	if errors.Is(err, ErrSessionEnded) {
		return nil
	}
	if err == nil && sendIt {
		err = s.send(ctx, &Jingle{Action: ActionSessionTerminate, SID: s.sid, Reason: &r}, true)
	}
	if err != nil {
		return fmt.Errorf("jingle: terminate %s: %w", s.sid, err)
	}
	return nil
}

// SendInfo sends a session-info (XEP-0166 §7.2.9) with payload, or an empty
// one (a ping, §6.8) if payload is zero, and waits for the ack.
func (s *Session) SendInfo(ctx context.Context, payload Element) error {
	j := &Jingle{Action: ActionSessionInfo, SID: s.sid}
	if !payload.IsZero() {
		j.Extra = []Element{payload}
	}
	if err := s.SendAction(ctx, j); err != nil {
		return err
	}
	return nil
}

// SendAction sends j (its SID is set to the session's) and waits for the ack.
// It is for the actions the Manager does not drive itself: session-info,
// description-info, security-info and content-accept/-reject/-modify. The
// action must be allowed in the session's state (XEP-0166 §5.1).
func (s *Session) SendAction(ctx context.Context, j *Jingle) error {
	switch j.Action {
	case ActionSessionInfo, ActionDescriptionInfo, ActionSecurityInfo,
		ActionContentAccept, ActionContentReject, ActionContentModify:
	default:
		return fmt.Errorf("jingle: send %s: %w", j.Action, ErrWrongState)
	}
	if _, err := next(s.State(), j.Action, s.role); err != nil {
		return fmt.Errorf("jingle: send %s: %w", j.Action, ErrSessionEnded)
	}
	c := *j
	c.SID = s.sid
	if err := s.send(ctx, &c, false); err != nil {
		return fmt.Errorf("jingle: send %s %s: %w", j.Action, s.sid, err)
	}
	return nil
}

// ReplaceTransport moves content contentName to a new transport of namespace
// ns: it sends transport-replace (XEP-0166 §7.2.15) with the new transport's
// offer and waits for transport-accept (nil; Content.Conn then uses the new
// transport) or transport-reject (ErrTransportRejected). A peer that answers
// with session-accept (a bug of some clients) is understood as accepting.
func (s *Session) ReplaceTransport(ctx context.Context, contentName, ns string) error {
	var (
		j  *Jingle
		c  *Content
		rs *replaceState
	)
	err := s.call(ctx, func() error {
		if err := s.checkLive(); err != nil {
			return err
		}
		if s.role == RoleResponder && s.state == StatePending {
			// Our transport has not even answered the offer yet.
			return ErrWrongState
		}
		c = s.Content(contentName)
		if c == nil {
			return ErrUnknownContent
		}
		if c.replace != nil {
			return ErrReplacePending
		}
		f := s.m.transports[ns]
		if f == nil {
			return fmt.Errorf("%w %q", ErrNoTransport, ns)
		}
		t, err := f.NewTransport(link{c})
		if err != nil {
			return fmt.Errorf("new transport %s: %w", ns, err)
		}
		offer, err := t.Offer(ctx)
		if err != nil {
			t.Close()
			return fmt.Errorf("offer %s: %w", ns, err)
		}
		rs = &replaceState{t: t, ns: ns, result: make(chan error, 1)}
		s.mu.Lock()
		c.replace = rs
		s.mu.Unlock()
		j = &Jingle{Action: ActionTransportReplace, SID: s.sid, Contents: []WireContent{c.wire(&offer, false)}}
		return nil
	})
	if err == nil {
		err = s.send(ctx, j, false)
	}
	if err == nil {
		select {
		case err = <-rs.result:
		case <-s.done:
			err = s.endErr()
		case <-ctx.Done():
			err = ctx.Err()
		}
	}
	if err != nil {
		if rs != nil {
			_ = s.submit(func() { s.dropReplace(c, rs) })
		}
		return fmt.Errorf("jingle: transport-replace %s/%s → %s: %w", s.sid, contentName, ns, err)
	}
	return nil
}

// ---- owner goroutine ----

// submit queues f for the owner goroutine.
func (s *Session) submit(f func()) error {
	s.qmu.Lock()
	defer s.qmu.Unlock()
	if s.qclosed {
		return ErrSessionEnded
	}
	if len(s.queue) >= maxTasks {
		return errQueueFull
	}
	s.queue = append(s.queue, f)
	select {
	case s.qsig <- struct{}{}:
	default:
	}
	return nil
}

// call runs f on the owner goroutine and waits for its result.
func (s *Session) call(ctx context.Context, f func() error) error {
	res := make(chan error, 1)
	if err := s.submit(func() { res <- f() }); err != nil {
		if errors.Is(err, ErrSessionEnded) {
			return s.endErr()
		}
		return err
	}
	select {
	case err := <-res:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *Session) pop() func() {
	s.qmu.Lock()
	defer s.qmu.Unlock()
	if len(s.queue) == 0 {
		return nil
	}
	f := s.queue[0]
	s.queue[0] = nil
	s.queue = s.queue[1:]
	return f
}

// run is the owner goroutine. It returns once the session ended, after
// running the tasks queued until then (they see StateEnded).
func (s *Session) run() {
	for {
		select {
		case <-s.qsig:
		case <-s.m.ctx.Done():
			// Manager.Close could not terminate us in time.
			s.end(Reason{Condition: ReasonGone}, false)
		}
		for f := s.pop(); f != nil; f = s.pop() {
			f()
		}
		if s.State() == StateEnded {
			s.qmu.Lock()
			s.qclosed = true
			rest := s.queue
			s.queue = nil
			s.qmu.Unlock()
			for _, f := range rest {
				f()
			}
			return
		}
	}
}

func (s *Session) setState(st State) {
	s.mu.Lock()
	s.state = st
	s.mu.Unlock()
}

func (s *Session) checkLive() error {
	if s.State() == StateEnded {
		return s.endErr()
	}
	return nil
}

func (s *Session) stopTimer() {
	if s.timer != nil {
		s.timer.Stop()
	}
}

// startTimer arms the pending-session timeout (owner goroutine).
func (s *Session) startTimer() {
	if s.m.timeout <= 0 {
		return
	}
	s.timer = time.AfterFunc(s.m.timeout, func() {
		_ = s.submit(func() {
			if s.State() == StatePending {
				s.log.Info("jingle: session timed out", "after", s.m.timeout)
				s.terminateAsync(Reason{Condition: ReasonTimeout})
			}
		})
	})
}

// emit queues ev for Events without waiting (owner goroutine).
func (s *Session) emit(ev Event) {
	if s.State() == StateEnded {
		return // Events is closed
	}
	if len(s.events) < cap(s.events)-1 {
		s.events <- ev
		return
	}
	s.dropped++
	s.log.Warn(errEventsDropped.Error(), "event", fmt.Sprintf("%T", ev), "dropped", s.dropped)
}

// end moves the session to StateEnded (owner goroutine): it closes the
// transports, emits the TerminatedEvent, closes Events and Done.
func (s *Session) end(r Reason, byPeer bool) {
	s.mu.Lock()
	if s.state == StateEnded {
		s.mu.Unlock()
		return
	}
	s.state = StateEnded
	s.reason = r
	s.byPeer = byPeer
	contents := s.contents
	var pending []*replaceState
	for _, c := range contents {
		if c.replace != nil {
			pending = append(pending, c.replace)
			c.replace = nil
		}
	}
	s.mu.Unlock()
	s.stopTimer()
	for _, c := range contents {
		if c.transport != nil {
			if err := c.transport.Close(); err != nil {
				s.log.Debug("jingle: close transport", "content", c.Name, "err", err)
			}
		}
	}
	for _, rs := range pending {
		rs.t.Close()
		rs.result <- ErrSessionEnded
	}
	s.m.remove(s)
	s.events <- &TerminatedEvent{Reason: r, ByPeer: byPeer}
	close(s.events)
	s.cancel()
	close(s.done)
	s.log.Debug("jingle: session ended", "reason", r.String(), "by_peer", byPeer)
}

// terminateAsync ends the session and sends session-terminate without
// waiting (owner goroutine).
func (s *Session) terminateAsync(r Reason) {
	if s.State() == StateEnded {
		return
	}
	s.end(r, false)
	s.sendAsync(&Jingle{Action: ActionSessionTerminate, SID: s.sid, Reason: &r}, true)
}

// dropReplace forgets our transport-replace rs if it is still pending.
func (s *Session) dropReplace(c *Content, rs *replaceState) {
	s.mu.Lock()
	mine := c.replace == rs
	if mine {
		c.replace = nil
	}
	s.mu.Unlock()
	if mine {
		rs.t.Close()
	}
}

// opCtx bounds a transport call made by the owner goroutine.
func (s *Session) opCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(s.ctx, DefaultIQTimeout)
}

// ---- outbox ----

// send queues j for the peer and waits for the ack.
func (s *Session) send(ctx context.Context, j *Jingle, force bool) error {
	it := &outItem{ctx: ctx, j: j, force: force, res: make(chan error, 1)}
	s.enqueueOut(it, false)
	select {
	case err := <-it.res:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// maxOutbox bounds the IQs queued for the peer on our own initiative
// (answers to its actions): a peer that floods us without acknowledging our
// IQs gets the surplus dropped.
const maxOutbox = 256

// sendAsync queues j without waiting; a failure is logged.
func (s *Session) sendAsync(j *Jingle, force bool) {
	s.omu.Lock()
	full := len(s.outbox) >= maxOutbox && !force
	s.omu.Unlock()
	if full {
		s.log.Warn("jingle: outbox full, dropping", "action", j.Action)
		return
	}
	s.enqueueOut(&outItem{j: j, force: force}, false)
}

// sendFirst queues the session-initiate ahead of anything the transports
// queued while they prepared their offers, releases the outbox and waits.
func (s *Session) sendFirst(ctx context.Context, j *Jingle) error {
	it := &outItem{ctx: ctx, j: j, res: make(chan error, 1)}
	s.enqueueOut(it, true)
	select {
	case err := <-it.res:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// holdOut holds (true) or releases (false) the outbox; releasing starts
// sending what was queued meanwhile.
func (s *Session) holdOut(hold bool) {
	s.omu.Lock()
	s.oheld = hold
	start := !hold && len(s.outbox) > 0 && !s.orunning
	if start {
		s.orunning = true
	}
	s.omu.Unlock()
	if start {
		s.startOutLoop()
	}
}

func (s *Session) enqueueOut(it *outItem, first bool) {
	s.omu.Lock()
	if first {
		s.outbox = append([]*outItem{it}, s.outbox...)
		s.oheld = false
	} else {
		s.outbox = append(s.outbox, it)
	}
	if s.orunning || s.oheld {
		s.omu.Unlock()
		return
	}
	s.orunning = true
	s.omu.Unlock()
	s.startOutLoop()
}

// startOutLoop starts outLoop; the caller set orunning.
func (s *Session) startOutLoop() {
	if !s.m.goTracked(s.outLoop) {
		s.omu.Lock()
		items := s.outbox
		s.outbox = nil
		s.orunning = false
		s.omu.Unlock()
		for _, it := range items {
			if it.res != nil {
				it.res <- ErrClosed
			}
		}
	}
}

func (s *Session) outLoop() {
	for {
		s.omu.Lock()
		if len(s.outbox) == 0 || s.oheld {
			s.orunning = false
			s.omu.Unlock()
			return
		}
		it := s.outbox[0]
		s.outbox[0] = nil
		s.outbox = s.outbox[1:]
		s.omu.Unlock()
		err := s.transmit(it)
		if it.res != nil {
			it.res <- err
		} else if err != nil {
			s.log.Info("jingle: send failed", "action", it.j.Action, "err", err)
		}
	}
}

func (s *Session) transmit(it *outItem) error {
	if !it.force && s.State() == StateEnded {
		return s.endErr()
	}
	ctx := it.ctx
	if ctx == nil {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(s.m.ctx, DefaultIQTimeout)
		defer cancel()
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	payload, err := it.j.Marshal()
	if err != nil {
		return err
	}
	if _, err := s.m.sig.SendIQ(ctx, s.peer, "set", payload); err != nil {
		return fmt.Errorf("%s to %s: %w", it.j.Action, s.peer, err)
	}
	return nil
}

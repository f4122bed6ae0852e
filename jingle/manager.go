package jingle

// Rules the Manager enforces on every incoming <jingle/> IQ, before an
// application or transport sees it (XEP-0166 section in brackets):
//
//   - not an IQ-set, no 'sid', no or unknown 'action', unparsable
//     → <bad-request/> [§7.1, §7.2]
//   - sessions are keyed by (peer full JID, sid): both peers may pick the same
//     sid. An action for a sid we do not have with this sender (unknown sid,
//     ended session, or a third JID naming a live sid)
//     → <item-not-found/>+<unknown-session/> [§6.7, §10]
//   - an action the state machine does not allow (session-accept from the
//     initiator or twice, a second session-initiate for a live (peer, sid))
//     → <unexpected-request/>+<out-of-order/> [§5.1, §10]
//   - session-initiate: peer refused by WithAllowedPeer → <service-unavailable/>,
//     too many sessions → <resource-constraint/> [§6.3.2]; no content, a content
//     without name, <description/> or <transport/>, a duplicate
//     (creator, name), no content with disposition "session"
//     → <bad-request/> [§6.2, §7.2.10, §7.3]; otherwise ack [§6.3.1], then
//     an unknown description namespace → session-terminate
//     <unsupported-applications/>, an unknown transport namespace →
//     session-terminate <unsupported-transports/> [§6.3.1, §6.7]. The
//     'initiator' attribute is ignored: the 'from' is the initiator [§7.1].
//   - simultaneous session-initiates [§7.2.16, "no existing session"]: while
//     our own session-initiate to the same peer is unanswered, the lower sid
//     (i;octet) wins, and with equal sids the lower JID; the loser's
//     session-initiate gets <conflict/>+<tie-break/>.
//   - simultaneous transport-replace of one content [§7.2.16, "existing
//     session"]: the initiator's wins; the initiator answers the
//     responder's with <conflict/>+<tie-break/>.
//   - session-accept: contents must be ours and carry a <transport/>
//     [§7.2.8]. A session-accept while our transport-replace is pending in an
//     active session is taken as transport-accept (Conversations/Gajim send
//     that).
//   - session-info: empty → ack (ping) [§6.8]; a payload outside the
//     application's namespaces → <feature-not-implemented/>+<unsupported-info/>
//     [§6.8, §10].
//   - transport-info → the content's Transport.Info; its *StanzaError is the
//     answer [§7.2.13].
//   - transport-replace → transport-accept with the new transport's answer,
//     or transport-reject if we lack the namespace or it refuses [§7.2.15].
//   - content-modify needs 'senders' [§7.3]; content-remove (or
//     content-reject) of the last content ends the session [§7.2.4, §7.2.5].
//   - a session still pending after WithSessionTimeout is terminated with
//     <timeout/> [§7.4].
//   - session-terminate: ack, then the session is ENDED [§6.7]. We consider
//     a session ended as soon as we send session-terminate [§6.7].
//
// Deviations from the sketch in docs/ARCHITECTURE.md:
//   - The wire <content/> type is WireContent; Content is the session's view
//     (the sketch uses the name for the latter).
//   - Content has a Disposition field and SendersNow (content-modify);
//     Session has SendAction for content-accept/-reject, description-info
//     and security-info; ActionEvent carries those the peer sends.
//   - Reason has AlternativeSID (§7.4 <alternative-session><sid/>).
//   - Options WithMaxSessions and WithEventQueue were added.
//   - An Application may implement InfoNamespacer to accept session-info
//     payloads outside its description namespace (RTP's
//     urn:xmpp:jingle:apps:rtp:info:1).
//
// Threading: the Signaller's read loop only parses and routes; each session's
// owner goroutine (Session.run) applies actions in order; IQs we send go
// through a per-session outbox, one at a time, so the owner never waits for
// an ack (a peer that delays its acks delays our later IQs of that session,
// not our handling of its IQs). Transport methods other than Conn run on the owner goroutine: they
// must not wait for a later Jingle action of the same session, nor call
// TransportLink.SendTransportInfo synchronously.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"sync"
	"time"

	"mellium.im/xmpp/jid"
)

// InfoNamespacer is implemented by applications whose session-info payloads
// use namespaces other than their description's (XEP-0167 uses
// urn:xmpp:jingle:apps:rtp:info:1). The Manager accepts session-info payloads
// in the description namespace and in these.
type InfoNamespacer interface {
	InfoNamespaces() []string
}

// Manager owns the Jingle sessions of one Signaller: it answers the
// <jingle/> IQs, enforces XEP-0166's rules and hands sessions to the
// registered applications and transports.
type Manager struct {
	sig         Signaller
	local       jid.JID
	apps        map[string]Application
	transports  map[string]TransportFactory
	log         *slog.Logger
	timeout     time.Duration
	allowPeer   func(jid.JID) bool
	maxSessions int
	eventQueue  int
	// fallbackWait: see WithFallbackWait.
	fallbackWait time.Duration

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu        sync.Mutex
	sessions  map[sessionKey]*Session
	closed    bool
	waiting   bool // Close is waiting for the goroutines: start no more
	closeOnce sync.Once
}

type sessionKey struct{ peer, sid string }

func keyOf(peer jid.JID, sid string) sessionKey { return sessionKey{peer.String(), sid} }

// NewManager returns a Manager serving Jingle on sig. It registers the
// <jingle xmlns='urn:xmpp:jingle:1'/> IQ handler and advertises
// urn:xmpp:jingle:1 and every application and transport namespace
// (XEP-0166 §11). Registering a namespace twice panics.
func NewManager(sig Signaller, opts ...Option) (*Manager, error) {
	if sig == nil {
		return nil, errors.New("jingle: new manager: nil Signaller")
	}
	m := &Manager{
		sig:          sig,
		local:        sig.LocalJID(),
		apps:         map[string]Application{},
		transports:   map[string]TransportFactory{},
		log:          slog.New(slog.NewTextHandler(io.Discard, nil)),
		timeout:      DefaultSessionTimeout,
		maxSessions:  DefaultMaxSessions,
		eventQueue:   DefaultEventQueue,
		fallbackWait: DefaultFallbackWait,
		sessions:     map[sessionKey]*Session{},
	}
	for _, o := range opts {
		o(m)
	}
	m.log = m.log.With("component", "jingle")
	m.ctx, m.cancel = context.WithCancel(context.Background())
	sig.HandleIQ(xml.Name{Space: NS, Local: "jingle"}, m.handleIQ)
	features := []string{NS}
	var more []string
	for ns := range m.apps {
		more = append(more, ns)
	}
	for ns := range m.transports {
		more = append(more, ns)
	}
	sort.Strings(more)
	for _, f := range append(features, more...) {
		sig.AddFeature(f)
	}
	return m, nil
}

// Close terminates every live session (reason gone), waits for the acks (at
// most 5 s), then stops and waits for every goroutine the Manager started,
// including running Application.HandleSession calls (their ctx is cancelled).
// The IQ handler stays registered on the Signaller and answers
// unknown-session / service-unavailable. Close is idempotent.
func (m *Manager) Close() error {
	m.closeOnce.Do(func() {
		m.mu.Lock()
		m.closed = true
		live := make([]*Session, 0, len(m.sessions))
		for _, s := range m.sessions {
			live = append(live, s)
		}
		m.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		var wg sync.WaitGroup
		for _, s := range live {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := s.Terminate(ctx, Reason{Condition: ReasonGone}); err != nil {
					s.log.Debug("jingle: terminate on close", "err", err)
				}
			}()
		}
		wg.Wait()
		cancel()
		m.cancel()
		m.mu.Lock()
		m.waiting = true
		m.mu.Unlock()
		m.wg.Wait()
	})
	return nil
}

// goTracked runs f in a goroutine Close waits for; false if Close already
// waits.
func (m *Manager) goTracked(f func()) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.waiting {
		return false
	}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		f()
	}()
	return true
}

// Sessions returns the live sessions.
func (m *Manager) Sessions() []*Session {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]*Session, 0, len(m.sessions))
	for _, s := range m.sessions {
		out = append(out, s)
	}
	return out
}

// Session returns the live session with peer and sid, or nil.
func (m *Manager) Session(peer jid.JID, sid string) *Session {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.sessions[keyOf(peer, sid)]
}

func (m *Manager) remove(s *Session) {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := keyOf(s.peer, s.sid)
	if m.sessions[k] == s {
		delete(m.sessions, k)
	}
}

// register adds s and starts its owner goroutine (m.mu held).
func (m *Manager) registerLocked(s *Session) error {
	if m.closed || m.waiting {
		return ErrClosed
	}
	if len(m.sessions) >= m.maxSessions {
		return ErrResourceConstraint.WithText("too many Jingle sessions")
	}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		s.run()
	}()
	m.sessions[keyOf(s.peer, s.sid)] = s
	return nil
}

func newSID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b)
}

// Initiate starts a session with peer (a full JID): it creates a transport
// for each content, sends session-initiate (XEP-0166 §6.2) and returns once
// the peer acknowledged it. Wait for the peer's decision with WaitActive or
// Events.
func (m *Manager) Initiate(ctx context.Context, peer jid.JID, contents ...ContentSpec) (*Session, error) {
	if len(contents) == 0 {
		return nil, fmt.Errorf("jingle: initiate with %s: no content", peer)
	}
	s := newSession(m, peer, newSID(), RoleInitiator)
	s.oheld = true
	seen := map[string]bool{}
	for i, sp := range contents {
		c := &Content{
			Name: sp.Name, Creator: sp.Creator, Senders: sp.Senders,
			Description: sp.Description, s: s, changed: make(chan struct{}),
		}
		if c.Name == "" {
			c.Name = fmt.Sprintf("c%d", i)
		}
		if c.Creator == "" {
			c.Creator = CreatorInitiator
		}
		if c.Senders == "" {
			c.Senders = SendersBoth
		}
		c.senders = c.Senders
		if sp.Description.IsZero() {
			return nil, fmt.Errorf("jingle: initiate with %s: content %s has no description", peer, c.Name)
		}
		if m.transports[sp.Transport] == nil {
			return nil, fmt.Errorf("jingle: initiate with %s: content %s: %w %q", peer, c.Name, ErrNoTransport, sp.Transport)
		}
		if seen[c.Creator+"\x00"+c.Name] {
			return nil, fmt.Errorf("jingle: initiate with %s: duplicate content %s", peer, c.Name)
		}
		seen[c.Creator+"\x00"+c.Name] = true
		c.tns = sp.Transport
		s.contents = append(s.contents, c)
	}
	m.mu.Lock()
	err := m.registerLocked(s)
	m.mu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("jingle: initiate with %s: %w", peer, err)
	}
	var j *Jingle
	err = s.call(ctx, func() error {
		j = &Jingle{Action: ActionSessionInitiate, Initiator: m.local.String(), SID: s.sid}
		for _, c := range s.contents {
			t, err := m.transports[c.tns].NewTransport(link{c})
			if err != nil {
				return fmt.Errorf("content %s: new transport %s: %w", c.Name, c.tns, err)
			}
			s.mu.Lock()
			c.transport = t
			close(c.changed)
			c.changed = make(chan struct{})
			s.mu.Unlock()
			offer, err := t.Offer(ctx)
			if err != nil {
				return fmt.Errorf("content %s: offer %s: %w", c.Name, c.tns, err)
			}
			w := c.wire(&offer, true)
			if c.Senders != SendersBoth {
				w.Senders = c.Senders
			}
			j.Contents = append(j.Contents, w)
		}
		s.startTimer()
		return nil
	})
	if err == nil {
		s.inFlight.Store(true)
		err = s.sendFirst(ctx, j)
		s.inFlight.Store(false)
	}
	if err != nil {
		// The peer refused (or never answered): end locally.
		_ = s.submit(func() { s.end(Reason{Condition: ReasonCancel, Text: err.Error()}, false) })
		return nil, fmt.Errorf("jingle: initiate %s with %s: %w", s.sid, peer, err)
	}
	return s, nil
}

// handleIQ is the IQHandler of <jingle/>. It runs on the Signaller's read
// loop: it parses, routes and queues; it never blocks.
func (m *Manager) handleIQ(iq *IQ, reply ReplyFunc) {
	answer := func(err error) {
		if rerr := reply(nil, err); rerr != nil {
			m.log.Debug("jingle: reply", "err", rerr)
		}
	}
	if iq.Type != "set" {
		answer(ErrBadRequest.WithText("jingle: IQ type must be set"))
		return
	}
	j, err := ParseJingle(iq.Payload)
	if err != nil {
		answer(ErrBadRequest.WithText("%v", err))
		return
	}
	switch {
	case j.SID == "":
		answer(ErrBadRequest.WithText("jingle: missing sid"))
		return
	case len(j.SID) > MaxSIDLen:
		answer(ErrBadRequest.WithText("jingle: sid too long"))
		return
	case j.Action == "":
		answer(ErrBadRequest.WithText("jingle: missing action"))
		return
	case !j.Action.Valid():
		answer(ErrBadRequest.WithText("jingle: unknown action %q", string(j.Action)))
		return
	}
	if j.Action == ActionSessionInitiate {
		m.handleInitiate(iq, j, answer)
		return
	}
	m.mu.Lock()
	s := m.sessions[keyOf(iq.From, j.SID)]
	m.mu.Unlock()
	if s == nil {
		answer(ErrUnknownSession)
		return
	}
	if err := s.submit(func() { s.handleIncoming(j, answer) }); err != nil {
		if errors.Is(err, ErrSessionEnded) {
			err = ErrUnknownSession
		}
		answer(err)
	}
}

// validateContents checks the contents of a session-initiate or content-add
// (§6.2, §7.3).
func validateContents(j *Jingle) error {
	if len(j.Contents) == 0 {
		return fmt.Errorf("%s without content", j.Action)
	}
	seen := map[string]bool{}
	session := false
	for _, c := range j.Contents {
		if c.Name == "" {
			return errors.New("content without name")
		}
		cr := c.EffectiveCreator()
		if cr != CreatorInitiator && cr != CreatorResponder {
			return fmt.Errorf("content %s: bad creator %q", c.Name, c.Creator)
		}
		if c.Description == nil || c.Transport == nil {
			return fmt.Errorf("content %s: needs a description and a transport", c.Name)
		}
		switch c.EffectiveSenders() {
		case SendersBoth, SendersInitiator, SendersResponder, SendersNone:
		default:
			return fmt.Errorf("content %s: bad senders %q", c.Name, c.Senders)
		}
		k := cr + "\x00" + c.Name
		if seen[k] {
			return fmt.Errorf("content %s: duplicate", c.Name)
		}
		seen[k] = true
		if c.EffectiveDisposition() == DispositionSession {
			session = true
		}
	}
	if j.Action == ActionSessionInitiate && !session {
		// §7.2.10
		return errors.New("no content with disposition session")
	}
	return nil
}

func appNamespaces(j *Jingle) map[string]bool {
	ns := map[string]bool{}
	for _, c := range j.Contents {
		if c.Description != nil {
			ns[c.Description.Namespace()] = true
		}
	}
	return ns
}

func (s *Session) appNamespaces() map[string]bool {
	ns := map[string]bool{}
	for _, c := range s.Contents() {
		ns[c.Description.Namespace()] = true
	}
	return ns
}

func sameKeys(a, b map[string]bool) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if !b[k] {
			return false
		}
	}
	return true
}

// handleInitiate handles a session-initiate on the read loop.
func (m *Manager) handleInitiate(iq *IQ, j *Jingle, answer func(error)) {
	from := iq.From
	if m.allowPeer != nil && !m.allowPeer(from) {
		answer(ErrServiceUnavailable) // §6.3.2
		return
	}
	if err := validateContents(j); err != nil {
		answer(ErrBadRequest.WithText("jingle: %v", err))
		return
	}
	s := newSession(m, from, j.SID, RoleResponder)
	for _, wc := range j.Contents {
		offer := *wc.Transport
		s.contents = append(s.contents, &Content{
			Name: wc.Name, Creator: wc.EffectiveCreator(), Senders: wc.EffectiveSenders(),
			Disposition: wc.Disposition, Description: *wc.Description,
			s: s, senders: wc.EffectiveSenders(), tns: offer.Namespace(), offer: &offer,
			changed: make(chan struct{}),
		})
	}
	key := keyOf(from, j.SID)
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		answer(ErrServiceUnavailable)
		return
	}
	var overruled *Session
	if old := m.sessions[key]; old != nil {
		if old.role != RoleInitiator || !old.inFlight.Load() {
			m.mu.Unlock()
			answer(ErrOutOfOrder) // duplicate session-initiate (§10)
			return
		}
		// §7.2.16: both sent session-initiate with the same sid: the
		// one sent by the lower JID overrules.
		if m.local.String() < from.String() {
			m.mu.Unlock()
			answer(ErrTieBreak)
			return
		}
		overruled = old
		delete(m.sessions, key)
	} else {
		// §7.2.16 with different sids: the lower sid overrules, if
		// our unanswered session-initiate to this peer offers the same
		// applications.
		apps := appNamespaces(j)
		for _, o := range m.sessions {
			if o.role == RoleInitiator && o.inFlight.Load() && o.peer.Equal(from) &&
				o.sid < j.SID && sameKeys(o.appNamespaces(), apps) {
				m.mu.Unlock()
				answer(ErrTieBreak)
				return
			}
		}
	}
	if err := m.registerLocked(s); err != nil {
		m.mu.Unlock()
		if errors.Is(err, ErrClosed) {
			err = ErrServiceUnavailable
		}
		answer(err)
		if overruled != nil {
			_ = overruled.submit(func() { overruled.end(Reason{Condition: ReasonCancel, Text: "tie-break"}, false) })
		}
		return
	}
	m.mu.Unlock()
	if overruled != nil {
		_ = overruled.submit(func() { overruled.end(Reason{Condition: ReasonCancel, Text: "tie-break"}, false) })
	}
	answer(nil) // §6.3.1
	_ = s.submit(s.setupIncoming)
}

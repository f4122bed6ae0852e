package jingle

// State is the state of a session (XEP-0166 §5.1).
type State int

// States of XEP-0166 §5.1. A session starts in StatePending when the
// session-initiate is sent or received.
const (
	StatePending State = iota
	StateActive
	StateEnded

	// stateNew is "no session yet": only session-initiate leads out of it.
	stateNew State = -1
)

// String implements fmt.Stringer.
func (s State) String() string {
	switch s {
	case stateNew:
		return "new"
	case StatePending:
		return "pending"
	case StateActive:
		return "active"
	case StateEnded:
		return "ended"
	}
	return "invalid"
}

// next is the session state machine of XEP-0166 §5.1: the state after action
// a, sent by the party whose role is sender, in state cur. It is pure and
// serves both directions: for an incoming action, sender is the peer's role;
// for an outgoing one, ours. The error is the stanza error XEP-0166 §10
// prescribes, for the IQ carrying a refused incoming action.
func next(cur State, a Action, sender Role) (State, error) {
	if !a.Valid() {
		// §7.2: an unknown action is answered with <bad-request/>.
		return cur, ErrBadRequest.WithText("unknown action %q", string(a))
	}
	switch cur {
	case stateNew:
		if a != ActionSessionInitiate {
			// No such session (§10 unknown-session).
			return cur, ErrUnknownSession
		}
		if sender != RoleInitiator {
			return cur, ErrOutOfOrder
		}
		return StatePending, nil
	case StateEnded:
		// §6.7: after session-terminate, every Jingle IQ-set about the
		// session gets <unknown-session/>.
		return cur, ErrUnknownSession
	}
	// cur is StatePending or StateActive.
	switch a {
	case ActionSessionInitiate:
		// §10: "session-initiate after session-accept" is the example of
		// out-of-order; a second session-initiate for a live sid is too.
		return cur, ErrOutOfOrder
	case ActionSessionAccept:
		// §5.1: pending → active, only by the responder (§7.2.8).
		if cur != StatePending || sender != RoleResponder {
			return cur, ErrOutOfOrder
		}
		return StateActive, nil
	case ActionSessionTerminate:
		// §6.7: either party, at any point after the initiation.
		return StateEnded, nil
	default:
		// §5.1: content-*, description-info, security-info,
		// session-info and transport-* keep the state, in pending and
		// active alike.
		return cur, nil
	}
}

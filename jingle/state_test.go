package jingle

import (
	"errors"
	"testing"
)

func TestStateString(t *testing.T) {
	for s, want := range map[State]string{stateNew: "new", StatePending: "pending", StateActive: "active", StateEnded: "ended", State(9): "invalid"} {
		if got := s.String(); got != want {
			t.Errorf("State(%d).String() = %q, want %q", int(s), got, want)
		}
	}
}

// TestNextTable covers every action of XEP-0166 §7.2, in every state, from
// both roles.
func TestNextTable(t *testing.T) {
	type result struct {
		st  State
		err error
	}
	want := func(cur State, a Action, sender Role) result {
		switch {
		case cur == stateNew && a == ActionSessionInitiate && sender == RoleInitiator:
			return result{StatePending, nil}
		case cur == stateNew && a == ActionSessionInitiate:
			return result{cur, ErrOutOfOrder}
		case cur == stateNew:
			return result{cur, ErrUnknownSession}
		case cur == StateEnded:
			return result{cur, ErrUnknownSession}
		case a == ActionSessionInitiate:
			return result{cur, ErrOutOfOrder}
		case a == ActionSessionAccept && cur == StatePending && sender == RoleResponder:
			return result{StateActive, nil}
		case a == ActionSessionAccept:
			return result{cur, ErrOutOfOrder}
		case a == ActionSessionTerminate:
			return result{StateEnded, nil}
		}
		return result{cur, nil}
	}
	n := 0
	for _, cur := range []State{stateNew, StatePending, StateActive, StateEnded} {
		for _, a := range Actions {
			for _, r := range []Role{RoleInitiator, RoleResponder} {
				n++
				w := want(cur, a, r)
				st, err := next(cur, a, r)
				if st != w.st || !errors.Is(err, w.err) || (w.err == nil) != (err == nil) {
					t.Errorf("next(%v, %s, %v) = %v, %v; want %v, %v", cur, a, r, st, err, w.st, w.err)
				}
			}
		}
	}
	if n != 4*15*2 {
		t.Fatalf("covered %d transitions", n)
	}
	// Spot checks of the rules the brief names explicitly.
	if _, err := next(StatePending, ActionSessionAccept, RoleInitiator); !errors.Is(err, ErrOutOfOrder) {
		t.Errorf("session-accept from the initiator: %v", err)
	}
	if st, err := next(StateActive, ActionTransportReplace, RoleResponder); err != nil || st != StateActive {
		t.Errorf("transport-replace in active: %v %v", st, err)
	}
	if _, err := next(StateActive, Action("session-dance"), RoleResponder); !errors.Is(err, ErrBadRequest) {
		t.Errorf("unknown action: %v", err)
	}
}

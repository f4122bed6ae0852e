package client

import (
	"fmt"
	"testing"

	"mellium.im/xmpp/jid"
)

func TestPresenceTrackerOrderAndRemoval(t *testing.T) {
	tr := newPresenceTracker()
	bare := jid.MustParse("bob@example.com")
	low := jid.MustParse("bob@example.com/low")
	high := jid.MustParse("bob@example.com/high")
	newer := jid.MustParse("bob@example.com/newer")
	_, changed := tr.resources(bare)
	tr.update(resourcePresence{jid: low, available: true, priority: -1})
	select {
	case <-changed:
	default:
		t.Fatal("update did not signal a change")
	}
	tr.update(resourcePresence{jid: high, available: true, priority: 5})
	tr.update(resourcePresence{jid: newer, available: true, priority: -1})
	res, _ := tr.resources(bare)
	var got []string
	for _, r := range res {
		got = append(got, r.jid.Resourcepart())
	}
	if fmt.Sprint(got) != "[high newer low]" {
		t.Errorf("order %v, want [high newer low] (priority, then most recent)", got)
	}
	if p, ok := tr.get(high); !ok || p.priority != 5 {
		t.Errorf("get(high) = %+v, %v", p, ok)
	}
	for _, j := range []jid.JID{low, high, newer} {
		tr.update(resourcePresence{jid: j})
	}
	if res, _ := tr.resources(bare); len(res) != 0 {
		t.Errorf("resources after unavailable: %v", res)
	}
	if len(tr.byBare) != 0 {
		t.Errorf("%d bare JIDs kept with no resource", len(tr.byBare))
	}
	// Unavailable from someone never seen changes nothing.
	tr.update(resourcePresence{jid: jid.MustParse("eve@example.com/x")})
	if len(tr.byBare) != 0 {
		t.Errorf("unavailable presence created an entry")
	}
}

func TestPresenceTrackerBounds(t *testing.T) {
	tr := newPresenceTracker()
	for i := range maxResources + 10 {
		tr.update(resourcePresence{jid: jid.MustParse(fmt.Sprintf("bob@example.com/r%d", i)), available: true})
	}
	if res, _ := tr.resources(jid.MustParse("bob@example.com")); len(res) != maxResources {
		t.Errorf("%d resources kept, want the cap %d", len(res), maxResources)
	}
	// A known resource still updates when the cap is reached.
	tr.update(resourcePresence{jid: jid.MustParse("bob@example.com/r0"), available: true, priority: 9})
	if p, _ := tr.get(jid.MustParse("bob@example.com/r0")); p.priority != 9 {
		t.Errorf("known resource not updated at the cap")
	}
	for i := range maxPeers + 10 {
		tr.update(resourcePresence{jid: jid.MustParse(fmt.Sprintf("u%d@example.com/r", i)), available: true})
	}
	if len(tr.byBare) != maxPeers {
		t.Errorf("%d bare JIDs kept, want the cap %d", len(tr.byBare), maxPeers)
	}
}

func TestCapsCacheBound(t *testing.T) {
	c := newCapsCache()
	for i := range maxCaps + 10 {
		c.put(fmt.Sprint(i), []string{"f"})
	}
	if len(c.ver) > maxCaps {
		t.Errorf("%d vers cached, cap %d", len(c.ver), maxCaps)
	}
	if f, ok := c.get(fmt.Sprint(maxCaps + 9)); !ok || f[0] != "f" {
		t.Errorf("latest entry missing")
	}
}

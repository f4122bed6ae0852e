package client

import (
	"sort"
	"sync"
	"time"

	"mellium.im/xmpp/jid"
)

// resourcePresence is the last presence of one full JID.
type resourcePresence struct {
	jid                         jid.JID
	available                   bool
	priority                    int
	capsNode, capsVer, capsHash string
	seen                        time.Time
}

// presenceTracker keeps the available resources of every bare JID that sent
// us presence. Bare JIDs (maxPeers) and resources per bare JID
// (maxResources) are capped: a peer controls how many it announces.
type presenceTracker struct {
	mu      sync.Mutex
	byBare  map[string]map[string]resourcePresence
	changed chan struct{} // closed and replaced on every update
}

const (
	maxResources = 64
	// maxPeers bounds the bare JIDs tracked: directed presence (RFC 6121
	// §4.6) reaches us from anyone, not only from the roster.
	maxPeers = 4096
)

func newPresenceTracker() *presenceTracker {
	return &presenceTracker{byBare: map[string]map[string]resourcePresence{}, changed: make(chan struct{})}
}

func (t *presenceTracker) update(p resourcePresence) {
	p.seen = time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	bare := p.jid.Bare().String()
	m := t.byBare[bare]
	if !p.available {
		if m == nil {
			return // nothing changes
		}
		delete(m, p.jid.String())
		if len(m) == 0 {
			delete(t.byBare, bare)
		}
	} else {
		if m == nil {
			if len(t.byBare) >= maxPeers {
				return
			}
			m = map[string]resourcePresence{}
			t.byBare[bare] = m
		}
		if _, ok := m[p.jid.String()]; ok || len(m) < maxResources {
			m[p.jid.String()] = p
		}
	}
	close(t.changed)
	t.changed = make(chan struct{})
}

// resources returns the available resources of bare, best first: highest
// priority, then most recently seen.
func (t *presenceTracker) resources(bare jid.JID) ([]resourcePresence, <-chan struct{}) {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []resourcePresence
	for _, p := range t.byBare[bare.Bare().String()] {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].priority != out[j].priority {
			return out[i].priority > out[j].priority
		}
		return out[i].seen.After(out[j].seen)
	})
	return out, t.changed
}

func (t *presenceTracker) get(full jid.JID) (resourcePresence, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	p, ok := t.byBare[full.Bare().String()][full.String()]
	return p, ok
}

// capsCache maps verified caps ver strings to features (XEP-0115 §5.4).
type capsCache struct {
	mu  sync.Mutex
	ver map[string][]string
}

const maxCaps = 1024

func newCapsCache() *capsCache { return &capsCache{ver: map[string][]string{}} }

func (c *capsCache) get(ver string) ([]string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f, ok := c.ver[ver]
	return f, ok
}

func (c *capsCache) put(ver string, features []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.ver) >= maxCaps {
		for k := range c.ver {
			delete(c.ver, k)
			break
		}
	}
	c.ver[ver] = features
}

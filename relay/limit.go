package relay

import (
	"net"
	"net/netip"
	"sync"
	"time"
)

// bucket is a token bucket of rate tokens/s holding at most burst tokens. A nil *bucket allows everything.
type bucket struct {
	mu     sync.Mutex
	rate   float64
	burst  float64
	tokens float64
	last   time.Time
}

func newBucket(rate float64, burst float64) *bucket {
	if rate < 0 {
		return nil
	}
	return &bucket{rate: rate, burst: burst, tokens: burst}
}

// allow takes n tokens if there are that many.
func (b *bucket) allow(n float64, now time.Time) bool {
	if b == nil {
		return true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.last.IsZero() {
		b.tokens += now.Sub(b.last).Seconds() * b.rate
		if b.tokens > b.burst {
			b.tokens = b.burst
		}
	}
	b.last = now
	if b.tokens < n {
		return false
	}
	b.tokens -= n
	return true
}

// maxTrackedSources bounds the per-source maps (rate limiter, secret hints). When one is full it is emptied:
// that forgets some state (a limited source gets a fresh bucket) but memory stays bounded whatever the
// sources a peer spoofs.
const maxTrackedSources = 1 << 16

// ipLimiter is a token bucket per source IP.
type ipLimiter struct {
	rate  float64
	burst float64
	mu    sync.Mutex
	m     map[netip.Addr]*bucket
}

func (l *ipLimiter) allow(addr net.Addr, now time.Time) bool {
	if l.rate < 0 {
		return true
	}
	ip := addrIP(addr)
	l.mu.Lock()
	b := l.m[ip]
	if b == nil {
		if l.m == nil || len(l.m) >= maxTrackedSources {
			l.m = make(map[netip.Addr]*bucket)
		}
		b = newBucket(l.rate, l.burst)
		l.m[ip] = b
	}
	l.mu.Unlock()
	return b.allow(1, now)
}

func addrIP(a net.Addr) netip.Addr {
	switch a := a.(type) {
	case *net.UDPAddr:
		ip, _ := netip.AddrFromSlice(a.IP)
		return ip.Unmap()
	case *net.TCPAddr:
		ip, _ := netip.AddrFromSlice(a.IP)
		return ip.Unmap()
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// hintMap remembers, per source address, which REST secret validated the last authenticated request, between
// the packet inspection (which sees the message) and pion's AuthHandler (which does not).
type hintMap struct {
	mu sync.Mutex
	m  map[string]hint
}

type hint struct {
	username string
	secret   string // the secret that matched, "" when none did
}

func (h *hintMap) put(src, username, secret string) {
	h.mu.Lock()
	if h.m == nil || len(h.m) >= maxTrackedSources {
		h.m = make(map[string]hint)
	}
	h.m[src] = hint{username, secret}
	h.mu.Unlock()
}

func (h *hintMap) take(src, username string) (string, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	v, ok := h.m[src]
	if !ok || v.username != username {
		return "", false
	}
	delete(h.m, src)
	return v.secret, v.secret != ""
}

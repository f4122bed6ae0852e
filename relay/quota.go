package relay

import "sync"

// quota counts allocations in total and per user. Allocation slots are taken when the relayed socket is
// opened and given back when it is closed, so the count is exact whatever path ends an allocation.
type quota struct {
	maxTotal, maxUser int // negative: unlimited

	mu      sync.Mutex
	total   int
	perUser map[string]int
	idle    chan struct{} // closed when total drops to zero; replaced when it rises
}

// check reports the reason an allocation for user would be refused now, or "".
func (q *quota) check(user string) string {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.checkLocked(user)
}

func (q *quota) checkLocked(user string) string {
	if q.maxTotal >= 0 && q.total >= q.maxTotal {
		return "quota_total"
	}
	if q.maxUser >= 0 && user != "" && q.perUser[user] >= q.maxUser {
		return "quota_user"
	}
	return ""
}

// take reserves a slot for user, or returns the reason it cannot.
func (q *quota) take(user string) string {
	q.mu.Lock()
	defer q.mu.Unlock()
	if r := q.checkLocked(user); r != "" {
		return r
	}
	if q.perUser == nil {
		q.perUser = make(map[string]int)
	}
	if q.total == 0 || q.idle == nil {
		q.idle = make(chan struct{})
	}
	q.total++
	q.perUser[user]++
	return ""
}

func (q *quota) release(user string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.total--
	if n := q.perUser[user] - 1; n > 0 {
		q.perUser[user] = n
	} else {
		delete(q.perUser, user)
	}
	if q.total == 0 && q.idle != nil {
		close(q.idle)
		q.idle = nil
	}
}

func (q *quota) active() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.total
}

// idleCh returns a channel closed once no allocation is held (already closed if none is).
func (q *quota) idleCh() <-chan struct{} {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.total == 0 {
		c := make(chan struct{})
		close(c)
		return c
	}
	return q.idle
}

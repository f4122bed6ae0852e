// Package transports is xjingle's transport ladder: the policy that gives a
// Jingle content an ordered list of transports to try (for example SOCKS5
// bytestreams, then In-Band Bytestreams), narrowed to what the peer
// advertises, and walks down it with transport-replace when a rung fails
// (XEP-0260 §2.7, XEP-0166 §7.2.15). It records every rung tried and why it
// failed, for reports such as the CLI's --json output.
//
// It is not a transport (see the socks5 and ibb packages) and never touches
// the data: it only decides which transport a content uses next. It runs on
// the session initiator's side; the responder follows the replacements
// through jingle.Content.Conn.
package transports

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/xjingle/xjingle/jingle"
	"mellium.im/xmpp/jid"
)

// DefaultRungTimeout bounds how long one rung may take to produce a stream
// (Content.Conn) before the ladder moves to the next one: a peer that never
// answers our SOCKS5 candidates (StanzaJS ignores them) must not hang the
// transfer.
const DefaultRungTimeout = 30 * time.Second

// Errors callers branch on.
var (
	// ErrExhausted: every rung of the ladder failed. The error also wraps
	// the last rung's failure.
	ErrExhausted = errors.New("transports: every transport failed")
	// ErrNoCommonTransport: the peer advertises none of the ladder's
	// transports.
	ErrNoCommonTransport = errors.New("transports: the peer supports none of our transports")
	// ErrEmpty: a ladder without rungs.
	ErrEmpty = errors.New("transports: no transport")
	// ErrTooLarge: the stream is larger than what every rung may carry
	// (WithSizeLimit), e.g. a big file with only the inline transport.
	ErrTooLarge = errors.New("transports: too large for every transport")
)

// Attempt is one rung tried that failed, and why.
type Attempt struct {
	// Transport is the transport's namespace.
	Transport string `json:"transport"`
	// Err is why it failed, as text.
	Err string `json:"error"`
}

// String is "ns: reason".
func (a Attempt) String() string { return a.Transport + ": " + a.Err }

// Ladder is an ordered list of transport namespaces and the record of the
// rungs tried. A Ladder serves one content of one session: make one per
// transfer (NewLadder is cheap). Its methods are safe for concurrent use.
type Ladder struct {
	rungs       []string
	rungTimeout time.Duration
	log         *slog.Logger
	limits      map[string]int64 // WithSizeLimit
	size        int64            // ForSize; -1: unknown

	mu    sync.Mutex
	tried []Attempt
}

// Option configures a Ladder.
type Option func(*Ladder)

// WithRungTimeout bounds each rung's wait for a stream (default
// DefaultRungTimeout; zero or negative: no bound but the caller's context).
func WithRungTimeout(d time.Duration) Option { return func(l *Ladder) { l.rungTimeout = d } }

// WithSizeLimit says that rung ns carries streams of at most max bytes
// (the inline transport: one stanza). ForSize drops it for larger streams.
func WithSizeLimit(ns string, max int64) Option {
	return func(l *Ladder) {
		if l.limits == nil {
			l.limits = map[string]int64{}
		}
		l.limits[ns] = max
	}
}

// WithLogger sets the logger (default: discard).
func WithLogger(log *slog.Logger) Option {
	return func(l *Ladder) {
		if log != nil {
			l.log = log
		}
	}
}

// NewLadder returns a ladder over rungs (transport namespaces, most preferred
// first); empty and repeated names are dropped.
func NewLadder(rungs []string, opts ...Option) *Ladder {
	l := &Ladder{rungTimeout: DefaultRungTimeout, log: slog.New(slog.DiscardHandler), size: -1}
	for _, r := range rungs {
		if r != "" && !slices.Contains(l.rungs, r) {
			l.rungs = append(l.rungs, r)
		}
	}
	for _, o := range opts {
		o(l)
	}
	return l
}

// RungTimeout is the bound on each rung (zero or negative: none).
func (l *Ladder) RungTimeout() time.Duration { return l.rungTimeout }

// Skip records that rung ns failed before any session carried it (why),
// and returns the rung after it, or false when none is left. A sender uses
// it when the peer never even acknowledged a session-initiate offering ns
// (StanzaJS 12.22 chokes on a SOCKS5 offer and answers nothing): the
// session is lost, and the next rung is offered in a new session.
func (l *Ladder) Skip(ns string, why error) (string, bool) {
	l.record(ns, why)
	i := slices.Index(l.rungs, ns)
	if i < 0 || i+1 >= len(l.rungs) {
		return "", false
	}
	return l.rungs[i+1], true
}

// Rungs returns the ladder's transports, in order.
func (l *Ladder) Rungs() []string { return slices.Clone(l.rungs) }

// First is the transport to offer first, or "" for an empty ladder.
func (l *Ladder) First() string {
	if len(l.rungs) == 0 {
		return ""
	}
	return l.rungs[0]
}

// Tried returns the rungs tried that failed, in order.
func (l *Ladder) Tried() []Attempt {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.tried)
}

func (l *Ladder) record(ns string, err error) {
	l.mu.Lock()
	l.tried = append(l.tried, Attempt{Transport: ns, Err: err.Error()})
	l.mu.Unlock()
}

// Filter keeps the rungs whose namespace is in features, in order.
func Filter(rungs, features []string) []string {
	var out []string
	for _, r := range rungs {
		if slices.Contains(features, r) {
			out = append(out, r)
		}
	}
	return out
}

// ForPeer narrows the ladder to the transports the peer advertises
// (disco#info through q, XEP-0030; cached by entity caps in the client). With
// a nil q it keeps every rung. If the query fails, it keeps every rung and
// returns the error too (Jingle negotiation will sort it out). If the peer
// supports none, it returns ErrNoCommonTransport. The new ladder shares the
// options, not the record.
func (l *Ladder) ForPeer(ctx context.Context, q jingle.FeatureQuerier, peer jid.JID) (*Ladder, error) {
	nl := l.clone()
	if len(l.rungs) == 0 {
		return nl, ErrEmpty
	}
	if q == nil {
		return nl, nil
	}
	fs, err := q.PeerFeatures(ctx, peer)
	if err != nil {
		return nl, fmt.Errorf("transports: features of %s: %w", peer, err)
	}
	nl.rungs = Filter(l.rungs, fs)
	if len(nl.rungs) == 0 {
		return nl, fmt.Errorf("%w (%s advertises none of %s)", ErrNoCommonTransport, peer, strings.Join(l.rungs, ", "))
	}
	if len(nl.rungs) < len(l.rungs) {
		l.log.Debug("transports: peer lacks some transports", "peer", peer.String(), "usable", nl.rungs)
	}
	return nl, nil
}

// clone copies the ladder without its record.
func (l *Ladder) clone() *Ladder {
	return &Ladder{rungs: slices.Clone(l.rungs), rungTimeout: l.rungTimeout, log: l.log, limits: l.limits, size: l.size}
}

// ForSize returns the ladder for a stream of size bytes (negative: unknown):
// the rungs whose size limit (WithSizeLimit) is below size, or every limited
// rung when the size is unknown, are dropped; that is a policy, not a
// failure, so nothing is recorded in Tried. If no rung is left the error
// wraps ErrTooLarge. The new ladder passes the size to the transports'
// Conn (StreamSize) so that a transport whose negotiated limit turns out
// smaller fails, and the ladder moves on.
func (l *Ladder) ForSize(size int64) (*Ladder, error) {
	nl := l.clone()
	nl.size = size
	nl.rungs = nil
	var dropped []string
	for _, r := range l.rungs {
		if max, ok := l.limits[r]; ok && (size < 0 || size > max) {
			dropped = append(dropped, fmt.Sprintf("%s carries at most %d bytes", r, max))
			continue
		}
		nl.rungs = append(nl.rungs, r)
	}
	if len(nl.rungs) == 0 && len(l.rungs) > 0 {
		what := "a stream of unknown size"
		if size >= 0 {
			what = fmt.Sprintf("%d bytes", size)
		}
		return nl, fmt.Errorf("%w: %s (%s)", ErrTooLarge, what, strings.Join(dropped, "; "))
	}
	return nl, nil
}

type streamSizeKey struct{}

// WithStreamSize returns a context that tells a transport's Conn how many
// bytes the stream will carry (the ladder sets it from ForSize).
func WithStreamSize(ctx context.Context, n int64) context.Context {
	return context.WithValue(ctx, streamSizeKey{}, n)
}

// StreamSize is the size set with WithStreamSize, if any. A transport with a
// negotiated size limit (the inline transport) fails its Conn with
// jingle.ErrTransportFailed when the stream would not fit, so that the
// ladder tries the next rung before any byte is written.
func StreamSize(ctx context.Context) (int64, bool) {
	n, ok := ctx.Value(streamSizeKey{}).(int64)
	return n, ok
}

// Connect returns the stream of content contentName of s, walking down the
// ladder: it waits for the content's current transport (at most the rung
// timeout); if that fails with jingle.ErrTransportFailed or times out, it
// records the attempt and moves the content to the next rung with
// Session.ReplaceTransport (XEP-0166 §7.2.15; XEP-0260 §2.7), then waits
// again. A rung the peer rejects is recorded and skipped. The content's
// current transport need not be on the ladder: the rungs after it, or all of
// them if it is not on the ladder, are tried.
//
// Call it on the session's initiator once the session is active. When every
// rung failed the error wraps ErrExhausted and the last failure. An error for
// any other cause (the session ended, ctx done) is returned as is.
func (l *Ladder) Connect(ctx context.Context, s *jingle.Session, contentName string) (net.Conn, error) {
	c := s.Content(contentName)
	if c == nil {
		return nil, fmt.Errorf("transports: connect %s/%s: %w", s.SID(), contentName, jingle.ErrUnknownContent)
	}
	cur := c.TransportNamespace()
	i := slices.Index(l.rungs, cur)
	for {
		conn, err := l.try(ctx, c, cur)
		if err == nil {
			return conn, nil
		}
		if ctx.Err() != nil || isEnded(s) || !l.rungFailed(err) {
			return nil, err
		}
		l.log.Info("transports: rung failed", "sid", s.SID(), "transport", cur, "err", err)
		l.record(cur, err)
		last := err
		for {
			i++
			if i >= len(l.rungs) {
				return nil, fmt.Errorf("transports: connect %s/%s: %w: %w", s.SID(), contentName, ErrExhausted, last)
			}
			next := l.rungs[i]
			if next == cur {
				continue
			}
			rerr := l.replace(ctx, s, contentName, next)
			if rerr == nil {
				l.log.Info("transports: moved to the next rung", "sid", s.SID(), "transport", next)
				cur = next
				break
			}
			if ctx.Err() != nil || isEnded(s) {
				return nil, rerr
			}
			l.record(next, rerr)
			last = rerr
		}
	}
}

// rungFailed tells whether err ends this rung but not the transfer.
func (l *Ladder) rungFailed(err error) bool {
	return errors.Is(err, jingle.ErrTransportFailed) || errors.Is(err, errRungTimeout)
}

var errRungTimeout = errors.New("no stream in time")

// try waits for the content's stream, bounded by the rung timeout.
func (l *Ladder) try(ctx context.Context, c *jingle.Content, ns string) (net.Conn, error) {
	if l.size >= 0 {
		ctx = WithStreamSize(ctx, l.size)
	}
	if l.rungTimeout <= 0 {
		return c.Conn(ctx)
	}
	rctx, cancel := context.WithTimeoutCause(ctx, l.rungTimeout, errRungTimeout)
	defer cancel()
	conn, err := c.Conn(rctx)
	if err != nil && ctx.Err() == nil && errors.Is(context.Cause(rctx), errRungTimeout) {
		return nil, fmt.Errorf("transports: %s: %w after %s", ns, errRungTimeout, l.rungTimeout)
	}
	return conn, err
}

// replace moves the content to ns, bounded by the rung timeout too (a peer
// that never answers the transport-replace).
func (l *Ladder) replace(ctx context.Context, s *jingle.Session, content, ns string) error {
	if l.rungTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, l.rungTimeout)
		defer cancel()
	}
	return s.ReplaceTransport(ctx, content, ns)
}

func isEnded(s *jingle.Session) bool {
	select {
	case <-s.Done():
		return true
	default:
		return false
	}
}

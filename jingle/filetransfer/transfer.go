package filetransfer

import (
	"context"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/xjingle/xjingle/transports"
	"mellium.im/xmpp/jid"
)

// Direction tells whether we send or receive a file.
type Direction int

// Directions.
const (
	Outgoing Direction = iota // we send
	Incoming                  // we receive
)

// String implements fmt.Stringer.
func (d Direction) String() string {
	if d == Incoming {
		return "in"
	}
	return "out"
}

// Result is the outcome of one transfer; the CLI prints it as JSON.
type Result struct {
	// Name is the file name: the one offered (outgoing), or the name the
	// file was stored under (incoming: Path relative to the Store's Dir,
	// with "/" separators).
	Name string `json:"name"`
	// Path is where the file is: the local file sent, or the file
	// received (empty if it was not committed; with Store.KeepPartial it
	// is the ".failed" file of a failed transfer).
	Path string `json:"path,omitempty"`
	// Size is the announced size (-1 if unknown), Bytes the bytes that
	// went over the stream (Size-Offset for a complete resumed transfer).
	Size  int64 `json:"size"`
	Bytes int64 `json:"bytes"`
	// Offset is where the data on the stream started in the file: the
	// bytes a resumed transfer did not resend (XEP-0234 §6.4), 0 for a
	// whole file.
	Offset int64 `json:"offset,omitempty"`
	// Transport is the namespace of the transport that carried the data.
	Transport string `json:"transport,omitempty"`
	// Tried lists the transports tried before Transport, and why each
	// failed (the transport ladder, XEP-0260 §2.7).
	Tried []transports.Attempt `json:"tried,omitempty"`
	// SHA256 is the hex SHA-256 of the data we sent or received.
	SHA256 string `json:"sha256,omitempty"`
	// Verified is true for an incoming file when a strong hash from the
	// sender matched, and for an outgoing one when the receiver confirmed
	// (received, or session-terminate success after our checksum).
	Verified bool `json:"verified"`
	// VerifyNote says why Verified is false ("peer sent no hash", ...).
	VerifyNote string `json:"verify_note,omitempty"`
	// Seconds is the wall time from the offer (or request) to the end.
	Seconds float64 `json:"seconds"`
	// Err is why the transfer failed, nil on success. It wraps one of the
	// package's sentinels when one applies.
	Err error `json:"-"`
	// Error is Err as text, for JSON.
	Error string `json:"error,omitempty"`
}

// Transfer is one transfer in progress, in or out. Its methods are safe for
// concurrent use (a progress bar polls Bytes while the transfer runs).
type Transfer struct {
	name  string
	size  int64
	peer  jid.JID
	sid   string
	dir   Direction
	start time.Time

	bytes  atomic.Int64
	offset atomic.Int64
	done   chan struct{}
	once   sync.Once
	res    *Result
}

func newTransfer(dir Direction, peer jid.JID, sid, name string, size int64) *Transfer {
	return &Transfer{name: name, size: size, peer: peer, sid: sid, dir: dir, start: time.Now(), done: make(chan struct{})}
}

// Name is the file name (as offered; see Result.Name for the stored name).
func (t *Transfer) Name() string { return t.name }

// Size is the announced size of the file in bytes, -1 if unknown (also for
// a byte range: Offset+Bytes is the position in the file).
func (t *Transfer) Size() int64 { return t.size }

// Bytes is the number of bytes sent or received so far.
func (t *Transfer) Bytes() int64 { return t.bytes.Load() }

// Offset is where the data on the stream starts in the file: the bytes a
// resumed transfer (or a byte range) does not move (XEP-0234 §6.4). It is
// 0 for a whole file, and for an outgoing file it is known only once the
// receiver accepted (it may change from 0 once). Bytes counts only what
// crosses the stream: Offset+Bytes is the position in the file.
func (t *Transfer) Offset() int64 { return t.offset.Load() }

func (t *Transfer) setOffset(off int64) { t.offset.Store(off) }

// Peer is the peer's full JID.
func (t *Transfer) Peer() jid.JID { return t.peer }

// SID is the Jingle session ID.
func (t *Transfer) SID() string { return t.sid }

// Direction tells whether we send or receive.
func (t *Transfer) Direction() Direction { return t.dir }

// Done is closed when the transfer ended; Result is then valid.
func (t *Transfer) Done() <-chan struct{} { return t.done }

// Result is the transfer's outcome, nil until Done is closed.
func (t *Transfer) Result() *Result {
	select {
	case <-t.done:
		return t.res
	default:
		return nil
	}
}

// finish records r and closes Done (once).
func (t *Transfer) finish(r *Result) *Result {
	t.once.Do(func() {
		r.Bytes = t.bytes.Load()
		r.Seconds = time.Since(t.start).Seconds()
		if r.Err != nil {
			r.Error = r.Err.Error()
		}
		t.res = r
		close(t.done)
	})
	return t.res
}

// counter counts the bytes that go through it into a Transfer.
type counter struct {
	w io.Writer
	t *Transfer
}

func (c counter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.t.bytes.Add(int64(n))
	return n, err
}

// pacer caps the rate of writes to w at rate bytes per second (averaged
// from the first write): each write of at most pacerChunk bytes waits until
// the bytes before it are due, so a large write is spread out rather than
// sent in one burst. ctx ends a wait.
type pacer struct {
	ctx   context.Context
	w     io.Writer
	rate  int64
	start time.Time
	sent  int64
}

// pacerChunk is the largest write the pacer passes on at once.
const pacerChunk = 64 << 10

func (p *pacer) Write(b []byte) (int, error) {
	n := 0
	for len(b) > 0 {
		k, err := p.write(b[:min(len(b), pacerChunk)])
		n += k
		if err != nil {
			return n, err
		}
		b = b[k:]
	}
	return n, nil
}

func (p *pacer) write(b []byte) (int, error) {
	if p.start.IsZero() {
		p.start = time.Now()
	}
	due := p.start.Add(time.Duration(float64(p.sent) / float64(p.rate) * float64(time.Second)))
	if d := time.Until(due); d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-p.ctx.Done():
			t.Stop()
			return 0, p.ctx.Err()
		}
	}
	n, err := p.w.Write(b)
	p.sent += int64(n)
	return n, err
}

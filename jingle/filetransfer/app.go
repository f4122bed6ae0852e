package filetransfer

import (
	"context"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/xjingle/xjingle/jingle"
	"github.com/xjingle/xjingle/transports"
	"mellium.im/xmpp/jid"
)

// Defaults of the App's options.
const (
	// DefaultChecksumWait is how long a receiver waits, after the last
	// byte, for a checksum the sender did not announce. When the offer
	// announced one (<hash-used/> or an empty <hash/>), it waits
	// AnnouncedChecksumFactor times longer.
	DefaultChecksumWait     = 3 * time.Second
	AnnouncedChecksumFactor = 10
	// DefaultConfirmWait is how long a sender waits, after the last byte,
	// for the receiver's <received/> or session-terminate.
	DefaultConfirmWait = 60 * time.Second
	// DefaultReceivedGrace is how long a sender waits for the receiver's
	// session-terminate after its <received/> before terminating itself.
	DefaultReceivedGrace = 3 * time.Second
	// DefaultIdleTimeout is how long a transfer waits for the stream to
	// move (one read or write) before it gives up with ErrTimeout.
	DefaultIdleTimeout = 2 * time.Minute

	// bufSize is the copy buffer of one transfer: memory per transfer is
	// flat, whatever the file size. 256 KiB keeps the syscalls per byte
	// (socket, file) low enough that a loopback SOCKS5 transfer runs at
	// the speed of a plain TCP copy.
	bufSize = 256 << 10
	// terminateTimeout bounds the wait for the ack of our session-terminate.
	terminateTimeout = 10 * time.Second
	// endGrace is how long a broken stream waits for the session-terminate
	// that may explain it (see endedErr).
	endGrace = 500 * time.Millisecond
)

// Offer is an incoming file offer, as the accept policy sees it.
type Offer struct {
	Peer    jid.JID
	SID     string
	Content string
	// File is the offer as the peer sent it (File.Name is untrusted).
	File File
	// Name is the sanitised name the file would be stored under (before
	// any " (n)" collision suffix): a relative path with "/" separators
	// unless the Store is Flat (see Store.StoredName).
	Name string
	// Size is File.Size, or -1 when the peer did not say.
	Size int64
}

// AcceptAll is an accept policy that accepts every offer.
func AcceptAll(context.Context, *Offer) (bool, error) { return true, nil }

// Decision is the answer to an incoming offer (see WithAcceptDecision).
type Decision struct {
	// Accept takes the offer; false declines it.
	Accept bool
	// Range, if set (with Accept), asks for only a byte range of the file
	// (XEP-0234 §6.1 Example 3, §6.4): Length bytes from Offset (Length 0:
	// to the end; needed when the offer has no size). Range.Hashes is
	// ignored. The session-accept carries the <range/>; the bytes are
	// stored, under the Store's rules, as "<name>.range-<offset>-<end>"
	// (end = offset + length, exclusive). The whole file's hash cannot be
	// checked against a part of it: the Result has Verified false with
	// VerifyNote "byte range" (also with WithRequireHash, which does not
	// apply to ranges), and its Offset is the range's offset; the number of
	// bytes must still be exactly the range's length. A range outside the
	// offered size fails locally with ErrBadRange (session-terminate
	// failed-application); a sender that finds it outside the file refuses
	// it the same way. A sender that ignores the range (sends the whole
	// file) is caught by the size check (ErrSizeMismatch).
	Range *Range
}

// VerifyNoteRange is Result.VerifyNote for a byte range (Decision.Range).
const VerifyNoteRange = "byte range"

// Option configures an App. Options apply only in New.
type Option func(*App)

// WithAcceptPolicy sets the function that decides on incoming offers. It may
// block (asking a user); its ctx is cancelled when the session ends (for
// example when the Manager's session timeout expires). An error declines.
// Without a policy every offer is declined.
func WithAcceptPolicy(f func(ctx context.Context, o *Offer) (bool, error)) Option {
	return func(a *App) {
		if f == nil {
			a.decide = nil
			return
		}
		a.decide = func(ctx context.Context, o *Offer) (Decision, error) {
			ok, err := f(ctx, o)
			return Decision{Accept: ok}, err
		}
	}
}

// WithAcceptDecision is WithAcceptPolicy with a richer answer: the
// Decision may ask for a byte range of the file only (Decision.Range). It
// replaces any WithAcceptPolicy (the last of the two wins).
func WithAcceptDecision(f func(ctx context.Context, o *Offer) (Decision, error)) Option {
	return func(a *App) { a.decide = f }
}

// WithChecksumWait sets how long a receiver waits after the last byte for a
// checksum that was not announced (default DefaultChecksumWait); an
// announced one is waited for AnnouncedChecksumFactor times longer.
func WithChecksumWait(d time.Duration) Option {
	return func(a *App) {
		if d > 0 {
			a.checksumWait = d
		}
	}
}

// WithConfirmWait sets how long a sender waits after the last byte for the
// receiver to confirm (default DefaultConfirmWait). When it expires the
// sender terminates the session with reason timeout and fails with
// ErrUnconfirmed (Result.Verified false): the data may be stuck on the way
// (a stalled proxy) or the receiver gone.
func WithConfirmWait(d time.Duration) Option {
	return func(a *App) {
		if d > 0 {
			a.confirmWait = d
		}
	}
}

// WithIdleTimeout sets how long one read or write of the stream may block
// before the transfer fails with ErrTimeout (default DefaultIdleTimeout;
// zero or negative disables it).
func WithIdleTimeout(d time.Duration) Option { return func(a *App) { a.idle = d } }

// WithRateLimit caps the rate at which a sender writes file data to the
// stream, in bytes per second (0, the default: no cap). It is for links and
// relays that do not push back: Prosody's mod_proxy65 reads a fast sender
// into memory however slow the receiver, and under its select backend
// drops a stream whose queue passes its max_send_buffer_size.
func WithRateLimit(bytesPerSecond int64) Option {
	return func(a *App) {
		if bytesPerSecond > 0 {
			a.rate = bytesPerSecond
		}
	}
}

// WithRequireHash makes a receiver refuse (ErrNoHash, file not committed) a
// file for which the sender sent no usable strong hash.
func WithRequireHash(b bool) Option { return func(a *App) { a.requireHash = b } }

// WithOnTransfer sets a function called when a transfer (in or out) starts,
// before any byte moves. It must not block; it typically starts a progress
// display that watches Transfer.Bytes and Transfer.Done.
func WithOnTransfer(f func(*Transfer)) Option { return func(a *App) { a.onTransfer = f } }

// WithLogger sets the logger; nil (the default) discards.
func WithLogger(l *slog.Logger) Option {
	return func(a *App) {
		if l != nil {
			a.log = l
		}
	}
}

// WithShared sets the function that serves file requests (XEP-0234 §6.2):
// given the peer's file selector, it returns the local path to send, or
// false (the peer gets failed-application with file-not-available, §9.1).
// Without it every request is refused. It must not trust req.Name as a path.
func WithShared(f func(req File) (path string, ok bool)) Option {
	return func(a *App) { a.shared = f }
}

// App is the XEP-0234 application: register it on a jingle.Manager with
// jingle.WithApplication, then Send and Request files through it. Incoming
// offers go to the Store after the accept policy; incoming requests are
// served with the WithShared function. An App may serve several Managers and
// many transfers at once.
type App struct {
	store        *Store
	decide       func(context.Context, *Offer) (Decision, error)
	checksumWait time.Duration
	confirmWait  time.Duration
	grace        time.Duration
	idle         time.Duration
	rate         int64 // bytes per second; 0: no cap
	requireHash  bool
	onTransfer   func(*Transfer)
	shared       func(File) (string, bool)
	log          *slog.Logger
}

var _ jingle.Application = (*App)(nil)

// New returns an App that receives files into store (nil: receive nothing,
// every offer is declined).
func New(store *Store, opts ...Option) *App {
	a := &App{
		store:        store,
		checksumWait: DefaultChecksumWait,
		confirmWait:  DefaultConfirmWait,
		grace:        DefaultReceivedGrace,
		idle:         DefaultIdleTimeout,
		log:          slog.New(slog.DiscardHandler),
	}
	for _, o := range opts {
		o(a)
	}
	a.log = a.log.With("component", "filetransfer")
	return a
}

// Namespace implements jingle.Application.
func (a *App) Namespace() string { return NS }

// SendOptions are the options of Send.
type SendOptions struct {
	// Transport is the namespace of the transport to offer (a
	// TransportFactory registered on the Manager): shorthand for
	// Transports with one entry.
	Transport string
	// Transports is the transport ladder: namespaces to try in order. The
	// first is offered; when its stream fails (jingle.ErrTransportFailed)
	// or does not come up within RungTimeout, the content moves to the
	// next with transport-replace (XEP-0260 §2.7), without restarting the
	// file. It wins over Transport.
	Transports []string
	// RungTimeout bounds each transport's wait for a stream (0:
	// transports.DefaultRungTimeout; negative: only ctx bounds it).
	RungTimeout time.Duration
	// Features, if set, narrows the ladder to the transports the peer
	// advertises (disco#info); the client.Client implements it.
	Features jingle.FeatureQuerier
	// SizeLimits maps transports that carry small files only (the inline
	// transport) to the largest file they may carry: a larger file skips
	// them, without counting as a failure (transports.Ladder.ForSize). If
	// no transport is left, Send fails before anything is sent, with an
	// error wrapping transports.ErrTooLarge.
	SizeLimits map[string]int64
	// Name overrides the file name offered (default: the base of path).
	Name string
	// MediaType overrides the media type (default: from the extension, or
	// application/octet-stream).
	MediaType string
	// Desc is a human-readable description.
	Desc string
}

// RequestOptions are the options of Request.
type RequestOptions struct {
	// Transport is the namespace of the transport to offer.
	Transport string
	// Transports, RungTimeout and Features: as in SendOptions (the
	// requester, as the session's initiator, drives the ladder).
	Transports  []string
	RungTimeout time.Duration
	Features    jingle.FeatureQuerier
	// SizeLimits: as in SendOptions, for the requested file's size (a
	// request without a size skips every limited transport).
	SizeLimits map[string]int64
}

// ladder builds the transport ladder of one transfer.
// size is the stream's size (negative: unknown), limits the SizeLimits.
func (a *App) ladder(ctx context.Context, peer jid.JID, one string, rungs []string, timeout time.Duration, q jingle.FeatureQuerier, size int64, limits map[string]int64) (*transports.Ladder, error) {
	if len(rungs) == 0 {
		rungs = []string{one}
	}
	opts := []transports.Option{transports.WithLogger(a.log)}
	if timeout != 0 {
		opts = append(opts, transports.WithRungTimeout(timeout))
	}
	for ns, max := range limits {
		opts = append(opts, transports.WithSizeLimit(ns, max))
	}
	l := transports.NewLadder(rungs, opts...)
	if l.First() == "" {
		return nil, transports.ErrEmpty
	}
	l, err := l.ForSize(size)
	if err != nil {
		return nil, err
	}
	nl, err := l.ForPeer(ctx, q, peer)
	switch {
	case errors.Is(err, transports.ErrNoCommonTransport):
		return nil, err
	case err != nil:
		a.log.Info("cannot narrow the transports to the peer's", "peer", peer.String(), "err", err)
	}
	return nl, nil
}

// follow is the connect function of a responder: Content.Conn follows the
// initiator's transport-replace; a replaced transport is reported in Tried.
func follow(c *jingle.Content, res *Result) func(context.Context) (net.Conn, error) {
	return func(ctx context.Context) (net.Conn, error) {
		conn, err := c.Conn(ctx)
		// Every transport-replace, also those done before we got here.
		past := c.ReplacedTransports()
		for i, ns := range past {
			next := c.TransportNamespace()
			if i+1 < len(past) {
				next = past[i+1]
			}
			res.Tried = append(res.Tried, transports.Attempt{Transport: ns, Err: "replaced by the peer with " + next})
		}
		return conn, err
	}
}

// Send offers the file at path to peer (a full JID) and sends it (XEP-0234
// §6.1): it announces sha-256 with <hash-used/>, copies exactly the file's
// size over the transport while hashing, sends the hash in a checksum
// session-info (§8.2), and waits for the receiver's <received/> or
// session-terminate. The returned Result is never nil; the error is
// Result.Err.
func (a *App) Send(ctx context.Context, m *jingle.Manager, peer jid.JID, path string, opt SendOptions) (*Result, error) {
	res := &Result{Path: path, Size: -1}
	f, err := os.Open(path)
	if err != nil {
		res.Err = fmt.Errorf("filetransfer: send %s: %w", path, err)
		return res, res.Err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = errors.New("not a regular file")
	}
	if err != nil {
		res.Err = fmt.Errorf("filetransfer: send %s: %w", path, err)
		return res, res.Err
	}
	file := File{
		Name:     opt.Name,
		Size:     fi.Size(),
		HasSize:  true,
		Desc:     opt.Desc,
		Date:     fi.ModTime().UTC().Truncate(time.Millisecond),
		HashUsed: []string{AlgoSHA256},
		// §5: an empty <range/> in an offer announces support of ranged
		// transfers; a receiver may then resume with an offset (§6.4).
		Range: &Range{},
	}
	if file.Name == "" {
		file.Name = filepath.Base(path)
	}
	file.MediaType = opt.MediaType
	if file.MediaType == "" {
		file.MediaType = mediaType(file.Name)
	}
	res.Name, res.Size = file.Name, file.Size
	lad, err := a.ladder(ctx, peer, opt.Transport, opt.Transports, opt.RungTimeout, opt.Features, file.Size, opt.SizeLimits)
	if err != nil {
		res.Err = fmt.Errorf("filetransfer: send %s to %s: %w", file.Name, peer, err)
		return res, res.Err
	}
	s, err := a.initiate(ctx, m, peer, lad, jingle.ContentSpec{
		Name:        "a-file-offer",
		Creator:     jingle.CreatorInitiator,
		Senders:     jingle.SendersInitiator,
		Description: Description{File: file}.Element(),
	})
	if err != nil {
		res.Tried = lad.Tried()
		res.Err = fmt.Errorf("filetransfer: send %s to %s: %w", file.Name, peer, err)
		return res, res.Err
	}
	c := s.Contents()[0]
	t := newTransfer(Outgoing, peer, s.SID(), file.Name, file.Size)
	a.notify(t)
	w := a.watch(s, c.Name)
	defer w.close()
	log := a.log.With("sid", s.SID(), "peer", peer.String(), "dir", "out")
	log.Info("file offered", "name", file.Name, "size", file.Size)

	if err := s.WaitActive(ctx); err != nil {
		res.Tried = lad.Tried()
		res.Err = a.waitErr(s, err, "send "+file.Name)
		return t.finish(res), res.Err
	}
	// §6.1 (Example 3): the receiver's session-accept may carry a <range/>
	// with an offset or length that we SHOULD respect (§6.4).
	var want *Range
	if el := c.AcceptedDescription(); !el.IsZero() {
		if d, err := ParseDescription(el); err == nil {
			want = d.File.Range
		} else {
			log.Info("malformed description in session-accept, sending the whole file", "err", err)
		}
	}
	off, n, err := rangeOf(want, file.Size)
	if err != nil {
		a.terminate(s, jingle.ReasonFailedApplication, "bad range")
		res.Err = fmt.Errorf("filetransfer: send %s: %w", file.Name, err)
		return t.finish(res), res.Err
	}
	if off > 0 || n != file.Size {
		log.Info("ranged transfer", "offset", off, "length", n)
	}
	res.Offset = off
	t.setOffset(off)
	res.Err = a.sendData(ctx, s, c, ladderConnect(lad, s, c, res), f, file.Size, off, n, t, w, res)
	log.Info("file sent", "bytes", t.Bytes(), "verified", res.Verified, "err", res.Err)
	return t.finish(res), res.Err
}

// errNoAck is the cause of an initiate that the peer never acknowledged.
var errNoAck = errors.New("no answer to session-initiate")

// initiate offers spec with the ladder's first rung. A peer that does not
// even acknowledge the session-initiate within the rung timeout choked on
// the offer (StanzaJS 12.22 throws on SOCKS5 candidates and answers
// nothing): that session is lost, the rung is recorded as failed and the
// next one is offered in a new session-initiate. A peer that acknowledges
// but never accepts is another matter (a user who has not decided yet looks
// the same): the Manager's session timeout ends that session with <timeout/>
// (XEP-0166 §7.4; see waitErr).
func (a *App) initiate(ctx context.Context, m *jingle.Manager, peer jid.JID, lad *transports.Ladder, spec jingle.ContentSpec) (*jingle.Session, error) {
	spec.Transport = lad.First()
	for {
		ictx, cancel := ctx, context.CancelFunc(func() {})
		if d := lad.RungTimeout(); d > 0 {
			ictx, cancel = context.WithTimeoutCause(ctx, d, errNoAck)
		}
		s, err := m.Initiate(ictx, peer, spec)
		cancel()
		if err == nil {
			return s, nil
		}
		if ctx.Err() != nil || !errors.Is(context.Cause(ictx), errNoAck) {
			return nil, err
		}
		why := fmt.Errorf("%w within %v", errNoAck, lad.RungTimeout())
		next, ok := lad.Skip(spec.Transport, why)
		a.log.Info("peer did not acknowledge the offer", "peer", peer.String(), "transport", spec.Transport, "next", next)
		if !ok {
			return nil, fmt.Errorf("%w: %w (%w)", transports.ErrExhausted, ErrTimeout, err)
		}
		spec.Transport = next
	}
}

// Request asks peer for a file (XEP-0234 §6.2): want is the file selector
// (name, size, hash, ... of the file the peer shares). The file is received
// into the Store like an offer; a hash in want is checked like an offered
// one. When want has no size, the data is read until the peer closes the
// stream (bounded by Store.MaxSize). The returned Result is never nil; the
// error is Result.Err.
func (a *App) Request(ctx context.Context, m *jingle.Manager, peer jid.JID, want File, opt RequestOptions) (*Result, error) {
	res := &Result{Name: want.Name, Size: -1}
	if a.store == nil {
		res.Err = errors.New("filetransfer: request: App has no Store")
		return res, res.Err
	}
	if want.HasSize {
		res.Size = want.Size
	}
	lad, err := a.ladder(ctx, peer, opt.Transport, opt.Transports, opt.RungTimeout, opt.Features, res.Size, opt.SizeLimits)
	if err != nil {
		res.Err = fmt.Errorf("filetransfer: request %q from %s: %w", want.Name, peer, err)
		return res, res.Err
	}
	s, err := m.Initiate(ctx, peer, jingle.ContentSpec{
		Name:        "a-file-request",
		Creator:     jingle.CreatorInitiator,
		Senders:     jingle.SendersResponder,
		Description: Description{File: want}.Element(),
		Transport:   lad.First(),
	})
	if err != nil {
		res.Err = fmt.Errorf("filetransfer: request %q from %s: %w", want.Name, peer, err)
		return res, res.Err
	}
	c := s.Contents()[0]
	in, err := a.store.Create(want.Name, res.Size, want.Algos()...)
	if err != nil {
		a.storeFailed(s, err)
		res.Err = err
		return res, res.Err
	}
	res.Name = in.Name()
	t := newTransfer(Incoming, peer, s.SID(), want.Name, res.Size)
	a.notify(t)
	w := a.watch(s, c.Name)
	defer w.close()
	if err := s.WaitActive(ctx); err != nil {
		res.Err = a.waitErr(s, err, "request "+want.Name)
		a.abort(in, res)
		return t.finish(res), res.Err
	}
	res.Err = a.receiveData(ctx, s, c, ladderConnect(lad, s, c, res), in, want.HashValues(), len(want.Algos()) > 0, false, t, w, res)
	return t.finish(res), res.Err
}

// HandleSession implements jingle.Application: it receives offered files
// and serves requested ones. Sessions with more than one content are refused
// (failed-application): xjingle sends one file per session.
func (a *App) HandleSession(ctx context.Context, s *jingle.Session) {
	cs := s.Contents()
	if len(cs) != 1 {
		a.terminate(s, jingle.ReasonFailedApplication, "one file per session")
		return
	}
	c := cs[0]
	d, err := ParseDescription(c.Description)
	if err != nil {
		a.log.Info("malformed offer", "sid", s.SID(), "peer", s.Peer().String(), "err", err)
		a.terminate(s, jingle.ReasonFailedApplication, "malformed file description")
		return
	}
	// XEP-0234 §4.1: senders is the role of the File Sender. A content
	// without senders (StanzaJS) or with "both" is taken as an offer by its
	// creator, the common case.
	switch c.Senders {
	case jingle.SendersResponder:
		a.serveRequest(ctx, s, c, d)
	case jingle.SendersNone:
		a.terminate(s, jingle.ReasonFailedApplication, "senders='none'")
	default:
		a.receiveOffer(ctx, s, c, d)
	}
}

// receiveOffer handles an incoming File Offer (§6.1).
func (a *App) receiveOffer(ctx context.Context, s *jingle.Session, c *jingle.Content, d *Description) {
	log := a.log.With("sid", s.SID(), "peer", s.Peer().String(), "dir", "in")
	if a.store == nil {
		a.terminate(s, jingle.ReasonDecline, "not receiving files")
		return
	}
	f := d.File
	size := int64(-1)
	if f.HasSize {
		size = f.Size
	}
	if a.store.MaxSize > 0 && size > a.store.MaxSize {
		// §9.2: media-error with <file-too-large/>.
		log.Info("offer too large", "size", size, "limit", a.store.MaxSize)
		a.terminate(s, jingle.ReasonMediaError, "file too large", "file-too-large")
		return
	}
	offer := &Offer{Peer: s.Peer(), SID: s.SID(), Content: c.Name, File: f, Name: a.store.StoredName(f.Name), Size: size}
	var dec Decision
	if a.decide != nil {
		var err error
		// The policy may ask a user: stop asking when the session ends
		// (the Manager's session timeout, or the peer cancelled).
		pctx, cancel := sessionContext(ctx, s)
		dec, err = a.decide(pctx, offer)
		cancel()
		if err != nil {
			log.Info("accept policy failed", "err", err)
			dec = Decision{}
		}
	}
	if !dec.Accept {
		log.Info("offer declined", "name", offer.Name)
		a.terminate(s, jingle.ReasonDecline, "")
		return
	}
	if dec.Range != nil {
		a.receiveRange(ctx, s, c, f, size, *dec.Range, log)
		return
	}
	in, off, err := a.store.CreateResumable(s.Peer(), f, f.Algos()...)
	if err != nil {
		// Accepted, but it cannot be stored (a full disk, found by
		// reserving the space now rather than after the transfer):
		// report it as a failed transfer, and tell the sender why.
		log.Warn("cannot store file", "err", err)
		t := newTransfer(Incoming, s.Peer(), s.SID(), f.Name, size)
		a.notify(t)
		a.storeFailed(s, err)
		t.finish(&Result{Name: offer.Name, Size: size, Err: err})
		return
	}
	if off > 0 {
		// §6.1 (Example 3), §6.4: ask the sender for the rest only.
		af := f
		af.Range = &Range{Offset: off}
		c.SetAcceptDescription(Description{File: af}.Element())
		log.Info("resuming", "offset", off, "size", size)
	}
	t := newTransfer(Incoming, s.Peer(), s.SID(), f.Name, size)
	t.setOffset(off)
	res := &Result{Name: in.Name(), Size: size, Offset: off}
	a.notify(t)
	w := a.watch(s, c.Name)
	defer w.close()
	if err := s.Accept(ctx); err != nil {
		res.Err = fmt.Errorf("filetransfer: accept %s: %w", offer.Name, err)
		a.abort(in, res)
		a.terminate(s, jingle.ReasonFailedTransport, "")
		t.finish(res)
		return
	}
	log.Info("offer accepted", "name", offer.Name, "size", size)
	res.Err = a.receiveData(ctx, s, c, follow(c, res), in, f.HashValues(), len(f.Algos()) > 0, false, t, w, res)
	log.Info("file received", "path", res.Path, "bytes", t.Bytes(), "verified", res.Verified, "note", res.VerifyNote, "err", res.Err)
	t.finish(res)
}

// receiveRange receives the byte range r of an offered file (Decision.Range,
// XEP-0234 §6.4) into "<name>.range-<offset>-<end>".
func (a *App) receiveRange(ctx context.Context, s *jingle.Session, c *jingle.Content, f File, size int64, r Range, log *slog.Logger) {
	off, n, err := wantRange(r, size)
	t := newTransfer(Incoming, s.Peer(), s.SID(), f.Name, size)
	t.setOffset(off)
	res := &Result{Name: a.store.StoredName(f.Name), Size: size, Offset: off}
	if err != nil {
		a.notify(t)
		log.Info("bad range asked for", "err", err)
		a.terminate(s, jingle.ReasonFailedApplication, "bad range")
		res.Err = fmt.Errorf("filetransfer: receive %s: %w", res.Name, err)
		t.finish(res)
		return
	}
	in, err := a.store.Create(fmt.Sprintf("%s.range-%d-%d", f.Name, off, off+n), n)
	if err != nil {
		a.notify(t)
		log.Warn("cannot store file", "err", err)
		a.storeFailed(s, err)
		res.Err = err
		t.finish(res)
		return
	}
	// §6.1 (Example 3): the session-accept names the range. An explicit
	// length, so that the sender cannot guess it differently.
	af := f
	af.Range = &Range{Offset: off, Length: n}
	c.SetAcceptDescription(Description{File: af}.Element())
	res.Name = in.Name()
	a.notify(t)
	w := a.watch(s, c.Name)
	defer w.close()
	if err := s.Accept(ctx); err != nil {
		res.Err = fmt.Errorf("filetransfer: accept %s: %w", res.Name, err)
		a.abort(in, res)
		a.terminate(s, jingle.ReasonFailedTransport, "")
		t.finish(res)
		return
	}
	log.Info("offer accepted for a byte range", "name", res.Name, "offset", off, "length", n)
	res.Err = a.receiveData(ctx, s, c, follow(c, res), in, nil, true, true, t, w, res)
	log.Info("byte range received", "path", res.Path, "bytes", t.Bytes(), "err", res.Err)
	t.finish(res)
}

// wantRange checks a range a receiver asks for against the offered size
// (-1: unknown) and returns the offset and the length.
func wantRange(r Range, size int64) (off, n int64, err error) {
	if r.Offset < 0 || r.Length < 0 {
		return 0, 0, fmt.Errorf("range %d+%d: %w", r.Offset, r.Length, ErrBadRange)
	}
	if size < 0 {
		if r.Length == 0 {
			return 0, 0, fmt.Errorf("range from %d of a file of unknown size needs a length: %w", r.Offset, ErrBadRange)
		}
		return r.Offset, r.Length, nil
	}
	return rangeOf(&r, size)
}

// serveRequest handles an incoming File Request (§6.2).
func (a *App) serveRequest(ctx context.Context, s *jingle.Session, c *jingle.Content, d *Description) {
	log := a.log.With("sid", s.SID(), "peer", s.Peer().String(), "dir", "out")
	notAvailable := func() {
		// §9.1: failed-application with <file-not-available/>.
		a.terminate(s, jingle.ReasonFailedApplication, "", "file-not-available")
	}
	if a.shared == nil {
		notAvailable()
		return
	}
	path, ok := a.shared(d.File)
	if !ok {
		log.Info("requested file not shared", "name", d.File.Name)
		notAvailable()
		return
	}
	f, err := os.Open(path)
	if err != nil {
		log.Warn("requested file unreadable", "err", err)
		notAvailable()
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		notAvailable()
		return
	}
	// §6.4: a request may ask for a range of the file.
	off, length, err := rangeOf(d.File.Range, fi.Size())
	if err != nil {
		log.Info("bad range requested", "err", err)
		a.terminate(s, jingle.ReasonFailedApplication, "bad range")
		return
	}
	name := d.File.Name
	if name == "" {
		name = filepath.Base(path)
	}
	t := newTransfer(Outgoing, s.Peer(), s.SID(), name, fi.Size())
	t.setOffset(off)
	res := &Result{Name: name, Path: path, Size: fi.Size(), Offset: off}
	a.notify(t)
	w := a.watch(s, c.Name)
	defer w.close()
	if err := s.Accept(ctx); err != nil {
		res.Err = fmt.Errorf("filetransfer: accept request %s: %w", name, err)
		a.terminate(s, jingle.ReasonFailedTransport, "")
		t.finish(res)
		return
	}
	res.Err = a.sendData(ctx, s, c, follow(c, res), f, fi.Size(), off, length, t, w, res)
	log.Info("requested file sent", "bytes", t.Bytes(), "verified", res.Verified, "err", res.Err)
	t.finish(res)
}

// ladderConnect is the connect function of an initiator: it walks down the
// ladder and records the rungs tried in res.
func ladderConnect(l *transports.Ladder, s *jingle.Session, c *jingle.Content, res *Result) func(context.Context) (net.Conn, error) {
	return func(ctx context.Context) (net.Conn, error) {
		conn, err := l.Connect(ctx, s, c.Name)
		res.Tried = l.Tried()
		return conn, err
	}
}

// rangeOf checks a requested range (§6.4) against the file's size and
// returns the offset and the number of bytes to send (nil: the whole file).
func rangeOf(r *Range, size int64) (off, n int64, err error) {
	if r == nil {
		return 0, size, nil
	}
	if r.Offset > size {
		return 0, 0, fmt.Errorf("range offset %d beyond the file's %d bytes: %w", r.Offset, size, ErrBadRange)
	}
	n = size - r.Offset
	if r.Length != 0 {
		if r.Length > n {
			return 0, 0, fmt.Errorf("range %d+%d beyond the file's %d bytes: %w", r.Offset, r.Length, size, ErrBadRange)
		}
		n = r.Length
	}
	return r.Offset, n, nil
}

// sendData is the File Sender's part once the session is active: copy
// exactly n bytes from off of the size bytes of f, checksum, wait for the
// receiver.
//
// The checksum (§8.2) carries the hash of the whole file whatever the range:
// the bytes before off and after off+n are read for hashing only (each byte
// of f is read once, in order); for a partial range it also carries the
// hash of the bytes sent in a <range/> (§8.2, Example 15).
func (a *App) sendData(ctx context.Context, s *jingle.Session, c *jingle.Content, connect func(context.Context) (net.Conn, error), f io.Reader, size, off, n int64, t *Transfer, w *watcher, res *Result) error {
	conn, err := connect(ctx)
	if err != nil {
		return a.endedErr(s, w, fmt.Errorf("filetransfer: send: transport: %w", err), transportReason(err))
	}
	res.Transport = c.TransportNamespace()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer func() {
		stop()
		conn.Close()
	}()

	h := NewHasher(AlgoSHA256)
	buf := make([]byte, bufSize)
	shrank := func(got int64) error {
		a.terminate(s, jingle.ReasonFailedApplication, "file changed while sending")
		return fmt.Errorf("filetransfer: send: file shrank to %d of %d bytes: %w", got, size, ErrSizeMismatch)
	}
	if off > 0 {
		k, err := io.CopyBuffer(h, io.LimitReader(f, off), buf)
		if err != nil {
			a.terminate(s, jingle.ReasonFailedApplication, "cannot read the file")
			return fmt.Errorf("filetransfer: send: hash the first %d bytes: %w", off, err)
		}
		if k != off {
			return shrank(k)
		}
	}
	var rh *Hasher
	var src io.Reader = io.TeeReader(io.LimitReader(f, n), h)
	if off > 0 || n != size {
		rh = NewHasher(AlgoSHA256)
		src = io.TeeReader(src, rh)
	}
	var dst io.Writer = counter{&idleConn{c: conn, idle: a.idle}, t}
	if a.rate > 0 {
		dst = &pacer{ctx: ctx, w: dst, rate: a.rate}
	}
	k, err := io.CopyBuffer(dst, src, buf)
	if err != nil {
		return a.streamErr(ctx, s, w, fmt.Errorf("filetransfer: send: after %d of %d bytes: %w", k, n, err))
	}
	if k != n {
		return shrank(off + k)
	}
	if rest := size - off - n; rest > 0 {
		k, err := io.CopyBuffer(h, io.LimitReader(f, rest), buf)
		if err != nil {
			a.terminate(s, jingle.ReasonFailedApplication, "cannot read the file")
			return fmt.Errorf("filetransfer: send: hash the last %d bytes: %w", rest, err)
		}
		if k != rest {
			return shrank(off + n + k)
		}
	}
	// End of our stream: half-close where the transport can (TCP), else
	// close (IBB sends <close/>). Receivers read exactly size bytes and do
	// not depend on it.
	if cw, ok := conn.(interface{ CloseWrite() error }); ok {
		err = cw.CloseWrite()
	} else {
		err = conn.Close()
	}
	if err != nil {
		a.log.Debug("close stream", "sid", s.SID(), "err", err)
	}
	sum, _ := h.Sum(AlgoSHA256)
	res.SHA256 = hex.EncodeToString(sum.Value)

	// §8.2: the value of the announced <hash-used/>.
	cs := Checksum{Creator: c.Creator, Name: c.Name, File: File{Hashes: []Hash{sum}}}
	if rh != nil && n != size-off {
		rs, _ := rh.Sum(AlgoSHA256)
		cs.File.Range = &Range{Offset: off, Length: n, Hashes: []Hash{rs}}
	}
	if err := s.SendInfo(ctx, cs.Element()); err != nil {
		select {
		case <-w.ended:
			// A receiver that does not wait for checksums (Dino) may
			// have terminated already.
		default:
			a.log.Info("checksum not delivered", "sid", s.SID(), "err", err)
		}
	}

	timer := time.NewTimer(a.confirmWait)
	defer timer.Stop()
	select {
	case <-w.received:
		res.Verified = true
		// §6.6: the receiver normally terminates; give it a moment.
		g := time.NewTimer(a.grace)
		defer g.Stop()
		select {
		case <-w.ended:
			return w.endErr()
		case <-g.C:
		case <-ctx.Done():
		}
		a.terminate(s, jingle.ReasonSuccess, "")
		return nil
	case <-w.ended:
		if err := w.endErr(); err != nil {
			return err
		}
		res.Verified = true
		return nil
	case <-timer.C:
		// Bounded: a stalled proxy can hold our last bytes while the
		// receiver waits for them; never hang on it (XEP-0166 §7.4
		// <timeout/>: a request has not been answered).
		res.VerifyNote = "receiver did not confirm"
		a.terminate(s, jingle.ReasonTimeout, "no confirmation from the receiver")
		return fmt.Errorf("filetransfer: send: sent all %d bytes, no confirmation from %s within %v: %w", n, s.Peer(), a.confirmWait, ErrUnconfirmed)
	case <-ctx.Done():
		a.terminate(s, jingle.ReasonCancel, "")
		return fmt.Errorf("filetransfer: send: waiting for the receiver: %w", ctxErr(ctx))
	}
}

// receiveData is the File Receiver's part once the session is active.
// offered are the hash values of the offer; announced tells whether the
// offer named an algorithm (a checksum is then worth waiting for longer);
// ranged tells that in holds a byte range (Decision.Range): its size is
// checked, not its hash.
func (a *App) receiveData(ctx context.Context, s *jingle.Session, c *jingle.Content, connect func(context.Context) (net.Conn, error), in *IncomingFile, offered []Hash, announced, ranged bool, t *Transfer, w *watcher, res *Result) (err error) {
	defer func() {
		if err != nil {
			a.abort(in, res)
		}
	}()
	conn, err := connect(ctx)
	if err != nil {
		return a.endedErr(s, w, fmt.Errorf("filetransfer: receive: transport: %w", err), transportReason(err))
	}
	res.Transport = c.TransportNamespace()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	var drain sync.WaitGroup
	defer func() {
		stop()
		conn.Close()
		drain.Wait()
	}()

	size := in.size
	start := in.Written() // a resumed file has data already
	var src io.Reader = &idleConn{c: conn, idle: a.idle}
	if size >= 0 {
		// Read exactly the missing bytes: never wait for the end of the
		// stream (Conversations never closes its IBB stream).
		src = io.LimitReader(src, size-start)
	}
	// A session that ends with a failure while we wait for data (the
	// sender gave up on a stalled proxy) stops the copy now, not at the
	// idle timeout. A successful end does not: data may still be queued.
	copied := make(chan struct{})
	drain.Add(1)
	go func() {
		defer drain.Done()
		select {
		case <-w.ended:
			if w.endErr() != nil {
				conn.Close()
			}
		case <-copied:
		}
	}()
	n, err := io.CopyBuffer(counter{in, t}, src, make([]byte, bufSize))
	close(copied)
	if err != nil {
		if errors.Is(err, ErrTooLarge) {
			in.DropResume()
			a.terminate(s, jingle.ReasonMediaError, "file too large", "file-too-large")
			return err
		}
		return a.streamErr(ctx, s, w, fmt.Errorf("filetransfer: receive: after %d bytes: %w", start+n, err))
	}
	if size >= 0 && start+n < size {
		// The stream ended early: a size lie, or a broken transfer.
		if p, ok := conn.(interface{ Proxy() jid.JID }); ok {
			// Through a proxy, most likely the proxy dropped it:
			// mod_proxy65 has no flow control and Prosody's select
			// backend closes a stream whose queue grew too long.
			err := fmt.Errorf("filetransfer: receive: proxy %s closed the stream after %d of %d bytes: %w", p.Proxy(), start+n, size, ErrSizeMismatch)
			return a.endedErr(s, w, err, jingle.ReasonConnectivityError)
		}
		err := fmt.Errorf("filetransfer: receive: stream ended after %d of %d bytes: %w", start+n, size, ErrSizeMismatch)
		return a.endedErr(s, w, err, jingle.ReasonMediaError)
	}
	// Data past the announced size is a size lie too (§9.2): watch the
	// stream while we wait for the checksum.
	excess := make(chan bool, 1)
	if size >= 0 {
		conn.SetReadDeadline(time.Time{})
		drain.Add(1)
		go func() {
			defer drain.Done()
			var b [1]byte
			k, _ := conn.Read(b[:])
			excess <- k > 0
		}()
	}
	tooMuch := func() error {
		// A sender that ignored our range sends the whole file: the
		// data is misplaced, start over next time.
		in.DropResume()
		a.terminate(s, jingle.ReasonMediaError, "more data than announced", "file-too-large")
		return fmt.Errorf("filetransfer: receive: peer sent more than %d bytes: %w", size, ErrSizeMismatch)
	}

	// Wait for a hash value: from the offer, or a checksum that came before
	// the last byte (Conversations over IBB) or comes now (§8.2).
	wait := a.checksumWait
	if announced {
		wait *= AnnouncedChecksumFactor
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	want := func() []Hash { return append(append([]Hash(nil), offered...), w.hashes()...) }
wait:
	for len(want()) == 0 {
		select {
		case <-w.gotSum:
		case x := <-excess:
			if x {
				return tooMuch()
			}
			excess = nil
		case <-w.ended:
			if err := w.endErr(); err != nil {
				return err
			}
			// Terminated with success by the sender: use what we have.
			break wait
		case <-timer.C:
			break wait
		case <-ctx.Done():
			a.terminate(s, jingle.ReasonCancel, "")
			return fmt.Errorf("filetransfer: receive: waiting for the checksum: %w", ctxErr(ctx))
		}
	}
	select {
	case x := <-excess:
		if x {
			return tooMuch()
		}
	default:
	}

	if sum, ok := in.h.Sum(AlgoSHA256); ok {
		res.SHA256 = hex.EncodeToString(sum.Value)
	}
	var v Verification
	if ranged {
		// The sender's checksum is the whole file's: it cannot match a
		// part of it. The size was checked above (and by Commit).
		v.Note = VerifyNoteRange
	} else {
		v, err = in.Verify(want())
	}
	if err != nil {
		in.DropResume()
		if errors.Is(err, ErrHashMismatch) {
			// No reason is specific to a bad checksum; media-error is
			// what §9.2 uses for bad file data.
			a.terminate(s, jingle.ReasonMediaError, "hash mismatch")
		} else {
			a.terminate(s, jingle.ReasonFailedApplication, "cannot verify the file")
		}
		return fmt.Errorf("filetransfer: receive %s: %w", in.Name(), err)
	}
	res.Verified, res.VerifyNote = v.Verified, v.Note
	if !v.Verified && a.requireHash && !ranged {
		a.terminate(s, jingle.ReasonSecurityError, "no usable hash")
		return fmt.Errorf("filetransfer: receive %s: %s: %w", in.Name(), v.Note, ErrNoHash)
	}
	path, err := in.Commit()
	if err != nil {
		a.terminate(s, jingle.ReasonFailedApplication, "cannot store the file")
		return err
	}
	res.Path, res.Name = path, a.store.Rel(path)
	// §8.1 received, then §6.6 the receiver ends the session.
	select {
	case <-w.ended:
	default:
		ictx, cancel := context.WithTimeout(context.WithoutCancel(ctx), terminateTimeout)
		if err := s.SendInfo(ictx, Received{Creator: c.Creator, Name: c.Name}.Element()); err != nil {
			a.log.Debug("received not delivered", "sid", s.SID(), "err", err)
		}
		cancel()
		a.terminate(s, jingle.ReasonSuccess, "")
	}
	return nil
}

// abort discards (or keeps, per KeepPartial) a file that failed.
func (a *App) abort(in *IncomingFile, res *Result) {
	kept, err := in.Abort()
	if err != nil {
		a.log.Warn("abort", "err", err)
	}
	res.Path = kept
}

func (a *App) notify(t *Transfer) {
	if a.onTransfer != nil {
		a.onTransfer(t)
	}
}

// storeFailed terminates a session whose file the Store could not create:
// §9.2's media-error with <file-too-large/> when it cannot fit (no space, or
// larger than the file system allows), else failed-application.
func (a *App) storeFailed(s *jingle.Session, err error) {
	switch {
	case errors.Is(err, ErrNoSpace):
		a.terminate(s, jingle.ReasonMediaError, "not enough disk space", "file-too-large")
	case errors.Is(err, ErrTooLarge):
		a.terminate(s, jingle.ReasonMediaError, "file too large", "file-too-large")
	default:
		a.terminate(s, jingle.ReasonFailedApplication, "cannot store the file")
	}
}

// terminate sends session-terminate with a reason (and application-specific
// conditions of NSErrors, §9), whatever the state of the caller's ctx.
func (a *App) terminate(s *jingle.Session, cond, text string, appConds ...string) {
	r := jingle.Reason{Condition: cond, Text: text}
	for _, c := range appConds {
		r.Extra = append(r.Extra, jingle.Element{XMLName: xml.Name{Space: NSErrors, Local: c}})
	}
	ctx, cancel := context.WithTimeout(context.Background(), terminateTimeout)
	defer cancel()
	if err := s.Terminate(ctx, r); err != nil {
		a.log.Debug("terminate", "sid", s.SID(), "err", err)
	}
}

// waitErr maps the error of WaitActive.
func (a *App) waitErr(s *jingle.Session, err error, what string) error {
	var te *jingle.TerminatedError
	if errors.As(err, &te) {
		if !te.ByPeer && te.Reason.Condition == jingle.ReasonTimeout {
			// The Manager's session timeout: the peer acknowledged
			// the offer but never accepted nor declined it.
			return fmt.Errorf("filetransfer: %s: %s never accepted the offer: %w", what, s.Peer(), reasonErr(te.Reason, te.ByPeer))
		}
		return fmt.Errorf("filetransfer: %s: %w", what, reasonErr(te.Reason, te.ByPeer))
	}
	a.terminate(s, jingle.ReasonCancel, "")
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("filetransfer: %s: waiting for the peer: %w", what, errors.Join(ErrTimeout, err))
	}
	return fmt.Errorf("filetransfer: %s: %w", what, err)
}

// endedErr explains a stream error: if the session ended, why; otherwise
// err, after terminating with cond.
//
// The stream and the signalling travel different paths: a peer that
// terminates closes the transport too, and we may see the broken stream
// before the session-terminate. So a stream error waits up to endGrace for
// the session to end before it is blamed on the stream.
func (a *App) endedErr(s *jingle.Session, w *watcher, err error, cond string) error {
	g := time.NewTimer(endGrace)
	defer g.Stop()
	select {
	case <-w.ended:
		if e := w.endErr(); e != nil {
			return fmt.Errorf("%w (%w)", e, err)
		}
		return fmt.Errorf("%w: %w", ErrPeerGone, err)
	case <-g.C:
	}
	a.terminate(s, cond, "")
	return err
}

// streamErr explains an error of the stream: our ctx, the idle timeout, the
// session's end, or the stream itself.
func (a *App) streamErr(ctx context.Context, s *jingle.Session, w *watcher, err error) error {
	if ctx.Err() != nil {
		a.terminate(s, jingle.ReasonCancel, "")
		return fmt.Errorf("%w (%w)", ctxErr(ctx), err)
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		a.terminate(s, jingle.ReasonConnectivityError, "stream stalled")
		return fmt.Errorf("filetransfer: stream idle for %v: %w (%w)", a.idle, ErrTimeout, err)
	}
	return a.endedErr(s, w, err, jingle.ReasonConnectivityError)
}

// idleConn keeps a deadline ahead of each read and write, so a stalled
// stream fails instead of blocking forever. Setting a deadline costs a
// runtime timer update, so it is moved forward only when at least
// idle/idleSlack has passed since it was last set: a stream that stops
// moving fails after between idle-idle/idleSlack and idle.
type idleConn struct {
	c    net.Conn
	idle time.Duration
	// rset and wset are when the read and write deadlines were last set
	// (zero: never).
	rset, wset time.Time
}

// idleSlack divides the idle timeout into the step by which idleConn
// moves its deadlines.
const idleSlack = 16

// due reports whether a deadline set at last should be moved forward now
// (and records now as the time it is set).
func (i *idleConn) due(last *time.Time) (time.Time, bool) {
	now := time.Now()
	if !last.IsZero() && now.Sub(*last) < i.idle/idleSlack {
		return now, false
	}
	*last = now
	return now, true
}

func (i *idleConn) Read(p []byte) (int, error) {
	if i.idle > 0 {
		if now, ok := i.due(&i.rset); ok {
			i.c.SetReadDeadline(now.Add(i.idle))
		}
	}
	return i.c.Read(p)
}

func (i *idleConn) Write(p []byte) (int, error) {
	if i.idle > 0 {
		if now, ok := i.due(&i.wset); ok {
			i.c.SetWriteDeadline(now.Add(i.idle))
		}
	}
	return i.c.Write(p)
}

// reasonErr maps a session-terminate reason to the package's sentinels.
// transportReason is the session-terminate reason for a transport that
// brought no stream: security-error when the peer could not be
// authenticated (jingle.ErrTransportSecurity), else failed-transport.
func transportReason(err error) string {
	if errors.Is(err, jingle.ErrTransportSecurity) {
		return jingle.ReasonSecurityError
	}
	return jingle.ReasonFailedTransport
}

func reasonErr(r jingle.Reason, byPeer bool) error {
	who := "locally"
	if byPeer {
		who = "by peer"
	}
	var sentinel error
	switch r.Condition {
	case jingle.ReasonSuccess:
		return nil
	case jingle.ReasonDecline, jingle.ReasonBusy:
		sentinel = ErrDeclined
	case jingle.ReasonTimeout, jingle.ReasonExpired:
		sentinel = ErrTimeout
	case jingle.ReasonMediaError:
		sentinel = ErrHashMismatch
		if hasAppCond(r, "file-too-large") {
			sentinel = ErrTooLarge
		}
	case jingle.ReasonFailedApplication:
		sentinel = ErrPeerGone
		if hasAppCond(r, "file-not-available") {
			sentinel = ErrNotAvailable
		}
	default:
		sentinel = ErrPeerGone
	}
	return fmt.Errorf("session terminated %s (%s): %w", who, r, sentinel)
}

func hasAppCond(r jingle.Reason, local string) bool {
	for _, e := range r.Extra {
		if e.XMLName.Local == local && e.XMLName.Space == NSErrors {
			return true
		}
	}
	return false
}

func ctxErr(ctx context.Context) error {
	err := ctx.Err()
	if errors.Is(err, context.DeadlineExceeded) {
		return errors.Join(ErrTimeout, err)
	}
	return err
}

func mediaType(name string) string {
	if t := mime.TypeByExtension(filepath.Ext(name)); t != "" {
		return t
	}
	return "application/octet-stream"
}

// sessionContext returns a ctx that is also cancelled when s ends. The
// returned func cancels it and waits for the helper goroutine.
func sessionContext(ctx context.Context, s *jingle.Session) (context.Context, func()) {
	sctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		select {
		case <-s.Done():
			cancel()
		case <-sctx.Done():
		}
	}()
	return sctx, func() {
		cancel()
		wg.Wait()
	}
}

// watcher reads a session's events for one content: checksums, received,
// the end. It owns one goroutine, stopped by close.
type watcher struct {
	content string
	log     *slog.Logger

	mu     sync.Mutex
	sums   []Hash
	term   *jingle.TerminatedEvent
	gotSum chan struct{} // cap 1: a checksum arrived

	received chan struct{} // closed at the first <received/>
	ended    chan struct{} // closed when the session ended
	stop     chan struct{}
	wg       sync.WaitGroup
}

func (a *App) watch(s *jingle.Session, content string) *watcher {
	w := &watcher{
		content: content, log: a.log.With("sid", s.SID()),
		gotSum: make(chan struct{}, 1), received: make(chan struct{}),
		ended: make(chan struct{}), stop: make(chan struct{}),
	}
	w.wg.Add(1)
	go w.run(s)
	return w
}

func (w *watcher) close() {
	close(w.stop)
	w.wg.Wait()
}

func (w *watcher) run(s *jingle.Session) {
	defer w.wg.Done()
	gotReceived := false
	defer func() {
		w.mu.Lock()
		if w.term == nil {
			// Events closed without a TerminatedEvent (dropped or
			// stopped): the session's own reason.
			select {
			case <-s.Done():
				w.term = &jingle.TerminatedEvent{Reason: s.Reason()}
			default:
			}
		}
		w.mu.Unlock()
	}()
	for {
		select {
		case <-w.stop:
			return
		case ev, ok := <-s.Events():
			if !ok {
				w.setEnded(&jingle.TerminatedEvent{Reason: s.Reason()})
				return
			}
			switch e := ev.(type) {
			case *jingle.SessionInfoEvent:
				for _, p := range e.Payload {
					switch ClassifyInfo(p) {
					case InfoChecksum:
						cs, err := ParseChecksum(p)
						if err != nil {
							w.log.Info("bad checksum", "err", err)
							continue
						}
						if cs.Name != "" && cs.Name != w.content {
							continue
						}
						w.addSums(cs.File.HashValues())
					case InfoReceived:
						r, err := ParseReceived(p)
						if err == nil && (r.Name == "" || r.Name == w.content) && !gotReceived {
							gotReceived = true
							close(w.received)
						}
					}
				}
			case *jingle.TerminatedEvent:
				w.setEnded(e)
			}
		}
	}
}

func (w *watcher) setEnded(e *jingle.TerminatedEvent) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.term != nil && isClosed(w.ended) {
		return
	}
	w.term = e
	close(w.ended)
}

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// addSums records checksum hashes, one value per algorithm (the last wins),
// bounded.
func (w *watcher) addSums(hs []Hash) {
	w.mu.Lock()
	for _, h := range hs {
		replaced := false
		for i := range w.sums {
			if w.sums[i].Algo == h.Algo {
				w.sums[i] = h
				replaced = true
			}
		}
		if !replaced && len(w.sums) < maxHashes {
			w.sums = append(w.sums, h)
		}
	}
	w.mu.Unlock()
	select {
	case w.gotSum <- struct{}{}:
	default:
	}
}

func (w *watcher) hashes() []Hash {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]Hash(nil), w.sums...)
}

// endErr is the error of the session's end (nil for success), valid once
// ended is closed.
func (w *watcher) endErr() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.term == nil {
		return nil
	}
	return reasonErr(w.term.Reason, w.term.ByPeer)
}

package ice

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/pion/webrtc/v4"
	"github.com/xjingle/xjingle/jingle"
)

// ErrDTLS means the DTLS handshake failed, which includes a peer
// certificate that does not match the fingerprint it announced (XEP-0320
// §3). It does not wrap jingle.ErrTransportFailed: an authentication failure
// is a security error, not a reason to try another transport silently.
var ErrDTLS = fmt.Errorf("ice: DTLS handshake or fingerprint check failed: %w", jingle.ErrTransportSecurity)

// Factory makes ICE data channel transports of one wire form. It
// implements jingle.TransportFactory.
type Factory struct {
	ns  string
	cfg config
	api *webrtc.API
}

var _ jingle.TransportFactory = (*Factory)(nil)

// NewFactory returns the factory of the XEP-0343 transport in the form
// Conversations sends: <transport xmlns='urn:xmpp:jingle:transports:webrtc-datachannel:1'
// sctp-port max-message-size> wrapping an ICE-UDP transport.
func NewFactory(opts ...Option) (*Factory, error) { return newFactory(NSDataChannel, opts) }

// NewICEUDPFactory returns the factory of the XEP-0343 v0.3 form StanzaJS
// uses: an ICE-UDP transport carrying <sctpmap/> next to the DTLS
// fingerprint. It answers only offers that carry <sctpmap/>; a Manager that
// also serves RTP (which uses ICE-UDP without a data channel) must not
// register it.
func NewICEUDPFactory(opts ...Option) (*Factory, error) { return newFactory(NSICEUDP, opts) }

func newFactory(ns string, opts []Option) (*Factory, error) {
	cfg := newConfig(opts)
	api, err := cfg.api()
	if err != nil {
		return nil, fmt.Errorf("ice: factory: %w", err)
	}
	return &Factory{ns: ns, cfg: cfg, api: api}, nil
}

// Namespace implements jingle.TransportFactory.
func (f *Factory) Namespace() string { return f.ns }

// NewTransport implements jingle.TransportFactory.
func (f *Factory) NewTransport(link jingle.TransportLink) (jingle.Transport, error) {
	ctx, cancel := context.WithCancel(context.Background())
	return &Transport{
		f: f, link: link, log: link.Logger().With("transport", "ice", "sid", link.SID(), "content", link.ContentName()),
		ctx: ctx, cancel: cancel,
		sent:  map[string]bool{},
		kick:  make(chan struct{}, 1),
		ready: make(chan struct{}),
	}, nil
}

// Transport is the ICE data channel transport of one content. It
// implements jingle.Transport; see the package comment for the flow.
type Transport struct {
	f      *Factory
	link   jingle.TransportLink
	log    *slog.Logger
	ctx    context.Context // ends with Close
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu          sync.Mutex
	pc          *webrtc.PeerConnection
	local       sessionParams
	remoteSet   bool
	remoteUfrag string
	remote      peerTransport // the peer's offer/answer: fingerprint, SCTP port
	remoteCount int
	generation  uint32 // ICE generation: restarts so far (XEP-0176 §5.9)
	restarting  bool   // our restart offer awaits the peer's new credentials
	restartDone chan error
	// peerRestarting: we answered the peer's restart and ICE has not
	// been connected since.
	peerRestarting bool
	rmu            sync.Mutex      // serialises restarts, ours and the peer's
	oldUfrags      map[string]bool // the peer's ufrags before its restarts
	peerRestart    int             // restarts the peer started
	announce       bool            // send our credentials in a transport-info even without candidates
	peerMaxMsg     uint64
	pending        []webrtc.ICECandidateInit // before the remote description
	queue          []Candidate               // local candidates to trickle
	sent           map[string]bool           // local candidates already announced
	trickling      bool                      // the peer has our offer/answer
	gathered       bool                      // gathering complete
	eocSent        bool
	timer          *time.Timer
	conn           *Conn
	connTaken      bool
	err            error
	ready          chan struct{} // closed once conn or err is set
	closed         bool
	kick           chan struct{}
}

var _ jingle.Transport = (*Transport)(nil)

// newPC creates the PeerConnection and its callbacks.
func (t *Transport) newPC() (*webrtc.PeerConnection, error) {
	pc, err := t.f.api.NewPeerConnection(t.f.cfg.rtcConfig())
	if err != nil {
		return nil, fmt.Errorf("ice: new peer connection: %w", err)
	}
	pc.OnICECandidate(func(c *webrtc.ICECandidate) {
		if c == nil {
			t.mu.Lock()
			t.gathered = true
			t.mu.Unlock()
			t.wake()
			return
		}
		jc, err := fromPion(c)
		if err != nil {
			t.log.Debug("ice: local candidate not mappable", "candidate", c.String(), "err", err)
			return
		}
		t.mu.Lock()
		t.addLocalLocked(jc)
		t.mu.Unlock()
		t.wake()
	})
	pc.OnICEConnectionStateChange(func(s webrtc.ICEConnectionState) {
		t.log.Debug("ice: connection state", "state", s.String())
		if s == webrtc.ICEConnectionStateConnected {
			t.restartConnected()
		}
		if s == webrtc.ICEConnectionStateFailed {
			t.fail(fmt.Errorf("ice: connectivity checks failed: %w", jingle.ErrTransportFailed))
		}
	})
	pc.SCTP().Transport().OnStateChange(func(s webrtc.DTLSTransportState) {
		if s == webrtc.DTLSTransportStateFailed {
			t.fail(ErrDTLS)
		}
	})
	pc.OnDataChannel(func(dc *webrtc.DataChannel) { t.watch(dc) })
	t.mu.Lock()
	t.pc = pc
	t.mu.Unlock()
	return pc, nil
}

// watch waits for dc to open and makes it the transport's conn.
func (t *Transport) watch(dc *webrtc.DataChannel) {
	dc.OnOpen(func() {
		raw, err := dc.DetachWithDeadline()
		if err != nil {
			t.fail(fmt.Errorf("ice: detach data channel: %w", err))
			return
		}
		t.mu.Lock()
		if t.conn != nil || t.closed || t.err != nil {
			t.mu.Unlock()
			// One stream per content: a second channel is closed.
			raw.Close()
			return
		}
		size := t.f.cfg.msgSize
		m := t.peerMaxMsg
		if m == 0 {
			// No max-message-size (the v0.3 form): RFC 8841 §6.1
			// says assume 64 KiB; Pion enforces 65535 bytes.
			m = defaultPeerMaxMsg
		}
		if uint64(size) > m {
			size = int(m)
		}
		local, remote := t.addrsLocked()
		t.conn = newConn(dc, raw, size, local, remote, nil)
		t.conn.restart = t.Restart
		if t.timer != nil {
			t.timer.Stop()
		}
		close(t.ready)
		t.mu.Unlock()
		if f := t.f.cfg.onConnect; f != nil {
			la, _ := local.(*Addr)
			ra, _ := remote.(*Addr)
			f(la, ra)
		}
	})
}

func (t *Transport) addrsLocked() (net.Addr, net.Addr) {
	local, remote := &Addr{}, &Addr{}
	pair, err := t.pc.SCTP().Transport().ICETransport().GetSelectedCandidatePair()
	if err == nil && pair != nil {
		local = &Addr{IP: net.ParseIP(pair.Local.Address), Port: int(pair.Local.Port), Type: pair.Local.Typ.String()}
		remote = &Addr{IP: net.ParseIP(pair.Remote.Address), Port: int(pair.Remote.Port), Type: pair.Remote.Typ.String()}
	}
	return local, remote
}

// fail records the transport's failure, once.
func (t *Transport) fail(err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.conn != nil || t.err != nil {
		return
	}
	t.err = err
	close(t.ready)
}

func (t *Transport) wake() {
	select {
	case t.kick <- struct{}{}:
	default:
	}
}

// addLocalLocked queues a local candidate unless it was announced already.
func (t *Transport) addLocalLocked(c Candidate) {
	key := c.SDP()
	if t.sent[key] {
		return
	}
	t.sent[key] = true
	c.Generation = t.generation
	t.queue = append(t.queue, c)
}

// describe sets the local description, waits for gathering (bounded) and
// returns our transport parameters with the candidates gathered so far.
func (t *Transport) describe(ctx context.Context, pc *webrtc.PeerConnection, desc webrtc.SessionDescription) (sessionParams, error) {
	done := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(desc); err != nil {
		return sessionParams{}, fmt.Errorf("ice: set local description: %w", err)
	}
	if w := t.f.cfg.gatherWait; w > 0 {
		timer := time.NewTimer(w)
		select {
		case <-done:
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
			return sessionParams{}, ctx.Err()
		}
		timer.Stop()
	}
	p, err := localParams(pc.LocalDescription().SDP)
	if err != nil {
		return sessionParams{}, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, c := range p.ice.Candidates {
		t.addLocalLocked(c)
	}
	if t.f.cfg.gatherWait == 0 {
		// Pure trickle (what StanzaJS does): no candidate in the
		// offer/answer, all in transport-info.
		p.ice.Candidates = nil
		t.local = p
		return p, nil
	}
	// Everything gathered so far goes in the offer/answer.
	p.ice.Candidates = t.queue
	t.queue = nil
	select {
	case <-done:
		t.gathered = true
		t.eocSent = true // complete candidate list in the offer/answer
	default:
	}
	t.local = p
	return p, nil
}

// element returns our transport element in the factory's form.
func (t *Transport) element(ice ICEUDP) jingle.Element {
	if t.f.ns == NSDataChannel {
		dc := &DataChannel{SCTPPort: defaultSCTPPort, MaxMessageSize: recvMessageSize, ICE: ice}
		return dc.Element()
	}
	return ice.Element()
}

// parse reads a peer's transport element in the factory's form.
func (t *Transport) parse(el jingle.Element) (*peerTransport, error) {
	if t.f.ns == NSDataChannel {
		dc, err := ParseDataChannel(el)
		if err != nil {
			return nil, err
		}
		return &peerTransport{ice: dc.ICE, sctpPort: dc.SCTPPort, maxMsg: dc.MaxMessageSize}, nil
	}
	it, err := ParseICEUDP(el)
	if err != nil {
		return nil, err
	}
	p := &peerTransport{ice: *it}
	if it.SCTPMap != nil {
		p.sctpPort = it.SCTPMap.Number
	}
	return p, nil
}

// peerTransport is a parsed peer transport in either form.
type peerTransport struct {
	ice      ICEUDP
	sctpPort uint16
	maxMsg   uint64
}

// Offer implements jingle.Transport: it creates the PeerConnection and the
// data channel (labelled with the content name, XEP-0343 §4.1) and returns
// our ICE credentials, DTLS fingerprint (setup actpass, XEP-0320 §3) and
// the candidates gathered within the gather wait.
func (t *Transport) Offer(ctx context.Context) (jingle.Element, error) {
	pc, err := t.newPC()
	if err != nil {
		return jingle.Element{}, err
	}
	ordered := true
	dc, err := pc.CreateDataChannel(t.link.ContentName(), &webrtc.DataChannelInit{Ordered: &ordered})
	if err != nil {
		return jingle.Element{}, fmt.Errorf("ice: offer: create data channel: %w", err)
	}
	t.watch(dc)
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		return jingle.Element{}, fmt.Errorf("ice: offer: %w", err)
	}
	p, err := t.describe(ctx, pc, offer)
	if err != nil {
		return jingle.Element{}, fmt.Errorf("ice: offer: %w", err)
	}
	el := t.element(t.withSCTPMap(p.ice))
	t.startTrickle()
	return el, nil
}

// withSCTPMap adds the v0.3 <sctpmap/> for the ICE-UDP form.
func (t *Transport) withSCTPMap(ice ICEUDP) ICEUDP {
	if t.f.ns == NSICEUDP {
		ice.SCTPMap = &SCTPMap{Number: defaultSCTPPort, Protocol: "webrtc-datachannel", Streams: 1024}
	}
	return ice
}

// Accept implements jingle.Transport: it answers the peer's offer with our
// parameters (DTLS setup active: we are the DTLS client). An offer without a
// fingerprint, or an ICE-UDP offer without <sctpmap/> (not a data channel),
// is refused.
func (t *Transport) Accept(ctx context.Context, offer jingle.Element) (jingle.Element, error) {
	p, err := t.parse(offer)
	if err != nil {
		return jingle.Element{}, badRequest(err)
	}
	if t.f.ns == NSICEUDP && p.ice.SCTPMap == nil {
		return jingle.Element{}, fmt.Errorf("ice: accept: ICE-UDP offer without <sctpmap/> is not a data channel: %w", jingle.ErrTransportFailed)
	}
	if len(p.ice.Candidates) > MaxRemoteCandidates {
		return jingle.Element{}, tooMany(len(p.ice.Candidates))
	}
	remote, err := remoteSDP(sessionParams{ice: p.ice, sctpPort: p.sctpPort, maxMessageSize: p.maxMsg})
	if err != nil {
		return jingle.Element{}, badRequest(err)
	}
	pc, err := t.newPC()
	if err != nil {
		return jingle.Element{}, err
	}
	t.mu.Lock()
	t.peerMaxMsg = p.maxMsg
	t.mu.Unlock()
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: remote}); err != nil {
		return jingle.Element{}, badRequest(fmt.Errorf("ice: accept: remote description: %w", err))
	}
	t.remoteDescribed(p)
	answer, err := pc.CreateAnswer(nil)
	if err != nil {
		return jingle.Element{}, fmt.Errorf("ice: accept: %w", err)
	}
	lp, err := t.describe(ctx, pc, answer)
	if err != nil {
		return jingle.Element{}, fmt.Errorf("ice: accept: %w", err)
	}
	el := t.element(t.withSCTPMap(lp.ice))
	t.startTrickle()
	t.setTrickling()
	return el, nil
}

// Accepted implements jingle.Transport: the peer's answer.
func (t *Transport) Accepted(ctx context.Context, answer jingle.Element) error {
	p, err := t.parse(answer)
	if err != nil {
		return badRequest(err)
	}
	if len(p.ice.Candidates) > MaxRemoteCandidates {
		return tooMany(len(p.ice.Candidates))
	}
	remote, err := remoteSDP(sessionParams{ice: p.ice, sctpPort: p.sctpPort, maxMessageSize: p.maxMsg})
	if err != nil {
		return badRequest(err)
	}
	t.mu.Lock()
	pc := t.pc
	t.peerMaxMsg = p.maxMsg
	t.mu.Unlock()
	if pc == nil {
		return fmt.Errorf("ice: answer before offer")
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: remote}); err != nil {
		return badRequest(fmt.Errorf("ice: accepted: remote description: %w", err))
	}
	t.remoteDescribed(p)
	t.setTrickling()
	return nil
}

// remoteDescribed records the peer's credentials, adds the candidates that
// arrived before its description and arms the connect timeout.
func (t *Transport) remoteDescribed(p *peerTransport) {
	t.mu.Lock()
	t.remoteSet = true
	t.remoteUfrag = p.ice.Ufrag
	t.remote = *p
	t.remoteCount += len(p.ice.Candidates)
	pending := t.pending
	t.pending = nil
	pc := t.pc
	if t.conn == nil && t.err == nil && !t.closed {
		d := t.f.cfg.connectTimeout
		t.timer = time.AfterFunc(d, func() {
			t.fail(fmt.Errorf("ice: no data channel within %v: %w", d, jingle.ErrTransportFailed))
		})
	}
	t.mu.Unlock()
	for _, c := range pending {
		if err := pc.AddICECandidate(c); err != nil {
			t.log.Debug("ice: early remote candidate refused", "candidate", c.Candidate, "err", err)
		}
	}
}

func (t *Transport) setTrickling() {
	t.mu.Lock()
	t.trickling = true
	t.mu.Unlock()
	t.wake()
}

// Info implements jingle.Transport: trickled remote candidates (XEP-0176
// §5.5) and the end-of-candidates indication. A malformed candidate is a
// bad-request and changes nothing; the session goes on.
func (t *Transport) Info(ctx context.Context, el jingle.Element) error {
	p, err := t.parse(el)
	if err != nil {
		return badRequest(err)
	}
	t.mu.Lock()
	if t.remoteSet && p.ice.Ufrag != "" && p.ice.Ufrag != t.remoteUfrag && !t.oldUfrags[p.ice.Ufrag] {
		// XEP-0176 §5.9: new ufrag and pwd are an ICE restart, or
		// the peer's answer to ours.
		t.mu.Unlock()
		return t.remoteRestart(p)
	}
	defer t.mu.Unlock()
	if t.oldUfrags[p.ice.Ufrag] {
		return nil // a late candidate of a generation restarted since
	}
	if t.remoteCount+len(p.ice.Candidates) > MaxRemoteCandidates {
		return tooMany(t.remoteCount + len(p.ice.Candidates))
	}
	var inits []webrtc.ICECandidateInit
	for _, c := range p.ice.Candidates {
		if c.Component != 1 || c.Protocol != "udp" {
			continue // a data channel has one component; XEP-0176 is UDP
		}
		in, err := c.pionInit(p.ice.Ufrag)
		if err != nil {
			return badRequest(err)
		}
		inits = append(inits, in)
	}
	t.remoteCount += len(p.ice.Candidates)
	if !t.remoteSet {
		t.pending = append(t.pending, inits...)
		return nil
	}
	for _, in := range inits {
		if err := t.pc.AddICECandidate(in); err != nil {
			return badRequest(fmt.Errorf("ice: remote candidate: %w", err))
		}
	}
	return nil
}

// startTrickle starts the goroutine that sends our late candidates once the
// peer has our offer or answer (for the offer: once it answered, so that a
// transport-info never overtakes a transport-replace, XEP-0166 §7.2.15).
func (t *Transport) startTrickle() {
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		for {
			select {
			case <-t.ctx.Done():
				return
			case <-t.kick:
			}
			for {
				t.mu.Lock()
				if !t.trickling || t.closed {
					t.mu.Unlock()
					break
				}
				var batch []Candidate
				n := min(len(t.queue), MaxCandidates)
				batch, t.queue = t.queue[:n:n], t.queue[n:]
				eoc := len(t.queue) == 0 && t.gathered && !t.eocSent
				if eoc {
					t.eocSent = true
				}
				announce := t.announce
				t.announce = false
				ice := ICEUDP{Ufrag: t.local.ice.Ufrag, Pwd: t.local.ice.Pwd, Candidates: batch, GatheringComplete: eoc}
				t.mu.Unlock()
				if len(batch) == 0 && !eoc && !announce {
					break
				}
				ctx, cancel := context.WithTimeout(t.ctx, 30*time.Second)
				err := t.link.SendTransportInfo(ctx, t.element(ice))
				cancel()
				if err != nil {
					t.log.Debug("ice: transport-info", "err", err)
					if t.ctx.Err() != nil {
						return
					}
				}
			}
		}
	}()
}

// Conn implements jingle.Transport: it waits for the data channel to open
// (the caller owns the returned *Conn), for failure (an error wrapping
// jingle.ErrTransportFailed, or ErrDTLS), ctx or Close.
func (t *Transport) Conn(ctx context.Context) (net.Conn, error) {
	select {
	case <-t.ready:
	case <-ctx.Done():
		return nil, fmt.Errorf("ice: conn: %w", ctx.Err())
	case <-t.ctx.Done():
		return nil, fmt.Errorf("ice: conn: transport closed: %w", jingle.ErrTransportFailed)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.err != nil {
		return nil, t.err
	}
	if t.connTaken {
		return nil, errors.New("ice: conn already taken")
	}
	t.connTaken = true
	return t.conn, nil
}

// Close implements jingle.Transport: it closes the PeerConnection (which
// ends the data channel and any Conn handed out) and waits for every
// goroutine the transport and Pion started for it.
func (t *Transport) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	pc, conn := t.pc, t.conn
	if t.timer != nil {
		t.timer.Stop()
	}
	if t.err == nil && t.conn == nil {
		t.err = fmt.Errorf("ice: transport closed: %w", jingle.ErrTransportFailed)
		close(t.ready)
	}
	t.mu.Unlock()
	t.cancel()
	var err error
	if conn != nil {
		conn.closeWith(0)
	}
	if pc != nil {
		err = pc.GracefulClose()
	}
	if conn != nil {
		<-conn.loopDone
	}
	t.wg.Wait()
	if err != nil {
		return fmt.Errorf("ice: close: %w", err)
	}
	return nil
}

func badRequest(err error) error {
	var se *jingle.StanzaError
	if errors.As(err, &se) {
		return err
	}
	return fmt.Errorf("%w (%w)", jingle.ErrBadRequest.WithText("%v", err), err)
}

func tooMany(n int) error {
	return fmt.Errorf("%w (%w)", jingle.ErrNotAcceptable.WithText("%d candidates, at most %d", n, MaxRemoteCandidates), ErrTooManyCandidates)
}

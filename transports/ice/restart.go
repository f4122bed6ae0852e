package ice

import (
	"context"
	"errors"
	"fmt"

	"github.com/pion/webrtc/v4"
	"github.com/xjingle/xjingle/jingle"
)

// MaxPeerRestarts bounds the ICE restarts a peer may start in one
// transport: each one makes us gather candidates again.
const MaxPeerRestarts = 16

// ErrRestart means an ICE restart could not start: no negotiated session
// yet, one already under way, or the transport closed.
var ErrRestart = errors.New("ice: cannot restart ICE now")

// Restart restarts ICE (XEP-0176 §5.9; RFC 8445 §9): Pion makes an offer
// with new ICE credentials and gathers new candidates, which go to the peer
// in transport-info with the new ufrag and pwd and a higher generation; the
// peer answers the same way with its new credentials. The DTLS and SCTP
// association, and so the data channel and any Conn, carry on over the new
// candidate pair. Restart returns once ICE is connected again, or with
// ctx's error; it fails with ErrRestart when the transport has not been
// negotiated yet or a restart of ours is already under way. A restart the
// peer started and we answered, not yet connected, is joined rather than
// doubled. When both sides restart at once (glare), each takes the
// other's new credentials as the answer to its own offer, which leaves both
// with the same new pair of credentials (TestICERestartGlare).
func (t *Transport) Restart(ctx context.Context) error {
	t.rmu.Lock()
	t.mu.Lock()
	if !t.remoteSet || t.pc == nil || t.closed || t.restarting {
		t.mu.Unlock()
		t.rmu.Unlock()
		return ErrRestart
	}
	pc := t.pc
	done := make(chan error, 1)
	if t.peerRestarting {
		// The peer's restart is under way (we answered it, maybe not
		// announced yet): ours joins it rather than offering again
		// over an answer the peer has not seen.
		t.restartDone = done
		t.mu.Unlock()
		t.rmu.Unlock()
		return t.waitRestart(ctx, done)
	}
	t.restarting, t.restartDone = true, done
	t.beginGenerationLocked()
	t.mu.Unlock()

	offer, err := pc.CreateOffer(&webrtc.OfferOptions{ICERestart: true})
	if err == nil {
		err = pc.SetLocalDescription(offer)
	}
	if err == nil {
		err = t.endGeneration(pc)
	}
	t.rmu.Unlock()
	if err != nil {
		t.mu.Lock()
		t.restarting, t.restartDone, t.trickling = false, nil, true
		t.mu.Unlock()
		return fmt.Errorf("ice: restart: %w", err)
	}
	t.log.Debug("ice: restart offered", "generation", t.Generation())
	return t.waitRestart(ctx, done)
}

// waitRestart waits for ICE to be connected again after a restart.
func (t *Transport) waitRestart(ctx context.Context, done chan error) error {
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("ice: restart: %w", ctx.Err())
	case <-t.ctx.Done():
		return fmt.Errorf("ice: restart: transport closed: %w", ErrRestart)
	}
}

// Generation is the transport's ICE generation: the number of restarts so
// far, ours and the peer's.
func (t *Transport) Generation() uint32 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.generation
}

// Ufrags returns the ICE username fragments in use, ours and the peer's
// (diagnostics: they change with every restart).
func (t *Transport) Ufrags() (local, remote string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.local.ice.Ufrag, t.remoteUfrag
}

// SelectedPair returns the candidate pair ICE uses now (RFC 8445 §8.1.1),
// or nils before one is selected. Unlike Conn.LocalAddr and RemoteAddr,
// which are fixed when the channel opens, it follows restarts.
func (t *Transport) SelectedPair() (local, remote *Addr) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.pc == nil {
		return nil, nil
	}
	pair, err := t.pc.SCTP().Transport().ICETransport().GetSelectedCandidatePair()
	if err != nil || pair == nil {
		return nil, nil
	}
	la, ra := t.addrsLocked()
	return la.(*Addr), ra.(*Addr)
}

// beginGenerationLocked holds trickling back and forgets the previous
// generation's unsent candidates until the new credentials are known.
func (t *Transport) beginGenerationLocked() {
	t.trickling = false
	t.queue = nil
	t.generation++
	t.gathered, t.eocSent = false, false
}

// endGeneration takes our new credentials from the local description and
// lets the trickle goroutine announce them (with the candidates gathered
// since) in a transport-info.
func (t *Transport) endGeneration(pc *webrtc.PeerConnection) error {
	lp, err := localParams(pc.LocalDescription().SDP)
	if err != nil {
		return err
	}
	t.mu.Lock()
	t.local.ice.Ufrag, t.local.ice.Pwd = lp.ice.Ufrag, lp.ice.Pwd
	for _, c := range lp.ice.Candidates {
		t.addLocalLocked(c)
	}
	t.announce, t.trickling = true, true
	t.mu.Unlock()
	t.wake()
	return nil
}

// restartConnected ends a restart of ours once its answer arrived and ICE
// is connected again.
func (t *Transport) restartConnected() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.restarting {
		return // connected on the old pair; our offer is unanswered
	}
	t.peerRestarting = false
	if t.restartDone != nil {
		t.restartDone <- nil
		t.restartDone = nil
	}
}

// remoteRestart handles a transport-info with new credentials: the answer
// to our restart, or a restart the peer started (which we answer with new
// credentials of our own).
func (t *Transport) remoteRestart(p *peerTransport) error {
	if p.ice.Pwd == "" {
		return badRequest(fmt.Errorf("%w: new ufrag without pwd (XEP-0176 §5.9)", ErrMalformed))
	}
	// Restart holds rmu until its offer is set and announced, so an
	// answer is never applied before the offer it answers.
	t.rmu.Lock()
	defer t.rmu.Unlock()
	t.mu.Lock()
	if t.closed || t.pc == nil {
		t.mu.Unlock()
		return jingle.ErrTransportFailed
	}
	if t.restarting {
		// Our own restart started meanwhile: both sides offered at
		// once. Each side takes the other's new credentials as the
		// answer to its own, which leaves both with the same pair of
		// new credentials.
		t.mu.Unlock()
		return t.restartAnswered(p)
	}
	if t.peerRestart >= MaxPeerRestarts {
		t.mu.Unlock()
		return jingle.ErrNotAcceptable.WithText("more than %d ICE restarts", MaxPeerRestarts)
	}
	t.peerRestart++
	t.peerRestarting = true
	fp := t.remote.ice.Fingerprint
	pc := t.pc
	t.beginGenerationLocked()
	t.mu.Unlock()
	sdp, err := t.restartSDP(p, fp)
	if err == nil {
		err = pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: sdp})
	}
	var ans webrtc.SessionDescription
	if err == nil {
		ans, err = pc.CreateAnswer(nil)
	}
	if err == nil {
		err = pc.SetLocalDescription(ans)
	}
	if err != nil {
		t.mu.Lock()
		t.trickling = true
		t.mu.Unlock()
		return badRequest(fmt.Errorf("ice: peer's restart: %w", err))
	}
	t.newRemoteUfrag(p)
	if err := t.endGeneration(pc); err != nil {
		return fmt.Errorf("ice: peer's restart: %w", err)
	}
	t.log.Debug("ice: restart answered", "generation", t.Generation())
	return nil
}

// restartAnswered applies the peer's new credentials to our restart offer.
func (t *Transport) restartAnswered(p *peerTransport) error {
	t.mu.Lock()
	fp := *t.remote.ice.Fingerprint
	if fp.Setup == "actpass" {
		// The peer offered first: in an answer its role is the
		// opposite of ours (RFC 4145 §4).
		fp.Setup = "passive"
		if t.local.ice.Fingerprint != nil && t.local.ice.Fingerprint.Setup == "passive" {
			fp.Setup = "active"
		}
	}
	pc := t.pc
	t.mu.Unlock()
	sdp, err := t.restartSDP(p, &fp)
	if err == nil {
		err = pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: sdp})
	}
	if err != nil {
		t.mu.Lock()
		if t.restartDone != nil {
			t.restartDone <- fmt.Errorf("ice: restart answer: %w", err)
			t.restartDone = nil
		}
		t.restarting = false
		t.mu.Unlock()
		return badRequest(fmt.Errorf("ice: restart answer: %w", err))
	}
	t.newRemoteUfrag(p)
	t.mu.Lock()
	t.restarting = false
	t.mu.Unlock()
	if pc.ICEConnectionState() == webrtc.ICEConnectionStateConnected {
		// Pion may already have a pair of the new generation (its
		// state never left connected): done.
		t.restartConnected()
	}
	return nil
}

// newRemoteUfrag records the peer's new credentials; candidates of the old
// generation that arrive late are dropped.
func (t *Transport) newRemoteUfrag(p *peerTransport) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.oldUfrags == nil {
		t.oldUfrags = map[string]bool{}
	}
	if len(t.oldUfrags) < MaxPeerRestarts*2 {
		t.oldUfrags[t.remoteUfrag] = true
	}
	t.remoteUfrag = p.ice.Ufrag
	t.remoteCount = len(p.ice.Candidates)
}

// restartSDP is the peer's description for a restart: its new credentials
// and candidates, with the DTLS and SCTP parameters of the session.
func (t *Transport) restartSDP(p *peerTransport, fp *Fingerprint) (string, error) {
	t.mu.Lock()
	port, maxMsg := t.remote.sctpPort, t.remote.maxMsg
	t.mu.Unlock()
	return remoteSDP(sessionParams{
		ice:            ICEUDP{Ufrag: p.ice.Ufrag, Pwd: p.ice.Pwd, Fingerprint: fp, Candidates: p.ice.Candidates},
		sctpPort:       port,
		maxMessageSize: maxMsg,
	})
}

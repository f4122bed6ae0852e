package ice

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"

	"github.com/pion/webrtc/v4"
)

// ProbeReport is what Probe found: the candidates ICE gathers with the
// configured interfaces and STUN/TURN servers, and whether each TURN server
// gave us a relayed address.
type ProbeReport struct {
	// Candidates are every local candidate gathered (RFC 8445 §5.1.1).
	Candidates []Candidate `json:"-"`
	// Host, Srflx and Relay count the candidates by type.
	Host  int `json:"host"`
	Srflx int `json:"srflx"`
	Relay int `json:"relay"`
	// Mapped are the server-reflexive addresses (ip:port), the address a
	// STUN server saw us at: the NAT's public side.
	Mapped []string `json:"mapped,omitempty"`
	// Complete reports whether gathering finished before ctx ended.
	Complete bool `json:"complete"`
	// TURN has one entry per TURN server URL.
	TURN []TURNProbe `json:"turn,omitempty"`
}

// TURNProbe is one TURN server's answer.
type TURNProbe struct {
	URL string `json:"url"`
	// Accepted: the server allocated a relayed address for our
	// credentials (RFC 8656 §7.3).
	Accepted bool `json:"accepted"`
	// Relayed is the relayed address (ip:port) when Accepted.
	Relayed string `json:"relayed,omitempty"`
	// Err says why not.
	Err string `json:"error,omitempty"`
}

// Probe gathers ICE candidates as a transport made with opts would (same
// interfaces, filters, STUN/TURN servers and policy) and reports them; it
// then gathers once per TURN server with relay candidates only, to tell
// which servers accepted our credentials. Nothing is sent to a peer. ctx
// bounds the whole probe: a server that does not answer costs at most
// that.
func Probe(ctx context.Context, opts ...Option) (*ProbeReport, error) {
	cfg := newConfig(opts)
	api, err := cfg.api()
	if err != nil {
		return nil, fmt.Errorf("ice: probe: %w", err)
	}
	cands, complete, err := gather(ctx, api, cfg.rtcConfig())
	if err != nil {
		return nil, fmt.Errorf("ice: probe: %w", err)
	}
	r := &ProbeReport{Candidates: cands, Complete: complete}
	for _, c := range cands {
		switch c.Type {
		case "host":
			r.Host++
		case "srflx":
			r.Srflx++
			r.Mapped = append(r.Mapped, net.JoinHostPort(c.IP, strconv.Itoa(int(c.Port))))
		case "relay":
			r.Relay++
		}
	}
	var (
		wg sync.WaitGroup
		mu sync.Mutex
	)
	for _, s := range cfg.iceServers {
		for _, u := range s.URLs {
			if !strings.HasPrefix(u, "turn:") && !strings.HasPrefix(u, "turns:") {
				continue
			}
			i := len(r.TURN)
			r.TURN = append(r.TURN, TURNProbe{URL: u})
			one := webrtc.ICEServer{URLs: []string{u}, Username: s.Username, Credential: s.Credential, CredentialType: s.CredentialType}
			wg.Go(func() {
				p := TURNProbe{URL: u}
				cands, _, err := gather(ctx, api, webrtc.Configuration{ICEServers: []webrtc.ICEServer{one}, ICETransportPolicy: webrtc.ICETransportPolicyRelay})
				switch {
				case err != nil:
					p.Err = err.Error()
				case len(cands) == 0:
					p.Err = "no relayed address: credentials refused, or the server is unreachable"
				default:
					p.Accepted = true
					p.Relayed = net.JoinHostPort(cands[0].IP, strconv.Itoa(int(cands[0].Port)))
				}
				mu.Lock()
				r.TURN[i] = p
				mu.Unlock()
			})
		}
	}
	wg.Wait()
	return r, nil
}

// gather runs candidate gathering on a throwaway PeerConnection with one
// data channel until it completes or ctx ends.
func gather(ctx context.Context, api *webrtc.API, rc webrtc.Configuration) ([]Candidate, bool, error) {
	pc, err := api.NewPeerConnection(rc)
	if err != nil {
		return nil, false, fmt.Errorf("new peer connection: %w", err)
	}
	defer pc.Close()
	var (
		mu    sync.Mutex
		cands []Candidate
	)
	pc.OnICECandidate(func(c *webrtc.ICECandidate) {
		if c == nil {
			return
		}
		if jc, err := fromPion(c); err == nil {
			mu.Lock()
			cands = append(cands, jc)
			mu.Unlock()
		}
	})
	if _, err := pc.CreateDataChannel("probe", nil); err != nil {
		return nil, false, fmt.Errorf("data channel: %w", err)
	}
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		return nil, false, fmt.Errorf("offer: %w", err)
	}
	done := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		return nil, false, fmt.Errorf("local description: %w", err)
	}
	complete := false
	select {
	case <-done:
		complete = true
	case <-ctx.Done():
	}
	mu.Lock()
	defer mu.Unlock()
	return append([]Candidate(nil), cands...), complete, nil
}

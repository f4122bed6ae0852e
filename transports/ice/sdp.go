package ice

import (
	"crypto/rand"
	"encoding/base32"
	"fmt"
	"strconv"
	"strings"

	pice "github.com/pion/ice/v4"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

// This file is the one mapping layer between the Jingle XML (XEP-0176,
// XEP-0320, XEP-0343) and Pion's SDP and candidate types. XEP-0176 §5.3 and
// XEP-0320 §3 give the attribute ↔ SDP line correspondence used here.

// sdpMid is the media id of the one m=application line. It is private to
// the SDP we exchange with Pion on each side and never on the wire: Jingle
// names the content instead.
const sdpMid = "0"

// defaultSCTPPort is the SCTP port Pion always uses (RFC 8841 §5 default).
const defaultSCTPPort = 5000

// SDP returns the candidate as the value of an SDP a=candidate attribute
// (RFC 8839 §5.1), "candidate:<foundation> <component> ...", the form Pion's
// webrtc.ICECandidateInit carries.
func (c Candidate) SDP() string {
	var b strings.Builder
	fmt.Fprintf(&b, "candidate:%s %d %s %d %s %d typ %s", c.Foundation, c.Component, c.Protocol, c.Priority, c.IP, c.Port, c.Type)
	if c.RelAddr != "" {
		fmt.Fprintf(&b, " raddr %s rport %d", c.RelAddr, c.RelPort)
	}
	if c.Protocol == "tcp" {
		// XEP-0176 has no tcptype; a TCP candidate from XML can only be
		// passive or active, and Pion dials passive ones.
		b.WriteString(" tcptype passive")
	}
	fmt.Fprintf(&b, " generation %d", c.Generation)
	return b.String()
}

// CandidateFromSDP parses an a=candidate value ("candidate:..." with or
// without the "a=" prefix) as Pion does and returns it as a Jingle
// candidate. ID is left empty; the caller assigns one.
func CandidateFromSDP(s string) (Candidate, error) {
	s = strings.TrimPrefix(strings.TrimSpace(s), "a=")
	pc, err := pice.UnmarshalCandidate(s)
	if err != nil {
		return Candidate{}, fmt.Errorf("%w: candidate %q: %v", ErrMalformed, clip(s), err)
	}
	c := Candidate{
		Component:  pc.Component(),
		Foundation: pc.Foundation(),
		IP:         pc.Address(),
		Port:       uint16(pc.Port()),
		Priority:   pc.Priority(),
		Protocol:   strings.ToLower(pc.NetworkType().NetworkShort()),
		Type:       pc.Type().String(),
	}
	if r := pc.RelatedAddress(); r != nil {
		c.RelAddr, c.RelPort = r.Address, uint16(r.Port)
	}
	for _, ext := range pc.Extensions() {
		switch ext.Key {
		case "generation":
			if v, err := strconv.ParseUint(ext.Value, 10, 32); err == nil {
				c.Generation = uint32(v)
			}
		case "network-id":
			if v, err := strconv.ParseUint(ext.Value, 10, 32); err == nil {
				c.Network = uint32(v)
			}
		}
	}
	if err := c.validate(); err != nil {
		return Candidate{}, err
	}
	return c, nil
}

// fromPion converts a candidate Pion gathered.
func fromPion(c *webrtc.ICECandidate) (Candidate, error) {
	out, err := CandidateFromSDP(c.ToJSON().Candidate)
	if err != nil {
		return Candidate{}, err
	}
	out.ID = newID()
	return out, nil
}

// pionInit returns the candidate for PeerConnection.AddICECandidate, after
// Pion itself accepted its syntax.
func (c Candidate) pionInit(ufrag string) (webrtc.ICECandidateInit, error) {
	s := c.SDP()
	if _, err := pice.UnmarshalCandidate(s); err != nil {
		return webrtc.ICECandidateInit{}, fmt.Errorf("%w: candidate %q: %v", ErrMalformed, clip(s), err)
	}
	mid := sdpMid
	idx := uint16(0)
	init := webrtc.ICECandidateInit{Candidate: s, SDPMid: &mid, SDPMLineIndex: &idx}
	if ufrag != "" {
		init.UsernameFragment = &ufrag
	}
	return init, nil
}

var idEnc = base32.StdEncoding.WithPadding(base32.NoPadding)

// newID returns a candidate id (XEP-0176 §5.3: unique per candidate).
func newID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return strings.ToLower(idEnc.EncodeToString(b[:]))
}

// sessionParams is what an SDP description carries besides candidates.
type sessionParams struct {
	ice            ICEUDP // Ufrag, Pwd, Fingerprint, Candidates
	sctpPort       uint16
	maxMessageSize uint64
}

// remoteSDP builds the description Pion needs from the peer's transport
// (XEP-0176 §5.3 ufrag/pwd/candidates, XEP-0320 §3 fingerprint/setup,
// XEP-0343 sctp-port/max-message-size). Candidates for other components
// than 1 are dropped: a data channel has one component.
func remoteSDP(p sessionParams) (string, error) {
	t := p.ice
	if t.Ufrag == "" || t.Pwd == "" {
		return "", fmt.Errorf("%w: transport without ufrag and pwd (XEP-0176 §5.3)", ErrMalformed)
	}
	if t.Fingerprint == nil {
		// XEP-0320 §3: without a fingerprint DTLS cannot be
		// authenticated; never fall back to an unauthenticated channel.
		return "", fmt.Errorf("%w: transport without DTLS fingerprint (XEP-0320)", ErrMalformed)
	}
	port := p.sctpPort
	if port == 0 {
		port = defaultSCTPPort
	}
	var b strings.Builder
	b.WriteString("v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n")
	b.WriteString("a=group:BUNDLE " + sdpMid + "\r\n")
	b.WriteString("m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\n")
	fmt.Fprintf(&b, "a=ice-ufrag:%s\r\na=ice-pwd:%s\r\n", t.Ufrag, t.Pwd)
	fmt.Fprintf(&b, "a=fingerprint:%s %s\r\na=setup:%s\r\n", t.Fingerprint.Hash, t.Fingerprint.Value, t.Fingerprint.Setup)
	fmt.Fprintf(&b, "a=mid:%s\r\na=sctp-port:%d\r\n", sdpMid, port)
	if p.maxMessageSize != 0 {
		fmt.Fprintf(&b, "a=max-message-size:%d\r\n", p.maxMessageSize)
	}
	for _, c := range t.Candidates {
		if c.Component != 1 || c.Protocol != "udp" {
			continue
		}
		b.WriteString("a=" + c.SDP() + "\r\n")
	}
	return b.String(), nil
}

// localParams reads what Pion put in our own description.
func localParams(desc string) (sessionParams, error) {
	var s sdp.SessionDescription
	if err := s.UnmarshalString(desc); err != nil {
		return sessionParams{}, fmt.Errorf("ice: parse local SDP: %w", err)
	}
	var p sessionParams
	fp := &Fingerprint{}
	read := func(attrs []sdp.Attribute) {
		for _, a := range attrs {
			switch a.Key {
			case "ice-ufrag":
				p.ice.Ufrag = a.Value
			case "ice-pwd":
				p.ice.Pwd = a.Value
			case "fingerprint":
				if h, v, ok := strings.Cut(a.Value, " "); ok {
					fp.Hash, fp.Value = strings.ToLower(h), strings.ToUpper(v)
				}
			case "setup":
				fp.Setup = a.Value
			case "sctp-port":
				if v, err := strconv.ParseUint(a.Value, 10, 16); err == nil {
					p.sctpPort = uint16(v)
				}
			case "max-message-size":
				if v, err := strconv.ParseUint(a.Value, 10, 64); err == nil {
					p.maxMessageSize = v
				}
			case "candidate":
				if c, err := CandidateFromSDP("candidate:" + a.Value); err == nil {
					c.ID = newID()
					p.ice.Candidates = append(p.ice.Candidates, c)
				}
			}
		}
	}
	read(s.Attributes)
	for _, m := range s.MediaDescriptions {
		read(m.Attributes)
	}
	if p.ice.Ufrag == "" || p.ice.Pwd == "" || fp.Hash == "" || fp.Setup == "" {
		return sessionParams{}, fmt.Errorf("ice: local SDP without ICE credentials or fingerprint")
	}
	if err := fp.validate(); err != nil {
		return sessionParams{}, fmt.Errorf("ice: local fingerprint: %w", err)
	}
	p.ice.Fingerprint = fp
	return p, nil
}

package socks5

import (
	"encoding/xml"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"strconv"

	"github.com/xjingle/xjingle/jingle"
	"mellium.im/xmpp/jid"
)

// NS is the XEP-0260 transport namespace.
const NS = "urn:xmpp:jingle:transports:s5b:1"

// Bounds on what a peer may send in a <transport/>.
const (
	MaxCandidates = 32  // candidates per element, and per transport in total
	maxCIDLen     = 64  // a cid is an opaque id: Dino uses UUIDs (36)
	maxSIDLen     = 128 // likewise
	maxHostLen    = 253 // a DNS name (RFC 1035) or an IP literal
)

// CandidateType is a candidate's type (XEP-0260 §2.2).
type CandidateType string

// Candidate types and their type preferences (XEP-0260 §2.2, "Defined
// Types"): priority = 2^16 * type preference + local preference.
const (
	TypeDirect   CandidateType = "direct"   // 126
	TypeAssisted CandidateType = "assisted" // 120
	TypeTunnel   CandidateType = "tunnel"   // 110
	TypeProxy    CandidateType = "proxy"    // 10
)

// TypePreference is the type preference XEP-0260 §2.2 suggests for t.
func (t CandidateType) TypePreference() uint32 {
	switch t {
	case TypeDirect:
		return 126
	case TypeAssisted:
		return 120
	case TypeTunnel:
		return 110
	case TypeProxy:
		return 10
	}
	return 0
}

// Priority is 2^16 * t's type preference + localPref (XEP-0260 §2.2).
func Priority(t CandidateType, localPref uint16) uint32 {
	return t.TypePreference()<<16 + uint32(localPref)
}

// Candidate is one <candidate/> (XEP-0260 §2.2).
type Candidate struct {
	CID      string
	Host     string
	Port     uint16
	JID      jid.JID
	Priority uint32
	Type     CandidateType
}

// Addr is the candidate's "host:port".
func (c Candidate) Addr() string { return StreamHost{Host: c.Host, Port: c.Port}.Addr() }

// wire types (XEP-0260 §9 schema).
type wireTransport struct {
	XMLName        xml.Name        `xml:"urn:xmpp:jingle:transports:s5b:1 transport"`
	SID            string          `xml:"sid,attr"`
	DstAddr        string          `xml:"dstaddr,attr,omitempty"`
	Mode           string          `xml:"mode,attr,omitempty"`
	Candidates     []wireCandidate `xml:"candidate"`
	Used           *wireCID        `xml:"candidate-used"`
	Activated      *wireCID        `xml:"activated"`
	CandidateError *struct{}       `xml:"candidate-error"`
	ProxyError     *struct{}       `xml:"proxy-error"`
}

type wireCandidate struct {
	CID      string `xml:"cid,attr"`
	Host     string `xml:"host,attr"`
	JID      string `xml:"jid,attr"`
	Port     string `xml:"port,attr,omitempty"`
	Priority string `xml:"priority,attr"`
	Type     string `xml:"type,attr,omitempty"`
}

type wireCID struct {
	CID string `xml:"cid,attr"`
}

// payload is a parsed and validated s5b <transport/>.
type payload struct {
	SID        string
	DstAddr    string // "" unless a valid DST.ADDR was given
	Mode       string // "tcp" or "udp"
	Candidates []Candidate
	// Dropped counts candidates ignored because they were malformed.
	Dropped int

	// At most one of the following (the schema's xs:choice).
	Used           string // cid of <candidate-used/>
	Activated      string // cid of <activated/>
	CandidateError bool
	ProxyError     bool
}

var errBadTransport = errors.New("socks5: bad transport element")

// parseTransport parses and validates an s5b <transport/>. It fails on what
// makes the element unusable (wrong namespace, no sid, bad mode, more than
// one action, too many candidates, a malformed cid in an action); single
// malformed candidates are dropped and counted, so that one odd candidate
// (say, an IPv6 zone) does not spoil the others.
func parseTransport(el jingle.Element) (*payload, error) {
	if el.XMLName.Space != NS || el.XMLName.Local != "transport" {
		return nil, fmt.Errorf("%w: <%s xmlns=%q>", errBadTransport, el.XMLName.Local, el.XMLName.Space)
	}
	var w wireTransport
	if err := el.Decode(&w); err != nil {
		return nil, fmt.Errorf("%w: %w", errBadTransport, err)
	}
	p := &payload{SID: w.SID, Mode: w.Mode}
	if p.SID == "" || len(p.SID) > maxSIDLen {
		return nil, fmt.Errorf("%w: bad sid %q", errBadTransport, trunc(p.SID))
	}
	switch p.Mode {
	case "":
		p.Mode = "tcp"
	case "tcp", "udp":
	default:
		return nil, fmt.Errorf("%w: bad mode %q", errBadTransport, trunc(p.Mode))
	}
	if ValidDstAddr(w.DstAddr) {
		p.DstAddr = w.DstAddr
	}
	if len(w.Candidates) > MaxCandidates {
		return nil, fmt.Errorf("%w: %d candidates (max %d)", errBadTransport, len(w.Candidates), MaxCandidates)
	}
	seen := map[string]bool{}
	for _, wc := range w.Candidates {
		c, err := parseCandidate(wc)
		if err != nil || seen[c.CID] {
			p.Dropped++
			continue
		}
		seen[c.CID] = true
		p.Candidates = append(p.Candidates, c)
	}
	actions := 0
	if w.Used != nil {
		actions++
		p.Used = w.Used.CID
		if !validCID(p.Used) {
			return nil, fmt.Errorf("%w: bad candidate-used cid %q", errBadTransport, trunc(p.Used))
		}
	}
	if w.Activated != nil {
		actions++
		p.Activated = w.Activated.CID
		if !validCID(p.Activated) {
			return nil, fmt.Errorf("%w: bad activated cid %q", errBadTransport, trunc(p.Activated))
		}
	}
	if w.CandidateError != nil {
		actions++
		p.CandidateError = true
	}
	if w.ProxyError != nil {
		actions++
		p.ProxyError = true
	}
	if actions > 1 || actions == 1 && len(w.Candidates) > 0 {
		return nil, fmt.Errorf("%w: more than one of candidate, candidate-used, candidate-error, activated, proxy-error", errBadTransport)
	}
	return p, nil
}

func validCID(s string) bool {
	if s == "" || len(s) > maxCIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

// validHost accepts an IP literal (no zone) or a DNS name.
func validHost(h string) bool {
	if h == "" || len(h) > maxHostLen {
		return false
	}
	if a, err := netip.ParseAddr(h); err == nil {
		return a.Zone() == "" && !a.IsUnspecified() && !a.IsMulticast()
	}
	for _, label := range splitDots(h) {
		if label == "" || len(label) > 63 {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_'
			if !ok {
				return false
			}
		}
	}
	return true
}

func splitDots(s string) []string {
	var out []string
	start := 0
	for i := 0; i < len(s); i++ {
		if s[i] == '.' {
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

func parseCandidate(wc wireCandidate) (Candidate, error) {
	c := Candidate{CID: wc.CID, Host: wc.Host, Type: CandidateType(wc.Type)}
	if !validCID(c.CID) {
		return c, fmt.Errorf("bad cid %q", trunc(c.CID))
	}
	if !validHost(c.Host) {
		return c, fmt.Errorf("bad host %q", trunc(c.Host))
	}
	if c.Type == "" {
		c.Type = TypeDirect
	}
	if c.Type.TypePreference() == 0 {
		return c, fmt.Errorf("bad type %q", trunc(wc.Type))
	}
	// The schema makes port optional; XEP-0065 §9.2 gives 1080 as the
	// SOCKS5 default.
	port := uint64(1080)
	if wc.Port != "" {
		var err error
		port, err = strconv.ParseUint(wc.Port, 10, 16)
		if err != nil || port == 0 {
			return c, fmt.Errorf("bad port %q", trunc(wc.Port))
		}
	}
	c.Port = uint16(port)
	pr, err := strconv.ParseUint(wc.Priority, 10, 32)
	if err != nil || pr == 0 || pr > math.MaxUint32 {
		return c, fmt.Errorf("bad priority %q", trunc(wc.Priority))
	}
	c.Priority = uint32(pr)
	if wc.JID == "" || len(wc.JID) > 3071 {
		return c, fmt.Errorf("bad jid")
	}
	j, err := jid.Parse(wc.JID)
	if err != nil {
		return c, fmt.Errorf("bad jid: %w", err)
	}
	c.JID = j
	return c, nil
}

// element marshals p as a <transport/>.
func (p *payload) element() (jingle.Element, error) {
	w := wireTransport{SID: p.SID, DstAddr: p.DstAddr}
	if p.Mode != "" {
		w.Mode = p.Mode
	}
	for _, c := range p.Candidates {
		w.Candidates = append(w.Candidates, wireCandidate{
			CID: c.CID, Host: c.Host, JID: c.JID.String(),
			Port: strconv.Itoa(int(c.Port)), Priority: strconv.FormatUint(uint64(c.Priority), 10),
			Type: string(c.Type),
		})
	}
	switch {
	case p.Used != "":
		w.Used = &wireCID{p.Used}
	case p.Activated != "":
		w.Activated = &wireCID{p.Activated}
	case p.CandidateError:
		w.CandidateError = &struct{}{}
	case p.ProxyError:
		w.ProxyError = &struct{}{}
	}
	el, err := jingle.NewElement(w)
	if err != nil {
		return jingle.Element{}, fmt.Errorf("socks5: marshal transport: %w", err)
	}
	return el, nil
}

package ice

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/xjingle/xjingle/jingle"
)

// Namespaces of the elements this package reads and writes.
const (
	// NSICEUDP is the Jingle ICE-UDP transport (XEP-0176 §12.1).
	NSICEUDP = "urn:xmpp:jingle:transports:ice-udp:1"
	// NSDTLS qualifies <fingerprint/> (XEP-0320 §3).
	NSDTLS = "urn:xmpp:jingle:apps:dtls:0"
	// NSSCTP qualifies <sctpmap/> (XEP-0343 v0.3 §4.1, the form StanzaJS
	// sends inside an ICE-UDP transport).
	NSSCTP = "urn:xmpp:jingle:transports:dtls-sctp:1"
	// NSDataChannel is the WebRTC data channel transport that wraps an
	// ICE-UDP transport (XEP-0343 as implemented by Conversations 2.13+).
	NSDataChannel = "urn:xmpp:jingle:transports:webrtc-datachannel:1"
)

// Limits on what a peer controls.
const (
	// MaxCandidates bounds the candidates in one <transport/> element.
	MaxCandidates = 64
	// MaxRemoteCandidates bounds the candidates one transport accepts from
	// the peer over its lifetime (offer/answer plus every transport-info).
	MaxRemoteCandidates = 256
	// maxAttr bounds any attribute value we keep (ufrag, pwd, foundation,
	// ip, fingerprint...).
	maxAttr = 256
)

// Errors callers branch on.
var (
	// ErrMalformed means a peer's transport element is not valid
	// XEP-0176/0320/0343 XML (a bad candidate, a missing attribute...).
	ErrMalformed = errors.New("ice: malformed transport")
	// ErrTooManyCandidates means a peer sent more candidates than
	// MaxCandidates in one element or MaxRemoteCandidates in total.
	ErrTooManyCandidates = errors.New("ice: too many candidates")
)

// Candidate is an ICE candidate (XEP-0176 §5.3, RFC 8445 §5.1). Generation,
// ID and Network are optional on the wire (StanzaJS omits them).
type Candidate struct {
	Component  uint16
	Foundation string
	Generation uint32
	ID         string
	IP         string
	Network    uint32
	Port       uint16
	Priority   uint32
	Protocol   string // "udp" (XEP-0176 defines only udp) or "tcp"
	Type       string // host, srflx, prflx, relay
	RelAddr    string
	RelPort    uint16
}

// Fingerprint is the DTLS certificate fingerprint (XEP-0320 §3): Hash is
// the hash function ("sha-256"), Setup the RFC 4145 role (actpass, active,
// passive), Value the colon-separated hex digest.
type Fingerprint struct {
	Hash  string
	Setup string
	Value string
}

// SCTPMap is the <sctpmap/> element of XEP-0343 v0.3 §4.2.
type SCTPMap struct {
	Number   uint16 // SCTP port
	Protocol string // "webrtc-datachannel"
	Streams  uint16 // 0 when absent
}

// ICEUDP is an ICE-UDP <transport/> element (XEP-0176 §5.3) with the
// children XEP-0320 and XEP-0343 v0.3 put in it.
type ICEUDP struct {
	Ufrag       string
	Pwd         string
	Fingerprint *Fingerprint
	SCTPMap     *SCTPMap
	Candidates  []Candidate
	// GatheringComplete is the end-of-candidates indication
	// (<gathering-complete/>, XEP-0371 §7, sent by StanzaJS in ICE-UDP).
	GatheringComplete bool
}

// DataChannel is the <transport xmlns='urn:xmpp:jingle:transports:webrtc-datachannel:1'/>
// element: SCTP parameters around an ICE-UDP transport.
type DataChannel struct {
	SCTPPort       uint16 // 0 when absent
	MaxMessageSize uint64 // 0 when absent
	ICE            ICEUDP
}

// ParseICEUDP parses an ICE-UDP <transport/> element.
func ParseICEUDP(el jingle.Element) (*ICEUDP, error) {
	if el.XMLName.Space != NSICEUDP || el.XMLName.Local != "transport" {
		return nil, fmt.Errorf("%w: element <%s xmlns=%q>, want ICE-UDP transport", ErrMalformed, el.XMLName.Local, el.XMLName.Space)
	}
	d := xml.NewDecoder(bytes.NewReader(el.Bytes()))
	start, err := firstStart(d)
	if err != nil {
		return nil, err
	}
	return parseICE(d, start)
}

// ParseDataChannel parses a webrtc-datachannel:1 <transport/> element. An
// element without an inner ICE-UDP transport is an error.
func ParseDataChannel(el jingle.Element) (*DataChannel, error) {
	if el.XMLName.Space != NSDataChannel || el.XMLName.Local != "transport" {
		return nil, fmt.Errorf("%w: element <%s xmlns=%q>, want data channel transport", ErrMalformed, el.XMLName.Local, el.XMLName.Space)
	}
	d := xml.NewDecoder(bytes.NewReader(el.Bytes()))
	start, err := firstStart(d)
	if err != nil {
		return nil, err
	}
	dc := &DataChannel{}
	for _, a := range start.Attr {
		if a.Name.Space != "" {
			continue
		}
		switch a.Name.Local {
		case "sctp-port":
			v, err := parseUint(a.Value, 16, "sctp-port")
			if err != nil {
				return nil, err
			}
			dc.SCTPPort = uint16(v)
		case "max-message-size":
			v, err := parseUint(a.Value, 64, "max-message-size")
			if err != nil {
				return nil, err
			}
			dc.MaxMessageSize = v
		}
	}
	found := false
	for {
		tok, err := d.Token()
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if t.Name.Space == NSICEUDP && t.Name.Local == "transport" && !found {
				ice, err := parseICE(d, t)
				if err != nil {
					return nil, err
				}
				dc.ICE = *ice
				found = true
				continue
			}
			if err := d.Skip(); err != nil {
				return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
			}
		case xml.EndElement:
			if !found {
				return nil, fmt.Errorf("%w: data channel transport without ICE-UDP transport", ErrMalformed)
			}
			return dc, nil
		}
	}
}

func firstStart(d *xml.Decoder) (xml.StartElement, error) {
	for {
		tok, err := d.Token()
		if err != nil {
			return xml.StartElement{}, fmt.Errorf("%w: %v", ErrMalformed, err)
		}
		if s, ok := tok.(xml.StartElement); ok {
			return s, nil
		}
	}
}

// parseICE reads the ICE-UDP transport whose start element was just read.
func parseICE(d *xml.Decoder, start xml.StartElement) (*ICEUDP, error) {
	t := &ICEUDP{}
	for _, a := range start.Attr {
		if a.Name.Space != "" {
			continue
		}
		switch a.Name.Local {
		case "ufrag":
			t.Ufrag = a.Value
		case "pwd":
			t.Pwd = a.Value
		}
	}
	// RFC 8445 §5.3: ufrag 4-256 and pwd 22-256 ice-chars. StanzaJS
	// trickles with a ufrag and no pwd, so each is checked only if present.
	if t.Ufrag != "" && !validICEChars(t.Ufrag, 4, maxAttr) {
		return nil, fmt.Errorf("%w: ufrag %q", ErrMalformed, clip(t.Ufrag))
	}
	if t.Pwd != "" && !validICEChars(t.Pwd, 22, maxAttr) {
		return nil, fmt.Errorf("%w: pwd of %d characters", ErrMalformed, len(t.Pwd))
	}
	for {
		tok, err := d.Token()
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
		}
		switch s := tok.(type) {
		case xml.EndElement:
			return t, nil
		case xml.StartElement:
			switch {
			case s.Name.Space == NSICEUDP && s.Name.Local == "candidate":
				if len(t.Candidates) >= MaxCandidates {
					return nil, fmt.Errorf("%w: more than %d in one transport", ErrTooManyCandidates, MaxCandidates)
				}
				c, err := parseCandidate(s)
				if err != nil {
					return nil, err
				}
				t.Candidates = append(t.Candidates, c)
			case s.Name.Space == NSDTLS && s.Name.Local == "fingerprint":
				if t.Fingerprint != nil {
					return nil, fmt.Errorf("%w: two fingerprints", ErrMalformed)
				}
				fp, err := parseFingerprint(d, s)
				if err != nil {
					return nil, err
				}
				t.Fingerprint = fp
				continue // parseFingerprint consumed the end element
			case s.Name.Space == NSSCTP && s.Name.Local == "sctpmap":
				m, err := parseSCTPMap(s)
				if err != nil {
					return nil, err
				}
				t.SCTPMap = m
			case s.Name.Local == "gathering-complete":
				t.GatheringComplete = true
			}
			if err := d.Skip(); err != nil {
				return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
			}
		}
	}
}

func parseFingerprint(d *xml.Decoder, s xml.StartElement) (*Fingerprint, error) {
	fp := &Fingerprint{}
	for _, a := range s.Attr {
		if a.Name.Space != "" {
			continue
		}
		switch a.Name.Local {
		case "hash":
			fp.Hash = strings.ToLower(a.Value)
		case "setup":
			fp.Setup = a.Value
		}
	}
	var text strings.Builder
	for {
		tok, err := d.Token()
		if err != nil {
			return nil, fmt.Errorf("%w: fingerprint: %v", ErrMalformed, err)
		}
		switch t := tok.(type) {
		case xml.CharData:
			if text.Len()+len(t) > maxAttr {
				return nil, fmt.Errorf("%w: fingerprint too long", ErrMalformed)
			}
			text.Write(t)
		case xml.StartElement:
			return nil, fmt.Errorf("%w: fingerprint with child <%s>", ErrMalformed, t.Name.Local)
		case xml.EndElement:
			fp.Value = strings.ToUpper(strings.TrimSpace(text.String()))
			if err := fp.validate(); err != nil {
				return nil, err
			}
			return fp, nil
		}
	}
}

// validate checks the fingerprint's syntax (RFC 8122 §5: hash-func SP
// 2UHEX *(":" 2UHEX)) and setup role (RFC 4145 §4; XEP-0320 §3 makes setup
// required).
func (fp *Fingerprint) validate() error {
	switch fp.Hash {
	case "sha-1", "sha-224", "sha-256", "sha-384", "sha-512":
	default:
		return fmt.Errorf("%w: fingerprint hash %q", ErrMalformed, clip(fp.Hash))
	}
	switch fp.Setup {
	case "actpass", "active", "passive":
	default:
		return fmt.Errorf("%w: fingerprint setup %q", ErrMalformed, clip(fp.Setup))
	}
	parts := strings.Split(fp.Value, ":")
	if len(parts) < 16 {
		return fmt.Errorf("%w: fingerprint %q too short", ErrMalformed, clip(fp.Value))
	}
	for _, p := range parts {
		if len(p) != 2 || !isHex(p[0]) || !isHex(p[1]) {
			return fmt.Errorf("%w: fingerprint %q", ErrMalformed, clip(fp.Value))
		}
	}
	return nil
}

func isHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'A' && c <= 'F' }

func parseSCTPMap(s xml.StartElement) (*SCTPMap, error) {
	m := &SCTPMap{}
	for _, a := range s.Attr {
		if a.Name.Space != "" {
			continue
		}
		switch a.Name.Local {
		case "number", "port": // examples use number, §4.2's table says port
			v, err := parseUint(a.Value, 16, "sctpmap number")
			if err != nil {
				return nil, err
			}
			m.Number = uint16(v)
		case "protocol":
			m.Protocol = a.Value
		case "streams":
			v, err := parseUint(a.Value, 16, "sctpmap streams")
			if err != nil {
				return nil, err
			}
			m.Streams = uint16(v)
		}
	}
	if m.Protocol != "webrtc-datachannel" {
		return nil, fmt.Errorf("%w: sctpmap protocol %q", ErrMalformed, clip(m.Protocol))
	}
	return m, nil
}

// parseCandidate checks every attribute XEP-0176 §5.3 defines; id,
// generation and network may be absent (StanzaJS), the others are required.
func parseCandidate(s xml.StartElement) (Candidate, error) {
	var c Candidate
	seen := map[string]bool{}
	for _, a := range s.Attr {
		if a.Name.Space != "" {
			continue
		}
		if len(a.Value) > maxAttr {
			return c, fmt.Errorf("%w: candidate %s too long", ErrMalformed, a.Name.Local)
		}
		var err error
		var v uint64
		switch a.Name.Local {
		case "component":
			v, err = parseUint(a.Value, 16, "candidate component")
			c.Component = uint16(v)
		case "foundation":
			c.Foundation = a.Value
		case "generation":
			v, err = parseUint(a.Value, 32, "candidate generation")
			c.Generation = uint32(v)
		case "id":
			c.ID = a.Value
		case "ip":
			c.IP = a.Value
		case "network":
			v, err = parseUint(a.Value, 32, "candidate network")
			c.Network = uint32(v)
		case "port":
			v, err = parseUint(a.Value, 16, "candidate port")
			c.Port = uint16(v)
		case "priority":
			v, err = parseUint(a.Value, 32, "candidate priority")
			c.Priority = uint32(v)
		case "protocol":
			c.Protocol = strings.ToLower(a.Value)
		case "type":
			c.Type = a.Value
		case "rel-addr":
			c.RelAddr = a.Value
		case "rel-port":
			v, err = parseUint(a.Value, 16, "candidate rel-port")
			c.RelPort = uint16(v)
		default:
			continue
		}
		if err != nil {
			return c, err
		}
		seen[a.Name.Local] = true
	}
	for _, req := range []string{"component", "foundation", "ip", "port", "priority", "protocol", "type"} {
		if !seen[req] {
			return c, fmt.Errorf("%w: candidate without %s", ErrMalformed, req)
		}
	}
	if err := c.validate(); err != nil {
		return c, err
	}
	return c, nil
}

// validate checks values against RFC 8445 §5.1 and XEP-0176 §5.3.
func (c *Candidate) validate() error {
	if c.Component == 0 {
		return fmt.Errorf("%w: candidate component 0", ErrMalformed)
	}
	if !validICEChars(c.Foundation, 1, 32) {
		return fmt.Errorf("%w: candidate foundation %q", ErrMalformed, clip(c.Foundation))
	}
	if c.Priority == 0 {
		return fmt.Errorf("%w: candidate priority 0", ErrMalformed)
	}
	switch c.Protocol {
	case "udp", "tcp":
	default:
		return fmt.Errorf("%w: candidate protocol %q", ErrMalformed, clip(c.Protocol))
	}
	switch c.Type {
	case "host", "srflx", "prflx", "relay":
	default:
		return fmt.Errorf("%w: candidate type %q", ErrMalformed, clip(c.Type))
	}
	if !validAddr(c.IP) {
		return fmt.Errorf("%w: candidate ip %q", ErrMalformed, clip(c.IP))
	}
	if c.Port == 0 && c.Protocol == "udp" {
		return fmt.Errorf("%w: candidate port 0", ErrMalformed)
	}
	if c.RelAddr != "" && !validAddr(c.RelAddr) {
		return fmt.Errorf("%w: candidate rel-addr %q", ErrMalformed, clip(c.RelAddr))
	}
	if c.ID != "" && strings.ContainsAny(c.ID, " \t\r\n") {
		return fmt.Errorf("%w: candidate id %q", ErrMalformed, clip(c.ID))
	}
	return nil
}

// validAddr accepts an IP address or an mDNS name (RFC 8838 §… and
// draft-ietf-mmusic-mdns-ice-candidates: "<uuid>.local").
func validAddr(s string) bool {
	if net.ParseIP(s) != nil {
		return true
	}
	if !strings.HasSuffix(s, ".local") || len(s) > 253 {
		return false
	}
	for i := 0; i < len(s); i++ {
		b := s[i]
		if !(b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '-' || b == '.') {
			return false
		}
	}
	return true
}

// validICEChars reports whether s is min..max ice-chars (RFC 8445 §5.3:
// ALPHA / DIGIT / "+" / "/").
func validICEChars(s string, min, max int) bool {
	if len(s) < min || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		b := s[i]
		if !(b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '+' || b == '/') {
			return false
		}
	}
	return true
}

func parseUint(s string, bits int, what string) (uint64, error) {
	v, err := strconv.ParseUint(strings.TrimSpace(s), 10, bits)
	if err != nil {
		return 0, fmt.Errorf("%w: %s %q", ErrMalformed, what, clip(s))
	}
	return v, nil
}

// clip shortens a peer's value for an error message.
func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

// Element returns t as an ICE-UDP <transport/> element.
func (t *ICEUDP) Element() jingle.Element {
	var b bytes.Buffer
	e := xml.NewEncoder(&b)
	t.encode(e)
	e.Flush()
	el, err := jingle.ParseElement(b.Bytes())
	if err != nil {
		// Only our own encoding can fail here: a bug, not peer input.
		panic(fmt.Sprintf("ice: encode transport: %v", err))
	}
	return el
}

func attr(name, value string) xml.Attr { return xml.Attr{Name: xml.Name{Local: name}, Value: value} }

func utoa[T ~uint16 | ~uint32 | ~uint64](v T) string { return strconv.FormatUint(uint64(v), 10) }

func (t *ICEUDP) encode(e *xml.Encoder) {
	start := xml.StartElement{Name: xml.Name{Space: NSICEUDP, Local: "transport"}}
	if t.Ufrag != "" {
		start.Attr = append(start.Attr, attr("ufrag", t.Ufrag))
	}
	if t.Pwd != "" {
		start.Attr = append(start.Attr, attr("pwd", t.Pwd))
	}
	e.EncodeToken(start)
	if fp := t.Fingerprint; fp != nil {
		s := xml.StartElement{Name: xml.Name{Space: NSDTLS, Local: "fingerprint"}, Attr: []xml.Attr{attr("hash", fp.Hash), attr("setup", fp.Setup)}}
		e.EncodeToken(s)
		e.EncodeToken(xml.CharData(fp.Value))
		e.EncodeToken(s.End())
	}
	if m := t.SCTPMap; m != nil {
		s := xml.StartElement{Name: xml.Name{Space: NSSCTP, Local: "sctpmap"}, Attr: []xml.Attr{attr("number", utoa(m.Number)), attr("protocol", m.Protocol)}}
		if m.Streams != 0 {
			s.Attr = append(s.Attr, attr("streams", utoa(m.Streams)))
		}
		e.EncodeToken(s)
		e.EncodeToken(s.End())
	}
	for _, c := range t.Candidates {
		s := xml.StartElement{Name: xml.Name{Space: NSICEUDP, Local: "candidate"}, Attr: []xml.Attr{
			attr("component", utoa(c.Component)),
			attr("foundation", c.Foundation),
			attr("generation", utoa(c.Generation)),
		}}
		if c.ID != "" {
			s.Attr = append(s.Attr, attr("id", c.ID))
		}
		s.Attr = append(s.Attr,
			attr("ip", c.IP),
			attr("network", utoa(c.Network)),
			attr("port", utoa(c.Port)),
			attr("priority", utoa(c.Priority)),
			attr("protocol", c.Protocol),
			attr("type", c.Type))
		if c.RelAddr != "" {
			s.Attr = append(s.Attr, attr("rel-addr", c.RelAddr))
		}
		if c.RelAddr != "" || c.RelPort != 0 {
			s.Attr = append(s.Attr, attr("rel-port", utoa(c.RelPort)))
		}
		e.EncodeToken(s)
		e.EncodeToken(s.End())
	}
	if t.GatheringComplete {
		s := xml.StartElement{Name: xml.Name{Space: NSICEUDP, Local: "gathering-complete"}}
		e.EncodeToken(s)
		e.EncodeToken(s.End())
	}
	e.EncodeToken(start.End())
}

// Element returns dc as a webrtc-datachannel:1 <transport/> element.
func (dc *DataChannel) Element() jingle.Element {
	var b bytes.Buffer
	e := xml.NewEncoder(&b)
	start := xml.StartElement{Name: xml.Name{Space: NSDataChannel, Local: "transport"}}
	if dc.SCTPPort != 0 {
		start.Attr = append(start.Attr, attr("sctp-port", utoa(dc.SCTPPort)))
	}
	if dc.MaxMessageSize != 0 {
		start.Attr = append(start.Attr, attr("max-message-size", utoa(dc.MaxMessageSize)))
	}
	e.EncodeToken(start)
	dc.ICE.encode(e)
	e.EncodeToken(start.End())
	e.Flush()
	el, err := jingle.ParseElement(b.Bytes())
	if err != nil {
		panic(fmt.Sprintf("ice: encode data channel transport: %v", err))
	}
	return el
}

package relay

import (
	"encoding/binary"
	"net"

	"github.com/pion/stun/v4"
)

const (
	stunHeaderSize      = 20
	stunMagicCookie     = 0x2112A442
	attrIntegrity       = 0x0008 // RFC 8489 §14.5 MESSAGE-INTEGRITY
	attrIntegritySHA256 = 0x001C // RFC 8489 §14.6 MESSAGE-INTEGRITY-SHA256
)

// stunInfo is what the relay needs to know about a packet before pion handles it.
type stunInfo struct {
	isSTUN    bool // a STUN message (RFC 8489 §5: top two bits zero and the magic cookie)
	request   bool // of class request
	integrity bool // carries MESSAGE-INTEGRITY(-SHA256)
}

// peekSTUN classifies b without allocating. Anything else (ChannelData, RFC 8656 §12.4) is not STUN.
// Malformed attribute lists stop the walk; pion rejects such messages itself.
func peekSTUN(b []byte) stunInfo {
	var in stunInfo
	if len(b) < stunHeaderSize || b[0]&0xC0 != 0 || binary.BigEndian.Uint32(b[4:8]) != stunMagicCookie {
		return in
	}
	in.isSTUN = true
	typ := binary.BigEndian.Uint16(b[0:2])
	// RFC 8489 §5: class bits C1 (bit 8) and C0 (bit 4) both zero is a request.
	in.request = typ&0x0110 == 0
	end := stunHeaderSize + int(binary.BigEndian.Uint16(b[2:4]))
	if end > len(b) {
		end = len(b)
	}
	for off := stunHeaderSize; off+4 <= end; {
		t := binary.BigEndian.Uint16(b[off : off+2])
		l := int(binary.BigEndian.Uint16(b[off+2 : off+4]))
		if t == attrIntegrity || t == attrIntegritySHA256 {
			in.integrity = true
			return in
		}
		off += 4 + (l+3)&^3
	}
	return in
}

// inspect runs on every packet from a client before pion sees it and reports whether pion should see it.
// Requests without MESSAGE-INTEGRITY are rate limited per source IP (RFC 8656 §21.3.1); with several REST
// secrets, authenticated requests are checked against each to tell the AuthHandler which one to use.
func (s *Server) inspect(b []byte, src net.Addr) bool {
	in := peekSTUN(b)
	if !in.isSTUN || !in.request {
		return true
	}
	if !in.integrity {
		if !s.limiter.allow(src, s.cfg.Now()) {
			s.m.unauthLimited.Inc()
			return false
		}
		return true
	}
	if cr := s.creds.Load(); len(cr.secrets) > 1 {
		s.hintSecret(cr.secrets, b, src)
	}
	return true
}

// hintSecret finds the REST secret whose key validates b's MESSAGE-INTEGRITY and records it for src.
func (s *Server) hintSecret(secrets []string, b []byte, src net.Addr) {
	m := &stun.Message{Raw: append([]byte(nil), b...)}
	if err := m.Decode(); err != nil {
		return
	}
	var user stun.Username
	var realm stun.Realm
	if user.GetFrom(m) != nil || realm.GetFrom(m) != nil {
		return
	}
	username := user.String()
	if _, _, err := parseRESTUsername(username); err != nil {
		return
	}
	match := ""
	for _, secret := range secrets {
		key := longTermKey(username, realm.String(), restPassword(secret, username))
		if stun.MessageIntegrity(key).Check(m) == nil {
			match = secret
			break
		}
	}
	s.hints.put(src.String(), username, match)
}

package relay

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// DefaultDeniedPeers are the ranges a relay refuses to send to unless an AllowPeers entry covers them, like
// coturn's denied-peer-ip list. They keep the relay from being a way into the operator's own networks
// (RFC 8656 §21.2.2, §21.3.2): loopback, RFC 1918 private, CGNAT, link-local (which holds the cloud metadata
// service 169.254.169.254), IETF/benchmark/documentation ranges, multicast and reserved; for IPv6 the
// unspecified and loopback addresses, ULA (fc00::/7, which holds AWS's fd00:ec2::254), link-local, site-local,
// multicast, NAT64 local use, discard and documentation prefixes. IPv4-mapped IPv6 addresses are checked as IPv4.
var DefaultDeniedPeers = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("10.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("127.0.0.0/8"),
	netip.MustParsePrefix("169.254.0.0/16"),
	netip.MustParsePrefix("172.16.0.0/12"),
	netip.MustParsePrefix("192.0.0.0/24"),
	netip.MustParsePrefix("192.0.2.0/24"),
	netip.MustParsePrefix("192.88.99.0/24"),
	netip.MustParsePrefix("192.168.0.0/16"),
	netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("198.51.100.0/24"),
	netip.MustParsePrefix("203.0.113.0/24"),
	netip.MustParsePrefix("224.0.0.0/4"),
	netip.MustParsePrefix("240.0.0.0/4"),
	netip.MustParsePrefix("::/128"),
	netip.MustParsePrefix("::1/128"),
	netip.MustParsePrefix("64:ff9b:1::/48"),
	netip.MustParsePrefix("100::/64"),
	netip.MustParsePrefix("2001:db8::/32"),
	netip.MustParsePrefix("fc00::/7"),
	netip.MustParsePrefix("fe80::/10"),
	netip.MustParsePrefix("fec0::/10"),
	netip.MustParsePrefix("ff00::/8"),
}

// PeerPolicy decides which peer addresses an allocation may get permissions and channels for.
//
// The decision, for an address a: an explicit Deny prefix containing a that is at least as specific as every
// Allow prefix containing a denies; otherwise an Allow prefix containing a allows; otherwise a DefaultDeniedPeers
// prefix (unless DisableDefaults) denies; otherwise the address is allowed. So "--allow-peer 127.0.0.1/32"
// opens one loopback address and "--deny-peer 203.0.113.0/24" closes a range that is public.
type PeerPolicy struct {
	Allow           []netip.Prefix
	Deny            []netip.Prefix
	DisableDefaults bool
}

// Allowed reports whether relaying to ip is allowed.
func (p *PeerPolicy) Allowed(ip netip.Addr) bool {
	ip = ip.Unmap()
	if !ip.IsValid() {
		return false
	}
	allowBits := longest(p.Allow, ip)
	if denyBits := longest(p.Deny, ip); denyBits >= 0 && denyBits >= allowBits {
		return false
	}
	if allowBits >= 0 {
		return true
	}
	if !p.DisableDefaults && longest(DefaultDeniedPeers, ip) >= 0 {
		return false
	}
	return true
}

// AllowedIP is Allowed for a net.IP; a nil or malformed IP is denied.
func (p *PeerPolicy) AllowedIP(ip net.IP) bool {
	a, ok := netip.AddrFromSlice(ip)
	return ok && p.Allowed(a)
}

// longest returns the prefix length of the most specific prefix in ps containing ip, or -1.
func longest(ps []netip.Prefix, ip netip.Addr) int {
	best := -1
	for _, pf := range ps {
		if pf.Addr().Is4() != ip.Is4() {
			continue
		}
		if pf.Bits() > best && pf.Contains(ip) {
			best = pf.Bits()
		}
	}
	return best
}

// ParsePrefix parses a CIDR or a bare address (taken as a /32 or /128), the form --allow-peer and --deny-peer
// accept.
func ParsePrefix(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("relay: peer range %q: %w", s, err)
		}
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("relay: peer range %q: %w", s, err)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

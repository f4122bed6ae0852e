package relay

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"time"
)

// Defaults applied by New to zero Config fields.
const (
	DefaultRealm                 = "xjingle"
	DefaultPortMin               = 49152
	DefaultPortMax               = 65535
	DefaultMaxAllocations        = 10000
	DefaultMaxAllocationsPerUser = 16
	DefaultMaxBandwidth          = 8 << 20 // bytes/s per allocation and direction (64 Mbit/s)
	DefaultAllocationLifetime    = 10 * time.Minute
	DefaultMaxAllocationAge      = 24 * time.Hour
	DefaultUnauthRate            = 100 // unauthenticated requests/s per source IP
	DefaultUnauthBurst           = 200
	DefaultMaxTCPConns           = 10000
	DefaultTCPIdleTimeout        = 65 * time.Minute // longer than the 1 h lifetime cap, so a refreshing client stays
	DefaultHandshakeTimeout      = 10 * time.Second
)

// Listen is one address the relay serves, on UDP and TCP (or TLS for Config.TLSListen).
type Listen struct {
	// Addr is host:port. Use 0.0.0.0 or [::] for all addresses of a family; port 0 picks a free port (tests).
	Addr string
	// ExternalIP is the address clients see for this listener's host when it sits behind 1:1 NAT; the relayed
	// addresses of allocations made here carry it. Zero means Config.PublicIP, then the listener's own IP.
	ExternalIP netip.Addr
}

// ParseListen parses "HOST:PORT" or "HOST:PORT=EXTERNAL_IP" (the per-listener external address).
func ParseListen(s string) (Listen, error) {
	addr, ext, hasExt := strings.Cut(s, "=")
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return Listen{}, fmt.Errorf("relay: listen address %q: %w", s, err)
	}
	l := Listen{Addr: addr}
	if hasExt {
		ip, err := netip.ParseAddr(ext)
		if err != nil {
			return Listen{}, fmt.Errorf("relay: external address in %q: %w", s, err)
		}
		l.ExternalIP = ip.Unmap()
	}
	return l, nil
}

// Config configures a Server. The zero value of each field means its default; Listen (or TLSListen) and one
// credential source (Secrets or Users) are required.
type Config struct {
	// Listen addresses serve TURN and STUN on UDP and TCP. Each UDP address is bound by SocketsPerUDPListen
	// sockets with SO_REUSEPORT (see SocketsPerUDPListen).
	Listen []Listen
	// TLSListen addresses serve TURN over TLS ("turns:"), with CertFile and KeyFile (reloaded by
	// ReloadCertificates, which the CLI calls on SIGHUP).
	TLSListen []Listen
	CertFile  string
	KeyFile   string

	// Realm is the long-term credential realm (RFC 8489 §9.2). Default DefaultRealm.
	Realm string
	// Secrets are TURN REST API shared secrets (coturn's static-auth-secret); several are accepted at once for
	// rotation.
	Secrets []string
	// Users are static long-term users, username to password.
	Users map[string]string

	// PublicIP is the IPv4 address advertised in relayed addresses when a listener has no ExternalIP (1:1 NAT).
	PublicIP netip.Addr
	// PublicIPv6 is the same for IPv6 relayed addresses.
	PublicIPv6 netip.Addr
	// PortMin and PortMax bound the relayed transport addresses' ports (inclusive). Default 49152–65535.
	PortMin, PortMax uint16

	// Peers decides which peers allocations may reach; by default DefaultDeniedPeers are refused.
	Peers PeerPolicy

	// MaxAllocations caps allocations in total; MaxAllocationsPerUser per REST user (or static user). Beyond
	// them Allocate fails with 486 (Allocation Quota Reached). Negative means unlimited.
	MaxAllocations        int
	MaxAllocationsPerUser int
	// MaxBandwidth caps each allocation's relayed bytes per second in each direction; packets beyond it are
	// dropped and counted. Negative means unlimited.
	MaxBandwidth int64
	// AllocationLifetime is the lifetime granted when a client asks for none (RFC 8656 §7.2); clients may ask
	// for up to one hour.
	AllocationLifetime time.Duration
	// MaxAllocationAge ends an allocation this long after it was made, whatever its refreshes. Negative means
	// never.
	MaxAllocationAge time.Duration
	// UnauthRate and UnauthBurst limit STUN requests without MESSAGE-INTEGRITY (Binding, first Allocate) per
	// source IP; excess requests are dropped unanswered. Negative UnauthRate means unlimited.
	UnauthRate  float64
	UnauthBurst int
	// MaxTCPConns bounds concurrent TCP and TLS client connections (across listeners).
	MaxTCPConns int
	// TCPIdleTimeout closes a TCP/TLS client connection that sent nothing for this long; HandshakeTimeout
	// bounds the time to the first complete message (and the TLS handshake).
	TCPIdleTimeout   time.Duration
	HandshakeTimeout time.Duration

	// SocketsPerUDPListen is the number of SO_REUSEPORT sockets per UDP address. Default runtime.NumCPU().
	// The UDP sockets (these and the relayed ones) are served by min(SocketsPerUDPListen, GOMAXPROCS-1), at
	// least one, data-plane loops.
	SocketsPerUDPListen int

	// Logger receives structured logs; nil discards them.
	Logger *slog.Logger
	// Now is the clock for credential expiry; nil means time.Now.
	Now func() time.Time
}

func (c *Config) setDefaults() {
	if c.Realm == "" {
		c.Realm = DefaultRealm
	}
	if c.PortMin == 0 && c.PortMax == 0 {
		c.PortMin, c.PortMax = DefaultPortMin, DefaultPortMax
	}
	if c.MaxAllocations == 0 {
		c.MaxAllocations = DefaultMaxAllocations
	}
	if c.MaxAllocationsPerUser == 0 {
		c.MaxAllocationsPerUser = DefaultMaxAllocationsPerUser
	}
	if c.MaxBandwidth == 0 {
		c.MaxBandwidth = DefaultMaxBandwidth
	}
	if c.AllocationLifetime == 0 {
		c.AllocationLifetime = DefaultAllocationLifetime
	}
	if c.MaxAllocationAge == 0 {
		c.MaxAllocationAge = DefaultMaxAllocationAge
	}
	if c.UnauthRate == 0 {
		c.UnauthRate = DefaultUnauthRate
	}
	if c.UnauthBurst == 0 {
		c.UnauthBurst = DefaultUnauthBurst
	}
	if c.MaxTCPConns == 0 {
		c.MaxTCPConns = DefaultMaxTCPConns
	}
	if c.TCPIdleTimeout == 0 {
		c.TCPIdleTimeout = DefaultTCPIdleTimeout
	}
	if c.HandshakeTimeout == 0 {
		c.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if c.SocketsPerUDPListen == 0 {
		c.SocketsPerUDPListen = runtime.NumCPU()
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

func (c *Config) validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if len(c.Listen) == 0 && len(c.TLSListen) == 0 {
		bad("no listen address")
	}
	for _, l := range append(append([]Listen(nil), c.Listen...), c.TLSListen...) {
		host, _, err := net.SplitHostPort(l.Addr)
		if err != nil {
			bad("listen %q: %w", l.Addr, err)
			continue
		}
		if _, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")); err != nil {
			bad("listen %q: host must be an IP address", l.Addr)
		}
	}
	if len(c.TLSListen) > 0 && (c.CertFile == "" || c.KeyFile == "") {
		bad("TLS listen address without certificate and key files")
	}
	if len(c.Secrets) == 0 && len(c.Users) == 0 {
		bad("no credentials: give a REST API secret or static users")
	}
	for i, s := range c.Secrets {
		if s == "" {
			bad("secret %d is empty", i)
		}
	}
	if c.PortMin == 0 || c.PortMax < c.PortMin {
		bad("relay port range %d-%d", c.PortMin, c.PortMax)
	}
	if c.UnauthBurst < 0 || c.MaxTCPConns < 0 || c.SocketsPerUDPListen < 0 || c.SocketsPerUDPListen > 256 {
		bad("negative limit or more than 256 sockets per listener")
	}
	if c.AllocationLifetime < 0 || c.AllocationLifetime > time.Hour || c.TCPIdleTimeout < 0 || c.HandshakeTimeout < 0 {
		bad("allocation lifetime must be within 0-1h, timeouts not negative")
	}
	if c.PublicIP.IsValid() && !c.PublicIP.Unmap().Is4() {
		bad("public IP %s is not IPv4 (use PublicIPv6)", c.PublicIP)
	}
	if c.PublicIPv6.IsValid() && !c.PublicIPv6.Is6() {
		bad("public IPv6 %s is not IPv6", c.PublicIPv6)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	return nil
}

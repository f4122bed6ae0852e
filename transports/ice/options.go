package ice

import (
	"net"
	"time"

	pice "github.com/pion/ice/v4"
	"github.com/pion/transport/v5"
	"github.com/pion/webrtc/v4"
)

// Option configures a Factory.
type Option func(*config)

type config struct {
	interfaces     []string
	ipFilter       func(net.IP) bool
	loopback       bool
	iceServers     []webrtc.ICEServer
	relayOnly      bool
	msgSize        int
	net            transport.Net
	mdns           bool
	connectTimeout time.Duration
	gatherWait     time.Duration
	udp4Only       bool
	onConnect      func(local, remote *Addr)
}

// recvMessageSize is the largest message we accept; we announce it as
// max-message-size (RFC 8841 §6).
const recvMessageSize = 256 << 10

// defaultPeerMaxMsg is the largest message we send a peer that announced
// no max-message-size: Pion's reading of RFC 8841 §6.1's 64 KiB default.
const defaultPeerMaxMsg = 65535

const (
	// defaultMsgSize is the message size a Conn writes: 64 KiB, what RFC
	// 8841 §6.1 lets us assume of a peer that announces no
	// max-message-size (StanzaJS's v0.3 form), and measured a little
	// cheaper per byte than 16 KiB on loopback (docs/BENCHMARKS.md).
	defaultMsgSize        = 64 << 10
	defaultConnectTimeout = 30 * time.Second
	defaultGatherWait     = 500 * time.Millisecond
)

// WithInterfaces restricts ICE gathering to the named network interfaces
// (the CLI's --interface flag). Loopback candidates are included when a
// listed interface is a loopback one ("lo"). Without this option every
// non-loopback interface is used.
func WithInterfaces(names ...string) Option {
	return func(c *config) {
		c.interfaces = append(c.interfaces, names...)
		for _, n := range names {
			if n == "lo" || n == "lo0" {
				c.loopback = true
				continue
			}
			if ifi, err := net.InterfaceByName(n); err == nil && ifi.Flags&net.FlagLoopback != 0 {
				c.loopback = true
			}
		}
	}
}

// WithIPFilter keeps only the local addresses for which keep returns true
// when gathering candidates.
func WithIPFilter(keep func(net.IP) bool) Option {
	return func(c *config) { c.ipFilter = keep }
}

// WithLoopback includes loopback addresses in gathering (off by default:
// RFC 8445 §5.1.1.1 says not to offer them).
func WithLoopback() Option { return func(c *config) { c.loopback = true } }

// WithUDP4Only gathers IPv4 UDP candidates only.
func WithUDP4Only() Option { return func(c *config) { c.udp4Only = true } }

// WithICEServers adds STUN and TURN servers (XEP-0215 discovery or
// --stun/--turn flags), e.g. {URLs: ["turn:host:3478?transport=udp"],
// Username: u, Credential: p}.
func WithICEServers(servers ...webrtc.ICEServer) Option {
	return func(c *config) { c.iceServers = append(c.iceServers, servers...) }
}

// WithRelayOnly sets the ICE transport policy to relay: only TURN relay
// candidates are used (hides our addresses; forces the relay in tests).
func WithRelayOnly() Option { return func(c *config) { c.relayOnly = true } }

// WithMessageSize sets the size of the data channel messages a Conn
// writes (default 64 KiB); it is capped by the peer's max-message-size.
func WithMessageSize(n int) Option {
	return func(c *config) {
		if n > 0 {
			c.msgSize = n
		}
	}
}

// WithNet makes Pion use n for sockets and interfaces instead of the
// operating system's: a pion/transport/v5/vnet network in tests.
func WithNet(n transport.Net) Option { return func(c *config) { c.net = n } }

// WithMDNS enables mDNS host candidates (".local" names that hide local
// addresses). Off by default.
func WithMDNS() Option { return func(c *config) { c.mdns = true } }

// WithConnectTimeout bounds the time from the offer/answer exchange to an
// open data channel (default 30 s); past it Conn fails with
// jingle.ErrTransportFailed.
func WithConnectTimeout(d time.Duration) Option {
	return func(c *config) {
		if d > 0 {
			c.connectTimeout = d
		}
	}
}

// WithGatherWait bounds how long Offer and Accept wait for candidate
// gathering to complete before they answer (default 500 ms). Candidates
// gathered by then go in the offer or answer; later ones are trickled in
// transport-info (XEP-0176 §5.5). Zero means pure trickle: no candidate in
// the offer or answer (as StanzaJS does).
func WithGatherWait(d time.Duration) Option {
	return func(c *config) {
		if d >= 0 {
			c.gatherWait = d
		}
	}
}

// WithOnConnect calls f once per transport whose data channel opened, with
// the selected candidate pair (RFC 8445 §8.1.1): diagnostics ("did this
// transfer go through the TURN relay?") and tests. f runs on a Pion
// goroutine and must not block.
func WithOnConnect(f func(local, remote *Addr)) Option {
	return func(c *config) { c.onConnect = f }
}

func newConfig(opts []Option) config {
	c := config{msgSize: defaultMsgSize, connectTimeout: defaultConnectTimeout, gatherWait: defaultGatherWait}
	for _, o := range opts {
		o(&c)
	}
	return c
}

// api builds the Pion API for the configuration: detached data channels,
// the interface/IP filters, mDNS off unless asked for.
func (c *config) api() (*webrtc.API, error) {
	var se webrtc.SettingEngine
	se.DetachDataChannels()
	se.SetIncludeLoopbackCandidate(c.loopback)
	if len(c.interfaces) > 0 {
		names := map[string]bool{}
		for _, n := range c.interfaces {
			names[n] = true
		}
		se.SetInterfaceFilter(func(name string) bool { return names[name] })
	}
	if c.ipFilter != nil {
		se.SetIPFilter(c.ipFilter)
	}
	if c.mdns {
		se.SetICEMulticastDNSMode(pice.MulticastDNSModeQueryAndGather)
	} else {
		se.SetICEMulticastDNSMode(pice.MulticastDNSModeDisabled)
	}
	if c.udp4Only {
		se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	} else {
		se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4, webrtc.NetworkTypeUDP6})
	}
	if c.net != nil {
		se.SetNet(c.net)
	}
	se.SetSCTPMaxMessageSize(recvMessageSize)
	return webrtc.NewAPI(webrtc.WithSettingEngine(se)), nil
}

func (c *config) rtcConfig() webrtc.Configuration {
	rc := webrtc.Configuration{ICEServers: c.iceServers}
	if c.relayOnly {
		rc.ICETransportPolicy = webrtc.ICETransportPolicyRelay
	}
	return rc
}

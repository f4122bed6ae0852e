// Package engine assembles one XMPP connection with Jingle file transfer on
// it: the client, the jingle Manager, the file-transfer application and the
// transports. The CLI, the demo and the benchmarks share it.
//
// It is glue, not API: applications that embed xjingle wire the public
// packages themselves (see examples/).
package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/pion/webrtc/v4"
	"github.com/xjingle/xjingle/client"
	"github.com/xjingle/xjingle/ibb"
	"github.com/xjingle/xjingle/jingle"
	"github.com/xjingle/xjingle/jingle/filetransfer"
	"github.com/xjingle/xjingle/socks5"
	"github.com/xjingle/xjingle/transports/ice"
	"github.com/xjingle/xjingle/transports/inline"
	"mellium.im/xmpp/jid"
)

// Rungs maps the names users give to --transports to transport namespaces.
var Rungs = map[string]string{
	"inline": inline.NS,
	"ibb":    ibb.NSJingle,
	"socks5": socks5.NS,
	"ice":    ice.NSDataChannel,
}

// DefaultTransports is the default ladder: a tiny file in one stanza
// (inline, only when it fits the limit and the peer has it), else ICE with a
// WebRTC data channel when the peer advertises it (XEP-0343; skipped
// silently when it does not, as Conversations prefers it whenever the peer
// advertises it), then SOCKS5 bytestreams (direct, then through the server's
// proxy), then IBB through the server (XEP-0260 §2.7).
var DefaultTransports = []string{"inline", "ice", "socks5", "ibb"}

// MaxInline caps Config.InlineMax: servers limit stanza sizes.
const MaxInline = inline.MaxStanzaSize

// ErrInlineDisabled: --transports names only inline, which is disabled.
var ErrInlineDisabled = errors.New("the inline transport is disabled (inline_max 0)")

// ProxyLookupTimeout bounds New's search for the server's XEP-0065 proxy.
const ProxyLookupTimeout = 5 * time.Second

// ProxyConnectTimeout bounds each connection attempt to a SOCKS5 candidate
// through the user's own proxy (Config.Proxy): building a Tor circuit alone
// can take several seconds. It stays well under the ladder's 30 s rung
// timeout.
const ProxyConnectTimeout = 15 * time.Second

// RungName is the user-facing name of a transport namespace.
func RungName(ns string) string {
	if ns == ice.NSICEUDP {
		return "ice" // the XEP-0343 v0.3 form of the same rung
	}
	for k, v := range Rungs {
		if v == ns {
			return k
		}
	}
	return ns
}

// ParseTransports turns "socks5,ibb" (or several such items) into namespaces,
// in order.
func ParseTransports(list []string) ([]string, error) {
	var out []string
	for _, item := range list {
		for _, name := range strings.Split(item, ",") {
			name = strings.TrimSpace(strings.ToLower(name))
			if name == "" {
				continue
			}
			ns, ok := Rungs[name]
			if !ok {
				return nil, fmt.Errorf("unknown transport %q (known: %s)", name, strings.Join(RungNames(), ", "))
			}
			out = append(out, ns)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no transport named")
	}
	return out, nil
}

// WithoutUDP drops from order the transports that a SOCKS5 CONNECT proxy
// cannot carry (ICE: UDP), for a user behind their own proxy; dropped names
// them by their --transports names.
func WithoutUDP(order []string) (kept, dropped []string) {
	for _, ns := range order {
		switch ns {
		case ice.NSDataChannel, ice.NSICEUDP:
			dropped = append(dropped, RungName(ns))
		default:
			kept = append(kept, ns)
		}
	}
	return kept, dropped
}

// RungNames lists the known transport names, sorted.
func RungNames() []string {
	var names []string
	for k := range Rungs {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

// Config is what New needs.
type Config struct {
	Client client.Config
	// Store receives files; nil declines every offer.
	Store   *filetransfer.Store
	AppOpts []filetransfer.Option
	// IBBBlockSize is the block size we offer for IBB (0: ibb's default).
	IBBBlockSize int
	// Interfaces restricts SOCKS5 direct candidates and ICE gathering to
	// these network interfaces (socks5.WithInterfaces,
	// ice.WithInterfaces; "lo" allows loopback). Empty: every up,
	// non-loopback interface.
	Interfaces []string
	// Addresses, if set, are the exact local addresses SOCKS5 offers
	// (socks5.WithAddresses; wins over Interfaces).
	Addresses []netip.Addr
	// NoProxy skips the search for the server's SOCKS5 proxy.
	NoProxy bool
	// NoDirect offers no direct SOCKS5 candidate and makes ICE
	// relay-only (our addresses stay private; only the server's proxy or
	// a TURN relay carries the data). Without a TURN server ICE is then
	// neither advertised nor offered.
	NoDirect bool
	// SOCKS5Options are appended to the SOCKS5 factory's options (tests:
	// socks5.WithoutDirect).
	SOCKS5Options []socks5.Option
	// NoExternalServices skips asking the server for STUN/TURN services
	// (XEP-0215) for ICE.
	NoExternalServices bool
	// ICEServers are STUN/TURN servers given by hand (--stun, --turn),
	// used besides those the server announces (XEP-0215).
	ICEServers []webrtc.ICEServer
	// ICEOptions are appended to the ICE factories' options.
	ICEOptions []ice.Option
	// InlineMax is the largest file sent or accepted in one stanza (the
	// inline transport): 0 means inline.DefaultMaxSize, negative disables
	// inline (not registered, not advertised); at most MaxInline.
	InlineMax int64
	// Proxy is the user's own SOCKS5 proxy (--proxy, ALL_PROXY); nil
	// connects directly. With it, every outgoing TCP connection goes
	// through it: to the XMPP server, to the peer's streamhosts and to
	// the server's SOCKS5 proxy. Then, too:
	//   - each SOCKS5 candidate gets ProxyConnectTimeout, not
	//     socks5.DefaultConnectTimeout (a Tor circuit takes seconds);
	//     SOCKS5Options can still set another;
	//   - no direct SOCKS5 candidate is offered unless Interfaces or
	//     Addresses name where to (behind a proxy we are usually not
	//     reachable, and our candidates would tell the peer our local
	//     addresses);
	//   - ICE is not registered (nor advertised): UDP cannot go through a
	//     SOCKS5 CONNECT proxy, and ICE candidates would leak our
	//     addresses.
	Proxy  *client.ProxyDialer
	Logger *slog.Logger
}

// Engine is one XMPP connection with Jingle file transfer on it.
type Engine struct {
	Client  *client.Client
	IBB     *ibb.Handler
	SOCKS5  *socks5.Factory
	Manager *jingle.Manager
	App     *filetransfer.App
	// Proxy is the server's SOCKS5 proxy the SOCKS5 transport offers, if
	// one was found.
	Proxy *socks5.StreamHost
	// Inline is the inline transport, nil when disabled.
	Inline *inline.Factory
	// ICEServers are the STUN/TURN servers ICE uses: those given in
	// Config.ICEServers, then those the server announced (XEP-0215).
	ICEServers []webrtc.ICEServer
	// ICEOptions are the options the ICE factories were made with (for
	// diagnostics such as ice.Probe).
	ICEOptions []ice.Option

	log *slog.Logger
	// noICE: NoDirect without any TURN server; ICE could only reveal
	// our addresses (host candidates) or gather nothing, so the ice rung
	// is left out of every ladder and ICE is not advertised.
	noICE bool
}

// New connects and registers the file-transfer application and the
// transports on a Jingle manager.
func New(ctx context.Context, cfg Config) (*Engine, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg.Client.Logger = log
	if cfg.InlineMax > MaxInline {
		return nil, fmt.Errorf("inline max %d bytes: more than %d", cfg.InlineMax, MaxInline)
	}
	if cfg.Proxy != nil {
		log.Info("engine: connecting through the SOCKS5 proxy", "proxy", cfg.Proxy.String(), "remote_dns", cfg.Proxy.RemoteDNS())
		cfg.Client.Dialer = cfg.Proxy
		if len(cfg.Interfaces) == 0 && len(cfg.Addresses) == 0 && !cfg.NoDirect {
			log.Info("engine: behind a proxy: offering no direct SOCKS5 candidate (name an --interface to offer one)", "proxy", cfg.Proxy.String())
			cfg.NoDirect = true
		}
	}
	cl, err := client.Dial(ctx, cfg.Client)
	if err != nil {
		return nil, err
	}
	e := &Engine{Client: cl}
	if cfg.InlineMax >= 0 {
		var opts []inline.Option
		if cfg.InlineMax > 0 {
			opts = append(opts, inline.WithMaxSize(cfg.InlineMax))
		}
		if e.Inline, err = inline.NewFactory(opts...); err != nil {
			cl.Close()
			return nil, err
		}
	}
	ibbOpts := []ibb.Option{ibb.WithLogger(log)}
	if cfg.IBBBlockSize > 0 {
		ibbOpts = append(ibbOpts, ibb.WithBlockSize(cfg.IBBBlockSize))
	}
	e.IBB, err = ibb.NewHandler(cl, ibbOpts...)
	if err != nil {
		cl.Close()
		return nil, fmt.Errorf("ibb: %w", err)
	}
	s5opts := []socks5.Option{}
	if len(cfg.Interfaces) > 0 {
		s5opts = append(s5opts, socks5.WithInterfaces(cfg.Interfaces...))
	}
	if len(cfg.Addresses) > 0 {
		s5opts = append(s5opts, socks5.WithAddresses(cfg.Addresses...))
	}
	if cfg.NoDirect {
		s5opts = append(s5opts, socks5.WithoutDirect())
	}
	if cfg.Proxy != nil {
		s5opts = append(s5opts, socks5.WithDialer(cfg.Proxy), socks5.WithConnectTimeout(ProxyConnectTimeout))
	}
	if !cfg.NoProxy {
		if h, ok := findProxy(ctx, cl, log); ok {
			e.Proxy = &h
			s5opts = append(s5opts, socks5.WithProxy(h))
		}
	}
	e.SOCKS5, err = socks5.NewFactory(append(s5opts, cfg.SOCKS5Options...)...)
	if err != nil {
		e.IBB.Close()
		cl.Close()
		return nil, fmt.Errorf("socks5: %w", err)
	}
	e.log = log
	var dc, iceUDP jingle.TransportFactory
	if cfg.Proxy != nil {
		// UDP cannot go through a SOCKS5 CONNECT proxy, and ICE
		// candidates would reveal our addresses.
		log.Debug("engine: behind a proxy: ICE disabled (UDP cannot go through a SOCKS5 proxy)")
		e.noICE = true
	} else if dc, iceUDP, err = e.iceFactories(ctx, cl, cfg, log); err != nil {
		e.IBB.Close()
		cl.Close()
		return nil, err
	}
	e.App = filetransfer.New(cfg.Store, append([]filetransfer.Option{filetransfer.WithLogger(log)}, cfg.AppOpts...)...)
	mopts := []jingle.Option{
		jingle.WithLogger(log),
		jingle.WithApplication(e.App),
		jingle.WithTransport(e.IBB.JingleTransport()),
		jingle.WithTransport(e.SOCKS5),
	}
	if e.Inline != nil {
		// Registered, so advertised in disco#info (NewManager).
		mopts = append(mopts, jingle.WithTransport(e.Inline))
	}
	if !e.noICE {
		// Without noICE only: a receiver that could offer no ICE
		// candidate at all must not advertise ICE, or senders would
		// try it and wait out its timeout.
		mopts = append(mopts, jingle.WithTransport(dc), jingle.WithTransport(iceUDP))
	}
	e.Manager, err = jingle.NewManager(cl, mopts...)
	if err != nil {
		e.IBB.Close()
		cl.Close()
		return nil, fmt.Errorf("jingle: %w", err)
	}
	if !e.noICE {
		// The Manager advertises the two transport namespaces; a data
		// channel also needs DTLS (XEP-0320) and, for the v0.3 form,
		// dtls-sctp (XEP-0343 §6), which is what StanzaJS looks for.
		cl.AddFeature(ice.NSDTLS)
		cl.AddFeature(ice.NSSCTP)
	}
	return e, nil
}

func hasTURN(servers []webrtc.ICEServer) bool {
	for _, s := range servers {
		for _, u := range s.URLs {
			if strings.HasPrefix(u, "turn:") || strings.HasPrefix(u, "turns:") {
				return true
			}
		}
	}
	return false
}

// iceServers turns the server's STUN/TURN services (XEP-0215) into ICE
// servers; none is fine.
func iceServers(ctx context.Context, cl *client.Client, log *slog.Logger) []webrtc.ICEServer {
	ctx, cancel := context.WithTimeout(ctx, ProxyLookupTimeout)
	defer cancel()
	svcs, err := cl.ExternalServices(ctx)
	if err != nil {
		log.Debug("engine: no external services", "err", err)
		return nil
	}
	var out []webrtc.ICEServer
	for _, s := range svcs {
		if s.Host == "" || s.Port <= 0 || s.Port > 65535 {
			continue
		}
		hostport := net.JoinHostPort(s.Host, strconv.Itoa(s.Port))
		switch s.Type {
		case "stun":
			out = append(out, webrtc.ICEServer{URLs: []string{"stun:" + hostport}})
		case "turn", "turns":
			if s.Username == "" {
				continue // a TURN server we have no credentials for is no use
			}
			url := s.Type + ":" + hostport
			if s.Transport != "" {
				url += "?transport=" + s.Transport
			}
			out = append(out, webrtc.ICEServer{URLs: []string{url}, Username: s.Username, Credential: s.Password})
		}
	}
	return out
}

// findProxy asks the server for its XEP-0065 proxy (XEP-0065 §4); none is
// fine: SOCKS5 then offers direct candidates only.
func findProxy(ctx context.Context, cl *client.Client, log *slog.Logger) (socks5.StreamHost, bool) {
	ctx, cancel := context.WithTimeout(ctx, ProxyLookupTimeout)
	defer cancel()
	sh, err := cl.FindProxy65(ctx)
	if err != nil {
		log.Debug("engine: no SOCKS5 proxy", "err", err)
		return socks5.StreamHost{}, false
	}
	if sh.Port <= 0 || sh.Port > 65535 || sh.Host == "" {
		log.Info("engine: SOCKS5 proxy with a bad address ignored", "host", sh.Host, "port", sh.Port)
		return socks5.StreamHost{}, false
	}
	log.Debug("engine: SOCKS5 proxy", "jid", sh.JID.String(), "host", sh.Host, "port", sh.Port)
	return socks5.StreamHost{JID: sh.JID, Host: sh.Host, Port: uint16(sh.Port)}, true
}

// SendOptions are the file-transfer options for a ladder of transport
// namespaces (from ParseTransports) to peer, narrowed to what the peer
// advertises. The ice rung becomes the wire form the peer advertises
// (ICENamespace) and is dropped, silently, when the peer has none; inline
// is kept for files up to our limit (a larger file skips it; one with only
// inline fails before anything is sent), and dropped when disabled. Other
// rungs keep their order. If nothing is left, Send fails (see
// CheckTransports).
func (e *Engine) SendOptions(ctx context.Context, peer jid.JID, order []string) filetransfer.SendOptions {
	o := filetransfer.SendOptions{Transports: e.resolveICE(ctx, peer, order), Features: e.Client}
	if e.Inline == nil {
		o.Transports = slices.DeleteFunc(slices.Clone(o.Transports), func(ns string) bool { return ns == inline.NS })
	} else {
		o.SizeLimits = map[string]int64{inline.NS: e.Inline.MaxSize()}
	}
	return o
}

// CheckTransports fails when the ladder (namespaces) has nothing usable:
// only inline while it is disabled.
func (e *Engine) CheckTransports(order []string) error {
	if e.Inline == nil && len(order) > 0 && !slices.ContainsFunc(order, func(ns string) bool { return ns != inline.NS }) {
		return ErrInlineDisabled
	}
	return nil
}

// resolveICE replaces the ice rung of order with the form peer speaks.
func (e *Engine) resolveICE(ctx context.Context, peer jid.JID, order []string) []string {
	at := slices.IndexFunc(order, isICE)
	if at < 0 {
		return order
	}
	ns := ""
	if !e.noICE {
		fs, err := e.Client.PeerFeatures(ctx, peer)
		if err != nil {
			// The ladder's own narrowing will keep every rung too;
			// offer the form Conversations and we prefer.
			e.log.Info("engine: peer features unknown; offering ice as is", "peer", peer.String(), "err", err)
			ns = ice.NSDataChannel
		} else {
			ns = ICENamespace(fs)
		}
	}
	out := make([]string, 0, len(order))
	for i, r := range order {
		switch {
		case !isICE(r):
			out = append(out, r)
		case i == at && ns != "":
			out = append(out, ns)
		}
	}
	if ns == "" {
		e.log.Debug("engine: ice rung skipped", "peer", peer.String(), "relay_only_without_turn", e.noICE)
	}
	return out
}

func isICE(ns string) bool { return ns == ice.NSDataChannel || ns == ice.NSICEUDP }

// ICENamespace is the ice rung's wire form for a peer advertising
// features: the webrtc-datachannel:1 wrapper when advertised (Conversations
// 2.13+, us), else ICE-UDP with <sctpmap/> (XEP-0343 v0.3) when the peer
// advertises ICE-UDP and dtls-sctp (StanzaJS), else "": the peer has no
// data channel (Dino advertises ICE-UDP and DTLS for calls only).
func ICENamespace(features []string) string {
	switch {
	case slices.Contains(features, ice.NSDataChannel):
		return ice.NSDataChannel
	case slices.Contains(features, ice.NSICEUDP) && slices.Contains(features, ice.NSSCTP):
		return ice.NSICEUDP
	}
	return ""
}

// Close ends every session, then the connection.
func (e *Engine) Close() error {
	return errors.Join(e.Manager.Close(), e.IBB.Close(), e.Client.Close())
}

// ResolvePeer turns a JID into the full JID to send to: a full JID is checked
// for file-transfer support, a bare one is resolved from presence to its best
// resource that supports it.
func (e *Engine) ResolvePeer(ctx context.Context, to string) (jid.JID, error) {
	j, err := jid.Parse(to)
	if err != nil {
		return jid.JID{}, fmt.Errorf("bad JID %q: %w", to, err)
	}
	list, err := e.Client.Resolve(ctx, j, filetransfer.NS)
	if err != nil {
		return jid.JID{}, err
	}
	return list[0], nil
}

// iceFactories makes the two ICE factories (the webrtc-datachannel:1
// wrapper and the XEP-0343 v0.3 ICE-UDP form) with the STUN/TURN servers
// given by hand and those the server announces (XEP-0215).
func (e *Engine) iceFactories(ctx context.Context, cl *client.Client, cfg Config, log *slog.Logger) (dc, iceUDP jingle.TransportFactory, err error) {
	iceOpts := []ice.Option{}
	if len(cfg.Interfaces) > 0 {
		iceOpts = append(iceOpts, ice.WithInterfaces(cfg.Interfaces...))
	}
	e.ICEServers = append(e.ICEServers, cfg.ICEServers...)
	if !cfg.NoExternalServices {
		e.ICEServers = append(e.ICEServers, iceServers(ctx, cl, log)...)
	}
	if len(e.ICEServers) > 0 {
		iceOpts = append(iceOpts, ice.WithICEServers(e.ICEServers...))
	}
	if cfg.NoDirect {
		// --no-direct keeps our addresses private: ICE may use TURN
		// relay candidates only (RFC 8445 §5.1.1), and without a TURN
		// server it is not offered at all.
		iceOpts = append(iceOpts, ice.WithRelayOnly())
		e.noICE = !hasTURN(e.ICEServers)
	}
	iceOpts = append(iceOpts, cfg.ICEOptions...)
	e.ICEOptions = iceOpts
	if dc, err = ice.NewFactory(iceOpts...); err != nil {
		return nil, nil, fmt.Errorf("ice: %w", err)
	}
	if iceUDP, err = ice.NewICEUDPFactory(iceOpts...); err != nil {
		return nil, nil, fmt.Errorf("ice: %w", err)
	}
	return dc, iceUDP, nil
}

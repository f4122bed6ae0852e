package client

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"golang.org/x/net/proxy"
)

// Errors of a connection through the user's own SOCKS5 proxy. A *ProxyError
// matches one of them and also ErrUnreachable (errors.Is), so callers that
// only ask "could we reach the server?" need not know about proxies.
var (
	// ErrProxyUnreachable: no TCP connection to the proxy itself.
	ErrProxyUnreachable = errors.New("client: SOCKS5 proxy unreachable")
	// ErrProxyRefused: the proxy answered but refused (authentication
	// failed, or its CONNECT to the destination failed or was not allowed).
	ErrProxyRefused = errors.New("client: SOCKS5 proxy refused the connection")
)

// ProxyError is a failed connection through a ProxyDialer.
type ProxyError struct {
	// Proxy is the proxy's URL with any password redacted.
	Proxy string
	// Target is the host:port the proxy was asked to connect to.
	Target string
	// Refused: the proxy was reached but did not connect us (else it
	// could not be reached at all).
	Refused bool
	Err     error
}

func (e *ProxyError) Error() string {
	if e.Refused {
		return fmt.Sprintf("SOCKS5 proxy %s refused the connection to %s: %v", e.Proxy, e.Target, e.Err)
	}
	return fmt.Sprintf("SOCKS5 proxy %s unreachable (connecting to %s): %v", e.Proxy, e.Target, e.Err)
}

func (e *ProxyError) Unwrap() error { return e.Err }

// Is reports ErrUnreachable, and ErrProxyRefused or ErrProxyUnreachable.
func (e *ProxyError) Is(target error) bool {
	switch target {
	case ErrUnreachable:
		return true
	case ErrProxyRefused:
		return e.Refused
	case ErrProxyUnreachable:
		return !e.Refused
	}
	return false
}

// ProxyDialer carries TCP connections through a user's SOCKS5 proxy (RFC
// 1928 CONNECT, optional RFC 1929 user/password), with
// golang.org/x/net/proxy. Use it as Config.Dialer, and as the SOCKS5
// transport's dialer (socks5.WithDialer) so that streamhosts are reached
// through it too.
//
// With a socks5:// URL, host names are resolved locally and the proxy is
// given an IP address (as curl does); with socks5h:// the name itself goes
// to the proxy, which resolves it: required for Tor and .onion addresses,
// and Dial then skips its local SRV lookup (see RemoteDNS).
//
// Only TCP goes through it: UDP (ICE) cannot cross a SOCKS5 CONNECT proxy.
//
// Connections it returns have CloseWrite when the TCP connection to the
// proxy has it, so a sender's end of file (a half-close) still reaches the
// other side.
type ProxyDialer struct {
	url       *url.URL
	addr      string // host:port of the proxy
	auth      *proxy.Auth
	remoteDNS bool
	forward   *net.Dialer
	resolver  *net.Resolver
	bypass    *proxy.PerHost // nil: everything goes through the proxy
}

var _ proxy.ContextDialer = (*ProxyDialer)(nil)

// ProxyConnectTimeout bounds one DialContext (TCP to the proxy,
// authentication, CONNECT; or a direct connection to a bypassed host) when
// the caller's ctx has no deadline.
const ProxyConnectTimeout = 30 * time.Second

// NewProxyDialer returns a dialer for a socks5:// or socks5h:// URL
// (socks5h://user:password@127.0.0.1:9050; the port defaults to 1080).
func NewProxyDialer(u *url.URL) (*ProxyDialer, error) {
	if u == nil {
		return nil, errors.New("client: nil proxy URL")
	}
	d := &ProxyDialer{url: u, forward: &net.Dialer{}, resolver: net.DefaultResolver}
	switch strings.ToLower(u.Scheme) {
	case "socks5":
	case "socks5h":
		d.remoteDNS = true
	default:
		return nil, fmt.Errorf("client: proxy %s: unsupported scheme %q (want socks5:// or socks5h://)", u.Redacted(), u.Scheme)
	}
	host, port := u.Hostname(), u.Port()
	if host == "" {
		return nil, fmt.Errorf("client: proxy %s: no host", u.Redacted())
	}
	if port == "" {
		port = "1080"
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("client: proxy %s: want scheme://[user:password@]host:port and nothing else", u.Redacted())
	}
	d.addr = net.JoinHostPort(host, port)
	if u.User != nil {
		d.auth = &proxy.Auth{User: u.User.Username()}
		d.auth.Password, _ = u.User.Password()
		if len(d.auth.User) == 0 || len(d.auth.User) > 255 || len(d.auth.Password) > 255 {
			return nil, fmt.Errorf("client: proxy %s: user and password must be 1-255 and 0-255 bytes (RFC 1929)", u.Redacted())
		}
	}
	return d, nil
}

// ParseProxy parses a proxy URL for NewProxyDialer.
func ParseProxy(s string) (*ProxyDialer, error) {
	u, err := url.Parse(s)
	if err != nil {
		// url.Error would print the password back.
		return nil, errors.New("client: proxy URL does not parse (want socks5://host:port or socks5h://host:port)")
	}
	return NewProxyDialer(u)
}

// WithBypass returns a copy of d that connects directly, not through the
// proxy, to the hosts in list: NO_PROXY syntax ("localhost,.example.org,
// 10.0.0.0/8"), as golang.org/x/net/proxy.FromEnvironment does. Matching is
// on the name as dialed, before any local resolution.
func (d *ProxyDialer) WithBypass(list string) *ProxyDialer {
	c := *d
	c.bypass = nil
	if strings.TrimSpace(list) != "" {
		c.bypass = proxy.NewPerHost(viaProxy{&c}, c.forward)
		c.bypass.AddFromString(list)
	}
	return &c
}

// String is the proxy's URL with any password redacted, for messages.
func (d *ProxyDialer) String() string { return d.url.Redacted() }

// RemoteDNS reports whether names are resolved by the proxy (socks5h://).
// Dial skips SRV lookups then and connects to the domain on port 5222 (or
// Config.Server) through the proxy, so that no DNS query leaves this
// machine.
func (d *ProxyDialer) RemoteDNS() bool { return d.remoteDNS }

// DialContext implements proxy.ContextDialer: a TCP connection to address
// through the proxy (or directly, for a host WithBypass lists). Errors are
// *ProxyError.
func (d *ProxyDialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, ProxyConnectTimeout)
		defer cancel()
	}
	if d.bypass != nil {
		return d.bypass.DialContext(ctx, network, address)
	}
	return d.dialProxy(ctx, network, address)
}

// viaProxy is d without its bypass list (PerHost's default dialer).
type viaProxy struct{ d *ProxyDialer }

func (v viaProxy) Dial(network, address string) (net.Conn, error) {
	return v.d.dialProxy(context.Background(), network, address)
}

func (v viaProxy) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	return v.d.dialProxy(ctx, network, address)
}

func (d *ProxyDialer) dialProxy(ctx context.Context, network, address string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		return nil, fmt.Errorf("client: proxy: address %q: %w", address, err)
	}
	if d.remoteDNS || net.ParseIP(host) != nil {
		return d.connect(ctx, network, address)
	}
	// socks5://: resolve here, give the proxy addresses.
	ips, err := d.resolver.LookupIPAddr(ctx, host)
	if err != nil {
		return nil, fmt.Errorf("client: resolve %s for the SOCKS5 proxy (socks5h:// resolves at the proxy): %w", host, err)
	}
	var errs []error
	for i, ip := range ips {
		if i == 4 || ctx.Err() != nil {
			break
		}
		if ip.Zone != "" {
			continue // a proxy cannot use our interface's zone
		}
		c, err := d.connect(ctx, network, net.JoinHostPort(ip.IP.String(), port))
		if err == nil {
			return c, nil
		}
		errs = append(errs, err)
		var pe *ProxyError
		if errors.As(err, &pe) && !pe.Refused {
			break // the proxy itself is down; other addresses won't help
		}
	}
	if len(errs) == 0 {
		return nil, fmt.Errorf("client: resolve %s for the SOCKS5 proxy: no usable address", host)
	}
	return nil, errors.Join(errs...)
}

// connect runs one CONNECT through the proxy.
func (d *ProxyDialer) connect(ctx context.Context, network, address string) (net.Conn, error) {
	// The x/net dialer is built per call so that we see the TCP
	// connection to the proxy: it tells "unreachable" from "refused",
	// and it has the CloseWrite the x/net conn hides.
	var raw net.Conn
	fw := forwardFunc(func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := d.forward.DialContext(ctx, network, addr)
		raw = c
		return c, err
	})
	pd, err := proxy.SOCKS5("tcp", d.addr, d.auth, fw)
	if err != nil {
		return nil, &ProxyError{Proxy: d.String(), Target: address, Err: err}
	}
	c, err := pd.(proxy.ContextDialer).DialContext(ctx, network, address)
	if err != nil {
		var oe *net.OpError
		if errors.As(err, &oe) && oe.Err != nil {
			err = oe.Err // x/net's OpError repeats proxy and target
		}
		if m, ok := strings.CutPrefix(err.Error(), "unknown error "); ok {
			// x/net's wording for a known RFC 1928 §6 reply code.
			err = errors.New("proxy replied: " + m)
		}
		if ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
			err = errors.Join(ctx.Err(), err)
		}
		return nil, &ProxyError{Proxy: d.String(), Target: address, Refused: raw != nil, Err: err}
	}
	if tc, ok := raw.(interface{ CloseWrite() error }); ok {
		return &proxiedConn{Conn: c, cw: tc}, nil
	}
	return c, nil
}

type forwardFunc func(ctx context.Context, network, addr string) (net.Conn, error)

func (f forwardFunc) Dial(network, addr string) (net.Conn, error) {
	return f(context.Background(), network, addr)
}

func (f forwardFunc) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	return f(ctx, network, addr)
}

// proxiedConn is a connection through the proxy with the half-close of the
// TCP connection under it: after CONNECT the proxy relays a FIN as a FIN.
type proxiedConn struct {
	net.Conn
	cw interface{ CloseWrite() error }
}

// CloseWrite shuts down the writing side of the TCP connection to the proxy.
func (c *proxiedConn) CloseWrite() error { return c.cw.CloseWrite() }

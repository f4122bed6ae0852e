package socks5

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"
)

// Factory defaults.
const (
	DefaultConnectTimeout = 5 * time.Second
	// DefaultStagger is the delay between connection attempts to
	// successive candidates (XEP-0260 §4 item 2 suggests 200 ms).
	DefaultStagger = 200 * time.Millisecond
)

// Option configures a Factory. Options apply only at construction.
type Option func(*Factory) error

// WithInterfaces restricts direct candidates to the addresses of the named
// network interfaces (repeatable; the CLI's --interface). Loopback addresses
// are offered only through a loopback interface named here ("lo"). Without
// this option and WithAddresses, every up, non-loopback interface is used.
func WithInterfaces(names ...string) Option {
	return func(f *Factory) error {
		for _, n := range names {
			if n == "" {
				return errors.New("socks5: empty interface name")
			}
		}
		f.ifaces = append(f.ifaces, names...)
		return nil
	}
}

// WithAddresses offers direct candidates on exactly these local IP
// addresses (a listener on an ephemeral port each), in this order of
// preference. Tests use WithAddresses(netip.MustParseAddr("127.0.0.1")).
// It overrides WithInterfaces.
func WithAddresses(addrs ...netip.Addr) Option {
	return func(f *Factory) error {
		for _, a := range addrs {
			if !a.IsValid() || a.IsUnspecified() || a.IsMulticast() {
				return fmt.Errorf("socks5: unusable candidate address %v", a)
			}
		}
		f.addrs = append(f.addrs, addrs...)
		f.addrsSet = true
		return nil
	}
}

// WithoutDirect offers no direct candidate (only the proxy's, if any).
func WithoutDirect() Option {
	return func(f *Factory) error {
		f.addrs = nil
		f.addrsSet = true
		return nil
	}
}

// WithProxy adds a proxy (mediated, XEP-0065 §6) candidate for this
// streamhost to every offer and answer: typically the server's mod_proxy65,
// which the client discovers (XEP-0065 §4).
func WithProxy(h StreamHost) Option {
	return func(f *Factory) error {
		if h.JID.Equal(emptyJID) || !validHost(h.Host) || h.Port == 0 {
			return fmt.Errorf("socks5: bad proxy %q at %s", h.JID, h.Addr())
		}
		f.proxy = &h
		return nil
	}
}

// WithConnectTimeout bounds each connection attempt to a candidate (TCP
// connect plus SOCKS5 handshake). Default DefaultConnectTimeout.
func WithConnectTimeout(d time.Duration) Option {
	return func(f *Factory) error {
		if d <= 0 {
			return fmt.Errorf("socks5: connect timeout %v", d)
		}
		f.connectTimeout = d
		return nil
	}
}

// WithHandshakeTimeout bounds the handshake of a client connecting to one of
// our candidates, and how long we wait for the peer's connection to our
// nominated candidate. Default DefaultHandshakeTimeout.
func WithHandshakeTimeout(d time.Duration) Option {
	return func(f *Factory) error {
		if d <= 0 {
			return fmt.Errorf("socks5: handshake timeout %v", d)
		}
		f.handshakeTimeout = d
		return nil
	}
}

// WithStagger sets the delay between connection attempts to successive
// candidates in priority order (XEP-0260 §4); proxy candidates wait one more
// step. Zero starts all attempts at once. Default DefaultStagger.
func WithStagger(d time.Duration) Option {
	return func(f *Factory) error {
		if d < 0 {
			return fmt.Errorf("socks5: stagger %v", d)
		}
		f.stagger = d
		return nil
	}
}

// WithDialer sets the dialer for outgoing TCP connections to candidates:
// the peer's streamhosts and the proxy, e.g. a client.ProxyDialer for the
// user's own SOCKS5 proxy (the XEP-0065 handshake then runs inside the
// proxy's CONNECT tunnel). Its connections should have CloseWrite, as
// *net.TCPConn and client.ProxyDialer's do, so that the sender's end of file
// is a half-close.
func WithDialer(d ContextDialer) Option {
	return func(f *Factory) error {
		if d == nil {
			return errors.New("socks5: nil dialer")
		}
		f.dialer = d
		return nil
	}
}

// WithListen sets how listeners for direct candidates are opened (network
// is "tcp4" or "tcp6", address an "ip:0"). Default net.ListenConfig.Listen.
func WithListen(listen func(ctx context.Context, network, address string) (net.Listener, error)) Option {
	return func(f *Factory) error {
		if listen == nil {
			return errors.New("socks5: nil listen func")
		}
		f.listen = listen
		return nil
	}
}

// localAddrs returns the addresses of the interfaces we may offer: those
// named (any kind, loopback included), or else every up, non-loopback one.
// Link-local addresses need a zone that a candidate cannot carry and are
// left out.
func localAddrs(names []string) ([]netip.Addr, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("socks5: list interfaces: %w", err)
	}
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	var v4, v6 []netip.Addr
	found := map[string]bool{}
	for _, ifc := range ifs {
		if len(want) > 0 && !want[ifc.Name] {
			continue
		}
		found[ifc.Name] = true
		if ifc.Flags&net.FlagUp == 0 {
			continue
		}
		if len(want) == 0 && ifc.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, err := ifc.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			pfx, err := netip.ParsePrefix(a.String())
			if err != nil {
				continue
			}
			ip := pfx.Addr().Unmap()
			if ip.IsLinkLocalUnicast() || ip.IsMulticast() || ip.IsUnspecified() {
				continue
			}
			if ip.Is4() {
				v4 = append(v4, ip)
			} else {
				v6 = append(v6, ip)
			}
		}
	}
	for _, n := range names {
		if !found[n] {
			return nil, fmt.Errorf("socks5: no interface %q", n)
		}
	}
	return append(v4, v6...), nil
}

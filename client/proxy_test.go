package client_test

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/xjingle/xjingle/client"
	"github.com/xjingle/xjingle/internal/testbed"
)

func proxyDialer(t *testing.T, rawURL string) *client.ProxyDialer {
	t.Helper()
	d, err := client.ParseProxy(rawURL)
	if err != nil {
		t.Fatalf("ParseProxy(%q): %v", rawURL, err)
	}
	return d
}

// TestDialThroughProxy: the c2s connection goes through the user's SOCKS5
// proxy (with RFC 1929 authentication), with STARTTLS and with direct TLS.
func TestDialThroughProxy(t *testing.T) {
	b := sharedBed(t)
	p := testbed.StartSOCKSProxy(t, testbed.SOCKSProxyOptions{User: "tor", Password: "s3cret"})
	for _, tc := range []struct {
		name      string
		server    string
		directTLS bool
	}{
		{"starttls", b.C2SAddr, false},
		{"direct-tls", b.DirectTLSAddr, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := b.AddUser(t, userName(t, "proxied"))
			cfg := config(b, a)
			cfg.Server, cfg.DirectTLS = tc.server, tc.directTLS
			cfg.Dialer = proxyDialer(t, p.URL("socks5"))
			c := dialCfg(t, cfg)
			if c.LocalJID().Bare().String() != a.JID {
				t.Errorf("bound %s, want %s", c.LocalJID(), a.JID)
			}
			if !p.Saw(tc.server) {
				t.Errorf("proxy requests %+v, want a CONNECT to %s", p.Requests(), tc.server)
			}
			for _, r := range p.Requests() {
				if r.User != "tor" {
					t.Errorf("request %+v not authenticated as tor", r)
				}
			}
			// The stream through the proxy carries IQs both ways.
			if _, err := c.DiscoInfo(testCtx(t, 10*time.Second), c.LocalJID().Domain()); err != nil {
				t.Errorf("disco#info to the server through the proxy: %v", err)
			}
		})
	}
}

// TestDialThroughProxyRemoteDNS: with socks5h:// and no Server, Dial looks
// up nothing locally (the bed's domain has no DNS at all) and asks the proxy
// for the domain name on 5222.
func TestDialThroughProxyRemoteDNS(t *testing.T) {
	b := sharedBed(t)
	want := net.JoinHostPort(b.Domain, "5222")
	p := testbed.StartSOCKSProxy(t, testbed.SOCKSProxyOptions{PortMap: map[string]string{want: b.C2SAddr}})
	a := b.AddUser(t, userName(t, "onion"))
	cfg := config(b, a)
	cfg.Server = ""
	cfg.Dialer = proxyDialer(t, p.URL("socks5h"))
	dialCfg(t, cfg)
	reqs := p.Requests()
	if len(reqs) != 1 || reqs[0].Dest != want || !reqs[0].Domain || reqs[0].Reply != 0 {
		t.Errorf("proxy requests %+v, want exactly one CONNECT to the name %s", reqs, want)
	}
}

// TestDialThroughProxyLocalDNS: with socks5:// the name is resolved here and
// the proxy is given addresses only. localhost may resolve to ::1 first,
// where the bed does not listen: the proxy refuses that one and the next
// address is tried.
func TestDialThroughProxyLocalDNS(t *testing.T) {
	b := sharedBed(t)
	_, port, _ := net.SplitHostPort(b.C2SAddr)
	p := testbed.StartSOCKSProxy(t, testbed.SOCKSProxyOptions{})
	a := b.AddUser(t, userName(t, "localdns"))
	cfg := config(b, a)
	cfg.Server = net.JoinHostPort("localhost", port)
	cfg.Dialer = proxyDialer(t, p.URL("socks5"))
	dialCfg(t, cfg)
	reqs := p.Requests()
	if len(reqs) == 0 {
		t.Fatal("the proxy saw no request")
	}
	for _, r := range reqs {
		if r.Domain {
			t.Errorf("proxy was given the name %s; socks5:// must resolve locally", r.Dest)
		}
	}
	if !p.Saw(b.C2SAddr) {
		t.Errorf("proxy requests %+v, want a CONNECT to %s", reqs, b.C2SAddr)
	}
}

// TestDialProxyErrors: an unreachable proxy, a refusing one and wrong
// credentials each give a one-line error that names the proxy (never its
// password) and keeps ErrUnreachable.
func TestDialProxyErrors(t *testing.T) {
	b := sharedBed(t)
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close() // nothing listens there now
	refusing := testbed.StartSOCKSProxy(t, testbed.SOCKSProxyOptions{Refuse: true})
	authed := testbed.StartSOCKSProxy(t, testbed.SOCKSProxyOptions{User: "u", Password: "right"})
	a := b.AddUser(t, userName(t, "proxyerr"))
	for _, tc := range []struct {
		name     string
		url      string
		sentinel error
		mention  []string
	}{
		{"unreachable", "socks5://user:hunter2@" + dead, client.ErrProxyUnreachable, []string{dead, "unreachable"}},
		{"refused", refusing.URL("socks5"), client.ErrProxyRefused, []string{refusing.Addr, "refused", "not allowed"}},
		{"bad-password", "socks5h://u:hunter2@" + authed.Addr, client.ErrProxyRefused, []string{authed.Addr, "refused"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := config(b, a)
			cfg.Dialer = proxyDialer(t, tc.url)
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			c, err := client.Dial(ctx, cfg)
			if err == nil {
				c.Close()
				t.Fatal("Dial through a failing proxy succeeded")
			}
			if !errors.Is(err, tc.sentinel) || !errors.Is(err, client.ErrUnreachable) {
				t.Errorf("error %v: want %v and ErrUnreachable", err, tc.sentinel)
			}
			t.Logf("error: %v", err)
			var pe *client.ProxyError
			if !errors.As(err, &pe) || pe.Target != b.C2SAddr {
				t.Errorf("error %v: want a *ProxyError for target %s", err, b.C2SAddr)
			}
			msg := err.Error()
			for _, m := range tc.mention {
				if !strings.Contains(msg, m) {
					t.Errorf("error %q does not mention %q", msg, m)
				}
			}
			if strings.Contains(msg, "hunter2") {
				t.Errorf("error %q shows the proxy password", msg)
			}
			if strings.Contains(msg, "\n") {
				t.Errorf("error %q is not one line", msg)
			}
		})
	}
	if refusing.Saw(b.C2SAddr) || len(refusing.Requests()) != 1 {
		t.Errorf("refusing proxy requests %+v, want one refused CONNECT", refusing.Requests())
	}
}

func TestParseProxy(t *testing.T) {
	for _, tc := range []struct {
		in        string
		ok        bool
		remoteDNS bool
		str       string
	}{
		{"socks5://127.0.0.1:9050", true, false, "socks5://127.0.0.1:9050"},
		{"socks5h://127.0.0.1:9050", true, true, "socks5h://127.0.0.1:9050"},
		{"SOCKS5H://127.0.0.1", true, true, "socks5h://127.0.0.1"},
		{"socks5://alice:pw@[::1]:1080", true, false, "socks5://alice:xxxxx@[::1]:1080"},
		{"http://127.0.0.1:8080", false, false, ""},
		{"socks4://127.0.0.1:1080", false, false, ""},
		{"127.0.0.1:1080", false, false, ""},
		{"socks5://", false, false, ""},
		{"socks5://127.0.0.1:1080/path", false, false, ""},
		{"socks5://:pw@127.0.0.1:1080", false, false, ""},
		{"socks5://a:b@127.0.0.1:1080 x", false, false, ""},
	} {
		d, err := client.ParseProxy(tc.in)
		if (err == nil) != tc.ok {
			t.Errorf("ParseProxy(%q) error %v, want ok=%v", tc.in, err, tc.ok)
			continue
		}
		if err != nil {
			if strings.Contains(err.Error(), "pw") && strings.Contains(tc.in, ":pw@") {
				t.Errorf("ParseProxy(%q) error %q shows the password", tc.in, err)
			}
			continue
		}
		if d.RemoteDNS() != tc.remoteDNS || d.String() != tc.str {
			t.Errorf("ParseProxy(%q) = remoteDNS %v, %q; want %v, %q", tc.in, d.RemoteDNS(), d.String(), tc.remoteDNS, tc.str)
		}
	}
}

// TestProxyDialerHalfCloseAndBypass: a connection through the proxy keeps
// CloseWrite (the far side sees EOF, and can still answer), and a host on
// the bypass list is dialed directly.
func TestProxyDialerHalfCloseAndBypass(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	served := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			served <- err
			return
		}
		defer c.Close()
		b, err := io.ReadAll(c) // until the client's half-close
		if err == nil {
			_, err = c.Write([]byte("got " + string(b)))
		}
		served <- err
	}()
	p := testbed.StartSOCKSProxy(t, testbed.SOCKSProxyOptions{})
	d := proxyDialer(t, p.URL("socks5h"))
	ctx := testCtx(t, 10*time.Second)
	c, err := d.DialContext(ctx, "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cw, ok := c.(interface{ CloseWrite() error })
	if !ok {
		t.Fatalf("%T has no CloseWrite", c)
	}
	if _, err := c.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	if err := cw.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	got, err := io.ReadAll(c)
	if err != nil || string(got) != "got hello" {
		t.Errorf("read %q, %v; want %q", got, err, "got hello")
	}
	if err := <-served; err != nil {
		t.Errorf("server: %v", err)
	}
	if !p.Saw(ln.Addr().String()) {
		t.Errorf("proxy requests %+v", p.Requests())
	}

	// Bypass: 127.0.0.1 goes direct, the proxy sees nothing more.
	n := len(p.Requests())
	go func() {
		c, err := ln.Accept()
		if err == nil {
			c.Close()
		}
		served <- err
	}()
	bc, err := d.WithBypass("localhost, 127.0.0.1").DialContext(ctx, "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	bc.Close()
	if err := <-served; err != nil {
		t.Errorf("accept: %v", err)
	}
	if len(p.Requests()) != n || p.Accepted() != 1 {
		t.Errorf("a bypassed host went through the proxy: %+v", p.Requests())
	}
}

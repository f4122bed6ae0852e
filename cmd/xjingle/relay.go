package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"mellium.im/xmpp/jid"

	"github.com/xjingle/xjingle/relay"
	"github.com/xjingle/xjingle/socks5/proxy65"
)

// relayFlags are the relay command's flags; each has a config-file key, the flag name with '-' → '_'.
type relayFlags struct {
	config      string
	listen      []string
	tlsListen   []string
	cert, key   string
	realm       string
	secretFile  string
	usersFile   string
	allowPeer   []string
	denyPeer    []string
	publicIP    string
	publicIPv6  string
	metrics     string
	portMin     uint16
	portMax     uint16
	totalQuota  int
	userQuota   int
	maxBPS      int64
	lifetime    time.Duration
	maxAge      time.Duration
	unauthRate  float64
	unauthBurst int
	maxTCPConns int
	sockets     int
	drain       time.Duration
	logLevel    string
	logJSON     bool

	// XEP-0065 proxy as a XEP-0114 component (off without proxy65Component).
	proxy65Component  string
	proxy65Server     string
	proxy65SecretFile string
	proxy65Listen     string
	proxy65PublicHost string
	proxy65Timeout    time.Duration
	proxy65MaxConns   int
	proxy65Allow      []string
	proxy65Open       bool
}

func newRelayCmd() *cobra.Command {
	var f relayFlags
	cmd := &cobra.Command{
		Use:   "relay",
		Short: "Run a TURN/STUN relay (RFC 8656/8489) for XMPP servers' users",
		Long: `relay runs a TURN and STUN server on UDP, TCP and TLS, with TURN REST API credentials
(coturn's use-auth-secret: Prosody mod_turn_external, ejabberd mod_stun_disco) or static users.

It refuses by default to relay to loopback, private, link-local (cloud metadata), multicast
and reserved addresses; open ranges with --allow-peer. The shared secret is read from
--secret-file or the environment variable XJINGLE_RELAY_SECRET, never from the command line.

With --proxy65-component it also runs a SOCKS5 bytestreams proxy (XEP-0065) that joins the XMPP
server as an external component (XEP-0114) at --proxy65-server, for servers without a proxy of their
own; its shared secret comes from --proxy65-secret-file or XJINGLE_PROXY65_SECRET.

Every flag has a key in the TOML --config file: the flag name with '-' replaced by '_'
(listen = ["0.0.0.0:3478"], secret_file = "/etc/xjingle/relay.secret", ...). Flags win over
the file. SIGHUP reloads the secret file, the users file and the TLS certificate; SIGTERM drains (up to --drain-timeout) and exits.`,
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := applyRelayConfigFile(cmd.Flags(), f.config); err != nil {
				return err
			}
			return runRelay(cmd.Context(), &f, cmd.ErrOrStderr())
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.config, "config", "", "relay config file (TOML)")
	fl.StringArrayVar(&f.listen, "listen", []string{"0.0.0.0:3478"},
		"serve UDP and TCP on ADDR (repeatable); ADDR=EXTERNAL_IP gives the address clients see behind 1:1 NAT")
	fl.StringArrayVar(&f.tlsListen, "tls-listen", nil, "serve TURN over TLS (turns:) on ADDR (repeatable; needs --cert and --key)")
	fl.StringVar(&f.cert, "cert", "", "TLS certificate chain (PEM); reloaded on SIGHUP")
	fl.StringVar(&f.key, "key", "", "TLS private key (PEM); reloaded on SIGHUP")
	fl.StringVar(&f.realm, "realm", relay.DefaultRealm, "long-term credential realm")
	fl.StringVar(&f.secretFile, "secret-file", "", "file with TURN REST API shared secrets, one a line (or env XJINGLE_RELAY_SECRET); reloaded on SIGHUP")
	fl.StringVar(&f.usersFile, "users-file", "", "file with static users, user:password a line; reloaded on SIGHUP")
	fl.StringArrayVar(&f.allowPeer, "allow-peer", nil, "allow relaying to this CIDR even if denied by default (repeatable)")
	fl.StringArrayVar(&f.denyPeer, "deny-peer", nil, "deny relaying to this CIDR (repeatable)")
	fl.StringVar(&f.publicIP, "public-ip", "", "IPv4 address advertised for relayed addresses (1:1 NAT)")
	fl.StringVar(&f.publicIPv6, "public-ipv6", "", "IPv6 address advertised for relayed addresses")
	fl.StringVar(&f.metrics, "metrics", "", "serve Prometheus /metrics and /healthz on ADDR (e.g. 127.0.0.1:9641)")
	fl.Uint16Var(&f.portMin, "min-port", relay.DefaultPortMin, "lowest relayed port")
	fl.Uint16Var(&f.portMax, "max-port", relay.DefaultPortMax, "highest relayed port")
	fl.IntVar(&f.totalQuota, "total-quota", relay.DefaultMaxAllocations, "maximum allocations in total (-1: unlimited)")
	fl.IntVar(&f.userQuota, "user-quota", relay.DefaultMaxAllocationsPerUser, "maximum allocations per user (-1: unlimited)")
	fl.Int64Var(&f.maxBPS, "max-bps", relay.DefaultMaxBandwidth, "bandwidth cap per allocation and direction, bytes/s (-1: unlimited)")
	fl.DurationVar(&f.lifetime, "lifetime", relay.DefaultAllocationLifetime, "allocation lifetime when the client asks for none (max 1h)")
	fl.DurationVar(&f.maxAge, "max-allocation-age", relay.DefaultMaxAllocationAge, "end allocations this old whatever their refreshes (-1ns: never)")
	fl.Float64Var(&f.unauthRate, "unauth-rate", relay.DefaultUnauthRate, "unauthenticated requests/s per source IP (-1: unlimited)")
	fl.IntVar(&f.unauthBurst, "unauth-burst", relay.DefaultUnauthBurst, "burst of unauthenticated requests per source IP")
	fl.IntVar(&f.maxTCPConns, "max-tcp-conns", relay.DefaultMaxTCPConns, "maximum concurrent TCP/TLS client connections")
	fl.IntVar(&f.sockets, "sockets", 0, "SO_REUSEPORT UDP sockets per --listen address (default: number of CPUs); min(sockets, GOMAXPROCS-1) data-plane loops serve them")
	fl.DurationVar(&f.drain, "drain-timeout", 30*time.Second, "on SIGTERM, keep relaying existing allocations this long")
	fl.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	fl.BoolVar(&f.logJSON, "log-json", false, "write logs as JSON")
	fl.StringVar(&f.proxy65Component, "proxy65-component", "", "run a XEP-0065 SOCKS5 proxy as this XMPP component JID (e.g. proxy.example.org)")
	fl.StringVar(&f.proxy65Server, "proxy65-server", "127.0.0.1:5347", "the XMPP server's component port (XEP-0114), HOST:PORT")
	fl.StringVar(&f.proxy65SecretFile, "proxy65-secret-file", "", "file with the component's shared secret (or env XJINGLE_PROXY65_SECRET)")
	fl.StringVar(&f.proxy65Listen, "proxy65-listen", "0.0.0.0:7777", "SOCKS5 listener of the proxy")
	fl.StringVar(&f.proxy65PublicHost, "proxy65-public-host", "", "host (IP or DNS name) clients connect to, announced as the streamhost (default: the --proxy65-listen host if specific)")
	fl.DurationVar(&f.proxy65Timeout, "proxy65-timeout", proxy65.DefaultUnmatchedTimeout, "drop proxy connections not activated within this time")
	fl.IntVar(&f.proxy65MaxConns, "proxy65-max-conns", proxy65.DefaultMaxConns, "maximum concurrent proxy connections")
	fl.StringArrayVar(&f.proxy65Allow, "proxy65-allow", nil, "who may use the proxy: a domain, bare or full JID (repeatable; default: the component's parent domain, e.g. example.org for proxy.example.org)")
	fl.BoolVar(&f.proxy65Open, "proxy65-open-access", false, "let any JID the server routes to the component use the proxy, remote users included")
	return cmd
}

// applyRelayConfigFile sets, from the TOML file, every flag the command line did not set.
func applyRelayConfigFile(fs *pflag.FlagSet, path string) error {
	if path == "" {
		return nil
	}
	var m map[string]any
	if _, err := toml.DecodeFile(path, &m); err != nil {
		return fmt.Errorf("relay config %s: %w", path, err)
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		name := strings.ReplaceAll(k, "_", "-")
		fl := fs.Lookup(name)
		if fl == nil || name == "config" {
			return fmt.Errorf("relay config %s: unknown key %q", path, k)
		}
		if fl.Changed {
			continue
		}
		vals := []any{m[k]}
		if list, ok := m[k].([]any); ok {
			vals = list
		}
		for _, v := range vals {
			if err := fs.Set(name, fmt.Sprint(v)); err != nil {
				return fmt.Errorf("relay config %s: %s: %w", path, k, err)
			}
		}
	}
	return nil
}

func (f *relayFlags) logger(w interface{ Write([]byte) (int, error) }) *slog.Logger {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(f.logLevel)); err != nil {
		lvl = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: lvl}
	if f.logJSON {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func (f *relayFlags) relayConfig(log *slog.Logger) (relay.Config, error) {
	cfg := relay.Config{
		CertFile:              f.cert,
		KeyFile:               f.key,
		Realm:                 f.realm,
		PortMin:               f.portMin,
		PortMax:               f.portMax,
		MaxAllocations:        f.totalQuota,
		MaxAllocationsPerUser: f.userQuota,
		MaxBandwidth:          f.maxBPS,
		AllocationLifetime:    f.lifetime,
		MaxAllocationAge:      f.maxAge,
		UnauthRate:            f.unauthRate,
		UnauthBurst:           f.unauthBurst,
		MaxTCPConns:           f.maxTCPConns,
		SocketsPerUDPListen:   f.sockets,
		Logger:                log,
	}
	for _, s := range f.listen {
		l, err := relay.ParseListen(s)
		if err != nil {
			return cfg, err
		}
		cfg.Listen = append(cfg.Listen, l)
	}
	for _, s := range f.tlsListen {
		l, err := relay.ParseListen(s)
		if err != nil {
			return cfg, err
		}
		cfg.TLSListen = append(cfg.TLSListen, l)
	}
	for _, p := range []struct {
		in  []string
		out *[]netip.Prefix
	}{{f.allowPeer, &cfg.Peers.Allow}, {f.denyPeer, &cfg.Peers.Deny}} {
		for _, s := range p.in {
			pfx, err := relay.ParsePrefix(s)
			if err != nil {
				return cfg, err
			}
			*p.out = append(*p.out, pfx)
		}
	}
	for _, p := range []struct {
		in  string
		out *netip.Addr
	}{{f.publicIP, &cfg.PublicIP}, {f.publicIPv6, &cfg.PublicIPv6}} {
		if p.in == "" {
			continue
		}
		ip, err := netip.ParseAddr(p.in)
		if err != nil {
			return cfg, fmt.Errorf("public IP %q: %w", p.in, err)
		}
		*p.out = ip.Unmap()
	}
	var err error
	cfg.Secrets, cfg.Users, err = f.credentials()
	return cfg, err
}

// credentials reads the REST secrets (--secret-file, else XJINGLE_RELAY_SECRET) and the static users
// (--users-file).
func (f *relayFlags) credentials() (secrets []string, users map[string]string, err error) {
	switch {
	case f.secretFile != "":
		if secrets, err = relay.ReadSecretsFile(f.secretFile); err != nil {
			return nil, nil, err
		}
	case os.Getenv("XJINGLE_RELAY_SECRET") != "":
		if secrets, err = relay.ReadSecrets(strings.NewReader(os.Getenv("XJINGLE_RELAY_SECRET"))); err != nil {
			return nil, nil, err
		}
	}
	if f.usersFile != "" {
		if users, err = relay.ReadUsersFile(f.usersFile); err != nil {
			return nil, nil, err
		}
	}
	return secrets, users, nil
}

// reloadRelay is what SIGHUP does: it reads the secret file and the users file again and puts them in force
// (credentials made with a secret no longer in the file get 401 from then on), and reloads the TLS
// certificate. Whatever fails to load is reported and the old one stays in use.
func reloadRelay(srv *relay.Server, f *relayFlags, log *slog.Logger) error {
	var errs []error
	if f.secretFile != "" || f.usersFile != "" {
		secrets, users, err := f.credentials()
		if err == nil {
			err = srv.SetCredentials(secrets, users)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("relay: reload credentials: %w", err))
		} else {
			log.Info("credentials reloaded", "secrets", len(secrets), "users", len(users))
		}
	}
	if f.cert != "" {
		if err := srv.ReloadCertificates(); err != nil {
			errs = append(errs, err)
		} else {
			log.Info("certificate reloaded")
		}
	}
	return errors.Join(errs...)
}

func runRelay(ctx context.Context, f *relayFlags, stderr interface{ Write([]byte) (int, error) }) error {
	if ctx == nil {
		ctx = context.Background()
	}
	log := f.logger(stderr)
	cfg, err := f.relayConfig(log)
	if err != nil {
		return err
	}
	srv, err := relay.New(cfg)
	if err != nil {
		return err
	}
	// SIGTERM/SIGINT drain; the root command's context may carry them already, this makes the command
	// complete on its own too.
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	stopProxy65, err := startProxy65(ctx, f, srv, log)
	if err != nil {
		_ = srv.Close()
		return err
	}
	defer stopProxy65()

	var metricsSrv *http.Server
	metricsDone := make(chan error, 1)
	if f.metrics != "" {
		ln, err := net.Listen("tcp", f.metrics)
		if err != nil {
			_ = srv.Close()
			return fmt.Errorf("relay: metrics listener: %w", err)
		}
		metricsSrv = &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 5 * time.Second}
		log.Info("metrics serving", "addr", ln.Addr().String())
		go func() { metricsDone <- metricsSrv.Serve(ln) }()
	}

	served := make(chan error, 1)
	go func() { served <- srv.Serve(context.Background()) }()
	var runErr error
loop:
	for {
		select {
		case <-hup:
			if err := reloadRelay(srv, f, log); err != nil {
				log.Error("reload failed", "err", err)
			}
		case err := <-served:
			if !errors.Is(err, relay.ErrServerClosed) {
				runErr = err
			}
			break loop
		case <-ctx.Done():
			dctx, cancel := context.WithTimeout(context.Background(), f.drain)
			if err := srv.Shutdown(dctx); err != nil {
				log.Warn("relay shutdown", "err", err)
			}
			cancel()
			<-served
			break loop
		}
	}
	if metricsSrv != nil {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = metricsSrv.Shutdown(sctx)
		cancel()
		<-metricsDone
	}
	return runErr
}

// proxy65Secret reads the component secret: the first line of --proxy65-secret-file, else
// XJINGLE_PROXY65_SECRET.
func (f *relayFlags) proxy65Secret() ([]byte, error) {
	var raw string
	switch {
	case f.proxy65SecretFile != "":
		secrets, err := relay.ReadSecretsFile(f.proxy65SecretFile)
		if err != nil {
			return nil, fmt.Errorf("proxy65: %w", err)
		}
		raw = secrets[0]
	default:
		raw = strings.TrimSpace(os.Getenv("XJINGLE_PROXY65_SECRET"))
	}
	if raw == "" {
		return nil, errors.New("proxy65: no component secret: use --proxy65-secret-file or XJINGLE_PROXY65_SECRET")
	}
	return []byte(raw), nil
}

// startProxy65 starts the XEP-0065 proxy and its XEP-0114 component when --proxy65-component is set; its
// metrics go to the relay's registry. The returned func stops both and waits for them.
func startProxy65(ctx context.Context, f *relayFlags, srv *relay.Server, log *slog.Logger) (stop func(), err error) {
	if f.proxy65Component == "" {
		return func() {}, nil
	}
	cjid, err := jid.Parse(f.proxy65Component)
	if err != nil || cjid.Localpart() != "" || cjid.Resourcepart() != "" {
		return nil, fmt.Errorf("proxy65: component JID %q: want a domain such as proxy.example.org", f.proxy65Component)
	}
	for _, a := range f.proxy65Allow {
		if _, err := jid.Parse(a); err != nil || a == "" {
			return nil, fmt.Errorf("proxy65: --proxy65-allow %q: want a domain, bare JID or full JID", a)
		}
	}
	secret, err := f.proxy65Secret()
	if err != nil {
		return nil, err
	}
	p, err := proxy65.New(proxy65.Config{UnmatchedTimeout: f.proxy65Timeout, MaxConns: f.proxy65MaxConns,
		Registerer: srv.Registry(), Logger: log})
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", f.proxy65Listen)
	if err != nil {
		_ = p.Close()
		return nil, fmt.Errorf("proxy65: listener: %w", err)
	}
	la := ln.Addr().(*net.TCPAddr)
	host := f.proxy65PublicHost
	if host == "" {
		if la.IP.IsUnspecified() {
			ln.Close()
			_ = p.Close()
			return nil, fmt.Errorf("proxy65: --proxy65-listen %s has no specific host: set --proxy65-public-host", f.proxy65Listen)
		}
		host = la.IP.String()
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		host = ip.Unmap().String() // XEP-0065 §4: IPv6 in RFC 5952 form
	}
	comp := &proxy65.Component{JID: cjid, Server: f.proxy65Server, Secret: secret, Host: host, Port: uint16(la.Port),
		Name: "xjingle SOCKS5 proxy", Proxy: p, Logger: log, Allow: f.proxy65Allow, OpenAccess: f.proxy65Open}
	up := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "xjingle_proxy65_component_connected",
		Help: "1 while the proxy's XEP-0114 component session with the XMPP server is up, else 0."},
		func() float64 {
			if comp.Connected() {
				return 1
			}
			return 0
		})
	if err := srv.Registry().Register(up); err != nil {
		ln.Close()
		p.Close()
		return nil, fmt.Errorf("proxy65: register metrics: %w", err)
	}
	served := make(chan error, 1)
	go func() { served <- p.Serve(ln) }()
	cctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- comp.Run(cctx) }()
	log.Info("proxy65 serving", "addr", ln.Addr().String(), "streamhost", net.JoinHostPort(host, strconv.Itoa(la.Port)),
		"component", cjid.String(), "server", f.proxy65Server, "allow", f.proxy65Allow, "open_access", f.proxy65Open)
	// On SIGTERM (ctx) the component leaves at once, so that nobody is offered the proxy any more, and the
	// bytestreams in flight get --drain-timeout, alongside the TURN drain. stop without SIGTERM cuts them.
	stopNow := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		select {
		case <-ctx.Done():
		case <-stopNow:
		}
		cancel()
		if err := <-ran; err != nil {
			log.Error("proxy65 component", "err", err)
		}
		dctx, dcancel := context.WithTimeout(context.Background(), f.drain)
		if ctx.Err() == nil {
			dcancel()
		}
		if err := p.Shutdown(dctx); err != nil {
			log.Warn("proxy65 shutdown", "err", err)
		}
		dcancel()
		<-served
	}()
	var once sync.Once
	return func() {
		once.Do(func() { close(stopNow) })
		<-finished
	}, nil
}

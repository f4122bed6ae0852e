package relay

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/pion/transport/v5/reuseport"
	"github.com/pion/turn/v5"
)

// udpSocketBuffer is the receive and send buffer asked for each client-facing UDP socket.
const udpSocketBuffer = 4 << 20

// closeWait bounds how long Close waits for pion's read loops and allocations to end after closing sockets.
const closeWait = 5 * time.Second

// Server is a TURN/STUN relay. Create it with New, run it with Serve, stop it with Shutdown or Close.
type Server struct {
	cfg Config
	log *slog.Logger
	m   *metrics

	udp    []net.PacketConn // *udpSock, bound by New, read by the data-plane loops
	planes []*loop          // data-plane event loops (plane_linux.go)
	routes routeTable       // bound channels the loops relay themselves
	rr     atomic.Uint32    // round robin of relayed sockets over planes
	tcp    []net.Listener
	tlsLns []net.Listener
	tlsCfg *tls.Config
	cert   atomic.Pointer[tls.Certificate]
	gens   map[net.Addr]*relayGen // per listening socket

	creds   atomic.Pointer[credentials] // replaced by SetCredentials (SIGHUP)
	quota   quota
	traffic traffic
	limiter ipLimiter
	hints   hintMap
	conns   connSet

	draining atomic.Bool
	loops    sync.WaitGroup

	mu      sync.Mutex
	turn    *turn.Server
	closing bool

	done      chan struct{} // closed when Close starts
	closed    chan struct{} // closed when Close finished
	closeOnce sync.Once
	closeErr  error
}

// New validates cfg, fills in defaults, and binds the addresses cfg names (and nothing else). It does not
// serve until Serve is called.
func New(cfg Config) (*Server, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	cfg.Listen = append([]Listen(nil), cfg.Listen...)
	cfg.TLSListen = append([]Listen(nil), cfg.TLSListen...)
	cfg.Secrets = append([]string(nil), cfg.Secrets...)
	s := &Server{
		cfg:     cfg,
		log:     cfg.Logger.With("component", "relay"),
		gens:    map[net.Addr]*relayGen{},
		quota:   quota{maxTotal: cfg.MaxAllocations, maxUser: cfg.MaxAllocationsPerUser},
		limiter: ipLimiter{rate: cfg.UnauthRate, burst: float64(cfg.UnauthBurst)},
		conns:   connSet{max: cfg.MaxTCPConns},
		done:    make(chan struct{}),
		closed:  make(chan struct{}),
	}
	s.creds.Store(newCredentials(cfg.Secrets, cfg.Users))
	s.m = newMetrics(s)
	s.routes.init()
	if len(cfg.Listen) > 0 {
		for range planeCount(cfg.SocketsPerUDPListen) {
			l, err := newLoop(s)
			if err != nil {
				s.stopPlanes()
				return nil, err
			}
			s.planes = append(s.planes, l)
		}
	}
	if len(cfg.TLSListen) > 0 {
		if err := s.ReloadCertificates(); err != nil {
			return nil, err
		}
		s.tlsCfg = &tls.Config{
			MinVersion:     tls.VersionTLS12,
			GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return s.cert.Load(), nil },
		}
	}
	if err := s.bind(); err != nil {
		s.closeSockets()
		s.stopPlanes()
		return nil, err
	}
	for _, l := range s.planes {
		l.start()
	}
	return s, nil
}

// planeCount is the number of data-plane loops: one per socket, but leaving one P for pion and the rest of
// the process, because two loops in epoll_wait with no idle P make sysmon retake Ps every 20 µs.
func planeCount(sockets int) int {
	return max(1, min(sockets, runtime.GOMAXPROCS(0)-1))
}

// stopPlanes ends the data-plane loops (after the sockets they serve are closed).
func (s *Server) stopPlanes() {
	for _, l := range s.planes {
		l.stop()
	}
}

// plane picks the loop that serves a new relayed socket.
func (s *Server) plane() *loop {
	return s.planes[int(s.rr.Add(1))%len(s.planes)]
}

// bindPort opens the UDP sockets of one listen address (SO_REUSEPORT, the
// same port for all) and the TCP listener on that port. On error it closes
// what it opened.
func (s *Server) bindPort(udpNet, tcpNet, addr string) ([]*udpSock, net.Listener, error) {
	var pcs []*udpSock
	closeAll := func() {
		for _, pc := range pcs {
			pc.Close()
		}
	}
	for i := range s.cfg.SocketsPerUDPListen {
		ap, err := netip.ParseAddrPort(addr)
		if err != nil {
			return nil, nil, fmt.Errorf("relay: listen udp %s: %w", addr, err)
		}
		pc, err := openUDP(s.planes[i%len(s.planes)], udpNet, ap, true, clientHandoffQueue)
		if err != nil {
			closeAll()
			return nil, nil, fmt.Errorf("relay: listen udp %s: %w", addr, err)
		}
		pcs = append(pcs, pc)
		// Bursts from many clients arrive between two reads; the kernel caps this at net.core.rmem_max.
		pc.setBuffers(udpSocketBuffer)
		if i == 0 {
			addr = pc.LocalAddr().String() // the same port for the other sockets and for TCP
		}
	}
	ln, err := net.Listen(tcpNet, addr)
	if err != nil {
		closeAll()
		return nil, nil, fmt.Errorf("relay: listen tcp %s: %w", addr, err)
	}
	return pcs, ln, nil
}

func (s *Server) bind() error {
	for _, l := range s.cfg.Listen {
		host, _, _ := net.SplitHostPort(l.Addr)
		gen, err := s.newRelayGen(host, l.ExternalIP)
		if err != nil {
			return err
		}
		udpNet, tcpNet := networks(host)
		// With port 0 the kernel picks a free UDP port, and TCP must
		// take the same number, which another process may hold: pick
		// again (a few times) rather than fail.
		_, port, _ := net.SplitHostPort(l.Addr)
		tries := 1
		if port == "0" {
			tries = 20
		}
		for try := 1; ; try++ {
			pcs, ln, err := s.bindPort(udpNet, tcpNet, l.Addr)
			if err != nil {
				if try < tries && errors.Is(err, syscall.EADDRINUSE) {
					continue
				}
				return err
			}
			for _, pc := range pcs {
				if err := pc.plane.add(pc); err != nil {
					for _, pc := range pcs {
						_ = pc.Close()
					}
					_ = ln.Close()
					return err
				}
				s.udp = append(s.udp, pc)
				s.gens[pc.LocalAddr()] = gen
				s.routes.addListener(pc)
			}
			s.tcp = append(s.tcp, ln)
			s.gens[ln.Addr()] = gen
			break
		}
	}
	for _, l := range s.cfg.TLSListen {
		host, _, _ := net.SplitHostPort(l.Addr)
		gen, err := s.newRelayGen(host, l.ExternalIP)
		if err != nil {
			return err
		}
		_, tcpNet := networks(host)
		ln, err := net.Listen(tcpNet, l.Addr)
		if err != nil {
			return fmt.Errorf("relay: listen tls %s: %w", l.Addr, err)
		}
		s.tlsLns = append(s.tlsLns, ln)
		s.gens[ln.Addr()] = gen
	}
	return nil
}

func networks(host string) (udp, tcp string) {
	ip, _ := netip.ParseAddr(host)
	switch {
	case ip.Is4():
		return "udp4", "tcp4"
	case ip.IsUnspecified(): // [::] is dual-stack
		return "udp", "tcp"
	default:
		return "udp6", "tcp6"
	}
}

func (s *Server) closeSockets() {
	for _, pc := range s.udp {
		_ = pc.Close()
	}
	for _, ln := range append(append([]net.Listener(nil), s.tcp...), s.tlsLns...) {
		_ = ln.Close()
	}
}

// UDPAddrs returns the bound UDP addresses (one per Listen entry; the extra SO_REUSEPORT sockets share them).
func (s *Server) UDPAddrs() []net.Addr {
	var out []net.Addr
	seen := map[string]bool{}
	for _, pc := range s.udp {
		if a := pc.LocalAddr(); !seen[a.String()] {
			seen[a.String()] = true
			out = append(out, a)
		}
	}
	return out
}

// TCPAddrs returns the bound TCP addresses.
func (s *Server) TCPAddrs() []net.Addr { return lnAddrs(s.tcp) }

// TLSAddrs returns the bound TLS addresses.
func (s *Server) TLSAddrs() []net.Addr { return lnAddrs(s.tlsLns) }

func lnAddrs(ls []net.Listener) []net.Addr {
	out := make([]net.Addr, len(ls))
	for i, l := range ls {
		out[i] = l.Addr()
	}
	return out
}

// ReloadCertificates reads Config.CertFile and Config.KeyFile again; new TLS handshakes use the new pair.
// On error the old pair stays in use.
func (s *Server) ReloadCertificates() error {
	if s.cfg.CertFile == "" {
		return nil
	}
	c, err := tls.LoadX509KeyPair(s.cfg.CertFile, s.cfg.KeyFile)
	if err != nil {
		return fmt.Errorf("relay: load certificate %s: %w", s.cfg.CertFile, err)
	}
	s.cert.Store(&c)
	return nil
}

// Serve relays until ctx is cancelled (then it closes the server at once, as Close) or Shutdown or Close is
// called. It always returns a non-nil error: ErrServerClosed after Shutdown/Close/ctx, or why it could not
// start.
func (s *Server) Serve(ctx context.Context) error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return ErrServerClosed
	}
	if s.turn != nil {
		s.mu.Unlock()
		return errors.New("relay: Serve called twice")
	}
	sc := turn.ServerConfig{
		LoggerFactory:      pionLoggerFactory{s.log},
		Realm:              s.cfg.Realm,
		AuthHandler:        s.authenticate,
		QuotaHandler:       s.allowAllocation,
		EventHandler:       s.events(),
		AllocationLifetime: s.cfg.AllocationLifetime,
	}
	loopDone := func() func() {
		s.loops.Add(1)
		var once sync.Once
		return func() { once.Do(s.loops.Done) }
	}
	for _, pc := range s.udp {
		sc.PacketConnConfigs = append(sc.PacketConnConfigs, turn.PacketConnConfig{
			PacketConn:            &clientPacketConn{PacketConn: pc, s: s, loopDone: loopDone()},
			RelayAddressGenerator: s.gens[pc.LocalAddr()],
			PermissionHandler:     s.permit,
		})
	}
	for _, ln := range s.tcp {
		sc.ListenerConfigs = append(sc.ListenerConfigs, turn.ListenerConfig{
			Listener:              &clientListener{Listener: ln, s: s, loopDone: loopDone()},
			RelayAddressGenerator: s.gens[ln.Addr()],
			PermissionHandler:     s.permit,
		})
	}
	for _, ln := range s.tlsLns {
		sc.ListenerConfigs = append(sc.ListenerConfigs, turn.ListenerConfig{
			Listener:              &clientListener{Listener: ln, s: s, tls: s.tlsCfg, loopDone: loopDone()},
			RelayAddressGenerator: s.gens[ln.Addr()],
			PermissionHandler:     s.permit,
		})
	}
	ts, err := turn.NewServer(sc)
	if err != nil {
		s.mu.Unlock()
		return fmt.Errorf("relay: start: %w", err)
	}
	s.turn = ts
	s.mu.Unlock()
	s.log.Info("relay serving", "udp", addrStrings(s.UDPAddrs()), "tcp", addrStrings(s.TCPAddrs()),
		"tls", addrStrings(s.TLSAddrs()), "sockets_per_udp_listen", s.cfg.SocketsPerUDPListen, "realm", s.cfg.Realm)
	select {
	case <-ctx.Done():
		_ = s.Close()
	case <-s.done:
	}
	<-s.closed
	return ErrServerClosed
}

func addrStrings(as []net.Addr) []string {
	out := make([]string, len(as))
	for i, a := range as {
		out[i] = a.String()
	}
	return out
}

// Healthy reports whether the server is serving and not draining.
func (s *Server) Healthy() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.turn != nil && !s.closing && !s.draining.Load()
}

// Allocations returns the number of allocations held now.
func (s *Server) Allocations() int { return s.quota.active() }

// Shutdown drains the server: new allocations and TCP connections are refused (486 and close), existing
// allocations keep relaying until they expire or ctx is done; then the server is closed. It returns ctx's
// error if the drain was cut short, and Close's error.
func (s *Server) Shutdown(ctx context.Context) error {
	s.draining.Store(true)
	s.log.Info("relay draining", "allocations", s.quota.active())
	var err error
	select {
	case <-s.quota.idleCh():
	case <-ctx.Done():
		err = fmt.Errorf("relay: drain cut short with %d allocations: %w", s.quota.active(), ctx.Err())
	case <-s.done:
	}
	return errors.Join(err, s.Close())
}

// Close stops the server at once: sockets, connections and allocations are closed, and Close waits (a few
// seconds at most) for the read loops to end. It is idempotent.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.draining.Store(true)
		s.mu.Lock()
		s.closing = true
		ts := s.turn
		s.mu.Unlock()
		close(s.done)
		if ts != nil {
			if err := ts.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
				s.closeErr = fmt.Errorf("relay: close: %w", err)
			}
		} else {
			s.closeSockets()
		}
		s.conns.closeAll()
		deadline := time.NewTimer(closeWait)
		defer deadline.Stop()
		waited := make(chan struct{})
		go func() {
			s.loops.Wait()
			s.conns.wg.Wait()
			close(waited)
		}()
		select {
		case <-waited:
			select {
			case <-s.quota.idleCh():
			case <-deadline.C:
			}
		case <-deadline.C:
		}
		if n := s.quota.active(); n > 0 {
			s.closeErr = errors.Join(s.closeErr, fmt.Errorf("relay: close: %d allocations still open", n))
		}
		s.stopPlanes()
		s.log.Info("relay closed")
		close(s.closed)
	})
	return s.closeErr
}

// allowAllocation is pion's QuotaHandler: 486 Allocation Quota Reached (RFC 8656 §7.2 step 7) when draining
// or over quota.
func (s *Server) allowAllocation(userID, _ string, src net.Addr) bool {
	reason := "draining"
	if !s.draining.Load() {
		if reason = s.quota.check(userID); reason == "" {
			return true
		}
	}
	s.m.allocRejected.WithLabelValues(reason).Inc()
	s.log.Info("allocation refused", "reason", reason, "user", userID, "client", src.String())
	return false
}

// permit is pion's PermissionHandler for CreatePermission, ChannelBind and Connect: 403 for denied peers
// (RFC 8656 §21.2.2; the check also stops §21.1.7 loops through the relay's own private addresses).
func (s *Server) permit(client net.Addr, peer net.IP) bool {
	if s.cfg.Peers.AllowedIP(peer) {
		return true
	}
	s.m.deniedPeer.Inc()
	s.log.Debug("peer denied", "client", client.String(), "peer", peer.String())
	return false
}

// authenticate is pion's AuthHandler: the long-term credential mechanism (RFC 8489 §9.2) with passwords from
// the REST API secrets (draft-uberti-behave-turn-rest-00 §2.2) or the static users. It returns the key
// MD5(username:realm:password); pion checks MESSAGE-INTEGRITY with it and answers 401 on any failure.
func (s *Server) authenticate(ra *turn.RequestAttributes) (string, []byte, bool) {
	fail := func(reason string) (string, []byte, bool) {
		s.m.authFailures.WithLabelValues(reason).Inc()
		s.log.Debug("auth failed", "reason", reason, "username", ra.Username, "client", ra.SrcAddr.String())
		return "", nil, false
	}
	if ra.Realm != s.cfg.Realm {
		return fail(reasonBadRealm)
	}
	cr := s.creds.Load()
	if len(cr.secrets) > 0 {
		if exp, user, err := parseRESTUsername(ra.Username); err == nil {
			if s.cfg.Now().Unix() > exp {
				return fail(reasonExpired)
			}
			secret := cr.secrets[0]
			if len(cr.secrets) > 1 {
				var ok bool
				if secret, ok = s.hints.take(ra.SrcAddr.String(), ra.Username); !ok {
					return fail(reasonBadIntegrity)
				}
			}
			if user == "" {
				user = ra.Username
			}
			return "rest:" + user, longTermKey(ra.Username, ra.Realm, restPassword(secret, ra.Username)), true
		}
	}
	if pw, ok := cr.users[ra.Username]; ok {
		return "user:" + ra.Username, longTermKey(ra.Username, ra.Realm, pw), true
	}
	return fail(reasonUnknownUser)
}

func (s *Server) events() turn.EventHandler {
	return turn.EventHandler{
		OnAuth: func(src, _ net.Addr, _, username, _, method string, verdict bool) {
			if !verdict {
				s.m.authFailures.WithLabelValues(reasonBadIntegrity).Inc()
				s.log.Debug("auth failed", "reason", reasonBadIntegrity, "username", username,
					"client", src.String(), "method", method)
			}
		},
		OnAllocationCreated: func(src, _ net.Addr, protocol, userID, _ string, relayAddr net.Addr, _ int) {
			s.m.allocTotal.Inc()
			s.log.Debug("allocation created", "client", src.String(), "protocol", protocol, "user", userID,
				"relay", relayAddr.String())
		},
		OnAllocationDeleted: func(src, _ net.Addr, protocol, userID, _ string) {
			s.log.Debug("allocation deleted", "client", src.String(), "protocol", protocol, "user", userID)
		},
		OnPermissionCreated: func(_, _ net.Addr, _, _, _ string, _ net.Addr, _ net.IP) {
			s.m.permTotal.Inc()
			s.m.permActive.Inc()
		},
		OnPermissionDeleted: func(_, _ net.Addr, _, _, _ string, _ net.Addr, _ net.IP) { s.m.permActive.Dec() },
		OnChannelCreated: func(src, dst net.Addr, protocol, _, _ string, relayAddr, peer net.Addr, ch uint16) {
			s.routes.channelCreated(src, dst, protocol, relayAddr, peer, ch)
			s.m.chanTotal.Inc()
			s.m.chanActive.Inc()
		},
		OnChannelDeleted: func(src, dst net.Addr, protocol, _, _ string, _, _ net.Addr, ch uint16) {
			s.routes.channelDeleted(src, dst, protocol, ch)
			s.m.chanActive.Dec()
		},
	}
}

// relayGen opens relayed transport addresses for one listener (pion's RelayAddressGenerator): UDP sockets and
// RFC 6062 TCP listeners in the port range, bound on the listener's host and advertised with its external
// address. It takes the quota slot for each.
type relayGen struct {
	s            *Server
	bind4, bind6 string // "" when the family is not served
	adv4, adv6   net.IP
}

func (s *Server) newRelayGen(host string, external netip.Addr) (*relayGen, error) {
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return nil, fmt.Errorf("relay: listen host %q: %w", host, err)
	}
	g := &relayGen{s: s}
	pick := func(ext, public netip.Addr, wantV4 bool) (net.IP, error) {
		switch {
		case ext.IsValid() && ext.Is4() == wantV4:
			return ext.AsSlice(), nil
		case public.IsValid():
			return public.Unmap().AsSlice(), nil
		case !ip.IsUnspecified():
			return ip.Unmap().AsSlice(), nil
		}
		a, err := interfaceAddr(wantV4)
		if err != nil {
			return nil, err
		}
		return a.AsSlice(), nil
	}
	ip = ip.Unmap()
	if ip.Is4() || ip.IsUnspecified() {
		g.bind4 = "0.0.0.0"
		if !ip.IsUnspecified() {
			g.bind4 = ip.String()
		}
		if g.adv4, err = pick(external, s.cfg.PublicIP, true); err != nil {
			return nil, err
		}
	}
	if ip.Is6() {
		g.bind6 = ip.String()
		if g.adv6, err = pick(external, s.cfg.PublicIPv6, false); err != nil {
			if !ip.IsUnspecified() {
				return nil, err
			}
			g.bind6 = "" // [::] on a host without a global IPv6 address: IPv4 relays only
		}
	}
	return g, nil
}

// interfaceAddr returns the first global unicast address of the family on the host's interfaces.
func interfaceAddr(v4 bool) (netip.Addr, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return netip.Addr{}, fmt.Errorf("relay: interface addresses: %w", err)
	}
	for _, a := range addrs {
		pfx, err := netip.ParsePrefix(a.String())
		if err != nil {
			continue
		}
		ip := pfx.Addr().Unmap()
		if ip.Is4() == v4 && ip.IsGlobalUnicast() {
			return ip, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("%w: no address to advertise for relayed allocations; give a public IP",
		ErrInvalidConfig)
}

func (g *relayGen) Validate() error { return nil }

func (g *relayGen) family(network string) (bind string, adv net.IP, err error) {
	switch network {
	case "udp4", "tcp4":
		bind, adv = g.bind4, g.adv4
	case "udp6", "tcp6":
		bind, adv = g.bind6, g.adv6
	}
	if bind == "" {
		return "", nil, fmt.Errorf("relay: no %s relay address on this listener", network)
	}
	return bind, adv, nil
}

const portTries = 64

// choosePorts yields the requested port, or random ports in the range.
func (g *relayGen) try(requested int, open func(port int) error) error {
	if requested != 0 {
		return open(requested)
	}
	lo, hi := int(g.s.cfg.PortMin), int(g.s.cfg.PortMax)
	var err error
	for range portTries {
		if err = open(lo + rand.IntN(hi-lo+1)); err == nil {
			return nil
		}
	}
	return fmt.Errorf("relay: no free relay port in %d-%d: %w", lo, hi, err)
}

func (g *relayGen) AllocatePacketConn(conf turn.AllocateListenerConfig) (net.PacketConn, net.Addr, error) {
	bind, adv, err := g.family(conf.Network)
	if err != nil {
		return nil, nil, err
	}
	if r := g.s.quota.take(conf.UserID); r != "" {
		return nil, nil, fmt.Errorf("relay: allocation refused: %s", r)
	}
	bindIP, err := netip.ParseAddr(bind)
	if err != nil {
		g.s.quota.release(conf.UserID)
		return nil, nil, fmt.Errorf("relay: relay address %q: %w", bind, err)
	}
	advIP, _ := netip.AddrFromSlice(adv)
	plane := g.s.plane()
	var sock *udpSock
	var advAP netip.AddrPort
	err = g.try(conf.RequestedPort, func(port int) error {
		var err error
		if sock, err = openUDP(plane, conf.Network, netip.AddrPortFrom(bindIP, uint16(port)), false,
			relayHandoffQueue); err != nil {
			return err
		}
		advAP = netip.AddrPortFrom(advIP.Unmap(), uint16(sock.local.Port))
		if !g.s.routes.reserveRelay(advAP) {
			// Another listener advertises the same address with this port: the data plane could not tell
			// the two allocations apart.
			_ = sock.Close()
			return fmt.Errorf("relay: relayed address %s in use", advAP)
		}
		return nil
	})
	if err != nil {
		g.s.quota.release(conf.UserID)
		return nil, nil, err
	}
	rc := g.s.newRelayConn(sock, conf.UserID)
	g.s.routes.setRelay(advAP, rc)
	if err := plane.add(sock); err != nil {
		_ = rc.Close() // gives the quota slot back
		return nil, nil, err
	}
	return rc, &net.UDPAddr{IP: adv, Port: rc.sock.local.Port}, nil
}

func (g *relayGen) AllocateListener(conf turn.AllocateListenerConfig) (net.Listener, net.Addr, error) {
	bind, adv, err := g.family(conf.Network)
	if err != nil {
		return nil, nil, err
	}
	if r := g.s.quota.take(conf.UserID); r != "" {
		return nil, nil, fmt.Errorf("relay: allocation refused: %s", r)
	}
	// SO_REUSEPORT lets RFC 6062 Connect dial out from the relayed address (AllocateConn).
	lc := net.ListenConfig{Control: reuseport.Control}
	var ln net.Listener
	err = g.try(conf.RequestedPort, func(port int) error {
		var err error
		ln, err = lc.Listen(context.Background(), conf.Network, net.JoinHostPort(bind, strconv.Itoa(port)))
		return err
	})
	if err != nil {
		g.s.quota.release(conf.UserID)
		return nil, nil, err
	}
	port := ln.Addr().(*net.TCPAddr).Port
	return &relayListener{Listener: ln, s: g.s, user: conf.UserID}, &net.TCPAddr{IP: adv, Port: port}, nil
}

// dialTimeout bounds an RFC 6062 Connect to a peer (RFC 6062 §5.2 suggests at least 30 s; pion handles the
// Connect in the client's read loop, so it is kept short).
const dialTimeout = 10 * time.Second

func (g *relayGen) AllocateConn(conf turn.AllocateConnConfig) (net.Conn, error) {
	if tcp, ok := conf.RemoteAddr.(*net.TCPAddr); !ok || !g.s.cfg.Peers.AllowedIP(tcp.IP) {
		g.s.m.deniedPeer.Inc()
		return nil, fmt.Errorf("relay: peer %s denied", conf.RemoteAddr)
	}
	d := net.Dialer{LocalAddr: conf.LocalAddr, Control: reuseport.Control, Timeout: dialTimeout}
	c, err := d.Dial(conf.Network, conf.RemoteAddr.String())
	if err != nil {
		return nil, fmt.Errorf("relay: connect %s: %w", conf.RemoteAddr, err)
	}
	return g.s.newPeerConn(c), nil
}

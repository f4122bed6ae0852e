package testbed

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// DefaultDomain is the XMPP domain of a Bed unless Options.Domain says
// otherwise.
const DefaultDomain = "xjingle.test"

// Sentinel errors.
var (
	// ErrNotInstalled means the prosody binary was not found. Start skips the
	// test on it.
	ErrNotInstalled = errors.New("testbed: prosody is not installed")
	// ErrExited means prosody exited before it was ready or while in use.
	ErrExited = errors.New("testbed: prosody exited")
	// ErrAddrInUse means prosody could not bind one of its ports (another
	// process took it between our probe and prosody's bind). New retries once
	// on it with fresh ports.
	ErrAddrInUse = errors.New("testbed: port already in use")
	// ErrClosed is returned by methods of a closed Bed.
	ErrClosed = errors.New("testbed: closed")
)

// Options configure a Bed. The zero value is usable.
type Options struct {
	// Domain is the XMPP domain (default DefaultDomain).
	Domain string

	// TURNAddr is host:port of a TURN server to announce over XEP-0215
	// (external services), with a "stun" entry at the same address.
	TURNAddr string
	// TURNSecret is the TURN REST shared secret; with it, Prosody hands out
	// time-limited TURN credentials.
	TURNSecret string
	// TURNTransports lists the TURN transports to announce: "udp", "tcp"
	// (default: udp).
	TURNTransports []string
	// STUNAddr is host:port of the announced STUN service. Default: the TURN
	// address if set, else 127.0.0.1:3478 (nothing need listen there; it gives
	// `xjingle probe` something to list).
	STUNAddr string

	// NoProxy65 disables the XEP-0065 proxy component.
	NoProxy65 bool
	// Components are external components (XEP-0114) to declare; with any,
	// Prosody listens for them on Bed.ComponentAddr (loopback).
	Components []ExternalComponent

	// LogLevel is Prosody's minimum log level: debug, info (default), warn,
	// error.
	LogLevel string
	// ExtraConfig is raw Lua appended to the config's global section.
	ExtraConfig string
	// ExtraModules are more modules_enabled entries.
	ExtraModules []string

	// Prosody is the path of the prosody executable (default: "prosody" in
	// PATH, else /usr/bin/prosody).
	Prosody string
	// StartTimeout bounds the start when the context has no deadline
	// (default 30s).
	StartTimeout time.Duration
	// KeepDir keeps the directory on Close. Start keeps it anyway when the
	// test failed.
	KeepDir bool
	// Logf, if set, receives the testbed's own messages (not Prosody's log).
	Logf func(format string, args ...any)
}

// Option changes Options. Options itself is an Option (it replaces all
// fields), and so is OptionFunc.
type Option interface{ apply(*Options) }

func (o Options) apply(dst *Options) { *dst = o }

// OptionFunc adapts a function to Option.
type OptionFunc func(*Options)

func (f OptionFunc) apply(o *Options) { f(o) }

// WithTURN announces a TURN server at addr (host:port) with REST shared
// secret secret (XEP-0215).
func WithTURN(addr, secret string) Option {
	return OptionFunc(func(o *Options) { o.TURNAddr, o.TURNSecret = addr, secret })
}

// WithoutProxy65 disables the XEP-0065 proxy component.
func WithoutProxy65() Option { return OptionFunc(func(o *Options) { o.NoProxy65 = true }) }

// ExternalComponent is a XEP-0114 component declared in Prosody's config
// (Prosody 0.12: `Component "JID"` with component_secret).
type ExternalComponent struct {
	JID    string // a subdomain of the Bed's domain, e.g. "proxy2.xjingle.test"
	Secret string
}

// WithComponent declares an external component jid with secret (XEP-0114).
func WithComponent(jid, secret string) Option {
	return OptionFunc(func(o *Options) { o.Components = append(o.Components, ExternalComponent{JID: jid, Secret: secret}) })
}

// WithLogLevel sets Prosody's minimum log level.
func WithLogLevel(level string) Option { return OptionFunc(func(o *Options) { o.LogLevel = level }) }

// Account is a user account on a Bed.
type Account struct {
	JID      string // bare JID, e.g. "alice@xjingle.test"
	Password string
}

// Bed is a running Prosody. Its fields are read-only.
type Bed struct {
	Domain        string // XMPP domain, "xjingle.test"
	C2SAddr       string // 127.0.0.1:PORT, client connections with STARTTLS
	DirectTLSAddr string // 127.0.0.1:PORT, client connections with direct TLS (XEP-0368)
	CAFile        string // PEM of the CA that issued the server certificate
	Proxy65JID    string // "proxy.xjingle.test"; empty with NoProxy65
	Proxy65Addr   string // 127.0.0.1:PORT of the SOCKS5 proxy; empty with NoProxy65
	ComponentAddr string // 127.0.0.1:PORT of the XEP-0114 component port; empty without Components
	Dir           string // everything lives here: config, data, certs, log
	ConfigFile    string // the generated prosody.cfg.lua
	LogFile       string // Prosody's log
	AdminSocket   string // mod_admin_socket's Unix socket
	PID           int    // the prosody process

	opts       Options
	caPool     *x509.CertPool
	removeDir  bool   // Close removes Dir
	socketDir  string // separate short dir for the admin socket, removed on Close
	consoleLog string // prosody's stdout+stderr
	proc       *os.Process
	exited     chan struct{} // closed when the process is reaped
	waitErr    error         // valid after exited is closed

	closeOnce sync.Once
	closeErr  error
	mu        sync.Mutex
	closed    bool
}

func (o *Options) defaults() {
	if o.Domain == "" {
		o.Domain = DefaultDomain
	}
	if o.LogLevel == "" {
		o.LogLevel = "info"
	}
	if o.StartTimeout <= 0 {
		o.StartTimeout = 30 * time.Second
	}
}

func (o *Options) logf(format string, args ...any) {
	if o.Logf != nil {
		o.Logf(format, args...)
	}
}

// prosodyPath finds the prosody executable.
func prosodyPath(o Options) (string, error) {
	if o.Prosody != "" {
		if _, err := os.Stat(o.Prosody); err != nil {
			return "", fmt.Errorf("%w: %w", ErrNotInstalled, err)
		}
		return o.Prosody, nil
	}
	if p, err := exec.LookPath("prosody"); err == nil {
		return p, nil
	}
	if _, err := os.Stat("/usr/bin/prosody"); err == nil {
		return "/usr/bin/prosody", nil
	}
	return "", ErrNotInstalled
}

// Start starts a Bed for a test, skips the test when prosody is not
// installed, and fails it on any other error. The Bed is closed by
// t.Cleanup; its directory is kept (and its path and log tail logged) when
// the test failed.
func Start(t testing.TB, opts ...Option) *Bed {
	t.Helper()
	var o Options
	for _, opt := range opts {
		if opt != nil {
			opt.apply(&o)
		}
	}
	if o.Logf == nil {
		o.Logf = t.Logf
	}
	dir, err := os.MkdirTemp("", "xjtb-")
	if err != nil {
		t.Fatalf("testbed: %v", err)
	}
	o.defaults()
	ctx, cancel := context.WithTimeout(context.Background(), o.StartTimeout)
	defer cancel()
	b, err := New(ctx, dir, o)
	if err != nil {
		if errors.Is(err, ErrNotInstalled) && os.Getenv("CI") == "" {
			// Outside CI a missing Prosody skips; CI installs it
			// (.ci/install-deps.sh), so there it is a failure.
			_ = os.RemoveAll(dir)
			t.Skipf("testbed: %v (apt-get install prosody)", err)
		}
		t.Fatalf("%v\n(files kept in %s)", err, dir)
	}
	t.Cleanup(func() {
		failed := t.Failed()
		if failed {
			t.Logf("testbed: prosody log tail:\n%s", b.LogTail(40))
		}
		if err := b.Close(); errors.Is(err, ErrShutdownHang) {
			// Prosody 0.12.3 can hang in its own shutdown when a
			// client disconnects meanwhile (mod_c2s.lua:469 "attempt
			// to call a nil value (method 'close')" in its log); it
			// was killed, and the test's result stands.
			t.Logf("testbed: close: %v; log tail:\n%s", err, b.LogTail(10))
		} else if err != nil {
			t.Errorf("testbed: close: %v", err)
			failed = true
		}
		if failed {
			t.Logf("testbed: kept %s for inspection", dir)
			return
		}
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("testbed: remove %s: %v", dir, err)
		}
	})
	return b
}

// New starts Prosody with its files under dir (created if needed; a new
// temporary directory if dir is ""). ctx bounds the start only; Close stops
// the server. Close removes dir only if New created it and Options.KeepDir
// is false.
func New(ctx context.Context, dir string, opts Options) (*Bed, error) {
	opts.defaults()
	bin, err := prosodyPath(opts)
	if err != nil {
		return nil, err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, opts.StartTimeout)
		defer cancel()
	}
	services, err := externalServices(opts)
	if err != nil {
		return nil, err
	}

	created := false
	if dir == "" {
		if dir, err = os.MkdirTemp("", "xjtb-"); err != nil {
			return nil, fmt.Errorf("testbed: %w", err)
		}
		created = true
	} else if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("testbed: %w", err)
	}
	if dir, err = filepath.Abs(dir); err != nil {
		return nil, fmt.Errorf("testbed: %w", err)
	}
	b := &Bed{
		Domain:     opts.Domain,
		Dir:        dir,
		ConfigFile: filepath.Join(dir, "prosody.cfg.lua"),
		LogFile:    filepath.Join(dir, "prosody.log"),
		consoleLog: filepath.Join(dir, "console.log"),
		opts:       opts,
		removeDir:  created && !opts.KeepDir,
	}
	fail := func(err error) (*Bed, error) {
		if b.socketDir != "" {
			_ = os.RemoveAll(b.socketDir)
		}
		if b.removeDir {
			_ = os.RemoveAll(dir)
		}
		return nil, err
	}
	if !opts.NoProxy65 {
		b.Proxy65JID = "proxy." + opts.Domain
	}

	certs, err := writeCerts(filepath.Join(dir, "certs"), opts.Domain)
	if err != nil {
		return fail(err)
	}
	b.CAFile = certs.CA
	if b.caPool, err = b.CertPool(); err != nil {
		return fail(err)
	}
	dataDir := filepath.Join(dir, "data")
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return fail(fmt.Errorf("testbed: %w", err))
	}
	// A Unix socket path must fit in sun_path (108 bytes on Linux).
	b.AdminSocket = filepath.Join(dataDir, "admin.sock")
	if len(b.AdminSocket) > 100 {
		if b.socketDir, err = os.MkdirTemp("", "xjtbs-"); err != nil {
			return fail(fmt.Errorf("testbed: %w", err))
		}
		b.AdminSocket = filepath.Join(b.socketDir, "admin.sock")
	}

	cfg := configData{
		Domain:       opts.Domain,
		DataDir:      dataDir,
		PIDFile:      filepath.Join(dir, "prosody.pid"),
		LogFile:      b.LogFile,
		LogLevel:     opts.LogLevel,
		AdminSocket:  b.AdminSocket,
		Certs:        certs,
		Proxy65JID:   b.Proxy65JID,
		RunAsRoot:    os.Geteuid() == 0,
		LimitRate:    limitRate,
		LimitBurst:   limitBurst,
		StanzaLimit:  stanzaSizeLimit,
		Services:     services,
		ExtraGlobal:  opts.ExtraConfig,
		ModulesExtra: opts.ExtraModules,
		Components:   opts.Components,
	}

	// Free ports are found by binding 127.0.0.1:0 and closing; another
	// process may grab one before prosody binds it, so retry once.
	const attempts = 2
	for attempt := 1; ; attempt++ {
		p, err := pickPorts(4)
		if err != nil {
			return fail(err)
		}
		cfg.Ports = ports{C2S: p[0], DirectTLS: p[1]}
		if !opts.NoProxy65 {
			cfg.Ports.Proxy65 = p[2]
		}
		if len(opts.Components) > 0 {
			cfg.Ports.Component = p[3]
		}
		if err := renderConfig(b.ConfigFile, cfg); err != nil {
			return fail(err)
		}
		_ = os.Remove(b.LogFile)
		err = b.start(ctx, bin, cfg.Ports)
		if err == nil {
			break
		}
		if errors.Is(err, ErrAddrInUse) && attempt < attempts && ctx.Err() == nil {
			opts.logf("testbed: %v; retrying with other ports", err)
			continue
		}
		return fail(err)
	}
	opts.logf("testbed: prosody pid %d on %s (dir %s)", b.PID, b.C2SAddr, dir)
	return b, nil
}

// pickPorts is freePorts; tests replace it to provoke a bind failure.
var pickPorts = freePorts

// freePorts returns n distinct free TCP ports on 127.0.0.1.
func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			_ = l.Close()
		}
	}()
	out := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("testbed: free port: %w", err)
		}
		ls = append(ls, l)
		out = append(out, l.Addr().(*net.TCPAddr).Port)
	}
	return out, nil
}

// start launches prosody with b.ConfigFile and waits until it is ready. On
// failure the process is stopped.
func (b *Bed) start(ctx context.Context, bin string, p ports) error {
	console, err := os.OpenFile(b.consoleLog, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("testbed: %w", err)
	}
	defer console.Close() // the child has its own copy

	cmd := exec.Command(bin, "--config", b.ConfigFile, "-F")
	cmd.Dir = b.Dir
	cmd.Stdout, cmd.Stderr = console, console
	cmd.Env = append(os.Environ(), "PROSODY_CONFIG="+b.ConfigFile)
	setProcAttr(cmd)

	// The process is started and reaped by one goroutine that keeps its OS
	// thread locked: Pdeathsig (see setProcAttr) fires when the *thread*
	// that forked the child exits, and a locked thread lives until the
	// goroutine returns, i.e. after the child is gone.
	started := make(chan error, 1)
	exited := make(chan struct{})
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		b.waitErr = cmd.Wait()
		close(exited)
	}()
	if err := <-started; err != nil {
		return fmt.Errorf("testbed: start %s: %w", bin, err)
	}
	b.proc, b.PID, b.exited = cmd.Process, cmd.Process.Pid, exited
	b.C2SAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(p.C2S))
	b.DirectTLSAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(p.DirectTLS))
	b.Proxy65Addr = ""
	if p.Proxy65 != 0 {
		b.Proxy65Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(p.Proxy65))
	}
	b.ComponentAddr = ""
	if p.Component != 0 {
		b.ComponentAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(p.Component))
	}

	if err := b.waitReady(ctx); err != nil {
		stopErr := b.stop()
		return errors.Join(err, stopErr)
	}
	return nil
}

// waitReady polls, within ctx, until every port accepts connections and the
// admin socket answers a command (which means the server loop runs, i.e.
// the startup finished), and checks the log for bind failures.
func (b *Bed) waitReady(ctx context.Context) error {
	addrs := []string{b.C2SAddr, b.DirectTLSAddr}
	if b.Proxy65Addr != "" {
		addrs = append(addrs, b.Proxy65Addr)
	}
	if b.ComponentAddr != "" {
		addrs = append(addrs, b.ComponentAddr)
	}
	delay := 5 * time.Millisecond
	var last error
	for {
		select {
		case <-b.exited:
			return fmt.Errorf("%w before it was ready (%v); log:\n%s", ErrExited, b.waitErr, b.LogTail(30))
		default:
		}
		if err := b.bindError(); err != nil {
			return err
		}
		last = b.probe(ctx, addrs)
		if last == nil {
			// Bind errors are logged during startup, before the loop runs
			// and the admin command above could be answered.
			return b.bindError()
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("testbed: prosody not ready: %w (last: %v); log:\n%s", ctx.Err(), last, b.LogTail(30))
		case <-b.exited:
			t.Stop()
		case <-t.C:
		}
		delay = min(2*delay, 200*time.Millisecond)
	}
}

func (b *Bed) probe(ctx context.Context, addrs []string) error {
	var d net.Dialer
	for _, a := range addrs {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		c, err := d.DialContext(pctx, "tcp", a)
		cancel()
		if err != nil {
			return err
		}
		_ = c.Close()
	}
	actx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	res, err := admin(actx, b.AdminSocket, ">1", "ping")
	if err != nil {
		return err
	}
	if !strings.Contains(res, "1") {
		return fmt.Errorf("testbed: admin ping: unexpected answer %q", res)
	}
	return nil
}

// bindError reports ErrAddrInUse if prosody logged that it could not open a
// port (0.12 logs and keeps running: core/portmanager.lua).
func (b *Bed) bindError() error {
	data, err := os.ReadFile(b.LogFile)
	if err != nil {
		return nil
	}
	for line := range strings.Lines(string(data)) {
		if strings.Contains(line, "Failed to open server port") {
			return fmt.Errorf("%w: %s", ErrAddrInUse, strings.TrimSpace(line))
		}
	}
	return nil
}

// ErrShutdownHang is returned (wrapped) by Close when Prosody did not exit
// within 10 s of SIGTERM and was killed.
var ErrShutdownHang = errors.New("testbed: prosody hung in shutdown")

// stop terminates the process we started: SIGTERM, then SIGKILL after a
// deadline, and waits until it is reaped.
func (b *Bed) stop() error {
	if b.proc == nil {
		return nil
	}
	select {
	case <-b.exited:
		return nil
	default:
	}
	if err := b.proc.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("testbed: stop prosody %d: %w", b.PID, err)
	}
	t := time.NewTimer(10 * time.Second)
	defer t.Stop()
	select {
	case <-b.exited:
		return nil
	case <-t.C:
	}
	if err := b.proc.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("testbed: kill prosody %d: %w", b.PID, err)
	}
	<-b.exited
	return fmt.Errorf("testbed: prosody %d ignored SIGTERM for 10s; killed: %w", b.PID, ErrShutdownHang)
}

// Close stops Prosody (SIGTERM, SIGKILL after 10 s), waits for it to exit and
// removes the directory if New created it. It is idempotent.
func (b *Bed) Close() error {
	b.closeOnce.Do(func() {
		b.mu.Lock()
		b.closed = true
		b.mu.Unlock()
		var errs []error
		errs = append(errs, b.stop())
		if b.socketDir != "" {
			if err := os.RemoveAll(b.socketDir); err != nil {
				errs = append(errs, fmt.Errorf("testbed: %w", err))
			}
		}
		if b.removeDir {
			if err := os.RemoveAll(b.Dir); err != nil {
				errs = append(errs, fmt.Errorf("testbed: %w", err))
			}
		}
		b.closeErr = errors.Join(errs...)
	})
	return b.closeErr
}

// Exited is closed when the prosody process has exited (after Close, or if it
// died).
func (b *Bed) Exited() <-chan struct{} { return b.exited }

// check returns an error if the Bed is closed or its process died.
func (b *Bed) check() error {
	b.mu.Lock()
	closed := b.closed
	b.mu.Unlock()
	if closed {
		return ErrClosed
	}
	select {
	case <-b.exited:
		return fmt.Errorf("%w (%v); log:\n%s", ErrExited, b.waitErr, b.LogTail(20))
	default:
		return nil
	}
}

// LogTail returns the last n lines of Prosody's log, followed by anything it
// printed on stdout/stderr (startup errors go there). For failing tests.
func (b *Bed) LogTail(n int) string {
	out := tail(b.LogFile, n)
	if c := tail(b.consoleLog, n); strings.TrimSpace(c) != "" {
		out += "\n--- prosody stdout/stderr ---\n" + c
	}
	return out
}

// tail returns the last n lines of the file at path ("" if unreadable). It
// reads at most the last 256 KiB.
func tail(path string, n int) string {
	if n <= 0 {
		return ""
	}
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	const maxTail = 256 << 10
	if st, err := f.Stat(); err == nil && st.Size() > maxTail {
		_, _ = f.Seek(-maxTail, io.SeekEnd)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxTail))
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// CertPool reads CAFile into a new pool.
func (b *Bed) CertPool() (*x509.CertPool, error) {
	pem, err := os.ReadFile(b.CAFile)
	if err != nil {
		return nil, fmt.Errorf("testbed: read CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("testbed: read CA %s: no certificate", b.CAFile)
	}
	return pool, nil
}

// TLSConfig returns a new client TLS config that trusts the Bed's CA (and
// nothing else) and expects the server name Domain.
func (b *Bed) TLSConfig() *tls.Config {
	return &tls.Config{RootCAs: b.caPool, ServerName: b.Domain, MinVersion: tls.VersionTLS12}
}

// Version returns the installed Prosody's version (e.g. "0.12.3") from
// `prosodyctl about` — `prosody --version` would start a server.
func Version(ctx context.Context) (string, error) {
	bin, err := exec.LookPath("prosodyctl")
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrNotInstalled, err)
	}
	cmd := exec.CommandContext(ctx, bin, "about")
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	runErr := cmd.Run()
	v, ok := parseVersion(out.Bytes())
	if !ok {
		return "", fmt.Errorf("testbed: prosodyctl about: no version in output (%v): %.300s", runErr, out.String())
	}
	return v, nil
}

// parseVersion finds "Prosody X.Y.Z" in prosodyctl about's output.
func parseVersion(out []byte) (string, bool) {
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 2 && f[0] == "Prosody" && f[1] != "" && f[1][0] >= '0' && f[1][0] <= '9' {
			return f[1], true
		}
	}
	return "", false
}

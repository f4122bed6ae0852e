package testbed

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/tls"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
	"mellium.im/sasl"
	"mellium.im/xmlstream"
	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// streamHeader is what a client sends first (RFC 6120 §4.7).
func streamHeader(domain string) string {
	return `<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='` +
		domain + `' version='1.0'>`
}

// features is the part of <stream:features/> the tests look at.
type features struct {
	StartTLS *struct {
		Required *struct{} `xml:"required"`
	} `xml:"urn:ietf:params:xml:ns:xmpp-tls starttls"`
	Mechanisms []string `xml:"urn:ietf:params:xml:ns:xmpp-sasl mechanisms>mechanism"`
}

// readFeatures reads the server's stream header and <stream:features/>.
func readFeatures(t *testing.T, r io.Reader) features {
	t.Helper()
	d := xml.NewDecoder(r)
	for {
		tok, err := d.Token()
		if err != nil {
			t.Fatalf("reading stream: %v", err)
		}
		se, ok := tok.(xml.StartElement)
		if !ok || se.Name.Local == "stream" {
			continue
		}
		if se.Name.Space != "http://etherx.jabber.org/streams" || se.Name.Local != "features" {
			t.Fatalf("got <%s xmlns=%q>, want stream features", se.Name.Local, se.Name.Space)
		}
		var f features
		if err := d.DecodeElement(&f, &se); err != nil {
			t.Fatalf("reading features: %v", err)
		}
		return f
	}
}

func TestStartSTARTTLSAndDirectTLS(t *testing.T) {
	b := Start(t)
	if b.Domain != DefaultDomain || b.Proxy65JID != "proxy."+DefaultDomain {
		t.Errorf("Domain %q, Proxy65JID %q", b.Domain, b.Proxy65JID)
	}
	for name, a := range map[string]string{"C2SAddr": b.C2SAddr, "DirectTLSAddr": b.DirectTLSAddr, "Proxy65Addr": b.Proxy65Addr} {
		host, _, err := net.SplitHostPort(a)
		if err != nil || host != "127.0.0.1" {
			t.Errorf("%s = %q, want 127.0.0.1:PORT", name, a)
		}
	}
	if b.PID <= 0 {
		t.Errorf("PID = %d", b.PID)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var d net.Dialer

	// Plain c2s: the features must offer (and require) STARTTLS, RFC 6120 §5.3.1.
	c, err := d.DialContext(ctx, "tcp", b.C2SAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, streamHeader(b.Domain)); err != nil {
		t.Fatal(err)
	}
	f := readFeatures(t, c)
	if f.StartTLS == nil || f.StartTLS.Required == nil {
		t.Errorf("features without required STARTTLS: %+v", f)
	}
	if len(f.Mechanisms) != 0 {
		t.Errorf("SASL offered before TLS: %v", f.Mechanisms)
	}

	// Direct TLS (XEP-0368): the certificate verifies against CAFile for the
	// domain, and SASL is offered right away.
	raw, err := d.DialContext(ctx, "tcp", b.DirectTLSAddr)
	if err != nil {
		t.Fatal(err)
	}
	tc := tls.Client(raw, b.TLSConfig())
	defer tc.Close()
	_ = tc.SetDeadline(time.Now().Add(10 * time.Second))
	if err := tc.HandshakeContext(ctx); err != nil {
		t.Fatalf("direct TLS handshake: %v", err)
	}
	if _, err := io.WriteString(tc, streamHeader(b.Domain)); err != nil {
		t.Fatal(err)
	}
	f = readFeatures(t, tc)
	if !slices.Contains(f.Mechanisms, "SCRAM-SHA-1") {
		t.Errorf("no SCRAM-SHA-1 after direct TLS: %v", f.Mechanisms)
	}

	// The proxy component's certificate name (*.domain) verifies too.
	cfg := b.TLSConfig()
	cfg.ServerName = b.Proxy65JID
	raw2, err := d.DialContext(ctx, "tcp", b.DirectTLSAddr)
	if err != nil {
		t.Fatal(err)
	}
	tc2 := tls.Client(raw2, cfg)
	defer tc2.Close()
	_ = tc2.SetDeadline(time.Now().Add(10 * time.Second))
	if err := tc2.HandshakeContext(ctx); err != nil {
		t.Errorf("TLS handshake for %s: %v", b.Proxy65JID, err)
	}
}

func TestConfigLimits(t *testing.T) {
	b := Start(t)
	cfg, err := os.ReadFile(b.ConfigFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`c2s = { rate = "100mb/s"; burst = "10s"; };`,
		`c2s_stanza_size_limit = 1048576`,
		`network_backend = "epoll"`,
		`interfaces = { "127.0.0.1" }`,
		`s2s_ports = { }`,
	} {
		if !bytes.Contains(cfg, []byte(want)) {
			t.Errorf("config lacks %q", want)
		}
	}
	// What the running server read:
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got, err := b.Admin(ctx, `>local c = require "core.configmanager"; return "limits:" .. c.get("*", "limits").c2s.rate .. "/" .. c.get("*", "c2s_stanza_size_limit")`)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(got, "limits:100mb/s/1048576") {
		t.Errorf("server config: %q", got)
	}
	// mod_limits falls back to 3000 B/s on a rate it cannot parse, and logs it.
	log := b.LogTail(1000)
	if strings.Contains(log, "Error parsing rate") || strings.Contains(log, "Unable to parse burst") {
		t.Errorf("mod_limits rejected the config:\n%s", log)
	}
	// No s2s listener, nothing bound to other interfaces than loopback: the
	// only listening services are the ones we configured.
	got, err = b.Admin(ctx, `>local pm = require "core.portmanager"; local t = {}; `+
		`for name, ifs in pairs(pm.get_active_services().data) do for iface, ports in pairs(ifs) do for port in pairs(ports) do t[#t+1] = name .. "@" .. iface .. ":" .. port end end end; `+
		`table.sort(t); return "services:" .. table.concat(t, ",")`)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(got, "s2s") || strings.Contains(got, "http") || strings.Contains(got, "component") {
		t.Errorf("unexpected listeners: %s", got)
	}
	for _, a := range []string{b.C2SAddr, b.DirectTLSAddr, b.Proxy65Addr} {
		if !strings.Contains(got, a) {
			t.Errorf("no listener on %s in %s", a, got)
		}
	}
}

// TestComponentDeclared: WithComponent declares an external component
// (XEP-0114) with a loopback component port, and WithoutProxy65 leaves
// mod_proxy65 out.
func TestComponentDeclared(t *testing.T) {
	b := Start(t, WithoutProxy65(), WithComponent("proxy2."+DefaultDomain, "s3cret"))
	if b.ComponentAddr == "" || b.Proxy65Addr != "" || b.Proxy65JID != "" {
		t.Fatalf("bed %+v: want a component port and no proxy65", b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got, err := b.Admin(ctx, `>local pm = require "core.portmanager"; local t = {}; `+
		`for name, ifs in pairs(pm.get_active_services().data) do for iface, ports in pairs(ifs) do for port in pairs(ports) do t[#t+1] = name .. "@" .. iface .. ":" .. port end end end; `+
		`table.sort(t); local h = hosts["proxy2.`+DefaultDomain+`"]; return "services:" .. table.concat(t, ",") .. " host:" .. tostring(h and h.type)`)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(got, "component@"+b.ComponentAddr) || !strings.Contains(got, "host:component") {
		t.Errorf("server state %q: want the component listener on %s and host proxy2 of type component", got, b.ComponentAddr)
	}
	if strings.Contains(got, "proxy65") {
		t.Errorf("mod_proxy65 still listens: %s", got)
	}
}

func TestVersion(t *testing.T) {
	if _, err := prosodyPath(Options{}); err != nil {
		t.Skip(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	v, err := Version(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(v, "0.12.") && !strings.HasPrefix(v, "0.13.") && !strings.HasPrefix(v, "13.") {
		t.Errorf("Version = %q, want 0.12.x (the config is written for 0.12)", v)
	}
}

func TestParseVersion(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string
		ok   bool
	}{
		{"Prosody 0.12.3\n\n# Prosody directories\n", "0.12.3", true},
		{"warn: something\nProsody 13.0.1\n", "13.0.1", true},
		{"Prosody is not running\n", "", false},
		{"", "", false},
	} {
		got, ok := parseVersion([]byte(tc.in))
		if got != tc.want || ok != tc.ok {
			t.Errorf("parseVersion(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

// alive reports whether a process with pid exists (signal 0).
func alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

func TestCloseLeavesNoProcess(t *testing.T) {
	if _, err := prosodyPath(Options{}); err != nil {
		t.Skip(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := New(ctx, "", Options{NoProxy65: true, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	if b.Proxy65JID != "" || b.Proxy65Addr != "" {
		t.Errorf("NoProxy65: Proxy65JID %q Proxy65Addr %q", b.Proxy65JID, b.Proxy65Addr)
	}
	pid, dir := b.PID, b.Dir
	if !alive(pid) {
		t.Fatalf("prosody %d not running after New", pid)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case <-b.Exited():
	default:
		t.Error("Exited not closed after Close")
	}
	if alive(pid) {
		t.Errorf("prosody %d still exists after Close", pid)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("dir %s not removed: %v", dir, err)
	}
	if c, err := net.DialTimeout("tcp", b.C2SAddr, time.Second); err == nil {
		c.Close()
		t.Errorf("%s still accepts connections", b.C2SAddr)
	}
	if err := b.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := b.CreateUser("late", "pw"); !errors.Is(err, ErrClosed) {
		t.Errorf("CreateUser after Close: %v, want ErrClosed", err)
	}
}

func TestNewKeepsCallersDir(t *testing.T) {
	if _, err := prosodyPath(Options{}); err != nil {
		t.Skip(err)
	}
	dir := filepath.Join(t.TempDir(), "bed")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := New(ctx, dir, Options{Domain: "other.test", LogLevel: "debug"})
	if err != nil {
		t.Fatal(err)
	}
	if b.Domain != "other.test" || b.Proxy65JID != "proxy.other.test" {
		t.Errorf("Domain %q Proxy65JID %q", b.Domain, b.Proxy65JID)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "prosody.log")); err != nil {
		t.Errorf("log not kept in caller's dir: %v", err)
	}
	if !strings.Contains(b.LogTail(5000), "debug") {
		t.Errorf("LogLevel debug: no debug lines in log")
	}
}

func TestStartFailureReportsLog(t *testing.T) {
	if _, err := prosodyPath(Options{}); err != nil {
		t.Skip(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// A config syntax error makes prosody exit at once.
	_, err := New(ctx, "", Options{ExtraConfig: "this is not lua ((("})
	if err == nil {
		t.Fatal("New with a broken config succeeded")
	}
	if !errors.Is(err, ErrExited) {
		t.Errorf("err = %v, want ErrExited", err)
	}
	if !strings.Contains(err.Error(), "prosody.cfg.lua") {
		t.Errorf("error lacks prosody's complaint: %v", err)
	}
}

func TestUsersAndRoster(t *testing.T) {
	b := Start(t)
	alice := b.AddUser(t, "alice")
	bob := b.AddUser(t, "bob@"+b.Domain)
	if alice.JID != "alice@xjingle.test" || bob.JID != "bob@xjingle.test" || alice.Password == "" || alice.Password == bob.Password {
		t.Errorf("accounts %+v %+v", alice, bob)
	}
	if _, err := b.CreateUser("alice", "x"); err == nil {
		t.Error("creating alice twice succeeded")
	} else if ae := (*AdminError)(nil); !errors.As(err, &ae) {
		t.Errorf("duplicate user: %v, want *AdminError", err)
	}
	for _, bad := range []string{"", "Alice", "a b", "a/b", "a@other.test", `a"b`} {
		if _, err := b.CreateUser(bad, "pw"); !errors.Is(err, ErrBadUsername) {
			t.Errorf("CreateUser(%q): %v, want ErrBadUsername", bad, err)
		}
	}
	if err := b.SubscribeMutual("alice", "nobody"); err == nil {
		t.Error("subscribing to a missing user succeeded")
	}

	b.Subscribe(t, "alice", "bob")
	for _, c := range []struct{ user, contact string }{{"alice", bob.JID}, {"bob", alice.JID}} {
		r, err := b.Roster(c.user)
		if err != nil {
			t.Fatal(err)
		}
		if r[c.contact] != "both" || len(r) != 1 {
			t.Errorf("roster of %s = %v, want %s=both", c.user, r, c.contact)
		}
	}
}

// login opens an XMPP session for a over STARTTLS with SCRAM.
func login(ctx context.Context, b *Bed, a Account) (*xmpp.Session, error) {
	j, err := jid.Parse(a.JID + "/test")
	if err != nil {
		return nil, err
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", b.C2SAddr)
	if err != nil {
		return nil, err
	}
	s, err := xmpp.NewClientSession(ctx, j, c,
		xmpp.StartTLS(b.TLSConfig()),
		xmpp.SASL("", a.Password, sasl.ScramSha256, sasl.ScramSha1),
		xmpp.BindResource())
	if err != nil {
		c.Close()
		return nil, err
	}
	return s, nil
}

// query sends an IQ get with payload to `to` and returns the reply as XML.
func query(ctx context.Context, s *xmpp.Session, to, payload string) (string, error) {
	j, err := jid.Parse(to)
	if err != nil {
		return "", err
	}
	r, err := s.SendIQElement(ctx, xml.NewDecoder(strings.NewReader(payload)), stanza.IQ{Type: stanza.GetIQ, To: j})
	if err != nil {
		return "", err
	}
	defer r.Close()
	var buf bytes.Buffer
	e := xml.NewEncoder(&buf)
	if _, err := xmlstream.Copy(e, r); err != nil {
		return "", err
	}
	if err := e.Flush(); err != nil {
		return "", err
	}
	return buf.String(), nil
}

// TestXMPPLogin proves the accounts work with a real client, and checks what
// a client discovers: the proxy65 component in disco#items, its streamhost
// (XEP-0065 §6.3.1), the XEP-0215 services with TURN REST credentials.
func TestXMPPLogin(t *testing.T) {
	b := Start(t, WithTURN("127.0.0.1:3479", "s3cret"))
	alice := b.AddUser(t, "alice")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	if _, err := login(ctx, b, Account{JID: alice.JID, Password: "wrong"}); err == nil {
		t.Error("login with a wrong password succeeded")
	}

	s, err := login(ctx, b, alice)
	if err != nil {
		t.Fatalf("login: %v\n%s", err, b.LogTail(20))
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(nil) }()
	defer func() {
		_ = s.Close()
		select {
		case <-served:
		case <-time.After(10 * time.Second):
			t.Error("Serve did not return after Close")
			_ = s.Conn().Close()
			<-served
		}
	}()

	// A stanza far above Debian's limits (10 kB/s, and 3000 B/s if the rate
	// option does not parse) but below c2s_stanza_size_limit must pass
	// quickly: 64 KiB IBB blocks are ~87 KiB of base64.
	bigCtx, bigCancel := context.WithTimeout(ctx, 8*time.Second)
	_, err = query(bigCtx, s, b.Domain, `<ping xmlns='urn:xmpp:ping'>`+strings.Repeat("QUJD", 300<<10/4)+`</ping>`)
	bigCancel()
	if err != nil {
		t.Fatalf("300 KiB stanza: %v\n%s", err, b.LogTail(20))
	}

	var items struct {
		Items []struct {
			JID string `xml:"jid,attr"`
		} `xml:"http://jabber.org/protocol/disco#items query>item"`
	}
	queryInto(ctx, t, s, b.Domain, `<query xmlns='http://jabber.org/protocol/disco#items'/>`, &items)
	if !slices.ContainsFunc(items.Items, func(i struct {
		JID string `xml:"jid,attr"`
	}) bool {
		return i.JID == b.Proxy65JID
	}) {
		t.Errorf("disco#items of %s lacks %s: %+v", b.Domain, b.Proxy65JID, items)
	}

	var sh struct {
		Hosts []struct {
			JID  string `xml:"jid,attr"`
			Host string `xml:"host,attr"`
			Port string `xml:"port,attr"`
		} `xml:"http://jabber.org/protocol/bytestreams query>streamhost"`
	}
	queryInto(ctx, t, s, b.Proxy65JID, `<query xmlns='http://jabber.org/protocol/bytestreams'/>`, &sh)
	if len(sh.Hosts) != 1 || sh.Hosts[0].JID != b.Proxy65JID || net.JoinHostPort(sh.Hosts[0].Host, sh.Hosts[0].Port) != b.Proxy65Addr {
		t.Errorf("streamhost %+v, want %s at %s", sh, b.Proxy65JID, b.Proxy65Addr)
	}

	type svc struct {
		Type       string `xml:"type,attr"`
		Transport  string `xml:"transport,attr"`
		Host       string `xml:"host,attr"`
		Port       string `xml:"port,attr"`
		Username   string `xml:"username,attr"`
		Password   string `xml:"password,attr"`
		Restricted string `xml:"restricted,attr"`
	}
	var ext struct {
		Services []svc `xml:"urn:xmpp:extdisco:2 services>service"`
	}
	queryInto(ctx, t, s, b.Domain, `<services xmlns='urn:xmpp:extdisco:2'/>`, &ext)
	var stun, turn *svc
	for i, v := range ext.Services {
		switch v.Type {
		case "stun":
			stun = &ext.Services[i]
		case "turn":
			turn = &ext.Services[i]
		}
	}
	if stun == nil || stun.Host != "127.0.0.1" || stun.Port != "3479" {
		t.Errorf("no stun service at 127.0.0.1:3479: %+v", ext)
	}
	if turn == nil || turn.Port != "3479" || turn.Transport != "udp" || turn.Restricted != "1" {
		t.Fatalf("no restricted turn/udp service at 3479: %+v", ext)
	}
	// TURN REST credentials: password = base64(HMAC-SHA1(secret, username)).
	mac := hmac.New(sha1.New, []byte("s3cret"))
	mac.Write([]byte(turn.Username))
	if want := base64.StdEncoding.EncodeToString(mac.Sum(nil)); turn.Username == "" || turn.Password != want {
		t.Errorf("turn credentials %q/%q, want password %q", turn.Username, turn.Password, want)
	}
}

// queryInto sends an IQ get and unmarshals the result IQ into v.
func queryInto(ctx context.Context, t *testing.T, s *xmpp.Session, to, payload string, v any) {
	t.Helper()
	res, err := query(ctx, s, to, payload)
	if err != nil {
		t.Fatalf("query %s %s: %v", to, payload, err)
	}
	if err := xml.Unmarshal([]byte(res), v); err != nil {
		t.Fatalf("query %s: %v in %s", to, err, res)
	}
	if strings.Contains(res, `type="error"`) {
		t.Errorf("query %s %s: %s", to, payload, res)
	}
}

func TestExternalServices(t *testing.T) {
	s, err := externalServices(Options{})
	if err != nil || len(s) != 1 || s[0].Type != "stun" || s[0].Port != 3478 || s[0].Host != "127.0.0.1" {
		t.Errorf("default: %+v %v", s, err)
	}
	s, err = externalServices(Options{TURNAddr: "[::1]:5349", TURNSecret: "k", TURNTransports: []string{"udp", "tcp"}})
	if err != nil || len(s) != 3 || s[1].Type != "turn" || s[2].Transport != "tcp" || s[2].Secret != "k" || s[0].Host != "::1" {
		t.Errorf("turn: %+v %v", s, err)
	}
	for _, o := range []Options{{TURNAddr: "nope"}, {STUNAddr: "h:0"}, {TURNAddr: "h:1", TURNTransports: []string{"sctp"}}} {
		if _, err := externalServices(o); err == nil {
			t.Errorf("%+v: no error", o)
		}
	}
}

func TestLuaQuote(t *testing.T) {
	for in, want := range map[string]string{
		"plain":      `"plain"`,
		`a"b\c`:      `"a\"b\\c"`,
		"nl\n]]":     `"nl\010]]"`,
		"é":          `"\195\169"`,
		"x\x00y\x7f": `"x\000y\127"`,
	} {
		if got := lua(in); got != want {
			t.Errorf("lua(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestLogTail(t *testing.T) {
	p := filepath.Join(t.TempDir(), "log")
	if err := os.WriteFile(p, []byte("1\n2\n3\n4\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := tail(p, 2); got != "3\n4" {
		t.Errorf("tail 2 = %q", got)
	}
	if got := tail(p, 10); got != "1\n2\n3\n4" {
		t.Errorf("tail 10 = %q", got)
	}
	if got := tail(filepath.Join(t.TempDir(), "missing"), 3); got != "" {
		t.Errorf("tail of missing = %q", got)
	}
}

// TestRetryOnAddrInUse holds the c2s port of the first attempt, so prosody
// logs a bind failure; New must notice and retry with fresh ports.
func TestRetryOnAddrInUse(t *testing.T) {
	if _, err := prosodyPath(Options{}); err != nil {
		t.Skip(err)
	}
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	heldPort := held.Addr().(*net.TCPAddr).Port
	calls := 0
	pickPorts = func(n int) ([]int, error) {
		calls++
		p, err := freePorts(n)
		if err == nil && calls == 1 {
			p[0] = heldPort
		}
		return p, err
	}
	defer func() { pickPorts = freePorts }()

	var logs []string
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := New(ctx, "", Options{Logf: func(f string, a ...any) { logs = append(logs, fmt.Sprintf(f, a...)) }})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	defer b.Close()
	if calls != 2 {
		t.Errorf("ports picked %d times, want 2", calls)
	}
	if b.C2SAddr == held.Addr().String() {
		t.Errorf("C2SAddr is the held port %s", b.C2SAddr)
	}
	if !slices.ContainsFunc(logs, func(l string) bool { return strings.Contains(l, "port already in use") }) {
		t.Errorf("no retry logged: %q", logs)
	}

	// And without a retry left, the error is ErrAddrInUse.
	calls = 0
	pickPorts = func(n int) ([]int, error) {
		p, err := freePorts(n)
		if err == nil {
			p[0] = heldPort
		}
		return p, err
	}
	if _, err := New(ctx, "", Options{}); !errors.Is(err, ErrAddrInUse) {
		t.Errorf("New with the port always held: %v, want ErrAddrInUse", err)
	}
}

package client_test

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xjingle/xjingle/client"
	"github.com/xjingle/xjingle/internal/testbed"
	"github.com/xjingle/xjingle/jingle"
	"go.uber.org/goleak"
	"mellium.im/xmpp/jid"
)

// The tests share one Prosody (starting one takes a while on two cores);
// each test uses its own accounts. TestMain stops it before looking for
// leaked goroutines.
var (
	bedOnce sync.Once
	bed     *testbed.Bed
	bedErr  error
)

// turnAddr is announced over XEP-0215; nothing listens there, and nothing
// here sends to it.
const (
	turnAddr   = "127.0.0.1:3479"
	turnSecret = "test-secret"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if bed != nil {
		if err := bed.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "testbed close:", err)
			code = 1
		}
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// sharedBed starts the Prosody on first use and skips the test when Prosody
// is not installed.
func sharedBed(t *testing.T) *testbed.Bed {
	t.Helper()
	if testing.Short() {
		t.Skip("needs Prosody; skipped in -short mode")
	}
	bedOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		bed, bedErr = testbed.New(ctx, "", testbed.Options{TURNAddr: turnAddr, TURNSecret: turnSecret})
	})
	if errors.Is(bedErr, testbed.ErrNotInstalled) && os.Getenv("CI") == "" {
		t.Skipf("testbed: %v", bedErr)
	}
	if bedErr != nil {
		t.Fatalf("testbed: %v", bedErr)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("prosody log tail:\n%s", bed.LogTail(30))
		}
	})
	return bed
}

// userName makes a localpart unique to the test.
var userSeq atomic.Int64

func userName(t *testing.T, role string) string {
	return fmt.Sprintf("%s%d", role, userSeq.Add(1))
}

// pair creates two accounts subscribed to each other.
func pair(t *testing.T, b *testbed.Bed) (alice, bob testbed.Account) {
	t.Helper()
	alice = b.AddUser(t, userName(t, "alice"))
	bob = b.AddUser(t, userName(t, "bob"))
	b.Subscribe(t, alice.JID, bob.JID)
	return alice, bob
}

func config(b *testbed.Bed, a testbed.Account) client.Config {
	return client.Config{
		JID:       jid.MustParse(a.JID),
		Password:  a.Password,
		Server:    b.C2SAddr,
		CAFile:    b.CAFile,
		IQTimeout: 10 * time.Second,
	}
}

func dialCfg(t *testing.T, cfg client.Config) *client.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, cfg)
	if err != nil {
		t.Fatalf("Dial %s: %v", cfg.JID, err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return c
}

func dial(t *testing.T, b *testbed.Bed, a testbed.Account) *client.Client {
	t.Helper()
	return dialCfg(t, config(b, a))
}

func testCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

const nsEcho = "urn:xjingle:test:echo"

var echoName = xml.Name{Space: nsEcho, Local: "echo"}

type echoPayload struct {
	XMLName xml.Name `xml:"urn:xjingle:test:echo echo"`
	Mode    string   `xml:"mode,attr,omitempty"`
	Seq     int      `xml:"seq,attr"`
	Text    string   `xml:",chardata"`
}

func echo(mode string, seq int, text string) []byte {
	b, err := xml.Marshal(echoPayload{Mode: mode, Seq: seq, Text: text})
	if err != nil {
		panic(err)
	}
	return b
}

// echoHandler answers <echo/> with its own payload, or with what mode asks
// for; requests of mode "hold" are handed to held.
func echoHandler(t *testing.T, held chan<- jingle.ReplyFunc) jingle.IQHandler {
	return func(iq *jingle.IQ, reply jingle.ReplyFunc) {
		var p echoPayload
		if err := xml.Unmarshal(iq.Payload, &p); err != nil {
			reply(nil, jingle.ErrBadRequest.WithText("%v", err))
			return
		}
		switch p.Mode {
		case "error":
			reply(nil, jingle.ErrItemNotFound.WithText("no such thing"))
		case "jingle-error":
			reply(nil, fmt.Errorf("wrapped: %w", jingle.ErrUnknownSession))
		case "plain-error":
			reply(nil, errors.New("something internal"))
		case "empty":
			reply(nil, nil)
		case "hold":
			held <- reply // buffered by the test
		default:
			p.Text = "echo: " + p.Text
			out, _ := xml.Marshal(p)
			reply(out, nil)
		}
	}
}

func parseEcho(t *testing.T, raw []byte) echoPayload {
	t.Helper()
	var p echoPayload
	if err := xml.Unmarshal(raw, &p); err != nil {
		t.Fatalf("answer %q: %v", raw, err)
	}
	return p
}

func TestDialSTARTTLS(t *testing.T) {
	b := sharedBed(t)
	a := b.AddUser(t, userName(t, "starttls"))
	c := dial(t, b, a)
	local := c.LocalJID()
	if local.Bare().String() != a.JID || local.Resourcepart() == "" {
		t.Errorf("LocalJID = %q, want %s/<resource>", local, a.JID)
	}
	if c.Err() != nil {
		t.Errorf("Err = %v on a live connection", c.Err())
	}
	select {
	case <-c.Done():
		t.Fatal("Done closed on a live connection")
	default:
	}
	// Our server answers a ping (XEP-0199) to the domain.
	if _, err := c.SendIQ(testCtx(t, 5*time.Second), jid.MustParse(b.Domain), "get", []byte(`<ping xmlns="urn:xmpp:ping"/>`)); err != nil {
		t.Errorf("ping server: %v", err)
	}
}

func TestDialResourceAndDirectTLS(t *testing.T) {
	b := sharedBed(t)
	a := b.AddUser(t, userName(t, "direct"))
	cfg := config(b, a)
	cfg.Server, cfg.DirectTLS, cfg.Resource = b.DirectTLSAddr, true, "laptop"
	c := dialCfg(t, cfg)
	if want := a.JID + "/laptop"; c.LocalJID().String() != want {
		t.Errorf("LocalJID = %q, want %q", c.LocalJID(), want)
	}
	if _, err := c.SendIQ(testCtx(t, 5*time.Second), jid.MustParse(b.Domain), "get", []byte(`<ping xmlns="urn:xmpp:ping"/>`)); err != nil {
		t.Errorf("ping server over direct TLS: %v", err)
	}
}

func TestDialWrongPassword(t *testing.T) {
	b := sharedBed(t)
	a := b.AddUser(t, userName(t, "wrongpw"))
	for _, direct := range []bool{false, true} {
		cfg := config(b, a)
		cfg.Password = "not-" + a.Password
		if direct {
			cfg.Server, cfg.DirectTLS = b.DirectTLSAddr, true
		}
		c, err := client.Dial(testCtx(t, 15*time.Second), cfg)
		if err == nil {
			c.Close()
			t.Fatalf("direct=%v: Dial with a wrong password succeeded", direct)
		}
		if !errors.Is(err, client.ErrAuth) {
			t.Errorf("direct=%v: err = %v, want ErrAuth", direct, err)
		}
		if errors.Is(err, client.ErrTLS) || errors.Is(err, client.ErrUnreachable) {
			t.Errorf("direct=%v: err = %v also matches ErrTLS/ErrUnreachable", direct, err)
		}
	}
	// An account that does not exist fails the same way (no user
	// enumeration).
	cfg := config(b, testbed.Account{JID: userName(t, "nobody") + "@" + b.Domain, Password: "x"})
	if _, err := client.Dial(testCtx(t, 15*time.Second), cfg); !errors.Is(err, client.ErrAuth) {
		t.Errorf("unknown user: err = %v, want ErrAuth", err)
	}
}

// closedPort returns a loopback address where nothing listens.
func closedPort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func TestDialUnreachable(t *testing.T) {
	for _, direct := range []bool{false, true} {
		cfg := client.Config{JID: jid.MustParse("alice@xjingle.test"), Password: "x", Server: closedPort(t), DirectTLS: direct}
		_, err := client.Dial(testCtx(t, 5*time.Second), cfg)
		if !errors.Is(err, client.ErrUnreachable) {
			t.Errorf("direct=%v: err = %v, want ErrUnreachable", direct, err)
		}
		if errors.Is(err, client.ErrAuth) || errors.Is(err, client.ErrTLS) {
			t.Errorf("direct=%v: err = %v also matches ErrAuth/ErrTLS", direct, err)
		}
	}
}

// A server that accepts and never speaks: Dial ends at the ctx deadline with
// ErrTimeout, not at some internal timeout.
func TestDialTimeout(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	conns := make(chan net.Conn, 4)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns <- c
		}
	}()
	defer func() {
		l.Close()
		wg.Wait()
		close(conns)
		for c := range conns {
			c.Close()
		}
	}()
	for _, direct := range []bool{false, true} {
		cfg := client.Config{JID: jid.MustParse("alice@xjingle.test"), Password: "x", Server: l.Addr().String(), DirectTLS: direct}
		start := time.Now()
		_, err := client.Dial(testCtx(t, 300*time.Millisecond), cfg)
		if !errors.Is(err, client.ErrTimeout) {
			t.Errorf("direct=%v: err = %v, want ErrTimeout", direct, err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("direct=%v: Dial took %v with a 300ms ctx", direct, d)
		}
	}
	// Cancelled, not timed out.
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	cfg := client.Config{JID: jid.MustParse("alice@xjingle.test"), Password: "x", Server: l.Addr().String()}
	if _, err := client.Dial(ctx, cfg); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled Dial: err = %v, want context.Canceled", err)
	}
}

func TestDialUntrustedCertificate(t *testing.T) {
	b := sharedBed(t)
	a := b.AddUser(t, userName(t, "untrusted"))
	for _, direct := range []bool{false, true} {
		cfg := config(b, a)
		cfg.CAFile = ""
		if direct {
			cfg.Server, cfg.DirectTLS = b.DirectTLSAddr, true
		}
		c, err := client.Dial(testCtx(t, 15*time.Second), cfg)
		if err == nil {
			c.Close()
			t.Fatalf("direct=%v: Dial trusted the test CA without CAFile", direct)
		}
		if !errors.Is(err, client.ErrTLS) {
			t.Errorf("direct=%v: err = %v, want ErrTLS", direct, err)
		}
		if errors.Is(err, client.ErrAuth) {
			t.Errorf("direct=%v: err = %v also matches ErrAuth", direct, err)
		}
	}
}

func TestDialBadCAFile(t *testing.T) {
	cfg := client.Config{JID: jid.MustParse("alice@xjingle.test"), Password: "x", Server: closedPort(t)}
	cfg.CAFile = t.TempDir() + "/missing.pem"
	if _, err := client.Dial(testCtx(t, 5*time.Second), cfg); err == nil || errors.Is(err, client.ErrUnreachable) {
		t.Errorf("missing CA file: err = %v, want a CA file error before dialling", err)
	}
	cfg.CAFile = t.TempDir() + "/empty.pem"
	if err := os.WriteFile(cfg.CAFile, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Dial(testCtx(t, 5*time.Second), cfg); err == nil || !strings.Contains(err.Error(), "no PEM") {
		t.Errorf("CA file without PEM: err = %v", err)
	}
}

func TestDialInvalidJID(t *testing.T) {
	for _, j := range []string{"xjingle.test", "xjingle.test/res"} {
		_, err := client.Dial(context.Background(), client.Config{JID: jid.MustParse(j), Server: closedPort(t)})
		if err == nil || errors.Is(err, client.ErrUnreachable) {
			t.Errorf("JID %q: err = %v, want a JID error before dialling", j, err)
		}
	}
}

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestDialInsecureSkipVerify(t *testing.T) {
	b := sharedBed(t)
	a := b.AddUser(t, userName(t, "insecure"))
	for _, direct := range []bool{false, true} {
		var logs syncBuffer
		cfg := config(b, a)
		cfg.CAFile = ""
		cfg.InsecureSkipVerify = true
		cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
		if direct {
			cfg.Server, cfg.DirectTLS = b.DirectTLSAddr, true
		}
		c, err := client.Dial(testCtx(t, 15*time.Second), cfg)
		if err != nil {
			t.Fatalf("direct=%v: Dial with InsecureSkipVerify: %v", direct, err)
		}
		if err := c.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "DISABLED") {
			t.Errorf("direct=%v: no warning logged:\n%s", direct, logs.String())
		}
	}
}

func TestIQRoundTrip(t *testing.T) {
	b := sharedBed(t)
	aa, ba := pair(t, b)
	alice, bob := dial(t, b, aa), dial(t, b, ba)
	held := make(chan jingle.ReplyFunc, 1)
	var gotFrom, gotTo atomic.Value
	h := echoHandler(t, held)
	bob.HandleIQ(echoName, func(iq *jingle.IQ, reply jingle.ReplyFunc) {
		gotFrom.Store(iq.From.String())
		gotTo.Store(iq.To.String())
		h(iq, reply)
	})
	ctx := testCtx(t, 10*time.Second)
	to := bob.LocalJID()

	// A result with a payload.
	res, err := alice.SendIQ(ctx, to, "get", echo("", 1, "hello <&>"))
	if err != nil {
		t.Fatalf("SendIQ: %v", err)
	}
	if p := parseEcho(t, res); p.Text != "echo: hello <&>" || p.Seq != 1 {
		t.Errorf("answer %+v", p)
	}
	if gotFrom.Load() != alice.LocalJID().String() || gotTo.Load() != bob.LocalJID().String() {
		t.Errorf("handler saw from %v to %v, want %s to %s", gotFrom.Load(), gotTo.Load(), alice.LocalJID(), bob.LocalJID())
	}

	// An empty result.
	if res, err := alice.SendIQ(ctx, to, "set", echo("empty", 2, "")); err != nil || res != nil {
		t.Errorf("empty result: %q, %v; want nil, nil", res, err)
	}

	// Stanza errors come back as *jingle.StanzaError.
	_, err = alice.SendIQ(ctx, to, "get", echo("error", 3, ""))
	var se *jingle.StanzaError
	if !errors.As(err, &se) || !errors.Is(err, jingle.ErrItemNotFound) || se.Text != "no such thing" || se.Type != jingle.ErrorTypeCancel {
		t.Errorf("error answer: %#v (%v), want item-not-found with text", se, err)
	}
	_, err = alice.SendIQ(ctx, to, "set", echo("jingle-error", 4, ""))
	if !errors.Is(err, jingle.ErrUnknownSession) {
		t.Errorf("jingle error answer: %v, want unknown-session", err)
	}
	if errors.Is(err, jingle.ErrTieBreak) {
		t.Errorf("jingle error answer %v matches tie-break", err)
	}
	_, err = alice.SendIQ(ctx, to, "set", echo("plain-error", 5, ""))
	if !errors.Is(err, jingle.ErrInternalServerError) {
		t.Errorf("plain error answer: %v, want internal-server-error", err)
	}

	// A reply from another goroutine, later.
	type answer struct {
		b   []byte
		err error
	}
	ch := make(chan answer, 1)
	go func() {
		b, err := alice.SendIQ(ctx, to, "get", echo("hold", 6, ""))
		ch <- answer{b, err}
	}()
	var reply jingle.ReplyFunc
	select {
	case reply = <-held:
	case <-ctx.Done():
		t.Fatal("held IQ never reached bob")
	}
	// Meanwhile other IQs are answered: the held one blocks nothing.
	if _, err := alice.SendIQ(ctx, to, "get", echo("", 7, "")); err != nil {
		t.Errorf("IQ while another is held: %v", err)
	}
	select {
	case a := <-ch:
		t.Fatalf("held IQ answered before the reply: %q, %v", a.b, a.err)
	default:
	}
	done := make(chan error, 1)
	go func() { done <- reply(echo("", 6, "late"), nil) }()
	if err := <-done; err != nil {
		t.Errorf("late reply: %v", err)
	}
	a := <-ch
	if a.err != nil || parseEcho(t, a.b).Text != "late" {
		t.Errorf("late answer %q, %v", a.b, a.err)
	}
	if err := reply(nil, nil); err == nil {
		t.Error("a second reply to one IQ did not fail")
	}
}

func TestSendIQBadType(t *testing.T) {
	b := sharedBed(t)
	c := dial(t, b, b.AddUser(t, userName(t, "badtype")))
	called := false
	err := c.SendIQAsync(context.Background(), c.LocalJID(), "result", nil, func([]byte, error) { called = true })
	if err == nil {
		t.Error("SendIQAsync of type result succeeded")
	}
	if _, err := c.SendIQ(context.Background(), c.LocalJID(), "", nil); err == nil {
		t.Error("SendIQ without type succeeded")
	}
	if called {
		t.Error("done called after SendIQAsync returned an error")
	}
}

func TestHandleIQDuplicatePanics(t *testing.T) {
	b := sharedBed(t)
	c := dial(t, b, b.AddUser(t, userName(t, "dup")))
	c.HandleIQ(echoName, func(*jingle.IQ, jingle.ReplyFunc) {})
	for _, f := range []func(){
		func() { c.HandleIQ(echoName, func(*jingle.IQ, jingle.ReplyFunc) {}) },
		func() {
			c.HandleIQ(xml.Name{Space: client.NSPing, Local: "ping"}, func(*jingle.IQ, jingle.ReplyFunc) {})
		},
		func() {
			c.HandleMessage(echoName, func(*jingle.Message) {})
			c.HandleMessage(echoName, func(*jingle.Message) {})
		},
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Error("duplicate handler did not panic")
				}
			}()
			f()
		}()
	}
}

func TestSendIQAsyncOrder(t *testing.T) {
	b := sharedBed(t)
	aa, ba := pair(t, b)
	alice, bob := dial(t, b, aa), dial(t, b, ba)
	const n = 100
	var (
		mu   sync.Mutex
		seen []int
	)
	bob.HandleIQ(echoName, func(iq *jingle.IQ, reply jingle.ReplyFunc) {
		var p echoPayload
		if err := xml.Unmarshal(iq.Payload, &p); err != nil {
			reply(nil, jingle.ErrBadRequest)
			return
		}
		mu.Lock()
		seen = append(seen, p.Seq)
		mu.Unlock()
		reply(iq.Payload, nil)
	})
	ctx := testCtx(t, 20*time.Second)
	type result struct {
		seq int
		b   []byte
		err error
	}
	results := make(chan result, n)
	for i := range n {
		err := alice.SendIQAsync(ctx, bob.LocalJID(), "set", echo("", i, strings.Repeat("x", i)), func(b []byte, err error) {
			results <- result{i, b, err}
		})
		if err != nil {
			t.Fatalf("SendIQAsync %d: %v", i, err)
		}
	}
	got := map[int]bool{}
	for range n {
		select {
		case r := <-results:
			if r.err != nil {
				t.Errorf("IQ %d: %v", r.seq, r.err)
				continue
			}
			if p := parseEcho(t, r.b); p.Seq != r.seq {
				t.Errorf("IQ %d got the answer of %d", r.seq, p.Seq)
			}
			if got[r.seq] {
				t.Errorf("done called twice for IQ %d", r.seq)
			}
			got[r.seq] = true
		case <-ctx.Done():
			t.Fatalf("%d of %d answers", len(got), n)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != n {
		t.Fatalf("bob saw %d IQs, want %d", len(seen), n)
	}
	for i, s := range seen {
		if s != i {
			t.Fatalf("bob saw the IQs in the order %v", seen)
		}
	}
}

func TestUnknownIQ(t *testing.T) {
	b := sharedBed(t)
	aa, ba := pair(t, b)
	alice, bob := dial(t, b, aa), dial(t, b, ba)
	ctx := testCtx(t, 10*time.Second)
	_, err := alice.SendIQ(ctx, bob.LocalJID(), "get", []byte(`<nothing xmlns="urn:xjingle:test:none"/>`))
	if !errors.Is(err, jingle.ErrServiceUnavailable) {
		t.Errorf("unknown IQ: %v, want service-unavailable", err)
	}
	// RFC 6120 §8.2.3: a get/set with two children is bad-request. (Only
	// if the server passes it through; Prosody does.)
	_, err = alice.SendIQ(ctx, bob.LocalJID(), "get", []byte(`<ping xmlns="urn:xmpp:ping"/><ping xmlns="urn:xmpp:ping"/>`))
	if !errors.Is(err, jingle.ErrBadRequest) {
		t.Errorf("IQ with two children: %v, want bad-request", err)
	}
	// A wrong type for a built-in handler.
	_, err = alice.SendIQ(ctx, bob.LocalJID(), "set", []byte(`<query xmlns="jabber:iq:version"/>`))
	if !errors.Is(err, jingle.ErrBadRequest) {
		t.Errorf("version set: %v, want bad-request", err)
	}
	// Built-ins: ping and version.
	if _, err := alice.SendIQ(ctx, bob.LocalJID(), "get", []byte(`<ping xmlns="urn:xmpp:ping"/>`)); err != nil {
		t.Errorf("ping bob: %v", err)
	}
	res, err := alice.SendIQ(ctx, bob.LocalJID(), "get", []byte(`<query xmlns="jabber:iq:version"/>`))
	var v struct {
		Name string `xml:"name"`
	}
	if err != nil || xml.Unmarshal(res, &v) != nil || v.Name != "xjingle" {
		t.Errorf("version: %q, %v", res, err)
	}
}

func TestDiscoInfo(t *testing.T) {
	b := sharedBed(t)
	aa, ba := pair(t, b)
	alice, bob := dial(t, b, aa), dial(t, b, ba)
	const feature = "urn:xjingle:test:feature:1"
	oldVer := client.CapsVer(bob)
	bob.AddFeature(feature)
	bob.AddFeature(feature) // idempotent
	if n := strings.Count(strings.Join(bob.Features(), " "), feature); n != 1 {
		t.Errorf("Features lists %s %d times: %v", feature, n, bob.Features())
	}
	if client.CapsVer(bob) == oldVer {
		t.Error("caps ver unchanged by AddFeature")
	}
	ctx := testCtx(t, 10*time.Second)
	info, err := alice.DiscoInfo(ctx, bob.LocalJID())
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{feature, client.NSDiscoInfo, client.NSCaps, client.NSPing} {
		if !slices.Contains(info.Features, f) {
			t.Errorf("disco#info features %v lack %s", info.Features, f)
		}
	}
	if len(info.Identities) != 1 || info.Identities[0].Category != "client" || info.Identities[0].Type != "pc" {
		t.Errorf("identities %+v", info.Identities)
	}
	// XEP-0115 §6.2: a query to node#ver answers too; a stale ver does not.
	node := func(ver string) []byte {
		return []byte(`<query xmlns="` + client.NSDiscoInfo + `" node="` + client.CapsNode + "#" + ver + `"/>`)
	}
	if _, err := alice.SendIQ(ctx, bob.LocalJID(), "get", node(client.CapsVer(bob))); err != nil {
		t.Errorf("disco#info to node#ver: %v", err)
	}
	if _, err := alice.SendIQ(ctx, bob.LocalJID(), "get", node(oldVer)); !errors.Is(err, jingle.ErrItemNotFound) {
		t.Errorf("disco#info to a stale node: %v, want item-not-found", err)
	}
	// The server's disco#info.
	sinfo, err := alice.DiscoInfo(ctx, jid.MustParse(b.Domain))
	if err != nil || !slices.ContainsFunc(sinfo.Identities, func(id client.Identity) bool { return id.Category == "server" }) {
		t.Errorf("server disco#info: %+v, %v", sinfo, err)
	}
}

// PeerFeatures and Resolve learn bob's features from his caps (XEP-0115) and
// query disco#info once per caps ver.
func TestPeerFeaturesCaps(t *testing.T) {
	b := sharedBed(t)
	aa, ba := pair(t, b)
	bob := dial(t, b, ba)
	const f1, f2 = "urn:xjingle:test:caps:1", "urn:xjingle:test:caps:2"
	bob.AddFeature(f1)
	record := client.RecordIQs(bob, xml.Name{Space: client.NSDiscoInfo, Local: "query"})
	queries := func() int { return len(record()) }
	alice := dial(t, b, aa)
	ctx := testCtx(t, 10*time.Second)

	// Resolve waits for bob's presence and checks his features.
	got, err := alice.Resolve(ctx, jid.MustParse(ba.JID), f1)
	if err != nil {
		t.Fatalf("Resolve: %v", err)
	}
	if len(got) != 1 || !got[0].Equal(bob.LocalJID()) {
		t.Fatalf("Resolve = %v, want [%s]", got, bob.LocalJID())
	}
	n := queries()
	if n < 1 {
		t.Fatalf("%d disco#info queries reached bob", n)
	}
	fs, err := alice.PeerFeatures(ctx, bob.LocalJID())
	if err != nil || !slices.Contains(fs, f1) {
		t.Fatalf("PeerFeatures = %v, %v", fs, err)
	}
	fs[0] = "scribbled" // must not reach the cache
	fs, err = alice.PeerFeatures(ctx, bob.LocalJID())
	if err != nil || !slices.Contains(fs, f1) || slices.Contains(fs, "scribbled") {
		t.Fatalf("PeerFeatures (again) = %v, %v", fs, err)
	}
	if _, err := alice.Resolve(ctx, bob.LocalJID(), f1); err != nil {
		t.Errorf("Resolve(full JID): %v", err)
	}
	if m := queries(); m != n {
		t.Errorf("cached caps: %d more disco#info queries reached bob", m-n)
	}

	// A new feature changes bob's caps; alice sees it with his next
	// presence.
	bob.AddFeature(f2)
	got, err = alice.Resolve(ctx, jid.MustParse(ba.JID), f2)
	if err != nil || len(got) != 1 {
		t.Fatalf("Resolve of the new feature: %v, %v", got, err)
	}
	if m := queries(); m != n+1 {
		t.Errorf("after a caps change: %d disco#info queries, want %d", m, n+1)
	}
	// A second client with bob's features (same ver) needs no query.
	bob2cfg := config(b, ba)
	bob2cfg.Resource = "second"
	bob2 := dialCfg(t, bob2cfg)
	bob2.AddFeature(f1)
	bob2.AddFeature(f2)
	if client.CapsVer(bob2) != client.CapsVer(bob) {
		t.Fatalf("same features, different vers %s %s", client.CapsVer(bob2), client.CapsVer(bob))
	}
	// bob2's earlier presences (at login, after f1) carried other vers,
	// which alice may query (and, once bob2 has moved on, query again
	// without a node); the final ver is known already.
	record2 := client.RecordIQs(bob2, xml.Name{Space: client.NSDiscoInfo, Local: "query"})
	finalNode := client.CapsNode + "#" + client.CapsVer(bob2)
	queries2 := func() (n int) {
		for _, q := range record2() {
			var v struct {
				Node string `xml:"node,attr"`
			}
			if xml.Unmarshal(q, &v) == nil && v.Node == finalNode {
				n++
			}
		}
		return n
	}
	for {
		got, err = alice.Resolve(ctx, jid.MustParse(ba.JID), f2)
		if err != nil {
			t.Fatalf("Resolve with two resources: %v", err)
		}
		if len(got) == 2 || ctx.Err() != nil {
			break
		}
		// bob2's presence has not reached alice yet; Resolve returned
		// bob alone. Wait for the presence rather than sleep: the
		// next Resolve for a feature bob lacks blocks until a
		// presence changes something.
		rctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		alice.Resolve(rctx, jid.MustParse(ba.JID), "urn:xjingle:test:nobody")
		cancel()
	}
	if len(got) != 2 {
		t.Fatalf("Resolve = %v, want both resources", got)
	}
	if q := queries2(); q != 0 {
		t.Errorf("%d disco#info queries to a resource whose ver is cached", q)
	}
}

func TestResolveErrors(t *testing.T) {
	b := sharedBed(t)
	aa, ba := pair(t, b)
	carol := b.AddUser(t, userName(t, "carol"))
	b.Subscribe(t, aa.JID, carol.JID)
	bob := dial(t, b, ba)
	alice := dial(t, b, aa)
	const feature = "urn:xjingle:test:resolve"
	ctx := testCtx(t, 10*time.Second)
	if _, err := alice.Resolve(ctx, bob.LocalJID(), feature); !errors.Is(err, client.ErrPeerUnsupported) {
		t.Errorf("full JID without the feature: %v, want ErrPeerUnsupported", err)
	}
	// Nobody has the feature.
	start := time.Now()
	rctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if _, err := alice.Resolve(rctx, jid.MustParse(ba.JID), feature); !errors.Is(err, client.ErrPeerUnsupported) {
		t.Errorf("bare JID without the feature: %v, want ErrPeerUnsupported", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Resolve took %v", d)
	}
	// Carol is not online.
	rctx, cancel = context.WithTimeout(ctx, time.Second)
	defer cancel()
	if _, err := alice.Resolve(rctx, jid.MustParse(carol.JID), feature); !errors.Is(err, client.ErrPeerOffline) {
		t.Errorf("offline bare JID: %v, want ErrPeerOffline", err)
	}
	if _, err := alice.Resolve(ctx, jid.MustParse(carol.JID+"/gone"), feature); !errors.Is(err, client.ErrPeerOffline) {
		t.Errorf("offline full JID: %v, want ErrPeerOffline", err)
	}
	// Bob logs off: his resource is gone.
	if err := bob.Close(); err != nil {
		t.Fatal(err)
	}
	rctx, cancel = context.WithTimeout(ctx, time.Second)
	defer cancel()
	for {
		_, err := alice.Resolve(rctx, jid.MustParse(ba.JID), feature)
		if errors.Is(err, client.ErrPeerOffline) {
			break
		}
		if rctx.Err() != nil {
			t.Errorf("after bob left: %v, want ErrPeerOffline", err)
			break
		}
	}
}

func TestMessages(t *testing.T) {
	b := sharedBed(t)
	aa, ba := pair(t, b)
	alice, bob := dial(t, b, aa), dial(t, b, ba)
	msgs := make(chan *jingle.Message, 4)
	bob.HandleMessage(echoName, func(m *jingle.Message) { msgs <- m })
	ctx := testCtx(t, 10*time.Second)
	// The payload may have several elements; only the registered one is
	// handed over.
	payload := append([]byte(`<body>ignored</body>`), echo("", 42, "hi & bye")...)
	if err := alice.SendMessage(ctx, bob.LocalJID(), "normal", payload); err != nil {
		t.Fatal(err)
	}
	// A message without a registered payload is dropped; one to the bare
	// JID reaches the (only) resource.
	if err := alice.SendMessage(ctx, bob.LocalJID(), "chat", []byte(`<body>only a body</body>`)); err != nil {
		t.Fatal(err)
	}
	if err := alice.SendMessage(ctx, jid.MustParse(ba.JID), "chat", echo("", 43, "bare")); err != nil {
		t.Fatal(err)
	}
	for _, want := range []struct {
		seq  int
		typ  string
		text string
	}{{42, "normal", "hi & bye"}, {43, "chat", "bare"}} {
		select {
		case m := <-msgs:
			p := parseEcho(t, m.Payload)
			if p.Seq != want.seq || p.Text != want.text || m.Type != want.typ {
				t.Errorf("message %+v type %q, want %+v", p, m.Type, want)
			}
			if !m.From.Equal(alice.LocalJID()) {
				t.Errorf("from %s, want %s", m.From, alice.LocalJID())
			}
			if m.ID == "" {
				t.Error("message without id")
			}
		case <-ctx.Done():
			t.Fatalf("message %d never arrived", want.seq)
		}
	}
}

func TestFindProxy65(t *testing.T) {
	b := sharedBed(t)
	c := dial(t, b, b.AddUser(t, userName(t, "proxy")))
	sh, err := c.FindProxy65(testCtx(t, 10*time.Second))
	if err != nil {
		t.Fatalf("FindProxy65: %v", err)
	}
	host, port, _ := net.SplitHostPort(b.Proxy65Addr)
	if sh.JID.String() != b.Proxy65JID || sh.Host != host || strconv.Itoa(sh.Port) != port {
		t.Errorf("FindProxy65 = %+v, want %s at %s", sh, b.Proxy65JID, b.Proxy65Addr)
	}
}

func TestExternalServices(t *testing.T) {
	b := sharedBed(t)
	c := dial(t, b, b.AddUser(t, userName(t, "extdisco")))
	svcs, err := c.ExternalServices(testCtx(t, 10*time.Second))
	if err != nil {
		t.Fatalf("ExternalServices: %v", err)
	}
	host, p, _ := net.SplitHostPort(turnAddr)
	port, _ := strconv.Atoi(p)
	var stun, turn *client.Service
	for i, s := range svcs {
		if s.Host != host || s.Port != port {
			t.Errorf("unexpected service %+v", s)
			continue
		}
		switch s.Type {
		case "stun":
			stun = &svcs[i]
		case "turn":
			turn = &svcs[i]
		}
	}
	if stun == nil || turn == nil {
		t.Fatalf("services %+v lack stun or turn at %s", svcs, turnAddr)
	}
	if stun.Username != "" || stun.Password != "" {
		t.Errorf("stun with credentials: %+v", stun)
	}
	if turn.Transport != "udp" || turn.Username == "" || turn.Password == "" {
		t.Errorf("turn %+v: want udp with REST credentials", turn)
	}
	// TURN REST (draft-uberti-behave-turn-rest-00 §2.2): the username is
	// an expiry timestamp in the future.
	if exp, err := strconv.ParseInt(strings.SplitN(turn.Username, ":", 2)[0], 10, 64); err != nil || time.Unix(exp, 0).Before(time.Now()) {
		t.Errorf("turn username %q is not a future expiry", turn.Username)
	}
}

func TestCloseIdempotent(t *testing.T) {
	b := sharedBed(t)
	aa, ba := pair(t, b)
	alice, bob := dial(t, b, aa), dial(t, b, ba)
	held := make(chan jingle.ReplyFunc, 1)
	bob.HandleIQ(echoName, echoHandler(t, held))
	ctx := testCtx(t, 10*time.Second)
	// An IQ in flight at Close fails with ErrClosed.
	pending := make(chan error, 1)
	go func() {
		_, err := alice.SendIQ(ctx, bob.LocalJID(), "get", echo("hold", 1, ""))
		pending <- err
	}()
	var reply jingle.ReplyFunc
	select {
	case reply = <-held:
	case <-ctx.Done():
		t.Fatal("IQ never reached bob")
	}
	if err := alice.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := <-pending; !errors.Is(err, client.ErrClosed) {
		t.Errorf("IQ pending at Close: %v, want ErrClosed", err)
	}
	if err := alice.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	select {
	case <-alice.Done():
	default:
		t.Error("Done not closed after Close")
	}
	if err := alice.Err(); err != nil {
		t.Errorf("Err after Close = %v", err)
	}
	if _, err := alice.SendIQ(ctx, bob.LocalJID(), "get", echo("", 2, "")); !errors.Is(err, client.ErrClosed) {
		t.Errorf("SendIQ after Close: %v, want ErrClosed", err)
	}
	called := false
	if err := alice.SendIQAsync(ctx, bob.LocalJID(), "get", echo("", 3, ""), func([]byte, error) { called = true }); !errors.Is(err, client.ErrClosed) {
		t.Errorf("SendIQAsync after Close: %v, want ErrClosed", err)
	}
	if err := alice.SendMessage(ctx, bob.LocalJID(), "chat", []byte(`<body>x</body>`)); !errors.Is(err, client.ErrClosed) {
		t.Errorf("SendMessage after Close: %v, want ErrClosed", err)
	}
	alice.AddFeature("urn:xjingle:test:after-close") // must not block or panic
	if called {
		t.Error("done called after SendIQAsync failed")
	}
	// Bob's late reply to a gone peer is not an error bob can act on,
	// but it must not break bob.
	reply(nil, nil)
	if _, err := bob.SendIQ(ctx, jid.MustParse(b.Domain), "get", []byte(`<ping xmlns="urn:xmpp:ping"/>`)); err != nil {
		t.Errorf("bob after alice left: %v", err)
	}
}

// When the server ends the stream, Done closes and IQs fail at once with
// ErrClosed instead of waiting for the IQ timeout.
func TestServerEndsStream(t *testing.T) {
	b := sharedBed(t)
	aa, ba := pair(t, b)
	alice, bob := dial(t, b, aa), dial(t, b, ba)
	held := make(chan jingle.ReplyFunc, 1)
	bob.HandleIQ(echoName, echoHandler(t, held))
	ctx := testCtx(t, 10*time.Second)
	pending := make(chan error, 1)
	go func() {
		_, err := alice.SendIQ(ctx, bob.LocalJID(), "get", echo("hold", 1, ""))
		pending <- err
	}()
	select {
	case <-held:
	case <-ctx.Done():
		t.Fatal("IQ never reached bob")
	}
	if _, err := b.Admin(ctx, fmt.Sprintf("c2s:close(%q)", alice.LocalJID().String())); err != nil {
		t.Fatalf("admin c2s:close: %v", err)
	}
	select {
	case <-alice.Done():
	case <-ctx.Done():
		t.Fatal("Done not closed after the server ended the stream")
	}
	if err := <-pending; !errors.Is(err, client.ErrClosed) {
		t.Errorf("pending IQ: %v, want ErrClosed", err)
	}
	start := time.Now()
	if _, err := alice.SendIQ(ctx, bob.LocalJID(), "get", echo("", 2, "")); !errors.Is(err, client.ErrClosed) {
		t.Errorf("SendIQ after the stream ended: %v, want ErrClosed", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("SendIQ after the stream ended took %v", d)
	}
	if err := alice.Close(); err != nil {
		t.Errorf("Close after the server ended the stream: %v", err)
	}
}

func TestSendIQCancel(t *testing.T) {
	b := sharedBed(t)
	aa, ba := pair(t, b)
	alice, bob := dial(t, b, aa), dial(t, b, ba)
	held := make(chan jingle.ReplyFunc, 2)
	bob.HandleIQ(echoName, echoHandler(t, held))
	ctx := testCtx(t, 10*time.Second)

	// Cancelled while waiting for the answer.
	cctx, cancel := context.WithCancel(ctx)
	res := make(chan error, 1)
	go func() {
		_, err := alice.SendIQ(cctx, bob.LocalJID(), "get", echo("hold", 1, ""))
		res <- err
	}()
	var reply jingle.ReplyFunc
	select {
	case reply = <-held:
	case <-ctx.Done():
		t.Fatal("IQ never reached bob")
	}
	cancel()
	if err := <-res; !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled SendIQ: %v, want context.Canceled", err)
	}
	// The late answer is dropped and breaks nothing.
	if err := reply(echo("", 1, "late"), nil); err != nil {
		t.Errorf("late reply: %v", err)
	}
	// Deadline.
	dctx, dcancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer dcancel()
	if _, err := alice.SendIQ(dctx, bob.LocalJID(), "get", echo("hold", 2, "")); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("SendIQ past its deadline: %v, want DeadlineExceeded", err)
	}
	(<-held)(nil, nil)
	// Already cancelled: nothing is sent.
	if _, err := alice.SendIQ(cctx, bob.LocalJID(), "get", echo("", 3, "")); !errors.Is(err, context.Canceled) {
		t.Errorf("SendIQ with a cancelled ctx: %v", err)
	}
	// Later IQs work.
	out, err := alice.SendIQ(ctx, bob.LocalJID(), "get", echo("", 4, "after"))
	if err != nil || parseEcho(t, out).Text != "echo: after" {
		t.Errorf("IQ after cancellations: %q, %v", out, err)
	}
}

// Regression: mellium's Send armed a goroutine per write that set a past
// write deadline on the connection when the caller's ctx ended, even after
// the write had finished; it could hit another write in progress and break
// the TLS stream. Here many short ctxs end while a stream of large IQs runs.
func TestCancelStormKeepsStream(t *testing.T) {
	b := sharedBed(t)
	aa, ba := pair(t, b)
	alice, bob := dial(t, b, aa), dial(t, b, ba)
	bob.HandleIQ(echoName, func(iq *jingle.IQ, reply jingle.ReplyFunc) { reply(nil, nil) })
	ctx := testCtx(t, 30*time.Second)
	const (
		streamIQs = 600
		window    = 16
		shortIQs  = 300
	)
	block := echo("", 0, strings.Repeat("QUJD", 16*1024/4)) // 16 KiB

	var wg sync.WaitGroup
	errs := make(chan error, 2)
	wg.Add(2)
	// The stream: IBB-like, a window of IQs in flight.
	go func() {
		defer wg.Done()
		sem := make(chan struct{}, window)
		answers := make(chan error, streamIQs)
		for i := range streamIQs {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				errs <- fmt.Errorf("stream IQ %d: %w", i, ctx.Err())
				return
			}
			err := alice.SendIQAsync(ctx, bob.LocalJID(), "set", block, func(_ []byte, err error) {
				<-sem
				answers <- err
			})
			if err != nil {
				errs <- fmt.Errorf("stream IQ %d: %w", i, err)
				return
			}
		}
		for i := range streamIQs {
			if err := <-answers; err != nil {
				errs <- fmt.Errorf("stream answer %d: %w", i, err)
				return
			}
		}
	}()
	// Short ctxs, ending at random points around their writes.
	go func() {
		defer wg.Done()
		for i := range shortIQs {
			sctx, cancel := context.WithTimeout(ctx, time.Duration(i%50)*20*time.Microsecond)
			_, err := alice.SendIQ(sctx, bob.LocalJID(), "get", echo("", i, "short"))
			cancel()
			if err != nil && !errors.Is(err, context.DeadlineExceeded) {
				errs <- fmt.Errorf("short IQ %d: %w", i, err)
				return
			}
		}
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	select {
	case <-alice.Done():
		t.Fatalf("connection ended: %v", alice.Err())
	default:
	}
	if _, err := alice.SendIQ(ctx, bob.LocalJID(), "get", echo("", 1, "final")); err != nil {
		t.Errorf("IQ after the storm: %v", err)
	}
}

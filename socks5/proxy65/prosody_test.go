package proxy65

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/xjingle/xjingle/client"
	"github.com/xjingle/xjingle/internal/testbed"
	"github.com/xjingle/xjingle/jingle"
	"github.com/xjingle/xjingle/socks5"
)

// TestProsodyComponent connects our component to a real Prosody without
// mod_proxy65 (XEP-0114), then drives XEP-0065 §4 and §6 with two logged-in
// clients: discovery through the server's disco#items, both parties'
// SOCKS5 connections, an activation from the wrong JID refused with
// item-not-found, the requester's accepted, and data both ways.
func TestProsodyComponent(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Prosody")
	}
	const secret = "c0mp"
	compJID := jid.MustParse("proxy2." + testbed.DefaultDomain)
	bed := testbed.Start(t, testbed.WithoutProxy65(), testbed.WithComponent(compJID.String(), secret))
	alice, bob := bed.AddUser(t, "alice"), bed.AddUser(t, "bob")

	p, addr := startProxy(t, Config{})
	_, port, _ := net.SplitHostPort(addr)
	up := make(chan bool, 4)
	comp := &Component{JID: compJID, Server: bed.ComponentAddr, Secret: []byte(secret), Host: "127.0.0.1",
		Port: mustPort(t, port), Proxy: p, OnState: func(u bool, _ error) { up <- u }}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- comp.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-ran; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	select {
	case u := <-up:
		if !u {
			t.Fatal("component session failed")
		}
	case <-time.After(15 * time.Second):
		t.Fatal("component did not connect")
	}

	dialC := func(a testbed.Account) *client.Client {
		cctx, ccancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer ccancel()
		c, err := client.Dial(cctx, client.Config{JID: jid.MustParse(a.JID), Password: a.Password, Server: bed.C2SAddr,
			CAFile: bed.CAFile, IQTimeout: 10 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	ac, bc := dialC(alice), dialC(bob)
	qctx, qcancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer qcancel()
	sh, err := ac.FindProxy65(qctx)
	if err != nil {
		t.Fatalf("FindProxy65: %v", err)
	}
	if !sh.JID.Equal(compJID) || net.JoinHostPort(sh.Host, itoa(sh.Port)) != addr {
		t.Fatalf("found %+v, want %s at %s", sh, compJID, addr)
	}

	const sid = "pro-sid"
	req, tgt := ac.LocalJID(), bc.LocalJID()
	dst := socks5.DstAddr(sid, req, tgt)
	tc := mustDial(t, addr, dst)
	rc := mustDial(t, addr, dst)
	// Bob is the target: an activation from him does not hash to dst.
	err = socks5.Activate(qctx, bc, compJID, sid, tgt)
	var se *jingle.StanzaError
	if !errors.As(err, &se) || se.Condition != "item-not-found" {
		t.Fatalf("activation by the target: %v, want item-not-found", err)
	}
	if err := socks5.Activate(qctx, ac, compJID, sid, tgt); err != nil {
		t.Fatalf("activation by the requester: %v", err)
	}
	msg := bytes.Repeat([]byte("xjingle "), 1<<14)
	go func() {
		rc.Write(msg)
		rc.(*net.TCPConn).CloseWrite()
	}()
	got, err := io.ReadAll(tc)
	if err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("target got %d bytes (%v), want %d", len(got), err, len(msg))
	}
	tc.Write([]byte("ok"))
	tc.(*net.TCPConn).CloseWrite()
	if back, err := io.ReadAll(rc); err != nil || string(back) != "ok" {
		t.Fatalf("requester got %q (%v)", back, err)
	}
}

// chanHandler sends the message and "err" attribute of every record to ch
// (dropping when full).
type chanHandler struct{ ch chan string }

func (h chanHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h chanHandler) Handle(_ context.Context, r slog.Record) error {
	s := r.Message
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "err" {
			s += ": " + a.Value.String()
		}
		return true
	})
	select {
	case h.ch <- s:
	default:
	}
	return nil
}
func (h chanHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h chanHandler) WithGroup(string) slog.Handler      { return h }

// TestProsodyWrongSecret: Prosody refuses the XEP-0114 handshake (§3:
// <not-authorized/> stream error); the component says so and keeps
// retrying instead of giving up.
func TestProsodyWrongSecret(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Prosody")
	}
	compJID := jid.MustParse("proxy2." + testbed.DefaultDomain)
	bed := testbed.Start(t, testbed.WithoutProxy65(), testbed.WithComponent(compJID.String(), "right"))
	p, _ := startProxy(t, Config{})
	logs := make(chan string, 16)
	comp := &Component{JID: compJID, Server: bed.ComponentAddr, Secret: []byte("wrong"), Host: "127.0.0.1", Port: 1,
		Proxy: p, MinBackoff: 10 * time.Millisecond, MaxBackoff: 20 * time.Millisecond,
		Logger: slog.New(chanHandler{logs}), OnState: func(up bool, _ error) {
			if up {
				t.Error("component session up with a wrong secret")
			}
		}}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- comp.Run(ctx) }()
	for attempts := 0; attempts < 2; {
		select {
		case msg := <-logs:
			if !strings.Contains(msg, "reconnecting") {
				continue
			}
			if !strings.Contains(msg, "not-authorized") {
				t.Errorf("log %q does not say not-authorized", msg)
			}
			if attempts == 0 {
				t.Logf("%s", msg)
			}
			attempts++
		case <-time.After(15 * time.Second):
			t.Fatal("no failed attempt logged")
		}
	}
	cancel()
	if err := <-ran; err != nil {
		t.Errorf("Run: %v", err)
	}
}

package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/xjingle/xjingle/internal/testbed"
)

// proxyEnv is what the proxy tests add to e.cmd's environment: no
// --interface (so that the proxy implies --no-direct: no direct candidate at
// all, on any interface), and no inherited proxy settings.
var proxyEnv = []string{"XJINGLE_INTERFACES=", "XJINGLE_PROXY=", "ALL_PROXY=", "all_proxy=", "NO_PROXY=", "no_proxy="}

// TestCLIThroughUserProxy: the sender (--proxy socks5h://user:pass@...) and
// the receiver (ALL_PROXY=socks5://...) each reach Prosody through their own
// SOCKS5 proxy, and the file crosses the server's mod_proxy65, which both
// reach through their proxy too. Neither side offers a direct candidate (a
// proxy implies --no-direct), so proxy65 is the only SOCKS5 path.
func TestCLIThroughUserProxy(t *testing.T) {
	e := newCLIEnv(t)
	if e.bed.Proxy65Addr == "" {
		t.Fatal("the bed has no proxy65")
	}
	sp := testbed.StartSOCKSProxy(t, testbed.SOCKSProxyOptions{User: "alice", Password: "pa:ss"})
	rp := testbed.StartSOCKSProxy(t, testbed.SOCKSProxyOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const size = 8 << 20
	path, sum := writeRandom(t, t.TempDir(), "proxied.bin", size)

	rc := e.cmd(ctx, t, e.bob, "receive", "--once", "--json", "--dir", t.TempDir(), "--from", e.alice.JID)
	rc.Env = append(rc.Env, proxyEnv...)
	rc.Env = append(rc.Env, "ALL_PROXY="+rp.URL("socks5"))
	rout := startReady(ctx, t, rc)

	sc := e.cmd(ctx, t, e.alice, "send", "--json", "--log-level", "info", "--proxy", sp.URL("socks5h"), "--to", "bob@"+e.bed.Domain, path)
	sc.Env = append(sc.Env, proxyEnv...)
	var serr bytes.Buffer
	sc.Stderr = &serr
	sout, err := sc.Output()
	if err != nil {
		t.Errorf("send: %v (stdout %s)", err, sout)
	}
	t.Logf("sender stderr:\n%s", serr.String())
	if err := rc.Wait(); err != nil {
		t.Errorf("receive: %v (stdout %s)", err, rout)
	}
	var sent, got ladderReport
	if err := json.Unmarshal(sout, &sent); err != nil {
		t.Fatalf("send output %q: %v", sout, err)
	}
	if err := json.Unmarshal(rout.Bytes(), &got); err != nil {
		t.Fatalf("receive output %q: %v", rout, err)
	}
	if !sent.Verified || sent.SHA256 != sum || sent.Bytes != size || sent.Transport != "socks5" || len(sent.Tried) != 0 {
		t.Errorf("sender report %+v, want verified %d bytes sha256 %s over socks5 at the first try", sent, size, sum)
	}
	if !got.Verified || got.SHA256 != sum || got.Bytes != size || fileSum(t, got.Path) != sum {
		t.Errorf("receiver report %+v, want verified %d bytes sha256 %s", got, size, sum)
	}
	if sent.Seconds > 0 {
		t.Logf("%d bytes through both user proxies and proxy65 in %.2f s: %.1f MB/s", sent.Bytes, sent.Seconds, float64(sent.Bytes)/sent.Seconds/1e6)
	}
	if !strings.Contains(serr.String(), "offering no direct SOCKS5 candidate") {
		t.Errorf("sender did not say it withholds direct candidates behind the proxy")
	}

	for _, side := range []struct {
		name string
		p    *testbed.SOCKSProxy
	}{{"sender", sp}, {"receiver", rp}} {
		reqs := side.p.Requests()
		t.Logf("%s's proxy: %+v", side.name, reqs)
		if !side.p.Saw(e.bed.C2SAddr) {
			t.Errorf("%s's proxy saw no CONNECT to the c2s port %s", side.name, e.bed.C2SAddr)
		}
		if !side.p.Saw(e.bed.Proxy65Addr) {
			t.Errorf("%s's proxy saw no CONNECT to proxy65 at %s", side.name, e.bed.Proxy65Addr)
		}
		for _, r := range reqs {
			if r.Dest != e.bed.C2SAddr && r.Dest != e.bed.Proxy65Addr {
				t.Errorf("%s's proxy was asked for %s, neither the server nor its proxy", side.name, r.Dest)
			}
		}
		if side.p.Accepted() != len(reqs) {
			t.Errorf("%s's proxy accepted %d connections for %d requests", side.name, side.p.Accepted(), len(reqs))
		}
	}
	for _, r := range sp.Requests() {
		if r.User != "alice" {
			t.Errorf("sender's request %+v was not authenticated from the URL's user", r)
		}
	}
	// The file's bytes themselves crossed both user proxies: up from the
	// sender to proxy65, down from proxy65 to the receiver.
	var up, down int64
	for _, r := range sp.Requests() {
		if r.Dest == e.bed.Proxy65Addr {
			up += r.Up
		}
	}
	for _, r := range rp.Requests() {
		if r.Dest == e.bed.Proxy65Addr {
			down += r.Down
		}
	}
	if up < size || down < size {
		t.Errorf("proxy65 traffic through the user proxies: %d bytes up (sender), %d down (receiver); want at least %d each", up, down, size)
	}
}

// TestCLIProxyErrors: what a user sees when the proxy is down, and when
// the only transports named cannot go through one.
func TestCLIProxyErrors(t *testing.T) {
	e := newCLIEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	file, _ := writeRandom(t, t.TempDir(), "f.bin", 10)
	refusing := testbed.StartSOCKSProxy(t, testbed.SOCKSProxyOptions{Refuse: true})
	for _, tc := range []struct {
		name string
		args []string
		env  []string
		want []string
	}{
		{"ice only", []string{"--proxy", "socks5h://127.0.0.1:9", "--transports", "ice"}, nil, []string{"no transport left", "ice cannot go through the SOCKS5 proxy"}},
		{"refused", []string{"--proxy", refusing.URL("socks5")}, nil, []string{"SOCKS5 proxy " + refusing.URL("socks5") + " refused the connection to " + e.bed.C2SAddr, "not allowed"}},
		{"env unreachable", nil, []string{"XJINGLE_PROXY=socks5://u:hunter2@127.0.0.1:9"}, []string{"SOCKS5 proxy socks5://u:xxxxx@127.0.0.1:9 unreachable", "connection refused"}},
		{"http all_proxy", nil, []string{"ALL_PROXY=http://127.0.0.1:3128"}, []string{"ALL_PROXY", "unsupported scheme", "--proxy none"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append(append([]string{"send"}, tc.args...), "--to", "bob@"+e.bed.Domain, file)
			c := e.cmd(ctx, t, e.alice, args...)
			c.Env = append(append(c.Env, proxyEnv...), tc.env...)
			out, err := c.CombinedOutput()
			if err == nil {
				t.Fatalf("succeeded: %s", out)
			}
			for _, w := range tc.want {
				if !strings.Contains(string(out), w) {
					t.Errorf("output %q does not say %q", out, w)
				}
			}
			if strings.Contains(string(out), "hunter2") {
				t.Errorf("output %q shows the proxy password", out)
			}
			if n := strings.Count(strings.TrimSpace(string(out)), "\n"); n > 0 {
				t.Errorf("error is not one line: %q", out)
			}
		})
	}
	if len(refusing.Requests()) == 0 {
		t.Error("the refusing proxy was never asked")
	}
}

// startReady starts c (a "receive --json") and waits for its ready event.
func startReady(ctx context.Context, t *testing.T, c *exec.Cmd) *bytes.Buffer {
	t.Helper()
	var out bytes.Buffer
	c.Stdout = &out
	stderr, err := c.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sent := false
		for sc.Scan() {
			line := sc.Text()
			if !sent && strings.Contains(line, `"event":"ready"`) {
				ready <- true
				sent = true
			}
			t.Logf("receiver: %s", line)
		}
		if !sent {
			ready <- false
		}
	}()
	select {
	case ok := <-ready:
		if !ok {
			c.Wait()
			t.Fatal("receiver did not come online")
		}
	case <-ctx.Done():
		t.Fatal("receiver did not come online in time")
	}
	return &out
}

// TestProxySetting: --proxy wins over XJINGLE_PROXY, which wins over the
// config file, which wins over ALL_PROXY (then all_proxy); "none" anywhere
// above ALL_PROXY turns it off; NO_PROXY applies to ALL_PROXY.
func TestProxySetting(t *testing.T) {
	for _, tc := range []struct {
		name             string
		flag, env, file  string
		all, lower, noPx string
		want             string // String() of the dialer, "" for none
		wantErr          string
	}{
		{name: "nothing"},
		{name: "flag", flag: "socks5h://127.0.0.1:9050", env: "socks5://127.0.0.2:1", file: "socks5://127.0.0.3:1", all: "socks5://127.0.0.4:1", want: "socks5h://127.0.0.1:9050"},
		{name: "env", env: "socks5://127.0.0.2:1", file: "socks5://127.0.0.3:1", all: "socks5://127.0.0.4:1", want: "socks5://127.0.0.2:1"},
		{name: "file", file: "socks5://127.0.0.3:1", all: "socks5://127.0.0.4:1", want: "socks5://127.0.0.3:1"},
		{name: "all_proxy", all: "socks5://127.0.0.4:1", lower: "socks5://127.0.0.5:1", want: "socks5://127.0.0.4:1"},
		{name: "lowercase", lower: "socks5h://127.0.0.5:1", want: "socks5h://127.0.0.5:1"},
		{name: "flag none", flag: "none", env: "socks5://127.0.0.2:1", all: "socks5://127.0.0.4:1"},
		{name: "env direct", env: "direct", all: "socks5://127.0.0.4:1"},
		{name: "file none", file: "NONE", all: "socks5://127.0.0.4:1"},
		{name: "bad flag", flag: "http://127.0.0.1:3128", wantErr: "--proxy"},
		{name: "bad all_proxy", all: "https://127.0.0.1:3128", wantErr: "ALL_PROXY"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("XJINGLE_PROXY", tc.env)
			t.Setenv("ALL_PROXY", tc.all)
			t.Setenv("all_proxy", tc.lower)
			t.Setenv("NO_PROXY", tc.noPx)
			t.Setenv("no_proxy", "")
			g := &globals{proxy: tc.flag}
			d, err := g.proxyDialer(&fileConfig{Proxy: tc.file})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("error %v, want one naming %s", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := ""
			if d != nil {
				got = d.String()
			}
			if got != tc.want {
				t.Errorf("proxy %q, want %q", got, tc.want)
			}
		})
	}
}

// TestProxySettingNoProxy: a host in NO_PROXY is dialed directly when the
// proxy comes from ALL_PROXY.
func TestProxySettingNoProxy(t *testing.T) {
	p := testbed.StartSOCKSProxy(t, testbed.SOCKSProxyOptions{})
	t.Setenv("XJINGLE_PROXY", "")
	t.Setenv("ALL_PROXY", p.URL("socks5"))
	t.Setenv("NO_PROXY", "127.0.0.1")
	d, err := (&globals{}).proxyDialer(&fileConfig{})
	if err != nil || d == nil {
		t.Fatalf("proxy %v, %v", d, err)
	}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := d.DialContext(ctx, "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if p.Accepted() != 0 {
		t.Errorf("a NO_PROXY host went through the proxy: %+v", p.Requests())
	}
}

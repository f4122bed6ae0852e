package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/xjingle/xjingle/internal/testbed"
)

// relayLogs reads the relay's JSON log lines until every message in want
// has been seen and returns the records by message; then it keeps the
// pipe drained until r ends.
func relayLogs(t *testing.T, r io.Reader, want ...string) map[string]map[string]any {
	t.Helper()
	got := map[string]map[string]any{}
	sc := bufio.NewScanner(r)
	for len(got) < len(want) && sc.Scan() {
		var rec map[string]any
		if json.Unmarshal(sc.Bytes(), &rec) != nil {
			t.Logf("relay stderr: %s", sc.Text())
			continue
		}
		msg, _ := rec["msg"].(string)
		t.Logf("relay: %s", sc.Text())
		for _, w := range want {
			if msg == w {
				got[w] = rec
			}
		}
	}
	if len(got) < len(want) {
		t.Fatalf("relay log ended (%v) with only %d of %q", sc.Err(), len(got), want)
	}
	go io.Copy(io.Discard, r)
	return got
}

var metricLine = regexp.MustCompile(`(?m)^xjingle_proxy65_bytes_total ([0-9.e+]+)$`)

// TestCLIRelayProxy65 runs "xjingle relay --proxy65-component" as a
// process against a Prosody without mod_proxy65 that declares the
// component (XEP-0114): `xjingle probe` finds our proxy through the
// server's disco (XEP-0065 §4), and two xjingle clients with direct
// candidates withheld (--no-direct, --transports socks5) move an 8 MiB
// file through it; both ends verify the hash, and the relay's metrics
// count the activation and the spliced bytes.
func TestCLIRelayProxy65(t *testing.T) {
	const compJID, compSecret = "proxy2." + testbed.DefaultDomain, "c0mp-secret"
	e := newCLIEnv(t, testbed.WithoutProxy65(), testbed.WithComponent(compJID, compSecret))
	if e.bed.Proxy65Addr != "" || e.bed.ComponentAddr == "" {
		t.Fatalf("bed: proxy65 %q, component port %q; want no mod_proxy65 and a component port", e.bed.Proxy65Addr, e.bed.ComponentAddr)
	}
	secretFile := writeFile(t, "proxy65.secret", compSecret+"\n")
	conf := writeFile(t, "relay.toml", `
proxy65_component = "`+compJID+`"
proxy65_secret_file = "`+secretFile+`"
proxy65_listen = "127.0.0.1:0"
proxy65_timeout = "30s"
`)
	relayCmd := exec.Command(os.Args[0], "--config", conf, "--listen", "127.0.0.1:0", "--metrics", "127.0.0.1:0",
		"--log-json", "--sockets", "1", "--proxy65-server", e.bed.ComponentAddr)
	relayCmd.Env = append(os.Environ(), "XJINGLE_RELAY_TEST_MAIN=1", "XJINGLE_RELAY_SECRET=turn-secret")
	stderr, err := relayCmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := relayCmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- relayCmd.Wait() }()
	defer func() {
		if relayCmd.ProcessState == nil {
			_ = relayCmd.Process.Kill()
			<-exited
		}
	}()
	logs := relayLogs(t, stderr, "proxy65 serving", "metrics serving", "proxy65: component connected")
	proxyAddr, _ := logs["proxy65 serving"]["addr"].(string)
	metricsAddr, _ := logs["metrics serving"]["addr"].(string)
	if proxyAddr == "" || metricsAddr == "" {
		t.Fatalf("addresses not logged: %v", logs)
	}

	// Discovery, as the clients will do it.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := e.cmd(ctx, t, e.alice, "probe", "--json").Output()
	if err != nil {
		t.Fatalf("probe: %v (%s)", err, out)
	}
	var rep probeReport
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatalf("probe output %q: %v", out, err)
	}
	if rep.Proxy65 == nil || rep.Proxy65.JID != compJID || "127.0.0.1:"+strconv.Itoa(rep.Proxy65.Port) != proxyAddr {
		t.Fatalf("probe found proxy %+v (errors %q), want %s at %s", rep.Proxy65, rep.Errors, compJID, proxyAddr)
	}

	start := time.Now()
	sent, got := e.transferWith(t, []string{"--transports", "socks5"}, nil, "--no-direct")
	t.Logf("8 MiB through the component proxy in %v (sender %.2f s)", time.Since(start), sent.Seconds)
	if sent.Transport != "socks5" || len(sent.Tried) != 0 || got.Transport != "socks5" {
		t.Errorf("transport %q/%q, tried %+v; want socks5 through our proxy at the first try", sent.Transport, got.Transport, sent.Tried)
	}

	body := getMetrics(t, metricsAddr)
	for _, want := range []string{`xjingle_proxy65_activations_total{result="ok"} 1`, "\nxjingle_proxy65_component_connected 1\n"} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	m := metricLine.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no xjingle_proxy65_bytes_total in the metrics")
	}
	if n, _ := strconv.ParseFloat(m[1], 64); n < 8<<20 {
		t.Errorf("proxy spliced %v bytes, want at least the 8 MiB file", n)
	}

	if err := relayCmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("relay exited with %v", err)
		}
	case <-time.After(40 * time.Second):
		t.Fatal("relay did not exit on SIGTERM")
	}
}

// TestRelayProxy65InProcess: with the component's server unreachable the
// relay still serves, the component retries, and cancelling the command
// stops the proxy and the component without leaking goroutines.
func TestRelayProxy65InProcess(t *testing.T) {
	defer goleak.VerifyNone(t)
	t.Setenv("XJINGLE_RELAY_SECRET", "env-secret")
	t.Setenv("XJINGLE_PROXY65_SECRET", "comp-secret")
	dead, err := net.Listen("tcp", "127.0.0.1:0") // a port nobody listens on once closed
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := dead.Addr().String()
	dead.Close()
	pr, pw := io.Pipe()
	cmd := newRelayCmd()
	cmd.SetArgs([]string{"--listen", "127.0.0.1:0", "--metrics", "127.0.0.1:0", "--log-json", "--sockets", "1",
		"--proxy65-component", "proxy.example.test", "--proxy65-server", deadAddr, "--proxy65-listen", "127.0.0.1:0"})
	cmd.SetErr(pw)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cmd.ExecuteContext(ctx); pw.Close() }()
	logs := relayLogs(t, pr, "proxy65 serving", "metrics serving", "proxy65: component session ended; reconnecting")
	if body := getMetrics(t, logs["metrics serving"]["addr"].(string)); !strings.Contains(body, "xjingle_proxy65_connections_active 0") {
		t.Error("proxy65 metrics missing from the relay's registry")
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("relay command: %v", err)
	}
}

func TestRelayProxy65Errors(t *testing.T) {
	t.Setenv("XJINGLE_RELAY_SECRET", "x")
	t.Setenv("XJINGLE_PROXY65_SECRET", "")
	base := []string{"--listen", "127.0.0.1:0", "--proxy65-server", "127.0.0.1:9"}
	for name, args := range map[string][]string{
		"no secret":        {"--proxy65-component", "proxy.example.test", "--proxy65-listen", "127.0.0.1:0"},
		"user JID":         {"--proxy65-component", "me@example.test", "--proxy65-listen", "127.0.0.1:0", "--proxy65-secret-file", writeFile(t, "s", "x\n")},
		"no public host":   {"--proxy65-component", "proxy.example.test", "--proxy65-listen", "0.0.0.0:0", "--proxy65-secret-file", writeFile(t, "s", "x\n")},
		"empty secretfile": {"--proxy65-component", "proxy.example.test", "--proxy65-listen", "127.0.0.1:0", "--proxy65-secret-file", writeFile(t, "s", "\n")},
		"bad allow":        {"--proxy65-component", "proxy.example.test", "--proxy65-listen", "127.0.0.1:0", "--proxy65-secret-file", writeFile(t, "s", "x\n"), "--proxy65-allow", "@@"},
	} {
		cmd := newRelayCmd()
		cmd.SetArgs(append(append([]string(nil), base...), args...))
		cmd.SetErr(io.Discard)
		if err := cmd.ExecuteContext(context.Background()); err == nil || !strings.Contains(err.Error(), "proxy65") {
			t.Errorf("%s: %v, want a proxy65 error", name, err)
		}
	}
	if newRelayCmd().Flags().Lookup("proxy65-secret") != nil {
		t.Error("a --proxy65-secret flag would put the secret on argv")
	}
}

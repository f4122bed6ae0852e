package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"syscall"
	"testing"
	"time"

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
	if want := `xjingle_proxy65_activations_total{result="ok"} 1`; !regexp.MustCompile(regexp.QuoteMeta(want)).MatchString(body) {
		t.Errorf("metrics lack %q", want)
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

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pion/stun/v4"
	"github.com/pion/turn/v5"
	"go.uber.org/goleak"

	"github.com/xjingle/xjingle/relay"
)

// When XJINGLE_RELAY_TEST_MAIN is set the test binary is "xjingle relay": the CLI test runs it as a child
// process and talks to it over loopback.
func init() {
	if os.Getenv("XJINGLE_RELAY_TEST_MAIN") != "1" {
		return
	}
	os.Exit(relayTestMain())
}

func relayTestMain() int {
	if path := os.Getenv("XJINGLE_RELAY_CPUPROFILE"); path != "" { // for bench/relay profiling
		f, err := os.Create(path)
		if err == nil && pprof.StartCPUProfile(f) == nil {
			defer func() { pprof.StopCPUProfile(); f.Close() }()
		}
	}
	cmd := newRelayCmd()
	cmd.SetArgs(os.Args[1:])
	err := cmd.ExecuteContext(context.Background())
	if err != nil {
		os.Stderr.WriteString("xjingle relay: " + err.Error() + "\n")
		return 1
	}
	return 0
}

// relayAddrs reads JSON log lines until the relay and metrics addresses are known. Later log messages ("msg"
// values) go to logs, which drops them when its buffer is full and is closed at the end of r.
func relayAddrs(t *testing.T, r io.Reader) (udp, metrics string, logs <-chan string) {
	t.Helper()
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		var rec map[string]any
		if json.Unmarshal(sc.Bytes(), &rec) != nil {
			t.Logf("stderr: %s", sc.Text())
			continue
		}
		switch rec["msg"] {
		case "metrics serving":
			metrics, _ = rec["addr"].(string)
		case "relay serving":
			if l, ok := rec["udp"].([]any); ok && len(l) > 0 {
				udp, _ = l[0].(string)
			}
		}
		if udp != "" && metrics != "" {
			ch := make(chan string, 64)
			go func() { // keeps the child's stderr flowing
				defer close(ch)
				for sc.Scan() {
					var rec map[string]any
					if json.Unmarshal(sc.Bytes(), &rec) != nil {
						continue
					}
					if msg, ok := rec["msg"].(string); ok {
						select {
						case ch <- msg:
						default:
						}
					}
				}
				_, _ = io.Copy(io.Discard, r)
			}()
			return udp, metrics, ch
		}
	}
	t.Fatalf("relay did not report its addresses: %v", sc.Err())
	return "", "", nil
}

// tryAllocate makes an allocation with REST credentials made with secret and returns the TURN error code of
// the refusal (0 when it succeeds).
func tryAllocate(t *testing.T, server, secret string) int {
	t.Helper()
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	u, p := relay.RESTCredentials(secret, "cli-test", time.Hour, time.Now())
	c, err := turn.NewClient(&turn.ClientConfig{STUNServerAddr: server, TURNServerAddr: server, Conn: conn,
		Username: u, Password: p, Realm: "cli.example", RTO: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Listen(); err != nil {
		t.Fatal(err)
	}
	r, err := c.Allocate()
	if err == nil {
		r.Close()
		return 0
	}
	var te *stun.TurnError
	if errors.As(err, &te) {
		return int(te.ErrorCodeAttr.Code)
	}
	t.Fatalf("Allocate: %v", err)
	return 0
}

// waitLog waits for the log message want.
func waitLog(t *testing.T, logs <-chan string, want string) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case msg, ok := <-logs:
			if !ok {
				t.Fatalf("relay log ended before %q", want)
			}
			if msg == want {
				return
			}
		case <-timeout:
			t.Fatalf("no %q in the relay log", want)
		}
	}
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// allocateAndRelay makes an allocation with REST credentials and relays one datagram to a loopback peer.
func allocateAndRelay(t *testing.T, server, secret string) {
	t.Helper()
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	u, p := relay.RESTCredentials(secret, "cli-test", time.Hour, time.Now())
	c, err := turn.NewClient(&turn.ClientConfig{STUNServerAddr: server, TURNServerAddr: server, Conn: conn,
		Username: u, Password: p, Realm: "cli.example", RTO: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Listen(); err != nil {
		t.Fatal(err)
	}
	r, err := c.Allocate()
	if err != nil {
		t.Fatalf("Allocate: %v", err)
	}
	defer r.Close()
	peer, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	_ = peer.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := r.WriteTo([]byte("hello"), peer.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	n, _, err := peer.ReadFrom(buf)
	if err != nil || string(buf[:n]) != "hello" {
		t.Fatalf("peer read %q, %v", buf[:n], err)
	}
}

func getMetrics(t *testing.T, addr string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// TestRelayBinary runs "xjingle relay" as a process with a config file, a secret file and flags, relays
// through it, reads its metrics and stops it with SIGTERM.
func TestRelayBinary(t *testing.T) {
	secret := writeFile(t, "secret", "old-secret\ncli-secret\n")
	conf := writeFile(t, "relay.toml", `
realm = "cli.example"
secret_file = "`+secret+`"
allow_peer = ["127.0.0.1/32"]
metrics = "127.0.0.1:0"
sockets = 2
drain_timeout = "2s"
`)
	cmd := exec.Command(os.Args[0], "--config", conf, "--listen", "127.0.0.1:0", "--log-json")
	cmd.Env = append(os.Environ(), "XJINGLE_RELAY_TEST_MAIN=1")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
		}
	}()
	udp, metrics, logs := relayAddrs(t, stderr)
	allocateAndRelay(t, udp, "cli-secret")

	body := getMetrics(t, metrics)
	for _, want := range []string{
		`xjingle_relay_allocations_total 1`,
		`xjingle_relay_relayed_packets_total{direction="client_to_peer"} 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}

	// SIGHUP after the operator retired both secrets: credentials made with them get 401, the new one works.
	if err := os.WriteFile(secret, []byte("rotated-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitLog(t, logs, "credentials reloaded")
	if code := tryAllocate(t, udp, "cli-secret"); code != 401 {
		t.Errorf("retired secret after SIGHUP: code %d, want 401", code)
	}
	allocateAndRelay(t, udp, "rotated-secret")

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("relay exited with %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("relay did not exit on SIGTERM")
	}
}

// TestRelayCmdInProcess runs the command in this process until its context is cancelled.
func TestRelayCmdInProcess(t *testing.T) {
	defer goleak.VerifyNone(t)
	t.Setenv("XJINGLE_RELAY_SECRET", "env-secret")
	pr, pw := io.Pipe()
	cmd := newRelayCmd()
	cmd.SetArgs([]string{"--listen", "127.0.0.1:0", "--metrics", "127.0.0.1:0", "--log-json",
		"--realm", "cli.example", "--allow-peer", "127.0.0.1", "--sockets", "1"})
	cmd.SetErr(pw)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cmd.ExecuteContext(ctx); pw.Close() }()
	udp, metrics, _ := relayAddrs(t, pr)
	allocateAndRelay(t, udp, "env-secret")
	if body := getMetrics(t, metrics); !strings.Contains(body, "xjingle_relay_allocations_total 1") {
		t.Error("allocation not counted")
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("relay command: %v", err)
	}
}

func TestRelayCmdErrors(t *testing.T) {
	if newRelayCmd().Flags().Lookup("secret") != nil {
		t.Error("a --secret flag would put the secret on argv")
	}
	t.Setenv("XJINGLE_RELAY_SECRET", "")
	for name, args := range map[string][]string{
		"no credentials": {"--listen", "127.0.0.1:0"},
		"unknown key":    {"--config", writeFile(t, "bad.toml", "no_such_key = 1\n")},
		"bad cidr":       {"--listen", "127.0.0.1:0", "--allow-peer", "10.0.0.0/99"},
	} {
		cmd := newRelayCmd()
		cmd.SetArgs(args)
		cmd.SetErr(io.Discard)
		if err := cmd.ExecuteContext(context.Background()); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/xjingle/xjingle/internal/testbed"
)

// These tests run the real xjingle binary against a real Prosody (the test
// bed), like a user would.

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// binary builds xjingle once per test run (without -race: the race detector
// would make the 64 MiB transfer a benchmark of itself).
func binary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "xjingle-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "xjingle")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = err
			binPath = string(out)
		}
	})
	if buildErr != nil {
		t.Fatalf("go build: %v\n%s", buildErr, binPath)
	}
	return binPath
}

type cliEnv struct {
	bed        *testbed.Bed
	alice, bob testbed.Account
}

func newCLIEnv(t *testing.T, opts ...testbed.Option) *cliEnv {
	bed := testbed.Start(t, opts...)
	e := &cliEnv{bed: bed, alice: bed.AddUser(t, "alice"), bob: bed.AddUser(t, "bob")}
	bed.Subscribe(t, "alice", "bob")
	return e
}

// cmd returns an xjingle command logged in as acct.
func (e *cliEnv) cmd(ctx context.Context, t *testing.T, acct testbed.Account, args ...string) *exec.Cmd {
	c := exec.CommandContext(ctx, binary(t), args...)
	c.Env = append(os.Environ(),
		"XJINGLE_JID="+acct.JID, "XJINGLE_PASSWORD="+acct.Password,
		"XJINGLE_SERVER="+e.bed.C2SAddr, "XJINGLE_CA="+e.bed.CAFile,
		"XDG_CONFIG_HOME="+t.TempDir(), // no user config
		// Network rule: SOCKS5 offers loopback only, never this
		// machine's other addresses.
		"XJINGLE_INTERFACES=lo",
	)
	return c
}

type fileReport struct {
	Name      string  `json:"name"`
	Path      string  `json:"path"`
	Size      int64   `json:"size"`
	Bytes     int64   `json:"bytes"`
	Transport string  `json:"transport"`
	SHA256    string  `json:"sha256"`
	Verified  bool    `json:"verified"`
	Seconds   float64 `json:"seconds"`
	Error     string  `json:"error"`
}

func writeRandom(t *testing.T, dir, name string, size int64) (string, string) {
	t.Helper()
	p := filepath.Join(dir, name)
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	if _, err := io.CopyN(io.MultiWriter(f, h), rand.Reader, size); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return p, hex.EncodeToString(h.Sum(nil))
}

// startReceiver starts "xjingle receive --once" as bob and waits until it is
// online.
func (e *cliEnv) startReceiver(ctx context.Context, t *testing.T, dir string, extra ...string) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	args := append([]string{"receive", "--once", "--json", "--dir", dir, "--from", e.alice.JID}, extra...)
	rc := e.cmd(ctx, t, e.bob, args...)
	var out bytes.Buffer
	rc.Stdout = &out
	stderr, err := rc.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := rc.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sent := false
		for sc.Scan() {
			line := sc.Text()
			if !sent && strings.Contains(line, `"event":"ready"`) {
				ready <- nil
				sent = true
			}
			t.Logf("receiver: %s", line)
		}
		if !sent {
			ready <- io.ErrUnexpectedEOF
		}
	}()
	select {
	case err := <-ready:
		if err != nil {
			rc.Wait()
			t.Fatalf("receiver did not come online: %v", err)
		}
	case <-ctx.Done():
		t.Fatal("receiver did not come online in time")
	}
	return rc, &out
}

func TestCLISendReceiveIBB(t *testing.T) {
	e := newCLIEnv(t)
	src := t.TempDir()
	for _, tc := range []struct {
		name string
		size int64
	}{
		{"one-byte.bin", 1},
		{"one-mib.bin", 1 << 20},
		{"sixty-four-mib.bin", 64 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			path, sum := writeRandom(t, src, tc.name, tc.size)
			inbox := t.TempDir()
			rc, rout := e.startReceiver(ctx, t, inbox)

			sc := e.cmd(ctx, t, e.alice, "send", "--json", "--transports", "ibb", "--to", "bob@"+e.bed.Domain, path)
			sout, err := sc.Output()
			if err != nil {
				t.Errorf("send: %v (stdout %s)", err, sout)
			}
			if err := rc.Wait(); err != nil {
				t.Errorf("receive: %v (stdout %s)", err, rout)
			}
			var sent, got fileReport
			if err := json.Unmarshal(sout, &sent); err != nil {
				t.Fatalf("send output %q: %v", sout, err)
			}
			if err := json.Unmarshal(rout.Bytes(), &got); err != nil {
				t.Fatalf("receive output %q: %v", rout, err)
			}
			if !sent.Verified || sent.SHA256 != sum || sent.Bytes != tc.size || sent.Transport != "ibb" || sent.Error != "" {
				t.Errorf("sender report %+v, want verified, %d bytes, sha256 %s over ibb", sent, tc.size, sum)
			}
			if !got.Verified || got.SHA256 != sum || got.Bytes != tc.size || got.Transport != "ibb" {
				t.Errorf("receiver report %+v, want verified %d bytes sha256 %s", got, tc.size, sum)
			}
			if want := filepath.Join(inbox, tc.name); got.Path != want {
				t.Errorf("stored at %q, want %q", got.Path, want)
			}
			if fsum := fileSum(t, got.Path); fsum != sum {
				t.Errorf("file on disk has sha256 %s, want %s", fsum, sum)
			}
			entries, _ := os.ReadDir(inbox)
			if len(entries) != 1 {
				t.Errorf("inbox holds %d entries, want just the file", len(entries))
			}
			// Memory stays flat whatever the size: the receiver's peak
			// RSS (ru_maxrss, KiB on Linux).
			if ru, ok := rc.ProcessState.SysUsage().(*syscall.Rusage); ok {
				t.Logf("receiver peak RSS %.1f MiB for %d bytes", float64(ru.Maxrss)/1024, tc.size)
				if ru.Maxrss > 100<<10 {
					t.Errorf("receiver peak RSS %d KiB > 100 MiB", ru.Maxrss)
				}
			}
		})
	}
}

func fileSum(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func TestCLISendErrors(t *testing.T) {
	e := newCLIEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	file, _ := writeRandom(t, t.TempDir(), "f.bin", 10)
	for _, tc := range []struct {
		name string
		acct testbed.Account
		args []string
		want string
	}{
		{"peer offline", e.alice, []string{"send", "--to", "bob@" + e.bed.Domain, file}, "offline"},
		{"bad JID", e.alice, []string{"send", "--to", "@@bad", file}, "bad JID"},
		{"wrong password", testbed.Account{JID: e.alice.JID, Password: "wrong"}, []string{"send", "--to", "bob@" + e.bed.Domain, file}, "authentication failed"},
		{"unknown transport", e.alice, []string{"send", "--transports", "carrier-pigeon", "--to", "bob@" + e.bed.Domain, file}, "unknown transport"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := e.cmd(ctx, t, tc.acct, tc.args...)
			out, err := c.CombinedOutput()
			if err == nil {
				t.Fatalf("succeeded: %s", out)
			}
			if !strings.Contains(string(out), tc.want) {
				t.Errorf("output %q does not say %q", out, tc.want)
			}
			if n := strings.Count(strings.TrimSpace(string(out)), "\n"); n > 0 {
				t.Errorf("error is not one line: %q", out)
			}
		})
	}
}

func TestCLIDeclinedAndUnreachable(t *testing.T) {
	e := newCLIEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	file, _ := writeRandom(t, t.TempDir(), "f.bin", 10)

	// bob accepts only from carol: alice's offer is declined.
	inbox := t.TempDir()
	rctx, rcancel := context.WithCancel(ctx)
	rc := e.cmd(rctx, t, e.bob, "receive", "--json", "--dir", inbox, "--from", "carol@"+e.bed.Domain)
	stderr, _ := rc.StderrPipe()
	if err := rc.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { rcancel(); rc.Wait() }()
	sc := bufio.NewScanner(stderr)
	for sc.Scan() && !strings.Contains(sc.Text(), `"event":"ready"`) {
	}
	go io.Copy(io.Discard, stderr)
	out, err := e.cmd(ctx, t, e.alice, "send", "--to", "bob@"+e.bed.Domain, file).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "declined") {
		t.Errorf("send to a declining peer: err %v, output %q; want a failure that says declined", err, out)
	}
	if entries, _ := os.ReadDir(inbox); len(entries) != 0 {
		t.Errorf("declined offer left %d entries in the inbox", len(entries))
	}

	// A server that is not there.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	c := e.cmd(ctx, t, e.alice, "send", "--to", "bob@"+e.bed.Domain, file)
	c.Env = append(c.Env, "XJINGLE_SERVER="+addr)
	out, err = c.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "unreachable") {
		t.Errorf("unreachable server: err %v, output %q", err, out)
	}
}

func TestCLIProbe(t *testing.T) {
	// A live relay: probe's ICE section gathers from it (an unreachable
	// one would cost the gathering timeout on each run).
	turnAddr := startTURN(t, "s3cret")
	e := newCLIEnv(t, testbed.WithTURN(turnAddr, "s3cret"))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := e.cmd(ctx, t, e.alice, "probe", "--json").Output()
	if err != nil {
		t.Fatalf("probe: %v\n%s", err, out)
	}
	var rep probeReport
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatalf("%s: %v", out, err)
	}
	if rep.Proxy65 == nil || rep.Proxy65.JID != e.bed.Proxy65JID || !strings.HasSuffix(e.bed.Proxy65Addr, ":"+itoa(rep.Proxy65.Port)) {
		t.Errorf("proxy65 = %+v, want %s at %s", rep.Proxy65, e.bed.Proxy65JID, e.bed.Proxy65Addr)
	}
	var turn, stun bool
	for _, s := range rep.Services {
		switch s.Type {
		case "turn":
			turn = net.JoinHostPort(s.Host, itoa(s.Port)) == turnAddr && s.HasCredentials
		case "stun":
			stun = true
		}
	}
	if !turn || !stun {
		t.Errorf("external services %+v: want a stun entry and the turn entry with credentials", rep.Services)
	}
	if len(rep.Features) == 0 {
		t.Error("no server features")
	}
	// The human form names the same things.
	human, err := e.cmd(ctx, t, e.alice, "probe").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{e.bed.Proxy65JID, "turn " + turnAddr} {
		if !strings.Contains(string(human), want) {
			t.Errorf("probe output lacks %q:\n%s", want, human)
		}
	}
}

func itoa(n int) string { return strings.TrimSpace(strings.Repeat(" ", 0) + jsonNum(n)) }

func jsonNum(n int) string { b, _ := json.Marshal(n); return string(b) }

// TestCLIThrottledWarning runs a transfer through a Prosody limited like
// Debian's shipped config (c2s 10 kB/s): the sender must say the server is
// rate-limiting instead of looking hung.
func TestCLIThrottledWarning(t *testing.T) {
	e := newCLIEnv(t, testbed.Options{ExtraConfig: `limits = { c2s = { rate = "10kb/s"; burst = "1s" } }`})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	file, _ := writeRandom(t, t.TempDir(), "slow.bin", 512<<10)
	inbox := t.TempDir()
	rc, _ := e.startReceiver(ctx, t, inbox)
	defer func() { rc.Process.Kill(); rc.Wait() }()

	sctx, scancel := context.WithCancel(ctx)
	// IBB: the data goes through the throttled c2s stream (SOCKS5 would
	// bypass the server).
	sc := e.cmd(sctx, t, e.alice, "send", "--json", "--transports", "ibb", "--to", "bob@"+e.bed.Domain, file)
	stderr, err := sc.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := sc.Start(); err != nil {
		t.Fatal(err)
	}
	warned := false
	s := bufio.NewScanner(stderr)
	for s.Scan() {
		if strings.Contains(s.Text(), "rate-limiting") {
			warned = true
			break
		}
	}
	scancel()
	sc.Wait()
	if !warned {
		t.Fatal("no rate-limit warning from a transfer through a 10 kB/s server")
	}
}

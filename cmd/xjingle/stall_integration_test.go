package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestCLIStallTimeout: a sender that stops mid-file (SIGSTOP: no byte, no
// FIN, as a stalled proxy looks to the receiver) fails the receiver after
// its --stall-timeout with an error that says the stream stalled, instead
// of hanging; once resumed, the sender learns that the receiver gave up
// (the receiver's stream error shows its idle bound of 1 s, not the 3 s
// stall).
func TestCLIStallTimeout(t *testing.T) {
	if testing.Short() {
		t.Skip("CLI")
	}
	const size = 64 << 20
	e := newCLIEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	path, _ := writeRandomFast(t, t.TempDir(), "stall.bin", size)
	inbox := t.TempDir()
	rc, rout := e.startReceiver(ctx, t, inbox, "--stall-timeout", "1s")
	sc := e.cmd(ctx, t, e.alice, "send", "--json", "--transports", "socks5", "--rate-limit", "20M", "--to", "bob@"+e.bed.Domain, path)
	var sout strings.Builder
	sc.Stdout = &sout
	if err := sc.Start(); err != nil {
		t.Fatal(err)
	}
	defer sc.Process.Kill()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
wait:
	for {
		select {
		case <-ctx.Done():
			t.Fatal("the transfer never reached 8 MiB")
		case <-tick.C:
			ms, _ := filepath.Glob(filepath.Join(inbox, ".xjingle-resume-*.part"))
			if len(ms) == 1 {
				if fi, err := os.Stat(ms[0]); err == nil && fi.Size() >= 8<<20 {
					break wait
				}
			}
		}
	}
	if err := sc.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	// The stall lasts 3 s, three stall timeouts: then the sender runs
	// again and can acknowledge the receiver's session-terminate (a
	// frozen peer would make the receiver wait out the ack's 10 s bound).
	cont := time.AfterFunc(3*time.Second, func() { sc.Process.Signal(syscall.SIGCONT) })
	defer cont.Stop()
	err := rc.Wait()
	took := time.Since(stopped)
	serr := sc.Wait()
	var got fileReport
	if jerr := json.Unmarshal([]byte(rout.String()), &got); jerr != nil {
		t.Fatalf("receive output %q: %v", rout, jerr)
	}
	t.Logf("receiver gave up %v after the sender stopped: %s; sender: %v %s", took, got.Error, serr, sout.String())
	if err == nil || !strings.Contains(got.Error, "idle for 1s") {
		t.Errorf("receiver: exit %v, error %q; want a failure saying the stream was idle for 1s", err, got.Error)
	}
	if took > 8*time.Second {
		t.Errorf("receiver gave up %v after the stall, with --stall-timeout 1s", took)
	}
	if serr == nil || !strings.Contains(sout.String(), "connectivity-error") {
		t.Errorf("sender: exit %v, output %q; want a failure from the receiver's connectivity-error", serr, sout.String())
	}
}

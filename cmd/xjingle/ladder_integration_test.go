package main

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/xjingle/xjingle/internal/testbed"
)

// ladderReport is the part of a --json line the ladder tests look at.
type ladderReport struct {
	fileReport
	Tried []struct {
		Transport string `json:"transport"`
		Error     string `json:"error"`
	} `json:"tried"`
}

// transfer sends an 8 MiB file from alice to bob with the default
// --transports (ice when bob supports it, socks5, ibb) and extra flags on
// both sides; it checks the hash on both sides and returns both reports.
func (e *cliEnv) transfer(t *testing.T, flags ...string) (sent, got ladderReport) {
	t.Helper()
	return e.transferWith(t, nil, nil, flags...)
}

// transferWith is transfer with sendFlags given to the sender only and
// recvFlags to the receiver only.
func (e *cliEnv) transferWith(t *testing.T, sendFlags, recvFlags []string, flags ...string) (sent, got ladderReport) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const size = 8 << 20
	path, sum := writeRandom(t, t.TempDir(), "ladder.bin", size)
	rc, rout := e.startReceiver(ctx, t, t.TempDir(), append(append([]string(nil), recvFlags...), flags...)...)
	args := append([]string{"send", "--json", "--to", "bob@" + e.bed.Domain}, sendFlags...)
	args = append(args, flags...)
	sout, err := e.cmd(ctx, t, e.alice, append(args, path)...).Output()
	if err != nil {
		t.Errorf("send: %v (stdout %s)", err, sout)
	}
	if err := rc.Wait(); err != nil {
		t.Errorf("receive: %v (stdout %s)", err, rout)
	}
	if err := json.Unmarshal(sout, &sent); err != nil {
		t.Fatalf("send output %q: %v", sout, err)
	}
	if err := json.Unmarshal(rout.Bytes(), &got); err != nil {
		t.Fatalf("receive output %q: %v", rout, err)
	}
	if !sent.Verified || sent.SHA256 != sum || sent.Bytes != size || sent.Error != "" {
		t.Errorf("sender report %+v, want verified, %d bytes, sha256 %s", sent, size, sum)
	}
	if !got.Verified || got.SHA256 != sum || got.Bytes != size || fileSum(t, got.Path) != sum {
		t.Errorf("receiver report %+v, want verified %d bytes sha256 %s", got, size, sum)
	}
	if got.Transport != sent.Transport {
		t.Errorf("receiver used %q, sender %q", got.Transport, sent.Transport)
	}
	return sent, got
}

// TestCLIDefaultLadder: with the default --transports, two xjingle peers
// (both advertise webrtc-datachannel:1) use ICE first, on loopback.
func TestCLIDefaultLadder(t *testing.T) {
	e := newCLIEnv(t)
	sent, got := e.transfer(t, "--interface", "lo")
	if sent.Transport != "ice" || len(sent.Tried) != 0 || len(got.Tried) != 0 {
		t.Errorf("transport %q, tried %+v / %+v; want ice at the first try", sent.Transport, sent.Tried, got.Tried)
	}
}

// TestCLINoICEReceiver: a receiver with --no-direct and no TURN server
// does not advertise ICE (it could offer no candidate), so the sender's
// default ladder skips ice silently and SOCKS5 works at the first try,
// without waiting out an ICE timeout.
func TestCLINoICEReceiver(t *testing.T) {
	e := newCLIEnv(t)
	start := time.Now()
	sent, got := e.transferWith(t, nil, []string{"--no-direct"}, "--interface", "lo")
	if sent.Transport != "socks5" || len(sent.Tried) != 0 || len(got.Tried) != 0 {
		t.Errorf("transport %q, tried %+v / %+v; want socks5 at the first try", sent.Transport, sent.Tried, got.Tried)
	}
	if d := time.Since(start); d > 25*time.Second {
		t.Errorf("took %v: an ICE attempt was waited out?", d)
	}
}

// TestCLISOCKS5 covers the SOCKS5 rungs against the real Prosody: a
// direct SOCKS5 connection on loopback (--interface lo, --transports
// socks5,ibb), and, with direct candidates withheld on both sides
// (--no-direct), the server's proxy65: there the default ladder's ice rung
// is skipped, since relay-only ICE has no TURN server in this test bed.
func TestCLISOCKS5(t *testing.T) {
	e := newCLIEnv(t)
	t.Run("direct", func(t *testing.T) {
		sent, _ := e.transferWith(t, []string{"--transports", "socks5,ibb"}, nil, "--interface", "lo")
		if sent.Transport != "socks5" || len(sent.Tried) != 0 {
			t.Errorf("transport %q, tried %+v; want socks5 at the first try", sent.Transport, sent.Tried)
		}
	})
	t.Run("proxy", func(t *testing.T) {
		sent, _ := e.transfer(t, "--no-direct")
		if sent.Transport != "socks5" || len(sent.Tried) != 0 {
			t.Errorf("transport %q, tried %+v; want socks5 through the proxy", sent.Transport, sent.Tried)
		}
	})
}

// TestCLIFallbackToIBB: no direct candidate and no proxy, so both sides
// send candidate-error (XEP-0260 §2.4) and the sender replaces the
// transport with IBB (§2.7) without restarting the file.
func TestCLIFallbackToIBB(t *testing.T) {
	e := newCLIEnv(t, testbed.WithoutProxy65())
	sent, got := e.transfer(t, "--no-direct")
	if sent.Transport != "ibb" {
		t.Errorf("transport %q, want ibb", sent.Transport)
	}
	if len(sent.Tried) != 1 || sent.Tried[0].Transport != "socks5" || sent.Tried[0].Error == "" {
		t.Errorf("tried %+v, want [socks5: reason]", sent.Tried)
	}
	if len(got.Tried) != 1 || got.Tried[0].Transport != "socks5" {
		t.Errorf("receiver tried %+v, want the replaced socks5", got.Tried)
	}
}

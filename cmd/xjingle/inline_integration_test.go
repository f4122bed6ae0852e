package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// sendJSON runs "xjingle send --json" as alice to bob with extra flags and
// returns its report line and error.
func (e *cliEnv) sendJSON(ctx context.Context, t *testing.T, path string, flags ...string) (ladderReport, []byte, error) {
	t.Helper()
	args := append([]string{"send", "--json", "--to", "bob@" + e.bed.Domain}, flags...)
	out, err := e.cmd(ctx, t, e.alice, append(args, path)...).Output()
	var r ladderReport
	if jerr := json.Unmarshal(out, &r); jerr != nil && err == nil {
		t.Fatalf("send output %q: %v", out, jerr)
	}
	return r, out, err
}

// TestCLIInline: against the real Prosody, a 3 KiB file crosses in one
// stanza (the inline rung, tried first by default), a 100 KiB one skips it
// (not a failure) and goes over SOCKS5 on loopback; forcing inline for a
// file over --inline-max fails before anything is sent.
func TestCLIInline(t *testing.T) {
	e := newCLIEnv(t)
	src := t.TempDir()

	t.Run("3 KiB inline", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		small, sum := writeRandom(t, src, "small.bin", 3<<10)
		big, _ := writeRandom(t, src, "big.bin", 100<<10)
		rc, rout := e.startReceiver(ctx, t, t.TempDir())

		// Forced inline, file too large: refused before any offer, so
		// the receiver (--once) sees only the next file.
		r, out, err := e.sendJSON(ctx, t, big, "--transports", "inline")
		if err == nil || !strings.Contains(r.Error, "too large") {
			t.Errorf("forced inline for 100 KiB: err %v, report %s", err, out)
		}

		sent, out, err := e.sendJSON(ctx, t, small)
		if err != nil {
			t.Errorf("send: %v (%s)", err, out)
		}
		if err := rc.Wait(); err != nil {
			t.Errorf("receive: %v (stdout %s)", err, rout)
		}
		var got ladderReport
		if err := json.Unmarshal(rout.Bytes(), &got); err != nil {
			t.Fatalf("receive output %q: %v", rout, err)
		}
		if sent.Transport != "inline" || len(sent.Tried) != 0 || !sent.Verified || sent.SHA256 != sum || sent.Bytes != 3<<10 {
			t.Errorf("sender report %+v; want inline at the first try, verified, sha256 %s", sent, sum)
		}
		if got.Name != "small.bin" || got.Transport != "inline" || !got.Verified || got.SHA256 != sum || fileSum(t, got.Path) != sum {
			t.Errorf("receiver report %+v; want small.bin over inline, sha256 %s", got, sum)
		}
	})

	t.Run("100 KiB over socks5", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		big, sum := writeRandom(t, src, "big2.bin", 100<<10)
		rc, rout := e.startReceiver(ctx, t, t.TempDir(), "--interface", "lo")
		sent, out, err := e.sendJSON(ctx, t, big, "--interface", "lo", "--transports", "inline,socks5,ibb")
		if err != nil {
			t.Errorf("send: %v (%s)", err, out)
		}
		if err := rc.Wait(); err != nil {
			t.Errorf("receive: %v (stdout %s)", err, rout)
		}
		if sent.Transport != "socks5" || len(sent.Tried) != 0 || !sent.Verified || sent.SHA256 != sum {
			t.Errorf("sender report %+v; want socks5 at the first try (inline skipped, not tried)", sent)
		}
	})

	t.Run("bad --inline-max", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		f, _ := writeRandom(t, src, "tiny.bin", 10)
		for _, tc := range []struct {
			flags []string
			want  string
		}{
			{[]string{"--inline-max", "70000"}, "--inline-max"},
			{[]string{"--inline-max", "0", "--transports", "inline"}, "disabled"},
		} {
			args := append([]string{"send", "--to", "bob@" + e.bed.Domain}, tc.flags...)
			out, err := e.cmd(ctx, t, e.alice, append(args, f)...).CombinedOutput()
			if err == nil || !strings.Contains(string(out), tc.want) {
				t.Errorf("send %v: %v %q; want an error saying %q", tc.flags, err, out, tc.want)
			}
		}
	})
}

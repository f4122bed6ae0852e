package main

import (
	"context"
	"encoding/json"
	"testing"
	"time"
)

// TestCLISendReceiveICE sends 128 MiB over the WebRTC data channel rung
// (XEP-0343 over ICE, DTLS and SCTP) with the default ladder, signalled
// through Prosody; ICE gathers on loopback only (the env sets --interface
// lo). The binaries are built without the race detector, so this is the full
// 128 MiB of issue 4 even under `go test -race`.
func TestCLISendReceiveICE(t *testing.T) {
	if testing.Short() {
		t.Skip("128 MiB over ICE")
	}
	const size = 128 << 20
	e := newCLIEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	path, sum := writeRandomFast(t, t.TempDir(), "ice.bin", size)
	inbox := t.TempDir()
	rc, rout := e.startReceiver(ctx, t, inbox)
	sout, err := e.cmd(ctx, t, e.alice, "send", "--json", "--to", "bob@"+e.bed.Domain, path).Output()
	if err != nil {
		t.Errorf("send: %v (%s)", err, sout)
	}
	if err := rc.Wait(); err != nil {
		t.Errorf("receive: %v (%s)", err, rout)
	}
	var sent, got fileReport
	if err := json.Unmarshal(sout, &sent); err != nil {
		t.Fatalf("%q: %v", sout, err)
	}
	if err := json.Unmarshal(rout.Bytes(), &got); err != nil {
		t.Fatalf("%q: %v", rout, err)
	}
	for who, r := range map[string]fileReport{"sender": sent, "receiver": got} {
		if !r.Verified || r.SHA256 != sum || r.Transport != "ice" || r.Bytes != size {
			t.Errorf("%s: %+v, want verified %s over ice", who, r, sum)
		}
	}
	t.Logf("128 MiB over ice in %.1f s (sender's clock)", sent.Seconds)
	if fileSum(t, got.Path) != sum {
		t.Error("file on disk differs")
	}
}

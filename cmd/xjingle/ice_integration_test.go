package main

import (
	"context"
	"encoding/json"
	"testing"
	"time"
)

// TestCLISendReceiveICE sends a file over the WebRTC data channel rung
// (XEP-0343 over ICE, DTLS and SCTP), signalled through Prosody; ICE gathers
// on loopback only (the env sets --interface lo).
func TestCLISendReceiveICE(t *testing.T) {
	e := newCLIEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	path, sum := writeRandom(t, t.TempDir(), "ice.bin", 8<<20)
	inbox := t.TempDir()
	rc, rout := e.startReceiver(ctx, t, inbox)
	sout, err := e.cmd(ctx, t, e.alice, "send", "--json", "--transports", "ice", "--to", "bob@"+e.bed.Domain, path).Output()
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
		if !r.Verified || r.SHA256 != sum || r.Transport != "ice" || r.Bytes != 8<<20 {
			t.Errorf("%s: %+v, want verified %s over ice", who, r, sum)
		}
	}
	if fileSum(t, got.Path) != sum {
		t.Error("file on disk differs")
	}
}

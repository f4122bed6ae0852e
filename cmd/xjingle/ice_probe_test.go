package main

import (
	"context"
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
	"github.com/xjingle/xjingle/internal/testbed"
	"github.com/xjingle/xjingle/relay"
)

const probeTURNSecret = "probe-turn-secret"

// startTURN runs xjingle's relay in this process on a loopback UDP port
// (STUN and TURN on the same port) and returns its address.
func startTURN(t *testing.T, secret string) string {
	t.Helper()
	srv, err := relay.New(relay.Config{
		Listen:              []relay.Listen{{Addr: "127.0.0.1:0"}},
		Secrets:             []string{secret},
		Peers:               relay.PeerPolicy{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}},
		SocketsPerUDPListen: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(context.Background()) }()
	t.Cleanup(func() {
		srv.Close()
		<-done
	})
	return srv.UDPAddrs()[0].String()
}

// TestCLIProbeICE: probe's ICE section gathers with the TURN server Prosody
// announces (XEP-0215, REST credentials) and with one given by hand, all on
// loopback, and says which accepted the credentials.
func TestCLIProbeICE(t *testing.T) {
	turnAddr := startTURN(t, probeTURNSecret)
	e := newCLIEnv(t, testbed.WithTURN(turnAddr, probeTURNSecret))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.secret")
	if err := os.WriteFile(bad, []byte("not-the-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// A hand-given TURN server with a wrong REST secret: refused.
	handURL := "turn:" + turnAddr + "?transport=udp"
	out, err := e.cmd(ctx, t, e.alice, "probe", "--json", "--turn", handURL, "--turn-rest-secret-file", bad).Output()
	if err != nil {
		t.Fatalf("probe: %v\n%s", err, out)
	}
	var rep probeReport
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatalf("%s: %v", out, err)
	}
	i := rep.ICE
	if i == nil || i.ProbeReport == nil {
		t.Fatalf("no ICE section: %s", out)
	}
	t.Logf("ICE: %s", out)
	if i.Host == 0 || i.Relay == 0 || !i.Complete {
		t.Errorf("ICE %+v: want host and relay candidates, gathering complete", i.ProbeReport)
	}
	for _, c := range i.Candidates {
		if !strings.Contains(c, "127.0.0.1:") {
			t.Errorf("candidate %q off loopback", c)
		}
	}
	if len(i.STUN) == 0 {
		t.Error("no STUN server reported")
	}
	// Hand-given servers come first, then Prosody's (XEP-0215).
	if len(i.TURN) < 2 || i.TURN[0].URL != handURL || i.TURN[0].Accepted || i.TURN[0].Err == "" {
		t.Fatalf("TURN %+v: want the hand-given server first, refused", i.TURN)
	}
	for _, tp := range i.TURN[1:] {
		if !tp.Accepted || !strings.HasPrefix(tp.Relayed, "127.0.0.1:") {
			t.Errorf("Prosody's TURN %+v: want accepted with a loopback relayed address", tp)
		}
	}
	human, err := e.cmd(ctx, t, e.alice, "probe").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"ICE candidates:", "credentials accepted, relayed address 127.0.0.1:"} {
		if !strings.Contains(string(human), want) {
			t.Errorf("probe output lacks %q:\n%s", want, human)
		}
	}
}

func TestICEFlags(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "s")
	if err := os.WriteFile(secret, []byte("# comment\ns3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_800_000_000, 0)
	// Long-term credentials.
	f := iceFlags{stun: []string{"stun:127.0.0.1:3478"}, turn: []string{"turn:127.0.0.1:3478?transport=tcp", "turns:relay.example:5349"}, turnUser: "u", turnSecretFile: secret}
	got, err := f.servers("alice@example.test", now)
	if err != nil {
		t.Fatal(err)
	}
	want := []webrtc.ICEServer{
		{URLs: []string{"stun:127.0.0.1:3478"}},
		{URLs: []string{"turn:127.0.0.1:3478?transport=tcp"}, Username: "u", Credential: "s3cret", CredentialType: webrtc.ICECredentialTypePassword},
		{URLs: []string{"turns:relay.example:5349"}, Username: "u", Credential: "s3cret", CredentialType: webrtc.ICECredentialTypePassword},
	}
	if len(got) != len(want) {
		t.Fatalf("servers %+v", got)
	}
	for i := range want {
		if got[i].URLs[0] != want[i].URLs[0] || got[i].Username != want[i].Username || got[i].Credential != want[i].Credential {
			t.Errorf("server %d: %+v, want %+v", i, got[i], want[i])
		}
	}
	// REST credentials (draft-uberti-behave-turn-rest-00 §2.2): checkable
	// with the relay's own verifier.
	f = iceFlags{turn: []string{"turn:127.0.0.1"}, turnRESTFile: secret}
	got, err = f.servers("alice@example.test", now)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || !strings.HasSuffix(got[0].Username, ":alice@example.test") {
		t.Fatalf("REST servers %+v", got)
	}
	if err := relay.CheckRESTCredentials("s3cret", got[0].Username, got[0].Credential.(string), now); err != nil {
		t.Errorf("REST credentials: %v", err)
	}
	for _, bad := range []iceFlags{
		{stun: []string{"turn:127.0.0.1"}},
		{stun: []string{"http://example.com"}},
		{turn: []string{"turn:127.0.0.1"}}, // no credentials
		{turn: []string{"stun:127.0.0.1"}, turnRESTFile: secret},
		{turn: []string{"turn:127.0.0.1?transport=sctp"}, turnRESTFile: secret},
		{turn: []string{"turn:127.0.0.1"}, turnRESTFile: filepath.Join(dir, "missing")},
	} {
		if _, err := bad.servers("a@b", now); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
	// Flags win over the environment, which wins over the config file.
	t.Setenv("XJINGLE_STUN", "stun:env.example, stun:env2.example")
	t.Setenv("XJINGLE_TURN_USER", "envuser")
	g := &globals{}
	fc := &fileConfig{STUN: []string{"stun:file.example"}, TURN: []string{"turn:file.example"}, TURNUser: "fileuser"}
	r := g.resolveICEFlags(fc)
	if strings.Join(r.stun, " ") != "stun:env.example stun:env2.example" || r.turnUser != "envuser" || r.turn[0] != "turn:file.example" {
		t.Errorf("resolved %+v", r)
	}
	g.ice.stun = []string{"stun:flag.example"}
	if r := g.resolveICEFlags(fc); r.stun[0] != "stun:flag.example" || len(r.stun) != 1 {
		t.Errorf("flag did not win: %+v", r)
	}
}

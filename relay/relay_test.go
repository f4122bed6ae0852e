package relay

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// TestRelayUDP allocates with REST credentials, creates a permission for a loopback peer (allowed explicitly)
// and relays a datagram each way.
func TestRelayUDP(t *testing.T) {
	s := startServer(t, nil)
	c := restClient(t, s, "alice@example.org")
	relayed, err := c.Allocate()
	if err != nil {
		t.Fatalf("Allocate: %v", err)
	}
	defer relayed.Close()
	if got := relayed.LocalAddr().(*net.UDPAddr).IP.String(); got != "127.0.0.1" {
		t.Errorf("relayed address %s, want 127.0.0.1", got)
	}

	peer, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	_ = peer.SetDeadline(time.Now().Add(5 * time.Second))
	_ = relayed.SetDeadline(time.Now().Add(5 * time.Second))

	// pion's client creates the permission (and later a channel) on the first write.
	if _, err := relayed.WriteTo([]byte("to peer"), peer.LocalAddr()); err != nil {
		t.Fatalf("relay write: %v", err)
	}
	buf := make([]byte, 1500)
	n, from, err := peer.ReadFrom(buf)
	if err != nil {
		t.Fatalf("peer read: %v", err)
	}
	if string(buf[:n]) != "to peer" {
		t.Errorf("peer got %q", buf[:n])
	}
	if from.String() != relayed.LocalAddr().String() {
		t.Errorf("peer got data from %s, want the relayed address %s", from, relayed.LocalAddr())
	}
	if _, err := peer.WriteTo([]byte("to client"), from); err != nil {
		t.Fatal(err)
	}
	n, from, err = relayed.ReadFrom(buf)
	if err != nil {
		t.Fatalf("relay read: %v", err)
	}
	if string(buf[:n]) != "to client" || from.String() != peer.LocalAddr().String() {
		t.Errorf("client got %q from %s", buf[:n], from)
	}

	if got := metric(t, s, "xjingle_relay_allocations_active"); got != 1 {
		t.Errorf("allocations_active = %v, want 1", got)
	}
	if got := metric(t, s, "xjingle_relay_allocations_total"); got != 1 {
		t.Errorf("allocations_total = %v, want 1", got)
	}
	if got := metric(t, s, "xjingle_relay_permissions_total"); got < 1 {
		t.Errorf("permissions_total = %v, want >= 1", got)
	}
	for _, dir := range []string{"client_to_peer", "peer_to_client"} {
		if got := metric(t, s, "xjingle_relay_relayed_packets_total", "direction", dir); got != 1 {
			t.Errorf("relayed_packets_total{%s} = %v, want 1", dir, got)
		}
	}
	if got := metric(t, s, "xjingle_relay_relayed_bytes_total", "direction", "client_to_peer"); got != 7 {
		t.Errorf("relayed_bytes_total{client_to_peer} = %v, want 7", got)
	}
	if got := metric(t, s, "xjingle_relay_auth_failures_total", "reason", "bad_integrity"); got != 0 {
		t.Errorf("auth failures %v for good credentials", got)
	}
}

func TestAuthFailures(t *testing.T) {
	s := startServer(t, func(c *Config) {
		c.Users = map[string]string{"bob": "hunter2"}
	})
	now := time.Now()
	good, _ := RESTCredentials(testSecret, "alice", time.Hour, now)
	expiredU, expiredP := RESTCredentials(testSecret, "alice", -time.Minute, now)
	otherU, otherP := RESTCredentials("not the secret", "alice", time.Hour, now)
	for _, tc := range []struct {
		name, user, pass, reason string
	}{
		{"wrong password", good, "AAAA", "bad_integrity"},
		{"wrong secret", otherU, otherP, "bad_integrity"},
		{"expired", expiredU, expiredP, "expired"},
		{"unknown user", "mallory", "x", "unknown_user"},
		{"static user wrong password", "bob", "hunter3", "bad_integrity"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := metric(t, s, "xjingle_relay_auth_failures_total", "reason", tc.reason)
			c := newClient(t, s, tc.user, tc.pass)
			_, err := c.Allocate()
			if code := turnCode(err); code != 401 {
				t.Fatalf("Allocate error %v (code %d), want 401", err, code)
			}
			if got := metric(t, s, "xjingle_relay_auth_failures_total", "reason", tc.reason); got != before+1 {
				t.Errorf("auth_failures_total{%s} = %v, want %v", tc.reason, got, before+1)
			}
		})
	}
	t.Run("static user", func(t *testing.T) {
		c := newClient(t, s, "bob", "hunter2")
		r, err := c.Allocate()
		if err != nil {
			t.Fatalf("Allocate: %v", err)
		}
		r.Close()
	})
	if got := metric(t, s, "xjingle_relay_allocations_total"); got != 1 {
		t.Errorf("allocations_total = %v, want 1", got)
	}
}

// TestSecretRotation accepts credentials made with any configured secret.
func TestSecretRotation(t *testing.T) {
	s := startServer(t, func(c *Config) { c.Secrets = []string{"new-secret", testSecret} })
	for _, secret := range []string{"new-secret", testSecret} {
		u, p := RESTCredentials(secret, "carol", time.Hour, time.Now())
		c := newClient(t, s, u, p)
		r, err := c.Allocate()
		if err != nil {
			t.Fatalf("Allocate with secret %q: %v", secret, err)
		}
		// A refresh and a permission are authenticated too.
		peer := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9}
		if err := c.CreatePermission(peer); err != nil {
			t.Errorf("CreatePermission with secret %q: %v", secret, err)
		}
		r.Close()
	}
	u, p := RESTCredentials("retired", "carol", time.Hour, time.Now())
	if _, err := newClient(t, s, u, p).Allocate(); turnCode(err) != 401 {
		t.Errorf("retired secret: %v, want 401", err)
	}
}

// TestSetCredentials swaps secrets and static users while serving (what SIGHUP does): credentials made with
// the removed secret or for the removed user get 401, the new ones work, and so does a secret kept across the
// swap (rotation with two secrets).
func TestSetCredentials(t *testing.T) {
	s := startServer(t, func(c *Config) { c.Users = map[string]string{"alice": "pw-alice"} })
	allocate := func(u, p string) error {
		r, err := newClient(t, s, u, p).Allocate()
		if err == nil {
			r.Close()
		}
		return err
	}
	oldU, oldP := RESTCredentials(testSecret, "carol", time.Hour, time.Now())
	if err := allocate(oldU, oldP); err != nil {
		t.Fatalf("before the swap, old secret: %v", err)
	}
	if err := allocate("alice", "pw-alice"); err != nil {
		t.Fatalf("before the swap, alice: %v", err)
	}
	if err := s.SetCredentials(nil, nil); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("SetCredentials(nil, nil) = %v, want ErrInvalidConfig", err)
	}
	if err := s.SetCredentials([]string{"fresh", "kept"}, map[string]string{"bob": "pw-bob"}); err != nil {
		t.Fatal(err)
	}
	if err := allocate(oldU, oldP); turnCode(err) != 401 {
		t.Errorf("removed secret: %v, want 401", err)
	}
	if err := allocate("alice", "pw-alice"); turnCode(err) != 401 {
		t.Errorf("removed user: %v, want 401", err)
	}
	for _, secret := range []string{"fresh", "kept"} {
		u, p := RESTCredentials(secret, "carol", time.Hour, time.Now())
		if err := allocate(u, p); err != nil {
			t.Errorf("new secret %q: %v", secret, err)
		}
	}
	if err := allocate("bob", "pw-bob"); err != nil {
		t.Errorf("new user: %v", err)
	}
}

// TestDeniedPeers refuses permissions for denied ranges by default. The test never sends to those addresses:
// CreatePermission is a request to the relay, which answers 403.
func TestDeniedPeers(t *testing.T) {
	s := startServer(t, func(c *Config) {
		c.Peers = PeerPolicy{Deny: []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")}}
	})
	c := restClient(t, s, "dave")
	r, err := c.Allocate()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for _, ip := range []string{"10.0.0.1", "169.254.169.254", "127.0.0.1", "192.168.1.1", "224.0.0.1", "203.0.113.9"} {
		err := c.CreatePermission(&net.UDPAddr{IP: net.ParseIP(ip), Port: 3478})
		if code := turnCode(err); code != 403 {
			t.Errorf("CreatePermission(%s) = %v (code %d), want 403", ip, err, code)
		}
	}
	if got := metric(t, s, "xjingle_relay_denied_peer_total"); got != 6 {
		t.Errorf("denied_peer_total = %v, want 6", got)
	}
	if got := metric(t, s, "xjingle_relay_permissions_total"); got != 0 {
		t.Errorf("permissions_total = %v, want 0", got)
	}
}

func TestQuota(t *testing.T) {
	s := startServer(t, func(c *Config) {
		c.MaxAllocationsPerUser = 2
		c.MaxAllocations = 3
	})
	alloc := func(user string) error {
		r, err := restClient(t, s, user).Allocate()
		if err == nil {
			t.Cleanup(func() { r.Close() })
		}
		return err
	}
	for i := range 2 {
		if err := alloc("erin"); err != nil {
			t.Fatalf("allocation %d: %v", i, err)
		}
	}
	if err := alloc("erin"); turnCode(err) != 486 {
		t.Errorf("third allocation for one user: %v, want 486", err)
	}
	if err := alloc("frank"); err != nil {
		t.Fatalf("other user: %v", err)
	}
	if err := alloc("grace"); turnCode(err) != 486 {
		t.Errorf("allocation beyond the total: %v, want 486", err)
	}
	if got := metric(t, s, "xjingle_relay_allocation_rejections_total", "reason", "quota_user"); got != 1 {
		t.Errorf("rejections{quota_user} = %v, want 1", got)
	}
	if got := metric(t, s, "xjingle_relay_allocation_rejections_total", "reason", "quota_total"); got != 1 {
		t.Errorf("rejections{quota_total} = %v, want 1", got)
	}
	if got := metric(t, s, "xjingle_relay_allocations_active"); got != 3 {
		t.Errorf("allocations_active = %v, want 3", got)
	}
}

// TestUnauthRateLimit drops unauthenticated requests beyond the per-source burst.
func TestUnauthRateLimit(t *testing.T) {
	now := time.Unix(1700000000, 0) // frozen clock: no refill
	s := startServer(t, func(c *Config) {
		c.UnauthRate, c.UnauthBurst = 1, 3
		c.Now = func() time.Time { return now }
	})
	c := newClient(t, s, "x", "y")
	for i := range 3 {
		if _, err := c.SendBindingRequest(); err != nil {
			t.Fatalf("binding %d: %v", i, err)
		}
	}
	if _, err := c.SendBindingRequest(); err == nil {
		t.Error("fourth binding request answered, want dropped")
	}
	if got := metric(t, s, "xjingle_relay_unauthenticated_rate_limited_total"); got < 1 {
		t.Errorf("unauthenticated_rate_limited_total = %v", got)
	}
}

func TestBandwidthCap(t *testing.T) {
	s := startServer(t, func(c *Config) { c.MaxBandwidth = 1000 })
	c := restClient(t, s, "heidi")
	r, err := c.Allocate()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	peer, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	// Burst is max(1000, 16*1500) bytes: 30 packets of 1000 bytes exceed it.
	msg := bytes.Repeat([]byte{'x'}, 1000)
	for range 30 {
		if _, err := r.WriteTo(msg, peer.LocalAddr()); err != nil {
			t.Fatal(err)
		}
	}
	// The relay handles one client's packets in order; once a probe sent after them arrives, the counts are final.
	deadline := time.Now().Add(5 * time.Second)
	for metric(t, s, "xjingle_relay_relayed_packets_total", "direction", "client_to_peer")+
		metric(t, s, "xjingle_relay_dropped_packets_total", "reason", "bandwidth", "direction", "client_to_peer") < 30 {
		if time.Now().After(deadline) {
			t.Fatal("packets not accounted")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if got := metric(t, s, "xjingle_relay_relayed_packets_total", "direction", "client_to_peer"); got > 25 {
		t.Errorf("relayed %v packets, want at most 25", got)
	}
}

func TestHealthzMetricsAndShutdown(t *testing.T) {
	s := startServer(t, nil)
	hs := httptest.NewServer(s.Handler())
	defer hs.Close()
	get := func(path string) (int, string) {
		resp, err := http.Get(hs.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get("/healthz"); code != 200 {
		t.Errorf("healthz %d", code)
	}
	if _, body := get("/metrics"); !strings.Contains(body, "xjingle_relay_allocations_active 0") {
		t.Errorf("metrics lack allocations_active:\n%.500s", body)
	}

	r, err := restClient(t, s, "ivan").Allocate()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Shutdown(ctx) }()
	// While draining: unhealthy, and new allocations are refused.
	deadline := time.Now().Add(5 * time.Second)
	for s.Healthy() {
		if time.Now().After(deadline) {
			t.Fatal("still healthy while draining")
		}
		time.Sleep(time.Millisecond)
	}
	if code, _ := get("/healthz"); code != 503 {
		t.Errorf("healthz while draining %d, want 503", code)
	}
	if err := <-done; err == nil {
		t.Error("Shutdown with a live allocation past its deadline returned nil")
	}
	if s.Allocations() != 0 {
		t.Errorf("%d allocations after Shutdown", s.Allocations())
	}
}

// TestShutdownDrained returns nil when the last allocation ends within the deadline.
func TestShutdownDrained(t *testing.T) {
	s := startServer(t, nil)
	r, err := restClient(t, s, "judy").Allocate()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Shutdown(ctx) }()
	r.Close() // the client deallocates (Refresh with lifetime 0)
	if err := <-done; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}

// TestAllocationExpiry: allocations that are not refreshed expire, and their sockets and goroutines go
// (goleak checks the goroutines at the end of the package).
func TestAllocationExpiry(t *testing.T) {
	s := startServer(t, func(c *Config) { c.MaxAllocationAge = 300 * time.Millisecond })
	var relays []net.PacketConn
	for i := range 5 {
		r, err := restClient(t, s, "kim").Allocate()
		if err != nil {
			t.Fatalf("allocation %d: %v", i, err)
		}
		relays = append(relays, r)
		defer r.Close() // stops the client's refresh timers
	}
	if got := s.Allocations(); got != 5 {
		t.Fatalf("%d allocations, want 5", got)
	}
	deadline := time.Now().Add(5 * time.Second)
	for s.Allocations() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d allocations left after their maximum age", s.Allocations())
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, r := range relays {
		// The relayed ports are free again.
		pc, err := net.ListenPacket("udp4", r.LocalAddr().String())
		if err != nil {
			t.Errorf("relayed port still bound: %v", err)
			continue
		}
		pc.Close()
	}
}

func TestReadFiles(t *testing.T) {
	dir := t.TempDir()
	sec := filepath.Join(dir, "secret")
	if err := os.WriteFile(sec, []byte("# rotation\nnew\n\nold\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := ReadSecretsFile(sec)
	if err != nil || len(got) != 2 || got[0] != "new" || got[1] != "old" {
		t.Errorf("ReadSecretsFile = %q, %v", got, err)
	}
	if err := os.Chmod(sec, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadSecretsFile(sec); err == nil {
		t.Error("world-readable secret file accepted")
	}
	users, err := ReadUsers(strings.NewReader("alice:pa:ss\n# c\nbob:x\n"))
	if err != nil || users["alice"] != "pa:ss" || users["bob"] != "x" {
		t.Errorf("ReadUsers = %v, %v", users, err)
	}
	for _, bad := range []string{"nopassword\n", "123:abc\n", ":x\n"} {
		if _, err := ReadUsers(strings.NewReader(bad)); err == nil {
			t.Errorf("ReadUsers(%q) accepted", bad)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"no listen", Config{Secrets: []string{"s"}}},
		{"no credentials", Config{Listen: []Listen{{Addr: "127.0.0.1:0"}}}},
		{"hostname", Config{Listen: []Listen{{Addr: "localhost:3478"}}, Secrets: []string{"s"}}},
		{"tls without cert", Config{TLSListen: []Listen{{Addr: "127.0.0.1:0"}}, Secrets: []string{"s"}}},
		{"ports", Config{Listen: []Listen{{Addr: "127.0.0.1:0"}}, Secrets: []string{"s"}, PortMin: 5000, PortMax: 4000}},
	} {
		_, err := New(tc.cfg)
		if err == nil || !strings.Contains(err.Error(), "invalid config") {
			t.Errorf("%s: New = %v, want ErrInvalidConfig", tc.name, err)
		}
	}
}

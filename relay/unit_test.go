package relay

import (
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/pion/stun/v4"
)

// TestRESTCredentialsVector checks against values computed independently (Python hmac/hashlib/base64), the
// same computation as coturn's use-auth-secret.
func TestRESTCredentialsVector(t *testing.T) {
	now := time.Unix(1700000000-3600, 0)
	u, p := RESTCredentials("north", "alice", time.Hour, now)
	if u != "1700000000:alice" || p != "Cd/49soE35ICqcJF/bCTn8Z4OyE=" {
		t.Errorf("got %q %q", u, p)
	}
	u, p = RESTCredentials("north", "", time.Hour, now)
	if u != "1700000000" || p != "CWyHi3zCeWqXBir9thl4m+iZPRY=" {
		t.Errorf("without user: got %q %q", u, p)
	}
	if err := CheckRESTCredentials("north", "1700000000:alice", "Cd/49soE35ICqcJF/bCTn8Z4OyE=", now); err != nil {
		t.Error(err)
	}
	if err := CheckRESTCredentials("north", "1700000000:alice", "Cd/49soE35ICqcJF/bCTn8Z4OyE=",
		time.Unix(1700000001, 0)); !errors.Is(err, ErrCredentialsExpired) {
		t.Errorf("expired: %v", err)
	}
	if err := CheckRESTCredentials("south", "1700000000:alice", "Cd/49soE35ICqcJF/bCTn8Z4OyE=", now); !errors.Is(err, ErrBadCredentials) {
		t.Errorf("wrong secret: %v", err)
	}
	if err := CheckRESTCredentials("north", "alice", "x", now); !errors.Is(err, ErrBadUsername) {
		t.Errorf("bad username: %v", err)
	}
}

func TestPeerPolicy(t *testing.T) {
	def := &PeerPolicy{}
	p := &PeerPolicy{
		Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32"), netip.MustParsePrefix("10.1.0.0/16")},
		Deny:  []netip.Prefix{netip.MustParsePrefix("10.1.2.0/24"), netip.MustParsePrefix("8.8.8.8/32")},
	}
	for _, tc := range []struct {
		ip       string
		def, got bool
	}{
		{"8.8.4.4", true, true},
		{"8.8.8.8", true, false},
		{"2001:4860:4860::8888", true, true},
		{"127.0.0.1", false, true},
		{"127.0.0.2", false, false},
		{"::1", false, false},
		{"::ffff:127.0.0.1", false, true},
		{"::ffff:10.0.0.1", false, false},
		{"10.0.0.1", false, false},
		{"10.1.0.1", false, true},
		{"10.1.2.3", false, false},
		{"172.16.0.1", false, false},
		{"192.168.1.1", false, false},
		{"100.64.0.1", false, false},
		{"169.254.169.254", false, false},
		{"224.0.0.251", false, false},
		{"255.255.255.255", false, false},
		{"0.0.0.0", false, false},
		{"fd00:ec2::254", false, false},
		{"fe80::1", false, false},
		{"ff02::1", false, false},
		{"::", false, false},
	} {
		ip := netip.MustParseAddr(tc.ip)
		if got := def.Allowed(ip); got != tc.def {
			t.Errorf("default Allowed(%s) = %v, want %v", tc.ip, got, tc.def)
		}
		if got := p.Allowed(ip); got != tc.got {
			t.Errorf("Allowed(%s) = %v, want %v", tc.ip, got, tc.got)
		}
	}
	if def.AllowedIP(nil) {
		t.Error("nil IP allowed")
	}
	if !(&PeerPolicy{DisableDefaults: true}).Allowed(netip.MustParseAddr("10.0.0.1")) {
		t.Error("DisableDefaults still denies 10.0.0.1")
	}
}

func TestParsePrefixAndListen(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1":           "127.0.0.1/32",
		"10.0.0.7/8":          "10.0.0.0/8",
		"::1":                 "::1/128",
		"::ffff:10.0.0.0/104": "10.0.0.0/8",
	} {
		got, err := ParsePrefix(in)
		if err != nil || got.String() != want {
			t.Errorf("ParsePrefix(%q) = %v, %v; want %s", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "10.0.0.0/33", "example.org", "::ffff:0.0.0.0/8"} {
		if p, err := ParsePrefix(bad); err == nil && bad != "::ffff:0.0.0.0/8" {
			t.Errorf("ParsePrefix(%q) = %v, want error", bad, p)
		}
	}
	l, err := ParseListen("10.0.0.5:3478=203.0.113.7")
	if err != nil || l.Addr != "10.0.0.5:3478" || l.ExternalIP.String() != "203.0.113.7" {
		t.Errorf("ParseListen = %+v, %v", l, err)
	}
	if _, err := ParseListen("10.0.0.5"); err == nil {
		t.Error("ParseListen without port accepted")
	}
}

func TestPeekSTUN(t *testing.T) {
	bind := stun.MustBuild(stun.TransactionID, stun.BindingRequest, stun.Fingerprint)
	if in := peekSTUN(bind.Raw); !in.isSTUN || !in.request || in.integrity {
		t.Errorf("binding request: %+v", in)
	}
	auth := stun.MustBuild(stun.TransactionID, stun.NewType(stun.MethodAllocate, stun.ClassRequest),
		stun.NewUsername("u"), stun.NewRealm("r"), stun.NewNonce("n"), stun.NewLongTermIntegrity("u", "r", "p"))
	if in := peekSTUN(auth.Raw); !in.isSTUN || !in.request || !in.integrity {
		t.Errorf("authenticated allocate: %+v", in)
	}
	ind := stun.MustBuild(stun.TransactionID, stun.NewType(stun.MethodSend, stun.ClassIndication))
	if in := peekSTUN(ind.Raw); !in.isSTUN || in.request {
		t.Errorf("send indication: %+v", in)
	}
	if in := peekSTUN([]byte{0x40, 0x00, 0x00, 0x04, 1, 2, 3, 4}); in.isSTUN {
		t.Errorf("ChannelData taken for STUN")
	}
}

// TestQuotaAccounting checks the counts a relayed socket's Close gives back, including a double Close.
func TestQuotaAccounting(t *testing.T) {
	q := quota{maxTotal: 2, maxUser: 1}
	if r := q.take("a"); r != "" {
		t.Fatal(r)
	}
	if r := q.take("a"); r != "quota_user" {
		t.Errorf("second for a: %q", r)
	}
	if r := q.take("b"); r != "" {
		t.Fatal(r)
	}
	if r := q.take("c"); r != "quota_total" {
		t.Errorf("third: %q", r)
	}
	select {
	case <-q.idleCh():
		t.Error("idle with allocations")
	default:
	}
	q.release("a")
	q.release("b")
	select {
	case <-q.idleCh():
	default:
		t.Error("not idle after release")
	}
}

func FuzzPeekSTUN(f *testing.F) {
	f.Add(stun.MustBuild(stun.TransactionID, stun.BindingRequest, stun.Fingerprint).Raw)
	f.Add(stun.MustBuild(stun.TransactionID, stun.NewType(stun.MethodAllocate, stun.ClassRequest),
		stun.NewUsername("1700000000:a"), stun.NewRealm("r"), stun.NewNonce("n"),
		stun.NewLongTermIntegrity("u", "r", "p")).Raw)
	f.Add([]byte{0x40, 0x00, 0x00, 0x04, 1, 2, 3, 4})
	f.Fuzz(func(t *testing.T, b []byte) {
		in := peekSTUN(b)
		if in.isSTUN && len(b) < stunHeaderSize {
			t.Fatal("short packet classified as STUN")
		}
		// A message pion takes for STUN (not ChannelData: top bits 00, RFC 8656 §12) and finds
		// MESSAGE-INTEGRITY in must be seen as authenticated, or the rate limiter would drop authenticated
		// traffic.
		m := &stun.Message{Raw: append([]byte(nil), b...)}
		if len(b) > 0 && b[0]&0xC0 == 0 && m.Decode() == nil && int(m.Length)+stunHeaderSize == len(b) && m.Contains(stun.AttrMessageIntegrity) && !in.integrity {
			t.Fatalf("integrity missed in %x", b)
		}
	})
}

func FuzzReadUsers(f *testing.F) {
	f.Add("alice:secret\n# comment\nbob:x:y\n")
	f.Add("123:abc\n")
	f.Fuzz(func(t *testing.T, s string) {
		users, err := ReadUsers(strings.NewReader(s))
		if err != nil {
			return
		}
		for u, p := range users {
			if u == "" || p == "" || strings.ContainsAny(u, "\n") {
				t.Fatalf("bad entry %q:%q", u, p)
			}
		}
	})
}

// FuzzFramedConn feeds arbitrary client streams through the TCP framer: it must never panic, never hand
// pion more than maxStreamFrame bytes, and always deliver whole frames.
func FuzzFramedConn(f *testing.F) {
	f.Add(stun.MustBuild(stun.TransactionID, stun.BindingRequest, stun.Fingerprint).Raw)
	f.Add([]byte{0x40, 0x00, 0x00, 0x05, 1, 2, 3, 4, 5, 0, 0, 0})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		s := &Server{cfg: Config{UnauthRate: -1, Now: time.Now}}
		s.m = newMetrics(s)
		a, c := net.Pipe()
		go func() {
			_, _ = a.Write(b)
			a.Close()
		}()
		fc := newFramedConn(c, s)
		fc.s.conns.max = 1
		buf := make([]byte, 1600)
		for {
			n, err := fc.Read(buf)
			if err != nil {
				break
			}
			if n < 4 || n > maxStreamFrame {
				t.Fatalf("frame of %d bytes", n)
			}
		}
		c.Close()
	})
}

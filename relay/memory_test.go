package relay

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/stun/v4"
)

// rawAllocate makes one UDP allocation with the long-term mechanism over conn, without pion's client (which
// costs goroutines and timers per allocation), and returns the relayed address.
func rawAllocate(conn net.PacketConn, server net.Addr, username, password string, lifetime time.Duration) error {
	transport := stun.RawAttribute{Type: stun.AttrRequestedTransport, Value: []byte{17, 0, 0, 0}}
	life := make([]byte, 4)
	secs := uint32(lifetime / time.Second)
	life[0], life[1], life[2], life[3] = byte(secs>>24), byte(secs>>16), byte(secs>>8), byte(secs)
	lifeAttr := stun.RawAttribute{Type: stun.AttrLifetime, Value: life}
	roundTrip := func(m *stun.Message) (*stun.Message, error) {
		if _, err := conn.WriteTo(m.Raw, server); err != nil {
			return nil, err
		}
		buf := make([]byte, 1500)
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		for {
			n, _, err := conn.ReadFrom(buf)
			if err != nil {
				return nil, err
			}
			res := &stun.Message{Raw: append([]byte(nil), buf[:n]...)}
			if err := res.Decode(); err != nil {
				return nil, err
			}
			if res.TransactionID == m.TransactionID {
				return res, nil
			}
		}
	}
	m1 := stun.MustBuild(stun.TransactionID, stun.NewType(stun.MethodAllocate, stun.ClassRequest), transport, stun.Fingerprint)
	res, err := roundTrip(m1)
	if err != nil {
		return err
	}
	var nonce stun.Nonce
	var realm stun.Realm
	if err := nonce.GetFrom(res); err != nil {
		return err
	}
	if err := realm.GetFrom(res); err != nil {
		return err
	}
	m2 := stun.MustBuild(stun.TransactionID, stun.NewType(stun.MethodAllocate, stun.ClassRequest), transport, lifeAttr,
		stun.NewUsername(username), realm, nonce, stun.NewLongTermIntegrity(username, realm.String(), password), stun.Fingerprint)
	if res, err = roundTrip(m2); err != nil {
		return err
	}
	if res.Type.Class != stun.ClassSuccessResponse {
		var code stun.ErrorCodeAttribute
		_ = code.GetFrom(res)
		return fmt.Errorf("allocate: %s %d", res.Type, code.Code)
	}
	return nil
}

func procStatus(field string) string {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return "?"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, field+":") {
			return strings.TrimSpace(strings.TrimPrefix(line, field+":"))
		}
	}
	return "?"
}

func openFDs() int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1
	}
	return len(ents)
}

// TestTenThousandAllocations holds 10,000 allocations, reports the memory they take, lets them expire and
// checks that their goroutines and sockets are gone. Five listeners (127.0.0.1-5, all loopback) let 2,000
// client sockets make 10,000 distinct 5-tuples within this machine's 20,000 file descriptors.
func TestTenThousandAllocations(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	if runtime.GOOS != "linux" {
		t.Skip("needs 127.0.0.2-5 on loopback and /proc")
	}
	const listeners, clients = 5, 2000
	const total = listeners * clients
	var ls []Listen
	for i := 1; i <= listeners; i++ {
		ls = append(ls, Listen{Addr: fmt.Sprintf("127.0.0.%d:0", i)})
	}
	// Every allocation gets its own max-age timer when it is made, so the age must
	// outlast making all of them (about 6 s under -race on a busy 2-core machine).
	const age = 20 * time.Second
	var errorLogs atomic.Int64
	s := startServer(t, func(c *Config) {
		c.Logger = slog.New(errorCount{tlog(t).Handler(), &errorLogs})
		c.Listen = ls
		c.SocketsPerUDPListen = 1
		c.MaxAllocations = total
		c.MaxAllocationsPerUser = -1
		c.UnauthRate = -1
		c.MaxAllocationAge = age
		c.PortMin, c.PortMax = 20000, 60000
	})
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	rssBefore, fdsBefore, gBefore := procStatus("VmRSS"), openFDs(), runtime.NumGoroutine()

	u, p := RESTCredentials(testSecret, "load", time.Hour, time.Now())
	start := time.Now()
	var conns []net.PacketConn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range clients {
		c, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	// Allocate from all client sockets in parallel, a few workers at a time.
	errs := make(chan error, 8)
	work := make(chan net.PacketConn)
	for range 8 {
		go func() {
			var first error
			for c := range work {
				for _, a := range s.UDPAddrs() {
					if err := rawAllocate(c, a, u, p, time.Hour); err != nil && first == nil {
						first = err
					}
				}
			}
			errs <- first
		}()
	}
	for _, c := range conns {
		work <- c
	}
	close(work)
	for range 8 {
		if err := <-errs; err != nil {
			t.Fatalf("allocate: %v", err)
		}
	}
	took := time.Since(start)
	if took > age {
		t.Fatalf("allocating took %v, longer than the allocations' age %v", took, age)
	}
	if got := s.Allocations(); got != total {
		t.Fatalf("%d allocations held, want %d", got, total)
	}
	runtime.GC()
	var held runtime.MemStats
	runtime.ReadMemStats(&held)
	t.Logf("%d allocations in %v: RSS %s -> %s, Go heap in use +%.1f MiB (%.1f KiB per allocation), goroutines %d -> %d, fds %d -> %d",
		total, took.Round(time.Millisecond), rssBefore, procStatus("VmRSS"),
		float64(held.HeapInuse-before.HeapInuse)/(1<<20), float64(held.HeapInuse-before.HeapInuse)/1024/total,
		gBefore, runtime.NumGoroutine(), fdsBefore, openFDs())
	if got := metric(t, s, "xjingle_relay_allocations_active"); got != total {
		t.Errorf("allocations_active = %v", got)
	}

	// They end at their maximum age; then their sockets and goroutines must be gone.
	deadline := time.Now().Add(age + 10*time.Second)
	for s.Allocations() != 0 || runtime.NumGoroutine() > gBefore+2 {
		if time.Now().After(deadline) {
			t.Fatalf("after expiry: %d allocations, %d goroutines (had %d)", s.Allocations(), runtime.NumGoroutine(), gBefore)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, c := range conns {
		c.Close()
	}
	conns = nil
	if fds := openFDs(); fds > fdsBefore+2 {
		t.Errorf("%d fds open after expiry, had %d: relayed sockets leaked", fds, fdsBefore)
	}
	t.Logf("after expiry: RSS %s, goroutines %d, fds %d", procStatus("VmRSS"), runtime.NumGoroutine(), openFDs())
	if n := errorLogs.Load(); n > 0 {
		t.Errorf("%d error records logged while allocations expired (want none: expiry is routine)", n)
	}
	if err := s.Close(); err != nil && !errors.Is(err, ErrServerClosed) {
		t.Error(err)
	}
}

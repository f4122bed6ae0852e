package relay

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/stun/v4"
	"github.com/pion/turn/v5"
	dto "github.com/prometheus/client_model/go"
)

const testSecret = "north"

// tlog is a slog.Logger writing to t.Log.
func tlog(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: testLogLevel}))
}

// errorCount is a slog.Handler that counts records at level Error and
// above and passes every record on.
type errorCount struct {
	slog.Handler
	n *atomic.Int64
}

func (h errorCount) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelError {
		h.n.Add(1)
	}
	return h.Handler.Handle(ctx, r)
}

func (h errorCount) WithAttrs(as []slog.Attr) slog.Handler {
	return errorCount{h.Handler.WithAttrs(as), h.n}
}

func (h errorCount) WithGroup(name string) slog.Handler {
	return errorCount{h.Handler.WithGroup(name), h.n}
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// startServer starts a relay on 127.0.0.1 that may relay to 127.0.0.1 only, and stops it at cleanup.
func startServer(t testing.TB, mutate func(*Config)) *Server {
	t.Helper()
	cfg := Config{
		Listen:              []Listen{{Addr: "127.0.0.1:0"}},
		Secrets:             []string{testSecret},
		Peers:               PeerPolicy{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}},
		SocketsPerUDPListen: 2,
		Logger:              tlog(t),
	}
	if mutate != nil {
		mutate(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(context.Background()) }()
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if err := <-served; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
	})
	// Serve starts pion synchronously before blocking; wait until it reports healthy.
	deadline := time.Now().Add(5 * time.Second)
	for !s.Healthy() {
		if time.Now().After(deadline) {
			t.Fatal("server did not start")
		}
		time.Sleep(time.Millisecond)
	}
	return s
}

// newClient returns a started pion TURN client on a loopback UDP socket.
func newClient(t testing.TB, s *Server, username, password string) *turn.Client {
	t.Helper()
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := s.UDPAddrs()[0].String()
	c, err := turn.NewClient(&turn.ClientConfig{
		STUNServerAddr: addr,
		TURNServerAddr: addr,
		Conn:           conn,
		Username:       username,
		Password:       password,
		Realm:          DefaultRealm,
		RTO:            100 * time.Millisecond,
		LoggerFactory:  pionLoggerFactory{slog.New(slog.DiscardHandler)},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Listen(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Close()
		_ = conn.Close()
	})
	return c
}

func restClient(t testing.TB, s *Server, user string) *turn.Client {
	u, p := RESTCredentials(testSecret, user, time.Hour, time.Now())
	return newClient(t, s, u, p)
}

// turnCode returns the STUN error code in err, or 0.
func turnCode(err error) int {
	var te *stun.TurnError
	if errors.As(err, &te) {
		return int(te.ErrorCodeAttr.Code)
	}
	return 0
}

// metric returns the value of the metric name with the given label pairs, 0 if absent.
func metric(t testing.TB, s *Server, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := s.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				if labelValue(m, labels[i]) != labels[i+1] {
					continue next
				}
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			}
		}
	}
	return 0
}

func labelValue(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

var testLogLevel = slog.LevelInfo

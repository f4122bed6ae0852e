package relay

import (
	"net/http"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

const metricPrefix = "xjingle_relay_"

// Auth failure reasons (label "reason" of xjingle_relay_auth_failures_total).
const (
	reasonExpired      = "expired"
	reasonBadIntegrity = "bad_integrity"
	reasonUnknownUser  = "unknown_user"
	reasonBadRealm     = "bad_realm"
)

type metrics struct {
	reg *prometheus.Registry

	allocTotal    prometheus.Counter
	allocRejected *prometheus.CounterVec
	authFailures  *prometheus.CounterVec
	permActive    prometheus.Gauge
	permTotal     prometheus.Counter
	chanActive    prometheus.Gauge
	chanTotal     prometheus.Counter
	deniedPeer    prometheus.Counter
	unauthLimited prometheus.Counter
	dropped       *prometheus.CounterVec
	tcpConns      prometheus.Gauge
	tcpRejected   prometheus.Counter
	tcpPeerConns  prometheus.Counter
}

func newMetrics(s *Server) *metrics {
	reg := prometheus.NewRegistry()
	f := func(c prometheus.Collector) { reg.MustRegister(c) }
	m := &metrics{reg: reg}
	m.allocTotal = prometheus.NewCounter(prometheus.CounterOpts{Name: metricPrefix + "allocations_total",
		Help: "Allocations made since start."})
	m.allocRejected = prometheus.NewCounterVec(prometheus.CounterOpts{Name: metricPrefix + "allocation_rejections_total",
		Help: "Allocate requests refused with 486, by reason (quota_user, quota_total, draining)."}, []string{"reason"})
	m.authFailures = prometheus.NewCounterVec(prometheus.CounterOpts{Name: metricPrefix + "auth_failures_total",
		Help: "Requests refused with 401, by reason (expired, bad_integrity, unknown_user, bad_realm)."}, []string{"reason"})
	m.permActive = prometheus.NewGauge(prometheus.GaugeOpts{Name: metricPrefix + "permissions_active",
		Help: "Permissions installed now."})
	m.permTotal = prometheus.NewCounter(prometheus.CounterOpts{Name: metricPrefix + "permissions_total",
		Help: "Permissions installed since start."})
	m.chanActive = prometheus.NewGauge(prometheus.GaugeOpts{Name: metricPrefix + "channels_active",
		Help: "Channel bindings now."})
	m.chanTotal = prometheus.NewCounter(prometheus.CounterOpts{Name: metricPrefix + "channels_total",
		Help: "Channel bindings made since start."})
	m.deniedPeer = prometheus.NewCounter(prometheus.CounterOpts{Name: metricPrefix + "denied_peer_total",
		Help: "CreatePermission/ChannelBind/Connect refused with 403 because the peer address is denied."})
	m.unauthLimited = prometheus.NewCounter(prometheus.CounterOpts{Name: metricPrefix + "unauthenticated_rate_limited_total",
		Help: "Unauthenticated requests dropped by the per-source rate limit."})
	m.dropped = prometheus.NewCounterVec(prometheus.CounterOpts{Name: metricPrefix + "dropped_packets_total",
		Help: "Relayed packets dropped, by reason (bandwidth; queue: pion did not keep up with the data plane) and direction."}, []string{"reason", "direction"})
	m.tcpConns = prometheus.NewGauge(prometheus.GaugeOpts{Name: metricPrefix + "tcp_connections_active",
		Help: "Client TCP and TLS connections open now."})
	m.tcpRejected = prometheus.NewCounter(prometheus.CounterOpts{Name: metricPrefix + "tcp_connections_rejected_total",
		Help: "Client TCP/TLS connections closed at accept (limit reached or draining)."})
	m.tcpPeerConns = prometheus.NewCounter(prometheus.CounterOpts{Name: metricPrefix + "tcp_peer_connections_total",
		Help: "RFC 6062 TCP peer data connections, accepted on relayed addresses or dialled for Connect."})
	for _, c := range []prometheus.Collector{m.allocTotal, m.allocRejected, m.authFailures, m.permActive, m.permTotal,
		m.chanActive, m.chanTotal, m.deniedPeer, m.unauthLimited, m.dropped, m.tcpConns, m.tcpRejected,
		m.tcpPeerConns} {
		f(c)
	}
	f(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: metricPrefix + "allocations_active",
		Help: "Allocations held now."}, func() float64 { return float64(s.quota.active()) }))
	f(&trafficCollector{t: &s.traffic})
	f(collectors.NewGoCollector())
	f(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Directions of relayed traffic.
const (
	dirClientToPeer = 0
	dirPeerToClient = 1
)

var dirNames = [2]string{"client_to_peer", "peer_to_client"}

// counters are one allocation's relayed traffic, written by a data-plane loop and by pion's goroutines.
type counters struct {
	packets [2]atomic.Uint64
	bytes   [2]atomic.Uint64
}

// traffic sums relayed traffic over live allocations (read at scrape time, so the per-packet path touches
// only its own allocation's counters) and the allocations that ended.
type traffic struct {
	// tcp counts the bytes of RFC 6062 peer data connections, by direction (there are no packets to count).
	tcp [2]atomic.Uint64

	mu     sync.Mutex
	live   map[*counters]struct{}
	closed [2][2]uint64 // [packets|bytes][direction]
}

func (t *traffic) add(c *counters) {
	t.mu.Lock()
	if t.live == nil {
		t.live = make(map[*counters]struct{})
	}
	t.live[c] = struct{}{}
	t.mu.Unlock()
}

func (t *traffic) remove(c *counters) {
	t.mu.Lock()
	delete(t.live, c)
	for d := range 2 {
		t.closed[0][d] += c.packets[d].Load()
		t.closed[1][d] += c.bytes[d].Load()
	}
	t.mu.Unlock()
}

func (t *traffic) totals() (packets, bytes [2]uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	packets, bytes = t.closed[0], t.closed[1]
	for c := range t.live {
		for d := range 2 {
			packets[d] += c.packets[d].Load()
			bytes[d] += c.bytes[d].Load()
		}
	}
	return packets, bytes
}

var (
	descPackets = prometheus.NewDesc(metricPrefix+"relayed_packets_total",
		"Packets relayed, by direction.", []string{"direction"}, nil)
	descBytes = prometheus.NewDesc(metricPrefix+"relayed_bytes_total",
		"Payload bytes relayed, by direction.", []string{"direction"}, nil)
	descTCPBytes = prometheus.NewDesc(metricPrefix+"tcp_relayed_bytes_total",
		"Bytes relayed over RFC 6062 TCP peer data connections, by direction.", []string{"direction"}, nil)
)

type trafficCollector struct{ t *traffic }

func (c *trafficCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descPackets
	ch <- descBytes
	ch <- descTCPBytes
}

func (c *trafficCollector) Collect(ch chan<- prometheus.Metric) {
	p, b := c.t.totals()
	for d := range 2 {
		ch <- prometheus.MustNewConstMetric(descPackets, prometheus.CounterValue, float64(p[d]), dirNames[d])
		ch <- prometheus.MustNewConstMetric(descBytes, prometheus.CounterValue, float64(b[d]), dirNames[d])
		ch <- prometheus.MustNewConstMetric(descTCPBytes, prometheus.CounterValue, float64(c.t.tcp[d].Load()), dirNames[d])
	}
}

// Registry returns the server's own Prometheus registry (never the global one), holding the relay's metrics
// and the Go and process collectors.
func (s *Server) Registry() *prometheus.Registry { return s.m.reg }

// Handler serves /metrics (Prometheus text format) and /healthz (200 "ok" while serving, 503 while draining or
// closed). Serve it on its own listener, apart from the TURN ports.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.m.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		if !s.Healthy() {
			http.Error(w, "draining", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	return mux
}

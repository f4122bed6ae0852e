package proxy65

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

const metricPrefix = "xjingle_proxy65_"

type metrics struct {
	connsActive prometheus.Gauge
	connsTotal  prometheus.Counter
	rejected    *prometheus.CounterVec
	spliced     prometheus.Gauge
	bytes       prometheus.Counter
	activations *prometheus.CounterVec
	timeouts    prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		connsActive: prometheus.NewGauge(prometheus.GaugeOpts{Name: metricPrefix + "connections_active",
			Help: "SOCKS5 connections open now (in handshake, waiting or spliced)."}),
		connsTotal: prometheus.NewCounter(prometheus.CounterOpts{Name: metricPrefix + "connections_total",
			Help: "SOCKS5 connections accepted since start."}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{Name: metricPrefix + "connections_rejected_total",
			Help: "SOCKS5 connections closed without joining a bytestream, by reason (limit, handshake, expired)."}, []string{"reason"}),
		spliced: prometheus.NewGauge(prometheus.GaugeOpts{Name: metricPrefix + "bytestreams_active",
			Help: "Activated bytestreams being spliced now."}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{Name: metricPrefix + "bytes_total",
			Help: "Bytes spliced, both directions (updated every 4 MiB and when a direction ends)."}),
		activations: prometheus.NewCounterVec(prometheus.CounterOpts{Name: metricPrefix + "activations_total",
			Help: "Activation requests, by result (ok, not_found, one_sided, already_active, closed)."}, []string{"result"}),
		timeouts: prometheus.NewCounter(prometheus.CounterOpts{Name: metricPrefix + "unmatched_timeouts_total",
			Help: "Bytestreams dropped because they were not activated in time."}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.connsActive, m.connsTotal, m.rejected, m.spliced, m.bytes, m.activations, m.timeouts} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("proxy65: register metrics: %w", err)
		}
	}
	return m, nil
}

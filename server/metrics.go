package server

import (
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/keyward/keyward/hsm"
	"github.com/keyward/keyward/node"
	"github.com/keyward/keyward/tokens"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics are the server's Prometheus metrics. Make them before the node
// is opened, so that the device reports into them (ObserveDevice as
// hsm.Config.Observe).
type Metrics struct {
	reg          *prometheus.Registry
	requests     *prometheus.CounterVec
	latency      *prometheus.HistogramVec
	deviceOps    *prometheus.HistogramVec
	deviceErrors *prometheus.CounterVec
	outages      prometheus.Counter
}

// NewMetrics registers keyward's metrics (and Go's and the process's) in a
// new registry.
func NewMetrics() *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{reg: reg,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "keyward_http_requests_total",
			Help: "HTTP requests by route pattern and status code."}, []string{"route", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "keyward_http_request_duration_seconds",
			Help: "HTTP request latency by route pattern.", Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}},
			[]string{"route"}),
		deviceOps: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "keyward_device_operation_duration_seconds",
			Help: "PKCS#11 device operation latency by operation.", Buckets: []float64{.00001, .000025, .00005, .0001, .00025, .0005, .001, .0025, .01, .1, 1}},
			[]string{"op"}),
		deviceErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "keyward_device_operation_errors_total",
			Help: "PKCS#11 device operations that failed, by operation."}, []string{"op"}),
		outages: prometheus.NewCounter(prometheus.CounterOpts{Name: "keyward_device_outages_total",
			Help: "Times the device stopped answering."}),
	}
	reg.MustRegister(m.requests, m.latency, m.deviceOps, m.deviceErrors, m.outages,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// ObserveDevice is an hsm.Config.Observe: it counts device operations,
// their latency and their failures.
func (m *Metrics) ObserveDevice(op string, d time.Duration, err error) {
	m.deviceOps.WithLabelValues(op).Observe(d.Seconds())
	if err != nil {
		m.deviceErrors.WithLabelValues(op).Inc()
	}
}

// DeviceHealth is an hsm.Config.OnHealth: it counts the device's outages.
func (m *Metrics) DeviceHealth(h hsm.Health) {
	if !h.Up {
		m.outages.Inc()
	}
}

// metrics are the Metrics of one server, with the ones that read its node.
type metrics struct {
	*Metrics
	authFailures       prometheus.Counter
	tokensIssued       *prometheus.CounterVec
	tokensRefreshed    prometheus.Counter
	tokensRevoked      prometheus.Counter
	tlsHandshakeErrors prometheus.Counter
	issued             map[string]prometheus.Counter // tokensIssued by kind
	routes             map[string]routeMetrics
	connections        atomic.Pointer[func() int] // open connections, once Run listens
}

// routeMetrics are a route's children of the request metrics, looked up
// once: WithLabelValues hashes its labels and takes a lock on every call.
type routeMetrics struct {
	ok      prometheus.Counter // requests answered 200
	latency prometheus.Observer
}

// addRoute looks up route's metrics. Every route is added before the
// server serves, so observe reads the map without a lock.
func (m *metrics) addRoute(route string) {
	m.routes[route] = routeMetrics{ok: m.requests.WithLabelValues(route, "200"), latency: m.latency.WithLabelValues(route)}
}

func newMetrics(m *Metrics, n *node.Node) *metrics {
	sm := &metrics{Metrics: m,
		authFailures: prometheus.NewCounter(prometheus.CounterOpts{Name: "keyward_auth_failures_total",
			Help: "Requests refused for missing or bad credentials (401)."}),
		tokensIssued: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "keyward_tokens_issued_total",
			Help: "Tokens issued by this server, by kind."}, []string{"kind"}),
		tokensRefreshed: prometheus.NewCounter(prometheus.CounterOpts{Name: "keyward_tokens_refreshed_total",
			Help: "Refresh grants served by this server."}),
		tokensRevoked: prometheus.NewCounter(prometheus.CounterOpts{Name: "keyward_tokens_revoked_total",
			Help: "Revocations made through this server."}),
		tlsHandshakeErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "keyward_tls_handshake_errors_total",
			Help: "TLS handshakes that failed (logged at most once a minute)."}),
	}
	m.reg.MustRegister(sm.authFailures, sm.tokensIssued, sm.tokensRefreshed, sm.tokensRevoked, sm.tlsHandshakeErrors,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "keyward_device_sessions_in_use", Help: "PKCS#11 sessions taken from the pool now."},
			func() float64 { in, _ := n.SessionsInUse(); return float64(in) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "keyward_device_sessions_max", Help: "The session pool's bound."},
			func() float64 { _, max := n.SessionsInUse(); return float64(max) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "keyward_token_verify_cache_hits_total", Help: "Token verifications answered from the verified cache."},
			func() float64 { h, _ := n.Tokens().CacheStats(); return float64(h) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "keyward_token_verify_cache_misses_total", Help: "Token verifications that went to the device."},
			func() float64 { _, m := n.Tokens().CacheStats(); return float64(m) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "keyward_device_up", Help: "1 while the device answers, 0 while it does not."},
			func() float64 {
				if n.DeviceHealth().Up {
					return 1
				}
				return 0
			}),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "keyward_device_reconnects_total", Help: "Times the PKCS#11 module was finalized and initialized again."},
			func() float64 { return float64(n.DeviceHealth().Reconnects) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "keyward_http_connections_open", Help: "Connections open now (bounded below the descriptor limit)."},
			func() float64 {
				if f := sm.connections.Load(); f != nil {
					return float64((*f)())
				}
				return 0
			}),
	)
	sm.issued, sm.routes = map[string]prometheus.Counter{}, map[string]routeMetrics{}
	for _, k := range []string{tokens.KindAccess, tokens.KindPairing, tokens.KindMaster} {
		sm.issued[k] = sm.tokensIssued.WithLabelValues(k)
	}
	sm.addRoute("unmatched")
	return sm
}

// observe counts a served request.
func (m *metrics) observe(route string, status int, d time.Duration) {
	rm, ok := m.routes[route]
	if !ok {
		m.requests.WithLabelValues(route, strconv.Itoa(status)).Inc()
		m.latency.WithLabelValues(route).Observe(d.Seconds())
		return
	}
	if status == http.StatusOK {
		rm.ok.Inc()
	} else {
		m.requests.WithLabelValues(route, strconv.Itoa(status)).Inc()
	}
	rm.latency.Observe(d.Seconds())
}

func (s *Server) metricsHandler() handlerFunc {
	h := promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{})
	return func(w http.ResponseWriter, r *http.Request) error { h.ServeHTTP(w, r); return nil }
}

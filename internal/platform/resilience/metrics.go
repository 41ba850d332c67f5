package resilience

import (
	"time"

	"github.com/failsafe-go/failsafe-go/circuitbreaker"
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the dependency metrics of one registry, shared by every
// Dependency built with them. A nil *Metrics records nothing.
type Metrics struct {
	calls    *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	inflight *prometheus.GaugeVec
	state    *prometheus.GaugeVec
}

// NewMetrics registers the dependency metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "scalelab_dependency_calls_total",
			Help: "Calls to downstream dependencies by outcome: ok, declined (a definite answer), error, timeout, rejected (breaker open or bulkhead full).",
		}, []string{"dependency", "outcome"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "scalelab_dependency_call_seconds",
			Help:    "Time of a call to a dependency, retries and waits included.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}, []string{"dependency"}),
		inflight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "scalelab_dependency_in_flight",
			Help: "Calls to a dependency in progress.",
		}, []string{"dependency"}),
		state: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "scalelab_dependency_breaker_state",
			Help: "Circuit breaker state: 0 closed, 1 half-open, 2 open.",
		}, []string{"dependency"}),
	}
	reg.MustRegister(m.calls, m.latency, m.inflight, m.state)
	return m
}

func (m *Metrics) observe(dep, outcome string, d time.Duration) {
	if m == nil {
		return
	}
	m.calls.WithLabelValues(dep, outcome).Inc()
	m.latency.WithLabelValues(dep).Observe(d.Seconds())
}

func (m *Metrics) inFlight(dep string, delta float64) {
	if m == nil {
		return
	}
	m.inflight.WithLabelValues(dep).Add(delta)
}

func (m *Metrics) breakerState(dep string, s circuitbreaker.State) {
	if m == nil {
		return
	}
	v := map[circuitbreaker.State]float64{circuitbreaker.ClosedState: 0, circuitbreaker.HalfOpenState: 1, circuitbreaker.OpenState: 2}[s]
	m.state.WithLabelValues(dep).Set(v)
}

func stateName(s circuitbreaker.State) string {
	switch s {
	case circuitbreaker.OpenState:
		return "open"
	case circuitbreaker.HalfOpenState:
		return "half-open"
	default:
		return "closed"
	}
}

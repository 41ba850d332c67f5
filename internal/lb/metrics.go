package lb

import (
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the balancer's Prometheus series.
type metrics struct {
	responses *prometheus.CounterVec
	retries   prometheus.Counter
	counters  sync.Map // backend + class → prometheus.Counter: no label hashing per request
}

func newMetrics(reg prometheus.Registerer, pool *Pool) *metrics {
	m := &metrics{
		responses: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "scalelab_lb_backend_responses_total",
			Help: "Answers from each backend by status class (1xx…5xx), and failures to get one (error)."}, []string{"backend", "class"}),
		retries: prometheus.NewCounter(prometheus.CounterOpts{Name: "scalelab_lb_retries_total",
			Help: "Requests sent again to another backend after a failure (idempotent only, within the retry budget)."}),
	}
	reg.MustRegister(m.responses, m.retries, poolCollector{pool})
	return m
}

func (m *metrics) observe(backend string, status int) {
	class := "error"
	if status >= 100 && status < 600 {
		class = strconv.Itoa(status/100) + "xx"
	}
	key := backend + " " + class
	c, ok := m.counters.Load(key)
	if !ok {
		c, _ = m.counters.LoadOrStore(key, m.responses.WithLabelValues(backend, class))
	}
	c.(prometheus.Counter).Inc()
}

// poolCollector exports each backend's state as it is at the scrape.
type poolCollector struct{ pool *Pool }

var (
	inFlightDesc = prometheus.NewDesc("scalelab_lb_backend_in_flight", "Requests in progress on each backend.", []string{"backend"}, nil)
	upDesc       = prometheus.NewDesc("scalelab_lb_backend_up", "1 when the backend may take traffic, 0 when it is down, ejected or draining.", []string{"backend", "state"}, nil)
	weightDesc   = prometheus.NewDesc("scalelab_lb_backend_weight", "Each backend's configured weight.", []string{"backend"}, nil)
	ewmaDesc     = prometheus.NewDesc("scalelab_lb_backend_latency_ewma_seconds", "Each backend's peak-EWMA latency estimate.", []string{"backend"}, nil)
)

func (c poolCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- inFlightDesc
	ch <- upDesc
	ch <- weightDesc
	ch <- ewmaDesc
}

func (c poolCollector) Collect(ch chan<- prometheus.Metric) {
	for _, b := range c.pool.List() {
		up := 0.0
		if b.State == "up" {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(inFlightDesc, prometheus.GaugeValue, float64(b.InFlight), b.ID)
		ch <- prometheus.MustNewConstMetric(upDesc, prometheus.GaugeValue, up, b.ID, b.State)
		ch <- prometheus.MustNewConstMetric(weightDesc, prometheus.GaugeValue, float64(b.Weight), b.ID)
		ch <- prometheus.MustNewConstMetric(ewmaDesc, prometheus.GaugeValue, b.LatencyMS/1000, b.ID)
	}
}

package flashsale

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	admitted    prometheus.Counter
	refused     *prometheus.CounterVec
	settled     *prometheus.CounterVec
	swept       *prometheus.CounterVec
	published   prometheus.Counter
	payment     prometheus.Histogram
	invocations *prometheus.CounterVec // by processor and start (cold, warm)
	instances   prometheus.Gauge       // function instances alive
	billedMS    prometheus.Counter     // function duration billed, ms
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		admitted: prometheus.NewCounter(prometheus.CounterOpts{Name: "scalelab_flashsale_admitted_total", Help: "Orders admitted: a unit reserved and the order recorded."}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "scalelab_flashsale_refused_total",
			Help: "Order requests refused, by reason: sold out, over the per-user limit."}, []string{"reason"}),
		settled: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "scalelab_flashsale_settled_total",
			Help: "Orders settled, by state: paid or released."}, []string{"state"}),
		swept: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "scalelab_flashsale_swept_total",
			Help: "What the sweeper settled or repaired: paid, released, abandoned, gate_released."}, []string{"outcome"}),
		published: prometheus.NewCounter(prometheus.CounterOpts{Name: "scalelab_flashsale_outbox_published_total", Help: "Order events the relay moved from the outbox to the broker."}),
		payment: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "scalelab_flashsale_payment_seconds", Help: "Payment calls.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)}),
		invocations: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "scalelab_flashsale_invocations_total",
			Help: "Orders processed, by processor (worker, function) and start (warm, cold)."}, []string{"processor", "start"}),
		instances: prometheus.NewGauge(prometheus.GaugeOpts{Name: "scalelab_flashsale_function_instances", Help: "Function instances alive (busy or idle)."}),
		billedMS:  prometheus.NewCounter(prometheus.CounterOpts{Name: "scalelab_flashsale_function_billed_ms_total", Help: "Function duration billed, in ms (each invocation rounded up to 1 ms)."}),
	}
	reg.MustRegister(m.admitted, m.refused, m.settled, m.swept, m.published, m.payment, m.invocations, m.instances, m.billedMS)
	return m
}

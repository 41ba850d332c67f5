package shop

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	placed     prometheus.Counter
	checkouts  *prometheus.CounterVec
	reconciled *prometheus.CounterVec
	shed       prometheus.Counter
	inFlight   prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		placed: prometheus.NewCounter(prometheus.CounterOpts{Name: "scalelab_shop_orders_placed_total",
			Help: "Orders placed: stock taken, order pending."}),
		checkouts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "scalelab_shop_checkouts_total",
			Help: "Checkout attempts by outcome: paid, out_of_stock, pending_unavailable, pending_timeout, pending_internal."}, []string{"outcome"}),
		reconciled: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "scalelab_shop_reconciled_total",
			Help: "Stale pending orders settled by the reconciler: paid or failed (voided, stock returned)."}, []string{"outcome"}),
		shed: prometheus.NewCounter(prometheus.CounterOpts{Name: "scalelab_shop_shed_total",
			Help: "Requests refused with 503 because MaxInFlight requests were in progress."}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{Name: "scalelab_shop_in_flight",
			Help: "Shop requests in progress."}),
	}
	reg.MustRegister(m.placed, m.checkouts, m.reconciled, m.shed, m.inFlight)
	return m
}

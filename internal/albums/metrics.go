package albums

import (
	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	reads           *prometheus.CounterVec
	responseHits    prometheus.Counter // reads.WithLabelValues("response"), resolved once
	reviews         *prometheus.CounterVec
	reviewsApplied  *prometheus.CounterVec
	reviewErrors    prometheus.Counter
	reviewIDsPruned prometheus.Counter
	orphansRemoved  prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		reads: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "scalelab_albums_reads_total",
			Help: "Album reads by source: response (the encoded answer, in process), cache, db, db_miss, error."}, []string{"source"}),
		reviews: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "scalelab_albums_reviews_total",
			Help: "Reviews received: accepted (on the broker) or refused (503)."}, []string{"outcome"}),
		reviewsApplied: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "scalelab_albums_reviews_applied_total",
			Help: "Reviews taken off the broker: applied, duplicate (already counted), malformed."}, []string{"outcome"}),
		reviewErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "scalelab_albums_review_batch_errors_total",
			Help: "Failed review batch writes (each retried)."}),
		reviewIDsPruned: prometheus.NewCounter(prometheus.CounterOpts{Name: "scalelab_albums_review_ids_pruned_total",
			Help: "Applied review IDs forgotten after the dedupe window."}),
		orphansRemoved: prometheus.NewCounter(prometheus.CounterOpts{Name: "scalelab_albums_orphan_images_removed_total",
			Help: "Images no album pointed at (a crash between image and row), deleted by the collector."}),
	}
	m.responseHits = m.reads.WithLabelValues("response")
	reg.MustRegister(m.reads, m.reviews, m.reviewsApplied, m.reviewErrors, m.reviewIDsPruned, m.orphansRemoved)
	return m
}

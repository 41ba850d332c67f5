package mapreduce

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	jobs      *prometheus.CounterVec // by state reached
	launches  *prometheus.CounterVec // by kind and reason: first, retry, backup
	attempts  *prometheus.CounterVec // by kind and outcome
	rejected  *prometheus.CounterVec // messages dropped, by topic
	worked    *prometheus.CounterVec // worker side: attempts run, by kind and outcome
	workBytes *prometheus.CounterVec // worker side: bytes read and written
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		jobs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "scalelab_mapreduce_jobs_total",
			Help: "Jobs submitted, done and failed."}, []string{"state"}),
		launches: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "scalelab_mapreduce_launches_total",
			Help: "Task attempts launched by the coordinator, by kind and reason (first, retry, backup)."}, []string{"kind", "reason"}),
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "scalelab_mapreduce_attempts_total",
			Help: "Task attempts settled at the coordinator, by kind and outcome."}, []string{"kind", "outcome"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "scalelab_mapreduce_rejected_messages_total",
			Help: "Messages dropped because they did not parse or named nothing known."}, []string{"topic"}),
		worked: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "scalelab_mapreduce_worker_attempts_total",
			Help: "Attempts a worker ran, by kind and outcome (done, failed, cancelled, skipped)."}, []string{"kind", "outcome"}),
		workBytes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "scalelab_mapreduce_worker_bytes_total",
			Help: "Bytes a worker read and wrote, by direction."}, []string{"direction"}),
	}
	if reg != nil {
		reg.MustRegister(m.jobs, m.launches, m.attempts, m.rejected, m.worked, m.workBytes)
	}
	return m
}

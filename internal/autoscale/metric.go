package autoscale

import (
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/scalelab/scalelab/internal/platform/promscrape"
)

// Metrics the autoscaler can hold a target on, per copy.
const (
	MetricRPS      = "rps"       // requests per second (scalelab_http_requests_total)
	MetricCPU      = "cpu"       // CPU cores busy (process_cpu_seconds_total): 0.5 is half a core
	MetricP99      = "p99"       // p99 latency in seconds over the interval (the request histogram)
	MetricInFlight = "in-flight" // requests in progress, as the load balancer counts them
)

// Metrics lists them for flags and errors.
var Metrics = []string{MetricRPS, MetricCPU, MetricP99, MetricInFlight}

// Sample is one scrape of one copy's counters.
type Sample struct {
	At       time.Time
	Requests float64
	CPU      float64            // seconds
	Buckets  map[float64]uint64 // cumulative counts by upper bound (le)
}

// SampleOf reads the counters a rate needs from a scrape.
func SampleOf(m promscrape.Metrics, at time.Time) Sample {
	s := Sample{At: at, Buckets: map[float64]uint64{}}
	s.Requests, _ = m.Value("scalelab_http_requests_total")
	s.CPU, _ = m.Value("process_cpu_seconds_total")
	if f := m["scalelab_http_request_duration_seconds"]; f != nil {
		for _, series := range f.GetMetric() {
			h := series.GetHistogram()
			if h == nil {
				continue
			}
			for _, b := range h.GetBucket() {
				s.Buckets[b.GetUpperBound()] += b.GetCumulativeCount()
			}
			s.Buckets[math.Inf(1)] += h.GetSampleCount()
		}
	}
	return s
}

// Between is the metric over the interval from prev to cur; ok is false
// when the interval says nothing (no time passed, a counter went back —
// the copy restarted —, or no request for p99).
func Between(metric string, prev, cur Sample) (float64, bool) {
	dt := cur.At.Sub(prev.At).Seconds()
	if dt <= 0 {
		return 0, false
	}
	switch metric {
	case MetricRPS:
		d := cur.Requests - prev.Requests
		return d / dt, d >= 0
	case MetricCPU:
		d := cur.CPU - prev.CPU
		return d / dt, d >= 0
	case MetricP99:
		return p99Between(prev.Buckets, cur.Buckets)
	}
	return 0, false
}

// p99Between is the upper bound of the bucket the 99th percentile of the
// interval's requests falls in (Prometheus's histogram_quantile, without
// the interpolation inside the bucket).
func p99Between(prev, cur map[float64]uint64) (float64, bool) {
	bounds := make([]float64, 0, len(cur))
	for le := range cur {
		bounds = append(bounds, le)
	}
	sort.Float64s(bounds)
	total := float64(cur[math.Inf(1)]) - float64(prev[math.Inf(1)])
	if total <= 0 {
		return 0, false
	}
	rank := 0.99 * total
	for _, le := range bounds {
		if float64(cur[le])-float64(prev[le]) >= rank {
			if math.IsInf(le, 1) && len(bounds) > 1 {
				return bounds[len(bounds)-2], true // beyond the last bucket: its bound is all we know
			}
			return le, true
		}
	}
	return 0, false
}

// CheckMetric refuses an unknown metric name.
func CheckMetric(name string) error {
	for _, m := range Metrics {
		if m == name {
			return nil
		}
	}
	return fmt.Errorf("autoscale: no metric %q (want one of %v)", name, Metrics)
}

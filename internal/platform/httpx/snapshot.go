package httpx

import (
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// RequestTotals are one system's request counters since the process
// started: what a dashboard turns into rates by taking two of them.
type RequestTotals struct {
	Requests uint64 `json:"requests"`
	Errors   uint64 `json:"errors"` // answered 5xx
	// Buckets[i] counts requests that took at most Bounds[i] seconds
	// (cumulative, as Prometheus keeps them).
	Bounds  []float64 `json:"bounds"`
	Buckets []uint64  `json:"buckets"`
}

// Snapshot reads every system's totals from the metrics themselves.
func (m *Metrics) Snapshot() map[string]*RequestTotals {
	out := map[string]*RequestTotals{}
	get := func(system string) *RequestTotals {
		t := out[system]
		if t == nil {
			t = &RequestTotals{}
			out[system] = t
		}
		return t
	}
	each(m.requests, func(labels map[string]string, metric *dto.Metric) {
		t := get(labels["system"])
		n := uint64(metric.GetCounter().GetValue())
		t.Requests += n
		if c := labels["code"]; len(c) == 3 && c[0] == '5' {
			t.Errors += n
		}
	})
	each(m.duration, func(labels map[string]string, metric *dto.Metric) {
		t := get(labels["system"])
		bs := metric.GetHistogram().GetBucket()
		if t.Bounds == nil {
			for _, b := range bs {
				t.Bounds = append(t.Bounds, b.GetUpperBound())
			}
			t.Buckets = make([]uint64, len(bs))
		}
		for i, b := range bs {
			if i < len(t.Buckets) {
				t.Buckets[i] += b.GetCumulativeCount()
			}
		}
	})
	return out
}

// each calls fn with every series a collector holds.
func each(c prometheus.Collector, fn func(labels map[string]string, m *dto.Metric)) {
	ch := make(chan prometheus.Metric, 64)
	go func() {
		c.Collect(ch)
		close(ch)
	}()
	for pm := range ch {
		var m dto.Metric
		if pm.Write(&m) != nil {
			continue
		}
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		fn(labels, &m)
	}
}

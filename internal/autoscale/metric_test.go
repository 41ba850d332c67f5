package autoscale

import (
	"math"
	"testing"
	"time"
)

func TestMetricsBetweenTwoScrapes(t *testing.T) {
	t0 := time.Unix(100, 0)
	prev := Sample{At: t0, Requests: 100, CPU: 2, Buckets: map[float64]uint64{0.01: 50, 0.1: 90, 1: 100, math.Inf(1): 100}}
	cur := Sample{At: t0.Add(2 * time.Second), Requests: 300, CPU: 3, Buckets: map[float64]uint64{0.01: 150, 0.1: 280, 1: 300, math.Inf(1): 300}}
	for _, c := range []struct {
		metric string
		want   float64
	}{{MetricRPS, 100}, {MetricCPU, 0.5}, {MetricP99, 1}} {
		got, ok := Between(c.metric, prev, cur)
		if !ok || math.Abs(got-c.want) > 1e-9 {
			t.Errorf("%s: %v %v, want %v", c.metric, got, ok, c.want)
		}
	}
	// 99 % of the interval's 200 requests: 198; the 0.1 s bucket holds 190 of them.
	fast := cur
	fast.Buckets = map[float64]uint64{0.01: 150, 0.1: 290, 1: 300, math.Inf(1): 300}
	if got, _ := Between(MetricP99, prev, fast); got != 0.1 {
		t.Errorf("p99 %v, want 0.1", got)
	}
	restarted := Sample{At: t0.Add(3 * time.Second), Requests: 5}
	if _, ok := Between(MetricRPS, cur, restarted); ok {
		t.Error("a counter that went back (a restart) gave a rate")
	}
	if _, ok := Between(MetricP99, cur, cur); ok {
		t.Error("no time passed, yet a p99")
	}
	if CheckMetric("memory") == nil || CheckMetric(MetricRPS) != nil {
		t.Error("CheckMetric")
	}
}

package console

import (
	"math"

	"github.com/scalelab/scalelab/internal/platform/httpx"
)

// Rate is one system's traffic over one sampling interval.
type Rate struct {
	RPS    float64 `json:"rps"`
	Errors float64 `json:"errors"` // 5xx per second
	P50MS  float64 `json:"p50_ms"` // -1 when no request finished
	P99MS  float64 `json:"p99_ms"`
}

// rateBetween is the traffic between two totals taken dt seconds apart.
// Percentiles are the upper bound of the bucket the rank falls in (what
// Prometheus's histogram_quantile interpolates within; the bound is
// conservative). A counter that went down (a restart) gives zero.
func rateBetween(prev, cur *httpx.RequestTotals, dt float64) Rate {
	r := Rate{P50MS: -1, P99MS: -1}
	if cur == nil || dt <= 0 {
		return r
	}
	var p httpx.RequestTotals
	if prev != nil {
		p = *prev
	}
	if cur.Requests < p.Requests {
		return r
	}
	r.RPS = float64(cur.Requests-p.Requests) / dt
	r.Errors = float64(cur.Errors-p.Errors) / dt
	deltas := make([]uint64, len(cur.Buckets))
	for i := range cur.Buckets {
		var before uint64
		if i < len(p.Buckets) {
			before = p.Buckets[i]
		}
		if cur.Buckets[i] < before {
			return r
		}
		deltas[i] = cur.Buckets[i] - before
	}
	if len(deltas) == 0 || deltas[len(deltas)-1] == 0 {
		return r
	}
	total := float64(deltas[len(deltas)-1])
	quantile := func(q float64) float64 {
		rank := math.Ceil(q * total)
		for i, c := range deltas {
			if float64(c) >= rank {
				return cur.Bounds[i] * 1000
			}
		}
		return math.Inf(1) // beyond the last bound (over 5 s)
	}
	r.P50MS, r.P99MS = quantile(0.5), quantile(0.99)
	if math.IsInf(r.P99MS, 1) {
		r.P99MS = cur.Bounds[len(cur.Bounds)-1] * 1000
	}
	if math.IsInf(r.P50MS, 1) {
		r.P50MS = cur.Bounds[len(cur.Bounds)-1] * 1000
	}
	return r
}

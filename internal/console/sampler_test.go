package console

import (
	"testing"

	"github.com/scalelab/scalelab/internal/platform/httpx"
)

func TestRateBetweenTwoTotals(t *testing.T) {
	bounds := []float64{0.001, 0.01, 0.1, 1}
	prev := &httpx.RequestTotals{Requests: 100, Errors: 1, Bounds: bounds, Buckets: []uint64{50, 90, 100, 100}}
	// 200 more in 2 s: 150 under 1 ms, 48 under 10 ms, 2 under 100 ms; 10 more 5xx.
	cur := &httpx.RequestTotals{Requests: 300, Errors: 11, Bounds: bounds, Buckets: []uint64{200, 288, 300, 300}}
	r := rateBetween(prev, cur, 2)
	if r.RPS != 100 || r.Errors != 5 || r.P50MS != 1 || r.P99MS != 10 {
		t.Fatalf("%+v, want 100 rps, 5 errors/s, p50 1 ms, p99 10 ms", r)
	}
	if r := rateBetween(cur, cur, 1); r.RPS != 0 || r.P99MS != -1 {
		t.Fatalf("no traffic: %+v", r)
	}
	if r := rateBetween(cur, prev, 1); r.RPS != 0 {
		t.Fatalf("counters went down (a restart): %+v", r)
	}
	if r := rateBetween(nil, cur, 1); r.RPS != 300 || r.P99MS != 100 {
		t.Fatalf("from nothing: %+v", r)
	}
}

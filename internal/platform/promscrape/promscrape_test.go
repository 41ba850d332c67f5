package promscrape

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

func TestScrapeReadsWhatARegistryExports(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "things_total"}, []string{"outcome", "system"})
	c.WithLabelValues("applied", "a").Add(3)
	c.WithLabelValues("applied", "b").Add(4)
	c.WithLabelValues("duplicate", "a").Add(5)
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "in_flight"})
	g.Set(7)
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "latency_seconds"})
	h.Observe(0.1)
	h.Observe(0.2)
	reg.MustRegister(c, g, h)
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer srv.Close()

	m, err := Scrape(context.Background(), srv.Client(), srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		labels []string
		want   float64
		ok     bool
	}{
		{"things_total", nil, 12, true},
		{"things_total", []string{"outcome", "applied"}, 7, true},
		{"things_total", []string{"outcome", "applied", "system", "b"}, 4, true},
		{"things_total", []string{"outcome", "lost"}, 0, false},
		{"in_flight", nil, 7, true},
		{"latency_seconds", nil, 2, true},
		{"absent", nil, 0, false},
	} {
		if v, ok := m.Value(tc.name, tc.labels...); v != tc.want || ok != tc.ok {
			t.Errorf("%s%v = %v, %v; want %v, %v", tc.name, tc.labels, v, ok, tc.want, tc.ok)
		}
	}
	notFound := httptest.NewServer(http.NotFoundHandler())
	defer notFound.Close()
	if _, err := Scrape(context.Background(), notFound.Client(), notFound.URL); err == nil {
		t.Fatal("a 404 scraped without an error")
	}
}

package loadgen

import (
	"math"

	"github.com/scalelab/scalelab/internal/platform/plot"
)

// Plots returns the three report plots as SVG documents by file name.
func Plots(s Summary) (map[string]string, error) {
	secs := func(f func(SecondStats) float64) ([]float64, []float64) {
		xs, ys := make([]float64, len(s.PerSecond)), make([]float64, len(s.PerSecond))
		for i, p := range s.PerSecond {
			xs[i], ys[i] = float64(p.T), f(p)
		}
		return xs, ys
	}
	tx := func(x float64) string { return plot.Number(x) + "s" }
	rpsX, rpsY := secs(func(p SecondStats) float64 { return p.RPS })
	errX, errY := secs(func(p SecondStats) float64 { return float64(p.Errors) })
	out := map[string]string{
		"throughput.svg": plot.Chart{Title: "Throughput", XLabel: "time", YLabel: "requests/s", XTick: tx, Lines: []plot.Line{
			{Name: "requests/s", Color: "#1f77b4", X: rpsX, Y: rpsY}, {Name: "errors", Color: "#d62728", X: errX, Y: errY}}}.SVG(),
	}
	var lat []plot.Line
	for _, q := range []struct {
		name, color string
		f           func(SecondStats) float64
	}{{"p50", "#2ca02c", func(p SecondStats) float64 { return p.P50 }}, {"p90", "#1f77b4", func(p SecondStats) float64 { return p.P90 }},
		{"p99", "#ff7f0e", func(p SecondStats) float64 { return p.P99 }}, {"max", "#d62728", func(p SecondStats) float64 { return p.Max }}} {
		xs, ys := secs(q.f)
		lat = append(lat, plot.Line{Name: q.name, Color: q.color, X: xs, Y: ys})
	}
	out["latency.svg"] = plot.Chart{Title: "Latency percentiles per second", XLabel: "time", YLabel: "ms", XTick: tx, Lines: lat}.SVG()

	// Latency by percentile, x in "nines": 0 = p0, 1 = p90, 2 = p99, 3 = p99.9 …
	h, err := s.LatencyHistogram()
	if err != nil {
		return nil, err
	}
	var xs, ys []float64
	for n := 0.0; n <= 5.0001; n += 0.05 {
		q := 100 * (1 - math.Pow(10, -n))
		xs, ys = append(xs, n), append(ys, ms(h.ValueAtQuantile(q)))
	}
	nines := []string{"p0", "p90", "p99", "p99.9", "p99.99", "p99.999"}
	out["distribution.svg"] = plot.Chart{Title: "Latency by percentile", XLabel: "percentile", YLabel: "ms",
		XTicks: []float64{0, 1, 2, 3, 4, 5},
		XTick:  func(x float64) string { return nines[int(math.Round(x))] },
		Lines:  []plot.Line{{Name: "latency", Color: "#1f77b4", X: xs, Y: ys}}}.SVG()
	return out, nil
}

// TimeChart renders lines over time (X in seconds) as an SVG document, for
// experiments that plot more than one run or measure on one chart.
func TimeChart(title, yLabel string, lines []plot.Line) string {
	return plot.Chart{Title: title, XLabel: "time", YLabel: yLabel, XTick: func(x float64) string { return plot.Number(x) + "s" }, Lines: lines}.SVG()
}

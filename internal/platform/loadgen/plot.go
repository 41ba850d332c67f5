package loadgen

import (
	"fmt"
	"html"
	"math"
	"strings"
)

// A minimal SVG line chart: enough for throughput and latency over time and
// a latency-by-percentile curve, with no plotting dependency.

type series struct {
	name  string
	color string
	xs    []float64
	ys    []float64
}

type chart struct {
	title, xLabel, yLabel string
	series                []series
	xTick                 func(x float64) string // label for an x value
	xTicks                []float64              // where to put x labels (default: a nice step)
}

const (
	plotW, plotH                       = 760, 360
	padLeft, padRight, padTop, padBott = 70, 150, 40, 50
)

func (c chart) svg() string {
	minX, maxX, maxY := math.Inf(1), math.Inf(-1), 0.0
	for _, s := range c.series {
		for i := range s.xs {
			minX, maxX, maxY = math.Min(minX, s.xs[i]), math.Max(maxX, s.xs[i]), math.Max(maxY, s.ys[i])
		}
	}
	if math.IsInf(minX, 0) { // no data
		minX, maxX = 0, 1
	}
	if maxX == minX {
		maxX = minX + 1
	}
	if maxY <= 0 {
		maxY = 1
	}
	maxY = niceCeil(maxY)
	w, h := float64(plotW-padLeft-padRight), float64(plotH-padTop-padBott)
	px := func(x float64) float64 { return padLeft + (x-minX)/(maxX-minX)*w }
	py := func(y float64) float64 { return padTop + h - y/maxY*h }

	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">`+"\n", plotW, plotH)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="%d" y="22" font-size="15" font-weight="bold">%s</text>`+"\n", padLeft, html.EscapeString(c.title))
	for i := 0; i <= 5; i++ { // horizontal grid and y labels
		y := maxY * float64(i) / 5
		fmt.Fprintf(&b, `<line x1="%d" x2="%.1f" y1="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", padLeft, padLeft+w, py(y), py(y))
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n", padLeft-6, py(y)+4, trimFloat(y))
	}
	ticks := c.xTicks
	if ticks == nil {
		step := niceCeil((maxX - minX) / 6)
		for x := math.Ceil(minX/step) * step; x <= maxX+1e-9; x += step {
			ticks = append(ticks, x)
		}
	}
	for _, x := range ticks { // x labels
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n", px(x), padTop+h+18, html.EscapeString(c.xTick(x)))
	}
	fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n", padLeft+w/2, plotH-8, html.EscapeString(c.xLabel))
	fmt.Fprintf(&b, `<text transform="translate(16 %.1f) rotate(-90)" text-anchor="middle">%s</text>`+"\n", padTop+h/2, html.EscapeString(c.yLabel))
	fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%.1f" height="%.1f" fill="none" stroke="#888"/>`+"\n", padLeft, padTop, w, h)
	for i, s := range c.series {
		var pts strings.Builder
		for j := range s.xs {
			fmt.Fprintf(&pts, "%.1f,%.1f ", px(s.xs[j]), py(s.ys[j]))
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="1.8" points="%s"/>`+"\n", s.color, strings.TrimSpace(pts.String()))
		ly := padTop + 10 + 20*i
		fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%d" y2="%d" stroke="%s" stroke-width="3"/>`+"\n", padLeft+w+12, padLeft+w+32, ly, ly, s.color)
		fmt.Fprintf(&b, `<text x="%.1f" y="%d">%s</text>`+"\n", padLeft+w+38, ly+4, html.EscapeString(s.name))
	}
	b.WriteString("</svg>\n")
	return b.String()
}

// niceCeil rounds up to 1, 2 or 5 times a power of ten.
func niceCeil(v float64) float64 {
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if v <= m*p {
			return m * p
		}
	}
	return 10 * p
}

func trimFloat(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 1:
		return strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%.1f", v), "0"), ".")
	}
	return strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%.3f", v), "0"), ".")
}

// Plots returns the three report plots as SVG documents by file name.
func Plots(s Summary) (map[string]string, error) {
	secs := func(f func(SecondStats) float64) ([]float64, []float64) {
		xs, ys := make([]float64, len(s.PerSecond)), make([]float64, len(s.PerSecond))
		for i, p := range s.PerSecond {
			xs[i], ys[i] = float64(p.T), f(p)
		}
		return xs, ys
	}
	tx := func(x float64) string { return trimFloat(x) + "s" }
	rpsX, rpsY := secs(func(p SecondStats) float64 { return p.RPS })
	errX, errY := secs(func(p SecondStats) float64 { return float64(p.Errors) })
	out := map[string]string{
		"throughput.svg": chart{title: "Throughput", xLabel: "time", yLabel: "requests/s", xTick: tx, series: []series{
			{"requests/s", "#1f77b4", rpsX, rpsY}, {"errors", "#d62728", errX, errY}}}.svg(),
	}
	var lat []series
	for _, q := range []struct {
		name, color string
		f           func(SecondStats) float64
	}{{"p50", "#2ca02c", func(p SecondStats) float64 { return p.P50 }}, {"p90", "#1f77b4", func(p SecondStats) float64 { return p.P90 }},
		{"p99", "#ff7f0e", func(p SecondStats) float64 { return p.P99 }}, {"max", "#d62728", func(p SecondStats) float64 { return p.Max }}} {
		xs, ys := secs(q.f)
		lat = append(lat, series{q.name, q.color, xs, ys})
	}
	out["latency.svg"] = chart{title: "Latency percentiles per second", xLabel: "time", yLabel: "ms", xTick: tx, series: lat}.svg()

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
	out["distribution.svg"] = chart{title: "Latency by percentile", xLabel: "percentile", yLabel: "ms",
		xTicks: []float64{0, 1, 2, 3, 4, 5},
		xTick:  func(x float64) string { return nines[int(math.Round(x))] },
		series: []series{{"latency", "#1f77b4", xs, ys}}}.svg()
	return out, nil
}

// Line is one named line of a TimeChart.
type Line struct {
	Name, Color string
	X, Y        []float64 // X in seconds
}

// TimeChart renders lines over time (x in seconds) as an SVG document, for
// experiments that plot more than one run or measure on one chart.
func TimeChart(title, yLabel string, lines []Line) string {
	c := chart{title: title, xLabel: "time", yLabel: yLabel, xTick: func(x float64) string { return trimFloat(x) + "s" }}
	for _, l := range lines {
		c.series = append(c.series, series{l.Name, l.Color, l.X, l.Y})
	}
	return c.svg()
}

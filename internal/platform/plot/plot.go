package plot

import (
	"fmt"
	"html"
	"math"
	"strings"
)

// Line is one named series of a Chart.
type Line struct {
	Name, Color string
	X, Y        []float64
}

// Chart is a line chart.
type Chart struct {
	Title, XLabel, YLabel string
	Lines                 []Line
	// XTick labels an x value (default: the number).
	XTick func(x float64) string
	// XTicks are where the x labels go (default: a round step, or the
	// powers of ten on a log axis).
	XTicks []float64
	LogX   bool // x on a log scale (every x must be > 0)
	Points bool // mark each point, for charts of a few measured settings
}

const (
	width, height                      = 760, 360
	padLeft, padRight, padTop, padBott = 70, 170, 40, 50
)

// Palette is the colours lines get when they name none.
var Palette = []string{"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"}

// SVG renders the chart.
func (c Chart) SVG() string {
	fx := func(x float64) float64 { return x }
	if c.LogX {
		fx = math.Log10
	}
	minX, maxX, maxY := math.Inf(1), math.Inf(-1), 0.0
	for _, l := range c.Lines {
		for i := range l.X {
			if c.LogX && l.X[i] <= 0 {
				continue
			}
			minX, maxX, maxY = math.Min(minX, fx(l.X[i])), math.Max(maxX, fx(l.X[i])), math.Max(maxY, l.Y[i])
		}
	}
	if math.IsInf(minX, 0) { // no data
		minX, maxX = 0, 1
	}
	if maxX == minX {
		maxX = minX + 1
	}
	if maxY <= 0 || math.IsNaN(maxY) || math.IsInf(maxY, 0) {
		maxY = 1
	}
	maxY = NiceCeil(maxY)
	w, h := float64(width-padLeft-padRight), float64(height-padTop-padBott)
	px := func(x float64) float64 { return padLeft + (fx(x)-minX)/(maxX-minX)*w }
	py := func(y float64) float64 { return padTop + h - y/maxY*h }

	var b strings.Builder
	c.frame(&b, maxY, py, w, h)
	ticks := c.XTicks
	if ticks == nil {
		if c.LogX {
			for e := math.Floor(minX); e <= maxX+1e-9; e++ {
				if e >= minX-1e-9 {
					ticks = append(ticks, math.Pow(10, e))
				}
			}
		} else {
			step := NiceCeil((maxX - minX) / 6)
			for x := math.Ceil(minX/step) * step; x <= maxX+1e-9; x += step {
				ticks = append(ticks, x)
			}
		}
	}
	label := c.XTick
	if label == nil {
		label = Number
	}
	for _, x := range ticks {
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n", px(x), padTop+h+18, html.EscapeString(label(x)))
	}
	for i, l := range c.Lines {
		color := l.Color
		if color == "" {
			color = Palette[i%len(Palette)]
		}
		var pts strings.Builder
		for j := range l.X {
			if (c.LogX && l.X[j] <= 0) || math.IsNaN(l.Y[j]) {
				continue
			}
			fmt.Fprintf(&pts, "%.1f,%.1f ", px(l.X[j]), py(l.Y[j]))
			if c.Points {
				fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="3" fill="%s"/>`+"\n", px(l.X[j]), py(l.Y[j]), color)
			}
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="1.8" points="%s"/>`+"\n", color, strings.TrimSpace(pts.String()))
		legend(&b, i, l.Name, color, w)
	}
	b.WriteString("</svg>\n")
	return b.String()
}

// frame writes the document's head, title, y grid, axis labels and box.
func (c Chart) frame(b *strings.Builder, maxY float64, py func(float64) float64, w, h float64) {
	fmt.Fprintf(b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">`+"\n", width, height)
	fmt.Fprintf(b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(b, `<text x="%d" y="22" font-size="15" font-weight="bold">%s</text>`+"\n", padLeft, html.EscapeString(c.Title))
	for i := 0; i <= 5; i++ {
		y := maxY * float64(i) / 5
		fmt.Fprintf(b, `<line x1="%d" x2="%.1f" y1="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", padLeft, padLeft+w, py(y), py(y))
		fmt.Fprintf(b, `<text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n", padLeft-6, py(y)+4, Number(y))
	}
	fmt.Fprintf(b, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n", padLeft+w/2, height-8, html.EscapeString(c.XLabel))
	fmt.Fprintf(b, `<text transform="translate(16 %.1f) rotate(-90)" text-anchor="middle">%s</text>`+"\n", padTop+h/2, html.EscapeString(c.YLabel))
	fmt.Fprintf(b, `<rect x="%d" y="%d" width="%.1f" height="%.1f" fill="none" stroke="#888"/>`+"\n", padLeft, padTop, w, h)
}

func legend(b *strings.Builder, i int, name, color string, w float64) {
	ly := padTop + 10 + 20*i
	fmt.Fprintf(b, `<line x1="%.1f" x2="%.1f" y1="%d" y2="%d" stroke="%s" stroke-width="3"/>`+"\n", padLeft+w+12, padLeft+w+32, ly, ly, color)
	fmt.Fprintf(b, `<text x="%.1f" y="%d">%s</text>`+"\n", padLeft+w+38, ly+4, html.EscapeString(name))
}

// Bars is a bar chart: groups along x (e.g. settings), one bar per series
// in each group (e.g. variants). Values[s][g] is series s in group g.
type Bars struct {
	Title, YLabel string
	Groups        []string
	Series        []string
	Values        [][]float64
}

// SVG renders the bars.
func (c Bars) SVG() string {
	maxY := 0.0
	for _, vs := range c.Values {
		for _, v := range vs {
			if !math.IsNaN(v) && !math.IsInf(v, 0) {
				maxY = math.Max(maxY, v)
			}
		}
	}
	if maxY <= 0 {
		maxY = 1
	}
	maxY = NiceCeil(maxY)
	w, h := float64(width-padLeft-padRight), float64(height-padTop-padBott)
	py := func(y float64) float64 { return padTop + h - y/maxY*h }
	var b strings.Builder
	Chart{Title: c.Title, YLabel: c.YLabel}.frame(&b, maxY, py, w, h)
	groups, series := max(len(c.Groups), 1), max(len(c.Series), 1)
	gw := w / float64(groups)
	bw := gw * 0.8 / float64(series)
	for g, name := range c.Groups {
		x0 := padLeft + float64(g)*gw + gw*0.1
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n", x0+gw*0.4, padTop+h+18, html.EscapeString(name))
		for s := range c.Series {
			if s >= len(c.Values) || g >= len(c.Values[s]) || math.IsNaN(c.Values[s][g]) {
				continue
			}
			v := math.Min(c.Values[s][g], maxY)
			fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s %s: %s</title></rect>`+"\n",
				x0+float64(s)*bw, py(v), bw*0.92, padTop+h-py(v), Palette[s%len(Palette)],
				html.EscapeString(c.Series[s]), html.EscapeString(name), Number(c.Values[s][g]))
		}
	}
	for s, name := range c.Series {
		legend(&b, s, name, Palette[s%len(Palette)], w)
	}
	b.WriteString("</svg>\n")
	return b.String()
}

// NiceCeil rounds v up to 1, 2 or 5 times a power of ten.
func NiceCeil(v float64) float64 {
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if v <= m*p {
			return m * p
		}
	}
	return 10 * p
}

// Number formats an axis value without trailing zeros; large values with
// k and M.
func Number(v float64) string {
	switch {
	case v >= 1e6:
		return strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%.1f", v/1e6), "0"), ".") + "M"
	case v >= 1e4:
		return strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%.1f", v/1e3), "0"), ".") + "k"
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 1:
		return strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%.1f", v), "0"), ".")
	}
	return strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%.3f", v), "0"), ".")
}

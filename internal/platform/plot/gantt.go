package plot

import (
	"fmt"
	"html"
	"math"
	"strings"
)

// Gantt is a timeline: one row per lane (a worker), one bar per span of
// work on it (a task attempt), coloured by kind, and hatched grey when
// the span's work did not count (cancelled, lost, late).
type Gantt struct {
	Title, XLabel string
	Lanes         []string
	Spans         []Span
	// Kinds name the colours of Palette in order, for the legend.
	Kinds []string
}

// Span is one bar: Lane and Kind index Gantt.Lanes and Gantt.Kinds;
// Start and End are on the x axis (seconds from the job's start).
type Span struct {
	Lane, Kind int
	Start, End float64
	Label      string // drawn inside the bar when it fits
	Note       string // the tooltip
	Wasted     bool
}

// SVG renders the timeline.
func (g Gantt) SVG() string {
	const laneH, labelW = 22, 170
	maxX := 0.0
	for _, s := range g.Spans {
		maxX = math.Max(maxX, s.End)
	}
	if maxX <= 0 {
		maxX = 1
	}
	maxX = NiceCeil(maxX)
	w := float64(width - labelW - 30)
	h := float64(max(len(g.Lanes), 1) * laneH)
	total := int(h) + padTop + padBott + 20
	px := func(x float64) float64 { return labelW + x/maxX*w }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="11">`+"\n",
		width, total, width, total)
	b.WriteString(`<defs><pattern id="wasted" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)">` +
		`<rect width="6" height="6" fill="#ccc"/><line x1="0" y1="0" x2="0" y2="6" stroke="#888" stroke-width="2"/></pattern></defs>` + "\n")
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", width, total)
	fmt.Fprintf(&b, `<text x="10" y="22" font-size="15" font-weight="bold">%s</text>`+"\n", html.EscapeString(g.Title))
	for i, lane := range g.Lanes {
		y := float64(padTop + i*laneH)
		if i%2 == 0 {
			fmt.Fprintf(&b, `<rect x="%d" y="%.1f" width="%.1f" height="%d" fill="#f5f5f5"/>`+"\n", labelW, y, w, laneH)
		}
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n", labelW-6, y+laneH/2+4, html.EscapeString(shorten(lane, 26)))
	}
	step := maxX / 5
	for i := 0; i <= 5; i++ {
		x := px(float64(i) * step)
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", x, padTop, x, padTop+h)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n", x, padTop+h+16, Number(float64(i)*step))
	}
	fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n", labelW+w/2, padTop+h+34, html.EscapeString(g.XLabel))
	for _, s := range g.Spans {
		if s.Lane < 0 || s.Lane >= len(g.Lanes) {
			continue
		}
		x0, x1 := px(s.Start), px(math.Max(s.End, s.Start))
		bw := math.Max(x1-x0, 1)
		y := float64(padTop+s.Lane*laneH) + 3
		fill := Palette[s.Kind%len(Palette)]
		if s.Wasted {
			fill = "url(#wasted)"
		}
		fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%d" fill="%s" stroke="white" stroke-width="0.5"><title>%s</title></rect>`+"\n",
			x0, y, bw, laneH-6, fill, html.EscapeString(s.Note))
		if s.Label != "" && bw > float64(6*len(s.Label)+4) {
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" fill="white" font-size="10">%s</text>`+"\n", x0+2, y+laneH/2+1, html.EscapeString(s.Label))
		}
	}
	for i, k := range g.Kinds {
		x := labelW + i*110
		fmt.Fprintf(&b, `<rect x="%d" y="%.1f" width="12" height="12" fill="%s"/><text x="%d" y="%.1f">%s</text>`+"\n",
			x, float64(total)-14, Palette[i%len(Palette)], x+16, float64(total)-4, html.EscapeString(k))
	}
	x := labelW + len(g.Kinds)*110
	fmt.Fprintf(&b, `<rect x="%d" y="%.1f" width="12" height="12" fill="url(#wasted)"/><text x="%d" y="%.1f">wasted (cancelled, lost, late)</text>`+"\n",
		x, float64(total)-14, x+16, float64(total)-4)
	b.WriteString("</svg>\n")
	return b.String()
}

func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-1] + "…"
}

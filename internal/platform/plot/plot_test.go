package plot

import (
	"encoding/xml"
	"fmt"
	"math"
	"strings"
	"testing"
)

// wellFormed parses the document as XML: a browser shows nothing of an SVG
// that is not.
func wellFormed(t *testing.T, svg string) {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader(svg))
	for {
		_, err := d.Token()
		if err != nil {
			if err.Error() == "EOF" {
				return
			}
			t.Fatalf("not well-formed XML: %v\n%s", err, svg)
		}
	}
}

func TestChartDrawsEveryPointInsideThePlot(t *testing.T) {
	c := Chart{Title: "a <b> & c", XLabel: "goroutines", YLabel: "ops/s", LogX: true, Points: true,
		Lines: []Line{{Name: "mutex", X: []float64{1, 4, 16, 64}, Y: []float64{10, 20, 5, 0}}, {Name: "atomic", X: []float64{1, 64}, Y: []float64{30, 31}}}}
	svg := c.SVG()
	wellFormed(t, svg)
	if n := strings.Count(svg, "<circle"); n != 6 {
		t.Fatalf("%d points marked, want 6", n)
	}
	if !strings.Contains(svg, "a &lt;b&gt; &amp; c") {
		t.Fatal("title not escaped")
	}
	for _, tick := range []string{">1<", ">10<"} {
		if !strings.Contains(svg, tick) {
			t.Fatalf("log axis lacks the tick %s", tick)
		}
	}
	// The largest y (31) is below the top of a nice axis (50), the smallest
	// on the bottom line: every circle lies inside the plot box.
	for _, part := range strings.Split(svg, "<circle")[1:] {
		var cx, cy float64
		if _, err := fmtSscanf(part, &cx, &cy); err != nil {
			t.Fatal(err)
		}
		if cx < padLeft || cx > width-padRight || cy < padTop || cy > height-padBott {
			t.Fatalf("point (%v, %v) outside the plot", cx, cy)
		}
	}
}

func TestChartWithoutDataOrWithBadValuesStillRenders(t *testing.T) {
	wellFormed(t, Chart{Title: "empty"}.SVG())
	wellFormed(t, Chart{LogX: true, Lines: []Line{{X: []float64{0, -1}, Y: []float64{1, 2}}}}.SVG())
	wellFormed(t, Chart{Lines: []Line{{X: []float64{1, 2}, Y: []float64{math.NaN(), math.Inf(1)}}}}.SVG())
}

func TestBarsOnePerSeriesAndGroup(t *testing.T) {
	svg := Bars{Title: "t", YLabel: "req/s", Groups: []string{"new conn", "keep-alive"}, Series: []string{"rps", "p99"},
		Values: [][]float64{{100, 900}, {math.NaN(), 3}}}.SVG()
	wellFormed(t, svg)
	if n := strings.Count(svg, "<rect x="); n != 3+1 { // 3 bars and the plot box
		t.Fatalf("%d rects, want 3 bars and the box", n)
	}
}

func TestNumber(t *testing.T) {
	for v, want := range map[float64]string{0: "0", 0.25: "0.25", 2.5: "2.5", 150: "150", 25000: "25k", 2_500_000: "2.5M"} {
		if got := Number(v); got != want {
			t.Errorf("Number(%v) = %q, want %q", v, got, want)
		}
	}
	for v, want := range map[float64]float64{0.7: 1, 1.2: 2, 3: 5, 7: 10, 420: 500} {
		if got := NiceCeil(v); got != want {
			t.Errorf("NiceCeil(%v) = %v, want %v", v, got, want)
		}
	}
}

func fmtSscanf(s string, cx, cy *float64) (int, error) {
	return fmt.Sscanf(strings.TrimSpace(s), `cx="%f" cy="%f"`, cx, cy)
}

func TestGanttDrawsEverySpanInItsLane(t *testing.T) {
	g := Gantt{Title: "job <1>", XLabel: "s", Lanes: []string{"w1", "w2"}, Kinds: []string{"map", "reduce"},
		Spans: []Span{{Lane: 0, Kind: 0, Start: 0, End: 2, Label: "m0", Note: "map 0"}, {Lane: 1, Kind: 1, Start: 2, End: 3, Wasted: true, Note: "reduce 0"},
			{Lane: 5, Start: 0, End: 1, Note: "no such lane"}}}
	svg := g.SVG()
	wellFormed(t, svg)
	for _, want := range []string{"job &lt;1&gt;", "<title>map 0</title>", "<title>reduce 0</title>", `fill="url(#wasted)"`, ">w2<"} {
		if !strings.Contains(svg, want) {
			t.Errorf("SVG lacks %q", want)
		}
	}
	if strings.Contains(svg, "no such lane") {
		t.Error("a span outside the lanes was drawn")
	}
}

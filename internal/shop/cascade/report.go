package cascade

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/scalelab/scalelab/internal/platform/loadgen"
	"github.com/scalelab/scalelab/internal/platform/plot"
)

// phases splits the run at the stall: [from, to) in seconds.
func phases(cfg Config) []struct {
	name     string
	from, to float64
} {
	at, heal := cfg.StallAt.Seconds(), (cfg.StallAt + cfg.StallFor).Seconds()
	return []struct {
		name     string
		from, to float64
	}{{"before", 0, at}, {"stall", at, heal}, {"after", heal, cfg.Duration.Seconds() + 1}}
}

// summarise fills the phase table and the recovery time.
func summarise(r *ModeResult, cfg Config) {
	for _, class := range classes {
		c := r.Classes[class]
		for _, ph := range phases(cfg) {
			var ok, errs, n float64
			var p50s []float64
			var p99 float64
			for _, s := range c.PerSecond {
				// Second T covers (T-1, T].
				if t := float64(s.T) - 0.5; t < ph.from || t >= ph.to {
					continue
				}
				n++
				ok += float64(s.Requests - s.Errors)
				errs += float64(s.Errors)
				if s.Requests > 0 {
					p50s = append(p50s, s.P50)
					p99 = max(p99, s.P99)
				}
			}
			if n == 0 {
				continue
			}
			slices.Sort(p50s)
			var med float64
			if len(p50s) > 0 {
				med = p50s[len(p50s)/2]
			}
			r.Phases[class+"/"+ph.name] = PhaseResult{OKPerS: ok / n, ErrPerS: errs / n, P50: med, P99: p99}
		}
	}
	// Recovery: the first second after the heal that starts 3 good seconds.
	r.RecoveryS = -1
	heal := (cfg.StallAt + cfg.StallFor).Seconds()
	secs := r.Classes["checkout"].PerSecond
	good := func(s loadgen.SecondStats) bool {
		return s.Errors == 0 && float64(s.Requests) >= 0.8*cfg.CheckoutRate && s.P99 < 1000
	}
	for i := range secs {
		if float64(secs[i].T) <= heal || i+3 > len(secs) {
			continue
		}
		if good(secs[i]) && good(secs[i+1]) && good(secs[i+2]) {
			r.RecoveryS = float64(secs[i].T-1) - heal
			break
		}
	}
}

var colors = map[string]string{"resilience off": "#d62728", "resilience on": "#2ca02c"}

// writeReport writes results.json, report.md and the SVG plots to cfg.Out.
func writeReport(cfg Config, results []*ModeResult) error {
	if err := os.MkdirAll(cfg.Out, 0o755); err != nil {
		return err
	}
	js, err := json.MarshalIndent(struct {
		Config  Config        `json:"config"`
		Results []*ModeResult `json:"results"`
	}{cfg, results}, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(cfg.Out, "results.json"), append(js, '\n'), 0o644); err != nil {
		return err
	}
	window := fmt.Sprintf("payment stalled %g–%g s", cfg.StallAt.Seconds(), (cfg.StallAt + cfg.StallFor).Seconds())
	perSecond := func(class string, f func(loadgen.SecondStats) float64) []plot.Line {
		var lines []plot.Line
		for _, r := range results {
			l := plot.Line{Name: r.Name, Color: colors[r.Name]}
			for _, s := range r.Classes[class].PerSecond {
				l.X, l.Y = append(l.X, float64(s.T)), append(l.Y, f(s))
			}
			lines = append(lines, l)
		}
		return lines
	}
	okRate := func(s loadgen.SecondStats) float64 { return float64(s.Requests - s.Errors) }
	p99 := func(s loadgen.SecondStats) float64 { return s.P99 }
	var goros []plot.Line
	for _, r := range results {
		l := plot.Line{Name: r.Name, Color: colors[r.Name]}
		for _, s := range r.Samples {
			l.X, l.Y = append(l.X, s.T), append(l.Y, float64(s.Goroutines))
		}
		goros = append(goros, l)
	}
	plots := map[string]string{
		"checkout-ok.svg":     loadgen.TimeChart("Successful checkouts per second ("+window+")", "checkouts/s", perSecond("checkout", okRate)),
		"checkout-p99.svg":    loadgen.TimeChart("Checkout p99 latency ("+window+")", "ms", perSecond("checkout", p99)),
		"catalog-ok.svg":      loadgen.TimeChart("Successful catalog searches per second ("+window+")", "requests/s", perSecond("catalog", okRate)),
		"catalog-p99.svg":     loadgen.TimeChart("Catalog search p99 latency ("+window+")", "ms", perSecond("catalog", p99)),
		"carts-p99.svg":       loadgen.TimeChart("Cart creation p99 latency ("+window+")", "ms", perSecond("carts", p99)),
		"shop-goroutines.svg": loadgen.TimeChart("Shop process goroutines ("+window+")", "goroutines", goros),
	}
	for name, svg := range plots {
		if err := os.WriteFile(filepath.Join(cfg.Out, name), []byte(svg), 0o644); err != nil {
			return err
		}
	}
	f, err := os.Create(filepath.Join(cfg.Out, "report.md"))
	if err != nil {
		return err
	}
	defer f.Close()
	WriteMarkdown(f, cfg, results)
	return f.Close()
}

// WriteMarkdown prints the side-by-side report.
func WriteMarkdown(w io.Writer, cfg Config, results []*ModeResult) {
	fmt.Fprintf(w, "# Cascading failure: payment stalls for %s at %s\n\n", cfg.StallFor, cfg.StallAt)
	fmt.Fprintf(w, "Open-model load for %s per mode: catalog search %g/s, cart creation %g/s, checkout %g/s; "+
		"payment latency %s; shop --max-in-flight %d; the load generator gives up after %s.\n\n",
		cfg.Duration, cfg.CatalogRate, cfg.CartRate, cfg.CheckoutRate, cfg.PaymentLatency, cfg.MaxInFlight, cfg.Timeout)
	fmt.Fprintf(w, "| class / phase |")
	for _, r := range results {
		fmt.Fprintf(w, " %s: ok/s · err/s · p50 · worst p99 |", r.Name)
	}
	fmt.Fprintf(w, "\n|---|")
	for range results {
		fmt.Fprintf(w, "---|")
	}
	fmt.Fprintln(w)
	for _, class := range classes {
		for _, ph := range phases(cfg) {
			fmt.Fprintf(w, "| %s / %s |", class, ph.name)
			for _, r := range results {
				p := r.Phases[class+"/"+ph.name]
				fmt.Fprintf(w, " %.1f · %.1f · %s · %s |", p.OKPerS, p.ErrPerS, msText(p.P50), msText(p.P99))
			}
			fmt.Fprintln(w)
		}
	}
	fmt.Fprintln(w)
	for _, r := range results {
		rec := "not within the run"
		if r.RecoveryS >= 0 {
			rec = fmt.Sprintf("%.0f s after the payment healed", r.RecoveryS)
		}
		fmt.Fprintf(w, "**%s**: peak %d goroutines, peak %d requests in flight in the shop; checkout recovered %s; "+
			"downstream charges %d (repeats answered from the key: %d; stalled calls %d, abandoned by their caller %d).\n\n",
			r.Name, r.PeakGoros, r.PeakIn, rec, r.Downstream.Charges, r.Downstream.RepeatedCharges,
			r.Downstream.StalledRequests, r.Downstream.AbandonedInStall)
		for _, class := range classes {
			c := r.Classes[class]
			fmt.Fprintf(w, "- %s: %d requests, %d errors — %s\n", class, c.Requests, c.Errors, mix(c))
		}
		fmt.Fprintln(w)
	}
	writeLesson(w, cfg, results)
	fmt.Fprintln(w, "Plots: checkout-ok.svg, checkout-p99.svg, catalog-ok.svg, catalog-p99.svg, carts-p99.svg, shop-goroutines.svg.")
}

func msText(v float64) string {
	switch {
	case v >= 1000:
		return fmt.Sprintf("%.1f s", v/1000)
	case v >= 10:
		return fmt.Sprintf("%.0f ms", v)
	}
	return fmt.Sprintf("%.1f ms", v)
}

// mix renders the error mix: statuses by class and transport errors by kind.
func mix(c *ClassResult) string {
	var parts []string
	for _, m := range []map[string]int64{c.ByClass, c.ByKind} {
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if m[k] > 0 && !strings.HasPrefix(k, "status_") { // statuses are in ByClass already
				parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
			}
		}
	}
	if len(parts) == 0 {
		return "no errors"
	}
	return strings.Join(parts, ", ")
}

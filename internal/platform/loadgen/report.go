package loadgen

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// WriteReport writes summary.json, report.md and the SVG plots into dir.
func WriteReport(dir string, s Summary) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	js, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "summary.json"), append(js, '\n'), 0o644); err != nil {
		return err
	}
	plots, err := Plots(s)
	if err != nil {
		return err
	}
	for name, svg := range plots {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(svg), 0o644); err != nil {
			return err
		}
	}
	f, err := os.Create(filepath.Join(dir, "report.md"))
	if err != nil {
		return err
	}
	defer f.Close()
	writeMarkdown(f, s)
	return f.Close()
}

func writeMarkdown(w io.Writer, s Summary) {
	fmt.Fprintf(w, "# Load test: %s\n\n", s.Target)
	fmt.Fprintf(w, "Started %s, %s model", s.Started.Format("2006-01-02 15:04:05 UTC"), s.Model)
	switch {
	case len(s.Plan.Stages) > 0:
		var st []string
		for _, x := range s.Plan.Stages {
			st = append(st, fmt.Sprintf("%gs→%g/s", x.DurationS, x.Target))
		}
		fmt.Fprintf(w, ", stages %s", strings.Join(st, ", "))
	case s.Model == "open":
		fmt.Fprintf(w, " at %g requests/s", s.Plan.Rate)
	default:
		fmt.Fprintf(w, " with %d virtual users", s.Plan.VUs)
	}
	fmt.Fprintf(w, ", %d connections, timeout %v.", s.Plan.Connections, s.Plan.Timeout)
	if s.Interrupted {
		fmt.Fprint(w, " **Interrupted** before the plan finished: the figures cover what ran.")
	}
	fmt.Fprint(w, "\n\n")
	fmt.Fprintln(w, "| requests | errors | duration | requests/s | bytes |")
	fmt.Fprintln(w, "|---:|---:|---:|---:|---:|")
	fmt.Fprintf(w, "| %d | %d | %.2f s | %.1f | %d |\n\n", s.Requests, s.Errors, s.DurationS, s.RPS, s.Bytes)
	if s.Received > 0 {
		fmt.Fprintf(w, "WebSocket messages received: %d.\n\n", s.Received)
	}
	l := s.LatencyMS
	fmt.Fprintln(w, "Latency (ms)")
	if s.Model == "open" {
		fmt.Fprintln(w, "— measured from each request's scheduled start, so time spent queued counts.")
	}
	fmt.Fprintln(w, "\n| min | mean | p50 | p90 | p99 | p99.9 | max |")
	fmt.Fprintln(w, "|---:|---:|---:|---:|---:|---:|---:|")
	fmt.Fprintf(w, "| %.3f | %.3f | %.3f | %.3f | %.3f | %.3f | %.3f |\n\n", l.Min, l.Mean, l.P50, l.P90, l.P99, l.P999, l.Max)
	writeCounts(w, "Status codes", s.Status)
	writeCounts(w, "Errors by kind", s.ErrorsByKind)
	fmt.Fprint(w, "![throughput](throughput.svg)\n\n![latency](latency.svg)\n\n![distribution](distribution.svg)\n\n")
	fmt.Fprintln(w, "## Per second")
	fmt.Fprintln(w, "\n| t (s) | requests | errors | req/s | p50 ms | p90 ms | p99 ms | max ms |")
	fmt.Fprintln(w, "|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, p := range s.PerSecond {
		fmt.Fprintf(w, "| %d | %d | %d | %.0f | %.3f | %.3f | %.3f | %.3f |\n", p.T, p.Requests, p.Errors, p.RPS, p.P50, p.P90, p.P99, p.Max)
	}
}

func writeCounts(w io.Writer, title string, m map[string]int64) {
	if len(m) == 0 {
		return
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	fmt.Fprintf(w, "%s: ", title)
	for i, k := range keys {
		if i > 0 {
			fmt.Fprint(w, ", ")
		}
		fmt.Fprintf(w, "%s %d", k, m[k])
	}
	fmt.Fprint(w, ".\n\n")
}

// Compare writes a side-by-side table of two summaries: each figure, the
// difference and the change in percent.
func Compare(w io.Writer, a, b Summary, nameA, nameB string) {
	rows := []struct {
		name string
		a, b float64
		unit string
	}{
		{"requests", float64(a.Requests), float64(b.Requests), ""},
		{"requests/s", a.RPS, b.RPS, ""},
		{"errors", float64(a.Errors), float64(b.Errors), ""},
		{"duration", a.DurationS, b.DurationS, "s"},
		{"latency min", a.LatencyMS.Min, b.LatencyMS.Min, "ms"},
		{"latency mean", a.LatencyMS.Mean, b.LatencyMS.Mean, "ms"},
		{"latency p50", a.LatencyMS.P50, b.LatencyMS.P50, "ms"},
		{"latency p90", a.LatencyMS.P90, b.LatencyMS.P90, "ms"},
		{"latency p99", a.LatencyMS.P99, b.LatencyMS.P99, "ms"},
		{"latency p99.9", a.LatencyMS.P999, b.LatencyMS.P999, "ms"},
		{"latency max", a.LatencyMS.Max, b.LatencyMS.Max, "ms"},
	}
	fmt.Fprintf(w, "A: %s  (%s)\nB: %s  (%s)\n\n", nameA, a.Target, nameB, b.Target)
	fmt.Fprintf(w, "%-14s %14s %14s %14s %9s\n", "", "A", "B", "B − A", "change")
	for _, r := range rows {
		change := "—"
		if r.a != 0 {
			change = fmt.Sprintf("%+.1f%%", (r.b-r.a)/r.a*100)
		}
		fmt.Fprintf(w, "%-14s %12.3f%-2s %12.3f%-2s %+12.3f%-2s %9s\n", r.name, r.a, r.unit, r.b, r.unit, r.b-r.a, r.unit, change)
	}
}

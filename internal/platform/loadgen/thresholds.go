package loadgen

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// A Threshold is a pass/fail criterion on a run's summary, as in k6:
// `p99<50ms`, `errors<1%`, `rps>=1000`. A run whose threshold fails exits
// with code 99, as k6 does, after printing its report — so a CI job can
// gate on it.
//
//	metric:  p50 p90 p99 p99.9 max mean (latency: a duration, 50ms, 1.5s, 800us)
//	         errors (a share, 1%, or a count, 10)
//	         rps    (requests per second)
//	op:      < <= > >=
type Threshold struct {
	Text   string
	metric string
	op     string
	value  float64 // ms for latency, a fraction for a share, a count or a rate
	share  bool    // errors given as a percentage
}

var thresholdMetrics = []string{"p99.9", "p50", "p90", "p99", "max", "mean", "errors", "rps"}

// ParseThreshold reads one threshold.
func ParseThreshold(s string) (Threshold, error) {
	t := Threshold{Text: s}
	text := strings.ReplaceAll(s, " ", "")
	for _, m := range thresholdMetrics {
		if strings.HasPrefix(text, m) {
			t.metric, text = m, text[len(m):]
			break
		}
	}
	if t.metric == "" {
		return t, fmt.Errorf("threshold %q: want METRIC OP VALUE with METRIC one of p50 p90 p99 p99.9 max mean errors rps", s)
	}
	for _, op := range []string{"<=", ">=", "<", ">"} {
		if strings.HasPrefix(text, op) {
			t.op, text = op, text[len(op):]
			break
		}
	}
	if t.op == "" || text == "" {
		return t, fmt.Errorf("threshold %q: want an operator (< <= > >=) and a value", s)
	}
	switch t.metric {
	case "errors":
		if v, ok := strings.CutSuffix(text, "%"); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil || f < 0 || f > 100 {
				return t, fmt.Errorf("threshold %q: %q is not a percentage", s, text)
			}
			t.value, t.share = f/100, true
			return t, nil
		}
		f, err := strconv.ParseFloat(text, 64)
		if err != nil || f < 0 {
			return t, fmt.Errorf("threshold %q: %q is not a count or a percentage", s, text)
		}
		t.value = f
	case "rps":
		f, err := strconv.ParseFloat(strings.TrimSuffix(text, "/s"), 64)
		if err != nil || f < 0 {
			return t, fmt.Errorf("threshold %q: %q is not a rate", s, text)
		}
		t.value = f
	default:
		d, err := time.ParseDuration(text)
		if err != nil || d < 0 {
			return t, fmt.Errorf("threshold %q: %q is not a duration (50ms, 1.5s, 800us)", s, text)
		}
		t.value = float64(d) / float64(time.Millisecond)
	}
	return t, nil
}

// Check evaluates t on s: the measured value, and whether it passes.
func (t Threshold) Check(s Summary) (got string, ok bool) {
	var v float64
	switch t.metric {
	case "p50":
		v = s.LatencyMS.P50
	case "p90":
		v = s.LatencyMS.P90
	case "p99":
		v = s.LatencyMS.P99
	case "p99.9":
		v = s.LatencyMS.P999
	case "max":
		v = s.LatencyMS.Max
	case "mean":
		v = s.LatencyMS.Mean
	case "rps":
		v = s.RPS
	case "errors":
		v = float64(s.Errors)
		if t.share {
			v = 0
			if s.Requests > 0 {
				v = float64(s.Errors) / float64(s.Requests)
			}
		}
	}
	switch {
	case t.metric == "errors" && t.share:
		got = fmt.Sprintf("%.2f%%", v*100)
	case t.metric == "errors":
		got = strconv.FormatFloat(v, 'f', 0, 64)
	case t.metric == "rps":
		got = fmt.Sprintf("%.1f/s", v)
	default:
		got = fmt.Sprintf("%.3f ms", v)
	}
	switch t.op {
	case "<":
		ok = v < t.value
	case "<=":
		ok = v <= t.value
	case ">":
		ok = v > t.value
	case ">=":
		ok = v >= t.value
	}
	return got, ok
}

// Succeeded is how many requests got an answer that was not an error.
func (s Summary) Succeeded() int64 { return s.Requests - s.Errors }

// ThresholdError is a run that missed a threshold, or in which no
// request succeeded: exit code 99 (k6's), after the report.
type ThresholdError struct{ Failed []string }

func (e ThresholdError) Error() string {
	return "thresholds failed: " + strings.Join(e.Failed, "; ")
}

// ExitCode is k6's code for failed thresholds.
func (ThresholdError) ExitCode() int { return 99 }

// CheckThresholds evaluates ts, plus the one every run has: that some
// request succeeded (a run of 20,000 × 404 measured nothing).
func CheckThresholds(s Summary, ts []Threshold) (lines []string, err error) {
	var failed []string
	if s.Requests > 0 && s.Succeeded() == 0 {
		failed = append(failed, fmt.Sprintf("no request succeeded (%d of %d were errors)", s.Errors, s.Requests))
		lines = append(lines, "  ✗ some request succeeded: none did")
	}
	for _, t := range ts {
		got, ok := t.Check(s)
		mark := "✓"
		if !ok {
			mark = "✗"
			failed = append(failed, fmt.Sprintf("%s (measured %s)", t.Text, got))
		}
		lines = append(lines, fmt.Sprintf("  %s %-16s measured %s", mark, t.Text, got))
	}
	if len(failed) > 0 {
		return lines, ThresholdError{Failed: failed}
	}
	return lines, nil
}

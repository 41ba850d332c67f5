package loadgen

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
)

// SummarySchema names the version of the summary.json format. Fields are
// only ever added within a version.
const SummarySchema = "scalelab.load.summary/v1"

// Summary is summary.json: the stable, documented result of a run (see
// docs/loadgen.md). Histogram holds every latency losslessly (HdrHistogram
// V2 compressed encoding, base64, microseconds), so summaries from several
// generators merge exactly.
type Summary struct {
	Schema       string           `json:"schema"`
	Target       string           `json:"target"`
	Model        string           `json:"model"`
	Started      time.Time        `json:"started"`
	Requests     int64            `json:"requests"`
	Errors       int64            `json:"errors"`
	DurationS    float64          `json:"duration_s"`
	RPS          float64          `json:"rps"`
	Bytes        int64            `json:"bytes"`
	Received     int64            `json:"received,omitempty"`
	LatencyMS    LatencyMS        `json:"latency_ms"`
	ErrorsByKind map[string]int64 `json:"errors_by_kind"`
	Status       map[string]int64 `json:"status"`
	PerSecond    []SecondStats    `json:"per_second"`
	Interrupted  bool             `json:"interrupted"`
	Plan         PlanSummary      `json:"plan"`
	Histogram    string           `json:"histogram"`
}

// LatencyMS are latency statistics in milliseconds.
type LatencyMS struct {
	Min  float64 `json:"min"`
	Mean float64 `json:"mean"`
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p999"`
	Max  float64 `json:"max"`
}

func latencyOf(h *hdr.Histogram) LatencyMS {
	if h.TotalCount() == 0 {
		return LatencyMS{}
	}
	return LatencyMS{
		Min: ms(h.Min()), Mean: h.Mean() / 1000, P50: ms(h.ValueAtQuantile(50)), P90: ms(h.ValueAtQuantile(90)),
		P99: ms(h.ValueAtQuantile(99)), P999: ms(h.ValueAtQuantile(99.9)), Max: ms(h.Max()),
	}
}

// Summarize turns a Result into its summary.
func Summarize(r *Result) (Summary, error) {
	enc, err := r.Latency.Encode(hdr.V2CompressedEncodingCookieBase)
	if err != nil {
		return Summary{}, fmt.Errorf("loadgen: encode histogram: %w", err)
	}
	s := Summary{
		Schema: SummarySchema, Target: r.Target, Model: r.Model, Started: r.Started.UTC(),
		Requests: r.Requests, Errors: r.Errors, DurationS: r.Elapsed.Seconds(), Bytes: r.Bytes, Received: r.Received,
		LatencyMS: latencyOf(r.Latency), ErrorsByKind: r.ByKind, Status: r.ByStatus, PerSecond: r.PerSecond,
		Interrupted: r.Interrupted, Plan: r.Plan, Histogram: base64.StdEncoding.EncodeToString(enc),
	}
	if s.DurationS > 0 {
		s.RPS = float64(s.Requests) / s.DurationS
	}
	if s.PerSecond == nil {
		s.PerSecond = []SecondStats{}
	}
	return s, nil
}

// LatencyHistogram decodes the summary's histogram.
func (s Summary) LatencyHistogram() (*hdr.Histogram, error) {
	raw, err := base64.StdEncoding.DecodeString(s.Histogram)
	if err != nil {
		return nil, fmt.Errorf("loadgen: histogram is not base64: %w", err)
	}
	h, err := hdr.Decode(raw)
	if err != nil {
		return nil, fmt.Errorf("loadgen: decode histogram: %w", err)
	}
	return h, nil
}

// ReadSummary reads a summary.json.
func ReadSummary(path string) (Summary, error) {
	var s Summary
	b, err := os.ReadFile(path)
	if err != nil {
		return s, err
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return s, fmt.Errorf("%s: not a summary.json: %w", path, err)
	}
	if s.Schema != SummarySchema {
		return s, fmt.Errorf("%s: schema %q, want %q", path, s.Schema, SummarySchema)
	}
	return s, nil
}

// Merge combines the summaries of generators that ran side by side against
// one target: counts add up, the latency histograms merge exactly (so the
// percentiles are those of all requests together), the duration is the
// longest, and per-second entries with the same T add their counts. Per-
// second percentiles cannot be merged without per-second histograms, so a
// merged entry carries the largest of each (an upper bound).
func Merge(parts ...Summary) (Summary, error) {
	if len(parts) == 0 {
		return Summary{}, errors.New("loadgen: nothing to merge")
	}
	out := parts[0]
	out.ErrorsByKind, out.Status = map[string]int64{}, map[string]int64{}
	total := NewHistogram()
	bySecond := map[int]*SecondStats{}
	var order []int
	out.Requests, out.Errors, out.Bytes, out.Received, out.DurationS = 0, 0, 0, 0, 0
	for _, p := range parts {
		h, err := p.LatencyHistogram()
		if err != nil {
			return Summary{}, err
		}
		total.Merge(h)
		out.Requests += p.Requests
		out.Errors += p.Errors
		out.Bytes += p.Bytes
		out.Received += p.Received
		out.DurationS = max(out.DurationS, p.DurationS)
		out.Interrupted = out.Interrupted || p.Interrupted
		if p.Started.Before(out.Started) {
			out.Started = p.Started
		}
		for k, v := range p.ErrorsByKind {
			out.ErrorsByKind[k] += v
		}
		for k, v := range p.Status {
			out.Status[k] += v
		}
		for _, s := range p.PerSecond {
			m, ok := bySecond[s.T]
			if !ok {
				c := s
				bySecond[s.T], order = &c, append(order, s.T)
				continue
			}
			m.Requests += s.Requests
			m.Errors += s.Errors
			m.RPS += s.RPS
			m.P50, m.P90, m.P99, m.Max = max(m.P50, s.P50), max(m.P90, s.P90), max(m.P99, s.P99), max(m.Max, s.Max)
		}
	}
	out.PerSecond = nil
	for _, t := range order {
		out.PerSecond = append(out.PerSecond, *bySecond[t])
	}
	if out.DurationS > 0 {
		out.RPS = float64(out.Requests) / out.DurationS
	}
	out.LatencyMS = latencyOf(total)
	enc, err := total.Encode(hdr.V2CompressedEncodingCookieBase)
	if err != nil {
		return Summary{}, err
	}
	out.Histogram = base64.StdEncoding.EncodeToString(enc)
	return out, nil
}

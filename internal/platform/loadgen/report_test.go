package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Merging two summaries gives exactly the percentiles of all their
// requests together: the histograms are serialised losslessly.
func TestMergeIsExact(t *testing.T) {
	a, b, both := NewHistogram(), NewHistogram(), NewHistogram()
	for i := int64(1); i <= 10_000; i++ {
		a.RecordValue(i * 10) // 10 µs … 100 ms
		both.RecordValue(i * 10)
	}
	for i := int64(1); i <= 1_000; i++ {
		b.RecordValue(200_000 + i*1000) // 201 ms … 1.2 s
		both.RecordValue(200_000 + i*1000)
	}
	sa, err := Summarize(&Result{Latency: a, Requests: 10_000, Elapsed: 10 * time.Second, Model: "open",
		PerSecond: []SecondStats{{T: 1, Requests: 10_000, P99: 99}}, ByKind: map[string]int64{"timeout": 1}})
	if err != nil {
		t.Fatal(err)
	}
	sb, _ := Summarize(&Result{Latency: b, Requests: 1_000, Errors: 2, Elapsed: 12 * time.Second, Model: "open",
		PerSecond: []SecondStats{{T: 1, Requests: 1_000, P99: 1190}}, ByKind: map[string]int64{"timeout": 2}})
	// Through JSON, as files would go.
	var ra, rb Summary
	for _, p := range []struct {
		in  Summary
		out *Summary
	}{{sa, &ra}, {sb, &rb}} {
		js, _ := json.Marshal(p.in)
		if err := json.Unmarshal(js, p.out); err != nil {
			t.Fatal(err)
		}
	}
	m, err := Merge(ra, rb)
	if err != nil {
		t.Fatal(err)
	}
	want := latencyOf(both)
	if m.LatencyMS != want {
		t.Fatalf("merged latency %+v, want %+v", m.LatencyMS, want)
	}
	if m.Requests != 11_000 || m.Errors != 2 || m.DurationS != 12 || m.ErrorsByKind["timeout"] != 3 {
		t.Fatalf("merged counts %+v", m)
	}
	if len(m.PerSecond) != 1 || m.PerSecond[0].Requests != 11_000 || m.PerSecond[0].P99 != 1190 {
		t.Fatalf("merged per second %+v", m.PerSecond)
	}
	if _, err := Merge(); err == nil {
		t.Fatal("merging nothing succeeded")
	}
	bad := ra
	bad.Histogram = "not base64!"
	if _, err := Merge(ra, bad); err == nil {
		t.Fatal("merged a corrupt histogram")
	}
}

func TestReportFiles(t *testing.T) {
	srv, _ := fastServer(t)
	res, err := Run(context.Background(), Plan{HTTP: &HTTPTarget{URL: srv.URL}, Rate: 500, Duration: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	s, err := Summarize(res)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := WriteReport(dir, s); err != nil {
		t.Fatal(err)
	}
	// summary.json has the documented top-level keys.
	raw, _ := os.ReadFile(filepath.Join(dir, "summary.json"))
	var top map[string]any
	if err := json.Unmarshal(raw, &top); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"schema", "requests", "errors", "duration_s", "rps", "latency_ms", "per_second", "histogram"} {
		if _, ok := top[k]; !ok {
			t.Errorf("summary.json lacks %q", k)
		}
	}
	lat := top["latency_ms"].(map[string]any)
	for _, k := range []string{"min", "mean", "p50", "p90", "p99", "p999", "max"} {
		if _, ok := lat[k]; !ok {
			t.Errorf("latency_ms lacks %q", k)
		}
	}
	if top["requests"] != float64(1000) || len(top["per_second"].([]any)) < 2 {
		t.Fatalf("requests %v, per_second %d entries", top["requests"], len(top["per_second"].([]any)))
	}
	back, err := ReadSummary(filepath.Join(dir, "summary.json"))
	if err != nil || back.Requests != 1000 {
		t.Fatalf("ReadSummary: %v %d", err, back.Requests)
	}
	for _, name := range []string{"throughput.svg", "latency.svg", "distribution.svg"} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := wellFormed(b); err != nil || !bytes.Contains(b, []byte("<polyline")) {
			t.Fatalf("%s: %v", name, err)
		}
	}
	md, _ := os.ReadFile(filepath.Join(dir, "report.md"))
	for _, want := range []string{"| 1000 |", "p99", "open model at 500 requests/s", "## Per second"} {
		if !bytes.Contains(md, []byte(want)) {
			t.Errorf("report.md lacks %q", want)
		}
	}
	var out bytes.Buffer
	faster := s
	faster.LatencyMS.P99 = s.LatencyMS.P99 / 2
	Compare(&out, s, faster, "a", "b")
	if !strings.Contains(out.String(), "latency p99") || !strings.Contains(out.String(), "-50.0%") {
		t.Fatalf("compare:\n%s", out.String())
	}
}

func wellFormed(b []byte) error {
	d := xml.NewDecoder(bytes.NewReader(b))
	for {
		if _, err := d.Token(); err == io.EOF {
			return nil
		} else if err != nil {
			return err
		}
	}
}

package loadgen

import (
	"bytes"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/scalelab/scalelab/internal/platform/apperr"
)

func TestParseThreshold(t *testing.T) {
	s := Summary{Requests: 1000, Errors: 5, RPS: 1200, LatencyMS: LatencyMS{P50: 2, P90: 8, P99: 40, P999: 90, Max: 120, Mean: 3}}
	for text, want := range map[string]bool{
		"p99<50ms": true, "p99 < 30ms": false, "p99<=40ms": true, "p50<2.5ms": true, "p90<8ms": false,
		"p99.9<0.1s": true, "max<100ms": false, "mean<3500us": true,
		"errors<1%": true, "errors<0.5%": false, "errors<=0.5%": true, "errors<5": false, "errors<=5": true,
		"rps>1000": true, "rps>=1200/s": true, "rps>2000": false,
	} {
		th, err := ParseThreshold(text)
		if err != nil {
			t.Errorf("ParseThreshold(%q): %v", text, err)
			continue
		}
		if got, ok := th.Check(s); ok != want {
			t.Errorf("%s on the summary: ok=%v (measured %s), want %v", text, ok, got, want)
		}
	}
	for _, bad := range []string{"", "p98<1ms", "p99", "p99<", "p99<fast", "p99=5ms", "errors<150%", "errors<-1", "rps>lots", "latency<1ms", "p99<-5ms"} {
		if _, err := ParseThreshold(bad); err == nil {
			t.Errorf("ParseThreshold(%q) accepted", bad)
		}
	}
}

// The observed defect: `load http` exited 0 when every request failed.
// Now a run in which nothing succeeded fails with k6's 99, and so does a
// missed threshold; status codes are reported exactly, as a table.
func TestLoadHTTPFailsItsThresholds(t *testing.T) {
	notFound := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) }))
	defer notFound.Close()
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) }))
	defer ok.Close()
	run := func(args ...string) (string, error) {
		cmd := Command()
		var out bytes.Buffer
		cmd.SetOut(&out)
		cmd.SetErr(&bytes.Buffer{})
		cmd.SetArgs(append([]string{"http", "--quiet", "--requests", "200", "--rate", "2000/s"}, args...))
		err := cmd.Execute()
		return out.String(), err
	}
	out, err := run(notFound.URL)
	var te ThresholdError
	if !errors.As(err, &te) || te.ExitCode() != 99 || !strings.Contains(err.Error(), "no request succeeded") {
		t.Fatalf("every request 404: %v\n%s", err, out)
	}
	if !strings.Contains(out, "404") || strings.Contains(out, "map[") {
		t.Fatalf("the status table does not show the exact code: %s", out)
	}
	if out, err := run("--threshold", "p99<1us", ok.URL); !errors.As(err, &te) || !strings.Contains(out, "✗ p99<1us") {
		t.Fatalf("a missed threshold: %v\n%s", err, out)
	}
	if out, err := run("--threshold", "p99<5s", "--threshold", "errors<1%", ok.URL); err != nil || !strings.Contains(out, "✓ p99<5s") {
		t.Fatalf("passing thresholds: %v\n%s", err, out)
	}
	if _, err := run("--threshold", "p99<soon", ok.URL); !apperr.IsUsage(err) {
		t.Fatalf("a malformed threshold: %v, want a usage error", err)
	}
}

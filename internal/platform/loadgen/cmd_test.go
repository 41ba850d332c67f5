package loadgen

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scalelab/scalelab/internal/platform/apperr"
)

func runCmd(ctx context.Context, args ...string) (string, error) {
	cmd := Command()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	err := cmd.ExecuteContext(ctx)
	return out.String(), err
}

func TestCommandWritesReportAndCompares(t *testing.T) {
	srv, _ := fastServer(t)
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	if out, err := runCmd(context.Background(), "http", "--rate", "500/s", "--duration", "1s", "--out", a, srv.URL); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if out, err := runCmd(context.Background(), "http", "--vus", "4", "--requests", "300", "--out", b, "-H", "X-Test: 1", srv.URL+"/{{seq}}"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, f := range []string{"summary.json", "report.md", "throughput.svg", "latency.svg", "distribution.svg"} {
		if _, err := os.Stat(filepath.Join(a, f)); err != nil {
			t.Fatal(err)
		}
	}
	out, err := runCmd(context.Background(), "compare", filepath.Join(a, "summary.json"), filepath.Join(b, "summary.json"))
	if err != nil || !strings.Contains(out, "latency p99") {
		t.Fatalf("compare: %v\n%s", err, out)
	}
	m := filepath.Join(dir, "m")
	out, err = runCmd(context.Background(), "merge", "--out", m, filepath.Join(a, "summary.json"), filepath.Join(b, "summary.json"))
	if err != nil || !strings.Contains(out, "requests 800") {
		t.Fatalf("merge: %v\n%s", err, out)
	}
}

func TestCommandBadInputIsUsageError(t *testing.T) {
	for _, args := range [][]string{
		{"http", "http://127.0.0.1:1/"},                                  // no model
		{"http", "--rate", "fast", "http://127.0.0.1:1/"},                // bad rate
		{"http", "--stages", "10s", "http://127.0.0.1:1/"},               // bad stages
		{"http", "--rate", "10/s", "http://example.com/"},                // remote
		{"http", "--rate", "10/s", "ftp://127.0.0.1/"},                   // bad URL
		{"http", "--rate", "10/s", "http://127.0.0.1:1/{{x}}"},           // bad template
		{"http", "--vus", "1", "--timeout", "0s", "http://127.0.0.1:1/"}, // bad timeout
		{"ws", "--vus", "1", "--expect", "a", "--broadcast", "ws://127.0.0.1:1/"},
		{"compare", "/nonexistent/a.json", "/nonexistent/b.json"},
	} {
		_, err := runCmd(context.Background(), args...)
		if !apperr.IsUsage(err) {
			t.Errorf("%v: got %v, want a usage error", args, err)
		}
	}
}

// Ctrl-C: the run stops, the report of what ran is written, exit code 130.
func TestCommandInterruptWritesReport(t *testing.T) {
	srv, _ := fastServer(t)
	dir := filepath.Join(t.TempDir(), "r")
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-timeAfter(400)
		cancel()
	}()
	_, err := runCmd(ctx, "http", "--rate", "200/s", "--duration", "60s", "--quiet", "--out", dir, srv.URL)
	var ie InterruptedError
	if !errors.As(err, &ie) || ie.ExitCode() != 130 {
		t.Fatalf("got %v, want InterruptedError", err)
	}
	s, err := ReadSummary(filepath.Join(dir, "summary.json"))
	if err != nil || !s.Interrupted || s.Requests < 40 || s.Requests > 120 {
		t.Fatalf("summary after interrupt: %v interrupted=%v requests=%d", err, s.Interrupted, s.Requests)
	}
}

func timeAfter(ms int) <-chan time.Time { return time.After(time.Duration(ms) * time.Millisecond) }

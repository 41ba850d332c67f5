package lab

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/scalelab/scalelab/internal/dynamo"
	"github.com/scalelab/scalelab/internal/platform/apperr"
	"github.com/scalelab/scalelab/internal/platform/proctest"
)

func TestCatalogNamesAreUniqueAndBindTheirFlags(t *testing.T) {
	seen := map[string]bool{}
	for _, e := range Catalog() {
		if e.Name == "" || e.System == "" || e.Summary == "" || seen[e.Name] {
			t.Fatalf("experiment %+v: a name, a system and a summary, once each", e)
		}
		seen[e.Name] = true
		fs := pflag.NewFlagSet(e.Name, pflag.ContinueOnError)
		if e.Bind(fs) == nil || !fs.HasFlags() {
			t.Fatalf("%s binds no flags or no runner", e.Name)
		}
		if got, ok := Find(e.Name); !ok || got.Name != e.Name {
			t.Fatalf("Find(%q) = %v, %v", e.Name, got.Name, ok)
		}
	}
	if _, ok := Find("nonesuch"); ok {
		t.Fatal("found an experiment that does not exist")
	}
}

// The CAP lesson is computed from the figures: the same sentences cannot
// come out of runs that measured different things.
func TestCAPLessonFollowsTheFigures(t *testing.T) {
	opts := dynamo.CAPOptions{Keys: 10, W: 2}
	good := dynamo.CAPResult{AckedWrites: 800}
	good.Phases[0] = dynamo.PhaseStats{Name: "healthy", Attempts: 300, Acks: 300}
	good.Phases[1] = dynamo.PhaseStats{Name: "partitioned", Attempts: 120, Acks: 120, SiblingReads: 4}
	good.Phases[2] = dynamo.PhaseStats{Name: "healed", Attempts: 300, Acks: 300, SiblingReads: 18}
	r := capReport(opts, good)
	text := strings.Join(r.Lesson, " ")
	if !r.Passed || !strings.Contains(text, "chose availability") || !strings.Contains(text, "siblings 18 times") || !strings.Contains(text, "none of the 10 keys") {
		t.Fatalf("a good run: passed %v, %q", r.Passed, text)
	}
	bad := good
	bad.Phases[1].Acks, bad.KeysWithSibs, bad.LostWrites = 30, 3, 2
	bad.Phases[2].SiblingReads = 0
	r = capReport(opts, bad)
	text = strings.Join(r.Lesson, " ")
	if r.Passed || strings.Contains(text, "chose availability") || !strings.Contains(text, "3 of 10 keys still hold siblings") ||
		!strings.Contains(text, "2 of 800 acknowledged writes were lost") || !strings.Contains(text, "too short or too light") {
		t.Fatalf("a bad run: passed %v, %q", r.Passed, text)
	}
	if r.Figures["lost_writes"] != 2 || r.Figures["partitioned_acked"] != 30 {
		t.Fatalf("figures %v", r.Figures)
	}
}

// `experiment run cap` end to end on a short run: the report files, the
// verdict, and a bad flag as a usage error.
func TestRunCAPWritesItsReport(t *testing.T) {
	dir := t.TempDir()
	cmd := Command()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetArgs([]string{"run", "cap", "--quick", "--out", dir})
	if err := cmd.ExecuteContext(context.Background()); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	var r Report
	data, err := os.ReadFile(filepath.Join(dir, "report.json"))
	if err != nil || json.Unmarshal(data, &r) != nil {
		t.Fatalf("report.json: %v %s", err, data)
	}
	md, _ := os.ReadFile(filepath.Join(dir, "report.md"))
	if !r.Passed || len(r.Lesson) < 3 || r.Figures["acked_writes"] == 0 || !strings.Contains(string(md), "What this run shows") {
		t.Fatalf("report %+v\n%s", r, md)
	}
	// The run names its settings, its machine and its plots, and the plots
	// are on disk and shown in report.md.
	if r.Settings["duration"] != "2s" || r.Settings["w"] != "2" || r.Machine.CPUs < 1 || r.Machine.Go == "" || r.Seconds <= 0 || r.Started.IsZero() {
		t.Fatalf("settings %v machine %+v seconds %v", r.Settings, r.Machine, r.Seconds)
	}
	if len(r.PlotFiles) != 2 {
		t.Fatalf("plots %v, want acknowledged.svg and siblings.svg", r.PlotFiles)
	}
	for _, name := range r.PlotFiles {
		svg, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || !strings.Contains(string(svg), "<rect x=") || !strings.Contains(string(md), "]("+name+")") {
			t.Fatalf("plot %s: %v, in report.md: %v", name, err, strings.Contains(string(md), name))
		}
	}
	if !strings.Contains(string(md), "`--duration=2s`") || !strings.Contains(string(md), "CPUs") {
		t.Fatalf("report.md lacks the run's settings or machine:\n%s", md)
	}
	cmd = Command()
	cmd.SetOut(&out)
	cmd.SetArgs([]string{"run", "cap", "--w", "9", "--out", dir})
	if err := cmd.ExecuteContext(context.Background()); !apperr.IsUsage(err) {
		t.Fatalf("--w 9: %v, want a usage error", err)
	}
}

// The concurrency lesson follows the figures: lost updates counted when
// they happened, "proves nothing" when they did not, and a synchronised
// variant that lost any fails the run.
func TestConcurrencyLessonFollowsTheFigures(t *testing.T) {
	opts := ConcurrencyOptions{Goroutines: []int{1, 8}, Ops: 1000, ReadShare: 90, FileLines: 10}
	counters := []counterResult{
		{"unsynchronised", 8, 5000, 8000, 1}, {"atomic", 8, 8000, 8000, 2}, {"mutex", 8, 8000, 8000, 6}, {"channel-owner", 8, 8000, 8000, 40},
	}
	maps := []mapResult{{"mutex", 8, 1e6}, {"rwmutex", 8, 3e6}, {"sync.Map", 8, 2e6}, {"sharded", 8, 4e6}}
	r := concurrencyReport(opts, counters, maps, 100*time.Millisecond, 5*time.Millisecond)
	text := strings.Join(r.Lesson, " ")
	for _, want := range []string{"lost 3000 of 8000 increments (37.5 %)", "3.0× the atomic", "fastest sharded", "4.0× a single Mutex", "(20× faster)"} {
		if !strings.Contains(text, want) {
			t.Errorf("lesson lacks %q: %s", want, text)
		}
	}
	if !r.Passed || r.Figures["counter_unsynchronised_g8_lost"] != 3000 {
		t.Fatalf("passed %v, figures %v", r.Passed, r.Figures)
	}
	counters[0].Final = 8000
	counters[2].Final = 7999
	r = concurrencyReport(opts, counters, maps, time.Millisecond, time.Millisecond)
	text = strings.Join(r.Lesson, " ")
	if r.Passed || !strings.Contains(text, "proves nothing") || !strings.Contains(text, "mutex lost 1 of 8000") {
		t.Fatalf("passed %v: %s", r.Passed, text)
	}
}

// A real run, small: every synchronised counter is exact (under the race
// detector, too — the unsynchronised one is then left out and said so).
func TestConcurrencyRunIsExactWhereItMustBe(t *testing.T) {
	r, err := runConcurrency(context.Background(), Env{Log: io.Discard, Dir: t.TempDir()},
		ConcurrencyOptions{Goroutines: []int{1, 4}, Ops: 2000, ReadShare: 50, FileLines: 100})
	if err != nil {
		t.Fatal(err)
	}
	if !r.Passed || r.Figures["file_buffered_ms"] <= 0 || r.Figures["map_sharded_g4_ops_per_s"] <= 0 || len(r.Lesson) < 4 {
		t.Fatalf("report %+v", r)
	}
}

func TestClientReuseLessonFollowsTheFigures(t *testing.T) {
	runs := []clientRun{
		{Name: "new", Requests: 4000, RPS: 4000, P99MS: 13, CPUPerReq: 160, Dials: 4000},
		{Name: "default", Requests: 15000, RPS: 15000, P99MS: 5, CPUPerReq: 40, Dials: 900},
		{Name: "sized", Requests: 20000, RPS: 20000, P99MS: 4, CPUPerReq: 34, Dials: 16},
	}
	text := strings.Join(clientReuseReport(ClientReuseOptions{Workers: 16}, runs).Lesson, " ")
	for _, want := range []string{"4000 req/s", "(5.0× as many)", "opened 900 connections", "16 connections for 20000 requests"} {
		if !strings.Contains(text, want) {
			t.Errorf("lesson lacks %q: %s", want, text)
		}
	}
	runs[1].Dials = 20
	runs[0].Errors = 200
	text = strings.Join(clientReuseReport(ClientReuseOptions{Workers: 16}, runs).Lesson, " ")
	if !strings.Contains(text, "did not cost much") || !strings.Contains(text, "not comparable") {
		t.Fatalf("lesson %s", text)
	}
}

// Against a real `shortener serve`, one second per client: the pooled
// clients kept to a few connections, and the new-connection client really
// opened one connection per request. Which is faster is the experiment's
// lesson, measured over longer runs, not asserted from one loaded second.
func TestClientReuseRun(t *testing.T) {
	r, err := runClientReuse(context.Background(), Env{Log: io.Discard, Dir: t.TempDir(), Binary: proctest.Binary(t)},
		ClientReuseOptions{Workers: 8, Duration: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	f := r.Figures
	if f["new_conn_rps"] <= 0 || f["sized_pool_rps"] <= 0 || f["sized_pool_connections"] > 3*8 ||
		f["new_conn_connections"] < 0.9*f["new_conn_rps"] {
		t.Fatalf("figures %v", f)
	}
}

func TestRecoveryLessonFollowsTheFigures(t *testing.T) {
	runs := []recoveryRun{
		{Entries: 1000, Restart: 10 * time.Millisecond, LogBytes: 1e5}, {Entries: 1000, Snapshots: true, Restart: 3 * time.Millisecond, LogBytes: 1e4},
		{Entries: 8000, Restart: 80 * time.Millisecond, LogBytes: 8e5}, {Entries: 8000, Snapshots: true, Restart: 5 * time.Millisecond, LogBytes: 2e4},
	}
	text := strings.Join(recoveryReport(runs).Lesson, " ")
	for _, want := range []string{"10ms for 1000 entries, 80ms for 8000 (8.0× longer for 8× the entries)", "16.0× faster", "0.0 MB on disk instead of 0.8 MB"} {
		if !strings.Contains(text, want) {
			t.Errorf("lesson lacks %q: %s", want, text)
		}
	}
	runs[3].Restart = 90 * time.Millisecond
	if text := strings.Join(recoveryReport(runs).Lesson, " "); !strings.Contains(text, "did not make the restart faster") {
		t.Fatalf("lesson %s", text)
	}
}

// A real restart, small: every run catches up, and a snapshotted log is
// smaller on disk than the whole one.
func TestRecoveryRun(t *testing.T) {
	r, err := runRecovery(context.Background(), Env{Log: io.Discard, Dir: t.TempDir()}, RecoveryOptions{Entries: []int{500, 2000}, Value: 50})
	if err != nil {
		t.Fatal(err)
	}
	f := r.Figures
	if f["no_snapshots_2000_restart_ms"] <= 0 || f["snapshots_2000_disk_mb"] >= f["no_snapshots_2000_disk_mb"] {
		t.Fatalf("figures %v", f)
	}
	if svg := r.Plots["restart-time.svg"]; strings.Count(svg, "<circle") != 4 {
		t.Fatalf("restart-time.svg has %d points, want 2 log lengths × 2 modes:\n%s", strings.Count(svg, "<circle"), svg)
	}
}

func TestConsistencyLessonFollowsTheFigures(t *testing.T) {
	runs := []consistencyRun{
		{Store: "dynamo", Setting: "R=1 W=1", Ops: 100, Stale: 20, WriteP50MS: 0.4, ReadP50MS: 0.03},
		{Store: "dynamo", Setting: "R=2 W=2", Ops: 100, WriteP50MS: 0.5, ReadP50MS: 0.05},
		{Store: "dynamo", Setting: "R=3 W=3", Ops: 100, WriteP99MS: 70, ReadP99MS: 41},
		{Store: "raftkv", Setting: "stale reads (?stale=true)", Ops: 100, Stale: 100, ReadP50MS: 0.02},
		{Store: "raftkv", Setting: "linearizable reads", Ops: 100, ReadP50MS: 41, ReadP99MS: 42},
	}
	r := consistencyReport(ConsistencyOptions{Slow: 20 * time.Millisecond}, runs)
	text := strings.Join(r.Lesson, " ")
	for _, want := range []string{"20 of 100 reads right after a write missed it", "0 of 100 reads were stale", "write p99 70.00 ms", "missed the write just acknowledged 100 of 100 times"} {
		if !strings.Contains(text, want) {
			t.Errorf("lesson lacks %q: %s", want, text)
		}
	}
	if !r.Passed {
		t.Fatal("a consistent run failed")
	}
	runs[4].Stale = 1
	if r := consistencyReport(ConsistencyOptions{}, runs); r.Passed || !strings.Contains(strings.Join(r.Lesson, " "), "contradicts linearizability") {
		t.Fatalf("a stale linearizable read passed: %v", r.Lesson)
	}
}

// A small real run: quorum and linearizable reads are never stale.
func TestConsistencyRun(t *testing.T) {
	r, err := runConsistency(context.Background(), Env{Log: io.Discard, Dir: t.TempDir()}, ConsistencyOptions{Ops: 20, Slow: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if !r.Passed || r.Figures["dynamo_R2_W2_stale"] != 0 || r.Figures["raftkv_linearizable_reads_stale"] != 0 {
		t.Fatalf("figures %v, lesson %v", r.Figures, r.Lesson)
	}
}

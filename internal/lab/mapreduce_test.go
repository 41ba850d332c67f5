package lab

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scalelab/scalelab/internal/mapreduce"
)

func mrTrialOf(name string, workers int, seconds float64, shuffle int64, digest string, backups, retries int) *mrTrial {
	st := &mapreduce.JobStatus{Counters: mapreduce.Counters{MapOutputBytes: shuffle, Backups: backups, Retries: retries}}
	t := &mrTrial{name: name, workers: workers, res: &mapreduce.TrialResult{Status: st, Seconds: seconds, Digest: digest}}
	if strings.Contains(name, "no combiner") {
		t.params = map[string]string{"combiner": "off"}
	}
	return t
}

func TestMapReduceLessonFollowsTheFigures(t *testing.T) {
	o := MapReduceOptions{Bytes: 128 << 20, SplitSize: 8 << 20, Reducers: 4, MaxWorkers: 2, StragglerDelay: 8 * time.Second, Lease: 2 * time.Second}
	d := strings.Repeat("ab", 32)
	trials := []*mrTrial{
		mrTrialOf("1 worker(s)", 1, 10, 40<<20, d, 0, 0),
		mrTrialOf("2 worker(s)", 2, 6, 40<<20, d, 0, 0),
		mrTrialOf("2 workers, no combiner", 2, 15, 400<<20, "other", 0, 0),
		mrTrialOf("3 workers", 3, 5, 40<<20, d, 0, 0),
		mrTrialOf("3 workers, a straggler, no backups", 3, 14, 40<<20, d, 0, 0),
		mrTrialOf("3 workers, a straggler, backups", 3, 7, 40<<20, d, 1, 0),
		mrTrialOf("3 workers, one killed", 3, 6, 40<<20, d, 0, 1),
	}
	r := mapReduceReport(o, trials)
	text := strings.Join(r.Lesson, " ")
	for _, want := range []string{"byte-identical", "1.67× faster", "(10× less)", "took 14.00 s (2.80×", "with them 7.00 s (1.40×), after 1 backup", "1.20× the failure-free 5.00 s"} {
		if !strings.Contains(text, want) {
			t.Errorf("lesson lacks %q:\n%s", want, text)
		}
	}
	if !r.Passed {
		t.Fatalf("a clean run failed: %v", r.Lesson)
	}
	trials[6].res.Digest = "different"
	if r := mapReduceReport(o, trials); r.Passed || !strings.Contains(strings.Join(r.Lesson, " "), "OUTPUT DIFFERED") {
		t.Fatalf("differing outputs passed: %v", r.Lesson)
	}
	trials[6].res.Digest = d
	trials[5].res.Seconds = 15
	if r := mapReduceReport(o, trials); r.Passed {
		t.Fatal("backups that did not help passed")
	}
}

// A small run end to end: every trial finishes, the outputs agree, the
// report and every timeline are written, the working files are gone.
func TestMapReduceRun(t *testing.T) {
	dir := t.TempDir()
	o := MapReduceOptions{Bytes: 3 << 20, SplitSize: 256 << 10, Reducers: 2, MaxWorkers: 2, StragglerDelay: 3 * time.Second, Lease: time.Second}
	rep, err := runMapReduce(context.Background(), Env{Log: io.Discard, Dir: dir}, o)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Passed {
		t.Fatalf("the run failed: %v", rep.Lesson)
	}
	if len(rep.Plots) != 8 || rep.Figures["combiner_shuffle_ratio"] < 2 {
		t.Fatalf("%d plots, shuffle ratio %v", len(rep.Plots), rep.Figures["combiner_shuffle_ratio"])
	}
	if _, err := os.Stat(filepath.Join(dir, "work")); !os.IsNotExist(err) {
		t.Fatalf("working files left behind: %v", err)
	}
}

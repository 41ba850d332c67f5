package lab

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/scalelab/scalelab/internal/platform/proctest"
)

func TestFailureDetectionLessonFollowsTheFigures(t *testing.T) {
	opts := FailureDetectionOptions{Trials: 2, Window: 3 * time.Second, SlowBase: 20 * time.Millisecond, Jitter: 300 * time.Millisecond}
	settings := []detectionSetting{
		{Interval: 100 * time.Millisecond, Mult: 2, HeartbeatFalseDeaths: 4, SWIMSuspicions: 20, SWIMFalseDeaths: 1, SWIMRefuted: 15,
			HeartbeatDetectMS: []float64{190, 210}, SWIMDetectMS: []float64{400, 420}, SWIMSuspectMS: []float64{150, 160}},
		{Interval: 500 * time.Millisecond, Mult: 2, SWIMSuspicions: 2, SWIMRefuted: 2,
			HeartbeatDetectMS: []float64{990, 1010}, SWIMDetectMS: []float64{2000, 2100}, SWIMSuspectMS: []float64{700, 800}},
	}
	r := failureDetectionReport(opts, settings)
	text := strings.Join(r.Lesson, " ")
	for _, want := range []string{"dead in 200 ms at 100ms ×2 (timeout 200ms) and 1000 ms at 500ms ×2", "dead 4 times in all (4 at 100ms ×2)",
		"Longer timeouts (500ms ×2) were never fooled", "suspected the slow member 22 times", "less often than the heartbeat timeout at 100ms ×2 (1 vs 4)", "slower to declare the paused process dead in 2 of 2"} {
		if !strings.Contains(text, want) {
			t.Errorf("lesson lacks %q:\n%s", want, text)
		}
	}
	if !r.Passed || r.Figures["p100ms_x2_swim_detect_ms"] != 410 {
		t.Fatalf("passed %v, figures %v", r.Passed, r.Figures)
	}
	settings[0].SWIMFalseDeaths = 9
	if text := strings.Join(failureDetectionReport(opts, settings).Lesson, " "); !strings.Contains(text, "more often at 100ms ×2 (9 vs 4)") || strings.Contains(text, "less often") {
		t.Fatalf("more SWIM deaths not said: %s", text)
	}
	settings[1].SWIMDetectMS[1] = -1
	if r := failureDetectionReport(opts, settings); r.Passed {
		t.Fatal("a pause neither detector declared passed")
	}
	quiet := []detectionSetting{{Interval: time.Second, Mult: 4, HeartbeatDetectMS: []float64{4000}, SWIMDetectMS: []float64{9000}}}
	if text := strings.Join(failureDetectionReport(opts, quiet).Lesson, " "); !strings.Contains(text, "not slow enough") {
		t.Fatalf("a run that fooled nobody did not say so: %s", text)
	}
}

// A real run, one setting: a SIGSTOPped process is declared dead by both
// detectors, the heartbeat within its timeout, and a
// 300 ms-jittered link fools a 200 ms heartbeat timeout and makes SWIM
// suspect (which also proves the suspicion log still matches memberlist's).
func TestFailureDetectionRun(t *testing.T) {
	r, err := runFailureDetection(context.Background(), Env{Log: io.Discard, Dir: t.TempDir(), Binary: proctest.Binary(t)},
		FailureDetectionOptions{Intervals: []time.Duration{100 * time.Millisecond}, Mults: []int{2}, Trials: 1, Window: 3 * time.Second,
			SlowBase: 20 * time.Millisecond, Jitter: 300 * time.Millisecond, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	f := r.Figures
	if !r.Passed {
		t.Fatalf("a pause was missed: %v %v", f, r.Lesson)
	}
	// The last beat went out up to an interval before the pause: the
	// verdict comes between timeout − interval and timeout (+ the check
	// period and a loaded machine's slack) after it.
	if d := f["p100ms_x2_heartbeat_detect_ms"]; d < 100 || d > 200+250 {
		t.Fatalf("heartbeat declared the pause in %v ms, want 100–450 ms for a 200 ms timeout", d)
	}
	if f["p100ms_x2_swim_detect_ms"] <= 0 || f["p100ms_x2_swim_suspect_ms"] <= 0 {
		t.Fatalf("SWIM: %v", f)
	}
	if f["p100ms_x2_heartbeat_false_deaths"] < 1 || f["p100ms_x2_swim_suspicions"] < 1 {
		t.Fatalf("the slow link fooled nobody: %v", f)
	}
	if len(r.Plots) != 3 {
		t.Fatalf("plots %v", len(r.Plots))
	}
}

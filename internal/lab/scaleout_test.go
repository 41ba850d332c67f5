package lab

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/scalelab/scalelab/internal/platform/proctest"
)

func TestScaleOutLessonFollowsTheFigures(t *testing.T) {
	opts := ScaleOutOptions{Capacity: 8, Cost: 20 * time.Millisecond, Rate: 1000, Max: 4}
	phases := []scalePhase{{Copies: 1, OK: 385, Errors: 580, P99: 107}, {Copies: 2, OK: 760, Errors: 200, P99: 115}, {Copies: 3, OK: 990, P99: 42}, {Copies: 4, OK: 990, P99: 32}}
	r := scaleOutReport(opts, phases, scaleTrace{Final: 4, RecoveredS: 3})
	text := strings.Join(r.Lesson, " ")
	for _, want := range []string{"One copy can serve 400 requests/s", "3 copies (1200 requests/s of capacity) carried the load", "bought latency, not throughput", "errors stopped 3 s after the step", "2-core machine"} {
		if !strings.Contains(text, want) {
			t.Errorf("lesson lacks %q:\n%s", want, text)
		}
	}
	if !r.Passed {
		t.Fatal("a run that recovered failed")
	}
	phases[3].P99 = 41
	if text := strings.Join(scaleOutReport(opts, phases, scaleTrace{Final: 4}).Lesson, " "); !strings.Contains(text, "bought nothing here") {
		t.Fatalf("no gain from the fourth copy not said: %s", text)
	}
	if r := scaleOutReport(opts, phases, scaleTrace{Final: 4, RecoveredS: -1}); r.Passed {
		t.Fatal("a run that never recovered passed")
	}
}

// A short real run: one copy refuses part of an overload that enough
// copies carry, and the autoscaler ends with more than one copy.
func TestScaleOutRun(t *testing.T) {
	r, err := runScaleOut(context.Background(), Env{Log: io.Discard, Dir: t.TempDir(), Binary: proctest.Binary(t)},
		ScaleOutOptions{Capacity: 4, Cost: 20 * time.Millisecond, Rate: 500, Phase: 2 * time.Second, Max: 3})
	if err != nil {
		t.Fatal(err)
	}
	f := r.Figures
	if f["copies_1_errors_per_s"] <= 0 || f["copies_3_errors_per_s"] > f["copies_1_errors_per_s"]/10 || f["copies_3_ok_per_s"] < 1.5*f["copies_1_ok_per_s"] || f["autoscale_final_copies"] < 2 {
		t.Fatalf("figures %v\nlesson %v", f, r.Lesson)
	}
}

package lab

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/scalelab/scalelab/internal/platform/loadgen"
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
	opts.Spike = 2 * time.Second
	spike := scaleTrace{Final: 3, RecoveredS: 4, SpikeAtS: 40, SpikeSeconds: make([]loadgen.SecondStats, 2), SpikeBefore: 1, SpikePeak: 3, SpikeReactS: 1.2, SpikeOK: 400, SpikeErrors: 600, SpikeP99: 95}
	text = strings.Join(scaleOutReport(opts, phases, spike).Lesson, " ")
	if !strings.Contains(text, "A 2s spike to 1000/s met 1 copy (400 requests/s of capacity): 600/s were refused") || !strings.Contains(text, "a copy more 1.2 s after the spike began, while it lasted, and for 3 at most") {
		t.Fatalf("the spike's lesson is not stated from its figures: %s", text)
	}
	spike.SpikeReactS = 2.5
	if text := strings.Join(scaleOutReport(opts, phases, spike).Lesson, " "); !strings.Contains(text, "2.5 s after the spike began, after it had passed") {
		t.Fatalf("a reaction after the spike: %s", text)
	}
	spike.SpikePeak, spike.SpikeReactS = 1, -1
	if text := strings.Join(scaleOutReport(opts, phases, spike).Lesson, " "); !strings.Contains(text, "over before the autoscaler added a copy") {
		t.Fatalf("a spike the autoscaler never reacted to: %s", text)
	}
	spike.SpikeErrors, spike.SpikeBefore = 0, 3
	if text := strings.Join(scaleOutReport(opts, phases, spike).Lesson, " "); !strings.Contains(text, "none was refused") {
		t.Fatalf("a spike carried by headroom: %s", text)
	}
}

// A short real run: one copy refuses part of an overload that enough
// copies carry, and the autoscaler ends with more than one copy. A copy
// serves 200 requests/s; three carry the 400/s offered with half again as
// much to spare, so a test machine busy with other packages still sees
// them carry it (at 500/s, with a fifth to spare, they did not once).
func TestScaleOutRun(t *testing.T) {
	r, err := runScaleOut(context.Background(), Env{Log: io.Discard, Dir: t.TempDir(), Binary: proctest.Binary(t)},
		ScaleOutOptions{Capacity: 4, Cost: 20 * time.Millisecond, Rate: 400, Phase: 2 * time.Second, Max: 3, Spike: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	f := r.Figures
	if f["copies_1_errors_per_s"] <= 0 || f["copies_3_errors_per_s"] > f["copies_1_errors_per_s"]/10 || f["copies_3_ok_per_s"] < 1.5*f["copies_1_ok_per_s"] || f["autoscale_final_copies"] < 2 || f["spike_copies_before"] < 1 || f["spike_ok_per_s"] <= 0 {
		t.Fatalf("figures %v\nlesson %v", f, r.Lesson)
	}
}

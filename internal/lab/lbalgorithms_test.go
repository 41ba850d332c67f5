package lab

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"
)

func TestLBAlgorithmsLessonFollowsTheFigures(t *testing.T) {
	opts := LBAlgorithmsOptions{Delay: 50 * time.Millisecond}
	runs := []lbRun{
		{Name: "scalelab round-robin", Requests: 1000, P99: 53, Degraded: 0.25, MinShare: 1, Available: true},
		{Name: "scalelab peak-ewma", Requests: 1000, P99: 4, Degraded: 0.02, MinShare: 0.9, Available: true},
		{Name: "haproxy roundrobin", Requests: 1000, P99: 52, Degraded: 0.25, MinShare: 1, Available: true},
		{Name: "nginx round robin"},
	}
	r := lbAlgorithmsReport(opts, runs)
	text := strings.Join(r.Lesson, " ")
	for _, want := range []string{"sent the 50ms-slower backend 25.0 %", "Peak-EWMA sent it 2.0 %, with a p99 of 4.0 ms", "lowest p99 was scalelab peak-ewma's", "scalelab peak-EWMA's p99 is 0.08× it"} {
		if !strings.Contains(text, want) {
			t.Errorf("lesson lacks %q:\n%s", want, text)
		}
	}
	if !r.Passed || r.Figures["scalelab_peak_ewma_p99_ms"] != 4 || r.Figures["haproxy_roundrobin_slow_share"] != 0.25 {
		t.Fatalf("passed %v figures %v", r.Passed, r.Figures)
	}
	runs[1].Errors, runs[1].MinShare = 100, 0.2
	r = lbAlgorithmsReport(opts, runs)
	if text := strings.Join(r.Lesson, " "); r.Passed || !strings.Contains(text, "starved a healthy backend") {
		t.Fatalf("errors and starvation not said: %v %s", r.Passed, text)
	}
}

// A short real run of scalelab's policies (the anchors when installed):
// peak-EWMA sends the slow backend less than round robin's quarter, and
// nothing errs.
func TestLBAlgorithmsRun(t *testing.T) {
	r, err := runLBAlgorithms(context.Background(), Env{Log: io.Discard, Dir: t.TempDir()},
		LBAlgorithmsOptions{Duration: time.Second, Rate: 200, Service: time.Millisecond, Delay: 30 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	f := r.Figures
	if !r.Passed || f["scalelab_round_robin_slow_share"] < 0.2 || f["scalelab_peak_ewma_slow_share"] >= f["scalelab_round_robin_slow_share"] {
		t.Fatalf("passed %v, figures %v, lesson %v", r.Passed, f, r.Lesson)
	}
}

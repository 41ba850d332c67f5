package cascade

import (
	"strings"
	"testing"
	"time"
)

func modes(naiveCatalogStall, protCatalogStall PhaseResult, naiveRec, protRec float64) []*ModeResult {
	before := PhaseResult{OKPerS: 50, P50: 2, P99: 8}
	naive := &ModeResult{Name: "resilience off", Phases: map[string]PhaseResult{
		"catalog/before": before, "catalog/stall": naiveCatalogStall,
		"checkout/stall": {OKPerS: 0, ErrPerS: 1, P50: 8000, P99: 10000}}, RecoveryS: naiveRec, PeakIn: 64}
	prot := &ModeResult{Name: "resilience on", Protect: true, Phases: map[string]PhaseResult{
		"catalog/before": before, "catalog/stall": protCatalogStall,
		"checkout/stall": {OKPerS: 0, ErrPerS: 30, P50: 3, P99: 50}}, RecoveryS: protRec, PeakIn: 9}
	return []*ModeResult{naive, prot}
}

func TestLessonStatesWhatTheFiguresShow(t *testing.T) {
	long := DefaultConfig()
	short := long
	short.Duration, short.StallAt, short.StallFor = 10*time.Second, 2*time.Second, 3*time.Second
	spread := PhaseResult{OKPerS: 12, ErrPerS: 30, P99: 9000}
	held := PhaseResult{OKPerS: 50, P99: 9}
	for _, tc := range []struct {
		name     string
		cfg      Config
		results  []*ModeResult
		want     []string
		wantNone []string
	}{
		{"the cascade shows", long, modes(spread, held, 1, 3),
			[]string{"spread without protection", "50.0 to 12.0", "catalog held", "failed fast", "More errors with protection is the point", "waits for its breaker"},
			[]string{"too short", "did not spread"}},
		{"too short, protection looks worse", short, modes(spread, held, 1, 4),
			[]string{"too short to read the lesson", "3 s and 5 s followed", "waits for its breaker"}, nil},
		{"too light to spread", long, modes(PhaseResult{OKPerS: 50, P99: 9}, held, 0, 0),
			[]string{"did not spread", "Raise --checkout-rate"}, []string{"spread without protection"}},
		{"protection failed too", long, modes(spread, PhaseResult{OKPerS: 10, ErrPerS: 20}, -1, -1),
			[]string{"suffered in both modes", "not within the run"}, nil},
	} {
		got := strings.Join(Lesson(tc.cfg, tc.results), "\n")
		for _, w := range tc.want {
			if !strings.Contains(got, w) {
				t.Errorf("%s: missing %q in\n%s", tc.name, w, got)
			}
		}
		for _, w := range tc.wantNone {
			if strings.Contains(got, w) {
				t.Errorf("%s: unexpected %q in\n%s", tc.name, w, got)
			}
		}
	}
}

// What the unprotected checkouts did during the stall is read from their
// latencies: hung (slow median), hung then shed (slow p99, fast median:
// the full shop refused the rest), or no slower.
func TestCheckoutSentenceFollowsTheLatencies(t *testing.T) {
	cfg := DefaultConfig()
	for _, tc := range []struct {
		naive PhaseResult
		want  string
	}{
		{PhaseResult{ErrPerS: 1, P50: 8000, P99: 10000}, "Without it checkouts hung (median latency 8.0 s"},
		{PhaseResult{ErrPerS: 36, P50: 0.7, P99: 10000}, "the first checkouts hung until the client gave up (worst p99 10.0 s) and held the shop's request slots; the ones after them were shed"},
		{PhaseResult{ErrPerS: 30, P50: 3, P99: 60}, "no slower than with it in this run"},
	} {
		rs := modes(PhaseResult{OKPerS: 12, ErrPerS: 30, P99: 9000}, PhaseResult{OKPerS: 50, P99: 9}, 1, 3)
		rs[0].Phases["checkout/stall"] = tc.naive
		if got := strings.Join(Lesson(cfg, rs), "\n"); !strings.Contains(got, tc.want) {
			t.Errorf("naive %+v: missing %q in\n%s", tc.naive, tc.want, got)
		}
	}
}

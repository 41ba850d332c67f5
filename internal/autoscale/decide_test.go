package autoscale

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

var t0 = time.Unix(1000, 0)

func at(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }

func decider(t *testing.T, p Policy) *Decider {
	t.Helper()
	d, err := NewDecider(p)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestTheHPARule(t *testing.T) {
	p := Policy{Min: 1, Max: 6, Target: 10, Tolerance: 0.1, Window: 5 * time.Minute, CoolDown: 15 * time.Second}
	for _, c := range []struct {
		current int
		metric  float64
		want    int
	}{
		{2, 30, 6},   // ceil(2 × 3)
		{2, 100, 6},  // clamped to max
		{2, 10.9, 2}, // within the tolerance
		{2, 11.1, 3}, // ceil(2 × 1.11)
		{3, 15, 5},   // ceil(4.5)
		{1, 0.5, 1},  // scale-down needs the window; and min is 1
		{4, math.NaN(), 4},
	} {
		d := decider(t, p)
		if got := d.Decide(at(0), c.current, c.metric); got.Desired != c.want {
			t.Errorf("%d copies at %v: %d (%s), want %d", c.current, c.metric, got.Desired, got.Reason, c.want)
		}
	}
}

// A dip does not remove copies at once: down only when every
// recommendation of the last 5 minutes is lower.
func TestScaleDownWaitsOutTheWindow(t *testing.T) {
	d := decider(t, Policy{Min: 1, Max: 10, Target: 10, Tolerance: 0.1, Window: 5 * time.Minute})
	if got := d.Decide(at(0), 4, 10); got.Desired != 4 {
		t.Fatalf("on target: %+v", got)
	}
	for s := 60; s <= 300; s += 60 {
		if got := d.Decide(at(s), 4, 5); got.Desired != 4 || got.Raw != 2 || !strings.Contains(got.Reason, "stabilisation") {
			t.Fatalf("at %d s, half the target: %+v — want to hold 4 while the 4 of 0 s is in the window", s, got)
		}
	}
	if got := d.Decide(at(301), 4, 5); got.Desired != 2 {
		t.Fatalf("at 301 s: %+v, want 2", got)
	}
	// A burst inside the window is not undone by the dip after it.
	d = decider(t, Policy{Min: 1, Max: 10, Target: 10, Tolerance: 0.1, Window: time.Minute})
	d.Decide(at(0), 2, 40) // → 8
	if got := d.Decide(at(30), 8, 2); got.Desired != 8 {
		t.Fatalf("dip after burst: %+v", got)
	}
	if got := d.Decide(at(61), 8, 2); got.Desired != 2 {
		t.Fatalf("after the window: %+v, want ceil(8 × 0.2) = 2", got)
	}
}

func TestCoolDownHoldsAfterAChange(t *testing.T) {
	d := decider(t, Policy{Min: 1, Max: 10, Target: 10, Tolerance: 0.1, CoolDown: 15 * time.Second})
	if got := d.Decide(at(0), 1, 30); got.Desired != 3 {
		t.Fatalf("%+v", got)
	}
	if got := d.Decide(at(10), 3, 30); got.Desired != 3 || got.Raw != 9 || !strings.Contains(got.Reason, "cooling down") {
		t.Fatalf("inside the cool-down: %+v", got)
	}
	if got := d.Decide(at(15), 3, 30); got.Desired != 9 {
		t.Fatalf("after it: %+v", got)
	}
}

func TestBoundsAndBadPolicies(t *testing.T) {
	d := decider(t, Policy{Min: 2, Max: 4, Target: 1})
	if got := d.Decide(at(0), 1, 1); got.Desired != 2 {
		t.Fatalf("below min (a copy crashed): %+v", got)
	}
	if got := d.Decide(at(0), 5, 1); got.Desired != 4 {
		t.Fatalf("above max: %+v", got)
	}
	for _, p := range []Policy{{Min: 0, Max: 1, Target: 1}, {Min: 3, Max: 2, Target: 1}, {Min: 1, Max: 2}, {Min: 1, Max: 2, Target: 1, Tolerance: 1}, {Min: 1, Max: 2, Target: math.NaN()}} {
		if _, err := NewDecider(p); err == nil {
			t.Errorf("policy %+v accepted", p)
		}
	}
}

// Whatever the metric does: the answer is within the bounds, changes no
// sooner than the cool-down after the last change, and never goes below
// a recommendation made within the window.
func TestDecisionsKeepTheirPromises(t *testing.T) {
	r := rand.New(rand.NewPCG(42, 1))
	p := Policy{Min: 1, Max: 8, Target: 10, Tolerance: 0.1, Window: 60 * time.Second, CoolDown: 10 * time.Second}
	d := decider(t, p)
	current, lastChange := 3, time.Time{}
	type rec struct {
		at time.Time
		n  int
	}
	var recs []rec
	for s := 0; s < 5000; s += 1 + r.IntN(5) {
		now := at(s)
		metric := r.Float64() * 40
		if r.IntN(50) == 0 {
			metric = math.NaN()
		}
		got := d.Decide(now, current, metric)
		if got.Desired < p.Min || got.Desired > p.Max {
			t.Fatalf("at %d s: %d outside the bounds", s, got.Desired)
		}
		if !math.IsNaN(metric) {
			recs = append(recs, rec{now, min(max(got.Raw, p.Min), p.Max)})
		}
		if got.Desired != current {
			if !lastChange.IsZero() && now.Sub(lastChange) < p.CoolDown {
				t.Fatalf("at %d s: changed %d → %d within the cool-down", s, current, got.Desired)
			}
			if got.Desired < current {
				for _, x := range recs {
					if now.Sub(x.at) <= p.Window && x.n > got.Desired {
						t.Fatalf("at %d s: down to %d though %d was recommended at %v", s, got.Desired, x.n, x.at.Sub(t0))
					}
				}
			}
			current, lastChange = got.Desired, now
		}
	}
}

// The reason names what held the fleet: the tolerance, a bound, the window.
func TestDecisionReasons(t *testing.T) {
	d, _ := NewDecider(Policy{Min: 1, Max: 4, Target: 100, Tolerance: 0.1, Window: time.Minute})
	t0 := time.Unix(0, 0)
	for _, c := range []struct {
		current int
		metric  float64
		want    string
	}{
		{1, 105, "within 10 % of target 100: holding 1"},
		{1, 0, "the rule asks for 1; holding 1, the bound of [1, 4]"},
		{4, 900, "the rule asks for 36; holding 4, the bound of [1, 4]"},
	} {
		if got := d.Decide(t0, c.current, c.metric); got.Desired != c.current || !strings.Contains(got.Reason, c.want) {
			t.Errorf("%d copies at %v: %q, want it to say %q", c.current, c.metric, got.Reason, c.want)
		}
	}
}

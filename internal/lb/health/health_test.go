package health

import (
	"reflect"
	"testing"
	"time"
)

var t0 = time.Unix(1000, 0)

func at(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }

func TestCheckerNeedsRiseAndFallInARow(t *testing.T) {
	c := NewChecker(2, 3, true, t0)
	steps := []struct {
		ok          bool
		changed, up bool
	}{
		{false, false, true}, {false, false, true}, {true, false, true}, // two failures, then a success: the streak resets
		{false, false, true}, {false, false, true}, {false, true, false}, // three in a row: down
		{true, false, false}, {false, false, false}, {true, false, false}, {true, true, true}, // rise 2 in a row: up
	}
	for i, s := range steps {
		now := at(float64(i + 1))
		if changed := c.Observe(s.ok, now); changed != s.changed {
			t.Fatalf("probe %d (%v): changed %v, want %v", i, s.ok, changed, s.changed)
		}
		if up, since := c.Up(); up != s.up || (s.changed && !since.Equal(now)) {
			t.Fatalf("probe %d: up %v since %v, want up %v", i, up, since, s.up)
		}
	}
}

// Five gateway failures in a row eject for the base time; each later
// ejection is longer, up to the cap; a success in between resets the run.
func TestOutlierEjectionGrowsWithEachEjection(t *testing.T) {
	o := NewOutliers(OutlierConfig{Consecutive: 3, BaseEjection: 10 * time.Second, MaxEjection: 25 * time.Second, MaxEjectedShare: 0.5})
	fail := func(s float64, n int) bool {
		ejected := false
		for i := 0; i < n; i++ {
			ejected = o.Observe("a", false, at(s), 4) || ejected
		}
		return ejected
	}
	if fail(0, 2) {
		t.Fatal("ejected after 2 of 3")
	}
	o.Observe("a", true, at(0), 4)
	if fail(0, 2) {
		t.Fatal("a success did not reset the run")
	}
	if !fail(1, 1) {
		t.Fatal("not ejected after 3 in a row")
	}
	for _, c := range []struct {
		at   float64
		want bool
	}{{10.9, true}, {11, false}} {
		if got, _ := o.Ejected("a", at(c.at)); got != c.want {
			t.Fatalf("at %vs ejected %v, want %v", c.at, got, c.want)
		}
	}
	if back := o.Back("a", at(12)); !back.Equal(at(11)) {
		t.Fatalf("came back at %v, want 11 s (the start of its slow start)", back)
	}
	if !fail(12, 3) {
		t.Fatal("second ejection")
	}
	if _, until := o.Ejected("a", at(12)); !until.Equal(at(32)) {
		t.Fatalf("second ejection until %v, want 20 s later", until)
	}
	fail(32, 3)
	if _, until := o.Ejected("a", at(32)); !until.Equal(at(57)) {
		t.Fatalf("third ejection until %v, want the 25 s cap", until)
	}
}

// Healthy time takes the multiplier down: a backend that failed once long
// ago gets the base ejection again.
func TestOutlierMultiplierDecays(t *testing.T) {
	o := NewOutliers(OutlierConfig{Consecutive: 1, BaseEjection: 10 * time.Second, MaxEjection: time.Minute, MaxEjectedShare: 1, Decay: 30 * time.Second})
	o.Observe("a", false, at(0), 2)  // ejected 10 s (×1)
	o.Observe("a", false, at(10), 2) // ejected 20 s (×2)
	if _, until := o.Ejected("a", at(10)); !until.Equal(at(30)) {
		t.Fatalf("until %v", until)
	}
	// Back at 30 s; healthy 60 s: the multiplier decays from 2 to 0.
	o.Observe("a", false, at(90), 2)
	if _, until := o.Ejected("a", at(90)); !until.Equal(at(100)) {
		t.Fatalf("after decay, until %v, want the base 10 s", until)
	}
}

// Never more than the share of the pool out at once, but always one may be.
func TestOutlierEjectsAtMostItsShareButAtLeastOne(t *testing.T) {
	o := NewOutliers(OutlierConfig{Consecutive: 1, BaseEjection: time.Minute, MaxEjectedShare: 0.5})
	for _, id := range []string{"a", "b", "c", "d"} {
		o.Observe(id, false, at(1), 4)
	}
	if got := o.EjectedIDs(at(2)); !reflect.DeepEqual(got, []string{"a", "b"}) {
		t.Fatalf("ejected %v, want half of four", got)
	}
	small := NewOutliers(OutlierConfig{Consecutive: 1, BaseEjection: time.Minute, MaxEjectedShare: 0.1})
	small.Observe("a", false, at(1), 3)
	small.Observe("b", false, at(1), 3)
	if got := small.EjectedIDs(at(2)); !reflect.DeepEqual(got, []string{"a"}) {
		t.Fatalf("ejected %v, want exactly one though 10 %% of 3 rounds to none", got)
	}
	// When a's ejection ends, b's next failure may eject it.
	small.Observe("b", false, at(61), 3)
	if got := small.EjectedIDs(at(61)); !reflect.DeepEqual(got, []string{"b"}) {
		t.Fatalf("after a came back: %v", got)
	}
	small.Forget("b")
	if got := small.EjectedIDs(at(62)); got != nil {
		t.Fatalf("forgotten b still ejected: %v", got)
	}
}

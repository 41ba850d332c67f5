package loadgen

import (
	"math"
	"testing"
	"time"
)

func TestConstantRateSchedule(t *testing.T) {
	s, err := ConstantRate(1000, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if s.Total() != 2000 {
		t.Fatalf("total %d", s.Total())
	}
	for _, c := range []struct {
		i    int64
		want time.Duration
	}{{0, 0}, {1, time.Millisecond}, {999, 999 * time.Millisecond}, {1999, 1999 * time.Millisecond}} {
		got, ok := s.At(c.i)
		if !ok || absDur(got-c.want) > time.Microsecond {
			t.Errorf("At(%d) = %v %v, want %v", c.i, got, ok, c.want)
		}
	}
	if _, ok := s.At(2000); ok {
		t.Error("request 2000 of 2000 scheduled")
	}
}

func TestRampSchedule(t *testing.T) {
	// 0 → 1000/s over 10 s: 5,000 requests; request i at sqrt(2·i·10/1000).
	s, err := NewSchedule(0, []Stage{{10 * time.Second, 1000}, {5 * time.Second, 1000}, {5 * time.Second, 0}})
	if err != nil {
		t.Fatal(err)
	}
	if s.Total() != 5000+5000+2500 {
		t.Fatalf("total %d", s.Total())
	}
	for _, i := range []int64{1, 100, 2500, 4999} {
		got, _ := s.At(i)
		want := time.Duration(math.Sqrt(2*float64(i)*10/1000) * float64(time.Second))
		if absDur(got-want) > time.Millisecond {
			t.Errorf("ramp At(%d) = %v, want %v", i, got, want)
		}
	}
	if got, _ := s.At(7500); absDur(got-12500*time.Millisecond) > time.Millisecond {
		t.Errorf("plateau At(7500) = %v", got)
	}
	// Offsets never go backwards, and the rate in each second matches the ramp.
	prev := time.Duration(-1)
	perSecond := make([]int, 20)
	for i := int64(0); ; i++ {
		at, ok := s.At(i)
		if !ok {
			break
		}
		if at < prev {
			t.Fatalf("At(%d) = %v < At(%d) = %v", i, at, i-1, prev)
		}
		prev = at
		perSecond[int(at/time.Second)]++
	}
	for sec, n := range perSecond {
		var want float64
		switch {
		case sec < 10:
			want = 100*float64(sec) + 50
		case sec < 15:
			want = 1000
		default:
			want = 1000 - 200*float64(sec-15) - 100
		}
		if math.Abs(float64(n)-want) > 2 {
			t.Errorf("second %d: %d requests, want %.0f", sec, n, want)
		}
	}
}

func TestParseRateAndStages(t *testing.T) {
	for in, want := range map[string]float64{"5000/s": 5000, "5000": 5000, "600/m": 10, "36/h": 0.01, "0.5/s": 0.5} {
		if got, err := ParseRate(in); err != nil || math.Abs(got-want) > 1e-9 {
			t.Errorf("ParseRate(%q) = %v, %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "0", "-5/s", "abc", "5/d", "NaN", "Inf/s", "1e9/s", "5/"} {
		if _, err := ParseRate(bad); err == nil {
			t.Errorf("ParseRate(%q) accepted", bad)
		}
	}
	st, err := ParseStages("10s:1000,30s:5000/s,10s:0")
	if err != nil || len(st) != 3 || st[1] != (Stage{30 * time.Second, 5000}) || st[2].Target != 0 {
		t.Fatalf("ParseStages: %+v %v", st, err)
	}
	for _, bad := range []string{"", "10s", "x:100", "10s:-1", "0s:10", "10s:1000,", "10s:abc"} {
		if _, err := ParseStages(bad); err == nil {
			t.Errorf("ParseStages(%q) accepted", bad)
		}
	}
	if _, err := NewSchedule(0, []Stage{{time.Second, 0}}); err != nil {
		t.Fatal(err) // an all-zero schedule is valid and empty
	}
}

func absDur(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

package loadgen

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Stage ramps the arrival rate linearly from the previous stage's target
// (or the schedule's start rate) to Target requests/s over Duration.
type Stage struct {
	Duration time.Duration
	Target   float64
}

// Schedule is the open model's timetable: the intended start of request i,
// whatever the server does. It is pure arithmetic, so every worker can ask
// for any index without coordination.
type Schedule struct {
	start  float64 // rate at t=0
	stages []stage
	total  float64 // requests in the whole schedule
}

type stage struct {
	begin      time.Duration
	length     time.Duration
	from, to   float64 // rates
	countStart float64 // requests before this stage
	count      float64 // requests in this stage
}

// ConstantRate is rate requests/s for d.
func ConstantRate(rate float64, d time.Duration) (Schedule, error) {
	return NewSchedule(rate, []Stage{{Duration: d, Target: rate}})
}

// NewSchedule builds a schedule starting at startRate and following stages.
func NewSchedule(startRate float64, stages []Stage) (Schedule, error) {
	if startRate < 0 || math.IsNaN(startRate) || math.IsInf(startRate, 0) {
		return Schedule{}, fmt.Errorf("loadgen: start rate %v must be a finite number ≥ 0", startRate)
	}
	if len(stages) == 0 {
		return Schedule{}, fmt.Errorf("loadgen: a schedule needs at least one stage")
	}
	s := Schedule{start: startRate}
	from, begin, count := startRate, time.Duration(0), 0.0
	for i, st := range stages {
		if st.Duration <= 0 {
			return Schedule{}, fmt.Errorf("loadgen: stage %d: duration must be > 0", i+1)
		}
		if st.Target < 0 || math.IsNaN(st.Target) || math.IsInf(st.Target, 0) || st.Target > 10_000_000 {
			return Schedule{}, fmt.Errorf("loadgen: stage %d: rate %v must be 0–10,000,000/s", i+1, st.Target)
		}
		n := (from + st.Target) / 2 * st.Duration.Seconds()
		s.stages = append(s.stages, stage{begin: begin, length: st.Duration, from: from, to: st.Target, countStart: count, count: n})
		from, begin, count = st.Target, begin+st.Duration, count+n
	}
	s.total = count
	return s, nil
}

// Duration is the length of the schedule.
func (s Schedule) Duration() time.Duration {
	last := s.stages[len(s.stages)-1]
	return last.begin + last.length
}

// Total is the number of requests the schedule holds (rounded down).
func (s Schedule) Total() int64 { return int64(s.total + 1e-9) }

// At returns the intended start of request i (0-based) as an offset from
// the start of the run, and false once the schedule is exhausted. Request i
// starts when the integral of the rate reaches i.
func (s Schedule) At(i int64) (time.Duration, bool) {
	x := float64(i)
	if x >= s.total-1e-9 {
		return 0, false
	}
	for _, st := range s.stages {
		if x >= st.countStart+st.count {
			continue
		}
		// Within the stage, count(t) = from·t + (to−from)·t²/(2L); solve count(t) = x − countStart.
		y := x - st.countStart
		L := st.length.Seconds()
		a := (st.to - st.from) / (2 * L)
		var t float64
		if math.Abs(a) < 1e-12 {
			t = y / st.from
		} else {
			t = (-st.from + math.Sqrt(st.from*st.from+4*a*y)) / (2 * a)
		}
		t = math.Max(0, math.Min(t, L))
		return st.begin + time.Duration(t*float64(time.Second)), true
	}
	return 0, false
}

// ParseRate reads "5000", "5000/s", "300/m" or "100/h" as requests per second.
func ParseRate(s string) (float64, error) {
	num, unit, slash := strings.Cut(strings.TrimSpace(s), "/")
	v, err := strconv.ParseFloat(num, 64)
	per, ok := map[string]float64{"": 1, "s": 1, "m": 60, "h": 3600}[unit]
	if err != nil || !ok || (slash && unit == "") || v <= 0 || math.IsInf(v, 0) || math.IsNaN(v) || v/per > 10_000_000 {
		return 0, fmt.Errorf("bad rate %q: want N/s, N/m or N/h with 0 < N/s ≤ 10,000,000, e.g. 5000/s", s)
	}
	return v / per, nil
}

// ParseStages reads "10s:1000,30s:5000,10s:0": each stage ramps linearly to
// its rate (requests/s) over its duration.
func ParseStages(s string) ([]Stage, error) {
	var out []Stage
	for _, part := range strings.Split(s, ",") {
		d, r, ok := strings.Cut(strings.TrimSpace(part), ":")
		if !ok {
			return nil, fmt.Errorf("bad stage %q: want DURATION:RATE, e.g. 30s:5000", part)
		}
		dur, err := time.ParseDuration(d)
		if err != nil || dur <= 0 {
			return nil, fmt.Errorf("bad stage %q: duration %q", part, d)
		}
		rate := 0.0
		if strings.TrimSpace(r) != "0" {
			if rate, err = ParseRate(r); err != nil {
				return nil, fmt.Errorf("bad stage %q: %w", part, err)
			}
		}
		out = append(out, Stage{Duration: dur, Target: rate})
	}
	return out, nil
}

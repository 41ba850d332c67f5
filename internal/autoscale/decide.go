package autoscale

import (
	"fmt"
	"math"
	"time"
)

// Policy is what the operator asks for.
type Policy struct {
	Min, Max  int
	Target    float64       // the metric per copy to hold
	Tolerance float64       // relative band without action (HPA: 0.1)
	Window    time.Duration // scale-down stabilisation (HPA: 5 min)
	CoolDown  time.Duration // no change sooner than this after the last one
}

// DefaultPolicy is HPA's defaults for tolerance and stabilisation, with a
// cool-down of 15 s (HPA's sync period).
func DefaultPolicy(min, max int, target float64) Policy {
	return Policy{Min: min, Max: max, Target: target, Tolerance: 0.1, Window: 5 * time.Minute, CoolDown: 15 * time.Second}
}

// Check reports a policy that cannot work.
func (p Policy) Check() error {
	switch {
	case p.Min < 1 || p.Max < p.Min:
		return fmt.Errorf("autoscale: want 1 ≤ min ≤ max, have min %d max %d", p.Min, p.Max)
	case !(p.Target > 0):
		return fmt.Errorf("autoscale: the target must be above zero")
	case p.Tolerance < 0 || p.Tolerance >= 1:
		return fmt.Errorf("autoscale: the tolerance is a fraction below 1")
	}
	return nil
}

// Decision is one round's outcome.
type Decision struct {
	Desired int
	// Raw is the rule's answer before stabilisation, cool-down and bounds.
	Raw    int
	Reason string
}

// Decider applies a Policy round after round. It is not safe for
// concurrent use.
type Decider struct {
	p          Policy
	recs       []recommendation // within the window, oldest first
	lastChange time.Time
}

type recommendation struct {
	at      time.Time
	desired int
}

// NewDecider checks the policy and starts deciding.
func NewDecider(p Policy) (*Decider, error) {
	if err := p.Check(); err != nil {
		return nil, err
	}
	return &Decider{p: p}, nil
}

// Decide returns how many copies should run, given how many run now and
// their mean metric at now.
func (d *Decider) Decide(now time.Time, current int, metric float64) Decision {
	p := d.p
	clamp := func(n int) int { return min(max(n, p.Min), p.Max) }
	if current < p.Min || current > p.Max { // outside the bounds: correct at once
		return d.change(now, Decision{Desired: clamp(current), Raw: current, Reason: fmt.Sprintf("%d copies is outside [%d, %d]", current, p.Min, p.Max)})
	}
	if math.IsNaN(metric) || math.IsInf(metric, 0) || metric < 0 {
		return Decision{Desired: current, Raw: current, Reason: "no metric: holding"}
	}
	ratio := metric / p.Target
	raw := current
	within := math.Abs(ratio-1) <= p.Tolerance
	if !within {
		raw = int(math.Ceil(float64(current) * ratio))
		if metric == 0 {
			raw = p.Min
		}
	}
	desired := clamp(raw)
	// Stabilise scale-down: the highest recommendation in the window.
	d.recs = append(d.recs, recommendation{now, desired})
	keep := d.recs[:0]
	for _, r := range d.recs {
		if now.Sub(r.at) <= p.Window {
			keep = append(keep, r)
		}
	}
	d.recs = keep
	if desired < current {
		highest := desired
		for _, r := range d.recs {
			highest = max(highest, r.desired)
		}
		if highest > desired {
			desired = min(highest, current)
		}
	}
	reason := fmt.Sprintf("metric %.3g against target %.3g (ratio %.2f): the rule asks for %d", metric, p.Target, ratio, raw)
	if desired == current {
		switch {
		case within:
			reason = fmt.Sprintf("metric %.3g within %.0f %% of target %.3g: holding %d", metric, 100*p.Tolerance, p.Target, current)
		case clamp(raw) == current:
			reason += fmt.Sprintf("; holding %d, the bound of [%d, %d]", current, p.Min, p.Max)
		case raw < current:
			reason += fmt.Sprintf("; holding %d: a higher recommendation is within the %v stabilisation window", current, p.Window)
		}
		return Decision{Desired: current, Raw: raw, Reason: reason}
	}
	if !d.lastChange.IsZero() && now.Sub(d.lastChange) < p.CoolDown {
		return Decision{Desired: current, Raw: raw, Reason: reason + fmt.Sprintf("; cooling down until %v after the last change", p.CoolDown)}
	}
	return d.change(now, Decision{Desired: desired, Raw: raw, Reason: reason})
}

func (d *Decider) change(now time.Time, dec Decision) Decision {
	d.lastChange = now
	return dec
}

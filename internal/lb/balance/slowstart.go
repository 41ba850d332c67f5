package balance

import (
	"math"
	"time"
)

// SlowStart is the share of its weight a backend gets since it became
// healthy: it grows from Floor to 1 over Window, as (t / Window)^(1 /
// Aggression) — Aggression 1 is linear, larger ramps faster at first
// (Envoy's shape). Floor is never below 0.01: a backend in slow start
// must get some traffic, or it never warms up (envoy #19437).
type SlowStart struct {
	Window     time.Duration
	Aggression float64
	Floor      float64
}

// DefaultSlowStart is 30 s, linear, from a tenth.
var DefaultSlowStart = SlowStart{Window: 30 * time.Second, Aggression: 1, Floor: 0.1}

// Factor is the share at time since the backend came back.
func (s SlowStart) Factor(since time.Duration) float64 {
	if s.Window <= 0 || since >= s.Window {
		return 1
	}
	floor := math.Min(math.Max(s.Floor, 0.01), 1)
	if since <= 0 {
		return floor
	}
	aggr := s.Aggression
	if aggr <= 0 {
		aggr = 1
	}
	f := math.Pow(since.Seconds()/s.Window.Seconds(), 1/aggr)
	return math.Max(floor, f)
}

package balance

import (
	"math"
	"sync"
	"time"
)

// PeakEWMA is one backend's latency estimate, as Finagle's and Linkerd's
// balancers keep it: a response slower than the estimate replaces it at
// once (the peak), a faster one pulls it down by an exponentially
// weighted average whose weight depends on the time since the last
// update (decay time Tau). Reading the cost decays it too, towards zero:
// a backend nobody sends to becomes cheap again and is tried, so one slow
// response cannot starve it for good.
type PeakEWMA struct {
	Tau time.Duration

	mu      sync.Mutex
	value   float64 // seconds
	stamp   time.Time
	started bool
}

// DefaultTau is Finagle's decay time.
const DefaultTau = 10 * time.Second

// Observe records one response time at now.
func (e *PeakEWMA) Observe(rtt time.Duration, now time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.observe(rtt.Seconds(), now)
}

func (e *PeakEWMA) observe(rtt float64, now time.Time) {
	tau := e.Tau
	if tau <= 0 {
		tau = DefaultTau
	}
	if !e.started {
		e.value, e.stamp, e.started = rtt, now, true
		return
	}
	dt := max(now.Sub(e.stamp), 0)
	e.stamp = now
	if rtt > e.value {
		e.value = rtt
		return
	}
	w := math.Exp(-dt.Seconds() / tau.Seconds())
	e.value = e.value*w + rtt*(1-w)
}

// Cost is the estimate at now, in seconds, decayed towards zero for the
// time since the last response. A backend with no response yet costs
// unknown: the pool passes the mean of the others, so it is neither
// shunned nor flooded.
func (e *PeakEWMA) Cost(now time.Time) (cost float64, known bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.started {
		return 0, false
	}
	e.observe(0, now)
	return e.value, true
}

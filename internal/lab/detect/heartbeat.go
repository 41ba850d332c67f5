package detect

import (
	"sort"
	"time"
)

// Heartbeat is a timeout detector's decision, without IO: Beat records a
// heartbeat, Check says who has been silent too long. The clock is the
// caller's.
type Heartbeat struct {
	timeout time.Duration
	last    map[string]time.Time
	failed  map[string]bool
}

// NewHeartbeat watches members that have been silent for timeout.
func NewHeartbeat(timeout time.Duration) *Heartbeat {
	return &Heartbeat{timeout: timeout, last: map[string]time.Time{}, failed: map[string]bool{}}
}

// Beat records a heartbeat of name at now. It returns true when name had
// been declared failed: it is alive again (and was alive all along, if it
// was only slow).
func (h *Heartbeat) Beat(name string, now time.Time) (revived bool) {
	if prev, ok := h.last[name]; ok && now.Before(prev) {
		return false // a beat older than one already recorded says nothing new
	}
	h.last[name] = now
	if h.failed[name] {
		delete(h.failed, name)
		return true
	}
	return false
}

// Check returns the members newly declared failed at now: silent for
// longer than the timeout since their last beat. A member is declared once
// per silence.
func (h *Heartbeat) Check(now time.Time) []string {
	var out []string
	for name, at := range h.last {
		if !h.failed[name] && now.Sub(at) > h.timeout {
			h.failed[name] = true
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// Failed reports whether name is declared failed.
func (h *Heartbeat) Failed(name string) bool { return h.failed[name] }

// Forget stops watching name (it left).
func (h *Heartbeat) Forget(name string) {
	delete(h.last, name)
	delete(h.failed, name)
}

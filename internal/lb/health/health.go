package health

import (
	"math"
	"sort"
	"time"
)

// Checker is the rise/fall state of one backend's active checks.
type Checker struct {
	Rise, Fall int

	up     bool
	streak int // consecutive probes that disagree with the state
	since  time.Time
}

// NewChecker starts a backend down or up; a new backend usually starts up
// (it was added on purpose) and proves otherwise.
func NewChecker(rise, fall int, up bool, now time.Time) *Checker {
	return &Checker{Rise: max(rise, 1), Fall: max(fall, 1), up: up, since: now}
}

// Observe records one probe's outcome at now and reports whether the
// state changed.
func (c *Checker) Observe(ok bool, now time.Time) (changed bool) {
	if ok == c.up {
		c.streak = 0
		return false
	}
	c.streak++
	need := c.Fall
	if !c.up {
		need = c.Rise
	}
	if c.streak < need {
		return false
	}
	c.up, c.streak, c.since = ok, 0, now
	return true
}

// Up reports the verdict, and since when it has held.
func (c *Checker) Up() (up bool, since time.Time) { return c.up, c.since }

// OutlierConfig is Envoy's outlier detection, the parts that matter here.
type OutlierConfig struct {
	Consecutive     int           // gateway failures in a row that eject (Envoy: 5)
	BaseEjection    time.Duration // first ejection's length (Envoy: 30 s)
	MaxEjection     time.Duration // cap on an ejection's length (Envoy: 300 s)
	MaxEjectedShare float64       // of the pool, ejected at once (at least one backend)
	Decay           time.Duration // healthy time that takes one off the ejection count
}

// DefaultOutliers ejects after 5 failures in a row for 30 s, then 60 s …
// at most 5 minutes, at most half the pool.
var DefaultOutliers = OutlierConfig{Consecutive: 5, BaseEjection: 30 * time.Second, MaxEjection: 5 * time.Minute, MaxEjectedShare: 0.5, Decay: 30 * time.Second}

// Outliers is the passive detector of one pool. It is not safe for
// concurrent use: the pool serialises its calls.
type Outliers struct {
	cfg      OutlierConfig
	backends map[string]*outlierState
}

type outlierState struct {
	failures  int       // consecutive gateway failures
	ejections int       // the multiplier: times ejected, less decay
	until     time.Time // ejected until (zero: not ejected)
	back      time.Time // when it last came back (for slow start); zero: never ejected
	healthyAt time.Time // since when it has gone without ejection (for decay)
}

// NewOutliers makes a detector.
func NewOutliers(cfg OutlierConfig) *Outliers {
	if cfg.Consecutive < 1 {
		cfg.Consecutive = DefaultOutliers.Consecutive
	}
	if cfg.BaseEjection <= 0 {
		cfg.BaseEjection = DefaultOutliers.BaseEjection
	}
	if cfg.MaxEjection < cfg.BaseEjection {
		cfg.MaxEjection = max(DefaultOutliers.MaxEjection, cfg.BaseEjection)
	}
	if cfg.MaxEjectedShare <= 0 || cfg.MaxEjectedShare > 1 {
		cfg.MaxEjectedShare = DefaultOutliers.MaxEjectedShare
	}
	return &Outliers{cfg: cfg, backends: map[string]*outlierState{}}
}

func (o *Outliers) state(id string, now time.Time) *outlierState {
	s := o.backends[id]
	if s == nil {
		s = &outlierState{healthyAt: now}
		o.backends[id] = s
	}
	return s
}

// Forget drops a backend removed from the pool.
func (o *Outliers) Forget(id string) { delete(o.backends, id) }

// Observe records one response from id at now: ok false for a gateway
// failure. It reports whether the backend was ejected by it; pool is the
// number of backends in the pool (for the ejected share).
func (o *Outliers) Observe(id string, ok bool, now time.Time, pool int) (ejected bool) {
	o.expire(now)
	s := o.state(id, now)
	if ok {
		s.failures = 0
		return false
	}
	s.failures++
	if s.failures < o.cfg.Consecutive || !s.until.IsZero() {
		return false
	}
	limit := max(1, int(math.Floor(o.cfg.MaxEjectedShare*float64(pool))))
	if o.ejectedCount() >= limit {
		return false // too much of the pool is out already: keep it, keep counting
	}
	s.ejections++
	d := time.Duration(s.ejections) * o.cfg.BaseEjection
	if d > o.cfg.MaxEjection {
		d = o.cfg.MaxEjection
	}
	s.until, s.failures = now.Add(d), 0
	return true
}

// expire ends ejections whose time is up and decays the multipliers of
// backends that stayed healthy.
func (o *Outliers) expire(now time.Time) {
	for _, s := range o.backends {
		if !s.until.IsZero() && !now.Before(s.until) {
			s.back, s.healthyAt, s.until = s.until, s.until, time.Time{}
		}
		if s.until.IsZero() && s.ejections > 0 && o.cfg.Decay > 0 {
			for s.ejections > 0 && now.Sub(s.healthyAt) >= o.cfg.Decay {
				s.ejections--
				s.healthyAt = s.healthyAt.Add(o.cfg.Decay)
			}
		}
	}
}

func (o *Outliers) ejectedCount() int {
	n := 0
	for _, s := range o.backends {
		if !s.until.IsZero() {
			n++
		}
	}
	return n
}

// Ejected reports whether id is out at now, and until when.
func (o *Outliers) Ejected(id string, now time.Time) (bool, time.Time) {
	o.expire(now)
	s := o.backends[id]
	if s == nil || s.until.IsZero() {
		return false, time.Time{}
	}
	return true, s.until
}

// Back is when id last came back from an ejection (zero if never): the
// start of its slow start.
func (o *Outliers) Back(id string, now time.Time) time.Time {
	o.expire(now)
	if s := o.backends[id]; s != nil {
		return s.back
	}
	return time.Time{}
}

// EjectedIDs lists the backends out at now.
func (o *Outliers) EjectedIDs(now time.Time) []string {
	o.expire(now)
	var out []string
	for id, s := range o.backends {
		if !s.until.IsZero() {
			out = append(out, id)
		}
	}
	sort.Strings(out)
	return out
}

// Package health decides whether a backend may take traffic, without IO:
// the verdicts of active checks and of passive outlier detection, from
// observations and the caller's clock.
//
// Active checks (Checker) probe each backend on an interval; a backend
// goes down after Fall consecutive failed probes and up again after Rise
// consecutive good ones (HAProxy's rise/fall). One bad probe of a healthy
// backend, or one good probe of a dead one, changes nothing: a flapping
// backend does not flap the pool.
//
// Passive outlier detection (Outliers) watches the real traffic, as
// Envoy's does: after Consecutive gateway failures in a row (5xx, a
// refused or reset connection, a timeout) a backend is ejected for
// BaseEjection × the number of times it has been ejected (capped at
// MaxEjection), so a backend that keeps failing stays out longer each
// time; each Decay interval it spends healthy takes one off that count.
// At most MaxEjectedShare of the pool is ejected at once, but at least
// one backend may always be: with every backend failing, ejecting them
// all would leave nothing to serve even the requests that succeed.
//
// A backend that comes back (up again, or its ejection over) starts its
// slow start from that moment (Since), which the pool turns into a weight
// with balance.SlowStart.
package health

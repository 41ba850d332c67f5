package loadgen

import (
	"errors"
	"io"
	"net"
	"sync"
	"syscall"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
)

// Latencies are recorded in microseconds from 1 µs to 1 hour with three
// significant digits: exact enough for any percentile we print, and the
// histograms merge losslessly (per second, across workers, across runs).
const (
	histLowest  = 1
	histHighest = 3_600_000_000
	histSigFigs = 3
)

// NewHistogram is the latency histogram every generator records into (µs).
func NewHistogram() *hdr.Histogram { return hdr.New(histLowest, histHighest, histSigFigs) }

// ErrorKind classifies a failed request.
type ErrorKind int

// The error kinds, in report order.
const (
	ErrNone ErrorKind = iota
	ErrTimeout
	ErrRefused
	ErrReset
	ErrClosed
	ErrProtocol
	ErrOther
	ErrStatus4xx
	ErrStatus5xx
	numErrorKinds
)

var errorKindNames = [numErrorKinds]string{"", "timeout", "refused", "reset", "closed", "protocol", "other", "status_4xx", "status_5xx"}

func (k ErrorKind) String() string { return errorKindNames[k] }

// errProtocol marks a response we could not parse.
var errProtocol = errors.New("loadgen: malformed response")

// classify maps a transport error to its kind.
func classify(err error) ErrorKind {
	var ne net.Error
	switch {
	case err == nil:
		return ErrNone
	case errors.As(err, &ne) && ne.Timeout():
		return ErrTimeout
	case errors.Is(err, syscall.ECONNREFUSED):
		return ErrRefused
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return ErrReset
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed):
		return ErrClosed
	case errors.Is(err, errProtocol):
		return ErrProtocol
	}
	return ErrOther
}

// counts are the tallies kept beside a histogram.
type counts struct {
	requests int64
	errors   int64
	bytes    int64
	byKind   [numErrorKinds]int64
	byClass  [6]int64 // status 1xx … 5xx at index 1 … 5
	// byStatus counts exact status codes; a map, since a run sees a few
	// codes and a worker must stay small (thousands of them at once).
	byStatus map[int]int64
}

func (c *counts) add(o *counts) {
	c.requests += o.requests
	c.errors += o.errors
	c.bytes += o.bytes
	for i := range c.byKind {
		c.byKind[i] += o.byKind[i]
	}
	for i := range c.byClass {
		c.byClass[i] += o.byClass[i]
	}
	for code, n := range o.byStatus {
		if c.byStatus == nil {
			c.byStatus = map[int]int64{}
		}
		c.byStatus[code] += n
	}
}

// recorder is the tallies since the last harvest of the workers that share
// it (a few per P: a mutex held for an increment is nearly uncontended,
// and the run's memory does not grow with its workers); the run's totals
// are the sum of the harvests.
type recorder struct {
	mu        sync.Mutex
	sec       *hdr.Histogram
	secCounts counts
}

func newRecorder() *recorder { return &recorder{sec: NewHistogram()} }

// record one request: its latency, status (0 if none), response bytes and error.
func (r *recorder) record(latency time.Duration, status int, bytes int64, err error) {
	us := latency.Microseconds()
	if us < histLowest {
		us = histLowest
	}
	if us > histHighest {
		us = histHighest
	}
	kind := classify(err)
	if kind == ErrNone && status >= 500 {
		kind = ErrStatus5xx
	} else if kind == ErrNone && status >= 400 {
		kind = ErrStatus4xx
	}
	r.mu.Lock()
	_ = r.sec.RecordValue(us)
	c := &r.secCounts
	c.requests++
	c.bytes += bytes
	if kind != ErrNone {
		c.errors++
		c.byKind[kind]++
	}
	if status >= 100 && status < 600 {
		c.byClass[status/100]++
		if c.byStatus == nil {
			c.byStatus = map[int]int64{}
		}
		c.byStatus[status]++
	}
	r.mu.Unlock()
}

// harvest moves the worker's last-second tallies into h and c.
func (r *recorder) harvest(h *hdr.Histogram, c *counts) {
	r.mu.Lock()
	h.Merge(r.sec)
	c.add(&r.secCounts)
	r.sec.Reset()
	r.secCounts = counts{}
	r.mu.Unlock()
}

// SecondStats are the tallies of one second of the run.
type SecondStats struct {
	T        int     `json:"t"` // seconds since start, ending this interval
	Requests int64   `json:"requests"`
	Errors   int64   `json:"errors"`
	RPS      float64 `json:"rps"`
	P50      float64 `json:"p50_ms"`
	P90      float64 `json:"p90_ms"`
	P99      float64 `json:"p99_ms"`
	Max      float64 `json:"max_ms"`
}

func ms(us int64) float64 { return float64(us) / 1000 }

func secondStats(t int, elapsed time.Duration, h *hdr.Histogram, c *counts) SecondStats {
	s := SecondStats{T: t, Requests: c.requests, Errors: c.errors}
	if elapsed > 0 {
		s.RPS = float64(c.requests) / elapsed.Seconds()
	}
	if h.TotalCount() > 0 {
		s.P50, s.P90, s.P99, s.Max = ms(h.ValueAtQuantile(50)), ms(h.ValueAtQuantile(90)), ms(h.ValueAtQuantile(99)), ms(h.Max())
	}
	return s
}

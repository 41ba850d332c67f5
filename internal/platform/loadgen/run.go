package loadgen

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
)

// Plan describes a run: what to send (HTTP or WS), under which model, for
// how long. The open model is chosen by Rate or Stages, the closed one by
// VUs.
type Plan struct {
	HTTP *HTTPTarget
	WS   *WSTarget

	// Open model: requests start at their scheduled times whatever the
	// server does; latency is measured from the scheduled time.
	Rate   float64 // requests/s (the start rate when Stages are given)
	Stages []Stage

	// Closed model: VUs virtual users, each sending, waiting, thinking.
	VUs   int
	Think time.Duration

	Duration    time.Duration // how long to send (open model: the schedule's length by default)
	Requests    int64         // stop after this many requests (0: no limit)
	Connections int           // open model: connections, and so requests in flight (default 64)
	Timeout     time.Duration // per request (default 10s)
	// Deadline is the hard limit of the whole run, whatever else happens
	// (default: duration + timeout + 5s, or 10 minutes with only Requests).
	Deadline    time.Duration
	AllowRemote bool   // allow targets outside the loopback range
	Seed        uint64 // for templates' {{rand}} and {{uuid}}; 0 picks one

	// Progress, if set, is called once a second with that second's
	// statistics and the totals so far.
	Progress func(sec SecondStats, total Totals)
}

// Totals are the running totals handed to Progress.
type Totals struct {
	Requests, Errors int64
	Elapsed          time.Duration
	Remaining        time.Duration
}

// Result is what a run measured. Latency is the merged histogram of every
// request (microseconds); it and PerSecond are what reports are made of.
type Result struct {
	Target      string
	Model       string // "open" or "closed"
	Plan        PlanSummary
	Started     time.Time
	Elapsed     time.Duration
	Requests    int64
	Errors      int64
	Bytes       int64
	Received    int64 // WebSocket messages received (broadcast receipts, replies)
	ByKind      map[string]int64
	ByClass     map[string]int64 // "2xx" …
	ByStatus    map[string]int64 // "200", "404" …: exact codes
	Latency     *hdr.Histogram
	PerSecond   []SecondStats
	Interrupted bool // stopped by the caller (Ctrl-C) or the hard deadline
}

// PlanSummary is the plan as the report shows it.
type PlanSummary struct {
	Rate        float64       `json:"rate,omitempty"`
	Stages      []StageJSON   `json:"stages,omitempty"`
	VUs         int           `json:"vus,omitempty"`
	Think       time.Duration `json:"think_ns,omitempty"`
	Duration    time.Duration `json:"duration_ns,omitempty"`
	Requests    int64         `json:"requests,omitempty"`
	Connections int           `json:"connections"`
	Timeout     time.Duration `json:"timeout_ns"`
}

// StageJSON is a stage in reports.
type StageJSON struct {
	DurationS float64 `json:"duration_s"`
	Target    float64 `json:"target_rps"`
}

// requester sends one request on its own connection(s).
type requester interface {
	do(ctx context.Context, seq uint64, rng *rand.Rand) (status int, bytes int64, err error)
	close()
}

// PlanError is a plan that cannot run: bad values, a bad URL or template,
// a remote target without AllowRemote.
type PlanError struct{ Err error }

func (e PlanError) Error() string { return e.Err.Error() }
func (e PlanError) Unwrap() error { return e.Err }

// Run executes the plan and returns what it measured. It returns early,
// with Interrupted set and everything measured so far, when ctx ends.
func Run(ctx context.Context, p Plan) (*Result, error) {
	p, sched, open, err := p.normalize()
	if err != nil {
		return nil, PlanError{err}
	}
	newRequester, target, received, err := p.requesterFactory()
	if err != nil {
		return nil, PlanError{err}
	}

	runCtx, cancel := context.WithTimeout(ctx, p.Deadline)
	defer cancel()
	workers := p.VUs
	if open {
		workers = p.Connections
	}
	// Workers share a few recorders (a histogram is tens of kilobytes; one
	// per worker made 20,000 virtual users cost gigabytes): four per P
	// keep their mutexes nearly uncontended.
	recs := make([]*recorder, min(workers, 4*runtime.GOMAXPROCS(0)))
	for i := range recs {
		recs[i] = newRecorder()
	}
	res := &Result{Target: target, Model: map[bool]string{true: "open", false: "closed"}[open], Plan: p.summary()}
	var next atomic.Int64 // the next request index, shared by all workers
	start := time.Now()
	res.Started = start
	seed := p.Seed
	if seed == 0 {
		seed = rand.Uint64()
	}

	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			rq := newRequester()
			defer rq.close()
			rng := rand.New(rand.NewPCG(seed, uint64(w)))
			rec := recs[w%len(recs)]
			if open {
				runOpen(runCtx, rq, rec, rng, &next, sched, start, p.Requests)
			} else {
				runClosed(runCtx, rq, rec, rng, &next, start.Add(p.Duration), p.Requests, p.Think)
			}
		}(w)
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()

	// Once a second: harvest every worker's last second.
	total := NewHistogram()
	var totals counts
	harvest := func(now time.Time, last time.Time, final bool) {
		h, c := NewHistogram(), counts{}
		for _, r := range recs {
			r.harvest(h, &c)
		}
		totals.add(&c)
		total.Merge(h)
		if final && c.requests == 0 && len(res.PerSecond) > 0 {
			return // nothing happened after the last tick
		}
		sec := secondStats(int(now.Sub(start).Round(time.Second)/time.Second), now.Sub(last), h, &c)
		res.PerSecond = append(res.PerSecond, sec)
		if p.Progress != nil {
			planned := p.Duration
			p.Progress(sec, Totals{Requests: totals.requests, Errors: totals.errors, Elapsed: now.Sub(start),
				Remaining: max(0, planned-now.Sub(start))})
		}
	}
	tick := time.NewTicker(time.Second)
	last := start
loop:
	for {
		select {
		case now := <-tick.C:
			harvest(now, last, false)
			last = now
		case <-done:
			break loop
		case <-runCtx.Done():
			// The deadline holds: workers stuck in a dial or a write get
			// a moment to notice, then the run ends without them (they
			// close their connections when they do notice).
			select {
			case <-done:
			case <-time.After(time.Second):
			}
			break loop
		}
	}
	tick.Stop()
	end := time.Now()
	harvest(end, last, true) // always: the totals are the sum of the harvests

	res.Elapsed = end.Sub(start)
	res.Latency = total
	res.Requests, res.Errors, res.Bytes = totals.requests, totals.errors, totals.bytes
	res.ByKind, res.ByClass = map[string]int64{}, map[string]int64{}
	for k := ErrorKind(1); k < numErrorKinds; k++ {
		if totals.byKind[k] > 0 {
			res.ByKind[k.String()] = totals.byKind[k]
		}
	}
	for c := 1; c < 6; c++ {
		if totals.byClass[c] > 0 {
			res.ByClass[fmt.Sprintf("%dxx", c)] = totals.byClass[c]
		}
	}
	res.ByStatus = map[string]int64{}
	for code, n := range totals.byStatus {
		res.ByStatus[strconv.Itoa(code)] = n
	}
	res.Received = received()
	res.Interrupted = ctx.Err() != nil || errors.Is(runCtx.Err(), context.DeadlineExceeded)
	return res, nil
}

// runOpen sends request i at start+At(i), or at once if that moment has
// passed; then latency counts from the scheduled moment, so time spent
// waiting for a free connection is part of it (coordinated omission
// corrected).
func runOpen(ctx context.Context, rq requester, rec *recorder, rng *rand.Rand, next *atomic.Int64,
	sched Schedule, start time.Time, limit int64) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		i := next.Add(1) - 1
		if limit > 0 && i >= limit {
			return
		}
		at, ok := sched.At(i)
		if !ok {
			return
		}
		// Latency counts from the scheduled start when this worker is late
		// for it, because the server kept it busy: that wait is the server's
		// doing. When the worker is early it sleeps, and the clock starts
		// when it wakes: timers wake up to a millisecond late, and that
		// lateness is ours, not the server's.
		from := start.Add(at)
		if d := time.Until(from); d > 0 {
			timer.Reset(d)
			select {
			case <-timer.C:
			case <-ctx.Done():
				return
			}
			from = time.Now()
		} else if ctx.Err() != nil {
			return
		}
		status, n, err := rq.do(ctx, uint64(i), rng)
		if ctx.Err() != nil && err != nil {
			return // cancelled mid-request: not a measurement
		}
		rec.record(time.Since(from), status, n, err)
	}
}

// runClosed is one virtual user: send, wait for the answer, think, repeat.
func runClosed(ctx context.Context, rq requester, rec *recorder, rng *rand.Rand, next *atomic.Int64,
	until time.Time, limit int64, think time.Duration) {
	for time.Now().Before(until) && ctx.Err() == nil {
		i := next.Add(1) - 1
		if limit > 0 && i >= limit {
			return
		}
		began := time.Now()
		status, n, err := rq.do(ctx, uint64(i), rng)
		if ctx.Err() != nil && err != nil {
			return
		}
		rec.record(time.Since(began), status, n, err)
		if think > 0 {
			select {
			case <-time.After(think):
			case <-ctx.Done():
				return
			}
		}
	}
}

// normalize validates the plan, fills defaults and builds the schedule.
func (p Plan) normalize() (Plan, Schedule, bool, error) {
	var sched Schedule
	if (p.HTTP == nil) == (p.WS == nil) {
		return p, sched, false, errors.New("loadgen: a plan needs exactly one target, HTTP or WS")
	}
	open := p.Rate > 0 || len(p.Stages) > 0
	if open && p.VUs > 0 {
		return p, sched, false, errors.New("loadgen: choose the open model (rate/stages) or the closed one (VUs), not both")
	}
	if !open && p.VUs <= 0 {
		return p, sched, false, errors.New("loadgen: set a rate (open model) or a number of VUs (closed model)")
	}
	if p.Duration < 0 || p.Requests < 0 || p.Connections < 0 || p.Timeout < 0 || p.Think < 0 || p.VUs > 100_000 || p.Connections > 100_000 {
		return p, sched, false, errors.New("loadgen: durations and counts must be positive (at most 100,000 VUs or connections)")
	}
	if p.Timeout == 0 {
		p.Timeout = 10 * time.Second
	}
	if p.Connections == 0 {
		p.Connections = 64
	}
	// Every connection is a descriptor: a plan that needs more than the
	// process may open would fail on its own sockets, not measure the
	// target. Refuse it with the number that fits.
	need, flag := p.Connections, "--connections"
	if !open {
		need, flag = p.VUs, "--vus"
	}
	if limit := maxConnections(); need > limit {
		return p, sched, false, fmt.Errorf("loadgen: %s %d: this process may open %d files (ulimit -n), so at most %d connections; raise the limit or use fewer", flag, need, limit+reservedFiles, limit)
	}
	var err error
	switch {
	case len(p.Stages) > 0:
		sched, err = NewSchedule(p.Rate, p.Stages)
		if err == nil && p.Duration > 0 && p.Duration < sched.Duration() {
			err = errors.New("loadgen: --duration is shorter than the stages; leave it out with stages")
		}
		p.Duration = sched.Duration()
	case open:
		d := p.Duration
		if d == 0 && p.Requests > 0 {
			d = time.Duration(float64(p.Requests) / p.Rate * float64(time.Second))
			if float64(p.Requests)/p.Rate*float64(time.Second) > float64(24*time.Hour) {
				return p, sched, false, errors.New("loadgen: --requests at --rate would take longer than a day")
			}
			d = max(d, time.Millisecond)
		}
		if d == 0 {
			return p, sched, false, errors.New("loadgen: set --duration and/or --requests")
		}
		sched, err = ConstantRate(p.Rate, d)
		p.Duration = d
	default:
		if p.Duration == 0 && p.Requests == 0 {
			return p, sched, false, errors.New("loadgen: set --duration and/or --requests")
		}
	}
	if err != nil {
		return p, sched, false, err
	}
	if p.Deadline == 0 {
		if p.Duration > 0 {
			p.Deadline = p.Duration + p.Timeout + 5*time.Second
		} else {
			p.Deadline = 10 * time.Minute
		}
	}
	if p.Duration == 0 {
		p.Duration = p.Deadline // closed model bounded by requests: the deadline bounds it
	}
	return p, sched, open, nil
}

func (p Plan) summary() PlanSummary {
	s := PlanSummary{Rate: p.Rate, VUs: p.VUs, Think: p.Think, Duration: p.Duration, Requests: p.Requests,
		Connections: p.Connections, Timeout: p.Timeout}
	if p.VUs > 0 {
		s.Connections = p.VUs
	}
	for _, st := range p.Stages {
		s.Stages = append(s.Stages, StageJSON{DurationS: st.Duration.Seconds(), Target: st.Target})
	}
	return s
}

// requesterFactory compiles the target and checks that it is allowed. It
// returns a constructor of per-worker requesters, the target's display
// name, and a reader of the messages received (WebSocket only).
func (p Plan) requesterFactory() (func() requester, string, func() int64, error) {
	switch {
	case p.HTTP != nil:
		plan, err := compileHTTP(*p.HTTP)
		if err != nil {
			return nil, "", nil, err
		}
		if err := CheckLoopback(plan.remoteHost, p.AllowRemote); err != nil {
			return nil, "", nil, err
		}
		return func() requester { return newHTTPConn(plan, p.Timeout) }, plan.display, func() int64 { return 0 }, nil
	default:
		plan, err := compileWS(*p.WS)
		if err != nil {
			return nil, "", nil, err
		}
		if err := CheckLoopback(plan.host, p.AllowRemote); err != nil {
			return nil, "", nil, err
		}
		return func() requester { return newWSConn(plan, p.Timeout) }, plan.display, plan.received.Load, nil
	}
}

// CheckLoopback refuses targets outside 127.0.0.0/8 and ::1 unless allowed:
// a load test aimed at the wrong host is an attack.
func CheckLoopback(host string, allow bool) error {
	if allow {
		return nil
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("target host %q is not a loopback address; pass --allow-remote to load a remote host", host)
}

// reservedFiles are the descriptors kept for everything but connections.
const reservedFiles = 64

// maxConnections is how many connections the descriptor limit allows.
func maxConnections() int {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 1 << 20
	}
	return max(int(min(lim.Cur, 1<<30))-reservedFiles, 1)
}

package lab

import (
	"context"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spf13/pflag"

	"github.com/scalelab/scalelab/internal/autoscale"
	"github.com/scalelab/scalelab/internal/lb"
	"github.com/scalelab/scalelab/internal/platform/apperr"
	"github.com/scalelab/scalelab/internal/platform/auth"
	"github.com/scalelab/scalelab/internal/platform/loadgen"
	"github.com/scalelab/scalelab/internal/platform/plot"
)

// The scale-out experiment: one backend of fixed capacity overloaded by
// an open-model load through scalelab lb, then 2, 3 and 4 copies behind
// it at the same load, then the autoscaler following a step from a light
// load to the same heavy one, a calm long enough for it to scale back
// down, and a spike: the heavy load again, but shorter than the time the
// autoscaler needs to react.

// ScaleOutOptions shape one run.
type ScaleOutOptions struct {
	Capacity int           // requests one copy serves at once
	Cost     time.Duration // each request's service time
	Rate     float64       // the heavy load, requests/s
	Phase    time.Duration // load per fixed fleet size
	Max      int           // copies at most
	Spike    time.Duration // the spike's length
}

type scalePhase struct {
	Copies     int
	OK, Errors float64 // per second
	P50, P99   float64 // ms
	Requests   int64
}

type scaleTrace struct {
	Seconds    []loadgen.SecondStats // the step's load, second by second
	CopiesAt   []float64             // seconds since the step
	Copies     []float64
	RecoveredS float64 // seconds after the step until errors stopped for good (−1: never)
	Final      int     // copies at the end of the step

	// Timeline is every second of load from the step on (the step, the
	// calm, the spike, the calm after it), on the step's clock.
	Timeline []timedSecond

	// The spike, after the calm.
	SpikeAtS     float64               // seconds since the step
	SpikeSeconds []loadgen.SecondStats // its load, second by second
	SpikeBefore  int                   // copies when it began
	SpikePeak    int                   // copies asked for during it or within a phase after
	SpikeReactS  float64               // seconds from its start to the first copy asked for beyond SpikeBefore (−1: none)
	SpikeOK      float64               // per second
	SpikeErrors  float64               // per second
	SpikeP99     float64               // ms
}

func scaleOutExperiment() Experiment {
	return Experiment{
		Name: "scale-out", System: "lb+autoscale",
		Summary: "One small instance overloaded behind the balancer, then 2, 3, 4 copies, then the autoscaler following a step: throughput, p99 and errors per fleet size, copies over time",
		Quick:   map[string]string{"phase": "3s"},
		Bind: func(fs *pflag.FlagSet) Runner {
			opts := ScaleOutOptions{Capacity: 8, Cost: 20 * time.Millisecond, Rate: 1000, Phase: 8 * time.Second, Max: 4, Spike: 2 * time.Second}
			fs.IntVar(&opts.Capacity, "capacity", opts.Capacity, "requests one copy serves at once (its capacity is capacity / cost)")
			fs.DurationVar(&opts.Cost, "cost", opts.Cost, "each request's service time (a wait: see docs/lab.md)")
			fs.Float64Var(&opts.Rate, "rate", opts.Rate, "the heavy load, requests/s")
			fs.DurationVar(&opts.Phase, "phase", opts.Phase, "load per fleet size")
			fs.IntVar(&opts.Max, "max", opts.Max, "copies at most")
			fs.DurationVar(&opts.Spike, "spike", opts.Spike, "the spike's length (the heavy load again after the calm)")
			return func(ctx context.Context, env Env) (*Report, error) { return runScaleOut(ctx, env, opts) }
		},
	}
}

// capacityCopy runs one copy of the capacity backend.
func startCapacityCopy(env Env, opts ScaleOutOptions) (string, func(), error) {
	addr, err := freeLocalAddr()
	if err != nil {
		return "", nil, err
	}
	cmd := exec.Command(env.Binary, "experiment", "capacity-backend", "--addr", addr, "--capacity", strconv.Itoa(opts.Capacity), "--cost", opts.Cost.String())
	if err := cmd.Start(); err != nil {
		return "", nil, err
	}
	stop := func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }
	if err := waitReady("http://" + addr + "/readyz"); err != nil {
		stop()
		return "", nil, err
	}
	return "http://" + addr, stop, nil
}

func waitReady(u string) error {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(u); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond) // a starting process has no signal but its port
	}
	return fmt.Errorf("%s did not become ready", u)
}

func runScaleOut(ctx context.Context, env Env, opts ScaleOutOptions) (*Report, error) {
	if opts.Capacity < 1 || opts.Cost <= 0 || opts.Rate <= 0 || opts.Rate > 5000 || opts.Phase < time.Second || opts.Max < 2 || opts.Max > 8 || opts.Spike < time.Second || opts.Spike > time.Minute {
		return nil, apperr.Usagef("want --capacity ≥ 1, --cost > 0, 0 < --rate ≤ 5000, --phase ≥ 1s, 2 ≤ --max ≤ 8, 1s ≤ --spike ≤ 1m")
	}
	token := auth.NewKeyText()
	tok, _ := auth.NewAdminToken(token)
	pcfg := lb.DefaultPoolConfig()
	pcfg.Policy, pcfg.HealthPath = "least-conn", "/readyz"
	pcfg.SlowStart.Window = 0
	pcfg.Outliers.Consecutive = 1 << 30 // a copy answering 503 because it is full is not failing: no ejection
	bal, err := lb.New(pcfg, lb.DefaultProxyConfig(), tok, nil)
	if err != nil {
		return nil, err
	}
	front, err := serveOn(bal.Proxy)
	if err != nil {
		return nil, err
	}
	defer front.close()
	admin, err := serveOn(bal.AdminHandler())
	if err != nil {
		return nil, err
	}
	defer admin.close()
	checks, stopChecks := context.WithCancel(ctx)
	defer stopChecks()
	go bal.Pool.RunChecks(checks)

	// Fixed fleets: 1, 2, … Max copies.
	var phases []scalePhase
	var stops []func()
	defer func() {
		for _, s := range stops {
			s()
		}
	}()
	for n := 1; n <= opts.Max; n++ {
		u, stop, err := startCapacityCopy(env, opts)
		if err != nil {
			return nil, err
		}
		stops = append(stops, stop)
		pu, _ := url.Parse(u)
		if _, err := bal.Pool.Add(pu, 1); err != nil {
			return nil, err
		}
		sum, err := openLoad(ctx, front.url, opts.Rate, opts.Phase, nil)
		if err != nil {
			return nil, err
		}
		p := scalePhase{Copies: n, Requests: sum.Requests, OK: float64(sum.Requests-sum.Errors) / sum.DurationS, Errors: float64(sum.Errors) / sum.DurationS,
			P50: sum.LatencyMS.P50, P99: sum.LatencyMS.P99}
		phases = append(phases, p)
		fmt.Fprintf(env.Log, "%d cop%s: %7.0f ok/s  %7.0f errors/s  p50 %7.1f ms  p99 %7.1f ms  (offered %.0f/s)\n", n, plural(n), p.OK, p.Errors, p.P50, p.P99, opts.Rate)
	}
	for _, b := range bal.Pool.List() {
		_ = bal.Pool.Remove(b.ID)
	}
	for _, s := range stops {
		s()
	}
	stops = nil

	// The autoscaler: light load, then a step to the heavy one.
	trace, err := autoscaleStep(ctx, env, opts, front.url, admin.url, token)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(env.Log, "autoscaler: %d copies at the end of the step; errors stopped %s after it\n", trace.Final, secondsOrNever(trace.RecoveredS))
	fmt.Fprintf(env.Log, "spike of %v: %d cop%s when it came, %.0f ok/s, %.0f errors/s, p99 %.1f ms; %d copies asked for at most during and after it\n",
		opts.Spike, trace.SpikeBefore, plural(trace.SpikeBefore), trace.SpikeOK, trace.SpikeErrors, trace.SpikeP99, trace.SpikePeak)
	r := scaleOutReport(opts, phases, trace)
	r.Plots = scaleOutPlots(opts, phases, trace)
	var b strings.Builder
	fmt.Fprintf(&b, "# Scaling out behind the balancer\n\nOne copy serves %d requests at once, %v each: %.0f requests/s at most. Offered: %.0f requests/s, open model, %v per fleet size.\n\n",
		opts.Capacity, opts.Cost, copyCapacity(opts), opts.Rate, opts.Phase)
	b.WriteString("| copies | ok/s | errors/s | p50 ms | p99 ms |\n|---|---|---|---|---|\n")
	for _, p := range phases {
		fmt.Fprintf(&b, "| %d | %.0f | %.0f | %.1f | %.1f |\n", p.Copies, p.OK, p.Errors, p.P50, p.P99)
	}
	b.WriteString("\n" + lessonMarkdown(r))
	r.Body = b.String()
	return r, nil
}

func plural(n int) string {
	if n == 1 {
		return "y"
	}
	return "ies"
}

func secondsOrNever(s float64) string {
	if s < 0 {
		return "never"
	}
	return fmt.Sprintf("%.0f s", s)
}

func copyCapacity(opts ScaleOutOptions) float64 {
	return float64(opts.Capacity) / opts.Cost.Seconds()
}

// served is an HTTP server on a free loopback port.
type served struct {
	url string
	srv *http.Server
}

func serveOn(h http.Handler) (*served, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(l) }()
	return &served{url: "http://" + l.Addr().String(), srv: srv}, nil
}

func (s *served) close() { _ = s.srv.Close() }

func openLoad(ctx context.Context, target string, rate float64, d time.Duration, progress func(loadgen.SecondStats)) (loadgen.Summary, error) {
	plan := loadgen.Plan{HTTP: &loadgen.HTTPTarget{URL: target + "/", Method: http.MethodGet}, Rate: rate, Duration: d, Connections: 512, Timeout: 5 * time.Second}
	if progress != nil {
		plan.Progress = func(s loadgen.SecondStats, _ loadgen.Totals) { progress(s) }
	}
	res, err := loadgen.Run(ctx, plan)
	if err != nil {
		return loadgen.Summary{}, err
	}
	return loadgen.Summarize(res)
}

// autoscaleStep runs the autoscaler on rps (target: 75 % of a copy's
// capacity) through a light load and then the heavy one.
func autoscaleStep(ctx context.Context, env Env, opts ScaleOutOptions, front, admin, token string) (scaleTrace, error) {
	var trace scaleTrace
	dir, err := os.MkdirTemp(env.Dir, "autoscale-")
	if err != nil {
		return trace, err
	}
	var mu sync.Mutex
	var stepAt time.Time
	cfg := autoscale.Config{
		Policy:   autoscale.Policy{Min: 1, Max: opts.Max, Target: 0.75 * copyCapacity(opts), Tolerance: 0.1, Window: 2 * opts.Phase, CoolDown: time.Second},
		Metric:   autoscale.MetricRPS,
		Interval: time.Second,
		Command:  []string{env.Binary, "experiment", "capacity-backend", "--addr", "127.0.0.1:{port}", "--capacity", strconv.Itoa(opts.Capacity), "--cost", opts.Cost.String()},
		LBAdmin:  admin, LBToken: token, Ready: 10 * time.Second, Drain: 2 * time.Second, LogDir: dir,
		OnRound: func(r autoscale.Round) {
			mu.Lock()
			defer mu.Unlock()
			if !stepAt.IsZero() {
				trace.CopiesAt = append(trace.CopiesAt, r.At.Sub(stepAt).Seconds())
				trace.Copies = append(trace.Copies, float64(r.Decision.Desired))
			}
		},
	}
	actx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- autoscale.Run(actx, cfg) }()
	defer func() { cancel(); <-done }()
	if err := waitReady(front + "/"); err != nil { // the first copy registered
		return trace, err
	}
	if _, err := openLoad(ctx, front, 0.3*copyCapacity(opts), opts.Phase, nil); err != nil {
		return trace, err
	}
	mu.Lock()
	stepAt = time.Now()
	mu.Unlock()
	sum, err := openLoad(ctx, front, opts.Rate, 3*opts.Phase, nil)
	if err != nil {
		return trace, err
	}
	mu.Lock()
	trace.Seconds = sum.PerSecond
	trace.addSegment(0, sum.PerSecond)
	trace.RecoveredS = recoveredAfter(sum.PerSecond)
	trace.Final = copiesAt(trace, math.Inf(1))
	mu.Unlock()

	// The calm: light load for longer than the scale-down window, so the
	// spike meets a fleet sized for the calm.
	calmAt := time.Since(stepAt).Seconds()
	calm, err := openLoad(ctx, front, 0.3*copyCapacity(opts), cfg.Policy.Window+cfg.Drain+2*cfg.Interval, nil)
	if err != nil {
		return trace, err
	}
	mu.Lock()
	trace.addSegment(calmAt, calm.PerSecond)
	trace.SpikeAtS = time.Since(stepAt).Seconds()
	trace.SpikeBefore = copiesAt(trace, trace.SpikeAtS)
	mu.Unlock()
	spike, err := openLoad(ctx, front, opts.Rate, opts.Spike, nil)
	if err != nil {
		return trace, err
	}
	// Light load again for a phase: what the autoscaler does once the
	// spike is over.
	afterAt := time.Since(stepAt).Seconds()
	after, err := openLoad(ctx, front, 0.3*copyCapacity(opts), opts.Phase, nil)
	if err != nil {
		return trace, err
	}
	mu.Lock()
	defer mu.Unlock()
	trace.addSegment(trace.SpikeAtS, spike.PerSecond)
	trace.addSegment(afterAt, after.PerSecond)
	trace.SpikeSeconds = spike.PerSecond
	trace.SpikeOK, trace.SpikeErrors = float64(spike.Requests-spike.Errors)/spike.DurationS, float64(spike.Errors)/spike.DurationS
	trace.SpikeP99 = spike.LatencyMS.P99
	trace.SpikePeak, trace.SpikeReactS = trace.SpikeBefore, -1
	for i, at := range trace.CopiesAt {
		if at < trace.SpikeAtS || int(trace.Copies[i]) <= trace.SpikeBefore {
			continue
		}
		if trace.SpikeReactS < 0 {
			trace.SpikeReactS = at - trace.SpikeAtS
		}
		trace.SpikePeak = max(trace.SpikePeak, int(trace.Copies[i]))
	}
	return trace, nil
}

type timedSecond struct {
	T          float64 // seconds since the step, ending this second
	OK, Errors float64
}

// addSegment appends one load segment that began at offset seconds
// after the step.
func (t *scaleTrace) addSegment(offset float64, secs []loadgen.SecondStats) {
	for _, s := range secs {
		t.Timeline = append(t.Timeline, timedSecond{T: offset + float64(s.T), OK: float64(s.Requests - s.Errors), Errors: float64(s.Errors)})
	}
}

// recoveredAfter is the second after which no request failed (0: none
// ever did; −1: the last second still had errors).
func recoveredAfter(secs []loadgen.SecondStats) float64 {
	for i := len(secs) - 1; i >= 0; i-- {
		if secs[i].Errors > 0 {
			if i < len(secs)-1 {
				return float64(secs[i].T)
			}
			return -1
		}
	}
	return 0
}

// copiesAt is the copies asked for at the last round at or before at
// (seconds since the step); 1 before the first.
func copiesAt(trace scaleTrace, at float64) int {
	n := 1
	for i, t := range trace.CopiesAt {
		if t <= at {
			n = int(trace.Copies[i])
		}
	}
	return n
}

// scaleOutReport states the lesson from the figures.
func scaleOutReport(opts ScaleOutOptions, phases []scalePhase, trace scaleTrace) *Report {
	r := &Report{Experiment: "scale-out", System: "lb+autoscale", Passed: true, Figures: map[string]float64{}}
	for _, p := range phases {
		k := fmt.Sprintf("copies_%d_", p.Copies)
		r.Figures[k+"ok_per_s"], r.Figures[k+"errors_per_s"], r.Figures[k+"p99_ms"] = p.OK, p.Errors, p.P99
	}
	r.Figures["autoscale_final_copies"], r.Figures["autoscale_recovered_s"] = float64(trace.Final), trace.RecoveredS
	capacity := copyCapacity(opts)
	if len(phases) > 0 {
		one := phases[0]
		r.Lesson = append(r.Lesson, fmt.Sprintf("One copy can serve %.0f requests/s (%d at once, %v each); offered %.0f/s it served %.0f/s and refused %.0f/s, with a p99 of %.1f ms: the excess waits in its queue and then is turned away.",
			capacity, opts.Capacity, opts.Cost, opts.Rate, one.OK, one.Errors, one.P99))
	}
	need := int(math.Ceil(opts.Rate / capacity))
	for _, p := range phases {
		if p.Copies == need {
			r.Lesson = append(r.Lesson, fmt.Sprintf("%d copies (%.0f requests/s of capacity) carried the load: %.0f ok/s, %.0f errors/s, p99 %.1f ms — throughput grew with the copies until it met the offered load.",
				p.Copies, float64(p.Copies)*capacity, p.OK, p.Errors, p.P99))
		}
	}
	if len(phases) > need && need >= 1 {
		enough, last := phases[need-1], phases[len(phases)-1]
		if last.P99 < 0.8*enough.P99 {
			r.Lesson = append(r.Lesson, fmt.Sprintf("More copies than the load needs (%d) bought latency, not throughput: p99 %.1f ms against %.1f ms, at %.0f ok/s.", last.Copies, last.P99, enough.P99, last.OK))
		} else {
			r.Lesson = append(r.Lesson, fmt.Sprintf("More copies than the load needs (%d) bought nothing here: %.0f ok/s and p99 %.1f ms, as with %d — once no request waits for a slot, each takes its service time.", last.Copies, last.OK, last.P99, enough.Copies))
		}
	}
	switch {
	case trace.RecoveredS < 0:
		r.Passed = false
		r.Lesson = append(r.Lesson, fmt.Sprintf("After the step to %.0f/s the autoscaler ended at %d copies and the errors never stopped within the run.", opts.Rate, trace.Final))
	default:
		r.Lesson = append(r.Lesson, fmt.Sprintf("The autoscaler (target %.0f requests/s per copy) followed the step to %.0f/s: it ended at %d copies, and errors stopped %.0f s after the step — the time to notice (a measuring interval), start copies and let their metric settle.",
			0.75*capacity, opts.Rate, trace.Final, trace.RecoveredS))
	}
	if trace.SpikeSeconds != nil {
		r.Figures["spike_ok_per_s"], r.Figures["spike_errors_per_s"], r.Figures["spike_p99_ms"] = trace.SpikeOK, trace.SpikeErrors, trace.SpikeP99
		r.Figures["spike_copies_before"], r.Figures["spike_copies_peak"] = float64(trace.SpikeBefore), float64(trace.SpikePeak)
		r.Figures["spike_react_s"] = trace.SpikeReactS
		served := float64(trace.SpikeBefore) * capacity
		switch {
		case trace.SpikeErrors > 0 && trace.SpikePeak > trace.SpikeBefore:
			when := "while it lasted"
			if trace.SpikeReactS >= opts.Spike.Seconds() {
				when = "after it had passed"
			}
			r.Lesson = append(r.Lesson, fmt.Sprintf("A %v spike to %.0f/s met %d cop%s (%.0f requests/s of capacity): %.0f/s were refused (p99 %.1f ms). The autoscaler asked for a copy more %.1f s after the spike began, %s, and for %d at most; each new copy still had to start. A spike not much longer than the time to notice and start a copy is carried by headroom already running (or a queue), not by autoscaling.",
				opts.Spike, opts.Rate, trace.SpikeBefore, plural(trace.SpikeBefore), served, trace.SpikeErrors, trace.SpikeP99, trace.SpikeReactS, when, trace.SpikePeak))
		case trace.SpikeErrors > 0:
			r.Lesson = append(r.Lesson, fmt.Sprintf("A %v spike to %.0f/s met %d cop%s (%.0f requests/s of capacity): %.0f/s were refused (p99 %.1f ms) and it was over before the autoscaler added a copy — only headroom already running carries a spike shorter than the reaction time.",
				opts.Spike, opts.Rate, trace.SpikeBefore, plural(trace.SpikeBefore), served, trace.SpikeErrors, trace.SpikeP99))
		default:
			r.Lesson = append(r.Lesson, fmt.Sprintf("A %v spike to %.0f/s met %d cop%s (%.0f requests/s of capacity) and none was refused (p99 %.1f ms): the fleet had not scaled down to below the spike, so headroom carried it.",
				opts.Spike, opts.Rate, trace.SpikeBefore, plural(trace.SpikeBefore), served, trace.SpikeP99))
		}
	}
	r.Lesson = append(r.Lesson, "What a 2-core machine can show: a copy's limit here is its capacity (a wait), not the CPU, so copies add throughput beyond the cores. With a CPU-bound cost every copy shares the same two cores, and copies past two would add queues, not throughput.")
	return r
}

func scaleOutPlots(opts ScaleOutOptions, phases []scalePhase, trace scaleTrace) map[string]string {
	var groups []string
	var ok, errs, p99 []float64
	for _, p := range phases {
		groups = append(groups, fmt.Sprintf("%d cop%s", p.Copies, plural(p.Copies)))
		ok, errs, p99 = append(ok, p.OK), append(errs, p.Errors), append(p99, p.P99)
	}
	var ts, okS, errS []float64
	for _, s := range trace.Timeline {
		ts, okS, errS = append(ts, s.T), append(okS, s.OK), append(errS, s.Errors)
	}
	return map[string]string{
		"throughput.svg": plot.Bars{Title: fmt.Sprintf("Served and refused per fleet size (offered %.0f/s)", opts.Rate), YLabel: "requests/s", Groups: groups,
			Series: []string{"ok", "errors"}, Values: [][]float64{ok, errs}}.SVG(),
		"p99.svg": plot.Bars{Title: "p99 latency per fleet size", YLabel: "ms", Groups: groups, Series: []string{"p99"}, Values: [][]float64{p99}}.SVG(),
		"autoscale-copies.svg": loadgen.TimeChart("Copies the autoscaler asked for: step, calm, spike", "copies",
			[]plot.Line{{Name: "copies", X: trace.CopiesAt, Y: trace.Copies}}),
		"autoscale-load.svg": loadgen.TimeChart("Served and refused per second: step, calm, spike, calm", "requests/s",
			[]plot.Line{{Name: "ok", Color: "#2ca02c", X: ts, Y: okS}, {Name: "errors", Color: "#d62728", X: ts, Y: errS}}),
	}
}

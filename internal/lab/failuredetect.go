package lab

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/spf13/pflag"

	"github.com/scalelab/scalelab/internal/lab/detect"
	"github.com/scalelab/scalelab/internal/platform/apperr"
	"github.com/scalelab/scalelab/internal/platform/auth"
)

// The failure-detection experiment: for each probe interval and timeout
// multiplier, five members — three observers and a member behind a slow
// link in this process, and a real process that is paused with SIGSTOP —
// watched by two detectors at once: SWIM (memberlist) and a plain
// heartbeat timeout at the same interval. It counts what the slow but
// living member costs each detector (false suspicions, false deaths) and
// times how long each takes to declare the paused process dead.

// FailureDetectionOptions shape one run.
type FailureDetectionOptions struct {
	Intervals []time.Duration // probe (and heartbeat) intervals
	Mults     []int           // timeout multipliers: heartbeat timeout = mult × interval, SWIM suspicion multiplier
	Trials    int             // pauses per setting
	Window    time.Duration   // how long the slow link stays slow per setting
	SlowBase  time.Duration   // the slow link's fixed delay, each way
	Jitter    time.Duration   // plus a uniform random delay up to this
	Seed      uint64
}

type detectionSetting struct {
	Interval time.Duration
	Mult     int
	// Under the slow link, about the slow member (alive all along):
	HeartbeatFalseDeaths int // heartbeat timeouts
	SWIMSuspicions       int // probes that went unanswered, by any observer
	SWIMFalseDeaths      int // deaths, as observer 1 saw them (gossip spreads one to all)
	SWIMRefuted          int // suspicions the slow member refuted
	SuspectedBySlow      int // healthy members the slow member suspected
	// The paused process, per trial (ms; -1: not within the bound):
	HeartbeatDetectMS []float64
	SWIMSuspectMS     []float64
	SWIMDetectMS      []float64
	HeartbeatBackMS   []float64 // after SIGCONT, until heard again
	SWIMBackMS        []float64 // until alive again in SWIM
}

func failureDetectionExperiment() Experiment {
	return Experiment{
		Name: "failure-detection", System: "gossip",
		Summary: "A member paused with SIGSTOP and one behind a slow link: how fast SWIM (memberlist) and a plain heartbeat timeout declare the first dead, and how often they wrongly declare the second",
		Quick:   map[string]string{"intervals": "100ms,300ms", "mults": "2", "trials": "2", "window": "3s"},
		Bind: func(fs *pflag.FlagSet) Runner {
			opts := FailureDetectionOptions{Trials: 3, Window: 10 * time.Second, SlowBase: 20 * time.Millisecond, Jitter: 300 * time.Millisecond, Seed: 1}
			fs.DurationSliceVar(&opts.Intervals, "intervals", []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 500 * time.Millisecond}, "probe and heartbeat intervals")
			fs.IntSliceVar(&opts.Mults, "mults", []int{2, 4}, "timeout multipliers (heartbeat timeout = mult × interval; SWIM's suspicion multiplier)")
			fs.IntVar(&opts.Trials, "trials", opts.Trials, "pauses per setting")
			fs.DurationVar(&opts.Window, "window", opts.Window, "how long the link stays slow per setting")
			fs.DurationVar(&opts.SlowBase, "slow", opts.SlowBase, "the slow link's fixed delay, each way")
			fs.DurationVar(&opts.Jitter, "jitter", opts.Jitter, "the slow link's random extra delay (uniform up to this), each way")
			fs.Uint64Var(&opts.Seed, "seed", opts.Seed, "seed of the slow link's delays")
			return func(ctx context.Context, env Env) (*Report, error) {
				return runFailureDetection(ctx, env, opts)
			}
		},
	}
}

func runFailureDetection(ctx context.Context, env Env, opts FailureDetectionOptions) (*Report, error) {
	if len(opts.Intervals) == 0 || len(opts.Mults) == 0 || opts.Trials < 1 || opts.Window < 500*time.Millisecond || opts.Jitter < 0 || opts.SlowBase < 0 {
		return nil, apperr.Usagef("want --intervals, --mults, --trials ≥ 1, --window ≥ 500ms, --slow and --jitter ≥ 0")
	}
	for _, p := range opts.Intervals {
		if p < 20*time.Millisecond || p > 5*time.Second {
			return nil, apperr.Usagef("--intervals: %v is not 20ms–5s", p)
		}
	}
	for _, m := range opts.Mults {
		if m < 1 || m > 20 {
			return nil, apperr.Usagef("--mults: %d is not 1–20", m)
		}
	}
	keyText := auth.NewKeyText()
	key, _ := auth.ParseKey(keyText)
	keyFile := filepath.Join(env.Dir, "cluster-key")
	if err := os.WriteFile(keyFile, []byte(keyText), 0o600); err != nil {
		return nil, err
	}
	defer os.Remove(keyFile)
	var settings []detectionSetting
	for i, p := range opts.Intervals {
		for j, m := range opts.Mults {
			s, err := detectOnce(ctx, env, opts, key, keyFile, p, m, opts.Seed+uint64(i*len(opts.Mults)+j))
			if err != nil {
				return nil, err
			}
			settings = append(settings, s)
			fmt.Fprintf(env.Log, "interval %-6v ×%d  slow member: heartbeat false deaths %3d | SWIM suspicions %3d, false deaths %2d, refuted %3d\n",
				p, m, s.HeartbeatFalseDeaths, s.SWIMSuspicions, s.SWIMFalseDeaths, s.SWIMRefuted)
			fmt.Fprintf(env.Log, "                 paused process: heartbeat declares it dead in %s ms | SWIM suspects it in %s ms, declares it dead in %s ms\n",
				msList(s.HeartbeatDetectMS), msList(s.SWIMSuspectMS), msList(s.SWIMDetectMS))
		}
	}
	r := failureDetectionReport(opts, settings)
	r.Plots = failureDetectionPlots(settings)
	var b strings.Builder
	fmt.Fprintf(&b, "# Failure detection: SWIM vs a heartbeat timeout\n\nFive members: three observers and one behind a slow link (%v + up to %v each way, for %v) in the experiment's process, and one real process paused with SIGSTOP %d times per setting.\n\n",
		opts.SlowBase, opts.Jitter, opts.Window, opts.Trials)
	b.WriteString("| interval | × | heartbeat false deaths | SWIM suspicions | SWIM false deaths | refuted | heartbeat detects (ms) | SWIM suspects (ms) | SWIM detects (ms) |\n|---|---|---|---|---|---|---|---|---|\n")
	for _, s := range settings {
		fmt.Fprintf(&b, "| %v | %d | %d | %d | %d | %d | %s | %s | %s |\n", s.Interval, s.Mult, s.HeartbeatFalseDeaths, s.SWIMSuspicions, s.SWIMFalseDeaths, s.SWIMRefuted,
			msList(s.HeartbeatDetectMS), msList(s.SWIMSuspectMS), msList(s.SWIMDetectMS))
	}
	b.WriteString("\n" + lessonMarkdown(r))
	r.Body = b.String()
	return r, nil
}

// verdicts records both detectors' verdicts as they come.
type verdicts struct {
	mu      sync.Mutex
	list    []verdict
	changed chan struct{}
}

type verdict struct {
	detector string // "heartbeat" or "swim"
	detect.Event
}

func newVerdicts() *verdicts { return &verdicts{changed: make(chan struct{})} }

func (v *verdicts) add(detector string, e detect.Event) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.list = append(v.list, verdict{detector, e})
	close(v.changed)
	v.changed = make(chan struct{})
}

// count counts the verdicts on member, failed or not, since t0.
func (v *verdicts) count(detector, member string, failed bool, since time.Time) int {
	v.mu.Lock()
	defer v.mu.Unlock()
	n := 0
	for _, e := range v.list {
		if e.detector == detector && e.Member == member && e.Failed == failed && !e.At.Before(since) {
			n++
		}
	}
	return n
}

// wait returns the first matching verdict at or after since, or false at
// the deadline.
func (v *verdicts) wait(ctx context.Context, detector, member string, failed bool, since time.Time, deadline time.Duration) (time.Time, bool) {
	timer := time.NewTimer(deadline)
	defer timer.Stop()
	for {
		v.mu.Lock()
		for _, e := range v.list {
			if e.detector == detector && e.Member == member && e.Failed == failed && !e.At.Before(since) {
				v.mu.Unlock()
				return e.At, true
			}
		}
		changed := v.changed
		v.mu.Unlock()
		select {
		case <-changed:
		case <-timer.C:
			return time.Time{}, false
		case <-ctx.Done():
			return time.Time{}, false
		}
	}
}

// swimEvents turns observer 1's membership callbacks into verdicts.
type swimEvents struct{ v *verdicts }

func (e swimEvents) NotifyJoin(n *memberlist.Node) {
	e.v.add("swim", detect.Event{Member: n.Name, At: time.Now()})
}
func (e swimEvents) NotifyLeave(n *memberlist.Node) {
	e.v.add("swim", detect.Event{Member: n.Name, Failed: true, At: time.Now()})
}
func (e swimEvents) NotifyUpdate(*memberlist.Node) {}

func detectOnce(ctx context.Context, env Env, opts FailureDetectionOptions, key *auth.Key, keyFile string, interval time.Duration, mult int, seed uint64) (detectionSetting, error) {
	s := detectionSetting{Interval: interval, Mult: mult}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	v := newVerdicts()
	obs, err := detect.NewObserver("127.0.0.1:0", key, time.Duration(mult)*interval)
	if err != nil {
		return s, err
	}
	go obs.Run(ctx, 5*time.Millisecond)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case e := <-obs.Events():
				v.add("heartbeat", e)
			}
		}
	}()
	observersLog, slowLog := detect.NewSuspicionLog(nil), detect.NewSuspicionLog(nil)
	var members []*memberlist.Memberlist
	defer func() {
		for _, m := range members {
			_ = m.Shutdown()
		}
	}()
	for i := 1; i <= 3; i++ {
		cfg := detect.SWIMConfig{Name: fmt.Sprint("observer-", i), Host: "127.0.0.1", ProbeInterval: interval, SuspicionMult: mult, Key: key, Log: observersLog}
		if i == 1 {
			cfg.Events = swimEvents{v}
		}
		var join []string
		if i > 1 {
			join = []string{detect.Addr(members[0])}
		}
		m, err := detect.StartSWIM(cfg, join)
		if err != nil {
			return s, err
		}
		members = append(members, m)
	}
	var slow *detect.SlowTransport
	delay := detect.Jitter(opts.SlowBase, opts.Jitter, seed)
	slowMember, err := detect.StartSWIM(detect.SWIMConfig{Name: "slow", Host: "127.0.0.1", ProbeInterval: interval, SuspicionMult: mult, Key: key, Log: slowLog,
		Slow: func(t memberlist.Transport) memberlist.Transport {
			slow = detect.NewSlowTransport(t, delay)
			return slow
		}}, []string{detect.Addr(members[0])})
	if err != nil {
		return s, err
	}
	members = append(members, slowMember)
	obs.Watch("slow")
	go func() { _ = detect.SendHeartbeats(ctx, key, "slow", obs.Addr(), interval, delay, slow.Slow) }()

	settle := func(n int) error {
		deadline := time.Now().Add(10 * time.Second)
		for members[0].NumMembers() != n {
			if time.Now().After(deadline) || ctx.Err() != nil {
				return fmt.Errorf("failure-detection: %d of %d members joined within 10 s", members[0].NumMembers(), n)
			}
			time.Sleep(10 * time.Millisecond) // memberlist has no "joined" signal to wait on
		}
		return nil
	}
	if err := settle(4); err != nil {
		return s, err
	}

	// The slow link: the slow member is alive all along.
	t0 := time.Now()
	suspectedBefore := len(observersLog.Suspicions("slow"))
	slow.SetSlow(true)
	select {
	case <-time.After(opts.Window):
	case <-ctx.Done():
		return s, ctx.Err()
	}
	slow.SetSlow(false)
	s.HeartbeatFalseDeaths = v.count("heartbeat", "slow", true, t0)
	s.SWIMSuspicions = len(observersLog.Suspicions("slow")) - suspectedBefore
	s.SWIMFalseDeaths = v.count("swim", "slow", true, t0) // observer 1's view, as for the heartbeat: one death per episode
	s.SWIMRefuted = slowLog.Refuted()
	for _, name := range []string{"observer-1", "observer-2", "observer-3"} {
		s.SuspectedBySlow += len(slowLog.Suspicions(name))
	}
	if err := settle(4); err != nil { // a falsely dead slow member rejoins by refuting
		return s, err
	}

	// The paused process, once per trial, a fresh process each time.
	bound := time.Duration(6*mult)*interval*2 + 5*time.Second
	for trial := 1; trial <= opts.Trials; trial++ {
		name := fmt.Sprintf("paused-%d", trial)
		obs.Watch(name)
		proc, err := startMember(ctx, env, keyFile, name, detect.Addr(members[0]), obs.Addr(), interval, mult)
		if err != nil {
			return s, err
		}
		err = settle(5)
		if err == nil {
			_, ok := v.wait(ctx, "swim", name, false, time.Time{}, 5*time.Second)
			if !ok {
				err = fmt.Errorf("failure-detection: %s did not join", name)
			}
		}
		if err != nil {
			proc.kill()
			return s, err
		}
		// A loaded machine can make an observer suspect the new member
		// before it is paused; a death that follows such a suspicion logs
		// no new one, and the pause's suspicion time would be missing. So
		// pause only once no suspicion of it is recent (bounded).
		// Any member may be the first to probe the paused one and suspect
		// it (the others hear it by gossip, which is not logged): read the
		// suspicions the observers and the slow member logged.
		suspicions := func() []time.Time {
			all := append(observersLog.Suspicions(name), slowLog.Suspicions(name)...)
			slices.SortFunc(all, func(a, b time.Time) int { return a.Compare(b) })
			return all
		}
		quiet := 4 * time.Duration(mult) * interval
		for waitUntil := time.Now().Add(5 * time.Second); time.Now().Before(waitUntil); {
			sus := suspicions()
			if len(sus) == 0 || time.Since(sus[len(sus)-1]) > quiet {
				break
			}
			time.Sleep(interval) // the log has no signal but its lines
		}
		suspicionsBefore := len(suspicions())
		paused := time.Now()
		proc.signal(syscall.SIGSTOP)
		hb, hbOK := v.wait(ctx, "heartbeat", name, true, paused, bound)
		dead, deadOK := v.wait(ctx, "swim", name, true, paused, bound)
		s.HeartbeatDetectMS = append(s.HeartbeatDetectMS, sinceMS(paused, hb, hbOK))
		s.SWIMDetectMS = append(s.SWIMDetectMS, sinceMS(paused, dead, deadOK))
		sus := suspicions()
		if len(sus) > suspicionsBefore {
			s.SWIMSuspectMS = append(s.SWIMSuspectMS, sinceMS(paused, sus[suspicionsBefore], true))
		} else {
			s.SWIMSuspectMS = append(s.SWIMSuspectMS, -1)
		}
		resumed := time.Now()
		proc.signal(syscall.SIGCONT)
		back, backOK := v.wait(ctx, "heartbeat", name, false, resumed, 5*time.Second)
		s.HeartbeatBackMS = append(s.HeartbeatBackMS, sinceMS(resumed, back, backOK))
		back, backOK = v.wait(ctx, "swim", name, false, resumed, 5*time.Second)
		s.SWIMBackMS = append(s.SWIMBackMS, sinceMS(resumed, back, backOK))
		proc.kill()
		obs.Forget(name)
		if err := settleAfterKill(ctx, members[0], name, bound); err != nil {
			return s, err
		}
	}
	return s, nil
}

// settleAfterKill waits until the killed member has left observer 1's view,
// so that the next trial starts from four members.
func settleAfterKill(ctx context.Context, ml *memberlist.Memberlist, name string, bound time.Duration) error {
	deadline := time.Now().Add(bound)
	for {
		gone := true
		for _, n := range ml.Members() {
			if n.Name == name {
				gone = false
			}
		}
		if gone {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("failure-detection: the killed %s was never declared dead", name)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func sinceMS(t0, t time.Time, ok bool) float64 {
	if !ok {
		return -1
	}
	return float64(t.Sub(t0).Microseconds()) / 1000
}

type memberProcess struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
}

func (m *memberProcess) signal(s syscall.Signal) { _ = m.cmd.Process.Signal(s) }

func (m *memberProcess) kill() {
	_ = m.cmd.Process.Kill()
	_ = m.stdin.Close()
	_ = m.cmd.Wait()
}

// startMember runs `scalelab experiment member` and waits for its ready line.
func startMember(ctx context.Context, env Env, keyFile, name, join, heartbeatTo string, interval time.Duration, mult int) (*memberProcess, error) {
	cmd := exec.Command(env.Binary, "experiment", "member", "--name", name, "--join", join, "--heartbeat-to", heartbeatTo,
		"--cluster-key", keyFile, "--probe-interval", interval.String(), "--suspicion-mult", fmt.Sprint(mult))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	var stderr strings.Builder
	cmd.Stderr = &limitedWriter{w: &stderr, n: 4096}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("failure-detection: start a member: %w", err)
	}
	m := &memberProcess{cmd: cmd, stdin: stdin}
	ready := make(chan error, 1)
	go func() {
		line, err := bufio.NewReader(stdout).ReadString('\n')
		if err == nil && !strings.HasPrefix(line, "ready ") {
			err = fmt.Errorf("said %q", line)
		}
		ready <- err
		_, _ = io.Copy(io.Discard, stdout)
	}()
	select {
	case err := <-ready:
		if err != nil {
			m.kill()
			return nil, fmt.Errorf("failure-detection: member %s did not start: %v %s", name, err, stderr.String())
		}
	case <-time.After(10 * time.Second):
		m.kill()
		return nil, fmt.Errorf("failure-detection: member %s did not join within 10 s: %s", name, stderr.String())
	case <-ctx.Done():
		m.kill()
		return nil, ctx.Err()
	}
	return m, nil
}

type limitedWriter struct {
	mu sync.Mutex
	w  io.Writer
	n  int
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.n > 0 {
		k := min(len(p), l.n)
		_, _ = l.w.Write(p[:k])
		l.n -= k
	}
	return len(p), nil
}

func msList(ms []float64) string {
	out := make([]string, len(ms))
	for i, v := range ms {
		if v < 0 {
			out[i] = "—"
		} else {
			out[i] = fmt.Sprintf("%.0f", v)
		}
	}
	return strings.Join(out, ", ")
}

// median of the measured values (−1 for none measured).
func median(ms []float64) float64 {
	var ok []float64
	for _, v := range ms {
		if v >= 0 {
			ok = append(ok, v)
		}
	}
	if len(ok) == 0 {
		return -1
	}
	sort.Float64s(ok)
	if len(ok)%2 == 1 {
		return ok[len(ok)/2]
	}
	return (ok[len(ok)/2-1] + ok[len(ok)/2]) / 2
}

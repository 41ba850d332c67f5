package mapreduce

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/scalelab/scalelab/internal/platform/auth"
	"github.com/scalelab/scalelab/internal/platform/blob"
	"github.com/scalelab/scalelab/internal/platform/broker"
)

// WorkerConfig tunes a worker process.
type WorkerConfig struct {
	ID    string // default: host-pid-random
	Slots int    // tasks run at once (default 1)
	// Heartbeat is how often the worker says which attempts it runs; a
	// quarter of the coordinator's lease or less.
	Heartbeat time.Duration
	TmpDir    string // spills and outputs before upload (default os.TempDir())
	// Fault, when set (tests and the lab), is asked before each attempt:
	// it may make the worker stall (stop heartbeating and working) for a
	// while, or crash (stop at once, acking and reporting nothing).
	Fault func(ref attemptRef) Fault
}

// Fault is what WorkerConfig.Fault injects into one attempt.
type Fault struct {
	Stall time.Duration
	Crash bool
	// Slow adds this much to the attempt's time while the worker keeps
	// heartbeating: a straggler (a bad disk, a noisy neighbour).
	Slow time.Duration
}

// Worker runs map and reduce attempts taken from the broker's work queue,
// reads inputs from where the job's spec says and writes outputs to the
// blob store. It needs nothing else: not the database, not the
// coordinator's address.
type Worker struct {
	cfg    WorkerConfig
	broker broker.Broker
	blob   blob.Store
	log    *slog.Logger
	met    *metrics
	key    *auth.Key

	mu        sync.Mutex
	running   map[attemptRef]*run
	cancelled map[attemptRef]time.Time // recently cancelled, for messages that arrive after the cancellation
	specs     map[string]JobSpec
	stalled   bool
	crashed   chan struct{}
	crashOnce sync.Once
}

type run struct {
	cancel context.CancelFunc
	msg    *broker.Message
	worker string // the copy's worker, for cancellations aimed at one
}

// DefaultWorkerConfig is one slot, heartbeats every second.
func DefaultWorkerConfig() WorkerConfig { return WorkerConfig{Slots: 1, Heartbeat: time.Second} }

func newWorker(cfg WorkerConfig, b broker.Broker, bs blob.Store, log *slog.Logger, met *metrics) *Worker {
	if cfg.Slots < 1 {
		cfg.Slots = 1
	}
	if cfg.Heartbeat <= 0 || cfg.Heartbeat > tasksAckWait/4 {
		cfg.Heartbeat = min(time.Second, tasksAckWait/4)
	}
	if cfg.ID == "" {
		host, _ := os.Hostname()
		var b [3]byte
		_, _ = rand.Read(b[:])
		cfg.ID = fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b[:]))
	}
	return &Worker{cfg: cfg, broker: b, blob: bs, log: log, met: met, running: map[attemptRef]*run{},
		cancelled: map[attemptRef]time.Time{}, specs: map[string]JobSpec{}, crashed: make(chan struct{})}
}

// ID is the worker's name in events and the task timeline.
func (w *Worker) ID() string { return w.cfg.ID }

// Run takes tasks until ctx ends (attempts in flight are given back) or
// the worker crashes (an injected fault: nothing is given back).
func (w *Worker) Run(ctx context.Context) error {
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	go func() {
		select {
		case <-w.crashed:
			stop()
		case <-ctx.Done():
		}
	}()
	ctl, err := w.broker.Subscribe(ctx, controlTopic, w.onControl)
	if err != nil {
		if ctx.Err() != nil {
			return nil // stopped (or crashed) while starting: as asked, not a failure
		}
		return fmt.Errorf("mapreduce: subscribe to control: %w", err)
	}
	defer ctl.Stop()
	var consumers []broker.Consumer
	defer func() {
		for _, c := range consumers {
			c.Stop()
		}
	}()
	for range w.cfg.Slots {
		c, err := w.broker.Consume(ctx, tasksTopic, workersGroup, func(_ context.Context, m *broker.Message) { w.onTask(ctx, m) },
			broker.MemberPrefetch(1), broker.GroupAckWait(tasksAckWait))
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("mapreduce: consume tasks: %w", err)
		}
		consumers = append(consumers, c)
	}
	w.log.Info("mapreduce: worker ready", "worker", w.cfg.ID, "slots", w.cfg.Slots)
	tick := time.NewTicker(w.cfg.Heartbeat)
	defer tick.Stop()
	for {
		w.beat(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// beat publishes the heartbeat and keeps the running messages from
// being redelivered while they run.
func (w *Worker) beat(ctx context.Context) {
	w.mu.Lock()
	if w.stalled || w.isCrashed() {
		w.mu.Unlock()
		return
	}
	hb := heartbeat{Worker: w.cfg.ID, Slots: w.cfg.Slots}
	var msgs []*broker.Message
	for ref, r := range w.running {
		hb.Running = append(hb.Running, ref)
		msgs = append(msgs, r.msg)
	}
	for ref, at := range w.cancelled {
		if time.Since(at) > 10*time.Minute {
			delete(w.cancelled, ref)
		}
	}
	w.mu.Unlock()
	if err := w.broker.Publish(ctx, heartbeatsTopic, encode(w.key, hb)); err != nil && ctx.Err() == nil {
		w.log.Warn("mapreduce: heartbeat", "err", err)
	}
	for _, m := range msgs {
		_ = m.InProgress()
	}
}

func (w *Worker) isCrashed() bool {
	select {
	case <-w.crashed:
		return true
	default:
		return false
	}
}

func (w *Worker) onControl(data []byte) {
	c, err := decode[control](w.key, data, "control")
	if err != nil {
		w.met.rejected.WithLabelValues("control").Inc()
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, ref := range c.Cancel {
		if ref.Worker != "" && ref.Worker != w.cfg.ID {
			continue
		}
		w.cancelled[ref.attemptRef] = time.Now()
		if r := w.running[ref.attemptRef]; r != nil {
			r.cancel()
		}
	}
}

// onTask runs one attempt to its end: started, the work, done or failed,
// then the ack. The slot's consumer takes no other task meanwhile.
func (w *Worker) onTask(ctx context.Context, m *broker.Message) {
	msg, err := decode[taskMessage](w.key, m.Data, "task")
	if err == nil {
		err = msg.attemptRef.valid()
	}
	if errors.Is(err, errBadTag) {
		// Either the message is forged or this worker has the wrong key
		// (or none). Give it back, so that a worker with the right key runs
		// it, and wait before taking another: a misconfigured worker must
		// not drain the queue, nor spin on it.
		w.met.rejected.WithLabelValues("task").Inc()
		w.log.Error("mapreduce: a task message this worker cannot verify: is its --cluster-key the coordinator's?", "worker", w.cfg.ID)
		_ = m.Nak()
		select {
		case <-ctx.Done():
		case <-time.After(2 * time.Second):
		}
		return
	}
	if err != nil {
		w.met.rejected.WithLabelValues("task").Inc()
		w.log.Warn("mapreduce: dropped a task message", "err", err)
		_ = m.Ack()
		return
	}
	ref := msg.attemptRef
	actx, cancel := context.WithCancel(ctx)
	defer cancel()
	w.mu.Lock()
	_, dup := w.running[ref]
	_, gone := w.cancelled[ref]
	if !dup && !gone {
		w.running[ref] = &run{cancel: cancel, msg: m}
	}
	w.mu.Unlock()
	if dup || gone {
		w.met.worked.WithLabelValues(ref.Kind, "skipped").Inc()
		_ = m.Ack()
		return
	}
	defer func() {
		w.mu.Lock()
		delete(w.running, ref)
		w.mu.Unlock()
	}()
	if err := w.report(ctx, event{attemptRef: ref, Type: eventStarted, LostMap: -1}); err != nil {
		_ = m.Nak()
		return
	}
	var fault Fault
	if w.cfg.Fault != nil {
		fault = w.cfg.Fault(ref)
	}
	if fault.Crash {
		w.crash()
		return
	}
	if fault.Stall > 0 {
		w.stall(ctx, fault.Stall)
	}
	if fault.Slow > 0 {
		select {
		case <-time.After(fault.Slow):
		case <-actx.Done():
		}
	}
	ev := w.execute(actx, msg)
	switch {
	case w.isCrashed():
		return // a crash reports nothing and acks nothing
	case ctx.Err() != nil:
		ev = event{attemptRef: ref, Type: eventAbandoned, Error: "shutting down", LostMap: -1}
	case actx.Err() != nil:
		w.met.worked.WithLabelValues(ref.Kind, "cancelled").Inc()
		_ = m.Ack()
		return
	}
	w.met.worked.WithLabelValues(ref.Kind, ev.Type).Inc()
	if err := w.report(context.WithoutCancel(ctx), ev); err != nil {
		_ = m.Nak()
		return
	}
	_ = m.Ack()
}

// report publishes an event, retrying a broker outage for a while.
func (w *Worker) report(ctx context.Context, ev event) error {
	ev.Worker = w.cfg.ID
	raw := encode(w.key, ev)
	var err error
	for try := 0; try < 10; try++ {
		if err = w.broker.Publish(ctx, eventsTopic, raw); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Duration(try+1) * 200 * time.Millisecond):
		}
	}
	w.log.Warn("mapreduce: report an event", "event", ev.Type, "attempt", ev.attemptRef.String(), "err", err)
	return err
}

func (w *Worker) crash() {
	w.crashOnce.Do(func() {
		w.log.Info("mapreduce: worker crashes (injected)", "worker", w.cfg.ID)
		close(w.crashed)
	})
}

// stall stops the worker's heartbeats and this attempt for d, as a
// process paused by the kernel or a long GC would.
func (w *Worker) stall(ctx context.Context, d time.Duration) {
	w.mu.Lock()
	w.stalled = true
	w.mu.Unlock()
	select {
	case <-time.After(d):
	case <-ctx.Done():
	}
	w.mu.Lock()
	w.stalled = false
	w.mu.Unlock()
}

// spec is a job's spec, read from the blob store once.
func (w *Worker) spec(ctx context.Context, job string) (JobSpec, error) {
	w.mu.Lock()
	s, ok := w.specs[job]
	w.mu.Unlock()
	if ok {
		return s, nil
	}
	obj, err := w.blob.Open(ctx, specKey(job))
	if err != nil {
		return JobSpec{}, fmt.Errorf("mapreduce: the spec of job %s: %w", job, err)
	}
	defer obj.Close()
	if err := json.NewDecoder(io.LimitReader(obj, 64<<20)).Decode(&s); err != nil {
		return JobSpec{}, fmt.Errorf("mapreduce: the spec of job %s: %w", job, err)
	}
	w.mu.Lock()
	if len(w.specs) > 64 {
		clear(w.specs)
	}
	w.specs[job] = s
	w.mu.Unlock()
	return s, nil
}

func failed(ref attemptRef, err error) event {
	return event{attemptRef: ref, Type: eventFailed, Error: truncate(err.Error(), 4000), LostMap: -1}
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// errLost marks a reduce input that could not be read.
var errLost = errors.New("map output lost")

// runningRefs are the attempts the worker runs now.
func (w *Worker) runningRefs() []attemptRef {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]attemptRef, 0, len(w.running))
	for ref := range w.running {
		out = append(out, ref)
	}
	return out
}

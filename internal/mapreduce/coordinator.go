package mapreduce

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/scalelab/scalelab/internal/platform/auth"
	"github.com/scalelab/scalelab/internal/platform/blob"
	"github.com/scalelab/scalelab/internal/platform/broker"
)

// Coordinator is the paper's master: it splits jobs into tasks, hands
// them to workers through the broker, and follows every attempt to the
// end. All it knows is in the SQL store (jobs and attempts) except the
// workers' heartbeats, which it keeps in memory and, after its own
// restart, grants a lease's grace.
type Coordinator struct {
	store  *store
	broker broker.Broker
	blob   blob.Store
	policy Policy
	now    func() time.Time
	log    *slog.Logger
	met    *metrics
	key    *auth.Key // seals and checks every message; nil: loopback demos
	// blobURL is the store's URL (--blob), for inputs named s3://…
	blobURL string

	mu      sync.Mutex
	since   time.Time                // when this coordinator started: running attempts count as alive from here
	alive   map[attemptRef]time.Time // last heartbeat of each running attempt
	workers map[string]workerSeen
	ready   chan struct{} // closed once Run follows events
}

type workerSeen struct {
	Slots   int          `json:"slots"`
	Running []attemptRef `json:"running"`
	Seen    time.Time    `json:"seen"`
}

func newCoordinator(st *store, b broker.Broker, bs blob.Store, p Policy, now func() time.Time, log *slog.Logger, met *metrics) *Coordinator {
	return &Coordinator{store: st, broker: b, blob: bs, policy: p, now: now, log: log, met: met,
		alive: map[attemptRef]time.Time{}, workers: map[string]workerSeen{}, ready: make(chan struct{})}
}

// Run follows events and heartbeats and re-plans every job each tick
// until ctx ends.
func (c *Coordinator) Run(ctx context.Context) error {
	c.mu.Lock()
	c.since = c.now()
	c.mu.Unlock()
	// The work queue exists before the first task is published, so that
	// RabbitMQ keeps tasks submitted before any worker joined.
	if err := c.broker.Declare(ctx, tasksTopic, workersGroup, broker.GroupAckWait(tasksAckWait)); err != nil {
		return fmt.Errorf("mapreduce: declare the task queue: %w", err)
	}
	hb, err := c.broker.Subscribe(ctx, heartbeatsTopic, c.onHeartbeat)
	if err != nil {
		return fmt.Errorf("mapreduce: subscribe to heartbeats: %w", err)
	}
	defer hb.Stop()
	// Events are applied in milliseconds; those a crashed coordinator had
	// taken must come back to its successor in seconds, not after the
	// broker's ack wait (30 s), or the tasks they report would wait.
	ev, err := c.broker.Consume(ctx, eventsTopic, coordGroup, c.onEvent, broker.GroupAckWait(eventsAckWait))
	if err != nil {
		return fmt.Errorf("mapreduce: consume events: %w", err)
	}
	defer ev.Stop()
	close(c.ready)
	tick := time.NewTicker(min(time.Second, max(50*time.Millisecond, c.policy.Lease/10)))
	defer tick.Stop()
	for {
		c.tick(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

func (c *Coordinator) tick(ctx context.Context) {
	jobs, err := c.store.jobs(ctx, true, 1000)
	if err != nil {
		c.log.Warn("mapreduce: list active jobs", "err", err)
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, j := range jobs {
		if err := c.advance(ctx, j.Spec.ID); err != nil && ctx.Err() == nil {
			c.log.Warn("mapreduce: advance job", "job", j.Spec.ID, "err", err)
		}
	}
	for w, s := range c.workers {
		if c.now().Sub(s.Seen) > 3*c.policy.Lease {
			delete(c.workers, w)
		}
	}
}

// eventsAckWait is how soon NATS redelivers an event the coordinator took
// and did not ack. Applying an event twice is harmless: every change is
// conditional on the attempt's state.
const eventsAckWait = 2 * time.Second

// tasksAckWait is how soon NATS redelivers a task message a worker took
// and stopped renewing (InProgress, with each heartbeat): a worker that
// died as its pull request was answered must not hold a task for the
// broker's 30 s while the coordinator, which never heard it started,
// waits. A running attempt is renewed every heartbeat, so a quarter of
// this at most.
const tasksAckWait = 6 * time.Second

// Ready is closed once the coordinator follows its workers' events.
func (c *Coordinator) Ready() <-chan struct{} { return c.ready }

// Submit prepares a job, stores its spec where workers read it, records
// it and launches its map tasks.
func (c *Coordinator) Submit(ctx context.Context, req SubmitRequest) (*JobRow, error) {
	spec, err := prepare(ctx, c.blob, c.blobURL, req)
	if err != nil {
		return nil, err
	}
	spec.Submitted = c.now().UTC()
	if err := putJSON(ctx, c.blob, specKey(spec.ID), spec); err != nil {
		return nil, err
	}
	if err := c.store.insertJob(ctx, spec); err != nil {
		return nil, err
	}
	c.met.jobs.WithLabelValues("submitted").Inc()
	c.mu.Lock()
	err = c.advance(ctx, spec.ID)
	c.mu.Unlock()
	if err != nil {
		c.log.Warn("mapreduce: first launch (the next tick retries)", "job", spec.ID, "err", err)
	}
	return c.store.job(ctx, spec.ID)
}

// phase is one job's tasks of its current kind, as Plan wants them, with
// the attempts' rows beside them.
type phase struct {
	job   *JobRow
	kind  string
	tasks []Task
	rows  [][]AttemptRow
	// Both kinds, whatever the phase: a reduce attempt names the map
	// outputs, and an event may be about either kind.
	maps, reduces     []Task
	reduceAttemptRows [][]AttemptRow
}

func (c *Coordinator) load(ctx context.Context, id string) (*phase, error) {
	j, err := c.store.job(ctx, id)
	if err != nil {
		return nil, err
	}
	rows, err := c.store.attempts(ctx, id)
	if err != nil {
		return nil, err
	}
	p := &phase{job: j, kind: "map"}
	if j.State == JobReduce {
		p.kind = "reduce"
	}
	tasks := map[string][]Task{"map": make([]Task, len(j.Spec.Splits)), "reduce": make([]Task, j.Spec.Reducers)}
	byTask := map[string][][]AttemptRow{"map": make([][]AttemptRow, len(j.Spec.Splits)), "reduce": make([][]AttemptRow, j.Spec.Reducers)}
	for k, ts := range tasks {
		for i := range ts {
			ts[i] = Task{Kind: k, Index: i}
		}
	}
	for _, r := range rows {
		ts := tasks[r.Ref.Kind]
		if r.Ref.Index >= len(ts) {
			continue
		}
		a := r.Attempt
		if a.State == AttemptRunning {
			a.Alive = maxTime(a.Started, c.since, c.alive[r.Ref])
		}
		ts[r.Ref.Index].Attempts = append(ts[r.Ref.Index].Attempts, a)
		if a.State == AttemptDone {
			ts[r.Ref.Index].Done = true
		}
		byTask[r.Ref.Kind][r.Ref.Index] = append(byTask[r.Ref.Kind][r.Ref.Index], r)
	}
	p.tasks, p.rows = tasks[p.kind], byTask[p.kind]
	p.maps, p.reduces, p.reduceAttemptRows = tasks["map"], tasks["reduce"], byTask["reduce"]
	return p, nil
}

func maxTime(ts ...time.Time) time.Time {
	var m time.Time
	for _, t := range ts {
		if t.After(m) {
			m = t
		}
	}
	return m
}

func allDone(tasks []Task) bool {
	for _, t := range tasks {
		if !t.Done {
			return false
		}
	}
	return true
}

// advance carries one job forward: it plans its phase, carries out the
// plan, and moves to the next phase (or finishes) when every task of
// this one is done. c.mu is held.
func (c *Coordinator) advance(ctx context.Context, id string) error {
	for range 3 { // map → reduce → done, at most
		p, err := c.load(ctx, id)
		if err != nil {
			return err
		}
		if p.job.State != JobMap && p.job.State != JobReduce {
			return nil
		}
		if err := c.republish(ctx, p); err != nil {
			return err
		}
		if allDone(p.tasks) {
			if p.kind == "map" {
				if err := c.store.setJobState(ctx, id, JobReduce, "", time.Time{}); err != nil {
					return err
				}
				continue
			}
			return c.finish(ctx, p)
		}
		for _, act := range Plan(c.now(), p.tasks, c.policy) {
			if err := c.act(ctx, p, act); err != nil {
				return err
			}
		}
		return nil
	}
	return nil
}

func (c *Coordinator) act(ctx context.Context, p *phase, act Action) error {
	t := &p.tasks[act.Task]
	switch act.Kind {
	case Expire:
		ref := p.rows[act.Task][act.Index].Ref
		ok, err := c.store.changeAttempt(ctx, c.store.db, ref, attemptChange{to: AttemptLost, from: []AttemptState{AttemptRunning},
			finished: c.now(), errText: fmt.Sprintf("no heartbeat for %s", c.policy.Lease)})
		if err != nil || !ok {
			return err
		}
		c.met.attempts.WithLabelValues(ref.Kind, string(AttemptLost)).Inc()
		c.log.Info("mapreduce: lease expired", "attempt", ref.String(), "worker", t.Attempts[act.Index].Worker)
		delete(c.alive, ref)
		c.cancel(ctx, cancelRef{attemptRef: ref})
	case Launch, LaunchBackup:
		return c.launch(ctx, p, t, act.Kind == LaunchBackup)
	case FailJob:
		last := ""
		for _, a := range t.Attempts {
			if a.Error != "" {
				last = a.Error
			}
		}
		msg := fmt.Sprintf("%s task %d failed %d times; last: %s", t.Kind, t.Index, t.failures(), last)
		c.log.Warn("mapreduce: job failed", "job", p.job.Spec.ID, "why", msg)
		c.cancelLive(ctx, p.job.Spec.ID, "the job failed")
		c.met.jobs.WithLabelValues(JobFailed).Inc()
		return c.store.setJobState(ctx, p.job.Spec.ID, JobFailed, msg, c.now())
	}
	return nil
}

func (c *Coordinator) launch(ctx context.Context, p *phase, t *Task, backup bool) error {
	n := 1
	for _, a := range t.Attempts {
		n = max(n, a.N+1)
	}
	ref := attemptRef{Job: p.job.Spec.ID, Kind: t.Kind, Index: t.Index, Attempt: n}
	if err := c.store.insertAttempt(ctx, ref, backup, c.now()); err != nil {
		return err
	}
	reason := "first"
	switch {
	case backup:
		reason = "backup"
	case n > 1:
		reason = "retry"
	}
	c.met.launches.WithLabelValues(t.Kind, reason).Inc()
	t.Attempts = append(t.Attempts, Attempt{N: n, State: AttemptQueued, Backup: backup, Queued: c.now()})
	return c.publishTask(ctx, p, ref)
}

// publishTask sends an attempt's task message and marks it sent; a
// failure leaves it for republish.
func (c *Coordinator) publishTask(ctx context.Context, p *phase, ref attemptRef) error {
	msg := taskMessage{attemptRef: ref}
	if ref.Kind == "reduce" {
		for _, m := range p.maps {
			winner := 0
			for _, a := range m.Attempts {
				if a.State == AttemptDone {
					winner = a.N
				}
			}
			if winner == 0 {
				return fmt.Errorf("mapreduce: reduce %s before map %d is done", ref, m.Index)
			}
			msg.Maps = append(msg.Maps, mapOutputKey(ref.Job, m.Index, winner))
		}
	}
	if err := c.broker.Publish(ctx, tasksTopic, encode(c.key, msg)); err != nil {
		return fmt.Errorf("mapreduce: publish %s: %w", ref, err)
	}
	return c.store.markPublished(ctx, ref)
}

// republish sends the task messages of attempts recorded but not sent (a
// publish that failed, or a coordinator that died between the two).
func (c *Coordinator) republish(ctx context.Context, p *phase) error {
	for _, rows := range p.rows {
		for _, r := range rows {
			if r.State == AttemptQueued && !r.Published {
				if err := c.publishTask(ctx, p, r.Ref); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// finish runs the job's finisher, if it has one, and marks it done.
func (c *Coordinator) finish(ctx context.Context, p *phase) error {
	spec := p.job.Spec
	def, err := Lookup(spec.Job)
	if err != nil {
		return c.store.setJobState(ctx, spec.ID, JobFailed, err.Error(), c.now())
	}
	job, err := def.New(spec.Params)
	if err != nil {
		return c.store.setJobState(ctx, spec.ID, JobFailed, err.Error(), c.now())
	}
	if f, ok := job.(Finisher); ok {
		if err := c.runFinisher(ctx, spec, f); err != nil {
			return err
		}
	}
	c.met.jobs.WithLabelValues(JobDone).Inc()
	c.log.Info("mapreduce: job done", "job", spec.ID, "took", c.now().Sub(spec.Submitted).Round(time.Millisecond))
	return c.store.setJobState(ctx, spec.ID, JobDone, "", c.now())
}

func (c *Coordinator) runFinisher(ctx context.Context, spec JobSpec, f Finisher) error {
	tmp, err := os.CreateTemp("", "mapreduce-result-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	var readErr error
	lines := func(yield func([]byte) bool) {
		for r := 0; r < spec.Reducers; r++ {
			obj, err := c.blob.Open(ctx, partKey(spec.ID, r))
			if err != nil {
				readErr = err
				return
			}
			sc := bufio.NewScanner(obj)
			sc.Buffer(make([]byte, 64<<10), spec.MaxRecord+(1<<20))
			for sc.Scan() {
				if !yield(sc.Bytes()) {
					obj.Close()
					return
				}
			}
			readErr = sc.Err()
			obj.Close()
			if readErr != nil {
				return
			}
		}
	}
	lw := newLineWriter(tmp)
	f.Finish(iter.Seq[[]byte](lines), lw.line)
	if err := errors.Join(readErr, lw.flush()); err != nil {
		return fmt.Errorf("mapreduce: finish %s: %w", spec.ID, err)
	}
	size, err := tmp.Seek(0, 1)
	if err != nil {
		return err
	}
	if _, err := tmp.Seek(0, 0); err != nil {
		return err
	}
	if _, err := c.blob.Put(ctx, resultKey(spec.ID), tmp, size, "text/plain"); err != nil {
		return fmt.Errorf("mapreduce: store the result of %s: %w", spec.ID, err)
	}
	return nil
}

// cancel tells the workers to stop an attempt; best effort, as a lost
// cancellation only costs a wasted attempt whose output nobody reads.
func (c *Coordinator) cancel(ctx context.Context, refs ...cancelRef) {
	if len(refs) == 0 {
		return
	}
	if err := c.broker.Publish(ctx, controlTopic, encode(c.key, control{Cancel: refs})); err != nil {
		c.log.Warn("mapreduce: publish cancellations", "err", err)
	}
}

// cancelLive cancels every live attempt of a job.
func (c *Coordinator) cancelLive(ctx context.Context, job, why string) {
	rows, err := c.store.attempts(ctx, job)
	if err != nil {
		return
	}
	var refs []cancelRef
	for _, r := range rows {
		if r.State.live() {
			if ok, _ := c.store.changeAttempt(ctx, c.store.db, r.Ref, attemptChange{to: AttemptCancelled, from: []AttemptState{r.State}, finished: c.now(), errText: why}); ok {
				refs = append(refs, cancelRef{attemptRef: r.Ref})
			}
		}
	}
	c.cancel(ctx, refs...)
}

func (c *Coordinator) onHeartbeat(data []byte) {
	hb, err := decode[heartbeat](c.key, data, "heartbeat")
	if err != nil || hb.Worker == "" || len(hb.Worker) > 100 || len(hb.Running) > 1024 {
		c.met.rejected.WithLabelValues("heartbeat").Inc()
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	for _, r := range hb.Running {
		if r.valid() == nil {
			c.alive[r] = now
		}
	}
	c.workers[hb.Worker] = workerSeen{Slots: hb.Slots, Running: hb.Running, Seen: now}
}

// Workers are the workers heard from in the last three leases.
func (c *Coordinator) Workers() map[string]workerSeen {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]workerSeen, len(c.workers))
	for w, s := range c.workers {
		out[w] = s
	}
	return out
}

package mapreduce

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/scalelab/scalelab/internal/platform/apperr"
	"github.com/scalelab/scalelab/internal/platform/blob"
	"github.com/scalelab/scalelab/internal/platform/broker"
)

// onEvent applies a worker's report to the store, then acks it; an event
// that cannot be applied now (the database is down) is naked and comes
// back. An event that can never be applied (it does not parse, names an
// unknown job or an impossible attempt) is dropped and counted: nothing a
// worker sends may wedge the coordinator.
func (c *Coordinator) onEvent(ctx context.Context, m *broker.Message) {
	ev, err := decode[event](c.key, m.Data, "event")
	if err == nil {
		err = ev.attemptRef.valid()
	}
	if err == nil && (ev.Worker == "" || len(ev.Worker) > 100 || len(ev.Error) > 4096) {
		err = fmt.Errorf("mapreduce: an event from worker %.100q", ev.Worker)
	}
	if err != nil {
		c.met.rejected.WithLabelValues("event").Inc()
		c.log.Warn("mapreduce: dropped an event", "err", err)
		_ = m.Ack()
		return
	}
	c.mu.Lock()
	err = c.apply(ctx, ev)
	c.mu.Unlock()
	var ae *apperr.Error
	if errors.As(err, &ae) && ae.Code == apperr.NotFound {
		c.met.rejected.WithLabelValues("event").Inc()
		_ = m.Ack()
		return
	}
	if err != nil {
		c.log.Warn("mapreduce: apply event (will retry)", "event", ev.Type, "attempt", ev.attemptRef.String(), "err", err)
		_ = m.Nak()
		return
	}
	_ = m.Ack()
}

func (c *Coordinator) apply(ctx context.Context, ev event) error {
	p, err := c.load(ctx, ev.Job)
	if err != nil {
		return err
	}
	ref := ev.attemptRef
	task, att := p.find(ref)
	if att == nil {
		return apperr.E(apperr.NotFound, "no attempt %s", ref)
	}
	active := p.job.State == JobMap || p.job.State == JobReduce
	now := c.now()
	switch ev.Type {
	case eventStarted:
		ok, err := c.store.changeAttempt(ctx, c.store.db, ref, attemptChange{to: AttemptRunning, from: []AttemptState{AttemptQueued}, worker: ev.Worker, started: now})
		if err != nil {
			return err
		}
		switch {
		case ok && active:
			c.alive[ref] = now
		case ok: // the job ended while the task waited in the queue
			c.cancel(ctx, cancelRef{attemptRef: ref, Worker: ev.Worker})
		case att.State == AttemptRunning && att.Worker == ev.Worker: // a repeated event
		default:
			// A second delivery of the attempt's message, after its lease
			// ran out or while another worker runs it: stop this copy.
			c.cancel(ctx, cancelRef{attemptRef: ref, Worker: ev.Worker})
		}
		return nil
	case eventDone:
		delete(c.alive, ref)
		// Trust the store, not the report: an output that is not there
		// whole (a forged or confused report, a store that lost it) does
		// not finish a task.
		key := partKey(ref.Job, ref.Index)
		if ref.Kind == "map" {
			key = mapOutputKey(ref.Job, ref.Index, ref.Attempt)
		}
		if info, err := c.blob.Stat(ctx, key); err != nil || info.Size != ev.Bytes {
			if err != nil && !errors.Is(err, blob.ErrNotFound) {
				return err // the store is down: the event comes back
			}
			c.met.rejected.WithLabelValues("event").Inc()
			ev.Type, ev.Error = eventFailed, fmt.Sprintf("reported done, but %s is not in the blob store with %d bytes", key, ev.Bytes)
			return c.applyFailed(ctx, ref, ev, now)
		}
		from := []AttemptState{AttemptQueued, AttemptRunning, AttemptLost, AttemptCancelled}
		change := attemptChange{to: AttemptDone, from: from, worker: ev.Worker, finished: now, records: ev.Records, bytes: ev.Bytes}
		if task.Done || !active || !p.current(ref.Kind) {
			change.to = AttemptLate
		}
		ok, err := c.store.changeAttempt(ctx, c.store.db, ref, change)
		if err != nil || !ok {
			return err
		}
		c.met.attempts.WithLabelValues(ref.Kind, string(change.to)).Inc()
		if change.to == AttemptDone {
			// The first to finish wins; the others are told to stop.
			var refs []cancelRef
			for _, a := range task.Attempts {
				if a.N != ref.Attempt && a.State.live() {
					other := attemptRef{Job: ref.Job, Kind: ref.Kind, Index: ref.Index, Attempt: a.N}
					if ok, _ := c.store.changeAttempt(ctx, c.store.db, other, attemptChange{to: AttemptCancelled, from: []AttemptState{a.State}, finished: now,
						errText: fmt.Sprintf("attempt %d finished first", ref.Attempt)}); ok {
						refs = append(refs, cancelRef{attemptRef: other})
						delete(c.alive, other)
					}
				}
			}
			c.cancel(ctx, refs...)
		}
	case eventFailed:
		delete(c.alive, ref)
		if ev.LostMap >= 0 && ref.Kind == "reduce" {
			return c.mapOutputLost(ctx, p, ev)
		}
		return c.applyFailed(ctx, ref, ev, now)
	case eventAbandoned:
		delete(c.alive, ref)
		ok, err := c.store.changeAttempt(ctx, c.store.db, ref, attemptChange{to: AttemptCancelled, from: []AttemptState{AttemptQueued, AttemptRunning}, finished: now,
			errText: "the worker stopped: " + ev.Error})
		if err != nil || !ok {
			return err
		}
	default:
		return apperr.E(apperr.NotFound, "event type %q", ev.Type)
	}
	if active {
		return c.advance(ctx, ev.Job)
	}
	return nil
}

func (c *Coordinator) applyFailed(ctx context.Context, ref attemptRef, ev event, now time.Time) error {
	ok, err := c.store.changeAttempt(ctx, c.store.db, ref, attemptChange{to: AttemptFailed, from: []AttemptState{AttemptQueued, AttemptRunning},
		worker: ev.Worker, finished: now, errText: ev.Error})
	if err != nil || !ok {
		return err
	}
	c.met.attempts.WithLabelValues(ref.Kind, string(AttemptFailed)).Inc()
	c.log.Info("mapreduce: attempt failed", "attempt", ref.String(), "worker", ev.Worker, "err", ev.Error)
	return c.advance(ctx, ref.Job)
}

// mapOutputLost handles a reducer that could not read a map task's output:
// the map task is done no more, the job goes back to its map phase, and
// every live reduce attempt is stopped (each needs every map output). The
// reduce attempts are not counted as failures: the loss was not theirs.
func (c *Coordinator) mapOutputLost(ctx context.Context, p *phase, ev event) error {
	why := fmt.Sprintf("map %d's output was lost: %s", ev.LostMap, ev.Error)
	if ev.LostMap < len(p.maps) {
		for _, a := range p.maps[ev.LostMap].Attempts {
			if a.State == AttemptDone && a.N == ev.LostAttempt {
				ref := attemptRef{Job: ev.Job, Kind: "map", Index: ev.LostMap, Attempt: a.N}
				if _, err := c.store.changeAttempt(ctx, c.store.db, ref, attemptChange{to: AttemptLost, from: []AttemptState{AttemptDone}, errText: why}); err != nil {
					return err
				}
				c.met.attempts.WithLabelValues("map", "output-lost").Inc()
				c.log.Warn("mapreduce: map output lost; running the map again", "attempt", ref.String(), "reported by", ev.Worker)
				if err := c.store.setJobState(ctx, ev.Job, JobMap, "", p.job.Finished); err != nil {
					return err
				}
			}
		}
	}
	var refs []cancelRef
	for ti := range p.job.Spec.Reducers {
		for _, r := range p.reduceRows(ti) {
			if r.State.live() {
				if ok, _ := c.store.changeAttempt(ctx, c.store.db, r.Ref, attemptChange{to: AttemptCancelled, from: []AttemptState{r.State}, finished: c.now(), errText: why}); ok {
					if r.Ref != ev.attemptRef {
						refs = append(refs, cancelRef{attemptRef: r.Ref})
					}
					delete(c.alive, r.Ref)
				}
			}
		}
	}
	c.cancel(ctx, refs...)
	return c.advance(ctx, ev.Job)
}

// find is the task and attempt ref names, in any phase.
func (p *phase) find(ref attemptRef) (*Task, *Attempt) {
	tasks := p.maps
	if ref.Kind == "reduce" {
		tasks = p.reduces
	}
	if ref.Index >= len(tasks) {
		return nil, nil
	}
	t := &tasks[ref.Index]
	for i := range t.Attempts {
		if t.Attempts[i].N == ref.Attempt {
			return t, &t.Attempts[i]
		}
	}
	return t, nil
}

// current says whether kind is the phase the job is in: a map attempt
// finishing during the reduce phase is late by definition.
func (p *phase) current(kind string) bool { return kind == p.kind }

func (p *phase) reduceRows(i int) []AttemptRow {
	if i < len(p.reduceAttemptRows) {
		return p.reduceAttemptRows[i]
	}
	return nil
}

package crawler

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// An engine is one instance of a crawler cluster (of one, by default).
// Instances share the SQL store and nothing else: they never talk to each
// other, so there is no peer port to guard. Each writes a heartbeat; the
// live ones form a consistent-hash ring over the shards; each takes the
// leases of the shards the ring gives it and fetches only those shards'
// hosts while its lease holds. That is what keeps politeness across
// instances: a host has one owner, and an owner's fetches end before its
// lease does (a fetch's deadline is cut to the lease's end), so an
// instance that takes over a shard — given back, or expired because its
// owner died — cannot overlap a fetch of the one before it.

// leaseGuard is how long before its lease's end every fetch of an
// instance has ended. A fetch is handed out only while the lease has a
// fetch's timeout and twice this guard left to run, so a fetch's own
// timeout comes first; the lease's end less the guard, as the fetch's
// deadline, is a backstop. Leases are renewed every guard's length, by a
// goroutine of their own, so that nothing the coordinator waits for
// (a shard's fetches ending, a shard's URLs loading) holds them up: with
// a lease at least twice a fetch's timeout, a lease renewed on time
// always has the room to hand fetches out.
func (e *Engine) leaseGuard() time.Duration { return e.lease / 10 }

// owned is the shards this instance holds, with each lease's end. The
// coordinator and the renewer change it under maps, and publish a copy
// after each change for the fetchers to read without a lock. handoff is
// write-held only while shards are given back, and read-held across
// recording a fetch (see record): renewals, every few seconds, must not
// stall every fetch behind the ones being committed.
type owned struct {
	handoff sync.RWMutex
	maps    sync.Mutex
	to      map[int]time.Time
	since   map[int]time.Time // when this instance took each shard
	// taken numbers each shard's taking, so that a renewal that read the
	// store before a shard was taken does not count it lost.
	taken map[int]uint64
	gen   uint64
	view  atomic.Pointer[leaseView]
}

type leaseView struct{ to, since map[int]time.Time }

// publish makes the current leases what readers see. Called with maps
// held.
func (o *owned) publish() {
	v := &leaseView{to: make(map[int]time.Time, len(o.to)), since: make(map[int]time.Time, len(o.since))}
	for s, t := range o.to {
		v.to[s] = t
	}
	for s, t := range o.since {
		v.since[s] = t
	}
	o.view.Store(v)
}

// heldSince is when this instance took a shard it holds.
func (e *Engine) heldSince(shard int) (time.Time, bool) {
	v := e.own.view.Load()
	if v == nil {
		return time.Time{}, false
	}
	t, ok := v.since[shard]
	return t, ok
}

// until is when this instance must have stopped fetching a shard's hosts,
// if it may fetch them now.
func (e *Engine) until(shard int, now time.Time) (time.Time, bool) {
	v := e.own.view.Load()
	if v == nil {
		return time.Time{}, false
	}
	end, ok := v.to[shard]
	if !ok || end.Sub(now) < e.fetchTimeout+2*e.leaseGuard() {
		return time.Time{}, false
	}
	return end.Add(-e.leaseGuard()), true
}

func newInstanceName() string {
	host, _ := os.Hostname()
	var b [3]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b[:]))
}

// coordinate runs until ctx ends: it takes URLs others recorded for this
// instance's shards (every 50 ms), follows crawls started, paused or
// stopped elsewhere (every second), follows the ring (every fifth of a
// lease; renewLeases renews them), and takes back URLs a stalled former
// owner recorded as its own (every 10 s). A finished crawl costs it
// nothing.
func (e *Engine) coordinate(ctx context.Context) {
	defer e.wg.Done()
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	var lastSync, lastTick, lastSweep time.Time
	lastTick = e.now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := e.now()
		e.coordMu.Lock()
		if now.Sub(lastTick) >= e.lease/5 {
			lastTick = now
			if err := e.tick(ctx); err != nil && ctx.Err() == nil {
				e.logger.Warn("crawler: cluster", "err", err)
			}
		}
		if now.Sub(lastSync) >= time.Second {
			lastSync = now
			if err := e.syncCrawls(ctx); err != nil && ctx.Err() == nil {
				e.logger.Warn("crawler: follow crawls", "err", err)
			}
		}
		mode := loadUnloaded
		if now.Sub(lastSweep) >= 10*time.Second {
			lastSweep, mode = now, loadStray
		}
		for _, c := range e.running() {
			if c.over() {
				continue
			}
			if err := c.loadShards(ctx, e.heldShards(), mode); err != nil && ctx.Err() == nil {
				e.logger.Warn("crawler: take queued URLs", "crawl", c.id, "err", err)
			}
		}
		e.coordMu.Unlock()
	}
}

func (e *Engine) running() []*crawl {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]*crawl, 0, len(e.crawls))
	for _, c := range e.crawls {
		out = append(out, c)
	}
	return out
}

func (e *Engine) heldShards() []int {
	v := e.own.view.Load()
	if v == nil {
		return nil
	}
	out := make([]int, 0, len(v.to))
	for s := range v.to {
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

// renewLeases runs until ctx ends, renewing every guard's length.
func (e *Engine) renewLeases(ctx context.Context) {
	defer e.wg.Done()
	t := time.NewTicker(e.leaseGuard())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := e.renew(ctx); err != nil && ctx.Err() == nil {
			e.logger.Warn("crawler: renew leases", "err", err)
		}
	}
}

// renew writes the heartbeat and extends every lease this instance
// holds; a lease found taken (it ran out while renewals failed) is
// dropped here.
func (e *Engine) renew(ctx context.Context) error {
	e.own.maps.Lock()
	gen := e.own.gen
	e.own.maps.Unlock()
	start := e.now()
	if err := e.store.heartbeat(ctx, e.instance, e.started, start); err != nil {
		return err
	}
	held, err := e.store.renew(ctx, e.instance, start.Add(e.lease))
	if err != nil {
		return err // leases run on; fetching stops as they near their end
	}
	var lost []int
	e.own.maps.Lock()
	for s := range e.own.to {
		switch {
		case held[s]:
			e.own.to[s] = start.Add(e.lease)
		case e.own.taken[s] <= gen:
			lost = append(lost, s) // expired and taken: fetches already ended
			delete(e.own.to, s)
			delete(e.own.since, s)
		}
	}
	e.own.publish()
	e.own.maps.Unlock()
	if len(lost) > 0 {
		e.logger.Warn("crawler: leases lost", "shards", len(lost))
		e.dropShards(ctx, lost)
	}
	return nil
}

// tick gives back the shards the ring no longer gives this instance and
// takes the ones it does. Called with coordMu held.
func (e *Engine) tick(ctx context.Context) error {
	start := e.now()
	members, err := e.store.members(ctx, start.Add(-e.lease), start)
	if err != nil {
		return err
	}
	names := []string{e.instance}
	for _, m := range members {
		if m.Instance != e.instance {
			names = append(names, m.Instance)
		}
	}
	r := newRing(names)
	var give []int
	for _, s := range e.heldShards() {
		if r.owner(s) != e.instance {
			give = append(give, s)
		}
	}
	if len(give) > 0 {
		e.own.handoff.Lock()
		e.own.maps.Lock()
		for _, s := range give {
			delete(e.own.to, s)
			delete(e.own.since, s)
		}
		e.own.publish()
		e.own.maps.Unlock()
		e.own.handoff.Unlock()
		e.dropShards(ctx, give)
		if err := e.store.release(ctx, e.instance, give); err != nil {
			return err
		}
		e.logger.Info("crawler: shards given back", "shards", len(give), "members", len(names))
	}
	var want []int
	held := map[int]bool{}
	for _, s := range e.heldShards() {
		held[s] = true
	}
	for _, s := range r.shardsOf(e.instance) {
		if !held[s] {
			want = append(want, s)
		}
	}
	now := e.now()
	took, err := e.store.acquire(ctx, e.instance, want, now.Add(e.lease), now)
	if err != nil {
		return err
	}
	if len(took) > 0 {
		// Loaded before they count as held: a URL recorded meanwhile goes
		// in with no holder, and the next pass takes it.
		for _, c := range e.running() {
			if c.over() {
				continue
			}
			if err := c.loadShards(ctx, took, loadAll); err != nil {
				return err
			}
		}
		e.own.maps.Lock()
		e.own.gen++
		for _, s := range took {
			e.own.to[s], e.own.since[s], e.own.taken[s] = now.Add(e.lease), now, e.own.gen
		}
		e.own.publish()
		e.own.maps.Unlock()
	}
	if len(took) > 0 {
		e.logger.Info("crawler: shards taken", "shards", len(took), "members", len(names))
	}
	if start.Sub(e.lastForget) > time.Hour {
		e.lastForget = start
		return e.store.forgetMembers(ctx, start.Add(-24*time.Hour))
	}
	return nil
}

// dropShards takes shards' hosts out of every crawl's frontier and waits
// for their fetches in flight to end.
func (e *Engine) dropShards(ctx context.Context, shards []int) {
	set := map[int]bool{}
	for _, s := range shards {
		set[s] = true
	}
	for _, c := range e.running() {
		if !c.over() {
			c.release(ctx, set)
		}
	}
}

// syncCrawls starts here the crawls the store shows running or paused
// that this instance does not run, and follows the state of those it
// does (paused, resumed, stopped or finished by another instance).
// Called with coordMu held.
func (e *Engine) syncCrawls(ctx context.Context) error {
	rows, err := e.store.crawls(ctx, "WHERE state IN ('running', 'paused')")
	if err != nil {
		return err
	}
	live := map[int64]bool{}
	for _, r := range rows {
		live[r.ID] = true
		if c, _ := e.get(r.ID); c != nil {
			c.follow(r.State)
			continue
		}
		var cfg CrawlConfig
		if err := json.Unmarshal([]byte(r.Config), &cfg); err != nil {
			e.logger.Warn("crawler: a crawl's settings do not parse; left alone", "crawl", r.ID, "err", err)
			continue
		}
		if err := cfg.validate(); err != nil {
			continue
		}
		if err := e.run(ctx, r.ID, cfg, r.State == "paused"); err != nil {
			return err
		}
	}
	for _, c := range e.running() {
		if live[c.id] || c.over() {
			continue
		}
		r, err := e.store.crawl(ctx, c.id)
		if err != nil {
			return err
		}
		c.follow(r.State)
	}
	return nil
}

// Instance is this engine's name in the cluster.
func (e *Engine) Instance() string { return e.instance }

// Members is the live instances of the cluster, with the shards each
// holds.
func (e *Engine) Members(ctx context.Context) ([]Member, error) {
	now := e.now()
	return e.store.members(ctx, now.Add(-e.lease), now)
}

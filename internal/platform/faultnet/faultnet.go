// Package faultnet is the fault model of the in-process networks that
// clustered systems run their fault tests, experiments and `up` clusters
// on: messages from one node to another blocked (a one-way partition; two
// make a symmetric one), delayed by a fixed time plus jitter (which also
// reorders them), or lost at random.
//
// It decides; it does not carry. Each system's network keeps its own
// nodes and delivery (dynamo's request and response are two messages,
// raftkv's Raft messages are one-way) and asks Decide for each message's
// fate. Nodes are named by whatever the system names them with (K).
//
// What a seed reproduces: the sequence of random draws (which draw says
// "lose", how long each jitter is). Which message receives which draw
// depends on the order in which goroutines send, which real time and the
// scheduler decide, so a seeded run is not replayed message for message.
// The fault schedules built on top (which fault, to whom, in what order)
// come from their own seeded source and are reproduced exactly.
package faultnet

import (
	"math/rand/v2"
	"sync"
	"time"
)

// Faults is the set of faults in force between nodes named by K. The zero
// value is not usable; use New.
type Faults[K comparable] struct {
	mu      sync.Mutex
	blocked map[[2]K]bool
	delay   time.Duration
	jitter  time.Duration
	loss    float64
	slow    map[K]time.Duration // extra delay of every message to or from a node
	rng     *rand.Rand
}

// New returns a healthy network's faults; seed drives loss and jitter.
func New[K comparable](seed uint64) *Faults[K] {
	return &Faults[K]{blocked: map[[2]K]bool{}, slow: map[K]time.Duration{}, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

// Block drops every message from → to (one way).
func (f *Faults[K]) Block(from, to K) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.blocked[[2]K{from, to}] = true
}

// Unblock lets messages from → to through again.
func (f *Faults[K]) Unblock(from, to K) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.blocked, [2]K{from, to})
}

// Partition blocks every message between the two sides, both ways.
func (f *Faults[K]) Partition(a, b []K) {
	for _, x := range a {
		for _, y := range b {
			f.Block(x, y)
			f.Block(y, x)
		}
	}
}

// Isolate cuts node off from every other of all, both ways.
func (f *Faults[K]) Isolate(node K, all []K) {
	for _, o := range all {
		if o != node {
			f.Block(node, o)
			f.Block(o, node)
		}
	}
}

// Blocked reports whether messages from → to are dropped.
func (f *Faults[K]) Blocked(from, to K) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.blocked[[2]K{from, to}]
}

// SetDelay delays every message by d plus up to jitter and loses each
// with probability loss.
func (f *Faults[K]) SetDelay(d, jitter time.Duration, loss float64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.delay, f.jitter, f.loss = d, jitter, loss
}

// Slow delays every message to or from node by d more (0: no longer):
// one slow replica, one congested link.
func (f *Faults[K]) Slow(node K, d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if d <= 0 {
		delete(f.slow, node)
		return
	}
	f.slow[node] = d
}

// Heal lifts every block, delay, slow node and loss.
func (f *Faults[K]) Heal() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.blocked = map[[2]K]bool{}
	f.slow = map[K]time.Duration{}
	f.delay, f.jitter, f.loss = 0, 0, 0
}

// Decide is one message's fate: how long it is delayed, or false when it
// is lost (blocked, or lost at random).
func (f *Faults[K]) Decide(from, to K) (time.Duration, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.blocked[[2]K{from, to}] || f.loss > 0 && f.rng.Float64() < f.loss {
		return 0, false
	}
	d := f.delay + f.slow[from] + f.slow[to]
	if f.jitter > 0 {
		d += time.Duration(f.rng.Int64N(int64(f.jitter)))
	}
	return d, true
}

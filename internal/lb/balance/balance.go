package balance

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"sync"
)

// Backend is what a policy sees of one healthy backend.
type Backend struct {
	ID string
	// Weight is the effective weight: the configured weight times the
	// slow-start factor. Greater than zero.
	Weight float64
	// InFlight is the number of requests in progress on it now.
	InFlight int
	// Cost is the latency estimate, in any unit, for peak-ewma (see
	// PeakEWMA.Cost); the others ignore it.
	Cost float64
}

// Request is what a policy sees of a request.
type Request struct {
	// Key is what hashing policies hash: the client's address for
	// ip-hash, a session cookie or header for consistent.
	Key string
}

// Policy picks a backend for a request; nil when there is none. Pick is
// safe for concurrent use. Backends are given in a stable order (the
// pool's), which round robin follows.
type Policy interface {
	Pick(backends []Backend, req Request) *Backend
}

// Names are the policies New knows, in the order the docs list them.
var Names = []string{"round-robin", "weighted", "least-conn", "ip-hash", "consistent", "random", "p2c", "peak-ewma"}

// New makes the policy called name; seed seeds the random ones.
func New(name string, seed uint64) (Policy, error) {
	switch name {
	case "round-robin":
		return &RoundRobin{}, nil
	case "weighted":
		return &SmoothWeighted{}, nil
	case "least-conn":
		return &LeastConn{}, nil
	case "ip-hash":
		return IPHash{}, nil
	case "consistent":
		return NewBoundedConsistent(DefaultVNodes, DefaultBalanceFactor), nil
	case "random":
		return NewRandom(seed), nil
	case "p2c":
		return NewP2C(seed, false), nil
	case "peak-ewma":
		return NewP2C(seed, true), nil
	}
	return nil, fmt.Errorf("balance: no policy %q (want one of %v)", name, Names)
}

// RoundRobin gives each backend in turn, ignoring weights.
type RoundRobin struct {
	mu   sync.Mutex
	next uint64
}

func (p *RoundRobin) Pick(bs []Backend, _ Request) *Backend {
	if len(bs) == 0 {
		return nil
	}
	p.mu.Lock()
	i := p.next % uint64(len(bs))
	p.next++
	p.mu.Unlock()
	return &bs[i]
}

// SmoothWeighted is nginx's smooth weighted round robin: each pick adds
// every backend's weight to its current value, takes the largest, and
// takes the total off the winner. Over a cycle each backend is picked in
// proportion to its weight, spread out rather than in runs.
type SmoothWeighted struct {
	mu      sync.Mutex
	current map[string]float64
}

func (p *SmoothWeighted) Pick(bs []Backend, _ Request) *Backend {
	if len(bs) == 0 {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.current == nil {
		p.current = map[string]float64{}
	}
	if len(p.current) > 4*len(bs)+16 { // forget backends long gone
		live := map[string]bool{}
		for _, b := range bs {
			live[b.ID] = true
		}
		for id := range p.current {
			if !live[id] {
				delete(p.current, id)
			}
		}
	}
	best, total := -1, 0.0
	for i, b := range bs {
		p.current[b.ID] += b.Weight
		total += b.Weight
		if best < 0 || p.current[b.ID] > p.current[bs[best].ID] {
			best = i
		}
	}
	p.current[bs[best].ID] -= total
	return &bs[best]
}

// LeastConn picks the fewest requests in flight per unit of weight; ties
// rotate, so a burst that arrives before anything completes is spread.
type LeastConn struct {
	mu   sync.Mutex
	next uint64
}

func (p *LeastConn) Pick(bs []Backend, _ Request) *Backend {
	if len(bs) == 0 {
		return nil
	}
	p.mu.Lock()
	start := int(p.next % uint64(len(bs)))
	p.next++
	p.mu.Unlock()
	best := -1
	for k := range bs {
		i := (start + k) % len(bs)
		if best < 0 || lighter(bs[i], bs[best]) {
			best = i
		}
	}
	return &bs[best]
}

// lighter: fewer in flight per unit of weight; between equals, the heavier.
// An idle backend has no load whatever its weight, so a backend in slow
// start (a small weight) is never shut out by busy ones: with (in flight
// + 1) / weight it would need the others to hold 1/weight requests each
// before it got its first (envoy #19437).
func lighter(a, b Backend) bool {
	la, lb := float64(a.InFlight)/a.Weight, float64(b.InFlight)/b.Weight
	if la != lb {
		return la < lb
	}
	return a.Weight > b.Weight
}

// Random picks a backend at random, in proportion to weight.
type Random struct {
	mu sync.Mutex
	r  *rand.Rand
}

// NewRandom seeds the choice.
func NewRandom(seed uint64) *Random {
	return &Random{r: rand.New(rand.NewPCG(seed, seed^0x5851f42d4c957f2d))}
}

func (p *Random) Pick(bs []Backend, _ Request) *Backend {
	if len(bs) == 0 {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return &bs[weightedIndex(p.r, bs, -1)]
}

// weightedIndex draws an index in proportion to weight, skipping skip.
func weightedIndex(r *rand.Rand, bs []Backend, skip int) int {
	total := 0.0
	for i, b := range bs {
		if i != skip {
			total += b.Weight
		}
	}
	x := r.Float64() * total
	last := -1
	for i, b := range bs {
		if i == skip {
			continue
		}
		last = i
		if x < b.Weight {
			return i
		}
		x -= b.Weight
	}
	return last
}

// P2C draws two distinct backends, each in proportion to its weight, and
// keeps the one with fewer requests in flight or, for peak-EWMA, the lower
// latency cost × (in flight + 1). Weights act through the draws only: a
// backend in slow start is drawn less often, and when drawn it competes on
// its own load, so it gets its share from the first request.
type P2C struct {
	mu   sync.Mutex
	r    *rand.Rand
	ewma bool
}

// NewP2C seeds the draws; ewma chooses on latency cost (peak-ewma).
func NewP2C(seed uint64, ewma bool) *P2C {
	return &P2C{r: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), ewma: ewma}
}

func (p *P2C) Pick(bs []Backend, _ Request) *Backend {
	switch len(bs) {
	case 0:
		return nil
	case 1:
		return &bs[0]
	}
	p.mu.Lock()
	a := weightedIndex(p.r, bs, -1)
	b := weightedIndex(p.r, bs, a)
	p.mu.Unlock()
	if p.score(bs[b]) < p.score(bs[a]) {
		a = b
	}
	return &bs[a]
}

func (p *P2C) score(b Backend) float64 {
	if p.ewma {
		return b.Cost * float64(b.InFlight+1)
	}
	return float64(b.InFlight)
}

// sortedIDs is used by tests and by the hashing policies' caches.
func sortedIDs(bs []Backend) []string {
	ids := make([]string, len(bs))
	for i, b := range bs {
		ids[i] = b.ID
	}
	sort.Strings(ids)
	return ids
}

package balance

import (
	"math"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/cespare/xxhash/v2"
)

// IPHash sends a key (the client's address) to one backend by weighted
// rendezvous hashing: every backend scores the key, the highest wins.
// Removing a backend moves only the keys it won; adding one takes from
// each the share its weight earns.
type IPHash struct{}

func (IPHash) Pick(bs []Backend, req Request) *Backend {
	if len(bs) == 0 {
		return nil
	}
	best, bestScore := 0, math.Inf(-1)
	for i, b := range bs {
		if s := rendezvousScore(req.Key, b); s > bestScore {
			best, bestScore = i, s
		}
	}
	return &bs[best]
}

// rendezvousScore is −weight / ln(u) for u uniform in (0, 1) from the
// hash of key and backend: the weighted form whose winner is backend i
// with probability weight_i / Σ weight.
func rendezvousScore(key string, b Backend) float64 {
	h := xxhash.Sum64String(key + "\x00" + b.ID)
	u := (float64(h>>11) + 0.5) / (1 << 53) // (0, 1), never 0 or 1
	return -b.Weight / math.Log(u)
}

// DefaultVNodes and DefaultBalanceFactor are the consistent policy's
// ring size per backend and load bound.
const (
	DefaultVNodes        = 256
	DefaultBalanceFactor = 1.25
)

// BoundedConsistent is consistent hashing with bounded loads: a key goes
// to the first backend clockwise from its hash on a ring of virtual
// nodes, unless that backend's requests in flight would pass
// factor × its weighted share of all in flight (rounded up), when the
// walk goes on to the next backend. Every backend has the same number of
// virtual nodes; weights act through the bound.
type BoundedConsistent struct {
	vnodes int
	factor float64

	mu   sync.Mutex
	set  string // the backend set the ring was built for
	ring []ringPoint
}

type ringPoint struct {
	hash uint64
	id   string
}

// NewBoundedConsistent builds the policy; factor must be > 1.
func NewBoundedConsistent(vnodes int, factor float64) *BoundedConsistent {
	return &BoundedConsistent{vnodes: max(vnodes, 1), factor: max(factor, 1.0001)}
}

func (p *BoundedConsistent) Pick(bs []Backend, req Request) *Backend {
	if len(bs) == 0 {
		return nil
	}
	ring := p.ringFor(bs)
	byID := make(map[string]int, len(bs))
	total, weights := 0, 0.0
	for i, b := range bs {
		byID[b.ID] = i
		total += b.InFlight
		weights += b.Weight
	}
	h := xxhash.Sum64String(req.Key)
	start := sort.Search(len(ring), func(i int) bool { return ring[i].hash >= h })
	seen := make(map[string]bool, len(bs))
	for k := 0; k < len(ring) && len(seen) < len(bs); k++ {
		pt := ring[(start+k)%len(ring)]
		if seen[pt.id] {
			continue
		}
		seen[pt.id] = true
		i := byID[pt.id]
		bound := math.Ceil(p.factor * float64(total+1) * bs[i].Weight / weights)
		if float64(bs[i].InFlight+1) <= bound {
			return &bs[i]
		}
	}
	return &bs[byID[ring[start%len(ring)].id]] // unreachable: some backend is at or below the mean
}

// ringFor returns the ring of the given backends, rebuilt when the set
// changes.
func (p *BoundedConsistent) ringFor(bs []Backend) []ringPoint {
	ids := sortedIDs(bs)
	set := strings.Join(ids, "\x00")
	p.mu.Lock()
	defer p.mu.Unlock()
	if set == p.set {
		return p.ring
	}
	ring := make([]ringPoint, 0, len(ids)*p.vnodes)
	for _, id := range ids {
		for v := 0; v < p.vnodes; v++ {
			ring = append(ring, ringPoint{hash: xxhash.Sum64String(id + "#" + strconv.Itoa(v)), id: id})
		}
	}
	sort.Slice(ring, func(i, j int) bool { return ring[i].hash < ring[j].hash })
	p.set, p.ring = set, ring
	return ring
}

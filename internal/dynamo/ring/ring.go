// Package ring is the Dynamo store's partitioning: consistent hashing with
// virtual nodes, as in section 4.2 of the Dynamo paper. It is pure: no IO,
// no clock, no randomness, so every node that knows the same members
// computes the same ring, and every property is tested exhaustively.
//
// Each physical node owns V points ("virtual nodes") on a 64-bit ring, at
// xxhash64("node#i"). A key hashes to a point; its preference list is the
// first N distinct physical nodes met walking clockwise from there. Virtual
// nodes make each node's share of the ring close to 1/len(nodes) (the
// tests bound it), and spread a departed node's load over all the others
// instead of one neighbour.
//
// Sloppy quorum (section 4.6): when a preferred node is down, Placements
// keeps walking and gives the write to the next healthy node, with a hint
// naming the node the data belongs to, so that hinted handoff can deliver
// it when that node returns.
//
// A Ring is immutable: With and Without return new rings, so readers never
// lock.
package ring

import (
	"fmt"
	"sort"
	"strconv"

	"github.com/cespare/xxhash/v2"
)

// Ring is an immutable consistent-hash ring.
type Ring struct {
	vnodes int
	points []point // sorted by hash
	nodes  []string
}

type point struct {
	hash uint64
	node string
}

// New builds a ring of the given nodes with vnodes points each.
func New(nodes []string, vnodes int) (*Ring, error) {
	if vnodes < 1 || vnodes > 4096 {
		return nil, fmt.Errorf("ring: %d virtual nodes per node; want 1–4096", vnodes)
	}
	seen := map[string]bool{}
	for _, n := range nodes {
		if n == "" {
			return nil, fmt.Errorf("ring: empty node name")
		}
		if seen[n] {
			return nil, fmt.Errorf("ring: node %q listed twice", n)
		}
		seen[n] = true
	}
	r := &Ring{vnodes: vnodes, nodes: append([]string(nil), nodes...)}
	sort.Strings(r.nodes)
	for _, n := range r.nodes {
		for i := 0; i < vnodes; i++ {
			r.points = append(r.points, point{hash: xxhash.Sum64String(n + "#" + strconv.Itoa(i)), node: n})
		}
	}
	// Ties (vanishingly rare) break by node name, so the order is total
	// and every process sorts identically.
	sort.Slice(r.points, func(i, j int) bool {
		a, b := r.points[i], r.points[j]
		return a.hash < b.hash || a.hash == b.hash && a.node < b.node
	})
	return r, nil
}

// Nodes returns the members, sorted.
func (r *Ring) Nodes() []string { return append([]string(nil), r.nodes...) }

// With returns a ring that also holds node.
func (r *Ring) With(node string) (*Ring, error) { return New(append(r.Nodes(), node), r.vnodes) }

// Without returns a ring without node.
func (r *Ring) Without(node string) (*Ring, error) {
	var rest []string
	for _, n := range r.nodes {
		if n != node {
			rest = append(rest, n)
		}
	}
	return New(rest, r.vnodes)
}

// KeyHash is where key sits on the ring.
func KeyHash(key []byte) uint64 { return xxhash.Sum64(key) }

// walk calls fn for each distinct physical node clockwise from h, until fn
// returns false or every node has been visited.
func (r *Ring) walk(h uint64, fn func(node string) bool) {
	if len(r.points) == 0 {
		return
	}
	start := sort.Search(len(r.points), func(i int) bool { return r.points[i].hash >= h })
	seen := make(map[string]bool, len(r.nodes))
	for i := 0; i < len(r.points) && len(seen) < len(r.nodes); i++ {
		p := r.points[(start+i)%len(r.points)]
		if seen[p.node] {
			continue
		}
		seen[p.node] = true
		if !fn(p.node) {
			return
		}
	}
}

// PreferenceList returns the first n distinct nodes clockwise from key
// (fewer if the ring has fewer nodes). The first is the key's coordinator
// of choice; all n hold replicas.
func (r *Ring) PreferenceList(key []byte, n int) []string {
	out := make([]string, 0, n)
	r.walk(KeyHash(key), func(node string) bool {
		out = append(out, node)
		return len(out) < n
	})
	return out
}

// Placement is where one replica of a write goes: Node stores it; when
// HintFor is set, Node holds it for HintFor, which is down, and hands it
// off when HintFor returns.
type Placement struct {
	Node    string
	HintFor string
}

// Placements returns up to n replicas for key under a sloppy quorum: the
// healthy members of the preference list take their own replicas, and each
// unhealthy one is replaced by the next healthy node clockwise beyond the
// preference list, carrying a hint.
func (r *Ring) Placements(key []byte, n int, healthy func(node string) bool) []Placement {
	var out []Placement
	var down []string // preferred nodes that are unhealthy, in order
	i := 0
	r.walk(KeyHash(key), func(node string) bool {
		switch {
		case i < n && healthy(node):
			out = append(out, Placement{Node: node})
		case i < n:
			down = append(down, node)
		case len(down) > 0 && healthy(node):
			out = append(out, Placement{Node: node, HintFor: down[0]})
			down = down[1:]
		}
		i++
		return i < n || len(down) > 0
	})
	return out
}

// Shares returns each node's fraction of the ring (the hash space between
// a point and its predecessor belongs to the point's node).
func (r *Ring) Shares() map[string]float64 {
	shares := make(map[string]float64, len(r.nodes))
	if len(r.points) == 0 {
		return shares
	}
	const space = float64(1<<63) * 2
	prev := r.points[len(r.points)-1].hash
	for _, p := range r.points {
		shares[p.node] += float64(p.hash-prev) / space // wraps correctly in uint64
		prev = p.hash
	}
	if len(r.points) == 1 {
		shares[r.points[0].node] = 1
	}
	return shares
}

// Range is a stretch of the ring, (Start, End], and the nodes that hold it.
type Range struct {
	Start, End uint64
	Nodes      []string
}

// Ranges splits the ring at every point and gives each piece its
// preference list of n nodes: the unit of anti-entropy and of hand-off
// when membership changes.
func (r *Ring) Ranges(n int) []Range {
	out := make([]Range, 0, len(r.points))
	for i, p := range r.points {
		prev := r.points[(i+len(r.points)-1)%len(r.points)].hash
		nodes := make([]string, 0, n)
		r.walk(p.hash, func(node string) bool {
			nodes = append(nodes, node)
			return len(nodes) < n
		})
		out = append(out, Range{Start: prev, End: p.hash, Nodes: nodes})
	}
	return out
}

package crawler

import (
	"hash/fnv"
	"slices"
	"strconv"
)

// numShards is how many parts a crawl's hosts are split into. A host
// belongs to one shard for good (a hash of its name); shards, not hosts,
// move between instances, so a membership change moves a few hundred
// leases, not a million hosts.
const numShards = 256

// ringPoints is each instance's points on the ring: enough that with a
// handful of instances each gets close to its share of the shards.
const ringPoints = 64

// shardOf is the shard a host (with its port) belongs to.
func shardOf(host string) int {
	return int(mix(fnvString(host)) % numShards)
}

func fnvString(s string) uint64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(s))
	return h.Sum64()
}

// mix spreads FNV's output (whose low bits follow the last bytes of
// names like host17.test) over all 64 bits: SplitMix64's finaliser.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// ring is a consistent-hash ring of instances: a shard belongs to the
// instance whose point follows the shard's on the ring. An instance that
// joins or leaves moves only the shards next to its own points, about
// 1/n of them, so every other instance keeps its hosts (and its memory
// of when it last fetched them).
type ring struct {
	points []uint64
	owners []string
}

func newRing(members []string) ring {
	type point struct {
		at    uint64
		owner string
	}
	var ps []point
	for _, m := range members {
		for i := range ringPoints {
			ps = append(ps, point{mix(fnvString(m + "#" + strconv.Itoa(i))), m})
		}
	}
	slices.SortFunc(ps, func(a, b point) int {
		switch {
		case a.at < b.at:
			return -1
		case a.at > b.at:
			return 1
		}
		// A tie between two instances' points (odds 2⁻⁶⁴) is settled by
		// name, so that every instance reads the ring the same way.
		switch {
		case a.owner < b.owner:
			return -1
		case a.owner > b.owner:
			return 1
		}
		return 0
	})
	r := ring{points: make([]uint64, len(ps)), owners: make([]string, len(ps))}
	for i, p := range ps {
		r.points[i], r.owners[i] = p.at, p.owner
	}
	return r
}

// owner is the instance a shard belongs to ("" on an empty ring).
func (r ring) owner(shard int) string {
	if len(r.points) == 0 {
		return ""
	}
	at := mix(uint64(shard) + 0x9e3779b97f4a7c15)
	i, _ := slices.BinarySearch(r.points, at)
	if i == len(r.points) {
		i = 0
	}
	return r.owners[i]
}

// shardsOf is the shards the ring gives to one instance.
func (r ring) shardsOf(member string) []int {
	var out []int
	for s := range numShards {
		if r.owner(s) == member {
			out = append(out, s)
		}
	}
	return out
}

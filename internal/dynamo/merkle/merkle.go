// Package merkle is the Dynamo store's anti-entropy summary (section 4.7 of
// the Dynamo paper): a hash tree over one ring range of one replica. Two
// replicas of a range compare roots; equal roots mean equal data, and
// otherwise walking down the differing children leads to the few leaves
// whose keys must be exchanged — the cost of a sync is proportional to the
// difference, not to the data.
//
// The tree has a fixed shape: 2^depth leaves, each covering an equal slice
// of the range's hash space, so two replicas always build comparable trees
// without agreeing on anything but the range. A leaf's hash is an xxhash
// over its keys and their stored encodings, fed in ring order (the order a
// store scan yields them); an inner node hashes its two children. The
// package is pure: the node feeds it a scan and ships Leaves over the wire.
package merkle

import (
	"encoding/binary"
	"fmt"
	"math/bits"

	"github.com/cespare/xxhash/v2"
)

// MaxDepth bounds the tree: 2^12 leaves.
const MaxDepth = 12

// Tree is a Merkle tree over the ring range (Start, End].
type Tree struct {
	Start, End uint64
	levels     [][]uint64 // levels[0] is the root level, the last is the leaves
}

// Builder accumulates a range's entries into leaves.
type Builder struct {
	start, end uint64
	depth      int
	digests    []*xxhash.Digest
	used       []bool
}

// NewBuilder starts a tree over (start, end] with 2^depth leaves.
func NewBuilder(start, end uint64, depth int) (*Builder, error) {
	if depth < 0 || depth > MaxDepth {
		return nil, fmt.Errorf("merkle: depth %d; want 0–%d", depth, MaxDepth)
	}
	b := &Builder{start: start, end: end, depth: depth, digests: make([]*xxhash.Digest, 1<<depth), used: make([]bool, 1<<depth)}
	for i := range b.digests {
		b.digests[i] = xxhash.New()
	}
	return b, nil
}

// Leaf is the leaf of a depth-deep tree over (start, end] that holds the
// key hash h (which must lie in the range).
func Leaf(start, end, h uint64, depth int) int {
	n := uint64(1) << depth
	offset := h - start - 1 // 0 … width-1
	width := end - start    // 0 means the whole ring
	switch {
	case width == 0:
		return int(offset >> (64 - depth) & (n - 1))
	case width < n:
		return int(offset)
	}
	hi, lo := bits.Mul64(offset, n)
	q, _ := bits.Div64(hi, lo, width)
	return int(q)
}

// Add feeds one entry; entries must come in ring order (a store scan).
func (b *Builder) Add(keyHash uint64, key, raw []byte) {
	i := Leaf(b.start, b.end, keyHash, b.depth)
	var l [8]byte
	binary.LittleEndian.PutUint64(l[:], uint64(len(key)))
	d := b.digests[i]
	_, _ = d.Write(l[:])
	_, _ = d.Write(key)
	binary.LittleEndian.PutUint64(l[:], uint64(len(raw)))
	_, _ = d.Write(l[:])
	_, _ = d.Write(raw)
	b.used[i] = true
}

// Tree finishes the tree.
func (b *Builder) Tree() *Tree {
	leaves := make([]uint64, len(b.digests))
	for i, d := range b.digests {
		if b.used[i] {
			leaves[i] = d.Sum64() | 1 // never 0: 0 is the empty leaf
		}
	}
	t, _ := FromLeaves(b.start, b.end, leaves)
	return t
}

// FromLeaves rebuilds a tree from its leaf hashes (as shipped by a peer).
func FromLeaves(start, end uint64, leaves []uint64) (*Tree, error) {
	if len(leaves) == 0 || len(leaves)&(len(leaves)-1) != 0 || len(leaves) > 1<<MaxDepth {
		return nil, fmt.Errorf("merkle: %d leaves; want a power of two up to %d", len(leaves), 1<<MaxDepth)
	}
	levels := [][]uint64{append([]uint64(nil), leaves...)}
	for len(levels[0]) > 1 {
		below := levels[0]
		up := make([]uint64, len(below)/2)
		var pair [16]byte
		for i := range up {
			if below[2*i] == 0 && below[2*i+1] == 0 {
				continue // an empty subtree hashes to 0
			}
			binary.LittleEndian.PutUint64(pair[:8], below[2*i])
			binary.LittleEndian.PutUint64(pair[8:], below[2*i+1])
			up[i] = xxhash.Sum64(pair[:]) | 1
		}
		levels = append([][]uint64{up}, levels...)
	}
	return &Tree{Start: start, End: end, levels: levels}, nil
}

// Root is the hash of the whole range (0 when it is empty).
func (t *Tree) Root() uint64 { return t.levels[0][0] }

// Leaves returns the leaf hashes, for the wire.
func (t *Tree) Leaves() []uint64 { return t.levels[len(t.levels)-1] }

// Depth is the number of levels below the root.
func (t *Tree) Depth() int { return len(t.levels) - 1 }

// Diff returns the leaves where a and b differ, found by descending only
// into differing subtrees. The trees must cover the same range and depth.
func Diff(a, b *Tree) ([]int, error) {
	if a.Start != b.Start || a.End != b.End || a.Depth() != b.Depth() {
		return nil, fmt.Errorf("merkle: comparing trees of different ranges or shapes")
	}
	var out []int
	var walk func(level, i int)
	walk = func(level, i int) {
		if a.levels[level][i] == b.levels[level][i] {
			return
		}
		if level == a.Depth() {
			out = append(out, i)
			return
		}
		walk(level+1, 2*i)
		walk(level+1, 2*i+1)
	}
	walk(0, 0)
	return out, nil
}

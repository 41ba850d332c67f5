package merkle

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"testing"

	"github.com/cespare/xxhash/v2"
)

type entry struct {
	h        uint64
	key, raw string
}

func build(t *testing.T, start, end uint64, depth int, es []entry) *Tree {
	t.Helper()
	sort.Slice(es, func(i, j int) bool {
		// ring order from start: offsets, not raw hashes, for wrapping ranges
		return es[i].h-start-1 < es[j].h-start-1 || es[i].h == es[j].h && es[i].key < es[j].key
	})
	b, err := NewBuilder(start, end, depth)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range es {
		b.Add(e.h, []byte(e.key), []byte(e.raw))
	}
	return b.Tree()
}

func inRange(start, end, h uint64) bool {
	if start < end {
		return h > start && h <= end
	}
	return h > start || h <= end
}

// Two replicas that differ in a few keys: Diff finds exactly the leaves
// holding them, for plain, wrapping and whole-ring ranges.
func TestDiffFindsExactlyTheDifferingLeaves(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	ranges := [][2]uint64{{100, 1 << 40}, {^uint64(0) - 1<<50, 1 << 50}, {42, 42}, {0, ^uint64(0)}, {10, 13}}
	for _, rg := range ranges {
		for _, depth := range []int{0, 1, 4, 6} {
			t.Run(fmt.Sprint(rg, depth), func(t *testing.T) {
				var common []entry
				for len(common) < 300 {
					h := rng.Uint64()
					if w := rg[1] - rg[0]; w != 0 {
						h = rg[0] + 1 + rng.Uint64N(w)
					}
					if inRange(rg[0], rg[1], h) {
						common = append(common, entry{h, fmt.Sprint("k", len(common)), "v"})
					}
				}
				a := build(t, rg[0], rg[1], depth, slices.Clone(common))
				b := build(t, rg[0], rg[1], depth, slices.Clone(common))
				if a.Root() != b.Root() || a.Root() == 0 {
					t.Fatal("equal data, different (or empty) roots")
				}
				if d, _ := Diff(a, b); len(d) != 0 {
					t.Fatalf("equal data differs at %v", d)
				}
				// Change one value and drop one key on b.
				changed := slices.Clone(common)
				changed[17].raw = "v2"
				dropped := changed[200]
				changed = slices.Delete(changed, 200, 201)
				b = build(t, rg[0], rg[1], depth, changed)
				want := []int{Leaf(rg[0], rg[1], common[17].h, depth), Leaf(rg[0], rg[1], dropped.h, depth)}
				slices.Sort(want)
				want = slices.Compact(want)
				got, err := Diff(a, b)
				if err != nil || !slices.Equal(got, want) {
					t.Fatalf("diff %v, want %v (%v)", got, want, err)
				}
			})
		}
	}
}

// Leaf maps a range onto its leaves in order and covers them all.
func TestLeafIsMonotoneAndInBounds(t *testing.T) {
	for _, rg := range [][2]uint64{{0, 1 << 20}, {^uint64(0) - 5000, 5000}, {9, 9}} {
		const depth = 6
		prev := 0
		hit := map[int]bool{}
		width := rg[1] - rg[0]
		steps := uint64(10000)
		for i := uint64(1); i <= steps; i++ {
			off := width / steps * i
			if width == 0 {
				off = (^uint64(0) / steps) * i
			}
			l := Leaf(rg[0], rg[1], rg[0]+off, depth)
			if l < prev || l >= 1<<depth {
				t.Fatalf("range %v: offset %d → leaf %d after %d", rg, off, l, prev)
			}
			prev = l
			hit[l] = true
		}
		if len(hit) != 1<<depth {
			t.Fatalf("range %v: %d of %d leaves used", rg, len(hit), 1<<depth)
		}
	}
}

func TestFromLeavesRoundTripAndErrors(t *testing.T) {
	b, _ := NewBuilder(0, 0, 3)
	b.Add(xxhash.Sum64String("x"), []byte("x"), []byte("1"))
	tr := b.Tree()
	back, err := FromLeaves(0, 0, tr.Leaves())
	if err != nil || back.Root() != tr.Root() {
		t.Fatal("round trip")
	}
	if _, err := FromLeaves(0, 0, make([]uint64, 3)); err == nil {
		t.Fatal("3 leaves accepted")
	}
	if _, err := NewBuilder(0, 0, 13); err == nil {
		t.Fatal("depth 13 accepted")
	}
	other, _ := FromLeaves(1, 0, tr.Leaves())
	if _, err := Diff(tr, other); err == nil {
		t.Fatal("trees of different ranges compared")
	}
}

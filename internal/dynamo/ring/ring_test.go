package ring

import (
	"fmt"
	"math"
	"reflect"
	"testing"
)

func mustRing(t *testing.T, nodes []string, v int) *Ring {
	t.Helper()
	r, err := New(nodes, v)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func keys(n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = []byte(fmt.Sprintf("key-%d", i))
	}
	return out
}

func TestPreferenceListIsDistinctAndStable(t *testing.T) {
	nodes := []string{"n1", "n2", "n3", "n4", "n5"}
	r := mustRing(t, nodes, 64)
	again := mustRing(t, []string{"n5", "n3", "n1", "n4", "n2"}, 64) // order of listing does not matter
	for _, k := range keys(2000) {
		for n := 1; n <= 6; n++ {
			pl := r.PreferenceList(k, n)
			if len(pl) != min(n, len(nodes)) {
				t.Fatalf("N=%d: %d nodes", n, len(pl))
			}
			seen := map[string]bool{}
			for _, x := range pl {
				if seen[x] {
					t.Fatalf("%q listed twice in %v", x, pl)
				}
				seen[x] = true
			}
			if !reflect.DeepEqual(pl, again.PreferenceList(k, n)) {
				t.Fatalf("two rings of the same members disagree on %q", k)
			}
			if n > 1 && !reflect.DeepEqual(pl[:n-1], r.PreferenceList(k, n-1)) {
				t.Fatalf("the list for N=%d does not extend the list for N=%d", n, n-1)
			}
		}
	}
}

// With enough virtual nodes every member owns close to 1/len of the ring,
// both by the geometry (Shares) and by where keys actually land.
func TestBalance(t *testing.T) {
	for _, c := range []struct {
		nodes, vnodes int
		tolerance     float64
	}{{3, 128, 0.15}, {5, 256, 0.15}, {10, 256, 0.20}} {
		var names []string
		for i := 0; i < c.nodes; i++ {
			names = append(names, fmt.Sprintf("node-%d", i))
		}
		r := mustRing(t, names, c.vnodes)
		fair := 1 / float64(c.nodes)
		total := 0.0
		for n, s := range r.Shares() {
			total += s
			if math.Abs(s-fair)/fair > c.tolerance {
				t.Errorf("%d×%d: %s owns %.3f of the ring, fair is %.3f", c.nodes, c.vnodes, n, s, fair)
			}
		}
		if math.Abs(total-1) > 1e-9 {
			t.Errorf("shares add up to %v", total)
		}
		count := map[string]int{}
		ks := keys(50_000)
		for _, k := range ks {
			count[r.PreferenceList(k, 1)[0]]++
		}
		for n, got := range count {
			if math.Abs(float64(got)/float64(len(ks))-fair)/fair > c.tolerance+0.05 {
				t.Errorf("%d×%d: %s is primary for %d of %d keys", c.nodes, c.vnodes, n, got, len(ks))
			}
		}
	}
}

// Adding a node moves only the keys the new node takes over, about 1/len
// of them, and every replica set changes by at most that one node.
func TestAddingANodeMovesLittle(t *testing.T) {
	before := mustRing(t, []string{"a", "b", "c", "d"}, 128)
	after, err := before.With("e")
	if err != nil {
		t.Fatal(err)
	}
	moved := 0
	ks := keys(20_000)
	for _, k := range ks {
		p0, p1 := before.PreferenceList(k, 1)[0], after.PreferenceList(k, 1)[0]
		if p0 != p1 {
			moved++
			if p1 != "e" {
				t.Fatalf("%q moved from %s to %s, not to the new node", k, p0, p1)
			}
		}
		old, cur := before.PreferenceList(k, 3), after.PreferenceList(k, 3)
		diff := 0
		for _, n := range cur {
			if !contains(old, n) {
				diff++
				if n != "e" {
					t.Fatalf("%q: replica set %v became %v", k, old, cur)
				}
			}
		}
		if diff > 1 {
			t.Fatalf("%q: replica set %v became %v", k, old, cur)
		}
	}
	frac := float64(moved) / float64(len(ks))
	if frac < 0.15 || frac > 0.25 {
		t.Fatalf("%.3f of keys moved; expected about 1/5", frac)
	}
	back, _ := after.Without("e")
	if !reflect.DeepEqual(back.PreferenceList([]byte("k"), 3), before.PreferenceList([]byte("k"), 3)) {
		t.Fatal("removing the node does not restore the ring")
	}
}

func TestPlacementsUnderSloppyQuorum(t *testing.T) {
	r := mustRing(t, []string{"a", "b", "c", "d", "e"}, 32)
	for _, k := range keys(500) {
		pl := r.PreferenceList(k, 5) // the whole walk order
		all := func(string) bool { return true }
		if got := r.Placements(k, 3, all); !reflect.DeepEqual(got, []Placement{{Node: pl[0]}, {Node: pl[1]}, {Node: pl[2]}}) {
			t.Fatalf("all healthy: %v for %v", got, pl)
		}
		// The second preferred node is down: the fourth node holds its replica.
		downB := func(n string) bool { return n != pl[1] }
		want := []Placement{{Node: pl[0]}, {Node: pl[2]}, {Node: pl[3], HintFor: pl[1]}}
		if got := r.Placements(k, 3, downB); !reflect.DeepEqual(got, want) {
			t.Fatalf("one down: %v, want %v (order %v)", got, want, pl)
		}
		// Two preferred nodes and the first stand-in are down.
		h := func(n string) bool { return n != pl[0] && n != pl[2] && n != pl[3] }
		want = []Placement{{Node: pl[1]}, {Node: pl[4], HintFor: pl[0]}}
		if got := r.Placements(k, 3, h); !reflect.DeepEqual(got, want) {
			t.Fatalf("three down: %v, want %v", got, want)
		}
		if got := r.Placements(k, 3, func(string) bool { return false }); len(got) != 0 {
			t.Fatalf("all down: %v", got)
		}
	}
}

func TestRangesCoverTheRing(t *testing.T) {
	r := mustRing(t, []string{"a", "b", "c"}, 16)
	rs := r.Ranges(2)
	if len(rs) != 48 {
		t.Fatalf("%d ranges", len(rs))
	}
	for i, x := range rs {
		if x.Start != rs[(i+len(rs)-1)%len(rs)].End {
			t.Fatalf("range %d does not start where %d ends", i, i-1)
		}
		if len(x.Nodes) != 2 {
			t.Fatalf("range %d held by %v", i, x.Nodes)
		}
	}
	// A key's preference list is the node list of the range it falls in.
	for _, k := range keys(1000) {
		h := KeyHash(k)
		for _, x := range rs {
			in := x.Start < x.End && h > x.Start && h <= x.End || x.Start >= x.End && (h > x.Start || h <= x.End)
			if in && !reflect.DeepEqual(x.Nodes, r.PreferenceList(k, 2)) {
				t.Fatalf("%q: range says %v, preference list %v", k, x.Nodes, r.PreferenceList(k, 2))
			}
		}
	}
}

func TestBadRings(t *testing.T) {
	for _, c := range []struct {
		nodes []string
		v     int
	}{{[]string{"a", "a"}, 8}, {[]string{""}, 8}, {[]string{"a"}, 0}, {[]string{"a"}, 5000}} {
		if _, err := New(c.nodes, c.v); err == nil {
			t.Errorf("New(%v, %d) accepted", c.nodes, c.v)
		}
	}
	empty := mustRing(t, nil, 8)
	if got := empty.PreferenceList([]byte("k"), 3); len(got) != 0 {
		t.Fatalf("empty ring: %v", got)
	}
	one := mustRing(t, []string{"solo"}, 1)
	if got := one.Shares()["solo"]; got != 1 {
		t.Fatalf("single node share %v", got)
	}
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

func BenchmarkPreferenceList(b *testing.B) {
	var names []string
	for i := 0; i < 10; i++ {
		names = append(names, fmt.Sprintf("node-%d", i))
	}
	r, _ := New(names, 256)
	k := []byte("some-key")
	for i := 0; i < b.N; i++ {
		r.PreferenceList(k, 3)
	}
}

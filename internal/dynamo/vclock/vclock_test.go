package vclock

import (
	"errors"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func clock(pairs ...any) Clock {
	var c Clock
	for i := 0; i < len(pairs); i += 2 {
		for n := 0; n < pairs[i+1].(int); n++ {
			c = c.Increment(pairs[i].(string), t0)
		}
	}
	return c
}

func TestCompare(t *testing.T) {
	cases := []struct {
		a, b Clock
		want Order
	}{
		{nil, nil, Equal},
		{clock("a", 1), nil, After},
		{nil, clock("a", 1), Before},
		{clock("a", 2), clock("a", 1), After},
		{clock("a", 1, "b", 1), clock("a", 1), After},
		{clock("a", 1), clock("b", 1), Concurrent},
		{clock("a", 2, "b", 1), clock("a", 1, "b", 2), Concurrent},
		{clock("a", 2, "b", 2), clock("a", 1, "b", 2), After},
		{clock("a", 1, "c", 1), clock("a", 1, "b", 1), Concurrent},
	}
	for _, c := range cases {
		if got := Compare(c.a, c.b); got != c.want {
			t.Errorf("Compare(%v, %v) = %v, want %v", c.a, c.b, got, c.want)
		}
		// The relation is antisymmetric.
		back := map[Order]Order{Equal: Equal, Before: After, After: Before, Concurrent: Concurrent}[c.want]
		if got := Compare(c.b, c.a); got != back {
			t.Errorf("Compare(%v, %v) = %v, want %v", c.b, c.a, got, back)
		}
	}
}

// Merge descends every input and is the least such clock; properties
// checked on random clocks over a few nodes.
func TestMergeProperties(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	random := func() Clock {
		var c Clock
		for _, n := range []string{"a", "b", "c", "d"} {
			for k := rng.IntN(4); k > 0; k-- {
				c = c.Increment(n, t0)
			}
		}
		return c
	}
	for i := 0; i < 2000; i++ {
		a, b := random(), random()
		m := Merge(a, b)
		if !Descends(m, a) || !Descends(m, b) {
			t.Fatalf("Merge(%v, %v) = %v does not descend both", a, b, m)
		}
		for _, n := range []string{"a", "b", "c", "d"} {
			if m.Get(n) != max(a.Get(n), b.Get(n)) {
				t.Fatalf("Merge is not the pointwise max at %s", n)
			}
		}
		if Compare(a, b) == Concurrent && (Descends(a, b) || Descends(b, a)) {
			t.Fatal("concurrent clocks descend one another")
		}
		if !reflect.DeepEqual(Merge(a, b), Merge(b, a)) {
			t.Fatal("Merge is not commutative")
		}
	}
}

func v(value string, c Clock) Version { return Version{Clock: c, Value: []byte(value)} }

func values(vs []Version) []string {
	var out []string
	for _, x := range vs {
		out = append(out, string(x.Value))
	}
	return out
}

// The scenarios of the Dynamo paper's figure 3 (D1 … D5), and its edges.
func TestReconcile(t *testing.T) {
	d1 := v("D1", clock("sx", 1))
	d2 := v("D2", clock("sx", 2))
	d3 := v("D3", clock("sx", 2, "sy", 1))
	d4 := v("D4", clock("sx", 2, "sz", 1))
	d5 := v("D5", clock("sx", 3, "sy", 1, "sz", 1))

	var store []Version
	store = Reconcile(store, d1)
	store = Reconcile(store, d2) // D2 descends D1: replaces it
	if !reflect.DeepEqual(values(store), []string{"D2"}) {
		t.Fatalf("after D2: %v", values(store))
	}
	store = Reconcile(store, d3)
	store = Reconcile(store, d4) // D3 and D4 are concurrent: siblings
	if !reflect.DeepEqual(values(store), []string{"D3", "D4"}) {
		t.Fatalf("after D3, D4: %v", values(store))
	}
	ctx := Context(store)
	if !reflect.DeepEqual(ctx, Merge(d3.Clock, d4.Clock)) {
		t.Fatalf("context %v", ctx)
	}
	store = Reconcile(store, d5) // written with the merged context: replaces both
	if !reflect.DeepEqual(values(store), []string{"D5"}) {
		t.Fatalf("after D5: %v", values(store))
	}
	// Old news (a late replica write of D2) changes nothing, nor does a duplicate.
	if got := Reconcile(store, d2); !reflect.DeepEqual(values(got), []string{"D5"}) {
		t.Fatalf("stale write: %v", values(got))
	}
	if got := Reconcile(store, d5); len(got) != 1 {
		t.Fatalf("duplicate write: %v", values(got))
	}
	// A write that saw only D3 replaces D3 and stays beside D4.
	sib := Reconcile([]Version{d3, d4}, v("D3'", clock("sx", 2, "sy", 2)))
	if !reflect.DeepEqual(values(sib), []string{"D4", "D3'"}) {
		t.Fatalf("partial context: %v", values(sib))
	}
	// Equal clocks with different content (possible after pruning) are
	// both kept, in either order of arrival.
	x, y := v("X", clock("sx", 1)), v("Y", clock("sx", 1))
	if a, b := values(Reconcile([]Version{x}, y)), values(Reconcile([]Version{y}, x)); len(a) != 2 || len(b) != 2 {
		t.Fatalf("equal clocks: %v / %v", a, b)
	}
	// A tombstone is a version like any other.
	del := Reconcile([]Version{d5}, Version{Clock: d5.Clock.Increment("sx", t0), Tombstone: true})
	if len(del) != 1 || !del[0].Tombstone {
		t.Fatalf("delete: %+v", del)
	}
}

// Reconcile in any order of delivery yields the same set: replicas that
// receive the same writes converge.
func TestReconcileConverges(t *testing.T) {
	rng := rand.New(rand.NewPCG(42, 1))
	for round := 0; round < 300; round++ {
		// Random writes, each descending a random earlier one (or none).
		// A coordinator never reuses a counter: each node's next write
		// takes its own next number, on top of whatever the client saw.
		var writes []Version
		counters := map[string]uint64{}
		for i := 0; i < 8; i++ {
			var base Clock
			if len(writes) > 0 && rng.IntN(3) > 0 {
				base = writes[rng.IntN(len(writes))].Clock
			}
			node := []string{"a", "b", "c"}[rng.IntN(3)]
			counters[node] = max(counters[node], base.Get(node)) + 1
			c := base
			for c.Get(node) < counters[node] {
				c = c.Increment(node, t0)
			}
			writes = append(writes, v(string(rune('A'+i)), c))
		}
		apply := func(order []int) []string {
			var s []Version
			for _, i := range order {
				s = Reconcile(s, writes[i])
			}
			out := values(s)
			sortStrings(out)
			return out
		}
		first := apply(rng.Perm(len(writes)))
		for k := 0; k < 5; k++ {
			if got := apply(rng.Perm(len(writes))); !reflect.DeepEqual(got, first) {
				t.Fatalf("round %d: %v vs %v", round, got, first)
			}
		}
	}
}

func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

func TestPrune(t *testing.T) {
	var c Clock
	for i := 0; i < 60; i++ {
		c = c.Increment(string(rune('A'+i)), t0.Add(time.Duration(i)*time.Hour))
	}
	now := t0.Add(100 * 24 * time.Hour)
	p := c.Prune(PruneLimits{MaxEntries: 50, MinAge: time.Hour}, now)
	if len(p) != 50 {
		t.Fatalf("%d entries after pruning", len(p))
	}
	if p.Get("A") != 0 || p.Get(string(rune('A'+59))) != 1 {
		t.Fatal("pruning did not drop the oldest entries")
	}
	// Young entries are never dropped, even over the limit.
	young := c.Prune(PruneLimits{MaxEntries: 50, MinAge: 1000 * time.Hour}, t0.Add(59*time.Hour))
	if len(young) != 60 {
		t.Fatalf("young entries pruned: %d left", len(young))
	}
	// The documented bound: pruning can turn "descends" into "concurrent"
	// (an extra sibling), never into "before" (a lost write).
	later := c.Increment("A", now)
	if o := Compare(later.Prune(PruneLimits{MaxEntries: 50, MinAge: time.Hour}, now), c); o == Before || o == Equal {
		t.Fatalf("pruned descendant compares %v to its ancestor", o)
	}
}

func TestEncoding(t *testing.T) {
	c := clock("node-1", 3, "node-2", 1).Increment("zz", t0.Add(time.Minute))
	back, err := Parse(c.String())
	if err != nil || !reflect.DeepEqual(back, c) {
		t.Fatalf("round trip: %v %v", back, err)
	}
	if empty, err := Parse(""); err != nil || empty != nil {
		t.Fatal("empty context")
	}
	for _, bad := range []string{"!!!", "AA", "AQ", Clock{{Node: "b"}, {Node: "a"}}.String(), c.String() + "AA"} {
		if _, err := Parse(bad); !errors.Is(err, ErrMalformed) {
			t.Errorf("Parse(%q) = %v", bad, err)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add(clock("a", 2, "b", 1).String())
	f.Add("")
	f.Add("AQA")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := Parse(s)
		if err != nil {
			return
		}
		again, err := Parse(c.String())
		if err != nil || !reflect.DeepEqual(again, c) {
			t.Fatalf("%q parses to %v which does not round-trip", s, c)
		}
	})
}

package vclock

import (
	"errors"
	"math/rand/v2"
	"reflect"
	"slices"
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

// w is a write event: dot (node, counter) on top of a context.
func w(value, node string, counter uint64, ctx Clock) Version {
	return Version{Dot: Entry{Node: node, Counter: counter, At: t0.UnixMilli()}, Context: ctx, Value: []byte(value)}
}

func values(vs []Version) []string {
	var out []string
	for _, x := range vs {
		out = append(out, string(x.Value))
	}
	return out
}

// The scenarios of the Dynamo paper's figure 3 (D1 … D5), and its edges.
func TestReconcile(t *testing.T) {
	d1 := w("D1", "sx", 1, nil)
	d2 := w("D2", "sx", 2, d1.Clock())
	d3 := w("D3", "sy", 1, d2.Clock())
	d4 := w("D4", "sz", 1, d2.Clock())
	if got := d3.Clock(); !reflect.DeepEqual(got, clock("sx", 2, "sy", 1)) {
		t.Fatalf("D3's clock %v", got)
	}

	var store []Version
	store = Reconcile(store, d1)
	store = Reconcile(store, d2) // D2 saw D1: replaces it
	if !reflect.DeepEqual(values(store), []string{"D2"}) {
		t.Fatalf("after D2: %v", values(store))
	}
	store = Reconcile(store, d3)
	store = Reconcile(store, d4) // D3 and D4 are concurrent: siblings
	if !reflect.DeepEqual(values(store), []string{"D3", "D4"}) {
		t.Fatalf("after D3, D4: %v", values(store))
	}
	ctx := Context(store)
	if !reflect.DeepEqual(ctx, clock("sx", 2, "sy", 1, "sz", 1)) {
		t.Fatalf("context %v", ctx)
	}
	d5 := w("D5", "sx", 3, ctx)
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
	sib := Reconcile([]Version{d3, d4}, w("D3'", "sy", 2, d3.Clock()))
	if !reflect.DeepEqual(values(sib), []string{"D3'", "D4"}) {
		t.Fatalf("partial context: %v", values(sib))
	}
	// A tombstone is a version like any other.
	tomb := w("", "sx", 4, d5.Clock())
	tomb.Tombstone = true
	if del := Reconcile([]Version{d5}, tomb); len(del) != 1 || !del[0].Tombstone {
		t.Fatalf("delete: %+v", del)
	}
}

// The case plain vector clocks get wrong: two blind writes (no context)
// coordinated by the same node. The second's counter is higher, but its
// writer never saw the first, so both must survive.
func TestBlindWritesThroughOneNodeAreSiblings(t *testing.T) {
	a := w("A", "n1", 1, nil)
	b := w("B", "n1", 2, nil)
	if got := values(Reconcile(Reconcile(nil, a), b)); !reflect.DeepEqual(got, []string{"A", "B"}) {
		t.Fatalf("a then b: %v", got)
	}
	if got := values(Reconcile(Reconcile(nil, b), a)); !reflect.DeepEqual(got, []string{"A", "B"}) {
		t.Fatalf("b then a: %v", got)
	}
	// A reader sees both and resolves them with one write.
	c := w("C", "n1", 3, Context([]Version{a, b}))
	if got := values(Reconcile([]Version{a, b}, c)); !reflect.DeepEqual(got, []string{"C"}) {
		t.Fatalf("resolved: %v", got)
	}
}

// A reader that saw a node's second write but not its first covers only
// the second: the first stays as a sibling. (A plain version vector, which
// can only say "everything up to 2", would silently drop it.)
func TestGapsAreExact(t *testing.T) {
	first := w("first", "n1", 1, nil)
	second := w("second", "n1", 2, nil) // blind: a sibling of first
	ctx := Context([]Version{second})
	if ctx.Covers("n1", 1) || !ctx.Covers("n1", 2) {
		t.Fatalf("context %+v", ctx)
	}
	third := w("third", "n2", 1, ctx)
	if got := values(Reconcile([]Version{first, second}, third)); !reflect.DeepEqual(got, []string{"first", "third"}) {
		t.Fatalf("after a write that saw only the second: %v", got)
	}
	// Once the gap is filled the extras fold into the prefix.
	full := Merge(ctx, Context([]Version{first}))
	if len(full) != 1 || full[0].Counter != 2 || full[0].Extra != nil {
		t.Fatalf("merged %+v", full)
	}
	back, err := Parse(ctx.String())
	if err != nil || !reflect.DeepEqual(back, ctx) {
		t.Fatalf("round trip of a context with extras: %+v %v", back, err)
	}
}

// Reconcile in any order of delivery yields the same set: replicas that
// receive the same writes converge. The writes are made the way the store
// makes them: a client reads some replica, a coordinator node gives the
// write the next dot of its own, reconciles it into its local state and
// ships that whole state to another replica.
func TestReconcileConverges(t *testing.T) {
	rng := rand.New(rand.NewPCG(42, 1))
	nodes := []string{"a", "b", "c"}
	for round := 0; round < 300; round++ {
		var writes []Version
		state := map[string][]Version{}
		counters := map[string]uint64{}
		for i := 0; i < 10; i++ {
			seen := state[nodes[rng.IntN(3)]]
			node := nodes[rng.IntN(3)]
			counters[node]++ // a node never reuses a counter
			x := w(string(rune('A'+i)), node, counters[node], Context(seen))
			writes = append(writes, x)
			state[node] = Reconcile(state[node], x)
			to := nodes[rng.IntN(3)]
			for _, v := range state[node] {
				state[to] = Reconcile(state[to], v)
			}
		}
		apply := func(order []int) []string {
			var s []Version
			for _, i := range order {
				s = Reconcile(s, writes[i])
			}
			return values(s)
		}
		first := apply(rng.Perm(len(writes)))
		for k := 0; k < 5; k++ {
			if got := apply(rng.Perm(len(writes))); !reflect.DeepEqual(got, first) {
				t.Fatalf("round %d: %v vs %v", round, got, first)
			}
		}
		// Nothing survives that a surviving write covers, and every write
		// that is gone is covered by some write.
		for _, x := range writes {
			kept := slices.Contains(first, string(x.Value))
			covered := false
			for _, y := range writes {
				if !SameEvent(x, y) && x.CoveredBy(y) {
					covered = true
				}
			}
			if kept == covered {
				t.Fatalf("round %d: write %s kept=%v covered=%v", round, x.Value, kept, covered)
			}
		}
	}
}

func TestVersionsEncoding(t *testing.T) {
	a := w("A", "n1", 7, clock("n2", 3))
	b := w("", "n2", 1<<50, nil)
	b.Tombstone = true
	c := w(string([]byte{0, 255, 1}), "n3", 1, clock("n1", 7, "n2", 3))
	raw := AppendVersions(nil, []Version{a, b, c})
	back, err := UnmarshalVersions(raw)
	if err != nil || !reflect.DeepEqual(back, []Version{a, b, c}) {
		t.Fatalf("round trip: %+v %v", back, err)
	}
	for i := 0; i < len(raw); i++ {
		if _, err := UnmarshalVersions(raw[:i]); err == nil {
			t.Fatalf("a truncated set (%d of %d bytes) decoded", i, len(raw))
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
	// The documented bound: a write whose context was pruned covers fewer
	// versions (an extra sibling), never one it had not seen.
	old := w("old", "A", 1, nil)
	pruned := w("new", "Z", 1, c.Prune(PruneLimits{MaxEntries: 50, MinAge: time.Hour}, now))
	if got := values(Reconcile([]Version{old}, pruned)); len(got) != 2 {
		t.Fatalf("after a pruned write: %v, want the old version kept as a sibling", got)
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

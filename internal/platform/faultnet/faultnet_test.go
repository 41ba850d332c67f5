package faultnet

import (
	"testing"
	"time"
)

func TestBlocksAreOneWayAndPartitionsBoth(t *testing.T) {
	f := New[string](1)
	f.Block("a", "b")
	if _, ok := f.Decide("a", "b"); ok {
		t.Fatal("a→b delivered while blocked")
	}
	if _, ok := f.Decide("b", "a"); !ok {
		t.Fatal("b→a lost: a block is one way")
	}
	f.Unblock("a", "b")
	if _, ok := f.Decide("a", "b"); !ok {
		t.Fatal("a→b lost after Unblock")
	}
	f.Partition([]string{"a"}, []string{"b", "c"})
	for _, p := range [][2]string{{"a", "b"}, {"b", "a"}, {"a", "c"}, {"c", "a"}} {
		if _, ok := f.Decide(p[0], p[1]); ok || !f.Blocked(p[0], p[1]) {
			t.Fatalf("%s→%s delivered across the partition", p[0], p[1])
		}
	}
	if _, ok := f.Decide("b", "c"); !ok {
		t.Fatal("b→c lost: they are on the same side")
	}
	f.Heal()
	f.Isolate("c", []string{"a", "b", "c"})
	if _, ok := f.Decide("a", "b"); !ok {
		t.Fatal("a→b lost: only c is isolated")
	}
	if _, ok := f.Decide("b", "c"); ok {
		t.Fatal("b→c delivered to an isolated node")
	}
	if _, ok := f.Decide("c", "c"); !ok {
		t.Fatal("c→c lost: a node is never cut off from itself")
	}
}

func TestDelayJitterAndLoss(t *testing.T) {
	f := New[int](7)
	f.SetDelay(10*time.Millisecond, 5*time.Millisecond, 0.25)
	lost, n := 0, 20000
	for range n {
		d, ok := f.Decide(1, 2)
		if !ok {
			lost++
			continue
		}
		if d < 10*time.Millisecond || d >= 15*time.Millisecond {
			t.Fatalf("delay %v outside [10ms, 15ms)", d)
		}
	}
	if frac := float64(lost) / float64(n); frac < 0.23 || frac > 0.27 {
		t.Fatalf("lost %.3f of messages, want 0.25 ± 0.02", frac)
	}
	f.Heal()
	if d, ok := f.Decide(1, 2); !ok || d != 0 {
		t.Fatalf("after Heal: delay %v, delivered %v", d, ok)
	}
}

// One seed, one sequence of decisions.
func TestSeedReproducesTheDraws(t *testing.T) {
	draws := func(seed uint64) []time.Duration {
		f := New[int](seed)
		f.SetDelay(0, time.Second, 0.5)
		var out []time.Duration
		for range 100 {
			d, ok := f.Decide(1, 2)
			if !ok {
				d = -1
			}
			out = append(out, d)
		}
		return out
	}
	a, b, c := draws(3), draws(3), draws(4)
	same := true
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("seed 3 drew %v then %v at %d", a[i], b[i], i)
		}
		same = same && a[i] == c[i]
	}
	if same {
		t.Fatal("seeds 3 and 4 drew the same sequence")
	}
}

func TestSlowNodeDelaysItsMessagesOnly(t *testing.T) {
	f := New[string](1)
	f.Slow("c", 30*time.Millisecond)
	if d, _ := f.Decide("a", "c"); d != 30*time.Millisecond {
		t.Fatalf("a→c %v", d)
	}
	if d, _ := f.Decide("c", "b"); d != 30*time.Millisecond {
		t.Fatalf("c→b %v", d)
	}
	if d, _ := f.Decide("a", "b"); d != 0 {
		t.Fatalf("a→b %v: only c is slow", d)
	}
	f.Slow("c", 0)
	if d, _ := f.Decide("a", "c"); d != 0 {
		t.Fatalf("after Slow(c, 0): %v", d)
	}
	f.Slow("c", time.Second)
	f.Heal()
	if d, _ := f.Decide("a", "c"); d != 0 {
		t.Fatalf("after Heal: %v", d)
	}
}

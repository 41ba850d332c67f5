package timeline

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// naive is Merge's specification: the union, without duplicates, below
// the cursor, descending, at most limit.
func naive(lists [][]int64, cursor int64, limit int) []int64 {
	seen := map[int64]bool{}
	var all []int64
	for _, l := range lists {
		for _, id := range l {
			if (cursor == 0 || id < cursor) && !seen[id] {
				seen[id] = true
				all = append(all, id)
			}
		}
	}
	slices.Sort(all)
	slices.Reverse(all)
	if len(all) > limit {
		all = all[:limit]
	}
	return all
}

func randomLists(rng *rand.Rand) [][]int64 {
	lists := make([][]int64, rng.IntN(8))
	for i := range lists {
		set := map[int64]bool{}
		for range rng.IntN(30) {
			set[1+rng.Int64N(100)] = true
		}
		for id := range set {
			lists[i] = append(lists[i], id)
		}
		slices.Sort(lists[i])
		slices.Reverse(lists[i])
	}
	return lists
}

func TestMergeIsTheSortedUnion(t *testing.T) {
	rng := rand.New(rand.NewPCG(23, 1))
	for trial := range 2000 {
		lists := randomLists(rng)
		cursor := int64(0)
		if rng.IntN(2) == 0 {
			cursor = rng.Int64N(110)
		}
		limit := 1 + rng.IntN(40)
		if got, want := Merge(lists, cursor, limit), naive(lists, cursor, limit); !slices.Equal(got, want) {
			t.Fatalf("trial %d: Merge(%v, %d, %d) = %v, want %v", trial, lists, cursor, limit, got, want)
		}
	}
}

// Paging with the cursor walks the whole union once, whatever the page
// size.
func TestPagingVisitsEveryPostOnce(t *testing.T) {
	rng := rand.New(rand.NewPCG(23, 2))
	for trial := range 500 {
		lists := randomLists(rng)
		want := naive(lists, 0, 1<<30)
		var got []int64
		cursor := int64(0)
		for page := 0; ; page++ {
			p := Merge(lists, cursor, 1+rng.IntN(7))
			if len(p) == 0 {
				break
			}
			got = append(got, p...)
			cursor = p[len(p)-1]
			if page > 1000 {
				t.Fatal("paging does not end")
			}
		}
		if !slices.Equal(got, want) {
			t.Fatalf("trial %d: pages gave %v, want %v", trial, got, want)
		}
	}
}

// Every (author, reader) pair is served exactly one way: the reader is a
// fan-out target of the author's posts, or the author is pulled by the
// reader's reads — never both, never neither.
func TestEveryPairIsPushedOrPulledExactlyOnce(t *testing.T) {
	rng := rand.New(rand.NewPCG(23, 3))
	modes := []Mode{Inherit, Push, Pull, Hybrid}
	for trial := range 300 {
		p := Policy{Mode: modes[1+rng.IntN(3)], Celebrity: 1 + rng.IntN(6)}
		n := 2 + rng.IntN(10)
		readerMode := make([]Mode, n)
		for i := range readerMode {
			readerMode[i] = modes[rng.IntN(4)]
		}
		follows := map[[2]int]bool{} // reader, author
		for range rng.IntN(n * n) {
			r, a := rng.IntN(n), rng.IntN(n)
			if r != a {
				follows[[2]int{r, a}] = true
			}
		}
		followers := make([][]Follower, n)
		for k := range follows {
			followers[k[1]] = append(followers[k[1]], Follower{ID: int64(k[0]), Mode: readerMode[k[0]]})
		}
		for k := range follows {
			r, a := k[0], k[1]
			pushed := slices.Contains(p.FanOutTargets(followers[a]), int64(r))
			var followees []Followee
			for k2 := range follows {
				if k2[0] == r {
					followees = append(followees, Followee{ID: int64(k2[1]), Followers: len(followers[k2[1]])})
				}
			}
			pulled := slices.Contains(p.PullFrom(readerMode[r], followees), int64(a))
			if pushed == pulled {
				t.Fatalf("trial %d (%+v): reader %d (%v) of author %d (%d followers): pushed %v, pulled %v", trial, p, r, readerMode[r], a, len(followers[a]), pushed, pulled)
			}
		}
	}
}

func TestHybridPullsOnlyCelebrities(t *testing.T) {
	p := Policy{Mode: Hybrid, Celebrity: 1000}
	if !p.Pushed(Inherit, 999) || p.Pushed(Inherit, 1000) {
		t.Fatal("hybrid's threshold")
	}
	if !p.Pushed(Push, 1_000_000) || p.Pushed(Pull, 1) {
		t.Fatal("a reader's own mode does not win")
	}
	if b := Batches(make([]int64, 2500), 1000); len(b) != 3 || len(b[2]) != 500 {
		t.Fatalf("batches %d", len(b))
	}
	if m, ok := ParseMode("hybrid"); !ok || m != Hybrid {
		t.Fatal("ParseMode")
	}
}

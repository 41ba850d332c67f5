package feed

import (
	"slices"
	"testing"
)

func TestGeneratedGraph(t *testing.T) {
	g := GraphSpec{Users: 5000, CelebrityFollowers: 3000, MeanFollows: 10, Zipf: 1.3, Seed: 7}
	follows, err := g.Follows()
	if err != nil {
		t.Fatal(err)
	}
	again, _ := g.Follows()
	if !slices.Equal(follows, again) {
		t.Fatal("the same spec gave two graphs")
	}
	pairs := map[[2]int]bool{}
	in := make([]int, g.Users)
	for _, f := range follows {
		if f[0] == f[1] {
			t.Fatalf("%d follows itself", f[0])
		}
		if f[0] < 0 || f[1] < 0 || f[0] >= g.Users || f[1] >= g.Users {
			t.Fatalf("pair out of range: %v", f)
		}
		if pairs[f] {
			t.Fatalf("pair %v twice", f)
		}
		pairs[f] = true
		in[f[1]]++
	}
	if in[0] != g.CelebrityFollowers {
		t.Fatalf("the celebrity has %d followers, want %d", in[0], g.CelebrityFollowers)
	}
	others := len(follows) - g.CelebrityFollowers
	if mean := float64(others) / float64(g.Users); mean < 0.7*float64(g.MeanFollows) || mean > 1.3*float64(g.MeanFollows) {
		t.Fatalf("mean follows %.1f, want about %d", mean, g.MeanFollows)
	}
	// Zipf: the most popular account draws far more than the median one,
	// and most accounts draw almost nobody.
	rest := slices.Clone(in[1:])
	slices.Sort(rest)
	top, median := rest[len(rest)-1], rest[len(rest)/2]
	if top < 50*max(median, 1) {
		t.Fatalf("popularity is not skewed: top %d, median %d", top, median)
	}
	if _, err := (GraphSpec{Users: 10, CelebrityFollowers: 10, Zipf: 1.2}).Follows(); err == nil {
		t.Fatal("a celebrity followed by more accounts than exist was accepted")
	}
}

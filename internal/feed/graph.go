package feed

import (
	"fmt"
	"math/rand/v2"
)

// GraphSpec describes a generated social graph: Users accounts, each
// following about MeanFollows others chosen with Zipf-distributed
// popularity (exponent Zipf > 1: a few accounts draw most follows, most
// draw almost none, as on real networks), and account 0, the celebrity,
// followed by exactly CelebrityFollowers of the others.
type GraphSpec struct {
	Users              int
	CelebrityFollowers int
	MeanFollows        int
	Zipf               float64
	Seed               uint64
}

func (g GraphSpec) validate() error {
	if g.Users < 2 || g.CelebrityFollowers < 0 || g.CelebrityFollowers >= g.Users || g.MeanFollows < 0 || g.MeanFollows >= g.Users || g.Zipf <= 1 {
		return fmt.Errorf("feed: graph: want users ≥ 2, 0 ≤ celebrity followers < users, 0 ≤ mean follows < users, zipf > 1")
	}
	return nil
}

// Follows generates the graph's follows as (follower, followee) index
// pairs, each pair once, nobody following itself; the same spec gives the
// same graph.
func (g GraphSpec) Follows() ([][2]int, error) {
	if err := g.validate(); err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(g.Seed, 0x5eed))
	// Popularity rank r (0 the most popular) is account r+1: account 0 is
	// the celebrity, whose followers are chosen apart.
	var zipf *rand.Zipf
	if g.Users > 2 {
		zipf = rand.NewZipf(rng, g.Zipf, 1, uint64(g.Users-2))
	}
	out := make([][2]int, 0, g.Users*g.MeanFollows+g.CelebrityFollowers)
	seen := make(map[int]bool, 2*g.MeanFollows)
	for u := 0; u < g.Users; u++ {
		if zipf == nil {
			break
		}
		want := 0
		if g.MeanFollows > 0 {
			want = 1 + rng.IntN(2*g.MeanFollows) // mean ≈ MeanFollows
		}
		clear(seen)
		for tries := 0; len(seen) < want && tries < 4*want; tries++ {
			f := int(zipf.Uint64()) + 1
			if f == u || seen[f] {
				continue
			}
			seen[f] = true
			out = append(out, [2]int{u, f})
		}
	}
	// The celebrity's followers: a random sample of everyone else.
	for _, i := range rng.Perm(g.Users - 1)[:g.CelebrityFollowers] {
		out = append(out, [2]int{i + 1, 0})
	}
	return out, nil
}

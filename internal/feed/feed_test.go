package feed

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/scalelab/scalelab/internal/feed/timeline"
	"github.com/scalelab/scalelab/internal/platform/testsvc"
)

// groundTruth is the feed kept by the test itself: who follows whom, whose
// posts are live. A reader's timeline is the live posts of everyone it
// follows and its own, newest first.
type groundTruth struct {
	follows map[int64]map[int64]bool
	posts   map[int64]int64 // post → author, live ones only
}

func (g groundTruth) timeline(reader int64) []int64 {
	var out []int64
	for p, a := range g.posts {
		if a == reader || g.follows[reader][a] {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	slices.Reverse(out)
	return out
}

// Every mode, on every SQL engine and both cache engines, serves every
// reader exactly the ground truth after random follows, unfollows, posts,
// deletes, mode changes and cache evictions, paging three at a time: no
// post missing, none duplicated, none deleted or unfollowed left behind.
// The celebrity threshold is 3 followers, so hybrid authors cross it both
// ways, and the caps are 10, so cached timelines are trimmed and paging
// runs past their floors into the store.
func TestEveryModeEqualsGroundTruth(t *testing.T) {
	caches := map[string]func(t *testing.T) string{
		"memory": func(*testing.T) string { return "" },
		"redis":  func(t *testing.T) string { return testsvc.Redis(t) },
	}
	for _, eng := range testsvc.SQLEngines {
		for cacheName, cacheURL := range caches {
			for _, mode := range []timeline.Mode{timeline.Push, timeline.Pull, timeline.Hybrid} {
				t.Run(fmt.Sprintf("%s/%s/%s", eng.Name, cacheName, mode), func(t *testing.T) {
					cfg := testConfig()
					cfg.Mode, cfg.Celebrity = mode, 3
					s := openService(t, eng.URL(t), cacheURL(t), "", cfg)
					checkGroundTruth(t, s, uint64(mode)*7+uint64(len(eng.Name)), groundTruthSteps)
				})
			}
		}
	}
}

func checkGroundTruth(t *testing.T, s *Service, seed uint64, steps int) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(seed, 1))
	g := groundTruth{follows: map[int64]map[int64]bool{}, posts: map[int64]int64{}}
	var users []int64
	modes := []string{"", "", "", "push", "pull", "hybrid"}
	for i := 0; i < 7; i++ {
		u, _, err := s.CreateUser(ctx, NewUser{Handle: fmt.Sprintf("u%d_%d", i, rng.IntN(1e9)), Mode: modes[rng.IntN(len(modes))]})
		if err != nil {
			t.Fatal(err)
		}
		users = append(users, u.ID)
		g.follows[u.ID] = map[int64]bool{}
	}
	check := func(step int, what string) {
		settle(t, s)
		for _, r := range users {
			want := g.timeline(r)
			got := readAll(t, s, r, 3)
			if !slices.Equal(got, want) {
				t.Fatalf("step %d (%s): reader %d sees %v, want %v", step, what, r, got, want)
			}
		}
	}
	for step := 0; step < steps; step++ {
		a, b := users[rng.IntN(len(users))], users[rng.IntN(len(users))]
		var what string
		switch op := rng.IntN(20); {
		case op < 6 && a != b:
			what = fmt.Sprintf("%d follows %d", a, b)
			if err := s.Follow(ctx, a, b); err != nil {
				t.Fatal(err)
			}
			g.follows[a][b] = true
		case op < 9 && a != b:
			what = fmt.Sprintf("%d unfollows %d", a, b)
			if err := s.Unfollow(ctx, a, b); err != nil {
				t.Fatal(err)
			}
			delete(g.follows[a], b)
		case op < 16:
			p, err := s.CreatePost(ctx, a, NewPost{Body: fmt.Sprint("post ", step)})
			if err != nil {
				t.Fatal(err)
			}
			what = fmt.Sprintf("%d posts %d", a, p.ID)
			g.posts[p.ID] = a
		case op < 18:
			var live []int64
			for p, au := range g.posts {
				if au == a {
					live = append(live, p)
				}
			}
			if len(live) == 0 {
				continue
			}
			p := live[rng.IntN(len(live))]
			what = fmt.Sprintf("%d deletes %d", a, p)
			if err := s.DeletePost(ctx, a, p); err != nil {
				t.Fatal(err)
			}
			delete(g.posts, p)
		case op < 19:
			m := modes[rng.IntN(len(modes))]
			what = fmt.Sprintf("%d switches to mode %q", a, m)
			if err := s.SetMode(ctx, a, m); err != nil {
				t.Fatal(err)
			}
		default:
			what = fmt.Sprintf("%d's cached timeline is evicted", a)
			if err := s.caches.timelines.Drop(ctx, idKey(a)); err != nil {
				t.Fatal(err)
			}
		}
		check(step, what)
	}
}

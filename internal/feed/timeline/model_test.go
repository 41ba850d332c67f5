package timeline

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// model is a feed run by the policy's rules over in-memory caches: fan-out
// on post, backfill on follow and on a flip to push, purge on unfollow,
// deleted posts dropped at read. Its reads are checked against pull over
// the follow graph as it is: the ground truth.
type model struct {
	p       Policy
	mode    []Mode
	follows []map[int]bool // reader → authors
	posts   []map[int64]bool
	author  map[int64]int
	deleted map[int64]bool
	cache   []map[int64]bool // reader → post IDs pushed to it
	next    int64
	writes  int // timeline entries written
}

func newModel(p Policy, modes []Mode) *model {
	m := &model{p: p, mode: modes, author: map[int64]int{}, deleted: map[int64]bool{}}
	for range modes {
		m.follows = append(m.follows, map[int]bool{})
		m.posts = append(m.posts, map[int64]bool{})
		m.cache = append(m.cache, map[int64]bool{})
	}
	return m
}

func (m *model) followersOf(a int) []Follower {
	var out []Follower
	for r := range m.follows {
		if m.follows[r][a] {
			out = append(out, Follower{ID: int64(r), Mode: m.mode[r]})
		}
	}
	return out
}

func (m *model) push(r int, ids ...int64) {
	for _, id := range ids {
		if !m.cache[r][id] {
			m.cache[r][id] = true
			m.writes++
		}
	}
}

func (m *model) postsOf(a int) []int64 {
	var out []int64
	for id := range m.posts[a] {
		out = append(out, id)
	}
	return out
}

func (m *model) post(a int) {
	m.next++
	m.posts[a][m.next] = true
	m.author[m.next] = a
	for _, r := range m.p.FanOutTargets(m.followersOf(a)) {
		m.push(int(r), m.next)
	}
}

func (m *model) follow(r, a int) {
	if r == a || m.follows[r][a] {
		return
	}
	before := len(m.followersOf(a))
	others := m.followersOf(a)
	m.follows[r][a] = true
	after := before + 1
	if m.p.Backfill(m.mode[r], after) {
		m.push(r, m.postsOf(a)...)
	}
	for _, f := range m.p.Rebalanced(others, before, after) {
		m.push(int(f), m.postsOf(a)...)
	}
}

func (m *model) unfollow(r, a int) {
	if !m.follows[r][a] {
		return
	}
	before := len(m.followersOf(a))
	delete(m.follows[r], a)
	for id := range m.cache[r] {
		if m.author[id] == a {
			delete(m.cache[r], id)
		}
	}
	for _, f := range m.p.Rebalanced(m.followersOf(a), before, before-1) {
		m.push(int(f), m.postsOf(a)...)
	}
}

func (m *model) delete(id int64) {
	m.deleted[id] = true
	delete(m.posts[m.author[id]], id)
}

func desc(set map[int64]bool, keep func(int64) bool) []int64 {
	var out []int64
	for id := range set {
		if keep(id) {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	slices.Reverse(out)
	return out
}

// read is a reader's whole timeline as the policy builds it.
func (m *model) read(r int) []int64 {
	alive := func(id int64) bool { return !m.deleted[id] }
	lists := [][]int64{desc(m.cache[r], alive)}
	var followees []Followee
	for a := range m.follows[r] {
		followees = append(followees, Followee{ID: int64(a), Followers: len(m.followersOf(a))})
	}
	for _, a := range m.p.PullFrom(m.mode[r], followees) {
		lists = append(lists, desc(m.posts[a], alive))
	}
	var out []int64
	cursor := int64(0)
	for {
		page := Merge(lists, cursor, 5)
		if len(page) == 0 {
			return out
		}
		out = append(out, page...)
		cursor = page[len(page)-1]
	}
}

func (m *model) truth(r int) []int64 {
	all := map[int64]bool{}
	for a := range m.follows[r] {
		for id := range m.posts[a] {
			all[id] = true
		}
	}
	return desc(all, func(int64) bool { return true })
}

// Over random sequences of follows, unfollows, posts and deletes, every
// mode's timelines equal pull's ground truth for every reader after every
// step: no post missing, none twice, none deleted, none of an unfollowed
// author — including across an author's crossing of the celebrity
// threshold either way.
func TestEveryModeEqualsGroundTruth(t *testing.T) {
	for _, mode := range []Mode{Push, Pull, Hybrid} {
		for seed := range uint64(40) {
			t.Run(fmt.Sprintf("%v/%d", mode, seed), func(t *testing.T) {
				rng := rand.New(rand.NewPCG(seed, 23))
				n := 3 + rng.IntN(8)
				modes := make([]Mode, n)
				for i := range modes {
					if rng.IntN(4) == 0 {
						modes[i] = []Mode{Push, Pull, Hybrid}[rng.IntN(3)]
					}
				}
				m := newModel(Policy{Mode: mode, Celebrity: 1 + rng.IntN(4)}, modes)
				for step := range 200 {
					switch op := rng.IntN(10); {
					case op < 3:
						m.follow(rng.IntN(n), rng.IntN(n))
					case op < 4:
						m.unfollow(rng.IntN(n), rng.IntN(n))
					case op < 9:
						m.post(rng.IntN(n))
					default:
						if m.next > 0 {
							m.delete(1 + rng.Int64N(m.next))
						}
					}
					for r := range n {
						if got, want := m.read(r), m.truth(r); !slices.Equal(got, want) {
							t.Fatalf("step %d, reader %d (%v): timeline %v, ground truth %v", step, r, modes[r], got, want)
						}
					}
				}
			})
		}
	}
}

// Hybrid writes far fewer timeline entries than push when one account
// has most of the followers: the lesson the experiment measures, in
// miniature.
func TestHybridWritesLessThanPushForACelebrity(t *testing.T) {
	writes := map[Mode]int{}
	for _, mode := range []Mode{Push, Hybrid} {
		m := newModel(Policy{Mode: mode, Celebrity: 20}, make([]Mode, 101))
		for r := 1; r <= 100; r++ {
			m.follow(r, 0) // everyone follows account 0
			m.follow(r, (r%100)+1)
		}
		for range 50 {
			m.post(0)
		}
		for a := 1; a <= 100; a++ {
			m.post(a)
		}
		writes[mode] = m.writes
	}
	if writes[Hybrid]*10 > writes[Push] {
		t.Fatalf("timeline entries written: push %d, hybrid %d", writes[Push], writes[Hybrid])
	}
}

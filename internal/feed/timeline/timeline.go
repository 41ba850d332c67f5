package timeline

import (
	"container/heap"
)

// Mode is how a reader's timeline is built, for a deployment or for one
// reader.
type Mode int

const (
	// Inherit is a reader without a mode of its own: the deployment's.
	Inherit Mode = iota
	// Push writes every post into its followers' cached timelines.
	Push
	// Pull merges a timeline at read time from the followees' posts.
	Pull
	// Hybrid pushes authors below the celebrity threshold and pulls the
	// others.
	Hybrid
)

var modeNames = map[Mode]string{Inherit: "inherit", Push: "push", Pull: "pull", Hybrid: "hybrid"}

func (m Mode) String() string { return modeNames[m] }

// ParseMode reads a mode's name.
func ParseMode(s string) (Mode, bool) {
	for m, n := range modeNames {
		if n == s {
			return m, true
		}
	}
	return Inherit, false
}

// Policy is a deployment's choice.
type Policy struct {
	Mode Mode // Push, Pull or Hybrid
	// Celebrity is the follower count from which hybrid pulls an author.
	Celebrity int
}

// Effective is the mode a reader's timeline is built in.
func (p Policy) Effective(reader Mode) Mode {
	if reader == Inherit {
		return p.Mode
	}
	return reader
}

// Pushed reports whether the pair (an author with followers followers, a
// reader of the given mode) is served by fan-out on write; otherwise the
// reader pulls the author's posts at read time.
func (p Policy) Pushed(reader Mode, followers int) bool {
	switch p.Effective(reader) {
	case Push:
		return true
	case Pull:
		return false
	default: // Hybrid
		return followers < p.Celebrity
	}
}

// Follower is a reader as fan-out sees it.
type Follower struct {
	ID   int64
	Mode Mode
}

// FanOutTargets is the followers a post by an author with len(followers)
// followers is written to.
func (p Policy) FanOutTargets(followers []Follower) []int64 {
	var out []int64
	for _, f := range followers {
		if p.Pushed(f.Mode, len(followers)) {
			out = append(out, f.ID)
		}
	}
	return out
}

// Followee is an author as a reader's read sees it.
type Followee struct {
	ID        int64
	Followers int
}

// PullFrom is the followees whose posts a reader's read merges in itself.
func (p Policy) PullFrom(reader Mode, followees []Followee) []int64 {
	var out []int64
	for _, f := range followees {
		if !p.Pushed(reader, f.Followers) {
			out = append(out, f.ID)
		}
	}
	return out
}

// Batches splits fan-out targets into jobs of at most size followers:
// a celebrity's post is a few hundred jobs, not a million.
func Batches(targets []int64, size int) [][]int64 {
	if size < 1 {
		size = 1
	}
	var out [][]int64
	for len(targets) > 0 {
		n := min(size, len(targets))
		out = append(out, targets[:n:n])
		targets = targets[n:]
	}
	return out
}

// Merge is one page of a timeline: the IDs below cursor (every ID when
// cursor is 0) from the given lists, each in descending order, merged in
// descending order with duplicates dropped, at most limit of them. The
// next page's cursor is the last ID returned.
func Merge(lists [][]int64, cursor int64, limit int) []int64 {
	h := make(mergeHeap, 0, len(lists))
	for _, l := range lists {
		i := 0
		if cursor > 0 {
			i = firstBelow(l, cursor)
		}
		if i < len(l) {
			h = append(h, cursorOf{list: l, at: i})
		}
	}
	heap.Init(&h)
	var out []int64
	for h.Len() > 0 && len(out) < limit {
		top := &h[0]
		id := top.list[top.at]
		if len(out) == 0 || out[len(out)-1] != id {
			out = append(out, id)
		}
		top.at++
		if top.at == len(top.list) {
			heap.Pop(&h)
		} else {
			heap.Fix(&h, 0)
		}
	}
	return out
}

// firstBelow is the index of the first ID below cursor in a descending
// list.
func firstBelow(l []int64, cursor int64) int {
	lo, hi := 0, len(l)
	for lo < hi {
		m := (lo + hi) / 2
		if l[m] >= cursor {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

type cursorOf struct {
	list []int64
	at   int
}

type mergeHeap []cursorOf

func (h mergeHeap) Len() int           { return len(h) }
func (h mergeHeap) Less(i, j int) bool { return h[i].list[h[i].at] > h[j].list[h[j].at] }
func (h mergeHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *mergeHeap) Push(x any)        { *h = append(*h, x.(cursorOf)) }
func (h *mergeHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// Backfill reports whether a reader who starts following an author needs
// the author's recent posts written into its cached timeline: when the
// pair is pushed, the cache holds only posts written since.
func (p Policy) Backfill(reader Mode, authorFollowers int) bool {
	return p.Pushed(reader, authorFollowers)
}

// Rebalanced is the followers whose pair with an author flipped from
// pull to push when the author's follower count went from before to
// after (an account dropping under the celebrity threshold): their cached
// timelines lack the posts the author made while it was pulled, so they
// are backfilled. A pair that flipped the other way needs nothing: the
// entries pushed before stay, and Merge drops them where the pull finds
// them again.
func (p Policy) Rebalanced(followers []Follower, before, after int) []int64 {
	var out []int64
	for _, f := range followers {
		if !p.Pushed(f.Mode, before) && p.Pushed(f.Mode, after) {
			out = append(out, f.ID)
		}
	}
	return out
}

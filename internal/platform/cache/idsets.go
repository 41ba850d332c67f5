package cache

import (
	"context"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/maypok86/otter/v2"
)

// IDSets is a family of capped, ordered sets of positive int64 IDs, each
// kept highest first: home timelines, an author's recent posts, the posts a
// user liked. A set is a cache of a truth kept elsewhere, so it can be
// missing (never built, idle past its TTL, evicted) and it can be
// incomplete below its floor (trimmed to its cap); its owner reads the
// truth for whatever the set does not cover (see doc.go).
type IDSets interface {
	// Add puts ids into every set named in keys that exists. A set that
	// does not exist is left alone: its owner rebuilds it when it is next
	// read. Each set keeps its Cap highest IDs, and trimming raises its
	// floor to the highest ID it dropped.
	Add(ctx context.Context, keys []string, ids ...int64) error
	// Remove takes ids out of every set named in keys.
	Remove(ctx context.Context, keys []string, ids ...int64) error
	// Range is the set's IDs below below (0: from the highest), highest
	// first, at most limit, and its floor: the set holds every ID of its
	// truth above floor and may lack those at or below it. ok is false
	// when the set does not exist.
	Range(ctx context.Context, key string, below int64, limit int) (ids []int64, floor int64, ok bool, err error)
	// Contains reports which of ids the set holds, and its floor.
	Contains(ctx context.Context, key string, ids []int64) (in []bool, floor int64, ok bool, err error)
	// Begin starts a rebuild: it creates the set empty, trusting nothing
	// (its floor is the largest int64), unless the set exists. Adds made
	// from then on land in it, so Begin, read the truth, Fill loses no Add
	// that raced with the rebuild.
	Begin(ctx context.Context, key string) (created bool, err error)
	// Fill ends a rebuild: it adds ids (the truth's highest) and lowers
	// the floor to floor (or to the highest ID trimmed since Begin). A set
	// dropped or expired since Begin is left alone.
	Fill(ctx context.Context, key string, ids []int64, floor int64) error
	// Drop deletes sets.
	Drop(ctx context.Context, keys ...string) error
}

// IDSetOptions size a family of sets.
type IDSetOptions struct {
	Cap     int           // IDs kept per set (default 800)
	IdleTTL time.Duration // a set unread and unwritten this long is dropped (default 24h)
	Sets    int           // in-process engine: sets kept at most (default 100,000)
}

func (o *IDSetOptions) defaults() {
	if o.Cap <= 0 {
		o.Cap = 800
	}
	if o.IdleTTL <= 0 {
		o.IdleTTL = 24 * time.Hour
	}
	if o.Sets <= 0 {
		o.Sets = 100_000
	}
}

// NewIDSets returns the family name of sets on c's engine: in Redis when c
// is the Redis engine (shared by every instance), else in this process.
func NewIDSets(c Cache, name string, opts IDSetOptions) IDSets {
	opts.defaults()
	if r, ok := c.(*Redis); ok {
		return newRedisIDSets(r.client, r.prefix+name+":", opts)
	}
	return NewMemoryIDSets(opts)
}

// building is the floor of a set whose rebuild has begun and not ended.
const building = math.MaxInt64

// MemoryIDSets is the in-process engine: a slice per set, highest first,
// under the set's own lock.
type MemoryIDSets struct {
	opts IDSetOptions
	c    *otter.Cache[string, *memSet]
}

type memSet struct {
	mu       sync.Mutex
	ids      []int64 // highest first
	trimmed  int64   // the highest ID trimming dropped
	filled   int64   // the floor the rebuild gave
	building bool
}

func (s *memSet) floor() int64 {
	if s.building {
		return building
	}
	return max(s.trimmed, s.filled)
}

func (s *memSet) add(id int64, capacity int) {
	i, found := slices.BinarySearchFunc(s.ids, id, func(a, b int64) int { return compareDesc(a, b) })
	if found {
		return
	}
	s.ids = slices.Insert(s.ids, i, id)
	if len(s.ids) > capacity {
		s.trimmed = max(s.trimmed, s.ids[capacity])
		s.ids = s.ids[:capacity]
	}
}

func compareDesc(a, b int64) int {
	switch {
	case a > b:
		return -1
	case a < b:
		return 1
	}
	return 0
}

var _ IDSets = (*MemoryIDSets)(nil)

// NewMemoryIDSets builds the in-process engine.
func NewMemoryIDSets(opts IDSetOptions) *MemoryIDSets {
	opts.defaults()
	return &MemoryIDSets{opts: opts, c: otter.Must(&otter.Options[string, *memSet]{
		MaximumSize:      opts.Sets,
		ExpiryCalculator: otter.ExpiryAccessing[string, *memSet](opts.IdleTTL),
	})}
}

// Add implements IDSets.
func (m *MemoryIDSets) Add(_ context.Context, keys []string, ids ...int64) error {
	for _, k := range keys {
		s, ok := m.c.GetIfPresent(k)
		if !ok {
			continue
		}
		s.mu.Lock()
		for _, id := range ids {
			s.add(id, m.opts.Cap)
		}
		s.mu.Unlock()
	}
	return nil
}

// Remove implements IDSets.
func (m *MemoryIDSets) Remove(_ context.Context, keys []string, ids ...int64) error {
	for _, k := range keys {
		s, ok := m.c.GetIfPresent(k)
		if !ok {
			continue
		}
		s.mu.Lock()
		s.ids = slices.DeleteFunc(s.ids, func(id int64) bool { return slices.Contains(ids, id) })
		s.mu.Unlock()
	}
	return nil
}

// Range implements IDSets.
func (m *MemoryIDSets) Range(_ context.Context, key string, below int64, limit int) ([]int64, int64, bool, error) {
	s, ok := m.c.GetIfPresent(key)
	if !ok {
		return nil, 0, false, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	i := 0
	if below > 0 {
		i, _ = slices.BinarySearchFunc(s.ids, below, func(a, b int64) int { return compareDesc(a, b) })
		if i < len(s.ids) && s.ids[i] == below {
			i++
		}
	}
	end := min(len(s.ids), i+max(limit, 0))
	return slices.Clone(s.ids[i:end]), s.floor(), true, nil
}

// Contains implements IDSets.
func (m *MemoryIDSets) Contains(_ context.Context, key string, ids []int64) ([]bool, int64, bool, error) {
	s, ok := m.c.GetIfPresent(key)
	if !ok {
		return nil, 0, false, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	in := make([]bool, len(ids))
	for i, id := range ids {
		_, in[i] = slices.BinarySearchFunc(s.ids, id, func(a, b int64) int { return compareDesc(a, b) })
	}
	return in, s.floor(), true, nil
}

// Begin implements IDSets.
func (m *MemoryIDSets) Begin(_ context.Context, key string) (bool, error) {
	_, created := m.c.SetIfAbsent(key, &memSet{building: true})
	return created, nil
}

// Fill implements IDSets.
func (m *MemoryIDSets) Fill(_ context.Context, key string, ids []int64, floor int64) error {
	s, ok := m.c.GetIfPresent(key)
	if !ok {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range ids {
		s.add(id, m.opts.Cap)
	}
	s.filled = max(s.filled, floor)
	s.building = false
	return nil
}

// Drop implements IDSets.
func (m *MemoryIDSets) Drop(_ context.Context, keys ...string) error {
	for _, k := range keys {
		m.c.Invalidate(k)
	}
	return nil
}

// Footprint is the sets held and the IDs in them, for the lesson's
// memory figure.
func (m *MemoryIDSets) Footprint() (sets int, ids int64) {
	for _, s := range m.c.All() {
		sets++
		s.mu.Lock()
		ids += int64(len(s.ids))
		s.mu.Unlock()
	}
	return sets, ids
}

// Close stops the engine's goroutines.
func (m *MemoryIDSets) Close() { m.c.StopAllGoroutines() }

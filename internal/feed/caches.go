package feed

import (
	"context"
	"encoding/json"
	"strconv"
	"time"

	"github.com/scalelab/scalelab/internal/feed/timeline"
	"github.com/scalelab/scalelab/internal/platform/cache"
)

// caches is the feed's cache tier, each with its own policy (doc.go
// explains why):
//
//	timelines  home timelines' pushed entries   ID sets, capped, idle TTL, written by fan-out
//	authors    each author's recent post IDs    ID sets, capped, written on post and delete
//	likes      the posts each user liked        ID sets, capped, written on like and unlike
//	kv         posts, users, follow lists       JSON values, deleted when they change
type caches struct {
	kv        cache.Cache
	timelines cache.IDSets
	authors   cache.IDSets
	likes     cache.IDSets
	ttl       time.Duration
	authorCap int
	likeCap   int
}

func newCaches(kv cache.Cache, cfg Config) *caches {
	return &caches{
		kv:        kv,
		timelines: cache.NewIDSets(kv, "feed-tl", cache.IDSetOptions{Cap: cfg.TimelineCap, IdleTTL: cfg.TimelineTTL, Sets: cfg.TimelineSets}),
		authors:   cache.NewIDSets(kv, "feed-au", cache.IDSetOptions{Cap: cfg.AuthorCap, IdleTTL: cfg.EntityTTL}),
		likes:     cache.NewIDSets(kv, "feed-lk", cache.IDSetOptions{Cap: cfg.AuthorCap, IdleTTL: cfg.EntityTTL}),
		ttl:       cfg.EntityTTL,
		authorCap: cfg.AuthorCap,
		likeCap:   cfg.AuthorCap,
	}
}

func idKey(id int64) string { return strconv.FormatInt(id, 10) }

func idKeys(ids []int64) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = idKey(id)
	}
	return out
}

func briefKey(id int64) string { return "feed:b:" + idKey(id) }
func splitKey(id int64) string { return "feed:s:" + idKey(id) }

const epochKey = "feed:epoch"

func postKey(id int64) string      { return "feed:p:" + idKey(id) }
func userKey(id int64) string      { return "feed:u:" + idKey(id) }
func followeesKey(id int64) string { return "feed:g:" + idKey(id) }

// getJSON reads a cached value; a miss, or a value that no longer
// decodes, is (false, nil), and an engine error is a miss too: the store
// answers instead.
func getJSON[T any](ctx context.Context, c cache.Cache, key string, v *T) bool {
	b, ok, err := c.Get(ctx, key)
	if err != nil || !ok {
		return false
	}
	return json.Unmarshal(b, v) == nil
}

func (c *caches) set(ctx context.Context, key string, b []byte) { _ = c.kv.Set(ctx, key, b, c.ttl) }

func (c *caches) user(ctx context.Context, id int64) (User, bool) {
	b, ok, err := c.kv.Get(ctx, userKey(id))
	if err != nil || !ok {
		return User{}, false
	}
	u, err := decodeUser(b)
	return u, err == nil
}

// brief is how an author is shown: its handle and name never change, so
// it is cached apart from the user's counters, which every post, follow
// and like moves.
func (c *caches) brief(ctx context.Context, id int64) (UserBrief, bool) {
	b, ok, err := c.kv.Get(ctx, briefKey(id))
	if err != nil || !ok {
		return UserBrief{}, false
	}
	u, err := decodeBrief(b)
	return u, err == nil
}

func (c *caches) post(ctx context.Context, id int64) (Post, bool) {
	b, ok, err := c.kv.Get(ctx, postKey(id))
	if err != nil || !ok {
		return Post{}, false
	}
	p, err := decodePost(b)
	return p, err == nil
}

// epoch is the celebrity epoch (0 before any crossing).
func (c *caches) epoch(ctx context.Context) int64 {
	b, ok, err := c.kv.Get(ctx, epochKey)
	if err != nil || !ok {
		return 0
	}
	ids, err := decodeIDs(b)
	if err != nil || len(ids) != 1 {
		return 0
	}
	return ids[0]
}

// bumpEpoch marks every cached hybrid split stale. Should the write be
// lost, the splits live at most the entity TTL.
func (c *caches) bumpEpoch(ctx context.Context) {
	next := max(time.Now().UnixNano(), c.epoch(ctx)+1)
	_ = c.kv.Set(ctx, epochKey, encodeIDs([]int64{next}), 0)
}

// split is a hybrid reader's pulled followees, as of an epoch and a mode.
type split struct {
	epoch  int64
	mode   string
	pulled []int64
}

func (c *caches) split(ctx context.Context, reader int64) (split, bool) {
	b, ok, err := c.kv.Get(ctx, splitKey(reader))
	if err != nil || !ok {
		return split{}, false
	}
	d := newDecoder(b)
	sp := split{epoch: d.int(), mode: d.str()}
	n := d.int()
	if n < 0 || n > int64(len(b)) {
		return split{}, false
	}
	for i := int64(0); i < n; i++ {
		sp.pulled = append(sp.pulled, d.int())
	}
	return sp, d.done() == nil
}

func (c *caches) setSplit(ctx context.Context, reader int64, sp split) {
	e := encoder{b: []byte{codecVersion}}
	e.int(sp.epoch)
	e.str(sp.mode)
	e.int(int64(len(sp.pulled)))
	for _, id := range sp.pulled {
		e.int(id)
	}
	c.set(ctx, splitKey(reader), e.b)
}

func (c *caches) setJSON(ctx context.Context, key string, v any) {
	if b, err := json.Marshal(v); err == nil {
		_ = c.kv.Set(ctx, key, b, c.ttl)
	}
}

// forget deletes cached values after a change; a failure leaves a stale
// value for at most the entity TTL, which the caller cannot improve on.
func (c *caches) forget(ctx context.Context, keys ...string) {
	for _, k := range keys {
		_ = c.kv.Delete(ctx, k)
	}
}

// truthFunc reads a set's truth: IDs below cursor (0: the highest),
// highest first, at most limit.
type truthFunc func(ctx context.Context, cursor int64, limit int) ([]int64, error)

// coveredRange is a page of a set's truth, below cursor, highest first, at
// most limit, served from the cached set as far as it covers the truth:
// a missing set is rebuilt (up to its cap) from the truth, and what lies
// at or below the set's floor is read from the truth. rebuilt reports a
// rebuild.
func coveredRange(ctx context.Context, sets cache.IDSets, key string, capN int, cursor int64, limit int, truth truthFunc) (ids []int64, rebuilt bool, err error) {
	ids, floor, ok, err := sets.Range(ctx, key, cursor, limit)
	if err != nil {
		return truthPage(ctx, truth, cursor, limit)
	}
	if !ok {
		rebuilt = true
		if _, err := sets.Begin(ctx, key); err != nil {
			out, _, err := truthPage(ctx, truth, cursor, limit)
			return out, true, err
		}
		all, err := truth(ctx, 0, capN)
		if err != nil {
			_ = sets.Drop(ctx, key) // a set left building would send every read to the truth
			return nil, true, err
		}
		fillFloor := int64(0)
		if len(all) == capN {
			fillFloor = all[len(all)-1] - 1
		}
		if err := sets.Fill(ctx, key, all, fillFloor); err != nil {
			_ = sets.Drop(ctx, key)
		}
		if ids, floor, ok, err = sets.Range(ctx, key, cursor, limit); err != nil || !ok {
			out, _, err := truthPage(ctx, truth, cursor, limit)
			return out, true, err
		}
	}
	if floor == 1<<63-1 { // another reader's rebuild is under way
		out, _, err := truthPage(ctx, truth, cursor, limit)
		return out, rebuilt, err
	}
	if len(ids) < limit && floor > 0 {
		below := floor + 1
		if cursor > 0 {
			below = min(cursor, below)
		}
		more, err := truth(ctx, below, limit)
		if err != nil {
			return nil, rebuilt, err
		}
		ids = timeline.Merge([][]int64{ids, more}, 0, limit)
	}
	return ids, rebuilt, nil
}

func truthPage(ctx context.Context, truth truthFunc, cursor int64, limit int) ([]int64, bool, error) {
	ids, err := truth(ctx, cursor, limit)
	return ids, false, err
}

// footprint is the IDs the in-process ID sets hold, by family (nil on
// Redis, whose memory the lesson reads from INFO).
func (c *caches) footprint() map[string][2]int64 {
	out := map[string][2]int64{}
	for name, s := range map[string]cache.IDSets{"timelines": c.timelines, "authors": c.authors, "likes": c.likes} {
		m, ok := s.(*cache.MemoryIDSets)
		if !ok {
			return nil
		}
		sets, ids := m.Footprint()
		out[name] = [2]int64{int64(sets), ids}
	}
	return out
}

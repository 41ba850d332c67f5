package feed

import (
	"context"
	"slices"
	"strconv"
	"time"

	"github.com/scalelab/scalelab/internal/feed/timeline"
	"github.com/scalelab/scalelab/internal/platform/apperr"
)

// Item is one timeline entry as a reader sees it.
type Item struct {
	Post
	Author UserBrief `json:"author"`
	Liked  bool      `json:"liked"`
	// Shared is the post a share shares (nil when it was deleted).
	Shared *SharedPost `json:"shared,omitempty"`
}

// SharedPost is a shared post with its author.
type SharedPost struct {
	Post
	Author UserBrief `json:"author"`
}

// UserBrief is how an author is shown beside a post.
type UserBrief struct {
	ID     int64  `json:"id,string"`
	Handle string `json:"handle"`
	Name   string `json:"name"`
}

func brief(u User) UserBrief { return UserBrief{ID: u.ID, Handle: u.Handle, Name: u.Name} }

// Page is a page of a timeline; Next is the cursor of the next page, ""
// at the end.
type Page struct {
	Items []Item `json:"items"`
	Next  string `json:"next"`
	// Mode is how this reader's timeline was built.
	Mode string `json:"mode"`
	// Pulled is the authors this read merged in itself.
	Pulled int `json:"pulled"`
}

// MaxPage is the most items one timeline read returns.
const MaxPage = 100

// Timeline is a page of reader's home timeline: the posts of everyone it
// follows and its own, newest first, below cursor (0: from the newest).
// Pushed entries come from the reader's cached timeline, the posts of
// pulled authors from their cached recent posts, merged here; posts since
// deleted, and authors since unfollowed, are dropped on the way.
func (s *Service) Timeline(ctx context.Context, reader, cursor int64, limit int) (Page, error) {
	start := time.Now()
	if limit < 1 || limit > MaxPage {
		return Page{}, apperr.E(apperr.Invalid, "limit: a number from 1 to %d", MaxPage)
	}
	followees, err := s.followeesOf(ctx, reader)
	if err != nil {
		return Page{}, err
	}
	me, err := s.User(ctx, reader)
	if err != nil {
		return Page{}, err
	}
	mode, _ := timeline.ParseMode(me.Mode)
	pulled, err := s.pulledFrom(ctx, reader, mode, followees)
	if err != nil {
		return Page{}, err
	}
	pulled = append(slices.Clone(pulled), reader) // one's own posts are always read, never pushed
	var pushed []int64
	for _, f := range followees {
		if !slices.Contains(pulled, f) {
			pushed = append(pushed, f)
		}
	}
	page := Page{Mode: s.policy.Effective(mode).String(), Pulled: len(pulled)}
	follows := slices.Clone(followees)
	if i, found := slices.BinarySearch(follows, reader); !found {
		follows = slices.Insert(follows, i, reader)
	}
	var ids []int64
	// A page can lose entries to deletes and unfollows the caches have not
	// caught up with; a few more rounds fill it from below.
	for round := 0; round < 4 && len(page.Items) < limit; round++ {
		want := limit - len(page.Items)
		lists := make([][]int64, 0, len(pulled)+1)
		if len(pushed) > 0 {
			l, rebuilt, err := coveredRange(ctx, s.caches.timelines, idKey(reader), s.cfg.TimelineCap, cursor, want, s.postsOfTruth(pushed))
			if err != nil {
				return Page{}, err
			}
			if rebuilt {
				s.metrics.rebuilds.Inc()
			}
			lists = append(lists, l)
		}
		for _, a := range pulled {
			l, _, err := coveredRange(ctx, s.caches.authors, idKey(a), s.cfg.AuthorCap, cursor, want, s.postsOfTruth([]int64{a}))
			if err != nil {
				return Page{}, err
			}
			lists = append(lists, l)
		}
		ids = timeline.Merge(lists, 0, want)
		items, err := s.items(ctx, me, ids, follows)
		if err != nil {
			return Page{}, err
		}
		page.Items = append(page.Items, items...)
		if len(ids) < want {
			ids = nil // the end of the timeline
			break
		}
		cursor = ids[len(ids)-1]
	}
	if len(ids) > 0 {
		page.Next = strconv.FormatInt(cursor, 10)
	}
	if page.Items == nil {
		page.Items = []Item{}
	}
	s.metrics.reads.WithLabelValues(page.Mode).Observe(time.Since(start).Seconds())
	return page, nil
}

// pulledFrom is the followees whose posts a reader's read merges in
// itself. Push and pull need no follower counts; hybrid does, one per
// followee, so its answer is cached per reader, tagged with the reader's
// mode and the celebrity epoch, which moves whenever any account crosses
// the threshold: a crossing makes every cached answer stale at once, and
// between crossings, which are rare, a read costs two lookups, not one per
// followee. (A follow or unfollow drops the reader's cached answer with
// its follow list.)
func (s *Service) pulledFrom(ctx context.Context, reader int64, mode timeline.Mode, followees []int64) ([]int64, error) {
	switch s.policy.Effective(mode) {
	case timeline.Push:
		return nil, nil
	case timeline.Pull:
		return followees, nil
	}
	epoch := s.caches.epoch(ctx)
	if sp, ok := s.caches.split(ctx, reader); ok && sp.epoch == epoch && sp.mode == mode.String() {
		return sp.pulled, nil
	}
	us, err := s.lookupUsers(ctx, followees)
	if err != nil {
		return nil, err
	}
	withCounts := make([]timeline.Followee, len(followees))
	for i, f := range followees {
		withCounts[i] = timeline.Followee{ID: f, Followers: us[i].Followers}
	}
	pulled := s.policy.PullFrom(mode, withCounts)
	s.caches.setSplit(ctx, reader, split{epoch: epoch, mode: mode.String(), pulled: pulled})
	return pulled, nil
}

func (s *Service) postsOfTruth(authors []int64) truthFunc {
	return func(ctx context.Context, cursor int64, limit int) ([]int64, error) {
		return s.store.postsOf(ctx, authors, cursor, limit)
	}
}

// items hydrates post IDs in their order, dropping deleted posts and
// posts by authors the reader no longer follows (follows: sorted IDs).
func (s *Service) items(ctx context.Context, reader User, ids []int64, follows []int64) ([]Item, error) {
	posts, err := s.lookupPosts(ctx, ids)
	if err != nil {
		return nil, err
	}
	var shared []int64
	authors := make([]int64, 0, len(ids))
	for _, p := range posts {
		if p.ID != 0 {
			authors = append(authors, p.AuthorID)
			if p.ShareOf != 0 {
				shared = append(shared, p.ShareOf)
			}
		}
	}
	sharedPosts, err := s.lookupPosts(ctx, shared)
	if err != nil {
		return nil, err
	}
	for _, p := range sharedPosts {
		if p.ID != 0 {
			authors = append(authors, p.AuthorID)
		}
	}
	briefs, err := s.briefs(ctx, authors)
	if err != nil {
		return nil, err
	}
	author := func(id int64) UserBrief {
		for i, a := range authors {
			if a == id {
				return briefs[i]
			}
		}
		return UserBrief{ID: id}
	}
	liked := make([]bool, len(ids))
	if reader.Liked > 0 { // most readers have liked nothing: nothing to look up
		if liked, err = s.likedAmong(ctx, reader.ID, ids); err != nil {
			return nil, err
		}
	}
	out := make([]Item, 0, len(ids))
	for i, p := range posts {
		if p.ID == 0 || p.Deleted {
			continue
		}
		if follows != nil {
			if _, ok := slices.BinarySearch(follows, p.AuthorID); !ok {
				continue
			}
		}
		it := Item{Post: p, Author: author(p.AuthorID), Liked: liked[i]}
		if p.ShareOf != 0 {
			if j := slices.IndexFunc(sharedPosts, func(sp Post) bool { return sp.ID == p.ShareOf }); j >= 0 && !sharedPosts[j].Deleted {
				it.Shared = &SharedPost{Post: sharedPosts[j], Author: author(sharedPosts[j].AuthorID)}
			}
		}
		out = append(out, it)
	}
	return out, nil
}

// followeesOf is everyone reader follows, from the cache or the store.
func (s *Service) followeesOf(ctx context.Context, reader int64) ([]int64, error) {
	if b, ok, err := s.caches.kv.Get(ctx, followeesKey(reader)); err == nil && ok {
		if ids, err := decodeIDs(b); err == nil {
			return ids, nil
		}
	}
	ids, err := s.store.followeeIDs(ctx, reader)
	if err != nil {
		return nil, err
	}
	s.caches.set(ctx, followeesKey(reader), encodeIDs(ids))
	return ids, nil
}

// cachedThenStored reads values by ID, aligned with ids: each from the
// cache (get), the misses from the store in one query (load), which are
// cached (put); an ID the store lacks is the zero value. Slices, not maps:
// a read hydrates some twenty authors and posts, and maps were a sixth of
// its garbage.
func cachedThenStored[T any](ids []int64, get func(int64) (T, bool), load func([]int64) (map[int64]T, error), put func(int64, T)) ([]T, error) {
	out := make([]T, len(ids))
	var miss []int64
	for i, id := range ids {
		if v, ok := get(id); ok {
			out[i] = v
		} else if !slices.Contains(miss, id) {
			miss = append(miss, id)
		}
	}
	if len(miss) == 0 {
		return out, nil
	}
	found, err := load(miss)
	if err != nil {
		return nil, err
	}
	for id, v := range found {
		put(id, v)
	}
	for i, id := range ids {
		if v, ok := found[id]; ok {
			out[i] = v
		}
	}
	return out, nil
}

// lookupUsers reads users through the cache, aligned with ids (a user
// that does not exist is the zero User).
func (s *Service) lookupUsers(ctx context.Context, ids []int64) ([]User, error) {
	return cachedThenStored(ids, func(id int64) (User, bool) { return s.caches.user(ctx, id) },
		func(miss []int64) (map[int64]User, error) { return s.store.users(ctx, miss) },
		func(id int64, u User) { s.caches.set(ctx, userKey(id), encodeUser(u)) })
}

// briefs is how authors are shown, aligned with ids.
func (s *Service) briefs(ctx context.Context, ids []int64) ([]UserBrief, error) {
	return cachedThenStored(ids, func(id int64) (UserBrief, bool) { return s.caches.brief(ctx, id) },
		func(miss []int64) (map[int64]UserBrief, error) {
			us, err := s.store.users(ctx, miss)
			out := make(map[int64]UserBrief, len(us))
			for id, u := range us {
				out[id] = brief(u)
			}
			return out, err
		},
		func(id int64, b UserBrief) { s.caches.set(ctx, briefKey(id), encodeBrief(b)) })
}

// users is lookupUsers as a map of the users that exist.
func (s *Service) users(ctx context.Context, ids []int64) (map[int64]User, error) {
	us, err := s.lookupUsers(ctx, ids)
	if err != nil {
		return nil, err
	}
	out := make(map[int64]User, len(us))
	for _, u := range us {
		if u.ID != 0 {
			out[u.ID] = u
		}
	}
	return out, nil
}

// User is one user with its counters.
func (s *Service) User(ctx context.Context, id int64) (User, error) {
	if u, ok := s.caches.user(ctx, id); ok {
		return u, nil
	}
	us, err := s.lookupUsers(ctx, []int64{id})
	if err != nil {
		return User{}, err
	}
	if us[0].ID == 0 {
		return User{}, apperr.E(apperr.NotFound, "no user %d", id)
	}
	return us[0], nil
}

// lookupPosts reads posts through the cache, aligned with ids (one that
// does not exist is the zero Post).
func (s *Service) lookupPosts(ctx context.Context, ids []int64) ([]Post, error) {
	return cachedThenStored(ids, func(id int64) (Post, bool) { return s.caches.post(ctx, id) },
		func(miss []int64) (map[int64]Post, error) { return s.store.posts(ctx, miss) },
		func(id int64, p Post) { s.caches.set(ctx, postKey(id), encodePost(p)) })
}

// posts is lookupPosts as a map of the posts that exist.
func (s *Service) posts(ctx context.Context, ids []int64) (map[int64]Post, error) {
	ps, err := s.lookupPosts(ctx, ids)
	if err != nil {
		return nil, err
	}
	out := make(map[int64]Post, len(ps))
	for _, p := range ps {
		if p.ID != 0 {
			out[p.ID] = p
		}
	}
	return out, nil
}

// GetPost is one live post.
func (s *Service) GetPost(ctx context.Context, id int64) (Post, error) {
	ps, err := s.posts(ctx, []int64{id})
	if err != nil {
		return Post{}, err
	}
	p, ok := ps[id]
	if !ok || p.Deleted {
		return Post{}, apperr.E(apperr.NotFound, "no post %d", id)
	}
	return p, nil
}

// likedAmong reports which of posts the user liked: from the user's cached
// likes above the set's floor, from the store for the rest.
func (s *Service) likedAmong(ctx context.Context, user int64, posts []int64) ([]bool, error) {
	if len(posts) == 0 {
		return nil, nil
	}
	key := idKey(user)
	in, floor, ok, err := s.caches.likes.Contains(ctx, key, posts)
	if err == nil && !ok {
		if _, err := s.caches.likes.Begin(ctx, key); err == nil {
			all, err := s.store.likedPosts(ctx, user, 0, s.caches.likeCap)
			if err != nil {
				_ = s.caches.likes.Drop(ctx, key)
				return nil, err
			}
			fillFloor := int64(0)
			if len(all) == s.caches.likeCap {
				fillFloor = all[len(all)-1] - 1
			}
			if s.caches.likes.Fill(ctx, key, all, fillFloor) != nil {
				_ = s.caches.likes.Drop(ctx, key)
			}
			in, floor, ok, err = s.caches.likes.Contains(ctx, key, posts)
		}
	}
	out := make([]bool, len(posts))
	var ask []int64
	for i, p := range posts {
		if err == nil && ok && p > floor {
			out[i] = in[i]
		} else {
			ask = append(ask, p)
		}
	}
	if len(ask) > 0 {
		liked, err := s.store.likedAmong(ctx, user, ask)
		if err != nil {
			return nil, err
		}
		for i, p := range posts {
			if slices.Contains(liked, p) {
				out[i] = true
			}
		}
	}
	return out, nil
}

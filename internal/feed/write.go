package feed

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"regexp"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/scalelab/scalelab/internal/feed/timeline"
	"github.com/scalelab/scalelab/internal/platform/apperr"
)

// MaxPostLen is the longest post or comment, in characters.
const MaxPostLen = 500

var handlePattern = regexp.MustCompile(`^[a-z0-9_]{2,32}$`)

// NewUser is a sign-up.
type NewUser struct {
	Handle string `json:"handle"`
	Name   string `json:"name"`
	Mode   string `json:"mode"`
}

// CreateUser makes an account and returns it with its token, shown once:
// the store keeps only its hash.
func (s *Service) CreateUser(ctx context.Context, n NewUser) (User, string, error) {
	if !handlePattern.MatchString(n.Handle) {
		return User{}, "", apperr.E(apperr.Invalid, "handle: 2 to 32 of a-z, 0-9 and _")
	}
	n.Name = strings.TrimSpace(n.Name)
	if n.Name == "" {
		n.Name = n.Handle
	}
	if utf8.RuneCountInString(n.Name) > 100 || !utf8.ValidString(n.Name) {
		return User{}, "", apperr.E(apperr.Invalid, "name: at most 100 characters of valid UTF-8")
	}
	if err := checkMode(n.Mode); err != nil {
		return User{}, "", err
	}
	id, err := s.nextID()
	if err != nil {
		return User{}, "", err
	}
	token := newToken()
	u := User{ID: id, Handle: n.Handle, Name: n.Name, Mode: n.Mode, CreatedAt: s.cfg.Now().Truncate(time.Millisecond)}
	if err := s.store.createUser(ctx, u, hashToken(token)); err != nil {
		return User{}, "", err
	}
	return u, token, nil
}

func checkMode(m string) error {
	if m == "" {
		return nil
	}
	if mode, ok := timeline.ParseMode(m); !ok || mode == timeline.Inherit {
		return apperr.E(apperr.Invalid, `mode: "push", "pull", "hybrid" or "" (the deployment's)`)
	}
	return nil
}

func newToken() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func hashToken(t string) string {
	h := sha256.Sum256([]byte(t))
	return hex.EncodeToString(h[:])
}

// SetMode changes a user's own timeline mode. Its cached timeline was
// built for the old one, so it is dropped and rebuilt on the next read.
func (s *Service) SetMode(ctx context.Context, user int64, mode string) error {
	ctx, cancel := detach(ctx)
	defer cancel()
	if err := checkMode(mode); err != nil {
		return err
	}
	if err := s.store.setMode(ctx, user, mode); err != nil {
		return err
	}
	s.forget(ctx, userKey(user), splitKey(user))
	return s.caches.timelines.Drop(ctx, idKey(user))
}

// detach is the context of a write: once begun, a write runs to its end,
// its caches and its fan-out included, even if the client leaves. A write
// cut off between its commit and its cache updates would leave a cached
// list claiming a completeness it lacks (an author's recent posts without
// the post, found by the lesson with the caches in Redis).
func detach(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
}

// forget deletes cached values now and once more a second later: a reader
// that read the store before the change and fills the cache after this
// first delete would otherwise leave the old value for the entity TTL.
func (s *Service) forget(ctx context.Context, keys ...string) {
	s.caches.forget(ctx, keys...)
	time.AfterFunc(time.Second, func() { s.caches.forget(context.Background(), keys...) })
}

// Follow makes follower follow followee. A pushed pair gets the followee's
// recent posts in the follower's cached timeline at once.
func (s *Service) Follow(ctx context.Context, follower, followee int64) error {
	ctx, cancel := detach(ctx)
	defer cancel()
	changed, err := s.store.follow(ctx, follower, followee, s.cfg.Now())
	if err != nil || !changed {
		return err
	}
	s.forget(ctx, followeesKey(follower), splitKey(follower), userKey(follower), userKey(followee))
	us, err := s.store.users(ctx, []int64{follower, followee})
	if err != nil {
		return err
	}
	s.crossed(ctx, us[followee].Followers-1, us[followee].Followers)
	mode, _ := timeline.ParseMode(us[follower].Mode)
	if s.policy.Backfill(mode, us[followee].Followers) {
		recent, err := s.store.recentPosts(ctx, followee, 0, s.cfg.AuthorCap)
		if err != nil {
			return err
		}
		return s.caches.timelines.Add(ctx, []string{idKey(follower)}, recent...)
	}
	return nil
}

// Unfollow undoes Follow: the followee's entries leave the follower's
// cached timeline (and reads drop any a race left behind). An author that
// drops under the celebrity threshold is pushed from now on, so its
// followers' cached timelines get its recent posts, by fan-out jobs.
func (s *Service) Unfollow(ctx context.Context, follower, followee int64) error {
	ctx, cancel := detach(ctx)
	defer cancel()
	changed, err := s.store.unfollow(ctx, follower, followee)
	if err != nil || !changed {
		return err
	}
	s.forget(ctx, followeesKey(follower), splitKey(follower), userKey(follower), userKey(followee))
	recent, err := s.store.recentPosts(ctx, followee, 0, s.cfg.AuthorCap)
	if err != nil {
		return err
	}
	if err := s.caches.timelines.Remove(ctx, []string{idKey(follower)}, recent...); err != nil {
		return err
	}
	us, err := s.store.users(ctx, []int64{followee})
	if err != nil {
		return err
	}
	after := us[followee].Followers
	s.crossed(ctx, after+1, after)
	if after+1 >= s.cfg.Celebrity && after < s.cfg.Celebrity {
		if err := s.fanout.publish(ctx, job{Kind: jobRebalance, Author: followee, Before: after + 1, After: after}); err != nil {
			// Its followers' cached timelines lack its posts made while it
			// was pulled: drop them here instead (each is rebuilt from the
			// store on its next read), a rare and bounded cost.
			s.logger.Warn("feed: a rebalance could not be queued; dropping the followers' timelines instead", "author", followee, "err", err)
			for after := int64(0); ; {
				page, err := s.store.followers(ctx, followee, after, 1000)
				if err != nil || len(page) == 0 {
					return err
				}
				keys := make([]string, len(page))
				for i, f := range page {
					keys[i] = idKey(f.ID)
				}
				if err := s.caches.timelines.Drop(ctx, keys...); err != nil {
					return err
				}
				after = page[len(page)-1].ID
			}
		}
	}
	return nil
}

// crossed moves the celebrity epoch when an account's follower count went
// over or under the threshold, now and again a second later (a hybrid
// read that computed its split from the old count and cached it after the
// first move is then stale too).
func (s *Service) crossed(ctx context.Context, before, after int) {
	if (before < s.cfg.Celebrity) == (after < s.cfg.Celebrity) {
		return
	}
	s.caches.bumpEpoch(ctx)
	time.AfterFunc(time.Second, func() { s.caches.bumpEpoch(context.Background()) })
}

// NewPost is a post (or a share, with ShareOf).
type NewPost struct {
	Body    string `json:"body"`
	ShareOf int64  `json:"share_of,string,omitempty"`
}

func checkText(what, body string, optional bool) (string, error) {
	body = strings.TrimRightFunc(body, unicode.IsSpace)
	if !utf8.ValidString(body) {
		return "", apperr.E(apperr.Invalid, "%s: not valid UTF-8", what)
	}
	if n := utf8.RuneCountInString(body); n > MaxPostLen {
		return "", apperr.E(apperr.Invalid, "%s: %d characters; at most %d", what, n, MaxPostLen)
	}
	if !optional && strings.TrimSpace(body) == "" {
		return "", apperr.E(apperr.Invalid, "%s: empty", what)
	}
	return body, nil
}

// CreatePost stores a post, adds it to its author's recent posts and
// queues its fan-out; it is in the author's own timeline at once, and in
// its pushed followers' when the fan-out jobs have run.
func (s *Service) CreatePost(ctx context.Context, author int64, n NewPost) (Post, error) {
	ctx, cancel := detach(ctx)
	defer cancel()
	body, err := checkText("body", n.Body, n.ShareOf != 0)
	if err != nil {
		return Post{}, err
	}
	id, err := s.nextID()
	if err != nil {
		return Post{}, err
	}
	p := Post{ID: id, AuthorID: author, Body: body, ShareOf: n.ShareOf, CreatedAt: s.cfg.Now().Truncate(time.Millisecond)}
	if err := s.store.createPost(ctx, p); err != nil {
		return Post{}, err
	}
	s.metrics.posts.Inc()
	keys := []string{userKey(author)}
	if n.ShareOf != 0 {
		keys = append(keys, postKey(n.ShareOf))
	}
	s.forget(ctx, keys...)
	if err := s.caches.authors.Add(ctx, []string{idKey(author)}, id); err != nil {
		_ = s.caches.authors.Drop(ctx, idKey(author)) // rebuilt from the store when next read
	}
	if err := s.fanout.publish(ctx, job{Kind: jobPost, Post: id, Author: author, At: p.CreatedAt.UnixMilli()}); err != nil {
		// A post that exists but never reaches its pushed followers would
		// be missing from their timelines for good: it is taken back, and
		// the author told to try again. (Should the job have been stored
		// after all, it fans out a deleted post, which reads drop.)
		if derr := s.store.deletePost(ctx, author, id); derr != nil {
			s.logger.Error("feed: a post whose fan-out failed could not be taken back", "post", id, "err", derr)
		}
		s.forget(ctx, postKey(id), userKey(author))
		_ = s.caches.authors.Remove(ctx, []string{idKey(author)}, id)
		return Post{}, apperr.E(apperr.Unavailable, "the post could not be queued for its followers' timelines (%v), so it was not kept: try again", err)
	}
	s.live.announce(ctx, p)
	return p, nil
}

// DeletePost removes an author's post from every timeline: reads drop it
// at once (the post is marked deleted), and fan-out jobs take it out of
// the cached timelines it was written to.
func (s *Service) DeletePost(ctx context.Context, author, id int64) error {
	ctx, cancel := detach(ctx)
	defer cancel()
	if err := s.store.deletePost(ctx, author, id); err != nil {
		return err
	}
	s.forget(ctx, postKey(id), userKey(author))
	if err := s.caches.authors.Remove(ctx, []string{idKey(author)}, id); err != nil {
		_ = s.caches.authors.Drop(ctx, idKey(author))
	}
	s.live.publish(ctx, liveEvent{Kind: "delete", Item: Item{Post: Post{ID: id, AuthorID: author}}})
	// Reads drop a deleted post at once; the job only cleans the timelines
	// (a lost one leaves entries that reads keep dropping).
	if err := s.fanout.publish(ctx, job{Kind: jobDelete, Post: id, Author: author}); err != nil {
		s.logger.Warn("feed: the delete's fan-out could not be queued; reads drop the post anyway", "post", id, "err", err)
	}
	return nil
}

// Like likes (on) or unlikes a post; a repeat changes nothing.
func (s *Service) Like(ctx context.Context, user, post int64, on bool) error {
	ctx, cancel := detach(ctx)
	defer cancel()
	changed, err := s.store.like(ctx, post, user, on, s.cfg.Now())
	if err != nil || !changed {
		return err
	}
	s.forget(ctx, postKey(post), userKey(user))
	keys := []string{idKey(user)}
	if on {
		err = s.caches.likes.Add(ctx, keys, post)
	} else {
		err = s.caches.likes.Remove(ctx, keys, post)
		time.AfterFunc(time.Second, func() { _ = s.caches.likes.Remove(context.Background(), keys, post) })
	}
	if err != nil {
		_ = s.caches.likes.Drop(ctx, keys...)
	}
	return nil
}

// CreateComment comments on a live post.
func (s *Service) CreateComment(ctx context.Context, user, post int64, body string) (Comment, error) {
	ctx, cancel := detach(ctx)
	defer cancel()
	body, err := checkText("body", body, false)
	if err != nil {
		return Comment{}, err
	}
	id, err := s.nextID()
	if err != nil {
		return Comment{}, err
	}
	c := Comment{ID: id, PostID: post, AuthorID: user, Body: body, CreatedAt: s.cfg.Now().Truncate(time.Millisecond)}
	if err := s.store.comment(ctx, c); err != nil {
		return Comment{}, err
	}
	s.forget(ctx, postKey(post))
	return c, nil
}

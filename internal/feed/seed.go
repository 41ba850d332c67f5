package feed

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/scalelab/scalelab/internal/feed/timeline"
	"github.com/scalelab/scalelab/internal/platform/apperr"
)

// SeedUser is a user of a generated social graph.
type SeedUser struct {
	ID     int64
	Handle string
}

// seed loads a generated graph in bulk (many rows a statement, one
// transaction per chunk) and recomputes the counters of everyone in it:
// the lesson's 100,000 users and their follows in seconds, where one
// Follow each would take minutes. Users get an unusable token hash.
func (s *store) seed(ctx context.Context, users []SeedUser, follows [][2]int64, now time.Time) error {
	const chunk = 2000 // rows a statement: 10,000 parameters at most, under every engine's limit
	const perTx = 50   // statements a transaction
	at := now.UnixMilli()
	inChunks := func(n, width int, table, cols string, arg func(i int, args []any) []any) error {
		for start := 0; start < n; start += chunk * perTx {
			err := s.db.InTx(ctx, func(tx *sql.Tx) error {
				for i := start; i < min(start+chunk*perTx, n); i += chunk {
					end := min(i+chunk, n)
					args := make([]any, 0, width*(end-i))
					for j := i; j < end; j++ {
						args = arg(j, args)
					}
					q := "INSERT INTO " + table + " (" + cols + ") VALUES " + rows(end-i, width)
					if _, err := tx.ExecContext(ctx, s.q(q), args...); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				return fmt.Errorf("feed: seed %s: %w", table, err)
			}
		}
		return nil
	}
	if err := inChunks(len(users), 5, "feed_users", "user_id, handle, name, token_hash, created_at", func(i int, args []any) []any {
		u := users[i]
		return append(args, u.ID, u.Handle, u.Handle, "seed:"+u.Handle, at)
	}); err != nil {
		return err
	}
	if err := inChunks(len(follows), 3, "feed_follows", "follower_id, followee_id, created_at", func(i int, args []any) []any {
		return append(args, follows[i][0], follows[i][1], at)
	}); err != nil {
		return err
	}
	return s.db.InTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE feed_users SET
			followers = (SELECT COUNT(*) FROM feed_follows WHERE followee_id = feed_users.user_id),
			following = (SELECT COUNT(*) FROM feed_follows WHERE follower_id = feed_users.user_id)`)
		return err
	})
}

func (s *store) exec(ctx context.Context, q string, args ...any) error {
	_, err := s.db.ExecContext(ctx, s.q(q), args...)
	return err
}

// resetPosts deletes every post, like and comment (the lesson runs each
// mode on the same graph from an empty store of posts).
func (s *store) resetPosts(ctx context.Context) error {
	return s.db.InTx(ctx, func(tx *sql.Tx) error {
		for _, q := range []string{"DELETE FROM feed_comments", "DELETE FROM feed_likes", "DELETE FROM feed_posts", "UPDATE feed_users SET posts = 0"} {
			if _, err := tx.ExecContext(ctx, q); err != nil {
				return err
			}
		}
		return nil
	})
}

// rows is n placeholders groups of width each: (?, ?), (?, ?) …
func rows(n, width int) string {
	one := "(" + strings.TrimSuffix(strings.Repeat("?, ", width), ", ") + ")"
	return strings.TrimSuffix(strings.Repeat(one+", ", n), ", ")
}

// Seed loads a generated graph into the store (see store.seed); the
// caches learn of it as they are read.
func (s *Service) Seed(ctx context.Context, users []SeedUser, follows [][2]int64) error {
	return s.store.seed(ctx, users, follows, s.cfg.Now())
}

// Celebrity is a demonstration account made by MakeCelebrity.
type Celebrity struct {
	User      User  `json:"user"`
	Followers int   `json:"followers"`
	Post      int64 `json:"post,string"`
	Pushed    bool  `json:"pushed"`
}

// MakeCelebrity makes an account with n new followers, caches every
// follower's timeline (as if all had read it lately), and posts from it:
// the console's way to watch one post fan out, or not, in this mode.
func (s *Service) MakeCelebrity(ctx context.Context, n int) (Celebrity, error) {
	tag := strconv.FormatInt(s.cfg.Now().UnixMilli()%1e9, 36)
	id, err := s.nextID()
	if err != nil {
		return Celebrity{}, err
	}
	users := []SeedUser{{ID: id, Handle: "celeb_" + tag}}
	follows := make([][2]int64, 0, n)
	for i := 0; i < n; i++ {
		f, err := s.nextID()
		if err != nil {
			return Celebrity{}, err
		}
		users = append(users, SeedUser{ID: f, Handle: fmt.Sprintf("fan_%s_%d", tag, i)})
		follows = append(follows, [2]int64{f, id})
	}
	if err := s.Seed(ctx, users, follows); err != nil {
		return Celebrity{}, err
	}
	for _, u := range users[1:] {
		if _, err := s.caches.timelines.Begin(ctx, idKey(u.ID)); err != nil {
			return Celebrity{}, err
		}
		if err := s.caches.timelines.Fill(ctx, idKey(u.ID), nil, 0); err != nil {
			return Celebrity{}, err
		}
	}
	p, err := s.CreatePost(ctx, id, NewPost{Body: fmt.Sprintf("Hello to my %d followers", n)})
	if err != nil {
		return Celebrity{}, err
	}
	u, err := s.User(ctx, id)
	if err != nil {
		return Celebrity{}, err
	}
	return Celebrity{User: u, Followers: n, Post: p.ID, Pushed: s.policy.Pushed(timeline.Inherit, n)}, nil
}

// GenerateGraph seeds a generated graph into a feed without users; the
// celebrity is the first ID.
func (s *Service) GenerateGraph(ctx context.Context, g GraphSpec) ([]int64, error) {
	if n, err := s.store.count(ctx, "feed_users"); err != nil {
		return nil, err
	} else if n > 0 {
		return nil, apperr.E(apperr.Conflict, "the feed has %d users; a graph is generated into an empty one", n)
	}
	pairs, err := g.Follows()
	if err != nil {
		return nil, apperr.E(apperr.Invalid, "%v", err)
	}
	ids := make([]int64, g.Users)
	users := make([]SeedUser, g.Users)
	for i := range ids {
		if ids[i], err = s.nextID(); err != nil {
			return nil, err
		}
		users[i] = SeedUser{ID: ids[i], Handle: fmt.Sprintf("user%d", i)}
	}
	follows := make([][2]int64, len(pairs))
	for i, p := range pairs {
		follows[i] = [2]int64{ids[p[0]], ids[p[1]]}
	}
	return ids, s.Seed(ctx, users, follows)
}

// WarmEmpty caches every user's timeline in a feed without posts, where
// the empty timeline is exactly the truth; with posts it refuses (a
// timeline is then rebuilt from the store on its first read).
func (s *Service) WarmEmpty(ctx context.Context) (int, error) {
	if n, err := s.store.count(ctx, "feed_posts"); err != nil {
		return 0, err
	} else if n > 0 {
		return 0, apperr.E(apperr.Conflict, "the feed has %d posts; only an empty one is warmed this way", n)
	}
	ids, err := s.store.ids(ctx, "SELECT user_id FROM feed_users")
	if err != nil {
		return 0, err
	}
	for _, id := range ids {
		if _, err := s.caches.timelines.Begin(ctx, idKey(id)); err != nil {
			return 0, err
		}
		if err := s.caches.timelines.Fill(ctx, idKey(id), nil, 0); err != nil {
			return 0, err
		}
	}
	return len(ids), nil
}

func (s *store) count(ctx context.Context, table string) (int, error) {
	var n int
	err := s.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+table).Scan(&n)
	return n, err
}

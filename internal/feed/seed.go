package feed

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"
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
	const chunk = 400
	for i := 0; i < len(users); i += chunk {
		part := users[i:min(i+chunk, len(users))]
		args := make([]any, 0, 5*len(part))
		for _, u := range part {
			args = append(args, u.ID, u.Handle, u.Handle, "seed:"+u.Handle, now.UnixMilli())
		}
		q := "INSERT INTO feed_users (user_id, handle, name, token_hash, created_at) VALUES " + rows(len(part), 5)
		if err := s.exec(ctx, q, args...); err != nil {
			return fmt.Errorf("feed: seed users: %w", err)
		}
	}
	for i := 0; i < len(follows); i += chunk {
		part := follows[i:min(i+chunk, len(follows))]
		args := make([]any, 0, 3*len(part))
		for _, f := range part {
			args = append(args, f[0], f[1], now.UnixMilli())
		}
		if err := s.exec(ctx, "INSERT INTO feed_follows (follower_id, followee_id, created_at) VALUES "+rows(len(part), 3), args...); err != nil {
			return fmt.Errorf("feed: seed follows: %w", err)
		}
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

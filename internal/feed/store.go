package feed

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"strings"
	"time"

	"github.com/scalelab/scalelab/internal/feed/timeline"
	"github.com/scalelab/scalelab/internal/platform/apperr"
	"github.com/scalelab/scalelab/internal/platform/sqldb"
)

//go:embed migrations
var migrations embed.FS

// store is the feed's storage tier: the SQL tables are the truth every
// cache is rebuilt from.
type store struct{ db *sqldb.DB }

func openStore(ctx context.Context, db *sqldb.DB) (*store, error) {
	if err := db.Migrate(ctx, migrations, "feed"); err != nil {
		return nil, err
	}
	return &store{db: db}, nil
}

func (s *store) q(query string) string { return s.db.Rebind(query) }

// insertIgnore is an INSERT that skips a row whose key exists.
func (s *store) insertIgnore(table, cols string, n int, conflict string) string {
	ph := "(" + strings.TrimSuffix(strings.Repeat("?, ", n), ", ") + ")"
	if s.db.Dialect == sqldb.MySQL {
		return "INSERT IGNORE INTO " + table + " (" + cols + ") VALUES " + ph
	}
	return "INSERT INTO " + table + " (" + cols + ") VALUES " + ph + " ON CONFLICT (" + conflict + ") DO NOTHING"
}

// User is an account with its counters.
type User struct {
	ID        int64     `json:"id,string"`
	Handle    string    `json:"handle"`
	Name      string    `json:"name"`
	Mode      string    `json:"mode,omitempty"` // its own timeline mode; "" the deployment's
	Followers int       `json:"followers"`
	Following int       `json:"following"`
	Posts     int       `json:"posts"`
	Liked     int       `json:"liked"` // likes it gave
	CreatedAt time.Time `json:"created_at"`
}

// createUser stores a user with the SHA-256 of its token.
func (s *store) createUser(ctx context.Context, u User, tokenHash string) error {
	_, err := s.db.ExecContext(ctx, s.q("INSERT INTO feed_users (user_id, handle, name, mode, token_hash, created_at) VALUES (?, ?, ?, ?, ?, ?)"),
		u.ID, u.Handle, u.Name, u.Mode, tokenHash, u.CreatedAt.UnixMilli())
	if err != nil && sqldb.IsUniqueViolation(err) {
		return apperr.E(apperr.Conflict, "the handle %q is taken", u.Handle)
	}
	return err
}

func (s *store) user(ctx context.Context, id int64) (User, error) {
	var u User
	var at int64
	err := s.db.QueryRowContext(ctx, s.q("SELECT user_id, handle, name, mode, followers, following, posts, liked, created_at FROM feed_users WHERE user_id = ?"), id).
		Scan(&u.ID, &u.Handle, &u.Name, &u.Mode, &u.Followers, &u.Following, &u.Posts, &u.Liked, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return u, apperr.E(apperr.NotFound, "no user %d", id)
	}
	u.CreatedAt = time.UnixMilli(at)
	return u, err
}

// users reads users by ID, in no order; unknown IDs are left out.
func (s *store) users(ctx context.Context, ids []int64) (map[int64]User, error) {
	out := map[int64]User{}
	if len(ids) == 0 {
		return out, nil
	}
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	rows, err := s.db.QueryContext(ctx, s.q("SELECT user_id, handle, name, mode, followers, following, posts, liked, created_at FROM feed_users WHERE user_id IN (?"+
		strings.Repeat(", ?", len(ids)-1)+")"), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var u User
		var at int64
		if err := rows.Scan(&u.ID, &u.Handle, &u.Name, &u.Mode, &u.Followers, &u.Following, &u.Posts, &u.Liked, &at); err != nil {
			return nil, err
		}
		u.CreatedAt = time.UnixMilli(at)
		out[u.ID] = u
	}
	return out, rows.Err()
}

// newestUsers is the newest accounts, for finding people to follow.
func (s *store) newestUsers(ctx context.Context, limit int) ([]int64, error) {
	return s.ids(ctx, "SELECT user_id FROM feed_users ORDER BY user_id DESC LIMIT ?", limit)
}

// setMode changes a user's own timeline mode ("" for the deployment's).
func (s *store) setMode(ctx context.Context, id int64, mode string) error {
	res, err := s.db.ExecContext(ctx, s.q("UPDATE feed_users SET mode = ? WHERE user_id = ?"), mode, id)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		var one int
		if err := s.db.QueryRowContext(ctx, s.q("SELECT 1 FROM feed_users WHERE user_id = ?"), id).Scan(&one); errors.Is(err, sql.ErrNoRows) {
			return apperr.E(apperr.NotFound, "no user %d", id)
		}
	}
	return nil
}

// userByToken is the user whose token hashes to tokenHash.
func (s *store) userByToken(ctx context.Context, tokenHash string) (int64, error) {
	var id int64
	err := s.db.QueryRowContext(ctx, s.q("SELECT user_id FROM feed_users WHERE token_hash = ?"), tokenHash).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, apperr.E(apperr.Unauthorized, "unknown user token")
	}
	return id, err
}

// userByHandle is the user with that handle.
func (s *store) userByHandle(ctx context.Context, handle string) (int64, error) {
	var id int64
	err := s.db.QueryRowContext(ctx, s.q("SELECT user_id FROM feed_users WHERE handle = ?"), handle).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, apperr.E(apperr.NotFound, "no user @%s", handle)
	}
	return id, err
}

// follow makes follower follow followee; changed is false when it already
// did. The counters move in the same transaction.
func (s *store) follow(ctx context.Context, follower, followee int64, now time.Time) (changed bool, err error) {
	if follower == followee {
		return false, apperr.E(apperr.Invalid, "a user cannot follow itself")
	}
	err = s.db.InTx(ctx, func(tx *sql.Tx) error {
		for _, id := range []int64{follower, followee} {
			var one int
			if err := tx.QueryRowContext(ctx, s.q("SELECT 1 FROM feed_users WHERE user_id = ?"), id).Scan(&one); errors.Is(err, sql.ErrNoRows) {
				return apperr.E(apperr.NotFound, "no user %d", id)
			} else if err != nil {
				return err
			}
		}
		res, err := tx.ExecContext(ctx, s.q(s.insertIgnore("feed_follows", "follower_id, followee_id, created_at", 3, "follower_id, followee_id")), follower, followee, now.UnixMilli())
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil
		}
		changed = true
		return s.bump(ctx, tx, follower, followee, 1)
	})
	return changed, err
}

// unfollow undoes follow; changed is false when there was nothing to undo.
func (s *store) unfollow(ctx context.Context, follower, followee int64) (changed bool, err error) {
	err = s.db.InTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, s.q("DELETE FROM feed_follows WHERE follower_id = ? AND followee_id = ?"), follower, followee)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil
		}
		changed = true
		return s.bump(ctx, tx, follower, followee, -1)
	})
	return changed, err
}

func (s *store) bump(ctx context.Context, tx *sql.Tx, follower, followee int64, by int) error {
	if _, err := tx.ExecContext(ctx, s.q("UPDATE feed_users SET following = following + ? WHERE user_id = ?"), by, follower); err != nil {
		return err
	}
	_, err := tx.ExecContext(ctx, s.q("UPDATE feed_users SET followers = followers + ? WHERE user_id = ?"), by, followee)
	return err
}

// followers is a page of an author's followers with their modes, after
// the follower ID after (0: from the start), at most limit.
func (s *store) followers(ctx context.Context, author, after int64, limit int) ([]timeline.Follower, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT f.follower_id, u.mode FROM feed_follows f JOIN feed_users u ON u.user_id = f.follower_id
		WHERE f.followee_id = ? AND f.follower_id > ? ORDER BY f.follower_id LIMIT ?`), author, after, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []timeline.Follower
	for rows.Next() {
		var f timeline.Follower
		var mode string
		if err := rows.Scan(&f.ID, &mode); err != nil {
			return nil, err
		}
		f.Mode, _ = timeline.ParseMode(mode)
		out = append(out, f)
	}
	return out, rows.Err()
}

// followersIn is a page of an author's followers whose own mode is one of
// modes: a celebrity's post fans out only to the few readers who chose
// push for themselves, found through the mode index, not by reading every
// follower.
func (s *store) followersIn(ctx context.Context, author int64, modes []string, after int64, limit int) ([]timeline.Follower, error) {
	if len(modes) == 0 {
		return nil, nil
	}
	args := []any{author, after}
	for _, m := range modes {
		args = append(args, m)
	}
	args = append(args, limit)
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT f.follower_id, u.mode FROM feed_users u JOIN feed_follows f ON f.follower_id = u.user_id
		WHERE f.followee_id = ? AND f.follower_id > ? AND u.mode IN (?`+strings.Repeat(", ?", len(modes)-1)+`) ORDER BY f.follower_id LIMIT ?`), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []timeline.Follower
	for rows.Next() {
		var f timeline.Follower
		var mode string
		if err := rows.Scan(&f.ID, &mode); err != nil {
			return nil, err
		}
		f.Mode, _ = timeline.ParseMode(mode)
		out = append(out, f)
	}
	return out, rows.Err()
}

// followeeIDs is everyone a reader follows.
func (s *store) followeeIDs(ctx context.Context, reader int64) ([]int64, error) {
	return s.ids(ctx, "SELECT followee_id FROM feed_follows WHERE follower_id = ? ORDER BY followee_id", reader)
}

// followees is everyone a reader follows, with their follower counts.
func (s *store) followees(ctx context.Context, reader int64) ([]timeline.Followee, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT f.followee_id, u.followers FROM feed_follows f JOIN feed_users u ON u.user_id = f.followee_id
		WHERE f.follower_id = ? ORDER BY f.followee_id`), reader)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []timeline.Followee
	for rows.Next() {
		var f timeline.Followee
		if err := rows.Scan(&f.ID, &f.Followers); err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	return out, rows.Err()
}

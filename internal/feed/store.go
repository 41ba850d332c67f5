package feed

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
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

// Post is a post with its counters.
type Post struct {
	ID        int64     `json:"id,string"`
	AuthorID  int64     `json:"author_id,string"`
	Body      string    `json:"body"`
	ShareOf   int64     `json:"share_of,string,omitempty"`
	Likes     int       `json:"likes"`
	Comments  int       `json:"comments"`
	Shares    int       `json:"shares"`
	Deleted   bool      `json:"deleted,omitempty"`
	CreatedAt time.Time `json:"created_at"`
}

// createPost stores a post (a share when ShareOf is set: the shared post's
// counter moves with it).
func (s *store) createPost(ctx context.Context, p Post) error {
	return s.db.InTx(ctx, func(tx *sql.Tx) error {
		if p.ShareOf != 0 {
			res, err := tx.ExecContext(ctx, s.q("UPDATE feed_posts SET shares = shares + 1 WHERE post_id = ? AND deleted = 0"), p.ShareOf)
			if err != nil {
				return err
			}
			if n, _ := res.RowsAffected(); n == 0 {
				return apperr.E(apperr.NotFound, "no post %d to share", p.ShareOf)
			}
		}
		res, err := tx.ExecContext(ctx, s.q("UPDATE feed_users SET posts = posts + 1 WHERE user_id = ?"), p.AuthorID)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return apperr.E(apperr.NotFound, "no user %d", p.AuthorID)
		}
		_, err = tx.ExecContext(ctx, s.q("INSERT INTO feed_posts (post_id, author_id, body, share_of, created_at) VALUES (?, ?, ?, ?, ?)"),
			p.ID, p.AuthorID, p.Body, p.ShareOf, p.CreatedAt.UnixMilli())
		return err
	})
}

// deletePost marks an author's post deleted; only its author may.
func (s *store) deletePost(ctx context.Context, author, id int64) error {
	return s.db.InTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, s.q("UPDATE feed_posts SET deleted = 1 WHERE post_id = ? AND author_id = ? AND deleted = 0"), id, author)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return apperr.E(apperr.NotFound, "no post %d of user %d", id, author)
		}
		_, err = tx.ExecContext(ctx, s.q("UPDATE feed_users SET posts = posts - 1 WHERE user_id = ?"), author)
		return err
	})
}

// recentPosts is an author's live post IDs below cursor (0: the newest),
// newest first, at most limit.
func (s *store) recentPosts(ctx context.Context, author, cursor int64, limit int) ([]int64, error) {
	return s.postsOf(ctx, []int64{author}, cursor, limit)
}

// postsOf is the live post IDs of any of authors below cursor (0: the
// newest), newest first, at most limit: a timeline's truth.
func (s *store) postsOf(ctx context.Context, authors []int64, cursor int64, limit int) ([]int64, error) {
	if len(authors) == 0 {
		return nil, nil
	}
	if cursor == 0 {
		cursor = 1<<63 - 1
	}
	args := make([]any, 0, len(authors)+2)
	for _, a := range authors {
		args = append(args, a)
	}
	args = append(args, cursor, limit)
	return s.ids(ctx, "SELECT post_id FROM feed_posts WHERE author_id IN (?"+strings.Repeat(", ?", len(authors)-1)+
		") AND post_id < ? AND deleted = 0 ORDER BY post_id DESC LIMIT ?", args...)
}

// likedPosts is the posts a user liked below cursor, highest ID first.
func (s *store) likedPosts(ctx context.Context, user, cursor int64, limit int) ([]int64, error) {
	if cursor == 0 {
		cursor = 1<<63 - 1
	}
	return s.ids(ctx, "SELECT post_id FROM feed_likes WHERE user_id = ? AND post_id < ? ORDER BY post_id DESC LIMIT ?", user, cursor, limit)
}

// likedAmong is which of posts a user liked.
func (s *store) likedAmong(ctx context.Context, user int64, posts []int64) ([]int64, error) {
	if len(posts) == 0 {
		return nil, nil
	}
	args := []any{user}
	for _, p := range posts {
		args = append(args, p)
	}
	return s.ids(ctx, "SELECT post_id FROM feed_likes WHERE user_id = ? AND post_id IN (?"+strings.Repeat(", ?", len(posts)-1)+")", args...)
}

func (s *store) ids(ctx context.Context, query string, args ...any) ([]int64, error) {
	rows, err := s.db.QueryContext(ctx, s.q(query), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		out = append(out, id)
	}
	return out, rows.Err()
}

// posts reads posts by ID (deleted ones included, marked), in no order.
func (s *store) posts(ctx context.Context, ids []int64) (map[int64]Post, error) {
	out := map[int64]Post{}
	if len(ids) == 0 {
		return out, nil
	}
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	rows, err := s.db.QueryContext(ctx, s.q("SELECT post_id, author_id, body, share_of, likes, comments, shares, deleted, created_at FROM feed_posts WHERE post_id IN (?"+
		strings.Repeat(", ?", len(ids)-1)+")"), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var p Post
		var deleted int
		var at int64
		if err := rows.Scan(&p.ID, &p.AuthorID, &p.Body, &p.ShareOf, &p.Likes, &p.Comments, &p.Shares, &deleted, &at); err != nil {
			return nil, err
		}
		p.Deleted, p.CreatedAt = deleted == 1, time.UnixMilli(at)
		out[p.ID] = p
	}
	return out, rows.Err()
}

// like records a like once; changed is false for a repeat. unlike undoes it.
func (s *store) like(ctx context.Context, post, user int64, on bool, now time.Time) (changed bool, err error) {
	err = s.db.InTx(ctx, func(tx *sql.Tx) error {
		var res sql.Result
		var err error
		if on {
			var one int
			if err := tx.QueryRowContext(ctx, s.q("SELECT 1 FROM feed_posts WHERE post_id = ? AND deleted = 0"), post).Scan(&one); errors.Is(err, sql.ErrNoRows) {
				return apperr.E(apperr.NotFound, "no post %d", post)
			} else if err != nil {
				return err
			}
			res, err = tx.ExecContext(ctx, s.q(s.insertIgnore("feed_likes", "post_id, user_id, created_at", 3, "post_id, user_id")), post, user, now.UnixMilli())
		} else {
			res, err = tx.ExecContext(ctx, s.q("DELETE FROM feed_likes WHERE post_id = ? AND user_id = ?"), post, user)
		}
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil
		}
		changed = true
		by := 1
		if !on {
			by = -1
		}
		if _, err = tx.ExecContext(ctx, s.q("UPDATE feed_posts SET likes = likes + ? WHERE post_id = ?"), by, post); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, s.q("UPDATE feed_users SET liked = liked + ? WHERE user_id = ?"), by, user)
		return err
	})
	return changed, err
}

// Comment is a comment on a post.
type Comment struct {
	ID        int64     `json:"id,string"`
	PostID    int64     `json:"post_id,string"`
	AuthorID  int64     `json:"author_id,string"`
	Body      string    `json:"body"`
	CreatedAt time.Time `json:"created_at"`
}

func (s *store) comment(ctx context.Context, c Comment) error {
	return s.db.InTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, s.q("UPDATE feed_posts SET comments = comments + 1 WHERE post_id = ? AND deleted = 0"), c.PostID)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return apperr.E(apperr.NotFound, "no post %d", c.PostID)
		}
		_, err = tx.ExecContext(ctx, s.q("INSERT INTO feed_comments (comment_id, post_id, author_id, body, created_at) VALUES (?, ?, ?, ?, ?)"),
			c.ID, c.PostID, c.AuthorID, c.Body, c.CreatedAt.UnixMilli())
		if err != nil {
			return fmt.Errorf("feed: comment: %w", err)
		}
		return nil
	})
}

// comments is a post's comments, oldest first, after the comment ID after.
func (s *store) comments(ctx context.Context, post, after int64, limit int) ([]Comment, error) {
	rows, err := s.db.QueryContext(ctx, s.q("SELECT comment_id, post_id, author_id, body, created_at FROM feed_comments WHERE post_id = ? AND comment_id > ? ORDER BY comment_id LIMIT ?"), post, after, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Comment
	for rows.Next() {
		var c Comment
		var at int64
		if err := rows.Scan(&c.ID, &c.PostID, &c.AuthorID, &c.Body, &at); err != nil {
			return nil, err
		}
		c.CreatedAt = time.UnixMilli(at)
		out = append(out, c)
	}
	return out, rows.Err()
}

package feed

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/scalelab/scalelab/internal/platform/apperr"
)

// The store's posts, likes and comments; store.go holds users and the
// follow graph.

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

package albums

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"strings"

	"github.com/scalelab/scalelab/internal/platform/sqldb"
)

//go:embed migrations
var migrations embed.FS

// Album is one album's metadata.
type Album struct {
	ID        int64
	Artist    string
	Title     string
	Year      int
	ImageKey  string
	ImageSize int64
	ImageType string
	CreatedAt int64 // unix milliseconds
}

// Review is one like or dislike, identified so it is counted once.
type Review struct {
	ID      int64
	AlbumID int64
	Like    bool
}

var errNotFound = errors.New("albums: not found")

// store is the SQL side: albums, review counts, applied review IDs.
type store struct {
	db *sqldb.DB
}

func openStore(ctx context.Context, db *sqldb.DB) (*store, error) {
	if err := db.Migrate(ctx, migrations, "albums"); err != nil {
		return nil, err
	}
	return &store{db: db}, nil
}

// create inserts the album and its zero review counts in one transaction.
func (s *store) create(ctx context.Context, a *Album) error {
	return s.db.InTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, s.db.Rebind(`INSERT INTO albums
			(album_id, artist, title, release_year, image_key, image_size, image_type, created_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)`),
			a.ID, a.Artist, a.Title, a.Year, a.ImageKey, a.ImageSize, a.ImageType, a.CreatedAt); err != nil {
			return fmt.Errorf("albums: insert: %w", err)
		}
		if _, err := tx.ExecContext(ctx, s.db.Rebind(`INSERT INTO album_reviews (album_id, likes, dislikes) VALUES (?, 0, 0)`), a.ID); err != nil {
			return fmt.Errorf("albums: insert review counts: %w", err)
		}
		return nil
	})
}

// existing reports which of ids are albums.
func (s *store) existing(ctx context.Context, ids []int64) (map[int64]bool, error) {
	out := map[int64]bool{}
	if len(ids) == 0 {
		return out, nil
	}
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	q := "SELECT album_id FROM albums WHERE album_id IN (" + strings.TrimSuffix(strings.Repeat("?,", len(ids)), ",") + ")"
	rows, err := s.db.QueryContext(ctx, s.db.Rebind(q), args...)
	if err != nil {
		return nil, fmt.Errorf("albums: which albums exist: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		out[id] = true
	}
	return out, rows.Err()
}

const albumColumns = `album_id, artist, title, release_year, image_key, image_size, image_type, created_at`

func scanAlbum(row interface{ Scan(...any) error }) (*Album, error) {
	var a Album
	if err := row.Scan(&a.ID, &a.Artist, &a.Title, &a.Year, &a.ImageKey, &a.ImageSize, &a.ImageType, &a.CreatedAt); err != nil {
		return nil, err
	}
	return &a, nil
}

func (s *store) get(ctx context.Context, id int64) (*Album, error) {
	a, err := scanAlbum(s.db.QueryRowContext(ctx, s.db.Rebind(`SELECT `+albumColumns+` FROM albums WHERE album_id = ?`), id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("albums: get %d: %w", id, err)
	}
	return a, nil
}

// ListFilter selects albums; zero fields do not filter. Before is the
// cursor: only albums with a smaller ID (older) are listed.
type ListFilter struct {
	Artist string
	Year   int
	Before int64
	Limit  int
}

// list returns albums newest first. Each filter combination is one range
// of one index: (artist, release_year, album_id) or (release_year, album_id)
// or the primary key.
func (s *store) list(ctx context.Context, f ListFilter) ([]*Album, error) {
	var where []string
	var args []any
	if f.Artist != "" {
		where, args = append(where, "artist = ?"), append(args, f.Artist)
	}
	if f.Year != 0 {
		where, args = append(where, "release_year = ?"), append(args, f.Year)
	}
	if f.Before != 0 {
		where, args = append(where, "album_id < ?"), append(args, f.Before)
	}
	q := `SELECT ` + albumColumns + ` FROM albums`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, " AND ")
	}
	q += fmt.Sprintf(` ORDER BY album_id DESC LIMIT %d`, f.Limit)
	rows, err := s.db.QueryContext(ctx, s.db.Rebind(q), args...)
	if err != nil {
		return nil, fmt.Errorf("albums: list: %w", err)
	}
	defer rows.Close()
	var out []*Album
	for rows.Next() {
		a, err := scanAlbum(rows)
		if err != nil {
			return nil, fmt.Errorf("albums: list: %w", err)
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// reviews returns an album's counts.
func (s *store) reviews(ctx context.Context, id int64) (likes, dislikes int64, err error) {
	err = s.db.QueryRowContext(ctx, s.db.Rebind(`SELECT likes, dislikes FROM album_reviews WHERE album_id = ?`), id).Scan(&likes, &dislikes)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, 0, errNotFound
	}
	if err != nil {
		return 0, 0, fmt.Errorf("albums: reviews %d: %w", id, err)
	}
	return likes, dislikes, nil
}

// applyReviews counts a batch of reviews in one transaction, skipping
// those already applied (a redelivery), and returns how many were new.
// Two consumers applying the same review at once both try to record its
// ID; one fails on the primary key, its transaction rolls back, and its
// retry finds the review applied.
func (s *store) applyReviews(ctx context.Context, batch []Review) (int, error) {
	if len(batch) == 0 {
		return 0, nil
	}
	applied := 0
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		applied = 0
		seen, err := s.appliedAmong(ctx, tx, batch)
		if err != nil {
			return err
		}
		type counts struct{ likes, dislikes int64 }
		perAlbum := map[int64]*counts{}
		var fresh []int64
		for _, r := range batch {
			if seen[r.ID] {
				continue
			}
			seen[r.ID] = true // a review twice in one batch counts once
			fresh = append(fresh, r.ID)
			c := perAlbum[r.AlbumID]
			if c == nil {
				c = &counts{}
				perAlbum[r.AlbumID] = c
			}
			if r.Like {
				c.likes++
			} else {
				c.dislikes++
			}
		}
		if len(fresh) == 0 {
			return nil
		}
		q := `INSERT INTO album_reviews_applied (review_id) VALUES ` + strings.TrimSuffix(strings.Repeat("(?),", len(fresh)), ",")
		args := make([]any, len(fresh))
		for i, id := range fresh {
			args[i] = id
		}
		if _, err := tx.ExecContext(ctx, s.db.Rebind(q), args...); err != nil {
			return fmt.Errorf("albums: record applied reviews: %w", err)
		}
		for album, c := range perAlbum {
			if _, err := tx.ExecContext(ctx, s.db.Rebind(`UPDATE album_reviews SET likes = likes + ?, dislikes = dislikes + ? WHERE album_id = ?`),
				c.likes, c.dislikes, album); err != nil {
				return fmt.Errorf("albums: count reviews: %w", err)
			}
		}
		applied = len(fresh)
		return nil
	})
	return applied, err
}

func (s *store) appliedAmong(ctx context.Context, tx *sql.Tx, batch []Review) (map[int64]bool, error) {
	args := make([]any, len(batch))
	for i, r := range batch {
		args[i] = r.ID
	}
	q := `SELECT review_id FROM album_reviews_applied WHERE review_id IN (` + strings.TrimSuffix(strings.Repeat("?,", len(batch)), ",") + `)`
	rows, err := tx.QueryContext(ctx, s.db.Rebind(q), args...)
	if err != nil {
		return nil, fmt.Errorf("albums: find applied reviews: %w", err)
	}
	defer rows.Close()
	seen := make(map[int64]bool, len(batch))
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		seen[id] = true
	}
	return seen, rows.Err()
}

// pruneApplied forgets the applied review IDs below before, in chunks of
// at most chunk rows so that no single statement holds its locks long (a
// portable way to say DELETE … LIMIT: find the chunk's upper ID first). It
// returns how many IDs it deleted.
func (s *store) pruneApplied(ctx context.Context, before int64, chunk int) (int64, error) {
	var deleted int64
	for {
		bound := before
		var nth int64
		err := s.db.QueryRowContext(ctx, s.db.Rebind(fmt.Sprintf(
			`SELECT review_id FROM album_reviews_applied WHERE review_id < ? ORDER BY review_id LIMIT 1 OFFSET %d`, chunk-1)),
			before).Scan(&nth)
		more := err == nil
		switch {
		case more:
			bound = nth + 1
		case !errors.Is(err, sql.ErrNoRows):
			return deleted, fmt.Errorf("albums: prune applied reviews: %w", err)
		}
		res, err := s.db.ExecContext(ctx, s.db.Rebind(`DELETE FROM album_reviews_applied WHERE review_id < ?`), bound)
		if err != nil {
			return deleted, fmt.Errorf("albums: prune applied reviews: %w", err)
		}
		n, _ := res.RowsAffected()
		deleted += n
		if !more {
			return deleted, nil
		}
	}
}

package feed

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/scalelab/scalelab/internal/feed/timeline"
	"github.com/scalelab/scalelab/internal/platform/apperr"
	"github.com/scalelab/scalelab/internal/platform/sqldb"
	"github.com/scalelab/scalelab/internal/platform/testsvc"
)

// The store's contract on SQLite, PostgreSQL and MariaDB: follows and
// likes count once however often repeated and un-count once; posts list
// newest first below a cursor, without deleted ones; a share moves the
// shared post's counter; the graph reads both ways with modes and counts.
func TestStoreOnEveryEngine(t *testing.T) {
	for _, eng := range testsvc.SQLEngines {
		t.Run(eng.Name, func(t *testing.T) {
			ctx := context.Background()
			db, err := sqldb.Open(ctx, eng.URL(t), t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			st, err := openStore(ctx, db)
			if err != nil {
				t.Fatal(err)
			}
			now := time.UnixMilli(time.Now().UnixMilli())
			base := now.UnixNano() / 1000 * 1000
			ann, bob, cat := base+1, base+2, base+3
			for i, id := range []int64{ann, bob, cat} {
				mode := ""
				if i == 2 {
					mode = "pull"
				}
				if err := st.createUser(ctx, User{ID: id, Handle: []string{"ann", "bob", "cat"}[i] + string(rune('a'+base%26)), Name: "x", Mode: mode, CreatedAt: now}, fmt.Sprint("h", id)); err != nil {
					t.Fatal(err)
				}
			}
			u, _ := st.user(ctx, ann)
			if err := st.createUser(ctx, User{ID: base + 9, Handle: u.Handle, Name: "dup", CreatedAt: now}, ""); apperr.CodeOf(err) != apperr.Conflict {
				t.Fatalf("a taken handle: %v", err)
			}
			for range 2 {
				for _, f := range []int64{bob, cat} {
					if _, err := st.follow(ctx, f, ann, now); err != nil {
						t.Fatal(err)
					}
				}
			}
			if _, err := st.follow(ctx, ann, ann, now); apperr.CodeOf(err) != apperr.Invalid {
				t.Fatalf("self-follow: %v", err)
			}
			if _, err := st.follow(ctx, ann, base+99, now); apperr.CodeOf(err) != apperr.NotFound {
				t.Fatalf("following no one: %v", err)
			}
			if u, _ := st.user(ctx, ann); u.Followers != 2 {
				t.Fatalf("ann's followers %d after repeated follows", u.Followers)
			}
			fs, err := st.followers(ctx, ann, 0, 10)
			if err != nil || len(fs) != 2 || fs[0] != (timeline.Follower{ID: bob, Mode: timeline.Inherit}) || fs[1] != (timeline.Follower{ID: cat, Mode: timeline.Pull}) {
				t.Fatalf("followers %+v %v", fs, err)
			}
			if page, _ := st.followers(ctx, ann, bob, 10); len(page) != 1 || page[0].ID != cat {
				t.Fatalf("followers after bob %+v", page)
			}
			if fe, err := st.followees(ctx, bob); err != nil || len(fe) != 1 || fe[0] != (timeline.Followee{ID: ann, Followers: 2}) {
				t.Fatalf("followees %+v %v", fe, err)
			}
			if ch, _ := st.unfollow(ctx, cat, ann); !ch {
				t.Fatal("unfollow changed nothing")
			}
			if ch, _ := st.unfollow(ctx, cat, ann); ch {
				t.Fatal("a second unfollow changed something")
			}
			if u, _ := st.user(ctx, ann); u.Followers != 1 {
				t.Fatalf("ann's followers %d", u.Followers)
			}
			for i := int64(1); i <= 5; i++ {
				if err := st.createPost(ctx, Post{ID: base + 100 + i, AuthorID: ann, Body: "post", CreatedAt: now}); err != nil {
					t.Fatal(err)
				}
			}
			if err := st.deletePost(ctx, bob, base+103); apperr.CodeOf(err) != apperr.NotFound {
				t.Fatalf("bob deleted ann's post: %v", err)
			}
			if err := st.deletePost(ctx, ann, base+103); err != nil {
				t.Fatal(err)
			}
			ids, err := st.recentPosts(ctx, ann, base+105, 10)
			if want := []int64{base + 104, base + 102, base + 101}; err != nil || !slices.Equal(ids, want) {
				t.Fatalf("recent posts %v, want %v (%v)", ids, want, err)
			}
			for range 2 {
				if _, err := st.like(ctx, base+101, bob, true, now); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := st.like(ctx, base+103, bob, true, now); apperr.CodeOf(err) != apperr.NotFound {
				t.Fatalf("liking a deleted post: %v", err)
			}
			if err := st.createPost(ctx, Post{ID: base + 200, AuthorID: bob, Body: "", ShareOf: base + 101, CreatedAt: now}); err != nil {
				t.Fatal(err)
			}
			if err := st.comment(ctx, Comment{ID: base + 300, PostID: base + 101, AuthorID: bob, Body: "nice", CreatedAt: now}); err != nil {
				t.Fatal(err)
			}
			ps, err := st.posts(ctx, []int64{base + 101, base + 103})
			if err != nil || ps[base+101].Likes != 1 || ps[base+101].Shares != 1 || ps[base+101].Comments != 1 || !ps[base+103].Deleted {
				t.Fatalf("posts %+v %v", ps, err)
			}
			if ch, _ := st.like(ctx, base+101, bob, false, now); !ch {
				t.Fatal("unlike changed nothing")
			}
			if cs, err := st.comments(ctx, base+101, 0, 10); err != nil || len(cs) != 1 || cs[0].Body != "nice" {
				t.Fatalf("comments %+v %v", cs, err)
			}
			if u, _ := st.user(ctx, ann); u.Posts != 4 {
				t.Fatalf("ann's posts %d", u.Posts)
			}
		})
	}
}

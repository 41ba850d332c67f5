package feed

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/scalelab/scalelab/internal/platform/apperr"
	"github.com/scalelab/scalelab/internal/platform/httpx"
	"github.com/scalelab/scalelab/internal/platform/ratelimit"
)

// Handler implements host.System: the REST API, the live stream and the
// web app.
func (s *Service) Handler() http.Handler {
	rt := httpx.NewRoutes()
	rt.Handle("POST /api/v1/users", "sign up: JSON {handle, name?, mode?}; answers the user and its token, shown once",
		ratelimit.Middleware(s.signups, ratelimit.ClientIP, http.HandlerFunc(s.handleSignup)))
	rt.HandleFunc("GET /api/v1/users", "the newest users, ?limit=N (≤ 100)", s.handleNewest)
	rt.HandleFunc("GET /api/v1/me", "the user of the token", s.as(s.handleMe))
	rt.HandleFunc("GET /api/v1/users/{id}", "a user with its counters", s.handleUser)
	rt.HandleFunc("GET /api/v1/handles/{handle}", "a user by handle", s.handleByHandle)
	rt.HandleFunc("PATCH /api/v1/users/{id}", "JSON {mode}: one's own timeline mode (push, pull, hybrid, \"\")", s.self(s.handleSetMode))
	rt.HandleFunc("GET /api/v1/users/{id}/following", "whom the user follows", s.handleFollowing)
	rt.HandleFunc("PUT /api/v1/users/{id}/following/{target}", "follow", s.self(s.limited(s.handleFollow)))
	rt.HandleFunc("DELETE /api/v1/users/{id}/following/{target}", "unfollow", s.self(s.limited(s.handleUnfollow)))
	rt.HandleFunc("GET /api/v1/users/{id}/timeline", "one's home timeline, ?cursor=&limit= (≤ 100)", s.self(s.handleTimeline))
	rt.HandleFunc("GET /api/v1/users/{id}/posts", "a user's posts, ?cursor=&limit=", s.handleUserPosts)
	rt.HandleFunc("GET /api/v1/users/{id}/events", "one's live stream of new posts (server-sent events)", s.self(s.handleEvents))
	rt.HandleFunc("POST /api/v1/posts", "JSON {body (≤ 500 characters), share_of?}", s.as(s.limited(s.handlePost)))
	rt.HandleFunc("GET /api/v1/posts/{id}", "a post with its counters", s.handleGetPost)
	rt.HandleFunc("DELETE /api/v1/posts/{id}", "delete one's post", s.as(s.limited(s.handleDeletePost)))
	rt.HandleFunc("PUT /api/v1/posts/{id}/like", "like", s.as(s.limited(s.handleLike(true))))
	rt.HandleFunc("DELETE /api/v1/posts/{id}/like", "unlike", s.as(s.limited(s.handleLike(false))))
	rt.HandleFunc("POST /api/v1/posts/{id}/comments", "JSON {body}", s.as(s.limited(s.handleComment)))
	rt.HandleFunc("GET /api/v1/posts/{id}/comments", "?after=&limit=", s.handleComments)
	rt.HandleFunc("GET /api/v1/stats", "fan-out and cache figures", s.handleStats)
	rt.Handle("POST /api/v1/graph", "the admin token; JSON {users, celebrity_followers, follows, zipf, seed}: generate a social graph into an empty feed (benchmarks, the lesson); answers the users' IDs", s.admin.RequireFunc(s.handleGraph))
	rt.Handle("POST /api/v1/warm", "the admin token: cache every user's (empty) timeline in a feed without posts, as if everyone had read lately", s.admin.RequireFunc(s.handleWarm))
	rt.Handle("POST /api/v1/celebrities", "the admin token; JSON {followers ≤ 200000}: make an account with that many new followers, whose every timeline is cached, and post from it", s.admin.RequireFunc(s.handleCelebrity))
	rt.Handle("GET /app/", "the web app", webApp())
	rt.Index("feed", description, map[string]any{"app": "/app/", "mode": s.cfg.Mode.String(), "celebrity": s.cfg.Celebrity,
		"auth": "Authorization: Bearer <user token>; or the admin token with X-Feed-User: <user id>"})
	return rt.Mux
}

type actorKey struct{}

// actor is the user a request acts as: the user whose token it carries,
// or, with the admin token, the user named by X-Feed-User (load tests and
// operators act as anyone).
func (s *Service) actor(r *http.Request) (id int64, admin bool, err error) {
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || token == "" {
		return 0, false, apperr.E(apperr.Unauthorized, "sign in: send Authorization: Bearer <your token>")
	}
	if s.admin.Matches(token) {
		id, err := httpx.ParseID(r.Header.Get("X-Feed-User"))
		if err != nil {
			return 0, true, apperr.E(apperr.Invalid, "X-Feed-User: %v", err)
		}
		return id, true, nil
	}
	if len(token) > 64 {
		return 0, false, apperr.E(apperr.Unauthorized, "unknown user token")
	}
	h := hashToken(token)
	var cached int64
	if getJSON(r.Context(), s.caches.kv, "feed:t:"+h, &cached) && cached > 0 {
		return cached, false, nil
	}
	id, err = s.store.userByToken(r.Context(), h)
	if err != nil {
		return 0, false, err
	}
	s.caches.setJSON(r.Context(), "feed:t:"+h, id)
	return id, false, nil
}

type actorInfo struct {
	id    int64
	admin bool
}

// as serves h to signed-in requests.
func (s *Service) as(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, admin, err := s.actor(r)
		if err != nil {
			httpx.WriteError(w, r, err)
			return
		}
		h(w, r.WithContext(context.WithValue(r.Context(), actorKey{}, actorInfo{id, admin})))
	}
}

// self serves h to requests signed in as the user in the path.
func (s *Service) self(h http.HandlerFunc) http.HandlerFunc {
	return s.as(func(w http.ResponseWriter, r *http.Request) {
		id, ok := httpx.PathID(w, r, "user")
		if !ok {
			return
		}
		if actorOf(r).id != id {
			httpx.WriteError(w, r, apperr.E(apperr.Forbidden, "signed in as user %d, not %d", actorOf(r).id, id))
			return
		}
		h(w, r)
	})
}

func actorOf(r *http.Request) actorInfo {
	a, _ := r.Context().Value(actorKey{}).(actorInfo)
	return a
}

// limited applies each user's write limit (the admin token is not
// limited: it drives load tests).
func (s *Service) limited(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		a := actorOf(r)
		if a.admin {
			h(w, r)
			return
		}
		ratelimit.Middleware(s.writes, func(*http.Request) string { return strconv.FormatInt(a.id, 10) }, h).ServeHTTP(w, r)
	}
}

func idParam(q url.Values, name string) (int64, error) {
	v := q.Get(name)
	if v == "" {
		return 0, nil
	}
	id, err := httpx.ParseID(v)
	if err != nil {
		return 0, apperr.E(apperr.Invalid, "%s: %v", name, err)
	}
	return id, nil
}

func limitParam(q url.Values, def, most int) (int, error) {
	v := q.Get("limit")
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > most {
		return 0, apperr.E(apperr.Invalid, "limit: a number from 1 to %d", most)
	}
	return n, nil
}

func (s *Service) handleSignup(w http.ResponseWriter, r *http.Request) {
	var n NewUser
	if err := httpx.DecodeJSON(r, &n); err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	u, token, err := s.CreateUser(r.Context(), n)
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusCreated, map[string]any{"user": u, "token": token})
}

func (s *Service) handleNewest(w http.ResponseWriter, r *http.Request) {
	limit, err := limitParam(r.URL.Query(), 20, 100)
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	ids, err := s.store.newestUsers(r.Context(), limit)
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	s.writeUsers(w, r, ids)
}

func (s *Service) writeUsers(w http.ResponseWriter, r *http.Request, ids []int64) {
	us, err := s.users(r.Context(), ids)
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	out := make([]User, 0, len(ids))
	for _, id := range ids {
		if u, ok := us[id]; ok {
			out = append(out, u)
		}
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"users": out})
}

func (s *Service) handleMe(w http.ResponseWriter, r *http.Request) {
	u, err := s.User(r.Context(), actorOf(r).id)
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, u)
}

func (s *Service) handleUser(w http.ResponseWriter, r *http.Request) {
	id, ok := httpx.PathID(w, r, "user")
	if !ok {
		return
	}
	u, err := s.User(r.Context(), id)
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, u)
}

func (s *Service) handleByHandle(w http.ResponseWriter, r *http.Request) {
	h := strings.TrimPrefix(r.PathValue("handle"), "@")
	if !handlePattern.MatchString(h) {
		httpx.WriteError(w, r, apperr.E(apperr.Invalid, "handle: 2 to 32 of a-z, 0-9 and _"))
		return
	}
	id, err := s.store.userByHandle(r.Context(), h)
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	u, err := s.User(r.Context(), id)
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, u)
}

func (s *Service) handleSetMode(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Mode *string `json:"mode"`
	}
	if err := httpx.DecodeJSON(r, &req); err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	if req.Mode == nil {
		httpx.WriteError(w, r, apperr.E(apperr.Invalid, "mode: missing"))
		return
	}
	id := actorOf(r).id
	if err := s.SetMode(r.Context(), id, *req.Mode); err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	s.handleMe(w, r)
}

func (s *Service) handleFollowing(w http.ResponseWriter, r *http.Request) {
	id, ok := httpx.PathID(w, r, "user")
	if !ok {
		return
	}
	if _, err := s.User(r.Context(), id); err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	ids, err := s.followeesOf(r.Context(), id)
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	if len(ids) > 1000 {
		ids = ids[:1000]
	}
	s.writeUsers(w, r, ids)
}

func (s *Service) target(w http.ResponseWriter, r *http.Request) (int64, bool) {
	id, err := httpx.ParseID(r.PathValue("target"))
	if err != nil {
		httpx.WriteError(w, r, apperr.E(apperr.Invalid, "followee ID: %v", err))
		return 0, false
	}
	return id, true
}

func (s *Service) handleFollow(w http.ResponseWriter, r *http.Request) {
	if t, ok := s.target(w, r); ok {
		s.answer(w, r, s.Follow(r.Context(), actorOf(r).id, t))
	}
}

func (s *Service) handleUnfollow(w http.ResponseWriter, r *http.Request) {
	if t, ok := s.target(w, r); ok {
		s.answer(w, r, s.Unfollow(r.Context(), actorOf(r).id, t))
	}
}

func (s *Service) answer(w http.ResponseWriter, r *http.Request, err error) {
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Service) handleTimeline(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query() // once: parsing it is a tenth of a read's garbage
	cursor, err := idParam(q, "cursor")
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	limit, err := limitParam(q, 20, MaxPage)
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	page, err := s.Timeline(r.Context(), actorOf(r).id, cursor, limit)
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, page)
}

func (s *Service) handleUserPosts(w http.ResponseWriter, r *http.Request) {
	id, ok := httpx.PathID(w, r, "user")
	if !ok {
		return
	}
	cursor, err := idParam(r.URL.Query(), "cursor")
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	limit, err := limitParam(r.URL.Query(), 20, MaxPage)
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	u, err := s.User(r.Context(), id)
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	ids, _, err := coveredRange(r.Context(), s.caches.authors, idKey(id), s.cfg.AuthorCap, cursor, limit, s.postsOfTruth([]int64{id}))
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	items, err := s.items(r.Context(), User{}, ids, []int64{id})
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	next := ""
	if len(ids) == limit {
		next = strconv.FormatInt(ids[len(ids)-1], 10)
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"user": u, "items": items, "next": next})
}

func (s *Service) handleEvents(w http.ResponseWriter, r *http.Request) {
	s.live.serve(w, r, actorOf(r).id)
}

func (s *Service) handlePost(w http.ResponseWriter, r *http.Request) {
	var n NewPost
	if err := httpx.DecodeJSON(r, &n); err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	p, err := s.CreatePost(r.Context(), actorOf(r).id, n)
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusCreated, p)
}

func (s *Service) handleGetPost(w http.ResponseWriter, r *http.Request) {
	id, ok := httpx.PathID(w, r, "post")
	if !ok {
		return
	}
	p, err := s.GetPost(r.Context(), id)
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, p)
}

func (s *Service) handleDeletePost(w http.ResponseWriter, r *http.Request) {
	if id, ok := httpx.PathID(w, r, "post"); ok {
		s.answer(w, r, s.DeletePost(r.Context(), actorOf(r).id, id))
	}
}

func (s *Service) handleLike(on bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, ok := httpx.PathID(w, r, "post")
		if !ok {
			return
		}
		if err := s.Like(r.Context(), actorOf(r).id, id, on); err != nil {
			httpx.WriteError(w, r, err)
			return
		}
		p, err := s.GetPost(r.Context(), id)
		if err != nil && !on {
			err = nil // unliking a post deleted since is done
		}
		if err != nil {
			httpx.WriteError(w, r, err)
			return
		}
		httpx.WriteJSON(w, http.StatusOK, map[string]any{"post": id, "liked": on, "likes": p.Likes})
	}
}

func (s *Service) handleComment(w http.ResponseWriter, r *http.Request) {
	id, ok := httpx.PathID(w, r, "post")
	if !ok {
		return
	}
	var req struct {
		Body string `json:"body"`
	}
	if err := httpx.DecodeJSON(r, &req); err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	c, err := s.CreateComment(r.Context(), actorOf(r).id, id, req.Body)
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusCreated, c)
}

func (s *Service) handleComments(w http.ResponseWriter, r *http.Request) {
	id, ok := httpx.PathID(w, r, "post")
	if !ok {
		return
	}
	after, err := idParam(r.URL.Query(), "after")
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	limit, err := limitParam(r.URL.Query(), 50, 200)
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	cs, err := s.store.comments(r.Context(), id, after, limit)
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	type withAuthor struct {
		Comment
		Author UserBrief `json:"author"`
	}
	authors := make([]int64, len(cs))
	for i, c := range cs {
		authors[i] = c.AuthorID
	}
	us, err := s.users(r.Context(), authors)
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	out := make([]withAuthor, len(cs))
	for i, c := range cs {
		out[i] = withAuthor{c, brief(us[c.AuthorID])}
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"comments": out})
}

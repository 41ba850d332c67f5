package shortener

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/scalelab/scalelab/internal/platform/apperr"
	"github.com/scalelab/scalelab/internal/platform/httpx"
	"github.com/scalelab/scalelab/internal/platform/ratelimit"
)

// Handler implements host.System: the whole HTTP surface of the shortener.
func (s *Service) Handler() http.Handler {
	rt := httpx.NewRoutes()
	rt.Handle("POST /api/v1/links", "JSON {url, alias?, expiresAt?}", ratelimit.Middleware(s.limiter, ratelimit.ClientIP, http.HandlerFunc(s.handleCreate)))
	rt.Handle("GET /api/v1/links", "the most clicked links, ?limit=N (≤ 100); the admin token", s.admin.RequireFunc(s.handleTop))
	rt.HandleFunc("GET /api/v1/links/{code}", "", s.handleGet)
	rt.HandleFunc("GET /api/v1/links/{code}/stats", "", s.handleStats)
	rt.HandleFunc("DELETE /api/v1/links/{code}", "the link's delete token or the admin token", s.handleDelete)
	rt.HandleFunc("GET /{code}", "the redirect", s.handleRedirect)
	rt.Index("shortener", description, nil)
	return rt.Mux
}

// linkJSON is a link as the API shows it.
type linkJSON struct {
	Code        string     `json:"code"`
	ShortURL    string     `json:"short_url"`
	URL         string     `json:"url"`
	CreatedAt   time.Time  `json:"created_at"`
	ExpiresAt   *time.Time `json:"expires_at"`
	Expired     bool       `json:"expired"`
	Clicks      *int64     `json:"clicks,omitempty"`
	DeleteToken string     `json:"delete_token,omitempty"`
}

func (s *Service) linkJSON(l *Link) linkJSON {
	return linkJSON{Code: l.Code, ShortURL: s.ShortURL(l.Code), URL: l.URL, CreatedAt: l.CreatedAt,
		ExpiresAt: l.ExpiresAt, Expired: l.Expired(s.cfg.Now())}
}

func (s *Service) handleCreate(w http.ResponseWriter, r *http.Request) {
	var req CreateRequest
	if err := httpx.DecodeJSON(r, &req); err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	c, err := s.Create(r.Context(), req)
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	out := s.linkJSON(c.Link)
	out.DeleteToken = c.DeleteToken
	w.Header().Set("Location", out.ShortURL)
	httpx.WriteJSON(w, http.StatusCreated, out)
}

func (s *Service) handleRedirect(w http.ResponseWriter, r *http.Request) {
	code := r.PathValue("code")
	l, err := s.Resolve(r.Context(), code)
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	s.clicks.Record(ClickEvent{
		Code:     l.Code,
		At:       s.cfg.Now().UnixMilli(),
		Referrer: ReferrerHost(r.Header.Get("Referer")),
		Agent:    AgentFamily(r.Header.Get("User-Agent")),
	})
	status := http.StatusFound
	if s.cfg.Permanent {
		status = http.StatusMovedPermanently
	}
	// Set the header directly rather than http.Redirect: no HTML body to
	// build, and the URL is passed through exactly as it was stored.
	h := w.Header()
	h["Location"] = []string{l.URL}
	h["Cache-Control"] = []string{"private, max-age=0"}
	w.WriteHeader(status)
}

func (s *Service) handleGet(w http.ResponseWriter, r *http.Request) {
	l, err := s.Get(r.Context(), r.PathValue("code"))
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	clicks, err := s.store.clicks(r.Context(), l.Code)
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	out := s.linkJSON(l)
	out.Clicks = &clicks
	httpx.WriteJSON(w, http.StatusOK, out)
}

func (s *Service) handleStats(w http.ResponseWriter, r *http.Request) {
	st, err := s.Stats(r.Context(), r.PathValue("code"))
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, st)
}

// handleTop lists the most clicked links. Only the operator may: codes are
// unguessable on purpose (a link is shared with whom its creator chooses),
// and a public list would publish them.
func (s *Service) handleTop(w http.ResponseWriter, r *http.Request) {
	limit := 10
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 100 {
			httpx.WriteError(w, r, apperr.E(apperr.Invalid, "limit: a number from 1 to 100"))
			return
		}
		limit = n
	}
	top, err := s.store.top(r.Context(), limit)
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	out := make([]linkJSON, len(top))
	for i, t := range top {
		out[i] = s.linkJSON(&t.Link)
		out[i].Clicks = &top[i].Clicks
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"links": out})
}

func (s *Service) handleDelete(w http.ResponseWriter, r *http.Request) {
	token := r.Header.Get("X-Delete-Token")
	if auth := r.Header.Get("Authorization"); token == "" && strings.HasPrefix(auth, "Bearer ") {
		token = strings.TrimSpace(strings.TrimPrefix(auth, "Bearer "))
	}
	if err := s.Delete(r.Context(), r.PathValue("code"), token); err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

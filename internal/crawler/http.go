package crawler

import (
	"net/http"
	"strconv"

	"github.com/scalelab/scalelab/internal/platform/apperr"
	"github.com/scalelab/scalelab/internal/platform/httpx"
)

// Handler implements host.System: every route of the crawler. Starting,
// pausing and stopping crawls needs the admin token (a crawl makes this
// process fetch what it is told); reading them does not.
func (s *System) Handler() http.Handler {
	rt := httpx.NewRoutes()
	rt.Handle("POST /api/v1/crawls", `{"seeds","allow_domains","deny_domains","max_depth","max_pages","max_per_host","max_per_pattern","delay_ms","fetchers"} (admin)`, s.admin.RequireFunc(s.handleCreate))
	rt.HandleFunc("GET /api/v1/crawls", "the newest crawls", s.handleList)
	rt.HandleFunc("GET /api/v1/crawls/{id}", "a crawl's state, counts and live stats (?hosts=1: queue per host)", s.handleView)
	rt.HandleFunc("GET /api/v1/instances", "the crawler instances sharing the store, with the shards each holds", s.handleInstances)
	rt.HandleFunc("GET /api/v1/crawls/{id}/pages", "stored pages whose URL or title contains ?q= (limit ≤ 500)", s.handlePages)
	for _, op := range []string{"pause", "resume", "stop"} {
		rt.Handle("POST /api/v1/crawls/{id}/"+op, op+" the crawl (admin)", s.admin.RequireFunc(func(w http.ResponseWriter, r *http.Request) {
			id, ok := httpx.PathID(w, r, "crawl")
			if !ok {
				return
			}
			var err error
			switch op {
			case "pause":
				err = s.eng.Pause(r.Context(), id)
			case "resume":
				err = s.eng.Resume(r.Context(), id)
			default:
				err = s.eng.Stop(r.Context(), id)
			}
			if err != nil {
				httpx.WriteError(w, r, err)
				return
			}
			s.writeView(w, r, id, http.StatusOK)
		}))
	}
	rt.Index("crawler", description, nil)
	return rt.Mux
}

func (s *System) handleCreate(w http.ResponseWriter, r *http.Request) {
	var cfg CrawlConfig
	if err := httpx.DecodeJSON(r, &cfg); err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	id, err := s.eng.Create(r.Context(), cfg)
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	s.writeView(w, r, id, http.StatusCreated)
}

func (s *System) writeView(w http.ResponseWriter, r *http.Request, id int64, status int) {
	v, err := s.eng.View(r.Context(), id, r.URL.Query().Get("hosts") == "1")
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	httpx.WriteJSON(w, status, v)
}

func (s *System) handleView(w http.ResponseWriter, r *http.Request) {
	id, ok := httpx.PathID(w, r, "crawl")
	if !ok {
		return
	}
	s.writeView(w, r, id, http.StatusOK)
}

func (s *System) handleList(w http.ResponseWriter, r *http.Request) {
	rows, err := s.eng.store.crawls(r.Context(), "ORDER BY created_at DESC LIMIT 50")
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	out := []*CrawlView{}
	for _, row := range rows {
		if v, err := s.eng.View(r.Context(), row.ID, false); err == nil {
			out = append(out, v)
		}
	}
	httpx.WriteJSON(w, http.StatusOK, out)
}

func (s *System) handleInstances(w http.ResponseWriter, r *http.Request) {
	ms, err := s.eng.Members(r.Context())
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	if ms == nil {
		ms = []Member{}
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"instance": s.eng.Instance(), "shards": numShards, "members": ms})
}

func (s *System) handlePages(w http.ResponseWriter, r *http.Request) {
	id, ok := httpx.PathID(w, r, "crawl")
	if !ok {
		return
	}
	limit := 50
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 500 {
			httpx.WriteError(w, r, apperr.E(apperr.Invalid, "limit: 1 to 500"))
			return
		}
		limit = n
	}
	if _, err := s.eng.store.crawl(r.Context(), id); err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	pages, err := s.eng.Search(r.Context(), id, r.URL.Query().Get("q"), limit)
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	if pages == nil {
		pages = []Page{}
	}
	httpx.WriteJSON(w, http.StatusOK, pages)
}

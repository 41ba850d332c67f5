package feed

import (
	"net/http"
	"strconv"
	"time"

	"github.com/scalelab/scalelab/internal/platform/apperr"
	"github.com/scalelab/scalelab/internal/platform/httpx"
)

// The figures, and the admin operations of the lesson, the bench and the
// console: generate a graph, cache every empty timeline, make a celebrity.

// Stats is the feed's figures for the console and the lesson.
type Stats struct {
	Mode           string              `json:"mode"`
	Celebrity      int                 `json:"celebrity"`
	Posts          float64             `json:"posts"`
	Entries        float64             `json:"timeline_entries"`
	Amplification  float64             `json:"write_amplification"`
	Rebuilds       float64             `json:"timeline_rebuilds"`
	FanoutInFlight int                 `json:"fanout_in_flight"`
	Listeners      int                 `json:"live_listeners"`
	Recent         []Visibility        `json:"recent_fanouts"`
	Largest        []Visibility        `json:"largest_fanouts"`
	Footprint      map[string][2]int64 `json:"cache_sets,omitempty"`
}

// Stats reads the figures.
func (s *Service) Stats() Stats {
	st := Stats{Mode: s.cfg.Mode.String(), Celebrity: s.cfg.Celebrity,
		Posts: counterValue(s.metrics.posts), Entries: counterValue(s.metrics.entries), Rebuilds: counterValue(s.metrics.rebuilds),
		FanoutInFlight: s.fanout.inFlight(), Listeners: s.live.listeners(), Recent: s.metrics.recentVisibility(), Largest: s.metrics.largestFanouts(),
		Footprint: s.caches.footprint()}
	if st.Posts > 0 {
		st.Amplification = st.Entries / st.Posts
	}
	return st
}

func (s *Service) handleGraph(w http.ResponseWriter, r *http.Request) {
	var g GraphSpec
	var req struct {
		Users              int     `json:"users"`
		CelebrityFollowers int     `json:"celebrity_followers"`
		Follows            int     `json:"follows"`
		Zipf               float64 `json:"zipf"`
		Seed               uint64  `json:"seed"`
	}
	if err := httpx.DecodeJSON(r, &req); err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	g = GraphSpec{Users: req.Users, CelebrityFollowers: req.CelebrityFollowers, MeanFollows: req.Follows, Zipf: req.Zipf, Seed: req.Seed}
	if g.Users > 1_000_000 || g.validate() != nil {
		httpx.WriteError(w, r, apperr.E(apperr.Invalid, "want 2 ≤ users ≤ 1000000, 0 ≤ celebrity_followers < users, 0 ≤ follows < users, zipf > 1"))
		return
	}
	// A large graph takes minutes to store: past the server's write timeout.
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(30 * time.Minute))
	ids, err := s.GenerateGraph(r.Context(), g)
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusCreated, map[string]any{"ids": idStrings(ids)})
}

func idStrings(ids []int64) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = strconv.FormatInt(id, 10)
	}
	return out
}

func (s *Service) handleWarm(w http.ResponseWriter, r *http.Request) {
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(10 * time.Minute))
	n, err := s.WarmEmpty(r.Context())
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"timelines": n})
}

func (s *Service) handleCelebrity(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Followers int `json:"followers"`
	}
	if err := httpx.DecodeJSON(r, &req); err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	if req.Followers < 1 || req.Followers > 200_000 {
		httpx.WriteError(w, r, apperr.E(apperr.Invalid, "followers: 1 to 200000"))
		return
	}
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(10 * time.Minute))
	c, err := s.MakeCelebrity(r.Context(), req.Followers)
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusCreated, c)
}

func (s *Service) handleStats(w http.ResponseWriter, r *http.Request) {
	httpx.WriteJSON(w, http.StatusOK, s.Stats())
}

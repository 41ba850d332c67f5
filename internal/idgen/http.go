package idgen

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/scalelab/scalelab/internal/platform/apperr"
	"github.com/scalelab/scalelab/internal/platform/httpx"
	"github.com/scalelab/scalelab/internal/platform/snowflake"
)

// MaxCount is the largest batch one request may ask for.
const MaxCount = 10_000

func (s *Service) routes() *http.ServeMux {
	rt := httpx.NewRoutes()
	rt.HandleFunc("GET /api/v1/ids", "?count=N", s.handleIDs)
	rt.HandleFunc("GET /api/v1/ids/{id}", "what a Snowflake ID says", s.handleDecode)
	rt.Index("idgen", description, nil)
	return rt.Mux
}

type idsResponse struct {
	IDs []string `json:"ids"`
}

func (s *Service) handleIDs(w http.ResponseWriter, r *http.Request) {
	count := 1
	if v := r.URL.Query().Get("count"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxCount {
			httpx.WriteError(w, r, apperr.E(apperr.Invalid, "count must be an integer from 1 to %d", MaxCount))
			return
		}
		count = n
	}
	ids := make([]snowflake.ID, count)
	if _, err := s.gen.NextN(ids); err != nil {
		writeGenError(w, r, err)
		return
	}
	out := idsResponse{IDs: make([]string, count)}
	for i, id := range ids {
		out.IDs[i] = id.String()
	}
	httpx.WriteJSON(w, http.StatusOK, out)
}

func writeGenError(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, snowflake.ErrClockBackwards):
		w.Header().Set("Retry-After", "1")
		httpx.WriteError(w, r, apperr.E(apperr.Unavailable, "clock moved backwards; refusing to risk a duplicate id"))
	case errors.Is(err, snowflake.ErrLeaseLost):
		w.Header().Set("Retry-After", "1")
		httpx.WriteError(w, r, apperr.E(apperr.Unavailable, "no worker id is leased; not issuing ids"))
	default:
		httpx.WriteError(w, r, err)
	}
}

// Decoded is an ID taken apart.
type Decoded struct {
	ID       string    `json:"id"`
	Time     time.Time `json:"time"`
	Worker   int       `json:"worker"`
	Sequence int       `json:"sequence"`
	Base62   string    `json:"base62"`
}

// DecodeID takes id apart with the default epoch.
func DecodeID(id snowflake.ID) (Decoded, error) {
	p, err := snowflake.Decode(id, snowflake.DefaultEpoch)
	if err != nil {
		return Decoded{}, err
	}
	return Decoded{ID: id.String(), Time: p.Time, Worker: p.Worker, Sequence: p.Sequence,
		Base62: snowflake.EncodeBase62(uint64(id))}, nil
}

func (s *Service) handleDecode(w http.ResponseWriter, r *http.Request) {
	id, err := snowflake.Parse(r.PathValue("id"))
	if err != nil {
		httpx.WriteError(w, r, apperr.E(apperr.Invalid, "%s", err.Error()))
		return
	}
	d, err := DecodeID(id)
	if err != nil {
		httpx.WriteError(w, r, apperr.E(apperr.Invalid, "%s", err.Error()))
		return
	}
	httpx.WriteJSON(w, http.StatusOK, d)
}

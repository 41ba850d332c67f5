package albums

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/scalelab/scalelab/internal/platform/apperr"
	"github.com/scalelab/scalelab/internal/platform/blob"
	"github.com/scalelab/scalelab/internal/platform/httpx"
)

// Handler implements host.System: every route of the album store.
func (s *Service) Handler() http.Handler {
	rt := httpx.NewRoutes()
	rt.HandleFunc("POST /api/v1/albums", "multipart: profile, image", s.handleCreate)
	rt.HandleFunc("GET /api/v1/albums", "?artist=&year=&limit=&cursor=", s.handleList)
	rt.HandleFunc("GET /api/v1/albums/{id}", "", s.handleGet)
	rt.HandleFunc("GET /api/v1/albums/{id}/image", "ETag, Range", s.handleImage)
	rt.HandleFunc("POST /api/v1/albums/{id}/reviews/{kind}", "like or dislike", s.handleReview)
	rt.HandleFunc("GET /api/v1/albums/{id}/reviews", "", s.handleReviews)
	s.classicRoutes(rt)
	rt.Index("albums", description, nil)
	return rt.Mux
}

// albumJSON is an album as the API shows it.
type albumJSON struct {
	AlbumID   string    `json:"albumId"`
	Artist    string    `json:"artist"`
	Title     string    `json:"title"`
	Year      int       `json:"year"`
	ImageURL  string    `json:"imageUrl"`
	ImageSize int64     `json:"imageSize"`
	ImageType string    `json:"imageType"`
	CreatedAt time.Time `json:"createdAt"`
}

func (s *Service) albumJSON(a *Album) albumJSON {
	id := strconv.FormatInt(a.ID, 10)
	return albumJSON{AlbumID: id, Artist: a.Artist, Title: a.Title, Year: a.Year,
		ImageURL: s.baseURL + "/api/v1/albums/" + id + "/image", ImageSize: a.ImageSize, ImageType: a.ImageType,
		CreatedAt: time.UnixMilli(a.CreatedAt).UTC()}
}

func (s *Service) handleCreate(w http.ResponseWriter, r *http.Request) {
	up, err := parseUpload(r, s.cfg.MaxImage, parseProfile)
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	a, err := s.Create(r.Context(), up.Profile, up.Image, up.ImageType)
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	out := s.albumJSON(a)
	w.Header().Set("Location", s.baseURL+"/api/v1/albums/"+out.AlbumID)
	httpx.WriteJSON(w, http.StatusCreated, struct {
		AlbumID   string `json:"albumId"`
		ImageSize int64  `json:"imageSize"`
		ImageURL  string `json:"imageUrl"`
	}{out.AlbumID, out.ImageSize, out.ImageURL})
}

// albumID reads {id}; on a malformed one it answers 400 and reports false.
func albumID(w http.ResponseWriter, r *http.Request) (int64, bool) {
	id, err := httpx.ParseID(r.PathValue("id"))
	if err != nil {
		httpx.WriteError(w, r, apperr.E(apperr.Invalid, "album ID: %v", err))
		return 0, false
	}
	return id, true
}

// handleGet answers from the encoded responses when it can (albums never
// change), and otherwise reads the album, encodes its answer once and
// keeps it.
func (s *Service) handleGet(w http.ResponseWriter, r *http.Request) {
	id, ok := albumID(w, r)
	if !ok {
		return
	}
	body, ok := s.responses.GetIfPresent(id)
	if ok {
		s.metrics.responseHits.Inc()
	} else {
		a, err := s.Get(r.Context(), id)
		if err != nil {
			httpx.WriteError(w, r, err)
			return
		}
		if body, err = json.Marshal(s.albumJSON(a)); err != nil {
			httpx.WriteError(w, r, err)
			return
		}
		body = append(body, '\n')
		s.responses.Set(id, body)
	}
	h := w.Header()
	h["Content-Type"] = jsonContentType
	h["Content-Length"] = []string{strconv.Itoa(len(body))}
	_, _ = w.Write(body)
}

var jsonContentType = []string{"application/json"}

// handleImage streams the cover with ETag and Range support
// (http.ServeContent over the blob store's seekable object).
func (s *Service) handleImage(w http.ResponseWriter, r *http.Request) {
	id, ok := albumID(w, r)
	if !ok {
		return
	}
	a, err := s.Get(r.Context(), id)
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	obj, err := s.blobs.Open(r.Context(), a.ImageKey)
	if errors.Is(err, blob.ErrNotFound) {
		httpx.WriteError(w, r, apperr.E(apperr.NotFound, "album %d has no image", id))
		return
	}
	if err != nil {
		s.logger.Warn("albums: blob store", "err", err)
		httpx.WriteError(w, r, apperr.Retry(apperr.Unavailable, time.Second, "the image store is unavailable; try again"))
		return
	}
	defer obj.Close()
	info := obj.Info()
	w.Header().Set("ETag", info.ETag)
	w.Header().Set("Content-Type", a.ImageType)
	w.Header().Set("Cache-Control", "public, max-age=86400, immutable") // an album's image never changes
	w.Header().Set("X-Content-Type-Options", "nosniff")
	http.ServeContent(w, r, "", info.ModTime, obj)
}

const (
	defaultPage = 20
	maxPage     = 100
)

func (s *Service) handleList(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := ListFilter{Artist: q.Get("artist"), Limit: defaultPage}
	var err error
	if v := q.Get("year"); v != "" {
		if f.Year, err = strconv.Atoi(v); err != nil || f.Year < minYear || f.Year > maxYear {
			httpx.WriteError(w, r, apperr.E(apperr.Invalid, "year: a year from %d to %d", minYear, maxYear))
			return
		}
	}
	if v := q.Get("cursor"); v != "" {
		if f.Before, err = strconv.ParseInt(v, 10, 64); err != nil || f.Before <= 0 {
			httpx.WriteError(w, r, apperr.E(apperr.Invalid, "cursor: use the nextCursor of the previous page"))
			return
		}
	}
	if v := q.Get("limit"); v != "" {
		if f.Limit, err = strconv.Atoi(v); err != nil || f.Limit < 1 || f.Limit > maxPage {
			httpx.WriteError(w, r, apperr.E(apperr.Invalid, "limit: 1–%d", maxPage))
			return
		}
	}
	if len(f.Artist) > maxText*4 {
		httpx.WriteError(w, r, apperr.E(apperr.Invalid, "artist: at most %d characters", maxText))
		return
	}
	albums, err := s.List(r.Context(), f)
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	out := struct {
		Albums     []albumJSON `json:"albums"`
		NextCursor string      `json:"nextCursor,omitempty"`
	}{Albums: make([]albumJSON, 0, len(albums))}
	for _, a := range albums {
		out.Albums = append(out.Albums, s.albumJSON(a))
	}
	if len(albums) == f.Limit {
		out.NextCursor = strconv.FormatInt(albums[len(albums)-1].ID, 10)
	}
	httpx.WriteJSON(w, http.StatusOK, out)
}

func (s *Service) handleReview(w http.ResponseWriter, r *http.Request) {
	id, ok := albumID(w, r)
	if !ok {
		return
	}
	var like bool
	switch r.PathValue("kind") {
	case "like":
		like = true
	case "dislike":
	default:
		httpx.WriteError(w, r, apperr.E(apperr.NotFound, "reviews are like or dislike, not %q", clip(r.PathValue("kind"))))
		return
	}
	reviewID, err := s.Review(r.Context(), id, like)
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusAccepted, map[string]string{"reviewId": strconv.FormatInt(reviewID, 10), "status": "accepted"})
}

func (s *Service) handleReviews(w http.ResponseWriter, r *http.Request) {
	id, ok := albumID(w, r)
	if !ok {
		return
	}
	c, err := s.Reviews(r.Context(), id)
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, c)
}

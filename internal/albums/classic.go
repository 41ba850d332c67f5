package albums

import (
	"math"
	"net/http"
	"strconv"

	"github.com/scalelab/scalelab/internal/platform/apperr"
	"github.com/scalelab/scalelab/internal/platform/httpx"
)

// The classic Album Store API (the course assignment's OpenAPI "Album
// Store API" 1.2: DefaultApi newAlbum and getAlbumByKey, LikeApi review and
// getLikes) under classic/, so its generated clients and their load tests
// run unchanged with the base path …/classic. It is a second face of the
// same store: an album made here is the one /api/v1 shows. Its bodies are
// the spec's: every value a string, errors {"msg": …}.
func (s *Service) classicRoutes(rt *httpx.Routes) {
	const api = "classic Album Store API 1.2"
	rt.HandleFunc("POST /classic/albums", api+": multipart image, profile", s.classicNewAlbum)
	rt.HandleFunc("GET /classic/albums/{albumID}", api, s.classicGetAlbum)
	rt.HandleFunc("POST /classic/review/{likeornot}/{albumID}", api, s.classicReview)
	rt.HandleFunc("GET /classic/review/{albumID}", api, s.classicGetLikes)
}

// classicMsg is the spec's ErrorMsg (and the body of a successful review).
type classicMsg struct {
	Msg string `json:"msg"`
}

func classicError(w http.ResponseWriter, err error) {
	if d := apperr.RetryAfterOf(err); d > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(d.Seconds()))))
	}
	httpx.WriteJSON(w, httpx.StatusOf(err), classicMsg{Msg: apperr.MessageOf(err)})
}

func classicAlbumID(w http.ResponseWriter, r *http.Request) (int64, bool) {
	id, err := httpx.ParseID(r.PathValue("albumID"))
	if err != nil {
		classicError(w, apperr.E(apperr.Invalid, "albumID: %v", err))
		return 0, false
	}
	return id, true
}

// classicNewAlbum answers 200 with ImageMetaData, as the spec does.
func (s *Service) classicNewAlbum(w http.ResponseWriter, r *http.Request) {
	up, err := parseUpload(r, s.cfg.MaxImage, parseClassicProfile)
	if err != nil {
		classicError(w, err)
		return
	}
	a, err := s.Create(r.Context(), up.Profile, up.Image, up.ImageType)
	if err != nil {
		classicError(w, err)
		return
	}
	id := strconv.FormatInt(a.ID, 10)
	w.Header().Set("Location", s.baseURL+"/classic/albums/"+id)
	httpx.WriteJSON(w, http.StatusOK, struct {
		AlbumID   string `json:"albumID"`
		ImageSize string `json:"imageSize"`
	}{id, strconv.FormatInt(a.ImageSize, 10)})
}

// classicGetAlbum answers AlbumInfo.
func (s *Service) classicGetAlbum(w http.ResponseWriter, r *http.Request) {
	id, ok := classicAlbumID(w, r)
	if !ok {
		return
	}
	a, err := s.Get(r.Context(), id)
	if err != nil {
		classicError(w, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, struct {
		Artist string `json:"artist"`
		Title  string `json:"title"`
		Year   string `json:"year"`
	}{a.Artist, a.Title, strconv.Itoa(a.Year)})
}

// classicReview answers 201 "Write successful" once the broker holds the
// review (the count changes when the consumer applies it).
func (s *Service) classicReview(w http.ResponseWriter, r *http.Request) {
	var like bool
	switch kind := r.PathValue("likeornot"); kind {
	case "like":
		like = true
	case "dislike":
	default:
		classicError(w, apperr.E(apperr.Invalid, "likeornot is like or dislike, not %q", clip(kind)))
		return
	}
	id, ok := classicAlbumID(w, r)
	if !ok {
		return
	}
	if _, err := s.Review(r.Context(), id, like); err != nil {
		classicError(w, err)
		return
	}
	httpx.WriteJSON(w, http.StatusCreated, classicMsg{Msg: "Write successful"})
}

// classicGetLikes answers Likes: the applied counts, as strings.
func (s *Service) classicGetLikes(w http.ResponseWriter, r *http.Request) {
	id, ok := classicAlbumID(w, r)
	if !ok {
		return
	}
	c, err := s.Reviews(r.Context(), id)
	if err != nil {
		classicError(w, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, struct {
		Likes    string `json:"likes"`
		Dislikes string `json:"dislikes"`
	}{strconv.FormatInt(c.Likes, 10), strconv.FormatInt(c.Dislikes, 10)})
}

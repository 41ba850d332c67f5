package httpx

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math"
	"net/http"
	"strconv"

	"github.com/scalelab/scalelab/internal/platform/apperr"
)

// statusOf is the one table from application error codes to HTTP statuses.
var statusOf = map[apperr.Code]int{
	apperr.Invalid:         http.StatusBadRequest,
	apperr.Unauthorized:    http.StatusUnauthorized,
	apperr.Forbidden:       http.StatusForbidden,
	apperr.NotFound:        http.StatusNotFound,
	apperr.Conflict:        http.StatusConflict,
	apperr.Gone:            http.StatusGone,
	apperr.TooLarge:        http.StatusRequestEntityTooLarge,
	apperr.TooEarly:        http.StatusTooEarly,
	apperr.TooManyRequests: http.StatusTooManyRequests,
	apperr.BadGateway:      http.StatusBadGateway,
	apperr.Unavailable:     http.StatusServiceUnavailable,
	apperr.Timeout:         http.StatusGatewayTimeout,
	apperr.Internal:        http.StatusInternalServerError,
}

// StatusOf returns the HTTP status for err.
func StatusOf(err error) int {
	if s, ok := statusOf[apperr.CodeOf(err)]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// ErrorBody is the JSON body of every error response.
type ErrorBody struct {
	Error string `json:"error"`
}

// WriteJSON writes v as JSON with the given status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// WriteError writes err as {"error": msg} with the status its code maps to.
// Internal errors are logged with their detail and shown as "internal error".
func WriteError(w http.ResponseWriter, r *http.Request, err error) {
	status := StatusOf(err)
	if d := apperr.RetryAfterOf(err); d > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(d.Seconds()))))
	}
	if status >= 500 && apperr.CodeOf(err) == apperr.Internal {
		slog.ErrorContext(r.Context(), "request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	WriteJSON(w, status, ErrorBody{Error: apperr.MessageOf(err)})
}

// DecodeJSON decodes the request body into v. It rejects unknown fields,
// trailing data and an oversized body with a 4xx apperr, so a handler can
// pass the error straight to WriteError. The Content-Type is not checked:
// the body either parses as JSON or is refused, and `curl -d` works.
func DecodeJSON(r *http.Request, v any) error {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var tooLarge *http.MaxBytesError
		switch {
		case errors.As(err, &tooLarge):
			return apperr.E(apperr.TooLarge, "body is larger than %d bytes", tooLarge.Limit)
		case errors.Is(err, io.EOF):
			return apperr.E(apperr.Invalid, "body is empty; a JSON object is required")
		default:
			return apperr.E(apperr.Invalid, "invalid JSON body: %s", err.Error())
		}
	}
	if dec.More() {
		return apperr.E(apperr.Invalid, "invalid JSON body: more than one value")
	}
	return nil
}

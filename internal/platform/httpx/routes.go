package httpx

import (
	"net/http"
	"strings"
)

// Routes registers a system's handlers and remembers each with a short
// note, so that the system's index (GET / at its base URL) lists exactly
// the routes it serves: a route cannot be added without being listed, or
// listed without being served.
type Routes struct {
	Mux  *http.ServeMux
	list []string
}

// NewRoutes returns an empty route table on a new mux.
func NewRoutes() *Routes { return &Routes{Mux: http.NewServeMux()} }

// Handle registers h for pattern ("METHOD /path") with a note for the
// index ("" for none).
func (rt *Routes) Handle(pattern, note string, h http.Handler) {
	rt.Mux.Handle(pattern, h)
	method, path, _ := strings.Cut(pattern, " ")
	entry := method + " " + strings.TrimPrefix(path, "/")
	if note != "" {
		entry += " (" + note + ")"
	}
	rt.list = append(rt.list, entry)
}

// HandleFunc is Handle for a function.
func (rt *Routes) HandleFunc(pattern, note string, h http.HandlerFunc) { rt.Handle(pattern, note, h) }

// Index registers GET /{$}: the system's name, what it is and every route
// registered so far (so register it last), relative to the base URL.
func (rt *Routes) Index(system, description string, extra map[string]any) {
	body := map[string]any{"system": system, "description": description, "endpoints": append([]string(nil), rt.list...)}
	for k, v := range extra {
		body[k] = v
	}
	rt.Mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) { WriteJSON(w, http.StatusOK, body) })
}

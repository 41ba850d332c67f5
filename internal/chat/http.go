package chat

import (
	_ "embed"
	"net/http"
	"time"

	"github.com/scalelab/scalelab/internal/platform/httpx"
)

// pageHTML is a small chat client served from the server's own origin, so a
// browser passes the Origin check without --allowed-origins.
//
//go:embed page.html
var pageHTML []byte

// routes is the whole HTTP surface of a chat server.
func (s *System) routes() {
	api := &queryAPI{store: s.store, epoch: s.ids.Epoch(), rooms: s.cfg.Server.Rooms, now: time.Now}
	s.mux.HandleFunc("GET /chat/{roomId}", s.server.ServeWS)
	s.mux.HandleFunc("GET /api/v1/rooms/{roomId}/messages", api.roomMessages)
	s.mux.HandleFunc("GET /api/v1/rooms/active", api.activeRooms)
	s.mux.HandleFunc("GET /api/v1/users/{userId}/messages", api.userMessages)
	s.mux.HandleFunc("GET /api/v1/users/{userId}/rooms", api.userRooms)
	s.mux.HandleFunc("GET /api/v1/stats", api.statsHandler)
	s.mux.HandleFunc("GET /page", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write(pageHTML)
	})
	s.mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		httpx.WriteJSON(w, http.StatusOK, map[string]any{"system": "chat", "description": description,
			"endpoints": []string{"GET page (a chat page in the browser)", "GET chat/{roomId} (WebSocket)", "GET api/v1/rooms/{roomId}/messages",
				"GET api/v1/rooms/active", "GET api/v1/users/{userId}/messages", "GET api/v1/users/{userId}/rooms", "GET api/v1/stats"}})
	})
}

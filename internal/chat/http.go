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
func (s *System) routes() *http.ServeMux {
	api := &queryAPI{store: s.store, epoch: s.ids.Epoch(), rooms: s.cfg.Server.Rooms, now: time.Now}
	rt := httpx.NewRoutes()
	rt.HandleFunc("GET /page", "a chat page in the browser", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write(pageHTML)
	})
	rt.HandleFunc("GET /chat/{roomId}", "WebSocket", s.server.ServeWS)
	rt.HandleFunc("GET /api/v1/rooms/{roomId}/messages", "?cursor=&limit=", api.roomMessages)
	rt.HandleFunc("GET /api/v1/rooms/active", "?since=", api.activeRooms)
	rt.HandleFunc("GET /api/v1/users/{userId}/messages", "?cursor=&limit=", api.userMessages)
	rt.HandleFunc("GET /api/v1/users/{userId}/rooms", "", api.userRooms)
	rt.HandleFunc("GET /api/v1/stats", "", api.statsHandler)
	rt.Index("chat", description, nil)
	return rt.Mux
}

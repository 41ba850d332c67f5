package chat

import "time"

// routes is the whole HTTP surface of a chat server.
func (s *System) routes() {
	api := &queryAPI{store: s.store, epoch: s.ids.Epoch(), rooms: s.cfg.Server.Rooms, now: time.Now}
	s.mux.HandleFunc("GET /chat/{roomId}", s.server.ServeWS)
	s.mux.HandleFunc("GET /api/v1/rooms/{roomId}/messages", api.roomMessages)
	s.mux.HandleFunc("GET /api/v1/rooms/active", api.activeRooms)
	s.mux.HandleFunc("GET /api/v1/users/{userId}/messages", api.userMessages)
	s.mux.HandleFunc("GET /api/v1/users/{userId}/rooms", api.userRooms)
	s.mux.HandleFunc("GET /api/v1/stats", api.statsHandler)
}

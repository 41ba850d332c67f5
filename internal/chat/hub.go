package chat

import (
	"sync"

	"github.com/coder/websocket"
)

// hub knows which of this server's connections are in which room. Each room
// has its own lock, so joins in one room never wait for a broadcast in
// another; a broadcast holds only a read lock.
type hub struct {
	rooms   []room // index = room ID; 0 unused
	metrics *serverMetrics
}

type room struct {
	mu    sync.RWMutex
	conns map[*conn]struct{}
}

func newHub(rooms int, m *serverMetrics) *hub {
	h := &hub{rooms: make([]room, rooms+1), metrics: m}
	for i := range h.rooms {
		h.rooms[i].conns = map[*conn]struct{}{}
	}
	return h
}

func (h *hub) join(c *conn) {
	r := &h.rooms[c.room]
	r.mu.Lock()
	r.conns[c] = struct{}{}
	r.mu.Unlock()
	h.metrics.connections.Inc()
}

func (h *hub) leave(c *conn) {
	r := &h.rooms[c.room]
	r.mu.Lock()
	delete(r.conns, c)
	r.mu.Unlock()
	h.metrics.connections.Dec()
}

// broadcast queues frame on every connection of the room. It never blocks:
// a connection whose queue is full is closed (see conn.enqueue), so one slow
// reader cannot slow the room down.
func (h *hub) broadcast(roomID int, frame []byte) {
	if roomID < 1 || roomID >= len(h.rooms) {
		return // a room this server does not serve (configured with fewer rooms)
	}
	r := &h.rooms[roomID]
	r.mu.RLock()
	n := 0
	for c := range r.conns {
		if c.enqueue(frame) {
			n++
		}
	}
	r.mu.RUnlock()
	h.metrics.deliveries.Add(float64(n))
}

func (h *hub) count() int {
	n := 0
	for i := range h.rooms {
		r := &h.rooms[i]
		r.mu.RLock()
		n += len(r.conns)
		r.mu.RUnlock()
	}
	return n
}

func (h *hub) closeAll(code websocket.StatusCode, reason string) {
	for i := range h.rooms {
		r := &h.rooms[i]
		r.mu.RLock()
		for c := range r.conns {
			c.closeWith(code, reason)
		}
		r.mu.RUnlock()
	}
}

package chat

import (
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/scalelab/scalelab/internal/platform/apperr"
	"github.com/scalelab/scalelab/internal/platform/httpx"
	"github.com/scalelab/scalelab/internal/platform/snowflake"
)

// Query API limits.
const (
	defaultPageLimit = 100
	maxPageLimit     = 1000
	defaultActive    = 5 * time.Minute
	statsWindow      = time.Minute
	statsTop         = 10
	statsCacheFor    = time.Second
)

// queryAPI serves the read side from the SQL store. Every query is a range
// over one index (see the migrations); none scans a table.
type queryAPI struct {
	store *Store
	epoch time.Time
	rooms int
	now   func() time.Time

	statsMu   sync.Mutex
	stats     *Stats
	statsTime time.Time
}

// MessagePage is a page of messages; NextCursor is set when there may be more.
type MessagePage struct {
	Messages   []Outbound `json:"messages"`
	NextCursor string     `json:"nextCursor,omitempty"`
}

// RoomActivity is a room's message count and last activity.
type RoomActivity struct {
	RoomID     string `json:"roomId"`
	Messages   int64  `json:"messages"`
	LastActive string `json:"lastActive"`
}

// UserActivity is a user's message count and last activity.
type UserActivity struct {
	UserID     string `json:"userId"`
	Messages   int64  `json:"messages"`
	LastActive string `json:"lastActive"`
}

// Stats is GET /api/v1/stats.
type Stats struct {
	WindowSeconds     int            `json:"windowSeconds"`
	Messages          int64          `json:"messages"`
	MessagesPerSecond float64        `json:"messagesPerSecond"`
	PerSecond         []SecondCount  `json:"perSecond"`
	TopUsers          []UserActivity `json:"topUsers"`
	TopRooms          []RoomActivity `json:"topRooms"`
	AsOf              string         `json:"asOf"`
}

// SecondCount is the number of messages in one second of server time.
type SecondCount struct {
	Second   string `json:"second"`
	Messages int64  `json:"messages"`
}

// dbError answers 503 for a failed query (logged with its detail): a
// database outage is a dependency's failure, not a server bug.
func (a *queryAPI) dbError(w http.ResponseWriter, r *http.Request, err error) {
	if r.Context().Err() != nil {
		return // the client went away
	}
	slog.WarnContext(r.Context(), "chat: query failed", "path", r.URL.Path, "err", err)
	w.Header().Set("Retry-After", "1")
	httpx.WriteError(w, r, apperr.E(apperr.Unavailable, "the message store is unavailable; try again"))
}

func (a *queryAPI) timeOf(id int64) string {
	parts, _ := snowflake.Decode(snowflake.ID(id), a.epoch)
	return parts.Time.Format(serverTimeLayout)
}

// page reads from, to, limit and cursor.
func (a *queryAPI) page(r *http.Request) (Page, error) {
	q := r.URL.Query()
	p := Page{From: 0, To: int64(^uint64(0) >> 1), Cursor: -1, Limit: defaultPageLimit}
	if v := q.Get("from"); v != "" {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return p, apperr.E(apperr.Invalid, "from: %q is not an ISO-8601 (RFC 3339) time", clip(v))
		}
		p.From = int64(snowflake.FirstID(t, a.epoch))
	}
	if v := q.Get("to"); v != "" {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return p, apperr.E(apperr.Invalid, "to: %q is not an ISO-8601 (RFC 3339) time", clip(v))
		}
		p.To = int64(snowflake.FirstID(t.Truncate(time.Millisecond).Add(time.Millisecond), a.epoch)) // to is inclusive
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxPageLimit {
			return p, apperr.E(apperr.Invalid, "limit: must be 1–%d, got %q", maxPageLimit, clip(v))
		}
		p.Limit = n
	}
	if v := q.Get("cursor"); v != "" {
		id, err := snowflake.Parse(v)
		if err != nil {
			return p, apperr.E(apperr.Invalid, "cursor: %q is not a cursor from a previous page", clip(v))
		}
		p.Cursor = int64(id)
	}
	return p, nil
}

func (a *queryAPI) writePage(w http.ResponseWriter, rows []Row, limit int) {
	out := MessagePage{Messages: make([]Outbound, len(rows))}
	for i, r := range rows {
		out.Messages[i] = r.Outbound(a.epoch)
	}
	if len(rows) == limit {
		out.NextCursor = strconv.FormatInt(rows[len(rows)-1].MessageID, 10)
	}
	httpx.WriteJSON(w, http.StatusOK, out)
}

func (a *queryAPI) roomMessages(w http.ResponseWriter, r *http.Request) {
	room, err := ParseRoom(r.PathValue("roomId"), a.rooms)
	if err != nil {
		httpx.WriteError(w, r, apperr.E(apperr.NotFound, "%s", err.Error()))
		return
	}
	p, err := a.page(r)
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	rows, err := a.store.RoomMessages(r.Context(), room, p)
	if err != nil {
		a.dbError(w, r, err)
		return
	}
	a.writePage(w, rows, p.Limit)
}

func (a *queryAPI) userID(w http.ResponseWriter, r *http.Request) (int, bool) {
	s := r.PathValue("userId")
	if err := validUserID(s); err != nil {
		httpx.WriteError(w, r, apperr.E(apperr.Invalid, "%s", err.Error()))
		return 0, false
	}
	n, _ := strconv.Atoi(s)
	return n, true
}

func (a *queryAPI) userMessages(w http.ResponseWriter, r *http.Request) {
	user, ok := a.userID(w, r)
	if !ok {
		return
	}
	p, err := a.page(r)
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	rows, err := a.store.UserMessages(r.Context(), user, p)
	if err != nil {
		a.dbError(w, r, err)
		return
	}
	a.writePage(w, rows, p.Limit)
}

func (a *queryAPI) userRooms(w http.ResponseWriter, r *http.Request) {
	user, ok := a.userID(w, r)
	if !ok {
		return
	}
	acts, err := a.store.UserRooms(r.Context(), user)
	if err != nil {
		a.dbError(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"userId": strconv.Itoa(user), "rooms": a.roomActivities(acts)})
}

func (a *queryAPI) roomActivities(acts []Activity) []RoomActivity {
	out := make([]RoomActivity, len(acts))
	for i, x := range acts {
		out[i] = RoomActivity{RoomID: strconv.Itoa(x.Key), Messages: x.Messages, LastActive: a.timeOf(x.LastID)}
	}
	return out
}

func (a *queryAPI) activeRooms(w http.ResponseWriter, r *http.Request) {
	since := a.now().Add(-defaultActive)
	if v := r.URL.Query().Get("since"); v != "" {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			httpx.WriteError(w, r, apperr.E(apperr.Invalid, "since: %q is not an ISO-8601 (RFC 3339) time", clip(v)))
			return
		}
		since = t
	}
	acts, err := a.store.ActiveRooms(r.Context(), int64(snowflake.FirstID(since, a.epoch)))
	if err != nil {
		a.dbError(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"since": since.UTC().Format(serverTimeLayout), "rooms": a.roomActivities(acts)})
}

// statsHandler serves the last minute's statistics, computed at most once
// a second whatever the request rate: each computation scans the minute's
// rows (a primary-key range), which at tens of thousands of messages a
// second is millions of rows.
func (a *queryAPI) statsHandler(w http.ResponseWriter, r *http.Request) {
	a.statsMu.Lock()
	defer a.statsMu.Unlock()
	now := a.now()
	if a.stats == nil || now.Sub(a.statsTime) >= statsCacheFor {
		st, err := a.computeStats(r, now)
		if err != nil {
			a.dbError(w, r, err)
			return
		}
		a.stats, a.statsTime = st, now
	}
	httpx.WriteJSON(w, http.StatusOK, a.stats)
}

func (a *queryAPI) computeStats(r *http.Request, now time.Time) (*Stats, error) {
	ctx := r.Context()
	// Whole seconds: the window is the 60 completed seconds before now.
	end := now.Truncate(time.Second)
	since := int64(snowflake.FirstID(end.Add(-statsWindow), a.epoch))
	until := int64(snowflake.FirstID(end, a.epoch))
	secs, err := a.store.PerSecond(ctx, since)
	if err != nil {
		return nil, err
	}
	st := &Stats{WindowSeconds: int(statsWindow / time.Second), AsOf: end.UTC().Format(serverTimeLayout),
		PerSecond: []SecondCount{}}
	for _, s := range secs {
		if s.LastID >= until {
			continue // the current, incomplete second
		}
		st.Messages += s.Messages
		st.PerSecond = append(st.PerSecond, SecondCount{
			Second: a.epoch.Add(time.Duration(s.Key) * time.Second).UTC().Format(time.RFC3339), Messages: s.Messages})
	}
	st.MessagesPerSecond = float64(st.Messages) / statsWindow.Seconds()
	users, err := a.store.TopUsers(ctx, since, statsTop)
	if err != nil {
		return nil, err
	}
	st.TopUsers = make([]UserActivity, len(users))
	for i, u := range users {
		st.TopUsers[i] = UserActivity{UserID: strconv.Itoa(u.Key), Messages: u.Messages, LastActive: a.timeOf(u.LastID)}
	}
	rooms, err := a.store.TopRooms(ctx, since, statsTop)
	if err != nil {
		return nil, err
	}
	st.TopRooms = a.roomActivities(rooms)
	return st, nil
}

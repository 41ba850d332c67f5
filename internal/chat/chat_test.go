package chat

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/scalelab/scalelab/internal/platform/host"
	"github.com/scalelab/scalelab/internal/platform/testsvc"
)

// engineSets are the engine combinations every end-to-end test runs on.
var engineSets = []struct {
	name string
	make func(t *testing.T) host.Engines
}{
	{"Embedded+SQLite", func(t *testing.T) host.Engines { return host.Engines{} }},
	{"NATS+PostgreSQL", func(t *testing.T) host.Engines {
		return isolated(t, testsvc.NATS(t), testsvc.Postgres(t))
	}},
	{"RabbitMQ+MariaDB", func(t *testing.T) host.Engines {
		return isolated(t, testsvc.AMQP(t), testsvc.MySQL(t))
	}},
}

// isolated gives a test its own namespace on a shared broker, cleaned up.
func isolated(t *testing.T, brokerURL, dbURL string) host.Engines {
	ns := testsvc.Name("chattest")
	testsvc.CleanupBroker(t, brokerURL, ns)
	testsvc.CleanupStreams(t, brokerURL, ns, Topic)
	return host.Engines{Broker: brokerURL, DB: dbURL, Namespace: ns, GroupExpiry: time.Minute}
}

// Two servers on one broker and database: clients on both see every message
// of their room in one order, replies come in order, nothing leaks into
// another room, and every message is stored once and can be queried.
func TestFanOutPersistAndQuery(t *testing.T) {
	for _, es := range engineSets {
		t.Run(es.name, func(t *testing.T) {
			e := es.make(t)
			if e.Broker == "" { // embedded: one process holds the broker
				testFanOut(t, startChat(t, e, testConfig()), nil)
				return
			}
			servers := testConfig()
			servers.Persist = false
			a := startChat(t, e, servers)
			persister := testConfig()
			persister.Serve = false
			startChat(t, e, persister)
			b := startChat(t, e, servers)
			testFanOut(t, a, b)
		})
	}
}

func testFanOut(t *testing.T, a, b *instance) {
	if b == nil {
		b = a
	}
	s1 := dial(t, a.url, 1)
	s2 := dial(t, b.url, 1)
	listener := dial(t, b.url, 1)
	listener2 := dial(t, a.url, 1)
	other := dial(t, a.url, 2)
	testsvc.WaitUntil(t, "connections registered", 5*time.Second, func() bool {
		if a == b {
			return a.sys.server.Connections() == 5
		}
		return a.sys.server.Connections() == 3 && b.sys.server.Connections() == 2
	})

	const n = 60
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	senders := []*sender{{c: s1, user: 11}, {c: s2, user: 22}}
	errc := make(chan error, len(senders))
	for _, s := range senders {
		go func() { errc <- s.run(ctx, n, func(i int) string { return fmt.Sprintf("u%d-%03d", s.user, i) }) }()
	}
	var orders [2][]string // two listeners' views of room 1, one per server
	for i, l := range []*Client{listener, listener2} {
		for len(orders[i]) < 2*n {
			f := readFrame(t, l)
			if f.IsReply() {
				t.Fatalf("listener got a reply it did not ask for: %+v", f)
			}
			if f.RoomID != "1" {
				t.Fatalf("room 1 listener got a message of room %s", f.RoomID)
			}
			orders[i] = append(orders[i], f.MessageID)
		}
	}
	if !slices.Equal(orders[0], orders[1]) {
		t.Fatal("the two servers' listeners saw room 1 in different orders")
	}
	order := orders[0]
	for range senders {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range senders {
		if len(s.acked) != n || len(s.errs) != 0 {
			t.Fatalf("user %d: %d acked, errors %v", s.user, len(s.acked), s.errs)
		}
	}
	if got := readFrameTimeout(other, 300*time.Millisecond); got != nil {
		t.Fatalf("room 2 received %+v", got)
	}

	// Stored once each, queryable by room and user, in the listener's order.
	var page MessagePage
	testsvc.WaitUntil(t, "all messages stored", 15*time.Second, func() bool {
		getJSON(t, a.url+"/api/v1/rooms/1/messages?limit=1000", &page)
		return len(page.Messages) == 2*n
	})
	stored := make([]string, len(page.Messages))
	for i, m := range page.Messages {
		stored[i] = m.MessageID
	}
	listenerSorted := slices.Clone(order)
	slices.SortFunc(listenerSorted, func(x, y string) int { return cmpID(x, y) })
	if !slices.Equal(stored, listenerSorted) {
		t.Fatalf("stored IDs differ from delivered IDs")
	}
	for _, s := range senders {
		var up MessagePage
		getJSON(t, fmt.Sprintf("%s/api/v1/users/%d/messages?limit=1000", b.url, s.user), &up)
		if len(up.Messages) != n {
			t.Fatalf("user %d: %d messages stored", s.user, len(up.Messages))
		}
		for i, m := range up.Messages {
			if want := fmt.Sprintf("u%d-%03d", s.user, i); m.Message != want || m.RoomID != "1" || m.MessageType != TypeText {
				t.Fatalf("user %d message %d: %+v, want text %s", s.user, i, m, want)
			}
		}
	}
	testQueries(t, a.url, senders[0].user, n)
}

// testQueries checks pagination, time windows, rooms and stats.
func testQueries(t *testing.T, base string, user, n int) {
	// Pagination with a cursor walks every message once.
	var seen []string
	next := ""
	for pages := 0; ; pages++ {
		var p MessagePage
		u := base + "/api/v1/rooms/1/messages?limit=7"
		if next != "" {
			u += "&cursor=" + next
		}
		if st := getJSON(t, u, &p); st != 200 {
			t.Fatalf("page status %d", st)
		}
		for _, m := range p.Messages {
			seen = append(seen, m.MessageID)
		}
		if p.NextCursor == "" {
			break
		}
		next = p.NextCursor
		if pages > 100 {
			t.Fatal("pagination does not end")
		}
	}
	if len(seen) != 2*n || !slices.IsSortedFunc(seen, cmpID) {
		t.Fatalf("paginated %d messages (sorted %v), want %d", len(seen), slices.IsSortedFunc(seen, cmpID), 2*n)
	}
	// A window in the future is empty; one covering now holds everything.
	future := url.QueryEscape(time.Now().Add(time.Hour).UTC().Format(time.RFC3339))
	var p MessagePage
	getJSON(t, base+"/api/v1/rooms/1/messages?from="+future, &p)
	if len(p.Messages) != 0 {
		t.Fatalf("future window: %d messages", len(p.Messages))
	}
	past := url.QueryEscape(time.Now().Add(-time.Hour).UTC().Format(time.RFC3339))
	getJSON(t, base+"/api/v1/rooms/1/messages?limit=1000&from="+past+"&to="+future, &p)
	if len(p.Messages) != 2*n {
		t.Fatalf("window covering now: %d messages", len(p.Messages))
	}

	var rooms struct {
		UserID string         `json:"userId"`
		Rooms  []RoomActivity `json:"rooms"`
	}
	getJSON(t, base+"/api/v1/users/"+strconv.Itoa(user)+"/rooms", &rooms)
	if len(rooms.Rooms) != 1 || rooms.Rooms[0].RoomID != "1" || rooms.Rooms[0].Messages != int64(n) {
		t.Fatalf("user rooms: %+v", rooms)
	}
	var active struct {
		Rooms []RoomActivity `json:"rooms"`
	}
	getJSON(t, base+"/api/v1/rooms/active", &active)
	if len(active.Rooms) != 1 || active.Rooms[0].Messages != int64(2*n) {
		t.Fatalf("active rooms: %+v", active)
	}
	getJSON(t, base+"/api/v1/rooms/active?since="+future, &active)
	if len(active.Rooms) != 0 {
		t.Fatalf("active since the future: %+v", active)
	}
	// Stats count whole seconds: wait for the current one to end.
	time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(1100 * time.Millisecond)))
	var st Stats
	getJSON(t, base+"/api/v1/stats", &st)
	if st.Messages != int64(2*n) || len(st.TopUsers) != 2 || st.TopUsers[0].Messages != int64(n) ||
		len(st.TopRooms) != 1 || st.TopRooms[0].RoomID != "1" {
		t.Fatalf("stats: %+v", st)
	}
}

func cmpID(x, y string) int {
	a, _ := strconv.ParseInt(x, 10, 64)
	b, _ := strconv.ParseInt(y, 10, 64)
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// readFrameTimeout returns the next frame, or nil if none comes in d.
func readFrameTimeout(c *Client, d time.Duration) *Frame {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	f, err := c.Read(ctx)
	if err != nil {
		return nil
	}
	return f
}

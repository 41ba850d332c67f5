package chat

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/scalelab/scalelab/internal/platform/host"
	"github.com/scalelab/scalelab/internal/platform/proctest"
	"github.com/scalelab/scalelab/internal/platform/promscrape"
	"github.com/scalelab/scalelab/internal/platform/sqldb"
	"github.com/scalelab/scalelab/internal/platform/testsvc"
)

// workload is a set of chat clients that keep sending until stopped, each
// message with a unique text, and move to the next server when theirs
// goes away. It records every message that was answered OK.
type workload struct {
	servers []string // base URLs
	mu      sync.Mutex
	acked   map[string]string // message ID -> text
	errors  int
	moves   int
	stop    chan struct{}
	wg      sync.WaitGroup
}

func startWorkload(servers []string, clients int) *workload {
	w := &workload{servers: servers, acked: map[string]string{}, stop: make(chan struct{})}
	for i := 0; i < clients; i++ {
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			w.client(i)
		}()
	}
	return w
}

func (w *workload) stopped() bool {
	select {
	case <-w.stop:
		return true
	default:
		return false
	}
}

func (w *workload) client(id int) {
	server, seq := id%len(w.servers), 0
	room := id%4 + 1
	for !w.stopped() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		c, err := Dial(ctx, wsURL(w.servers[server], room))
		cancel()
		if err == nil {
			seq = w.session(c, id, seq)
			_ = c.Conn().CloseNow()
		}
		server = (server + 1) % len(w.servers)
		if !w.stopped() {
			w.mu.Lock()
			w.moves++
			w.mu.Unlock()
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// session sends windows of 8 messages until the connection fails or the
// workload stops; replies come in order, so the i-th reply is the i-th text.
func (w *workload) session(c *Client, id, seq int) int {
	const window = 8
	for !w.stopped() {
		texts := make([]string, window)
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		for i := range texts {
			texts[i] = fmt.Sprintf("c%d-%07d", id, seq)
			seq++
			if err := c.Send(ctx, msg(id+1, texts[i])); err != nil {
				cancel()
				return seq
			}
		}
		for got := 0; got < window; {
			f, err := c.Read(ctx)
			if err != nil {
				cancel()
				return seq
			}
			if !f.IsReply() {
				continue
			}
			w.mu.Lock()
			if f.Status == "OK" {
				w.acked[f.MessageID] = texts[got]
			} else {
				w.errors++
			}
			w.mu.Unlock()
			got++
		}
		cancel()
	}
	return seq
}

// finish stops the clients and returns what was acknowledged.
func (w *workload) finish(t *testing.T) map[string]string {
	close(w.stop)
	w.wg.Wait()
	w.mu.Lock()
	defer w.mu.Unlock()
	t.Logf("workload: %d acked, %d ERROR replies, %d reconnects", len(w.acked), w.errors, w.moves)
	return w.acked
}

func (w *workload) ackedIDs() []int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]int64, 0, len(w.acked))
	for id := range w.acked {
		n, _ := strconv.ParseInt(id, 10, 64)
		out = append(out, n)
	}
	return out
}

func (w *workload) ackedCount() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.acked)
}

// checkStoredOnce waits until every acked message is in the database, then
// checks that each is stored exactly once: under its ID with its text, and
// no text twice (a message stored under two IDs would be a duplicate).
func checkStoredOnce(t *testing.T, dbURL, dataDir string, acked map[string]string) {
	t.Helper()
	ctx := context.Background()
	db, err := sqldb.Open(ctx, dbURL, dataDir)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	load := func() (map[string]string, map[string]int) {
		rows, err := db.QueryContext(ctx, "SELECT message_id, message FROM chat_messages")
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		byID, texts := map[string]string{}, map[string]int{}
		for rows.Next() {
			var id int64
			var text string
			if err := rows.Scan(&id, &text); err != nil {
				t.Fatal(err)
			}
			byID[strconv.FormatInt(id, 10)] = text
			texts[text]++
		}
		return byID, texts
	}
	var byID map[string]string
	var texts map[string]int
	deadline := time.Now().Add(60 * time.Second)
	for {
		byID, texts = load()
		missing := 0
		for id := range acked {
			if _, ok := byID[id]; !ok {
				missing++
			}
		}
		if missing == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d acked messages are not in the database after 60 s", missing, len(acked))
		}
		time.Sleep(100 * time.Millisecond)
	}
	for id, text := range acked {
		if byID[id] != text {
			t.Fatalf("message %s stored as %q, want %q", id, byID[id], text)
		}
	}
	for text, n := range texts {
		if n > 1 {
			t.Fatalf("message %q stored %d times", text, n)
		}
	}
	t.Logf("database: %d rows, all %d acked messages exactly once (%d stored without an ack)",
		len(byID), len(acked), len(byID)-len(acked))
}

func engineArgs(e host.Engines, data string) []string {
	return []string{"--db", e.DB, "--broker", e.Broker, "--namespace", e.Namespace, "--data", data}
}

// A persister killed with SIGKILL mid-stream loses its batch in hand; the
// restarted one gets it again (after the ack wait) and inserts nothing
// twice.
func TestPersisterKilledMidStream(t *testing.T) {
	e := isolated(t, testsvc.NATS(t), testsvc.Postgres(t))
	servers := testConfig()
	servers.Persist = false
	srv := startChat(t, e, servers)
	persister := proctest.Start(t, proctest.FreeAddr(t), append([]string{"chat", "persist",
		"--broker-ack-wait", "2s", "--batch-size", "200"}, engineArgs(e, t.TempDir())...)...)

	w := startWorkload([]string{srv.url}, 4)
	// The kill must land mid-stream for the test to mean anything: acked
	// messages that the dead persister had not stored, which only the
	// restarted one can bring in. A kill that lands between two batches
	// (everything acked already stored, as happens on a slow machine) is
	// retried with the persister restarted, up to five times.
	var ackedAtKill []int64
	var killedAt, storedAtKill int
	for attempt := 1; ; attempt++ {
		target := w.ackedCount() + 1000
		testsvc.WaitUntil(t, "traffic", 20*time.Second, func() bool { return w.ackedCount() > target })
		persister.Kill()
		ackedAtKill = w.ackedIDs()
		killedAt = len(ackedAtKill)
		storedAtKill = countStored(t, e.DB, ackedAtKill)
		if storedAtKill < killedAt {
			break
		}
		if attempt == 5 {
			t.Fatalf("in 5 kills, every time all acked messages were stored (last: %d of %d): nothing was ever in flight", storedAtKill, killedAt)
		}
		t.Logf("kill %d landed between batches (%d of %d stored); again", attempt, storedAtKill, killedAt)
		persister.Restart()
	}
	time.Sleep(500 * time.Millisecond)
	persister.Restart()
	testsvc.WaitUntil(t, "traffic after the restart", 20*time.Second, func() bool { return w.ackedCount() > killedAt+1000 })
	acked := w.finish(t)
	checkStoredOnce(t, e.DB, t.TempDir(), acked) // every acked message exactly once, the in-flight ones included
	m, err := promscrape.Scrape(context.Background(), http.DefaultClient, persister.URL()+"/metrics")
	if err != nil {
		t.Fatal(err)
	}
	dups, ok := m.Value("scalelab_chat_persist_duplicates_total")
	if !ok {
		t.Fatal("the restarted persister exports no duplicate count")
	}
	t.Logf("at the kill: %d stored of %d acked; the restarted persister skipped %.0f duplicates", storedAtKill, killedAt, dups)
}

// countStored is how many of the messages ids the database holds now (the
// table is shared with other tests: only these IDs count).
func countStored(t *testing.T, dbURL string, ids []int64) int {
	t.Helper()
	db, err := sqldb.Open(context.Background(), dbURL, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	lowest := ids[0]
	want := map[int64]bool{}
	for _, id := range ids {
		want[id], lowest = true, min(lowest, id)
	}
	rows, err := db.QueryContext(context.Background(), fmt.Sprintf("SELECT message_id FROM chat_messages WHERE message_id >= %d", lowest))
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		if want[id] {
			n++
		}
	}
	return n
}

// The broker goes down and comes back on the same port and store: the
// servers and the persister reconnect, fan-out resumes, and every acked
// message is stored once.
func TestBrokerRestart(t *testing.T) {
	_, portStr, _ := net.SplitHostPort(proctest.FreeAddr(t))
	port, _ := strconv.Atoi(portStr)
	storeDir := t.TempDir()
	nats := proctest.StartNATS(t, port, storeDir)
	t.Cleanup(func() { nats.Shutdown() }) // registered first: runs after the chat server closed
	url := "nats://127.0.0.1:" + strconv.Itoa(port)
	dataDir := t.TempDir()
	e := host.Engines{Broker: url, DB: "sqlite://" + filepath.Join(dataDir, "chat.db"), Namespace: "chat"}
	inst := startChat(t, e, testConfig())
	listener := dial(t, inst.url, 1)

	w := startWorkload([]string{inst.url}, 4)
	testsvc.WaitUntil(t, "traffic", 20*time.Second, func() bool { return w.ackedCount() > 1000 })
	nats.Shutdown()
	nats.WaitForShutdown()
	time.Sleep(time.Second)
	downAt := w.ackedCount()
	nats = proctest.StartNATS(t, port, storeDir)
	testsvc.WaitUntil(t, "traffic after the restart", 30*time.Second, func() bool { return w.ackedCount() > downAt+1000 })
	acked := w.finish(t)

	// Fan-out resumed: a message sent now reaches the room-1 listener.
	speaker := dial(t, inst.url, 1)
	if err := speaker.Send(context.Background(), msg(7, "after the restart")); err != nil {
		t.Fatal(err)
	}
	for {
		if f := readFrame(t, listener); f.Message == "after the restart" {
			break
		}
	}
	checkStoredOnce(t, e.DB, t.TempDir(), acked)
}

// One of two servers is killed: its clients reconnect to the other and go
// on, and every acked message is stored once.
func TestServerKilledClientsMove(t *testing.T) {
	e := isolated(t, testsvc.NATS(t), testsvc.Postgres(t))
	args := append([]string{"chat", "serve", "--rate-limit", "off"}, engineArgs(e, t.TempDir())...)
	a := proctest.Start(t, proctest.FreeAddr(t), args...)
	b := proctest.Start(t, proctest.FreeAddr(t), args...)
	persister := testConfig()
	persister.Serve = false
	startChat(t, e, persister)

	w := startWorkload([]string{a.URL(), b.URL()}, 6)
	testsvc.WaitUntil(t, "traffic", 20*time.Second, func() bool { return w.ackedCount() > 1000 })
	a.Kill()
	killedAt := w.ackedCount()
	testsvc.WaitUntil(t, "traffic on the survivor", 20*time.Second, func() bool { return w.ackedCount() > killedAt+2000 })
	acked := w.finish(t)
	checkStoredOnce(t, e.DB, t.TempDir(), acked)
}

// startNATS runs a NATS server with JetStream in this process, on a real
// port, so that the test can stop and restart it.

package chat

import (
	"context"
	"io"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/scalelab/scalelab/internal/platform/broker"
	"github.com/scalelab/scalelab/internal/platform/sqldb"
	"github.com/scalelab/scalelab/internal/platform/testsvc"
)

// Observed on PostgreSQL: a message with \u0000 was acked, then every
// batch holding it failed ("invalid byte sequence for encoding UTF8: 0x00")
// and was retried for ever; nothing after it was stored. Servers now refuse
// it at the edge; one that reaches the stream anyway (an older server, a
// hand-made envelope) is set aside and the stream goes on — on every engine.
func TestPoisonMessageIsSetAsideAndTheStreamGoesOn(t *testing.T) {
	for _, eng := range testsvc.SQLEngines {
		t.Run(eng.Name, func(t *testing.T) {
			ctx := context.Background()
			dbURL := eng.URL(t)
			db, err := sqldb.Open(ctx, dbURL, t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			st, err := OpenStore(ctx, db)
			if err != nil {
				t.Fatal(err)
			}
			b, err := broker.Open(ctx, "", broker.Options{DataDir: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			p, err := StartPersister(ctx, PersisterConfig{Group: "dl", BatchSize: 100, BatchWait: 10 * time.Millisecond}, b, st,
				prometheus.NewRegistry(), slog.New(slog.NewTextHandler(io.Discard, nil)))
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			base := time.Now().UnixNano() // unique IDs on a shared database
			entry := func(i int64, text string) []byte {
				return EncodeWire(nil, &Outbound{MessageID: strconv.FormatInt(base+i, 10), RoomID: "1", UserID: "7", Username: "abc",
					Message: text, Timestamp: "2026-12-01T10:00:00Z", MessageType: TypeText})
			}
			var env []byte
			env = AppendEnvelope(env, entry(1, "before"))
			env = AppendEnvelope(env, entry(2, "poison\x00here"))
			env = AppendEnvelope(env, entry(3, "after"))
			pending, err := b.PublishAsync(ctx, Topic, env)
			if err != nil || pending.Wait(ctx) != nil {
				t.Fatalf("publish: %v", err)
			}
			later, _ := b.PublishAsync(ctx, Topic, AppendEnvelope(nil, entry(4, "a later envelope")))
			if err := later.Wait(ctx); err != nil {
				t.Fatal(err)
			}
			stored := func(id int64) bool {
				var n int
				_ = db.QueryRowContext(ctx, db.Rebind("SELECT count(*) FROM chat_messages WHERE message_id = ?"), base+id).Scan(&n)
				return n == 1
			}
			setAside := func(id int64) bool {
				var n int
				_ = db.QueryRowContext(ctx, db.Rebind("SELECT count(*) FROM chat_dead_letters WHERE message_id = ?"), base+id).Scan(&n)
				return n == 1
			}
			deadline := time.Now().Add(20 * time.Second)
			for !(stored(1) && stored(3) && stored(4) && setAside(2)) {
				if time.Now().After(deadline) {
					t.Fatalf("after 20 s: stored 1=%v 3=%v 4=%v, poison set aside=%v", stored(1), stored(3), stored(4), setAside(2))
				}
				time.Sleep(20 * time.Millisecond)
			}
			if stored(2) {
				t.Fatal("the poison message is in chat_messages too")
			}
		})
	}
}

// A row the database refuses for a reason of its own (not one the decoder
// knows) is found by halving the batch and set aside; the rest is stored.
func TestRefusedRowIsFoundByHalving(t *testing.T) {
	ctx := context.Background()
	db, err := sqldb.Open(ctx, "", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	st, err := OpenStore(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	// The database refuses one message, as PostgreSQL refused NUL.
	if _, err := db.ExecContext(ctx, `CREATE TRIGGER refuse_poison BEFORE INSERT ON chat_messages
		WHEN NEW.message = 'poison' BEGIN SELECT RAISE(ABORT, 'refused by the database'); END`); err != nil {
		t.Fatal(err)
	}
	p := &Persister{store: st, logger: slog.New(slog.DiscardHandler), metrics: newPersistMetrics(prometheus.NewRegistry())}
	var rows []Row
	for i := range 9 {
		text := "fine"
		if i == 6 {
			text = "poison"
		}
		rows = append(rows, Row{MessageID: int64(100 + i), RoomID: 1, UserID: 1, Username: "abc", Message: text, Type: TypeText, ClientTS: "t"})
	}
	n, err := p.insert(ctx, rows)
	if err != nil || n != 8 {
		t.Fatalf("inserted %d (%v), want the 8 good rows", n, err)
	}
	if dead, err := st.DeadLetters(ctx); err != nil || dead != 1 {
		t.Fatalf("dead letters: %d %v", dead, err)
	}
	// With the database down, nothing is set aside: the batch fails.
	db.Close()
	if _, err := p.insert(ctx, rows[:2]); err == nil {
		t.Fatal("an insert into a closed database succeeded")
	}
}

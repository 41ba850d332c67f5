package chat

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/scalelab/scalelab/internal/platform/snowflake"
	"github.com/scalelab/scalelab/internal/platform/sqldb"
)

//go:embed migrations
var migrations embed.FS

// Row is one stored message.
type Row struct {
	MessageID int64
	RoomID    int32
	UserID    int32
	Username  string
	Message   string
	Type      string
	ClientTS  string
}

// RowFromOutbound converts a broker message into a row.
func RowFromOutbound(m *Outbound) (Row, error) {
	id, err := strconv.ParseInt(m.MessageID, 10, 64)
	if err != nil {
		return Row{}, fmt.Errorf("messageId %q: %w", m.MessageID, err)
	}
	room, err := strconv.ParseInt(m.RoomID, 10, 32)
	if err != nil {
		return Row{}, fmt.Errorf("roomId %q: %w", m.RoomID, err)
	}
	user, err := strconv.ParseInt(m.UserID, 10, 32)
	if err != nil {
		return Row{}, fmt.Errorf("userId %q: %w", m.UserID, err)
	}
	if strings.ContainsRune(m.Message, 0) || strings.ContainsRune(m.Username, 0) || strings.ContainsRune(m.Timestamp, 0) {
		// Servers refuse these at the edge; one from elsewhere must not
		// reach an INSERT that fails for ever.
		return Row{}, fmt.Errorf("message %s holds a NUL character", m.MessageID)
	}
	return Row{MessageID: id, RoomID: int32(room), UserID: int32(user), Username: m.Username,
		Message: m.Message, Type: m.MessageType, ClientTS: m.Timestamp}, nil
}

// SetAside records a message the store could not take in the dead-letter
// table (once per message ID).
func (s *Store) SetAside(ctx context.Context, id int64, reason string, payload []byte, now time.Time) error {
	if len(reason) > 500 {
		reason = reason[:500]
	}
	q := "INSERT INTO chat_dead_letters (message_id, reason, payload, set_aside_at) VALUES (?, ?, ?, ?)"
	switch s.db.Dialect {
	case sqldb.MySQL:
		q = strings.Replace(q, "INSERT", "INSERT IGNORE", 1)
	default:
		q += " ON CONFLICT (message_id) DO NOTHING"
	}
	if _, err := s.db.ExecContext(ctx, s.db.Rebind(q), id, strings.ToValidUTF8(reason, "?"), string(payload), now.UTC()); err != nil {
		return fmt.Errorf("chat: set aside message %d: %w", id, err)
	}
	return nil
}

// DeadLetters counts the messages set aside.
func (s *Store) DeadLetters(ctx context.Context) (int, error) {
	var n int
	err := s.db.QueryRowContext(ctx, "SELECT count(*) FROM chat_dead_letters").Scan(&n)
	return n, err
}

// Ping tells a database that is down (retry later) from a row it refuses
// (set it aside).
func (s *Store) Ping(ctx context.Context) error { return s.db.PingContext(ctx) }

// Outbound renders a row as clients receive messages; the server timestamp
// is the ID's millisecond.
func (r Row) Outbound(epoch time.Time) Outbound {
	parts, _ := snowflake.Decode(snowflake.ID(r.MessageID), epoch)
	return Outbound{
		MessageID: strconv.FormatInt(r.MessageID, 10), RoomID: strconv.Itoa(int(r.RoomID)),
		UserID: strconv.Itoa(int(r.UserID)), Username: r.Username, Message: r.Message,
		Timestamp: r.ClientTS, ServerTimestamp: parts.Time.Format(serverTimeLayout), MessageType: r.Type,
	}
}

// Store is the chat's SQL store.
type Store struct {
	db *sqldb.DB
}

// OpenStore applies the chat migrations and returns the store.
func OpenStore(ctx context.Context, db *sqldb.DB) (*Store, error) {
	if err := db.Migrate(ctx, migrations, "chat"); err != nil {
		return nil, err
	}
	return &Store{db: db}, nil
}

const insertColumns = "message_id, room_id, user_id, username, message, message_type, client_ts"

// Insert writes rows in one transaction, skipping IDs already stored, and
// returns how many were new. It is what makes redelivery harmless.
func (s *Store) Insert(ctx context.Context, rows []Row) (inserted int64, err error) {
	if len(rows) == 0 {
		return 0, nil
	}
	err = s.db.InTx(ctx, func(tx *sql.Tx) error {
		inserted = 0
		if s.db.Dialect == sqldb.Postgres {
			n, err := insertPostgres(ctx, tx, rows)
			inserted = n
			return err
		}
		const chunk = 200 // 1,400 parameters: under every engine's limit
		for len(rows) > 0 {
			part := rows[:min(chunk, len(rows))]
			rows = rows[len(part):]
			n, err := s.insertValues(ctx, tx, part)
			if err != nil {
				return err
			}
			inserted += n
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("chat: insert %d messages: %w", len(rows), err)
	}
	return inserted, nil
}

// insertPostgres sends the batch as seven arrays in one statement: one
// round trip and one plan whatever the batch size.
func insertPostgres(ctx context.Context, tx *sql.Tx, rows []Row) (int64, error) {
	ids := make([]int64, len(rows))
	rooms := make([]int32, len(rows))
	users := make([]int32, len(rows))
	names := make([]string, len(rows))
	texts := make([]string, len(rows))
	types := make([]string, len(rows))
	stamps := make([]string, len(rows))
	for i, r := range rows {
		ids[i], rooms[i], users[i], names[i], texts[i], types[i], stamps[i] =
			r.MessageID, r.RoomID, r.UserID, r.Username, r.Message, r.Type, r.ClientTS
	}
	res, err := tx.ExecContext(ctx, `INSERT INTO chat_messages (`+insertColumns+`)
		SELECT * FROM unnest($1::bigint[], $2::int[], $3::int[], $4::text[], $5::text[], $6::text[], $7::text[])
		ON CONFLICT (message_id) DO NOTHING`, ids, rooms, users, names, texts, types, stamps)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// insertValues is a multi-row INSERT that ignores existing IDs: ON CONFLICT
// DO NOTHING on SQLite, INSERT IGNORE on MariaDB (whose other warnings
// cannot arise: every field was validated to fit its column).
func (s *Store) insertValues(ctx context.Context, tx *sql.Tx, rows []Row) (int64, error) {
	var q strings.Builder
	if s.db.Dialect == sqldb.MySQL {
		q.WriteString("INSERT IGNORE INTO chat_messages (" + insertColumns + ") VALUES ")
	} else {
		q.WriteString("INSERT INTO chat_messages (" + insertColumns + ") VALUES ")
	}
	args := make([]any, 0, 7*len(rows))
	for i, r := range rows {
		if i > 0 {
			q.WriteByte(',')
		}
		q.WriteString("(?,?,?,?,?,?,?)")
		args = append(args, r.MessageID, r.RoomID, r.UserID, r.Username, r.Message, r.Type, r.ClientTS)
	}
	if s.db.Dialect != sqldb.MySQL {
		q.WriteString(" ON CONFLICT (message_id) DO NOTHING")
	}
	res, err := tx.ExecContext(ctx, s.db.Rebind(q.String()), args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// Page selects messages by ID range: [From, To) and after Cursor, at most
// Limit, in ID (time) order.
type Page struct {
	From, To, Cursor int64
	Limit            int
}

func (p Page) lower() int64 { return max(p.From, p.Cursor+1) }

const selectColumns = "message_id, room_id, user_id, username, message, message_type, client_ts"

// RoomMessages reads a page of one room's messages.
func (s *Store) RoomMessages(ctx context.Context, room int, p Page) ([]Row, error) {
	return s.rows(ctx, `SELECT `+selectColumns+` FROM chat_messages
		WHERE room_id = ? AND message_id >= ? AND message_id < ? ORDER BY message_id LIMIT ?`,
		room, p.lower(), p.To, p.Limit)
}

// UserMessages reads a page of one user's messages, in every room.
func (s *Store) UserMessages(ctx context.Context, user int, p Page) ([]Row, error) {
	return s.rows(ctx, `SELECT `+selectColumns+` FROM chat_messages
		WHERE user_id = ? AND message_id >= ? AND message_id < ? ORDER BY message_id LIMIT ?`,
		user, p.lower(), p.To, p.Limit)
}

func (s *Store) rows(ctx context.Context, query string, args ...any) ([]Row, error) {
	rs, err := s.db.QueryContext(ctx, s.db.Rebind(query), args...)
	if err != nil {
		return nil, fmt.Errorf("chat: query: %w", err)
	}
	defer rs.Close()
	var out []Row
	for rs.Next() {
		var r Row
		if err := rs.Scan(&r.MessageID, &r.RoomID, &r.UserID, &r.Username, &r.Message, &r.Type, &r.ClientTS); err != nil {
			return nil, fmt.Errorf("chat: scan: %w", err)
		}
		out = append(out, r)
	}
	if err := rs.Err(); err != nil {
		return nil, fmt.Errorf("chat: query: %w", err)
	}
	return out, nil
}

// Activity is a count of messages and the last message ID, per key.
type Activity struct {
	Key      int
	Messages int64
	LastID   int64
}

// UserRooms lists the rooms a user has written in.
func (s *Store) UserRooms(ctx context.Context, user int) ([]Activity, error) {
	return s.activity(ctx, `SELECT room_id, count(*), max(message_id) FROM chat_messages
		WHERE user_id = ? GROUP BY room_id ORDER BY room_id`, user)
}

// ActiveRooms lists the rooms with messages from sinceID on.
func (s *Store) ActiveRooms(ctx context.Context, sinceID int64) ([]Activity, error) {
	return s.activity(ctx, `SELECT room_id, count(*), max(message_id) FROM chat_messages
		WHERE message_id >= ? GROUP BY room_id ORDER BY room_id`, sinceID)
}

// TopUsers and TopRooms rank by messages from sinceID on.
func (s *Store) TopUsers(ctx context.Context, sinceID int64, n int) ([]Activity, error) {
	return s.activity(ctx, `SELECT user_id, count(*) AS c, max(message_id) FROM chat_messages
		WHERE message_id >= ? GROUP BY user_id ORDER BY c DESC, user_id LIMIT ?`, sinceID, n)
}

// TopRooms ranks rooms by messages from sinceID on.
func (s *Store) TopRooms(ctx context.Context, sinceID int64, n int) ([]Activity, error) {
	return s.activity(ctx, `SELECT room_id, count(*) AS c, max(message_id) FROM chat_messages
		WHERE message_id >= ? GROUP BY room_id ORDER BY c DESC, room_id LIMIT ?`, sinceID, n)
}

// PerSecond counts messages per second of server time from sinceID on; the
// key is the second since the ID epoch. An ID divided by 2^22·1000 is its
// second: the low 22 bits never carry into the millisecond.
func (s *Store) PerSecond(ctx context.Context, sinceID int64) ([]Activity, error) {
	div := "/"
	if s.db.Dialect == sqldb.MySQL {
		div = "DIV"
	}
	return s.activity(ctx, `SELECT message_id `+div+` 4194304000 AS sec, count(*), max(message_id) FROM chat_messages
		WHERE message_id >= ? GROUP BY sec ORDER BY sec`, sinceID)
}

func (s *Store) activity(ctx context.Context, query string, args ...any) ([]Activity, error) {
	rs, err := s.db.QueryContext(ctx, s.db.Rebind(query), args...)
	if err != nil {
		return nil, fmt.Errorf("chat: query: %w", err)
	}
	defer rs.Close()
	var out []Activity
	for rs.Next() {
		var a Activity
		if err := rs.Scan(&a.Key, &a.Messages, &a.LastID); err != nil {
			return nil, fmt.Errorf("chat: scan: %w", err)
		}
		out = append(out, a)
	}
	if err := rs.Err(); err != nil {
		return nil, fmt.Errorf("chat: query: %w", err)
	}
	return out, nil
}

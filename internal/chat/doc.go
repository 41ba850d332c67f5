// Package chat is a horizontally scalable WebSocket chat: clients connect to
// any of several servers, a message sent to a room reaches every member on
// every server through the broker, and persisters write every message to
// the SQL store in batches, exactly once in effect.
//
//	client ──ws──▶ server A ──envelopes──▶ broker topic "chat" ──Subscribe──▶ server A, server B ──ws──▶ room members
//	                                               └──Consume(group "persister")──▶ persister(s) ──batched INSERT──▶ SQL
//
// Sending. A server validates a frame (protocol.go), gives it a Snowflake
// ID whose millisecond is the serverTimestamp, and encodes the broadcast
// JSON once. It then adds the message to the server's open envelope
// (publish.go): one broker message carries every chat message that arrived
// while the previous envelopes awaited their ack — at low load one, under
// load dozens, and nothing ever waits for company. Envelopes are published
// in order by one goroutine (broker.PublishAsync; by default the next
// leaves when the previous is acked, like a group commit), so
// per-connection order holds. A
// per-connection reply loop waits for each message's envelope ack in
// order and only then answers OK, so OK means "durably accepted by the
// broker", and replies come in the order of the messages they answer. A
// connection holds at most MaxPending messages awaiting their ack; past
// that the server stops reading it and TCP pushes back.
//
// Why envelopes: with one broker message per chat message the broker was
// the busiest process on the machine (a publish, an ack, a delivery per
// server, a delivery and an ack for the persister — per chat message).
// Packing them cuts the broker's work per chat message by more than half
// and raises the rate the system sustains (docs/chat.md has the figures).
// The cost is coupling: a broker error fails every message of its
// envelope, and each message waits for its envelope's ack.
//
// Fan-out. Every server subscribes to the topic (broker.Subscribe: a
// JetStream ordered consumer, or a RabbitMQ stream queue): one log, read
// by every server in the same order, so every member of a room, on every
// server, sees the room's messages in one order. One goroutine per server
// takes each envelope apart and routes each entry to its room's
// connections by its room prefix, without decoding the JSON, and queues
// the same bytes on each. A connection's queue is bounded and never waited on: when it is
// full the connection is closed (1008, "slow consumer") rather than slowing
// its room; the client reconnects and reads what it missed from the query
// API.
//
// Persisting. Persisters share one consumer group. Each collects envelopes
// until they hold BatchSize messages or BatchWait has passed, inserts them
// in one transaction
// (PostgreSQL: one INSERT … SELECT FROM unnest(arrays); SQLite and MariaDB:
// multi-row INSERTs), skipping message IDs already stored, and acks only
// after the commit. A crash before the ack redelivers the batch and the
// insert skips what was stored: at-least-once delivery, one row per
// message.
//
// Querying. message_id is time-ordered, so time windows are ID ranges and
// each query is one range over one index: (room_id, message_id) for a
// room's history, (user_id, message_id) for a user's, the primary key for
// "active rooms" and the per-minute statistics. Pages continue after the
// last ID (no OFFSET).
//
// Guarantees, precisely. OK: the broker has stored the message; it will be
// persisted and broadcast. ERROR after a publish: the broker did not
// confirm in time; the message may or may not have been stored (the client
// cannot tell, and a resend is a new message). Broadcast to a connection is
// at most once: a connection closed as slow, or on a server that dies,
// misses what was sent meanwhile; the database has everything acked.
package chat

// Package chat is a horizontally scalable WebSocket chat: clients connect to
// any of several servers, a message sent to a room reaches every member on
// every server through the broker, and persisters write every message to
// the SQL store in batches, exactly once in effect.
//
//	client ──ws──▶ server A ──PublishAsync──▶ broker topic "chat" ──Subscribe──▶ server A, server B ──ws──▶ room members
//	                                               └──Consume(group "persister")──▶ persister(s) ──batched INSERT──▶ SQL
//
// Sending. A server validates a frame (protocol.go), gives it a Snowflake
// ID whose millisecond is the serverTimestamp, encodes the broadcast JSON
// once, and publishes it without waiting (broker.PublishAsync: pipelined,
// stored in the order one connection sent). A per-connection reply loop
// waits for each publish's ack in order and only then answers OK, so OK
// means "durably accepted by the broker", and replies come in the order of
// the messages they answer. A connection holds at most MaxPending messages
// awaiting their ack; past that the server stops reading it and TCP pushes
// back.
//
// Fan-out. Every server subscribes to the topic (broker.Subscribe: a
// JetStream ordered consumer, or a RabbitMQ stream queue): one log, read
// by every server in the same order, so every member of a room, on every
// server, sees the room's messages in one order. One goroutine per server
// routes each message to its room's connections by the room prefix of the
// broker payload, without decoding the JSON, and queues the same bytes on
// each. A connection's queue is bounded and never waited on: when it is
// full the connection is closed (1008, "slow consumer") rather than slowing
// its room; the client reconnects and reads what it missed from the query
// API.
//
// Persisting. Persisters share one consumer group. Each collects up to
// BatchSize messages or BatchWait, inserts them in one transaction
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

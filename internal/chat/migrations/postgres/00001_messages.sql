-- +goose Up
-- message_id is the Snowflake ID the accepting server gave the message: it
-- is the idempotency key (a redelivered message inserts nothing) and it
-- holds the server time to the millisecond, so time ranges are ID ranges
-- and every index below ends in message_id: a room's or a user's messages
-- in a time window are one contiguous range of one B-tree, already in
-- order, and the next page starts after the last ID (no OFFSET).
CREATE TABLE chat_messages (
    message_id   BIGINT PRIMARY KEY,
    room_id      INTEGER NOT NULL,
    user_id      INTEGER NOT NULL,
    username     VARCHAR(20) NOT NULL,
    message      TEXT NOT NULL,
    message_type VARCHAR(5) NOT NULL,
    client_ts    VARCHAR(64) NOT NULL -- the client's timestamp, as sent
);
CREATE INDEX chat_messages_room ON chat_messages (room_id, message_id);
-- INCLUDE room_id: "which rooms has this user written in" reads the index only.
CREATE INDEX chat_messages_user ON chat_messages (user_id, message_id) INCLUDE (room_id);

-- +goose Down
DROP TABLE chat_messages;

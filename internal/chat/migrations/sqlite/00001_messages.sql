-- +goose Up
-- See the PostgreSQL migration for why every index ends in message_id.
CREATE TABLE chat_messages (
    message_id   INTEGER PRIMARY KEY, -- the rowid itself: rows are stored in ID (time) order
    room_id      INTEGER NOT NULL,
    user_id      INTEGER NOT NULL,
    username     TEXT NOT NULL,
    message      TEXT NOT NULL,
    message_type TEXT NOT NULL,
    client_ts    TEXT NOT NULL
);
CREATE INDEX chat_messages_room ON chat_messages (room_id, message_id);
CREATE INDEX chat_messages_user ON chat_messages (user_id, message_id, room_id);

-- +goose Down
DROP TABLE chat_messages;

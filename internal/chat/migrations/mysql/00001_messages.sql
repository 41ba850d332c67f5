-- +goose Up
-- See the PostgreSQL migration for why every index ends in message_id.
-- InnoDB clusters rows by the primary key, so rows are stored in ID (time)
-- order and time-window scans read neighbouring pages.
CREATE TABLE chat_messages (
    message_id   BIGINT PRIMARY KEY,
    room_id      INT NOT NULL,
    user_id      INT NOT NULL,
    username     VARCHAR(20) CHARACTER SET ascii NOT NULL,
    message      VARCHAR(500) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    message_type VARCHAR(5) CHARACTER SET ascii NOT NULL,
    client_ts    VARCHAR(64) CHARACTER SET ascii NOT NULL,
    INDEX chat_messages_room (room_id, message_id),
    INDEX chat_messages_user (user_id, message_id, room_id)
);

-- +goose Down
DROP TABLE chat_messages;

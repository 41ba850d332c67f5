-- +goose Up
-- Messages the store could not hold, set aside so that they do not block
-- the stream: the message as JSON (escapes make any text storable), why
-- it was refused, when. message_id is the key: a redelivery sets nothing
-- aside twice.
CREATE TABLE chat_dead_letters (
    message_id   BIGINT PRIMARY KEY,
    reason       VARCHAR(500) NOT NULL,
    payload      TEXT NOT NULL,
    set_aside_at DATETIME(3) NOT NULL
);

-- +goose Down
DROP TABLE chat_dead_letters;

-- +goose Up
-- One row per claimed Snowflake worker ID; a row whose expires_at (unix ms)
-- is in the past is free to claim.
CREATE TABLE snowflake_workers (
    worker_id  INTEGER NOT NULL PRIMARY KEY,
    owner      VARCHAR(128) NOT NULL,
    expires_at BIGINT NOT NULL
);

-- +goose Down
DROP TABLE snowflake_workers;

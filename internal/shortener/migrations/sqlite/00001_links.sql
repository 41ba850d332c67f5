-- +goose Up
-- Times are unix milliseconds in BIGINT columns, the same on every engine.
CREATE TABLE links (
    code              VARCHAR(32) PRIMARY KEY,
    url               VARCHAR(2048) NOT NULL,
    created_at        BIGINT NOT NULL,
    expires_at        BIGINT NULL,
    delete_token_hash CHAR(64) NOT NULL
);

-- Click counts, written in batches by the click consumer: one row per
-- (link, day, referrer host, browser family). One table rather than one per
-- dimension: a batch upserts a third as many rows, and a link's stats are
-- GROUP BYs over its own few rows (the primary key starts with code).
CREATE TABLE link_clicks (
    code     VARCHAR(32) NOT NULL,
    day      CHAR(10) NOT NULL,
    referrer VARCHAR(255) NOT NULL,
    agent    VARCHAR(32) NOT NULL,
    clicks   BIGINT NOT NULL,
    PRIMARY KEY (code, day, referrer, agent)
);

-- Broker messages already counted: delivery is at-least-once, counting is
-- exactly-once because a batch id is recorded in the same transaction.
CREATE TABLE click_batches (
    id           VARCHAR(32) PRIMARY KEY,
    processed_at BIGINT NOT NULL
);
CREATE INDEX click_batches_processed_at ON click_batches (processed_at);

-- +goose Down
DROP TABLE click_batches;
DROP TABLE link_clicks;
DROP TABLE links;

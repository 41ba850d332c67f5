-- +goose Up
-- Times are unix milliseconds in BIGINT columns, the same on every engine.
CREATE TABLE links (
    code              VARCHAR(32) PRIMARY KEY,
    url               VARCHAR(2048) NOT NULL,
    created_at        BIGINT NOT NULL,
    expires_at        BIGINT NULL,
    delete_token_hash CHAR(64) NOT NULL
);

-- Click aggregates, written in batches by the click consumer.
CREATE TABLE link_clicks_daily (
    code   VARCHAR(32) NOT NULL,
    day    CHAR(10) NOT NULL,
    clicks BIGINT NOT NULL,
    PRIMARY KEY (code, day)
);
CREATE TABLE link_referrers (
    code   VARCHAR(32) NOT NULL,
    host   VARCHAR(255) NOT NULL,
    clicks BIGINT NOT NULL,
    PRIMARY KEY (code, host)
);
CREATE TABLE link_agents (
    code   VARCHAR(32) NOT NULL,
    family VARCHAR(32) NOT NULL,
    clicks BIGINT NOT NULL,
    PRIMARY KEY (code, family)
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
DROP TABLE link_agents;
DROP TABLE link_referrers;
DROP TABLE link_clicks_daily;
DROP TABLE links;

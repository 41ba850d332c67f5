-- +goose Up
-- Each host's robots.txt as last fetched, shared by every crawl and every
-- crawler process: a restarted or second crawler obeys it without asking
-- the host again. status 0: the fetch got no answer.
CREATE TABLE crawler_robots (
    host       VARCHAR(300) PRIMARY KEY,
    status     INTEGER NOT NULL,
    body       TEXT NOT NULL,
    fetched_at BIGINT NOT NULL
);

-- +goose Down
DROP TABLE crawler_robots;

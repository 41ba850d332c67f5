-- +goose Up
-- Several crawler instances share a crawl. A host belongs to one of 256
-- shards (a hash of its name, written by the crawler when it records the
-- URL); an instance fetches a shard's hosts only while it holds the
-- shard's lease. loaded_by is the instance whose frontier holds a queued
-- URL ('' while none does): a shard's owner takes the URLs others record
-- for its hosts by that mark. shard -1: recorded before sharding, set at
-- the next start.
ALTER TABLE crawler_urls ADD COLUMN shard INTEGER NOT NULL DEFAULT -1;
ALTER TABLE crawler_urls ADD COLUMN loaded_by VARCHAR(100) NOT NULL DEFAULT '';
DROP INDEX crawler_urls_queued;
CREATE INDEX crawler_urls_shard ON crawler_urls (crawl_id, state, shard);
CREATE INDEX crawler_urls_unloaded ON crawler_urls (crawl_id, loaded_by, state);

-- The instances alive: each writes its heartbeat every few seconds.
CREATE TABLE crawler_members (
    instance     VARCHAR(100) PRIMARY KEY,
    started_at   BIGINT NOT NULL,
    heartbeat_at BIGINT NOT NULL
);

-- Who may fetch each shard's hosts, and until when (unix ms). A lease is
-- taken only when free or expired, and an instance stops fetching before
-- its lease runs out, so one host is never fetched by two instances.
CREATE TABLE crawler_shards (
    shard       INTEGER PRIMARY KEY,
    owner       VARCHAR(100) NOT NULL DEFAULT '',
    lease_until BIGINT NOT NULL DEFAULT 0
);

-- +goose Down
DROP TABLE crawler_shards;
DROP TABLE crawler_members;
DROP INDEX crawler_urls_unloaded;
DROP INDEX crawler_urls_shard;
CREATE INDEX crawler_urls_queued ON crawler_urls (crawl_id, state, host);
ALTER TABLE crawler_urls DROP COLUMN loaded_by;
ALTER TABLE crawler_urls DROP COLUMN shard;

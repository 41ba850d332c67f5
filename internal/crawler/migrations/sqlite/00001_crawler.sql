-- +goose Up
-- A crawl: its settings (JSON) and its state.
CREATE TABLE crawler_crawls (
    crawl_id   BIGINT PRIMARY KEY,
    config     TEXT NOT NULL,
    state      VARCHAR(16) NOT NULL, -- running, paused, stopped, done
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- Every URL a crawl has discovered, once: the URL-seen set (a Bloom filter
-- in memory stands in front of it) and the frontier's durable state. A URL
-- stays queued until its fetch is recorded, so one in flight when its
-- crawler died is queued again, once. url_hash is the first 8 bytes of the
-- normalised URL's SHA-256.
CREATE TABLE crawler_urls (
    crawl_id      BIGINT NOT NULL,
    url_hash      BIGINT NOT NULL,
    url           TEXT NOT NULL,
    host          VARCHAR(300) NOT NULL,
    depth         INTEGER NOT NULL,
    priority      INTEGER NOT NULL,
    redirects     INTEGER NOT NULL DEFAULT 0,
    state         VARCHAR(16) NOT NULL, -- queued, done, skipped
    reason        VARCHAR(100) NOT NULL DEFAULT '',
    discovered_at BIGINT NOT NULL,
    PRIMARY KEY (crawl_id, url_hash)
);
CREATE INDEX crawler_urls_queued ON crawler_urls (crawl_id, state, host);

-- What a fetch found. The body is in the blob store under blob_key.
CREATE TABLE crawler_pages (
    crawl_id     BIGINT NOT NULL,
    url_hash     BIGINT NOT NULL,
    url          TEXT NOT NULL,
    host         VARCHAR(300) NOT NULL,
    status       INTEGER NOT NULL,
    content_type VARCHAR(200) NOT NULL DEFAULT '',
    title        VARCHAR(500) NOT NULL DEFAULT '',
    description  VARCHAR(1000) NOT NULL DEFAULT '',
    canonical    TEXT NOT NULL,
    lang         VARCHAR(35) NOT NULL DEFAULT '',
    bytes        BIGINT NOT NULL,
    truncated    SMALLINT NOT NULL DEFAULT 0,
    links        INTEGER NOT NULL DEFAULT 0,
    exact_hash   VARCHAR(32) NOT NULL DEFAULT '',
    simhash      BIGINT NOT NULL DEFAULT 0,
    dup_kind     VARCHAR(8) NOT NULL DEFAULT '', -- exact, near
    dup_of       BIGINT NOT NULL DEFAULT 0,      -- the url_hash of the page it duplicates
    blob_key     VARCHAR(200) NOT NULL DEFAULT '',
    error        VARCHAR(300) NOT NULL DEFAULT '',
    fetched_at   BIGINT NOT NULL,
    fetch_ms     INTEGER NOT NULL,
    PRIMARY KEY (crawl_id, url_hash)
);
CREATE INDEX crawler_pages_title ON crawler_pages (crawl_id, title);
CREATE INDEX crawler_pages_exact ON crawler_pages (crawl_id, exact_hash);

-- +goose Down
DROP TABLE crawler_pages;
DROP TABLE crawler_urls;
DROP TABLE crawler_crawls;

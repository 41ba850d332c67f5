-- +goose Up
-- album_id is a Snowflake: it orders albums by creation, so the listing's
-- cursor is "the last ID seen" and a page is one index range (no OFFSET).
CREATE TABLE albums (
    album_id    BIGINT PRIMARY KEY,
    artist      VARCHAR(200) NOT NULL,
    title       VARCHAR(200) NOT NULL,
    release_year INTEGER NOT NULL,
    image_key   VARCHAR(100) NOT NULL,
    image_size  BIGINT NOT NULL,
    image_type  VARCHAR(20) NOT NULL,
    created_at  BIGINT NOT NULL -- unix milliseconds
);
-- The listing's filters: by artist (and year), by year; newest first.
CREATE INDEX albums_artist ON albums (artist, release_year, album_id);
CREATE INDEX albums_year ON albums (release_year, album_id);

-- Review counts, one row per album, applied in batches by the consumer.
CREATE TABLE album_reviews (
    album_id BIGINT PRIMARY KEY,
    likes    BIGINT NOT NULL,
    dislikes BIGINT NOT NULL
);

-- The reviews already counted, by review ID: a redelivered review is found
-- here and skipped, so none is counted twice.
CREATE TABLE album_reviews_applied (
    review_id BIGINT PRIMARY KEY
);

-- +goose Down
DROP TABLE album_reviews_applied;
DROP TABLE album_reviews;
DROP TABLE albums;

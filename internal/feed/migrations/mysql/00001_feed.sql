-- +goose Up
-- A user, with its counters kept beside it (updated in the transaction of
-- the action they count) and its own timeline mode ('' the deployment's).
CREATE TABLE feed_users (
    user_id    BIGINT PRIMARY KEY,
    handle     VARCHAR(32) NOT NULL UNIQUE,
    name       VARCHAR(100) NOT NULL,
    mode       VARCHAR(8) NOT NULL DEFAULT '',
    token_hash VARCHAR(64) NOT NULL,
    followers  INTEGER NOT NULL DEFAULT 0,
    following  INTEGER NOT NULL DEFAULT 0,
    posts      INTEGER NOT NULL DEFAULT 0,
    liked      INTEGER NOT NULL DEFAULT 0, -- likes it gave: with none, marking a page's likes costs nothing
    created_at BIGINT NOT NULL
);

-- A user's token is kept only as its SHA-256; the few users with a mode of
-- their own are found by it when a celebrity's post fans out to them.
CREATE INDEX feed_users_token ON feed_users (token_hash);
CREATE INDEX feed_users_mode ON feed_users (mode);

-- The social graph, both ways: by follower (whom a reader follows) and by
-- followee (whom a post fans out to).
CREATE TABLE feed_follows (
    follower_id BIGINT NOT NULL,
    followee_id BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (follower_id, followee_id)
);
CREATE INDEX feed_follows_followee ON feed_follows (followee_id, follower_id);

-- A post (share_of: the post it shares, 0 for an original). A deleted post
-- keeps its row, so that a timeline entry pointing at it is recognised and
-- dropped.
CREATE TABLE feed_posts (
    post_id    BIGINT PRIMARY KEY,
    author_id  BIGINT NOT NULL,
    body       TEXT NOT NULL,
    share_of   BIGINT NOT NULL DEFAULT 0,
    likes      INTEGER NOT NULL DEFAULT 0,
    comments   INTEGER NOT NULL DEFAULT 0,
    shares     INTEGER NOT NULL DEFAULT 0,
    deleted    SMALLINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL
);
CREATE INDEX feed_posts_author ON feed_posts (author_id, post_id);

CREATE TABLE feed_likes (
    post_id    BIGINT NOT NULL,
    user_id    BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (post_id, user_id)
);

CREATE TABLE feed_comments (
    comment_id BIGINT PRIMARY KEY,
    post_id    BIGINT NOT NULL,
    author_id  BIGINT NOT NULL,
    body       TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX feed_comments_post ON feed_comments (post_id, comment_id);

-- +goose Down
DROP TABLE feed_comments;
DROP TABLE feed_likes;
DROP TABLE feed_posts;
DROP TABLE feed_follows;
DROP TABLE feed_users;

-- +goose Up
CREATE TABLE things (
    name  VARCHAR(64) NOT NULL PRIMARY KEY,
    value BIGINT NOT NULL
);

-- +goose Down
DROP TABLE things;

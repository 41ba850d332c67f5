-- +goose Up
-- A submitted job. spec is its JSON (job name, parameters, splits, R), the
-- same document the workers read from the blob store.
CREATE TABLE mapreduce_jobs (
    job_id       VARCHAR(32) PRIMARY KEY,
    name         VARCHAR(64) NOT NULL,
    spec         TEXT NOT NULL,
    state        VARCHAR(16) NOT NULL, -- map, reduce, done, failed
    error        TEXT NOT NULL,
    submitted_at BIGINT NOT NULL, -- unix ms
    finished_at  BIGINT NOT NULL DEFAULT 0
);

-- One row per attempt of a task: the coordinator's whole memory of a job.
-- A task is done when one of its attempts is; published is the outbox flag
-- of the attempt's task message (a coordinator that crashed between the
-- insert and the publish sends it at restart).
CREATE TABLE mapreduce_attempts (
    job_id      VARCHAR(32) NOT NULL,
    kind        VARCHAR(8) NOT NULL, -- map, reduce
    idx         INTEGER NOT NULL,
    attempt     INTEGER NOT NULL,
    state       VARCHAR(16) NOT NULL,
    worker      VARCHAR(100) NOT NULL DEFAULT '',
    backup      SMALLINT NOT NULL DEFAULT 0,
    published   SMALLINT NOT NULL DEFAULT 0,
    queued_at   BIGINT NOT NULL,
    started_at  BIGINT NOT NULL DEFAULT 0,
    finished_at BIGINT NOT NULL DEFAULT 0,
    records     BIGINT NOT NULL DEFAULT 0,
    bytes_out   BIGINT NOT NULL DEFAULT 0,
    error       TEXT NOT NULL,
    PRIMARY KEY (job_id, kind, idx, attempt)
);

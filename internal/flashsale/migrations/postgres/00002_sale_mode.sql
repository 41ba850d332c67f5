-- +goose Up
-- A sale runs in one mode, the one of the process that made it: a process
-- orders, sweeps and settles only its own mode's sales (a sync release
-- gives the unit back to the hot row, an async one to the gate).
ALTER TABLE flashsale_sales ADD COLUMN mode VARCHAR(8) NOT NULL DEFAULT 'async';

-- +goose Down
ALTER TABLE flashsale_sales DROP COLUMN mode;

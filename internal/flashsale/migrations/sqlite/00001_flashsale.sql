-- +goose Up
-- A sale. stock_left is the sync mode's hot row: every order of the sale
-- decrements it under the row's lock. The async mode counts units in its
-- gate and leaves this column alone.
CREATE TABLE flashsale_sales (
    sale_id        BIGINT PRIMARY KEY,
    item           VARCHAR(200) NOT NULL,
    stock          BIGINT NOT NULL CHECK (stock > 0),
    stock_left     BIGINT NOT NULL CHECK (stock_left >= 0),
    per_user_limit INTEGER NOT NULL,
    price_cents    BIGINT NOT NULL,
    starts_at      BIGINT NOT NULL, -- unix ms
    created_at     BIGINT NOT NULL
);

-- One row per order; the unique key makes a repeated or concurrent request
-- with the same Idempotency-Key find the first order.
CREATE TABLE flashsale_orders (
    order_id        BIGINT PRIMARY KEY,
    sale_id         BIGINT NOT NULL,
    user_id         VARCHAR(64) NOT NULL,
    idempotency_key VARCHAR(100) NOT NULL,
    state           VARCHAR(16) NOT NULL, -- reserved, paid, released
    reason          VARCHAR(200) NOT NULL DEFAULT '',
    charge_id       VARCHAR(64) NOT NULL DEFAULT '',
    created_at      BIGINT NOT NULL,
    settled_at      BIGINT NOT NULL DEFAULT 0,
    UNIQUE (sale_id, idempotency_key)
);
CREATE INDEX flashsale_orders_state ON flashsale_orders (sale_id, state, created_at);
CREATE INDEX flashsale_orders_user ON flashsale_orders (sale_id, user_id);

-- The transactional outbox: written in the same transaction as the order,
-- published by the relay, then marked.
CREATE TABLE flashsale_outbox (
    order_id   BIGINT PRIMARY KEY,
    sale_id    BIGINT NOT NULL,
    published  SMALLINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL
);
CREATE INDEX flashsale_outbox_pending ON flashsale_outbox (published, order_id);

-- What the notification subscriber sent, once per order and kind.
CREATE TABLE flashsale_notifications (
    order_id BIGINT NOT NULL,
    kind     VARCHAR(16) NOT NULL,
    sent_at  BIGINT NOT NULL,
    PRIMARY KEY (order_id, kind)
);

-- +goose Down
DROP TABLE flashsale_notifications;
DROP TABLE flashsale_outbox;
DROP TABLE flashsale_orders;
DROP TABLE flashsale_sales;

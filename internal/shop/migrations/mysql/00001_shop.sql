-- +goose Up
-- product_id is a Snowflake: newest first is descending ID, and every
-- listing's cursor is "the last ID seen" (one index range, no OFFSET).
CREATE TABLE shop_products (
    product_id  BIGINT PRIMARY KEY,
    name        VARCHAR(200) NOT NULL,
    category    VARCHAR(50) NOT NULL,
    price_cents BIGINT NOT NULL,
    stock       BIGINT NOT NULL CHECK (stock >= 0),
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

-- The search index: one row per (term, product). A search walks one term's
-- rows in product ID order (binary collation: terms are compared as bytes) and probes the others by primary key, so a page
-- of 20 costs about 20 × terms index lookups whatever the catalog's size.
CREATE TABLE shop_product_terms (
    term       VARCHAR(64) COLLATE utf8mb4_bin NOT NULL,
    product_id BIGINT NOT NULL,
    PRIMARY KEY (term, product_id)
);

CREATE TABLE shop_carts (
    cart_id    BIGINT PRIMARY KEY,
    state      VARCHAR(16) NOT NULL, -- open, ordered
    created_at BIGINT NOT NULL
);

CREATE TABLE shop_cart_items (
    cart_id    BIGINT NOT NULL,
    product_id BIGINT NOT NULL,
    quantity   INTEGER NOT NULL,
    PRIMARY KEY (cart_id, product_id)
);

-- One order per cart and per idempotency key: the unique keys are what
-- make a repeated or concurrent checkout find the first one.
CREATE TABLE shop_orders (
    order_id        BIGINT PRIMARY KEY,
    idempotency_key VARCHAR(100) COLLATE utf8mb4_bin NOT NULL UNIQUE,
    cart_id         BIGINT NOT NULL UNIQUE,
    state           VARCHAR(16) NOT NULL, -- pending, paid, failed
    total_cents     BIGINT NOT NULL,
    charge_id       VARCHAR(64) NOT NULL DEFAULT '',
    reason          VARCHAR(200) NOT NULL DEFAULT '',
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
-- The reconciler's scan: pending orders, oldest first.
CREATE INDEX shop_orders_state ON shop_orders (state, updated_at);

CREATE TABLE shop_order_items (
    order_id    BIGINT NOT NULL,
    product_id  BIGINT NOT NULL,
    quantity    INTEGER NOT NULL,
    price_cents BIGINT NOT NULL,
    PRIMARY KEY (order_id, product_id)
);

-- +goose Down
DROP TABLE shop_order_items;
DROP TABLE shop_orders;
DROP TABLE shop_cart_items;
DROP TABLE shop_carts;
DROP TABLE shop_product_terms;
DROP TABLE shop_products;

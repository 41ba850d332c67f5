-- +goose Up
-- An order keeps the name a product had when it was bought, as it keeps the price.
ALTER TABLE shop_order_items ADD COLUMN name VARCHAR(200) NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE shop_order_items DROP COLUMN name;

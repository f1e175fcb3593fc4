-- Sample data for scripts/demo.sh: the shop examples/quickstart.lua replicates.
DROP TABLE IF EXISTS order_events, orders, products;
CREATE TABLE products (
  sku         text PRIMARY KEY,
  name        text NOT NULL,
  price       numeric(10,2) NOT NULL,
  active      boolean NOT NULL DEFAULT true,
  description text
);
CREATE TABLE orders (
  id         bigint PRIMARY KEY,
  customer   text NOT NULL,
  status     text NOT NULL,
  amount     numeric(12,2) NOT NULL,
  items      jsonb NOT NULL,
  tags       text[],
  updated_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX orders_sync ON orders (updated_at, id);
CREATE TABLE order_events (
  id       bigserial PRIMARY KEY,
  order_id bigint NOT NULL,
  event    text NOT NULL,
  at       timestamptz NOT NULL DEFAULT clock_timestamp()
);

INSERT INTO products (sku, name, price, active, description)
SELECT 'SKU-' || g, 'Product ' || g, round((g * 3.7)::numeric % 200 + 0.99, 2), g % 10 <> 0,
       CASE WHEN g % 3 = 0 THEN 'Ünïcode ✓ and "quotes"' END
FROM generate_series(1, 50) g;

INSERT INTO orders (id, customer, status, amount, items, tags, updated_at)
SELECT g, 'customer' || (1 + g % 1000) || '@example.com', (ARRAY['new','paid','shipped'])[1 + g % 3],
       round((g % 997) * 1.37, 2),
       jsonb_build_object('sku', 'SKU-' || (1 + g % 50), 'qty', 1 + g % 4),
       CASE WHEN g % 7 = 0 THEN ARRAY['gift', 'express'] END,
       now() - interval '30 days' + g * interval '1 second'
FROM generate_series(1, 50000) g;

INSERT INTO order_events (order_id, event, at)
SELECT 1 + g % 50000, (ARRAY['created','paid','shipped'])[1 + g % 3],
       now() - interval '30 days' + g * interval '1 second'
FROM generate_series(1, 20000) g;
ANALYZE;

-- Sample data for scripts/demo.sh: a small shop.
DROP TABLE IF EXISTS orders;
DROP TABLE IF EXISTS customers;
CREATE TABLE customers (
  id         bigint PRIMARY KEY,
  name       text NOT NULL,
  email      text,
  country    char(2),
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE orders (
  id          bigint PRIMARY KEY,
  customer_id bigint NOT NULL REFERENCES customers(id),
  status      text NOT NULL,
  amount      numeric(12,2) NOT NULL,
  items       jsonb NOT NULL,
  tags        text[],
  updated_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX orders_updated_at ON orders (updated_at, id);

INSERT INTO customers (id, name, email, country)
SELECT g, 'Customer ' || g, 'customer' || g || '@example.com',
       (ARRAY['DE','FR','US','JP','BR'])[1 + g % 5]
FROM generate_series(1, 1000) g;

INSERT INTO orders (id, customer_id, status, amount, items, tags, updated_at)
SELECT g, 1 + g % 1000, (ARRAY['new','paid','shipped'])[1 + g % 3],
       round((g % 997) * 1.37, 2),
       jsonb_build_object('sku', 'SKU-' || (g % 50), 'qty', 1 + g % 4),
       CASE WHEN g % 7 = 0 THEN ARRAY['gift', 'express'] END,
       now() - interval '30 days' + g * interval '1 second'
FROM generate_series(1, 50000) g;
ANALYZE;

-- A local SQLite read replica of a PostgreSQL shop database.
--
--   PG_DSN=postgresql://repl@127.0.0.1:5432/shop siphon run examples/quickstart.lua
--
-- PG_DSN is a libpq connection string or URI. Keep the password out of the script:
-- use ~/.pgpass or PGPASSWORD, or put it in PG_DSN from your secret store. The role needs
-- only SELECT on the replicated tables; siphon reads in read-only transactions anyway.

local pg = siphon.postgres { dsn = siphon.env("PG_DSN") }

-- Relative to this script's folder.
siphon.target { path = siphon.env("REPLICA", "shop-replica.db") }

-- Incremental: rows changed since the last run, in keyset pages ordered by
-- (updated_at, id). Give the table that index:
--   CREATE INDEX orders_sync ON public.orders (updated_at, id);
siphon.replicate "orders" {
  source   = pg,
  from     = "public.orders",
  key      = "id",                     -- default: the source's primary key
  cursor   = { "updated_at", "id" },
  every    = "30s",                    -- "500ms", "30s", "5m", "1h", "1m30s" or seconds
  batch    = 5000,                     -- rows per page
  lookback = "5s",                     -- re-read rows whose transaction committed late
}

-- A table that only grows: its serial key is the cursor, rows are only inserted.
siphon.replicate "order_events" {
  source = pg,
  from   = "public.order_events",
  cursor = "id",
  write  = "append",
  every  = "10s",
}

-- A small reference table: no cursor means a full refresh on each run.
siphon.replicate "products" {
  source  = pg,
  from    = "public.products",
  columns = { "sku", "name", "price", "active" },
  every   = "5m",
}

-- A query instead of a table: the paid orders only. The keyset condition reaches the
-- orders (updated_at, id) index through the sub-select; an order that stops being paid
-- leaves the query's result, and the reconcile removes it from the replica.
siphon.replicate "paid_orders" {
  source  = pg,
  query   = [[
    SELECT id, customer, amount, updated_at
    FROM public.orders
    WHERE status = 'paid'
  ]],
  key     = "id",                      -- a query has no primary key: name it
  cursor  = { "updated_at", "id" },
  every   = "30s",
  deletes = { reconcile = "10m" },
}

siphon.log.info("replicating %d tables into %s", 4, siphon.env("REPLICA", "shop-replica.db"))

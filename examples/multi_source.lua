-- Three sources, one replica: a PostgreSQL billing database, a MariaDB shop and an app's
-- local SQLite file, replicated side by side into one SQLite target.
--
--   BILLING_DSN=postgresql://… SHOP_PW=… siphon run examples/multi_source.lua
--
-- Environment: BILLING_DSN (libpq conninfo or URI), SHOP_PW, APP_DB (the SQLite source
-- file; a relative path is relative to this script's folder, as REPLICA's is); optional
-- SHOP_HOST, SHOP_PORT, SHOP_USER, SHOP_DB, REPLICA.
--
-- Each table runs on its own schedule and its own connection; a slow or failing source
-- never holds the others back (siphon's I/O is non-blocking, errors are per table).

-- A statement that gets no data for 2 minutes fails and the run is retried on a new
-- connection: a frozen server or a dropped network path costs one run, not a hung table.
local billing = siphon.postgres { dsn = siphon.env("BILLING_DSN"), read_timeout = 120 }

local shop = siphon.mysql {
  host     = siphon.env("SHOP_HOST", "127.0.0.1"),
  port     = tonumber(siphon.env("SHOP_PORT", "3306")),
  user     = siphon.env("SHOP_USER", "repl"),
  password = siphon.env("SHOP_PW"),
  database = siphon.env("SHOP_DB", "shop"),
}

-- Opened read-only; siphon never writes to it.
local app = siphon.sqlite { path = siphon.env("APP_DB") }

siphon.target { path = siphon.env("REPLICA", "replica.db") }

-- PostgreSQL: invoices changed since the last run; the timestamptz cursor arrives in UTC.
siphon.replicate "invoices" {
  source   = billing,
  from     = "public.invoices",
  cursor   = { "updated_at", "id" },
  every    = "30s",
  lookback = "5s",
}

-- MariaDB: orders by their ON UPDATE CURRENT_TIMESTAMP(6) column.
siphon.replicate "orders" {
  source   = shop,
  from     = "orders",
  cursor   = { "updated_at", "id" },
  every    = "30s",
  lookback = "5s",
}

-- SQLite: the app's settings, small enough for a full refresh every minute.
siphon.replicate "settings" {
  source = app,
  from   = "settings",
  every  = "1m",
}

siphon.on("error", function(ev)
  siphon.log.error("%s (%s) failed, attempt %d: %s", ev.table, ev.source or "?",
                   ev.attempt or 1, ev.error)
end)

siphon.on("synced", function(ev)
  if ev.rows > 0 then siphon.log.info("%s +%d rows in %d ms", ev.table, ev.rows, ev.duration_ms) end
end)

-- A read replica of a MariaDB (or MySQL) shop database in a local SQLite file.
--
--   SHOP_PW=… siphon run examples/mysql.lua
--
-- Environment: SHOP_PW (required); SHOP_HOST, SHOP_PORT, SHOP_USER, SHOP_DB and REPLICA
-- (defaults 127.0.0.1, 3306, repl, shop, shop-replica.db); SHOP_CA (optional): the CA file
-- (PEM) that signed the server's certificate, to connect over verified TLS.
--
-- The MySQL user needs SELECT on the replicated tables, and PROCESS so that siphon can see
-- open write transactions (the safe horizon, which keeps a late commit from being skipped):
--   CREATE USER 'repl'@'%' IDENTIFIED BY '…';
--   GRANT SELECT ON shop.* TO 'repl'@'%';
--   GRANT PROCESS ON *.* TO 'repl'@'%';
-- siphon's session is read-only anyway (SET SESSION TRANSACTION READ ONLY), in UTC and
-- utf8mb4, so TIMESTAMP values arrive as '2024-01-01T10:00:00Z' whatever the server's zone.

local shop = siphon.mysql {
  host     = siphon.env("SHOP_HOST", "127.0.0.1"),
  port     = tonumber(siphon.env("SHOP_PORT", "3306")),
  user     = siphon.env("SHOP_USER", "repl"),
  password = siphon.env("SHOP_PW"),
  database = siphon.env("SHOP_DB", "shop"),
  -- Verified TLS: the server's certificate must be signed by this CA and name SHOP_HOST,
  -- or siphon does not connect (a cloud database's CA bundle, say; a relative path is
  -- relative to this script's folder). nil (SHOP_CA unset) connects without TLS.
  tls_ca   = siphon.env("SHOP_CA", nil),
  -- tls = true,                       -- TLS without verifying the certificate
  -- socket = "/run/mysqld/mysqld.sock",  -- a unix socket instead of host/port
}
-- Or, in one string (percent-encode special characters in the password):
--   local shop = siphon.mysql { dsn = siphon.env("SHOP_DSN") }  -- mysql://repl:pw@host:3306/shop

siphon.target { path = siphon.env("REPLICA", "shop-replica.db") }

-- Incremental: rows changed since the last run, in keyset pages. siphon writes
-- `updated_at >= ? AND (updated_at > ? OR id > ?)` so MariaDB reads the (updated_at, id)
-- index as a range; give the table that index:
--   ALTER TABLE orders ADD INDEX orders_sync (updated_at, id);
-- updated_at must be NOT NULL, e.g.
--   updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6)
siphon.replicate "orders" {
  source   = shop,
  from     = "orders",               -- or "shop.orders"
  cursor   = { "updated_at", "id" },
  every    = "30s",
  batch    = 5000,
  lookback = "5s",                   -- re-read rows that committed late
}

-- A table that only grows: the auto-increment key is the cursor, rows are only inserted.
siphon.replicate "order_events" {
  source = shop,
  from   = "order_events",
  cursor = { "id" },
  write  = "append",
  every  = "10s",
}

-- An older table without a PRIMARY KEY, but with UNIQUE KEY (currency, day) over NOT NULL
-- columns: that key is its key, as if it were the primary key (`siphon check` says so). A
-- table without such a key needs `key = { … }`.
siphon.replicate "fx_rates" {
  source = shop,
  from   = "fx_rates",
  every  = "1h",
}

-- Leading and trailing spaces off, in time linear in the value's length. The usual
-- s:gsub("%s+$", "") backtracks over every run of inner spaces: quadratic, so a value with
-- 40k spaces in a row runs past the instruction budget and that row fails.
local function trim(s)
  local first = s:find("%S")
  if not first then return "" end
  return s:match(".*%S", first)
end

-- Small reference tables: no cursor means a full refresh on each run.
siphon.replicate "products" {
  source  = shop,
  from    = "products",
  every   = "5m",
  columns = { "sku", "name", "price", "active" },
  transform = function(row)
    -- DECIMAL arrives as exact text ("19.90"); keep it that way for money.
    row.name = row.name and trim(row.name)
    return row
  end,
}

siphon.on("error", function(ev)
  siphon.log.error("%s failed (attempt %d): %s", ev.table, ev.attempt or 1, ev.error)
end)

siphon.on("synced", function(ev)
  if ev.rows > 0 then siphon.log.info("%s +%d rows in %d ms", ev.table, ev.rows, ev.duration_ms) end
end)

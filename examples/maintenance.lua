-- Keeping the replica ready for its readers: an index siphon does not make, and a summary
-- table rebuilt a little after the syncs that changed orders (one rebuild for a burst of
-- them, not one per sync).
--
--   PG_DSN=postgresql://repl@127.0.0.1:5432/shop siphon run examples/maintenance.lua
--   sqlite3 examples/shop-replica.db 'SELECT * FROM order_totals'
--
-- siphon.target:exec runs SQL on the replica's writer between pages, never in the middle of
-- one, and returns the rows it changed; each statement commits on its own, so a statement
-- that must not be seen half done (the rebuild below) is one statement. Timers stop when
-- `siphon once` ends: a script for cron runs its maintenance in a `synced` handler instead.

local pg = siphon.postgres { dsn = siphon.env("PG_DSN") }
siphon.target { path = siphon.env("REPLICA", "shop-replica.db") }

local REBUILD = [[
  CREATE INDEX IF NOT EXISTS orders_by_customer ON orders (customer);
  CREATE TABLE IF NOT EXISTS order_totals (
    status TEXT PRIMARY KEY, orders INTEGER NOT NULL, amount REAL NOT NULL);
  INSERT INTO order_totals (status, orders, amount)
    SELECT status, count(*), round(sum(amount), 2) FROM orders WHERE true GROUP BY status
    ON CONFLICT (status) DO UPDATE SET orders = excluded.orders, amount = excluded.amount;
]]

local pending = false
local function rebuild_soon()
  if pending then return end
  pending = true
  siphon.after("2s", function()
    pending = false
    local changed = siphon.target:exec(REBUILD)
    siphon.log.info("order_totals rebuilt (%d rows)", changed)
  end)
end

siphon.replicate "orders" {
  source = pg,
  from   = "public.orders",
  cursor = { "updated_at", "id" },
  every  = "10s",
  on = {
    synced = function(ev)
      if ev.rows > 0 then rebuild_soon() end
    end,
  },
}

-- SQLite's own upkeep: statistics for the planner, once a day.
siphon.every("24h", function() siphon.target:exec("PRAGMA optimize") end)

-- Keeping a replica equal to its source when rows are deleted or the schema changes.
--
--   PG_DSN=postgresql://repl@127.0.0.1:5432/shop siphon run examples/deletes.lua
--   siphon resync examples/deletes.lua --table accounts   -- a whole re-pull, deletions swept
--
-- Needs the demo shop's public.orders (examples/demo/shop.sql) and two tables of its own:
--   CREATE TABLE accounts (id int PRIMARY KEY, name text NOT NULL,
--                          updated_at timestamptz NOT NULL DEFAULT now(), deleted_at timestamptz);
--   CREATE TABLE plans (id int PRIMARY KEY, name text NOT NULL);

local pg = siphon.postgres { dsn = siphon.env("PG_DSN") }
siphon.target { path = siphon.env("REPLICA", "deletes-replica.db") }

-- The application marks deleted rows (and bumps updated_at): they leave the replica, and
-- come back if the mark is cleared.
siphon.replicate "accounts" {
  source  = pg,
  from    = "public.accounts",
  cursor  = { "updated_at", "id" },
  deletes = { soft = "deleted_at" },
  every   = "30s",
  -- A column changing type: look at the diff, re-pull when a key column changed.
  on_schema_change = function(diff)
    for _, r in ipairs(diff.retyped) do
      siphon.log.warn("%s: %s -> %s", r.column, r.from, r.to)
    end
    return #diff.retyped > 0 and "resync" or "continue"
  end,
  backfill = true,   -- a column new at the source, or added to `columns`, is filled for every row at once
}

-- The application deletes rows for real: every 6 hours siphon compares key ranges with the
-- source (digests computed on both sides, keys listed only where they differ) and deletes
-- the rows the source no longer has, without pulling the table.
siphon.replicate "orders" {
  source  = pg,
  from    = "public.orders",
  cursor  = { "updated_at", "id" },
  deletes = { reconcile = "6h" },
  every   = "1m",
  on      = {
    reconciled = function(ev)
      if ev.deleted > 0 then siphon.log.info("orders: %d rows gone from the source", ev.deleted) end
    end,
  },
}

-- A table without a cursor is pulled whole each run; rows deleted on the source disappear
-- at the end of each pass (readers never see it empty).
siphon.replicate "plans" { source = pg, from = "public.plans", every = "10m" }

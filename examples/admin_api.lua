-- The admin API: status, logs, metrics, manual syncs and resyncs over HTTP, behind a token.
--
--   export SIPHON_TOKEN=$(openssl rand -hex 32)
--   PG_DSN=postgresql://repl@127.0.0.1:5432/shop siphon run examples/admin_api.lua
--   curl -H "Authorization: Bearer $SIPHON_TOKEN" http://127.0.0.1:8787/status
--   curl -X POST -H "Authorization: Bearer $SIPHON_TOKEN" http://127.0.0.1:8787/tables/orders/sync
--   curl http://127.0.0.1:8787/healthz                 -- the one endpoint without a token
--
-- The token comes from the environment, never from the script's text. Every endpoint but
-- /healthz answers 401 without it, and an address other than loopback is refused at
-- start-up unless a token is set. `siphon run --http ADDR:PORT` overrides `listen`.

local pg = siphon.postgres { dsn = siphon.env("PG_DSN") }
siphon.target { path = siphon.env("REPLICA", "shop-replica.db") }

siphon.http_api {
  listen = siphon.env("SIPHON_LISTEN", "127.0.0.1:8787"),
  token  = siphon.env("SIPHON_TOKEN"),
}

-- Synced every 5 minutes; POST /tables/orders/sync pulls what changed now, between runs.
siphon.replicate "orders" {
  source = pg,
  from   = "public.orders",
  cursor = { "updated_at", "id" },
  every  = "5m",
}

-- A full refresh once an hour; POST /tables/products/pause holds it while the catalogue is
-- being edited, POST /tables/products/resume lets it go on.
siphon.replicate "products" {
  source = pg,
  from   = "public.products",
  every  = "1h",
}

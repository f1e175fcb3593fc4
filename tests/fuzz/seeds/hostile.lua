-- Seed for the script fuzzer: fields of the wrong type, huge numbers, deep tables.
local pg = siphon.postgres { dsn = "host=127.0.0.1 dbname=x", connect_timeout = 9223372036854775807 }
siphon.target { path = "replica.db" }
siphon.replicate "t" {
  source = pg, from = "public.t", cursor = { "updated_at", { { { "id" } } } },
  every = "99999999999999999999h", batch = 1e308, lookback = -1,
  columns = { 1, 2.5, true, {} }, key = "",
}
siphon.replicate "\xff\xfe" { source = pg, every = "1m30", write = "append" }
local t = {} for i = 1, 200 do t = { t } end
siphon.replicate "deep" { source = pg, columns = t }

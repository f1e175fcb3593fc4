-- Row transforms: rename, mask personal data, derive columns, drop test rows, fan out.
--
--   PG_DSN=postgresql://repl@127.0.0.1:5432/shop siphon run examples/transforms.lua
--
-- Needs the demo shop's public.orders (examples/demo/shop.sql) and a public.customers table
-- (id primary key, name, email, phone, updated_at timestamptz NOT NULL):
--   CREATE TABLE customers (id int PRIMARY KEY, name text, email text, phone text,
--                           updated_at timestamptz NOT NULL DEFAULT now());
--
-- A transform gets each pulled row as a table keyed by column name (NULL is nil, integers
-- stay integers) and returns the row, nil to drop it, or a list of rows. Columns it adds
-- are declared in `columns_out`; `name = false` there leaves a pulled column out. A row
-- whose transform fails goes to _siphon_rejects with the error (on_row_error = "reject",
-- the default) or fails the run without moving the cursor (on_row_error = "fail").

local pg = siphon.postgres { dsn = siphon.env("PG_DSN") }
siphon.target { path = siphon.env("REPLICA", "transformed.db") }

-- Keeps the domain, hides the person: "ann.smith@example.org" -> "a***@example.org".
local function mask_email(email)
  if email == nil then return nil end
  local user, domain = email:match("^([^@]*)@(.+)$")
  if not user then return "***" end
  return user:sub(1, 1) .. "***@" .. domain:lower()
end

siphon.replicate "customers" {
  source = pg,
  from = "public.customers",
  cursor = "updated_at",
  every = "30s",
  columns_out = {
    display_name = "TEXT",     -- derived
    email_domain = "TEXT",     -- derived
    phone = false,             -- never leaves the source
    name = false,              -- renamed to display_name
  },
  transform = function(row)
    -- Drop test accounts.
    if row.email and row.email:find("@test%.example$") then return nil end
    row.display_name = row.name              -- rename
    row.name = nil
    row.email_domain = row.email and row.email:match("@(.+)$")
    row.email = mask_email(row.email)       -- mask PII
    return row
  end,
}

-- Fan-out: one order row becomes one row per tag. The shop's `tags` is a text[], which
-- arrives as a JSON array ('["gift","express"]'); a comma-separated text column
-- ('gift, express') is split at its commas.
-- Rows written by one page must have distinct keys: the key is rewritten to
-- order id * 1000 + position, and the order id kept in its own column.
siphon.replicate "order_tags" {
  source = pg,
  from = "public.orders",
  cursor = "updated_at",
  columns = { "id", "tags", "updated_at" },
  columns_out = { order_id = "INTEGER", tag = "TEXT", tags = false },
  on_row_error = "reject",
  transform = function(row)
    local tags = {}
    if row.tags and row.tags:sub(1, 1) == "[" then
      tags = siphon.json.decode(row.tags)
    else
      for tag in (row.tags or ""):gmatch("[^,%s]+") do tags[#tags + 1] = tag end
    end
    local out = {}
    for _, tag in ipairs(tags) do
      if tag ~= siphon.null then     -- a NULL element of the array
        out[#out + 1] = { id = row.id * 1000 + #out + 1, order_id = row.id, tag = tag:lower(),
                          updated_at = row.updated_at }
      end
    end
    return out            -- an empty list writes nothing for this order
  end,
}

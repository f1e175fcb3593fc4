-- Alerts to a Slack-style incoming webhook when a table fails or falls behind.
--
--   PG_DSN=… SLACK_WEBHOOK_URL=https://hooks.slack.com/services/… siphon run examples/alerts.lua
--
-- Handlers run in their own coroutine: siphon.http.post waits for the response without
-- blocking replication, and a failing handler is logged, never stopping a table.

local alerts = require "siphon.alerts"   -- formatting helpers shipped with siphon

local pg = siphon.postgres { dsn = siphon.env("PG_DSN") }
siphon.target { path = siphon.env("REPLICA", "replica.db") }
local HOOK = siphon.env("SLACK_WEBHOOK_URL")

siphon.replicate "orders" {
  source = pg,
  from = "public.orders",
  cursor = "updated_at",
  every = "30s",
  max_lag = "10m",   -- `lagging` when no successful sync for 10 minutes
}

local function notify(ev)
  local response, err = siphon.http.post { url = HOOK, json = alerts.slack(ev), timeout = "10s" }
  if not response then
    siphon.log.warn("alert not delivered: %s", err)
  elseif response.status >= 300 then
    siphon.log.warn("alert rejected by the webhook: HTTP %d %s", response.status, response.body)
  end
end

-- `error` fires on every failed attempt (ev.attempt = 1, 2, …, retried with backoff) and
-- `recovered` once when the table syncs again: alerting on the first attempt gives one alert
-- per outage and one when it is over. A failing handler or timer is an `error` too.
siphon.on("error", function(ev)
  if ev.attempt == 1 or ev.error_kind == "script" then notify(ev) end
end)
siphon.on("lagging", notify)
siphon.on("recovered", notify)

-- Once a day, a summary of every table from siphon.status(): its state, the rows written
-- since siphon started and how far behind it is.
siphon.every("24h", function()
  local lines = {}
  for _, t in ipairs(siphon.status().tables) do
    lines[#lines + 1] = string.format("%s: %s, %d rows written, %.0f s behind", t.name, t.state,
                                      t.rows_written, t.lag_s)
  end
  siphon.http.post { url = HOOK, json = { text = table.concat(lines, "\n") }, timeout = "10s" }
end)

-- siphon.alerts: formatting helpers for alert webhooks (require "siphon.alerts").
--
--   local alerts = require "siphon.alerts"
--   siphon.on("error", function(ev)
--     siphon.http.post { url = HOOK, json = alerts.slack(ev) }
--   end)
local M = {}

local function duration(seconds)
  seconds = math.floor(seconds or 0)
  if seconds < 60 then return string.format("%ds", seconds) end
  if seconds < 3600 then return string.format("%dm%02ds", seconds // 60, seconds % 60) end
  return string.format("%dh%02dm", seconds // 3600, (seconds % 3600) // 60)
end
M.duration = duration

-- One line of plain text describing an event.
function M.text(ev)
  local e = ev.event
  if e == "error" and ev.table == nil then  -- a timer's callback: no table
    return string.format("siphon: a script callback failed: %s", ev.error or "unknown error")
  elseif e == "error" then
    return string.format("siphon: table %s failed (attempt %d): %s", ev.table, ev.attempt or 0,
                         ev.error or "unknown error")
  elseif e == "lagging" then
    return string.format("siphon: table %s has not synced for %s", ev.table, duration(ev.lag_s))
  elseif e == "recovered" then
    return string.format("siphon: table %s recovered after %d failed attempt(s)", ev.table,
                         ev.attempt or 0)
  elseif e == "synced" then
    return string.format("siphon: table %s synced %d rows in %d ms", ev.table, ev.rows or 0,
                         ev.duration_ms or 0)
  end
  return string.format("siphon: %s on table %s", tostring(e), tostring(ev.table))
end

-- A Slack-style incoming-webhook payload: { text = …, blocks = { … } }.
function M.slack(ev)
  local fields = {}
  if ev.table then fields[#fields + 1] = { type = "mrkdwn", text = "*Table*\n" .. ev.table } end
  fields[#fields + 1] = { type = "mrkdwn", text = "*Event*\n" .. tostring(ev.event) }
  if ev.source and ev.source ~= "" then
    fields[#fields + 1] = { type = "mrkdwn", text = "*Source*\n" .. ev.source }
  end
  if ev.event == "error" then
    fields[#fields + 1] = { type = "mrkdwn", text = "*Attempt*\n" .. tostring(ev.attempt) }
  end
  if ev.event == "lagging" then
    fields[#fields + 1] = { type = "mrkdwn", text = "*Behind by*\n" .. duration(ev.lag_s) }
  end
  local blocks = {
    { type = "section", text = { type = "mrkdwn", text = M.text(ev) } },
    { type = "section", fields = fields },
  }
  if ev.error then
    -- The first line only: a traceback does not belong in a chat message.
    local first = ev.error:match("^[^\n]*")
    blocks[#blocks + 1] = { type = "section",
                            text = { type = "mrkdwn", text = "```" .. first .. "```" } }
  end
  return { text = M.text(ev), blocks = blocks }
end

return M

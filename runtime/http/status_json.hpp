#pragma once
// The state of a running deployment as JSON: what `GET /status` and `GET /tables/NAME`
// answer and what siphon.status() returns to a script.
#include <chrono>
#include <string>

#include <nlohmann/json.hpp>

#include "runtime/http/metrics.hpp"
#include "runtime/sync/replicator.hpp"

namespace siphon {

/// "2026-11-23T14:02:11.412Z" (UTC, milliseconds), or null for the epoch ("never").
nlohmann::json IsoOrNull(std::chrono::system_clock::time_point t);

/// A cursor as stored (a JSON array of values) as JSON; null when empty, the text as a
/// string when it is not JSON.
nlohmann::json CursorJson(const std::string& text);

/// One table: its declaration (source, from or query, mode, key, interval, batch) and its
/// runner's state, counters, lag, last error and cursor.
nlohmann::json TableStatusJson(const TableRunner& runner, const SyncMetrics& metrics,
                               std::chrono::system_clock::time_point now);

/// The process (version, start, uptime, target) and every table.
nlohmann::json DeploymentStatusJson(const Replicator& replicator, const SyncMetrics& metrics,
                                    std::chrono::system_clock::time_point started,
                                    const std::string& target_path);

}  // namespace siphon

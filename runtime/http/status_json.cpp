#include "runtime/http/status_json.hpp"

#include <cstdio>
#include <ctime>

namespace siphon {

nlohmann::json CursorJson(const std::string& text) {
  if (text.empty()) return nullptr;
  nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  return j.is_discarded() ? nlohmann::json(text) : j;
}

nlohmann::json IsoOrNull(std::chrono::system_clock::time_point t) {
  if (t.time_since_epoch().count() == 0) return nullptr;
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
  std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[96];
  std::snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(ms % 1000));
  return buf;
}

nlohmann::json TableStatusJson(const TableRunner& r, const SyncMetrics& metrics,
                               std::chrono::system_clock::time_point now) {
  const TableDecl& d = r.decl();
  const TableStats& s = r.stats();
  return {
      {"name", d.name},
      {"source", d.source && d.source->source ? d.source->source->Describe() : ""},
      {"from", d.from.empty() ? nlohmann::json() : nlohmann::json(d.from)},
      {"query", d.query.empty() ? nlohmann::json() : nlohmann::json(d.query)},
      {"mode", d.cursor.empty() ? "full_refresh" : "incremental"},
      {"cursor_columns", d.cursor},
      // The key the target uses (a source's primary key when none is declared), once a run
      // has reflected the source; the declared one until then.
      {"key", s.key.empty() ? d.key : s.key},
      // Where it came from: the script's is known before any run.
      {"key_source", !s.key_source.empty() ? nlohmann::json(s.key_source)
                     : !d.key.empty()      ? nlohmann::json("script")
                                           : nlohmann::json(nullptr)},
      {"every_s", static_cast<double>(d.every.count()) / 1000.0},
      {"batch", d.batch},
      {"state", std::string(RunnerStateName(s.state))},
      {"paused", s.state == RunnerState::kPaused || r.paused()},
      {"runs_ok", s.runs_ok},
      {"runs_failed", s.runs_failed},
      {"rows_written", s.rows_written},
      {"rows_rejected", s.rows_rejected},
      {"rows_deleted", s.rows_deleted},
      {"reconciles", s.reconciles},
      {"run_rows", s.run_rows},
      {"row_estimate", s.row_estimate >= 0 ? nlohmann::json(s.row_estimate) : nullptr},
      {"last_duration_ms", s.last_duration_ms},
      {"attempt", s.attempt},
      {"last_success_at", IsoOrNull(s.last_success)},
      {"next_run_at", s.state == RunnerState::kIdle || s.state == RunnerState::kBackoff
                          ? IsoOrNull(s.next_run)
                          : nlohmann::json(nullptr)},
      {"lag_s", metrics.LagSeconds(s, now)},
      {"last_error", s.last_error.empty() ? nlohmann::json(nullptr) : nlohmann::json(s.last_error)},
      {"last_error_kind",
       s.last_error_kind.empty() ? nlohmann::json(nullptr) : nlohmann::json(s.last_error_kind)},
      {"cursor", CursorJson(s.cursor)},
  };
}

nlohmann::json DeploymentStatusJson(const Replicator& replicator, const SyncMetrics& metrics,
                                    std::chrono::system_clock::time_point started,
                                    const std::string& target_path) {
  const auto now = std::chrono::system_clock::now();
  nlohmann::json tables = nlohmann::json::array();
  for (const auto& r : replicator.runners()) tables.push_back(TableStatusJson(*r, metrics, now));
  nlohmann::json sources = nlohmann::json::array();
  for (const auto& pool : replicator.pools()) {
    sources.push_back({{"source", pool->source().Describe()},
                       {"kind", std::string(pool->source().kind())},
                       {"max_connections", pool->limit()},
                       {"in_use", pool->lent()},
                       {"idle", pool->idle()},
                       {"waiting", pool->waiting()}});
  }
  return {{"version", SIPHON_VERSION},
          {"started_at", IsoOrNull(started)},
          {"uptime_s", std::chrono::duration<double>(now - started).count()},
          {"target", target_path},
          {"sources", sources},
          {"tables", tables}};
}

}  // namespace siphon

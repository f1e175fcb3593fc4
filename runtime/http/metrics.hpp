#pragma once
#include <array>
#include <chrono>
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "runtime/sync/events.hpp"
#include "runtime/sync/table_runner.hpp"

namespace siphon {

/// Process-wide figures shown beside the per-table ones.
struct ProcessFigures {
  int64_t resident_bytes = 0;  ///< RSS, from /proc/self/statm
  int64_t lua_bytes = 0;       ///< LuaHost::memory_used()
};

/// The admin API's metrics. Counters that the runners keep (rows, runs) are read from their
/// TableStats when rendering; what they do not keep (run durations, errors by kind) is
/// gathered here from the events. Loop thread only.
class SyncMetrics : public EventSink {
 public:
  /// Upper bounds of the sync duration histogram, in seconds.
  static constexpr std::array<double, 16> kBuckets = {
      0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600};

  SyncMetrics();

  void Emit(const Event& event) override;

  /// Prometheus text exposition format 0.0.4. `paused`: tables paused through the API (a
  /// table paused during a run still shows the state "running" until the run ends).
  std::string Render(const std::vector<const TableRunner*>& runners,
                     const std::set<std::string>& paused, const ProcessFigures& process,
                     std::chrono::system_clock::time_point now) const;

  /// Seconds since the table's last successful run (since the process started when it never
  /// succeeded in this process).
  double LagSeconds(const TableStats& stats, std::chrono::system_clock::time_point now) const;

 private:
  struct Histogram {
    std::array<int64_t, kBuckets.size()> counts{};  // non-cumulative, per bucket
    int64_t count = 0;
    double sum = 0;
  };
  std::chrono::system_clock::time_point started_;
  std::map<std::string, Histogram> durations_;
  std::map<std::string, std::map<std::string, int64_t>> errors_;  // table -> kind -> count
};

/// Resident set size of this process in bytes (0 when /proc is not readable).
int64_t ResidentMemoryBytes();

/// A label value escaped for the text format (backslash, double quote, newline).
std::string EscapeLabel(const std::string& value);

}  // namespace siphon

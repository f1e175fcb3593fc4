#include "runtime/http/metrics.hpp"

#include <unistd.h>

#include <charconv>
#include <cstdio>
#include <fstream>
#include <set>
#include <sstream>

namespace siphon {

namespace {

// The length of the UTF-8 sequence at `s[i]` (RFC 3629: no overlong form, no surrogate,
// nothing above U+10FFFF), or 0 when it is not one.
size_t Utf8Length(const std::string& s, size_t i) {
  const auto b = [&s](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = b(i);
  if (c < 0x80) return 1;
  size_t n;
  unsigned char lo = 0x80, hi = 0xBF;  // the bounds of the second byte
  if (c >= 0xC2 && c <= 0xDF) {
    n = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    n = 3;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 4;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  if (i + n > s.size() || b(i + 1) < lo || b(i + 1) > hi) return 0;
  for (size_t k = 2; k < n; ++k) {
    if ((b(i + k) & 0xC0) != 0x80) return 0;
  }
  return n;
}

}  // namespace

std::string EscapeLabel(const std::string& value) {
  std::string out;
  out.reserve(value.size());
  for (size_t i = 0; i < value.size();) {
    // The format is UTF-8 throughout: one label that is not makes a scraper refuse the page.
    const size_t n = Utf8Length(value, i);
    if (n == 0) {
      out += "\xEF\xBF\xBD";  // U+FFFD
      ++i;
      continue;
    }
    if (n > 1) {
      out.append(value, i, n);
      i += n;
      continue;
    }
    const char c = value[i++];
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out.push_back(c);
    }
  }
  return out;
}

int64_t ResidentMemoryBytes() {
  std::ifstream statm("/proc/self/statm");
  int64_t size = 0, resident = 0;
  if (!(statm >> size >> resident)) return 0;
  return resident * static_cast<int64_t>(sysconf(_SC_PAGESIZE));
}

SyncMetrics::SyncMetrics() : started_(std::chrono::system_clock::now()) {}

void SyncMetrics::Emit(const Event& event) {
  if (event.kind != EventKind::kSynced && event.kind != EventKind::kError) return;
  Histogram& h = durations_[event.table];
  const double seconds = static_cast<double>(event.duration_ms) / 1000.0;
  size_t i = 0;
  while (i < kBuckets.size() && seconds > kBuckets[i]) ++i;
  if (i < kBuckets.size()) h.counts[i]++;
  h.count++;
  h.sum += seconds;
  if (event.kind == EventKind::kError) {
    errors_[event.table][event.error_kind.empty() ? "unknown" : event.error_kind]++;
  }
}

double SyncMetrics::LagSeconds(const TableStats& stats,
                               std::chrono::system_clock::time_point now) const {
  auto since = stats.last_success.time_since_epoch().count() != 0 ? stats.last_success : started_;
  double lag = std::chrono::duration<double>(now - since).count();
  return lag < 0 ? 0 : lag;
}

namespace {

// The shortest text that reads back as `v`: bucket bounds print as written (le="0.1", not
// le="0.10000000000000001"), so a selector on the usual label matches.
std::string Number(double v) {
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v);
  return std::string(buf, end);
}

std::string Seconds(std::chrono::system_clock::time_point t) {
  return Number(std::chrono::duration<double>(t.time_since_epoch()).count());
}

void Header(std::ostringstream& out, const char* name, const char* type, const char* help) {
  out << "# HELP " << name << " " << help << "\n# TYPE " << name << " " << type << "\n";
}

}  // namespace

std::string SyncMetrics::Render(const std::vector<const TableRunner*>& runners,
                                const std::set<std::string>& paused, const ProcessFigures& process,
                                std::chrono::system_clock::time_point now) const {
  std::ostringstream out;
  auto label = [](const TableRunner* r) { return "table=\"" + EscapeLabel(r->decl().name) + "\""; };

  Header(out, "siphon_rows_replicated_total", "counter",
         "Rows written into the target by this process.");
  for (const auto* r : runners) {
    out << "siphon_rows_replicated_total{" << label(r) << "} " << r->stats().rows_written << "\n";
  }
  Header(out, "siphon_rows_rejected_total", "counter",
         "Rows sent to _siphon_rejects by this process.");
  for (const auto* r : runners) {
    out << "siphon_rows_rejected_total{" << label(r) << "} " << r->stats().rows_rejected << "\n";
  }
  Header(out, "siphon_rows_deleted_total", "counter",
         "Rows removed from the target because the source no longer has them (full-refresh "
         "sweeps, soft deletes, reconcile), by this process.");
  for (const auto* r : runners) {
    out << "siphon_rows_deleted_total{" << label(r) << "} " << r->stats().rows_deleted << "\n";
  }
  Header(out, "siphon_reconciles_total", "counter",
         "Reconciles (deletes = { reconcile = ... }) finished by this process.");
  for (const auto* r : runners) {
    out << "siphon_reconciles_total{" << label(r) << "} " << r->stats().reconciles << "\n";
  }
  Header(out, "siphon_sync_runs_total", "counter", "Sync runs finished, by outcome.");
  for (const auto* r : runners) {
    out << "siphon_sync_runs_total{" << label(r) << ",outcome=\"ok\"} " << r->stats().runs_ok
        << "\n";
    out << "siphon_sync_runs_total{" << label(r) << ",outcome=\"error\"} " << r->stats().runs_failed
        << "\n";
  }

  Header(out, "siphon_sync_duration_seconds", "histogram", "Duration of sync runs.");
  for (const auto* r : runners) {
    auto it = durations_.find(r->decl().name);
    Histogram empty;
    const Histogram& h = it == durations_.end() ? empty : it->second;
    int64_t cumulative = 0;
    for (size_t i = 0; i < kBuckets.size(); ++i) {
      cumulative += h.counts[i];
      out << "siphon_sync_duration_seconds_bucket{" << label(r) << ",le=\"" << Number(kBuckets[i])
          << "\"} " << cumulative << "\n";
    }
    out << "siphon_sync_duration_seconds_bucket{" << label(r) << ",le=\"+Inf\"} " << h.count
        << "\n";
    out << "siphon_sync_duration_seconds_sum{" << label(r) << "} " << Number(h.sum) << "\n";
    out << "siphon_sync_duration_seconds_count{" << label(r) << "} " << h.count << "\n";
  }

  Header(out, "siphon_lag_seconds", "gauge",
         "Seconds since the last successful sync (since start-up when none yet).");
  for (const auto* r : runners) {
    out << "siphon_lag_seconds{" << label(r) << "} " << Number(LagSeconds(r->stats(), now)) << "\n";
  }
  Header(out, "siphon_last_success_timestamp_seconds", "gauge",
         "Unix time of the last successful sync in this process (0: none yet).");
  for (const auto* r : runners) {
    const auto& s = r->stats();
    out << "siphon_last_success_timestamp_seconds{" << label(r) << "} "
        << (s.last_success.time_since_epoch().count() != 0 ? Seconds(s.last_success) : "0") << "\n";
  }
  Header(out, "siphon_errors_total", "counter", "Failed sync runs, by error kind.");
  for (const auto* r : runners) {
    auto it = errors_.find(r->decl().name);
    if (it == errors_.end()) continue;
    for (const auto& [kind, n] : it->second) {
      out << "siphon_errors_total{" << label(r) << ",kind=\"" << EscapeLabel(kind) << "\"} " << n
          << "\n";
    }
  }
  Header(out, "siphon_table_paused", "gauge", "1 while the table is paused.");
  for (const auto* r : runners) {
    out << "siphon_table_paused{" << label(r) << "} "
        << (r->stats().state == RunnerState::kPaused || paused.count(r->decl().name) ? 1 : 0)
        << "\n";
  }
  Header(out, "siphon_table_running", "gauge", "1 while a sync run of the table is in progress.");
  for (const auto* r : runners) {
    out << "siphon_table_running{" << label(r) << "} "
        << (r->stats().state == RunnerState::kRunning ? 1 : 0) << "\n";
  }

  Header(out, "siphon_process_resident_memory_bytes", "gauge", "Resident memory of the process.");
  out << "siphon_process_resident_memory_bytes " << process.resident_bytes << "\n";
  Header(out, "siphon_lua_memory_bytes", "gauge", "Memory held by the Lua state.");
  out << "siphon_lua_memory_bytes " << process.lua_bytes << "\n";
  return out.str();
}

}  // namespace siphon

#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include <spdlog/spdlog.h>

namespace siphon {

enum class LogFormat { kText, kJson };

/// Sets the level ("trace".."off") and format of every siphon logger; logs go to stderr.
/// spdlog's default logger (spdlog::warn() and friends) becomes siphon's stderr logger.
/// Returns false for an unknown level.
bool ConfigureLogging(const std::string& level, LogFormat format);

/// Fields of a log line beside its message. With `--log-format json` they become members of
/// the line's object ("event": "synced", "rows": 120, "duration_ms": 35, …) so log pipelines
/// need not parse messages; the text format ignores them. A logger named "table:NAME" adds
/// "table": "NAME" on its own.
struct LogFields {
  std::string table;  ///< when the logger is not the table's own
  std::string event;  ///< "synced", "error", "reconcile", "schema_change", …
  std::optional<int64_t> rows;
  std::optional<int64_t> deleted;
  std::optional<int64_t> duration_ms;
  std::optional<int64_t> attempt;
  std::string error_kind;

  /// LogFields::Of("synced").Rows(12).DurationMs(30)
  static LogFields Of(std::string event) {
    LogFields f;
    f.event = std::move(event);
    return f;
  }
  LogFields& Table(std::string name) {
    table = std::move(name);
    return *this;
  }
  LogFields& Rows(int64_t n) {
    rows = n;
    return *this;
  }
  LogFields& Deleted(int64_t n) {
    deleted = n;
    return *this;
  }
  LogFields& DurationMs(int64_t ms) {
    duration_ms = ms;
    return *this;
  }
  LogFields& Attempt(int64_t n) {
    attempt = n;
    return *this;
  }
  LogFields& Kind(std::string kind) {
    error_kind = std::move(kind);
    return *this;
  }
};

/// Attaches `fields` to the lines logged by this thread while it lives.
class ScopedLogFields {
 public:
  explicit ScopedLogFields(LogFields fields);
  ~ScopedLogFields();
  ScopedLogFields(const ScopedLogFields&) = delete;
  ScopedLogFields& operator=(const ScopedLogFields&) = delete;

 private:
  LogFields fields_;
  const LogFields* previous_;
};

/// The logger for a component or a table ("sync", "target", "table:orders"), made on first use
/// with the configured sink, level and format.
std::shared_ptr<spdlog::logger> Logger(const std::string& name);

}  // namespace siphon

#pragma once
#include <cstdint>
#include <string>
#include <string_view>

namespace siphon {

/// Replication events (DESIGN §2). The sync layer emits them; the Lua layer delivers them to
/// `siphon.on` handlers, and the admin API counts them. Plain data: no Lua here.
enum class EventKind {
  kSyncStart,     ///< a run begins
  kBatch,         ///< a page (and its cursor) committed
  kSynced,        ///< a run ended caught up
  kError,         ///< a run failed (each failure)
  kRecovered,     ///< the first success after failures
  kSchemaChange,  ///< the source schema differs from the one recorded
  kLagging,       ///< no success for longer than the table's max_lag
  kReconciled,    ///< a reconcile compared the keys with the source (deletes = { reconcile })
};

/// "sync_start", "batch", … (inline: the Lua layer names events without linking the core)
inline std::string_view EventName(EventKind kind) {
  switch (kind) {
    case EventKind::kSyncStart:
      return "sync_start";
    case EventKind::kBatch:
      return "batch";
    case EventKind::kSynced:
      return "synced";
    case EventKind::kError:
      return "error";
    case EventKind::kRecovered:
      return "recovered";
    case EventKind::kSchemaChange:
      return "schema_change";
    case EventKind::kLagging:
      return "lagging";
    case EventKind::kReconciled:
      return "reconciled";
  }
  return "unknown";
}

struct Event {
  EventKind kind = EventKind::kSynced;
  std::string table;
  std::string source;       ///< the source's description (never a password)
  int64_t rows = 0;         ///< rows in the page (batch) or the run (synced)
  int64_t duration_ms = 0;  ///< the page's write (batch) or the run (synced)
  std::string cursor;       ///< JSON array, as in _siphon_state
  std::string error;        ///< kError: the message
  std::string error_kind;   ///< kError: "connect", "auth", "query", …
  int attempt = 0;          ///< kError / kRecovered: consecutive failures so far
  double lag_s = 0;         ///< seconds since the last success
  int64_t deleted = 0;      ///< kSynced, kReconciled: rows removed as gone from the source
  std::string diff;         ///< kSchemaChange: SchemaDiff::ToJson()
  std::string action;       ///< kSchemaChange: "continue", "pause" or "resync"
};

/// Where a runner sends its events. Called on the loop thread; must not block.
class EventSink {
 public:
  virtual ~EventSink() = default;
  virtual void Emit(const Event& event) = 0;
};

}  // namespace siphon

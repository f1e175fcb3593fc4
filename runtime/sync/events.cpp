#include "runtime/sync/events.hpp"

namespace siphon {

std::string_view EventName(EventKind kind) {
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
  }
  return "unknown";
}

}  // namespace siphon

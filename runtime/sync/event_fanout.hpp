#pragma once
#include <algorithm>
#include <vector>

#include "runtime/sync/events.hpp"

namespace siphon {

/// Hands every event to several sinks in the order they were added (e.g. the metrics of the
/// admin API, then the script's `siphon.on` handlers). The sinks are not owned.
class EventFanout : public EventSink {
 public:
  void Add(EventSink* sink) {
    if (sink) sinks_.push_back(sink);
  }
  /// Stops handing events to `sink` (e.g. the previous Lua state's handlers after a reload).
  void Remove(EventSink* sink);
  void Emit(const Event& event) override;
  bool empty() const { return sinks_.empty(); }

 private:
  std::vector<EventSink*> sinks_;
};

}  // namespace siphon

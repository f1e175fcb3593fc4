#include "runtime/sync/event_fanout.hpp"

namespace siphon {

void EventFanout::Remove(EventSink* sink) {
  sinks_.erase(std::remove(sinks_.begin(), sinks_.end(), sink), sinks_.end());
}

void EventFanout::Emit(const Event& event) {
  for (EventSink* sink : sinks_) sink->Emit(event);
}

}  // namespace siphon

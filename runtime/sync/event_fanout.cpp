#include "runtime/sync/event_fanout.hpp"

namespace siphon {

void EventFanout::Emit(const Event& event) {
  for (EventSink* sink : sinks_) sink->Emit(event);
}

}  // namespace siphon

#pragma once
#include <array>
#include <map>
#include <optional>
#include <string>

#include <lua.hpp>

#include "runtime/base/status.hpp"
#include "runtime/sync/events.hpp"

namespace siphon {

class LuaHost;

/// The script's event handlers (`siphon.on(name, fn)` and `replicate{ on = { … } }`) and the
/// EventSink the runners emit into. Handlers live in a registry table of the state; each
/// delivery runs one handler in its own coroutine through LuaHost::Spawn, so a handler may
/// wait in siphon.http, and a failing or runaway one is logged and stops nothing else.
class LuaEvents : public EventSink {
 public:
  explicit LuaEvents(LuaHost& host);

  /// The event named `name` ("synced", …), or none.
  static std::optional<EventKind> Parse(std::string_view name);
  /// "sync_start, batch, …": for messages.
  static std::string Names();

  /// Adds the function at `fn` as a handler of `kind`, for every table (`table` empty) or
  /// one. Called from bindings (the cap is lifted there).
  void Add(lua_State* L, EventKind kind, int fn, const std::string& table);

  void Emit(const Event& event) override;

  /// DESIGN §2: a callback that failed (`what` names it) becomes an `error` event of
  /// `table` (empty for a timer), `error_kind` from the failure ("script").
  void EmitFailure(const std::string& table, const std::string& source, const std::string& what,
                   const Status& failure);

  /// Events delivered to at least one handler (tests).
  int64_t delivered() const { return delivered_; }

 private:
  static constexpr size_t kKinds = 8;
  void PushPayload(const Event& event);
  // Pushes the handler list of (table, kind) and returns its length (0: nothing pushed).
  int PushList(const std::string& table, EventKind kind);

  LuaHost& host_;
  std::array<int, kKinds> global_{};                      // handlers per kind, every table
  std::map<std::string, std::array<int, kKinds>> table_;  // handlers per table and kind
  int64_t delivered_ = 0;
};

}  // namespace siphon

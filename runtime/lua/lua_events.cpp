#include "runtime/lua/lua_events.hpp"

#include "runtime/lua/binding.hpp"
#include "runtime/lua/lua_host.hpp"
#include "runtime/target/target.hpp"

namespace siphon {
namespace {

constexpr EventKind kAll[] = {
    EventKind::kSyncStart, EventKind::kBatch,        EventKind::kSynced,  EventKind::kError,
    EventKind::kRecovered, EventKind::kSchemaChange, EventKind::kLagging, EventKind::kReconciled};

// The names of DESIGN §2 (EventName is inline in runtime/sync/events.hpp: no sync link).
std::string_view Name(EventKind kind) {
  return EventName(kind);
}

// Registry: { [""] = { [kind] = {fn, …} }, [table] = { [kind] = {fn, …} } }.
constexpr const char* kHandlersKey = "siphon.handlers";

// "script.lua:12" where the function at `index` is defined.
std::string DefinedAt(lua_State* L, int index) {
  lua_Debug ar;
  lua_pushvalue(L, index);
  if (lua_getinfo(L, ">S", &ar) == 0 || ar.linedefined <= 0) return "";
  const char* source = ar.source;
  std::string file = (source[0] == '@' || source[0] == '=') ? source + 1 : ar.short_src;
  return file + ":" + std::to_string(ar.linedefined);
}

void SetString(lua_State* L, const char* key, const std::string& value) {
  lua_pushlstring(L, value.data(), value.size());
  lua_setfield(L, -2, key);
}

void SetInteger(lua_State* L, const char* key, int64_t value) {
  lua_pushinteger(L, static_cast<lua_Integer>(value));
  lua_setfield(L, -2, key);
}

}  // namespace

LuaEvents::LuaEvents(LuaHost& host) : host_(host) {}

std::optional<EventKind> LuaEvents::Parse(std::string_view name) {
  for (EventKind k : kAll) {
    if (Name(k) == name) return k;
  }
  return std::nullopt;
}

std::string LuaEvents::Names() {
  std::string out;
  for (EventKind k : kAll) out += (out.empty() ? "" : ", ") + std::string(Name(k));
  return out;
}

void LuaEvents::Add(lua_State* L, EventKind kind, int fn, const std::string& table) {
  fn = lua_absindex(L, fn);
  lua_getfield(L, LUA_REGISTRYINDEX, kHandlersKey);
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_setfield(L, LUA_REGISTRYINDEX, kHandlersKey);
  }
  lua_pushlstring(L, table.data(), table.size());
  lua_rawget(L, -2);
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushlstring(L, table.data(), table.size());
    lua_pushvalue(L, -2);
    lua_rawset(L, -4);
  }
  lua_rawgeti(L, -1, static_cast<lua_Integer>(kind));
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_rawseti(L, -3, static_cast<lua_Integer>(kind));
  }
  lua_pushvalue(L, fn);
  lua_rawseti(L, -2, static_cast<lua_Integer>(lua_rawlen(L, -2) + 1));
  lua_pop(L, 3);
  auto& counts = table.empty() ? global_ : table_[table];
  ++counts[static_cast<size_t>(kind)];
}

int LuaEvents::PushList(const std::string& table, EventKind kind) {
  lua_State* L = host_.state();
  lua_getfield(L, LUA_REGISTRYINDEX, kHandlersKey);
  lua_pushlstring(L, table.data(), table.size());
  lua_rawget(L, -2);
  lua_remove(L, -2);
  if (!lua_istable(L, -1)) {
    lua_pop(L, 1);
    return 0;
  }
  lua_rawgeti(L, -1, static_cast<lua_Integer>(kind));
  lua_remove(L, -2);
  if (!lua_istable(L, -1)) {
    lua_pop(L, 1);
    return 0;
  }
  return static_cast<int>(lua_rawlen(L, -1));
}

void LuaEvents::PushPayload(const Event& e) {
  lua_State* L = host_.state();
  lua_createtable(L, 0, 12);
  SetString(L, "event", std::string(Name(e.kind)));
  // A timer's failure belongs to no table: no `table`, no `source`.
  if (!e.table.empty()) SetString(L, "table", e.table);
  if (!e.source.empty()) SetString(L, "source", e.source);
  SetString(L, "at", NowIso());
  SetInteger(L, "rows", e.rows);
  SetInteger(L, "duration_ms", e.duration_ms);
  SetInteger(L, "attempt", e.attempt);
  lua_pushnumber(L, e.lag_s);
  lua_setfield(L, -2, "lag_s");
  if (!e.cursor.empty()) SetString(L, "cursor", e.cursor);
  if (!e.error.empty()) SetString(L, "error", e.error);
  if (!e.error_kind.empty()) SetString(L, "error_kind", e.error_kind);
  if (e.kind == EventKind::kSynced || e.kind == EventKind::kReconciled) {
    SetInteger(L, "deleted", e.deleted);
  }
  if (!e.diff.empty()) SetString(L, "diff", e.diff);
  if (!e.action.empty()) SetString(L, "action", e.action);
}

void LuaEvents::EmitFailure(const std::string& table, const std::string& source,
                            const std::string& what, const Status& failure) {
  Event error;
  error.kind = EventKind::kError;
  error.table = table;
  error.source = source;
  error.error = what + " failed: " + failure.message();
  error.error_kind = std::string(ErrorKindName(failure.kind()));
  Emit(error);
}

void LuaEvents::Emit(const Event& event) {
  const auto k = static_cast<size_t>(event.kind);
  auto per_table = table_.find(event.table);
  const bool any_table = per_table != table_.end() && per_table->second[k] > 0;
  if (global_[k] == 0 && !any_table) return;
  lua_State* L = host_.state();
  const int top = lua_gettop(L);
  const std::string name(Name(event.kind));
  ++delivered_;
  // Table handlers first, then the global ones; each gets its own payload table. An event
  // without a table (a failing timer callback) goes to the global handlers only.
  std::vector<std::string> scopes;
  if (!event.table.empty()) scopes.push_back(event.table);
  scopes.emplace_back();
  for (const std::string& scope : scopes) {
    if (scope.empty() ? global_[k] == 0 : !any_table) continue;
    int n = PushList(scope, event.kind);
    if (n == 0) continue;
    const int list = lua_gettop(L);
    for (int i = 1; i <= n; ++i) {
      lua_rawgeti(L, list, i);
      std::string what = "'" + name + "' handler";
      std::string at = DefinedAt(L, -1);
      if (!at.empty()) what += " (" + at + ")";
      if (!event.table.empty()) what += " for table \"" + event.table + "\"";
      PushPayload(event);
      // DESIGN §2: a failing handler becomes an `error` event of its table (not for a failing
      // `error` handler: that could only fail again).
      std::function<void(const Status&)> on_failure;
      if (event.kind != EventKind::kError) {
        on_failure = [this, table = event.table, source = event.source,
                      what](const Status& failure) { EmitFailure(table, source, what, failure); };
      }
      host_.Spawn(1, what, std::move(on_failure));
    }
    lua_settop(L, top);
  }
  lua_settop(L, top);
}

}  // namespace siphon

// siphon.on(name, fn): a handler of a replication event, for every table.
#include "runtime/lua/binding.hpp"
#include "runtime/lua/lua_events.hpp"
#include "runtime/lua/options.hpp"

namespace siphon {
namespace {

int OnBody(lua_State* L) {
  if (lua_type(L, 1) != LUA_TSTRING) {
    throw ScriptError(
        "siphon.on expects an event name first: siphon.on(\"error\", function(ev) "
        "… end), got " +
        DescribeValue(L, 1));
  }
  std::string name = lua_tostring(L, 1);
  auto kind = LuaEvents::Parse(name);
  if (!kind)
    throw ScriptError("siphon.on: unknown event '" + name + "' (events: " + LuaEvents::Names() +
                      ")");
  if (lua_type(L, 2) != LUA_TFUNCTION) {
    throw ScriptError("siphon.on(\"" + name + "\", …) expects a function, got " +
                      DescribeValue(L, 2));
  }
  LuaHost::From(L)->event_handlers().Add(L, *kind, 2, "");
  return 0;
}

}  // namespace

void RegisterEventBindings(lua_State* L, int siphon) {
  lua_pushcfunction(L, Bind<OnBody>);
  lua_setfield(L, siphon, "on");
}

}  // namespace siphon

// siphon.env(name [, default]), siphon.status() and siphon.log.{debug,info,warn,error}(fmt, …).
#include <cstdlib>

#include "runtime/base/log.hpp"
#include "runtime/lua/binding.hpp"
#include "runtime/lua/options.hpp"

namespace siphon {
namespace {

int EnvBody(lua_State* L) {
  if (lua_type(L, 1) != LUA_TSTRING) {
    throw ScriptError("siphon.env expects a variable name (a string), got " + DescribeValue(L, 1));
  }
  std::string name = lua_tostring(L, 1);
  if (const char* value = std::getenv(name.c_str())) {
    lua_pushstring(L, value);
    return 1;
  }
  if (lua_gettop(L) >= 2) {
    // An explicit nil default makes the variable optional.
    int t = lua_type(L, 2);
    if (t != LUA_TSTRING && t != LUA_TNUMBER && t != LUA_TNIL) {
      throw ScriptError("siphon.env: the default for '" + name +
                        "' must be a string, a number or nil, got " + DescribeValue(L, 2));
    }
    lua_pushvalue(L, 2);
    return 1;
  }
  throw ScriptError("environment variable '" + name +
                    "' is not set (set it, or give a default: "
                    "siphon.env(\"" +
                    name + "\", \"…\"))");
}

// siphon.status(): the deployment's state, the table GET /status answers (a fresh copy each
// call).
int StatusBody(lua_State* L) {
  const auto& provider = LuaHost::From(L)->status_provider();
  if (!provider) {
    throw ScriptError(
        "siphon.status() tells the state of running tables: call it from a callback "
        "(siphon.on, siphon.every, …), not while the script is loading");
  }
  std::string json = provider();
  lua_settop(L, 0);
  PushJsonText(L, json, "siphon.status");
  return 1;
}

// Upvalue 1: string.format as it was at start-up; 2: the level (spdlog's enum); 3: the
// function's name for messages.
int Log(lua_State* L) {
  int n = lua_gettop(L);
  if (n == 0) {
    return luaL_error(L, "%s expects a message or a format and its values",
                      lua_tostring(L, lua_upvalueindex(3)));
  }
  if (n == 1) {
    luaL_tolstring(L, 1, nullptr);  // one argument is logged as is, '%' and all
  } else {
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    // Through the one door into Lua, so a bad format is reported at the script's line
    // rather than inside this C function.
    bool ok = true;
    {
      Status s = LuaHost::From(L)->Call(L, n, 1, "siphon.log");
      if (!s.ok()) {
        ok = false;
        NativeScope native(L);
        std::string message = std::string(lua_tostring(L, lua_upvalueindex(3))) + ": " +
                              s.message().substr(0, s.message().find('\n'));
        PushErrorAt(L, message.c_str());
      }
    }
    if (!ok) return lua_error(L);
  }
  auto level = static_cast<spdlog::level::level_enum>(lua_tointeger(L, lua_upvalueindex(2)));
  {
    NativeScope native(L);
    try {
      std::string where = CallerLocation(L, 1);
      size_t len = 0;
      const char* text = lua_tolstring(L, -1, &len);
      Logger("lua")->log(level, "{}{}{}", where, where.empty() ? "" : ": ",
                         std::string_view(text, len));
    } catch (const std::exception&) {
      // A failing log sink must not fail the script.
    }
  }
  return 0;
}

}  // namespace

void RegisterEnvLogBindings(lua_State* L, int siphon) {
  lua_pushcfunction(L, Bind<EnvBody>);
  lua_setfield(L, siphon, "env");
  lua_pushcfunction(L, Bind<StatusBody>);
  lua_setfield(L, siphon, "status");

  lua_getglobal(L, "string");
  lua_getfield(L, -1, "format");
  int format = lua_gettop(L);
  lua_newtable(L);
  const std::pair<const char*, spdlog::level::level_enum> levels[] = {
      {"debug", spdlog::level::debug},
      {"info", spdlog::level::info},
      {"warn", spdlog::level::warn},
      {"error", spdlog::level::err}};
  for (const auto& [name, level] : levels) {
    lua_pushvalue(L, format);
    lua_pushinteger(L, level);
    lua_pushfstring(L, "siphon.log.%s", name);
    lua_pushcclosure(L, Log, 3);
    lua_setfield(L, -2, name);
  }
  lua_setfield(L, siphon, "log");
  lua_pop(L, 2);
}

}  // namespace siphon

#include "runtime/lua/binding.hpp"

namespace siphon {

std::string CallerLocation(lua_State* L, int level) {
  lua_Debug ar;
  if (lua_getstack(L, level, &ar) == 0 || lua_getinfo(L, "Sl", &ar) == 0) return "";
  if (ar.currentline <= 0) return "";
  // The chunk name in full ("@path"); Lua's short_src would cut a long path to 60 bytes.
  const char* source = ar.source;
  std::string file = (source[0] == '@' || source[0] == '=') ? source + 1 : ar.short_src;
  return file + ":" + std::to_string(ar.currentline);
}

void RequireLoading(lua_State* L, const char* function) {
  if (!LuaHost::From(L)->declarations().loading) {
    throw ScriptError(std::string(function) +
                      " declares the deployment: call it from the script itself, not from a "
                      "callback");
  }
}

bool FitsMemoryCap(lua_State* L, size_t more) {
  LuaHost* host = LuaHost::From(L);
  size_t limit = host->options().memory_limit;
  auto fits = [&] { return more <= limit && host->memory_used() <= limit - more; };
  if (fits()) return true;
  lua_gc(L, LUA_GCCOLLECT);
  return fits();
}

std::string CapMiB(lua_State* L) {
  return std::to_string(LuaHost::From(L)->options().memory_limit >> 20);
}

void PushErrorAt(lua_State* L, const char* message) {
  NativeScope native(L);
  std::string where = CallerLocation(L, 1);
  if (where.empty()) {
    lua_pushstring(L, message);
  } else {
    lua_pushfstring(L, "%s: %s", where.c_str(), message);
  }
}

}  // namespace siphon

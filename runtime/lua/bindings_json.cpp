// siphon.json.encode / siphon.json.decode and siphon.null.
#include "runtime/lua/binding.hpp"
#include "runtime/lua/convert.hpp"

namespace siphon {
namespace {

int EncodeBody(lua_State* L) {
  if (lua_gettop(L) < 1) throw ScriptError("siphon.json.encode expects a value");
  Result<std::string> text = EncodeJson(L, 1);
  if (!text.ok()) throw ScriptError("siphon.json.encode: " + text.status().message());
  lua_pushlstring(L, text->data(), text->size());
  return 1;
}

int DecodeBody(lua_State* L) {
  if (lua_type(L, 1) != LUA_TSTRING) {
    throw ScriptError("siphon.json.decode expects a string, got " +
                      std::string(luaL_typename(L, 1)));
  }
  size_t len = 0;
  const char* text = lua_tolstring(L, 1, &len);
  nlohmann::json value;
  try {
    value = nlohmann::json::parse(text, text + len);
  } catch (const nlohmann::json::exception& e) {
    std::string m = e.what();
    // "[json.exception.parse_error.101] parse error at line 1, …": keep the readable part.
    size_t bracket = m.find("] ");
    throw ScriptError("siphon.json.decode: " +
                      (bracket == std::string::npos ? m : m.substr(bracket + 2)));
  }
  if (!JsonDepthWithin(value, 100)) {
    throw ScriptError("siphon.json.decode: the JSON nests deeper than 100 levels");
  }
  PushJson(L, value);
  return 1;
}

int NullToString(lua_State* L) {
  if (!IsNull(L, 1)) {
    lua_pushfstring(L, "userdata: %p", lua_touserdata(L, 1));
    return 1;
  }
  lua_pushliteral(L, "siphon.null");
  return 1;
}

}  // namespace

void RegisterJsonBindings(lua_State* L, int siphon) {
  lua_createtable(L, 0, 2);
  lua_pushcfunction(L, Bind<EncodeBody>);
  lua_setfield(L, -2, "encode");
  lua_pushcfunction(L, Bind<DecodeBody>);
  lua_setfield(L, -2, "decode");
  lua_setfield(L, siphon, "json");
  // Light userdata share one metatable: tostring(siphon.null) is "siphon.null".
  PushNull(L);
  lua_createtable(L, 0, 1);
  lua_pushcfunction(L, NullToString);
  lua_setfield(L, -2, "__tostring");
  lua_setmetatable(L, -2);
  lua_setfield(L, siphon, "null");
}

}  // namespace siphon

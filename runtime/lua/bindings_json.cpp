// siphon.json.encode / siphon.json.decode and siphon.null.
#include <string>
#include <vector>

#include "runtime/lua/binding.hpp"
#include "runtime/lua/convert.hpp"

namespace siphon {
namespace {

int EncodeBody(lua_State* L) {
  if (lua_gettop(L) < 1) throw ScriptError("siphon.json.encode expects a value");
  Result<std::string> text = EncodeJson(L, 1);
  if (!text.ok()) throw ScriptError("siphon.json.encode: " + text.status().message());
  // Built outside the cap: the text must still fit within it.
  if (!FitsMemoryCap(L, text->size())) {
    throw ScriptError("siphon.json.encode: the JSON text (" + std::to_string(text->size()) +
                      " bytes) would pass the Lua memory cap (" + CapMiB(L) + " MiB)");
  }
  lua_pushlstring(L, text->data(), text->size());
  return 1;
}

// Builds a decoded JSON value straight on the Lua stack, one parser event at a time: no
// document in between, and the memory cap (lifted for bindings) is checked as the value
// grows, so a huge document is an error in the script, not memory without bound.
class LuaJsonBuilder {
 public:
  using json = nlohmann::json;

  explicit LuaJsonBuilder(lua_State* L) : L_(L) {}

  // Why the parse stopped ("" when it did not).
  const std::string& error() const { return error_; }

  // The SAX interface of nlohmann::json.
  bool null() {
    PushNull(L_);
    return Stored(0);
  }
  bool boolean(bool v) {
    lua_pushboolean(L_, v ? 1 : 0);
    return Stored(0);
  }
  bool number_integer(json::number_integer_t v) {
    lua_pushinteger(L_, static_cast<lua_Integer>(v));
    return Stored(0);
  }
  bool number_unsigned(json::number_unsigned_t v) {
    // Beyond 2^63 - 1 an integer does not fit Lua's: it becomes a float.
    if (v <= static_cast<uint64_t>(INT64_MAX)) {
      lua_pushinteger(L_, static_cast<lua_Integer>(v));
    } else {
      lua_pushnumber(L_, static_cast<double>(v));
    }
    return Stored(0);
  }
  bool number_float(json::number_float_t v, const json::string_t& /*text*/) {
    lua_pushnumber(L_, v);
    return Stored(0);
  }
  bool string(json::string_t& s) {
    lua_pushlstring(L_, s.data(), s.size());
    return Stored(s.size());
  }
  bool binary(json::binary_t& b) {  // never produced by JSON text; part of the interface
    lua_pushlstring(L_, reinterpret_cast<const char*>(b.data()), b.size());
    return Stored(b.size());
  }
  bool key(json::string_t& k) {
    lua_pushlstring(L_, k.data(), k.size());
    since_check_ += k.size();  // counted at the value's Stored
    return true;
  }
  bool start_object(size_t /*size*/) { return Open(0); }
  bool start_array(size_t /*size*/) { return Open(1); }
  bool end_object() { return Close(); }
  bool end_array() { return Close(); }
  bool parse_error(size_t /*position*/, const std::string& /*token*/,
                   const nlohmann::detail::exception& e) {
    // "[json.exception.parse_error.101] parse error at line 1, …": keep the readable part.
    std::string m = e.what();
    size_t bracket = m.find("] ");
    error_ = bracket == std::string::npos ? m : m.substr(bracket + 2);
    return false;
  }

 private:
  static constexpr size_t kMaxDepth = 100;
  static constexpr size_t kCheckEvery = 256;  // values between two looks at the cap

  // A new table for an array (`next` 1: the index of its first item) or object (0).
  bool Open(lua_Integer next) {
    if (open_.size() == kMaxDepth) {
      error_ = "the JSON nests deeper than " + std::to_string(kMaxDepth) + " levels";
      return false;
    }
    // A table and a key per level: the stack grows by at most two, plus the value.
    if (lua_checkstack(L_, 3) == 0) {
      error_ = "the JSON nests too deep for the Lua stack";
      return false;
    }
    lua_newtable(L_);
    open_.push_back(next);
    return true;
  }

  bool Close() {
    open_.pop_back();
    return Stored(0);
  }

  // The value on top of the stack joins the open array or object below it (an object's
  // key sits between them); at the top level it is the result.
  bool Stored(size_t bytes) {
    if (!open_.empty()) {
      lua_Integer& next = open_.back();
      if (next > 0) {
        lua_rawseti(L_, -2, next++);
      } else {
        lua_rawset(L_, -3);
      }
    }
    ++values_;
    since_check_ += bytes;
    if (values_ % kCheckEvery != 0 && since_check_ < (size_t{64} << 10)) return true;
    since_check_ = 0;
    if (FitsMemoryCap(L_, 0)) return true;
    error_ = "the decoded value passed the Lua memory cap (" + CapMiB(L_) + " MiB) after " +
             std::to_string(values_) + " values; decode smaller documents";
    return false;
  }

  lua_State* L_;
  std::vector<lua_Integer> open_;  // per open array: its next index; per object: 0
  size_t values_ = 0;
  size_t since_check_ = 0;  // string bytes stored since the cap was last checked
  std::string error_;
};

int DecodeBody(lua_State* L) {
  if (lua_type(L, 1) != LUA_TSTRING) {
    throw ScriptError("siphon.json.decode expects a string, got " +
                      std::string(luaL_typename(L, 1)));
  }
  size_t len = 0;
  const char* text = lua_tolstring(L, 1, &len);
  lua_settop(L, 1);
  PushJsonText(L, std::string_view(text, len), "siphon.json.decode");
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

void PushJsonText(lua_State* L, std::string_view text, const std::string& what) {
  LuaJsonBuilder builder(L);
  if (!nlohmann::json::sax_parse(text.data(), text.data() + text.size(), &builder)) {
    throw ScriptError(what + ": " + builder.error());
  }
}

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

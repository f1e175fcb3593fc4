#include "runtime/lua/convert.hpp"

#include <cmath>

namespace siphon {
namespace {

// The address is the identity of siphon.null.
const char kNullSentinel = 0;

constexpr int kMaxDepth = 100;

Status ToJson(lua_State* L, int index, int depth, nlohmann::json& out) {
  switch (lua_type(L, index)) {
    case LUA_TNIL:
      out = nullptr;
      return Status::Ok();
    case LUA_TBOOLEAN:
      out = lua_toboolean(L, index) != 0;
      return Status::Ok();
    case LUA_TNUMBER:
      if (lua_isinteger(L, index)) {
        out = static_cast<int64_t>(lua_tointeger(L, index));
      } else {
        double d = lua_tonumber(L, index);
        if (!std::isfinite(d)) {
          return Status(ErrorKind::kScript, "cannot encode a NaN or infinite number as JSON");
        }
        out = d;
      }
      return Status::Ok();
    case LUA_TSTRING: {
      size_t len = 0;
      const char* s = lua_tolstring(L, index, &len);
      out = std::string(s, len);
      return Status::Ok();
    }
    case LUA_TLIGHTUSERDATA:
      if (IsNull(L, index)) {
        out = nullptr;
        return Status::Ok();
      }
      break;
    case LUA_TTABLE: {
      if (depth >= kMaxDepth) {
        return Status(ErrorKind::kScript,
                      "cannot encode a table nested deeper than 100 levels (or a cycle) as JSON");
      }
      index = lua_absindex(L, index);
      if (!lua_checkstack(L, 4)) return Status(ErrorKind::kScript, "JSON nesting too deep");
      // An array when the keys are exactly 1..n.
      lua_Integer n = static_cast<lua_Integer>(lua_rawlen(L, index));
      lua_Integer count = 0;
      bool only_sequence = n > 0;
      lua_pushnil(L);
      while (lua_next(L, index) != 0) {
        ++count;
        if (!lua_isinteger(L, -2) || lua_tointeger(L, -2) < 1 || lua_tointeger(L, -2) > n) {
          only_sequence = false;
        }
        lua_pop(L, 1);
      }
      if (only_sequence && count == n) {
        out = nlohmann::json::array();
        for (lua_Integer i = 1; i <= n; ++i) {
          lua_rawgeti(L, index, i);
          nlohmann::json item;
          Status st = ToJson(L, -1, depth + 1, item);
          lua_pop(L, 1);
          if (!st.ok()) return st;
          out.push_back(std::move(item));
        }
        return Status::Ok();
      }
      out = nlohmann::json::object();
      lua_pushnil(L);
      while (lua_next(L, index) != 0) {
        std::string key;
        if (lua_type(L, -2) == LUA_TSTRING) {
          size_t len = 0;
          const char* k = lua_tolstring(L, -2, &len);
          key.assign(k, len);
        } else if (lua_type(L, -2) == LUA_TNUMBER) {
          // lua_tolstring would change the key in place and break lua_next: copy it first.
          lua_pushvalue(L, -2);
          key = lua_tostring(L, -1);
          lua_pop(L, 1);
        } else {
          std::string type = luaL_typename(L, -2);
          lua_pop(L, 2);
          return Status(ErrorKind::kScript, "cannot encode a table with a " + type +
                                                " key as JSON (keys must be strings or numbers)");
        }
        nlohmann::json item;
        Status st = ToJson(L, -1, depth + 1, item);
        lua_pop(L, 1);
        if (!st.ok()) {
          lua_pop(L, 1);
          return st;
        }
        out[key] = std::move(item);
      }
      return Status::Ok();
    }
    default:
      break;
  }
  return Status(ErrorKind::kScript,
                std::string("cannot encode a ") + luaL_typename(L, index) + " value as JSON");
}

}  // namespace

void PushNull(lua_State* L) {
  lua_pushlightuserdata(L, const_cast<char*>(&kNullSentinel));
}

bool IsNull(lua_State* L, int index) {
  return lua_type(L, index) == LUA_TLIGHTUSERDATA && lua_touserdata(L, index) == &kNullSentinel;
}

Result<nlohmann::json> LuaToJson(lua_State* L, int index) {
  nlohmann::json out;
  Status st = ToJson(L, lua_absindex(L, index), 0, out);
  if (!st.ok()) return st;
  return out;
}

Result<std::string> EncodeJson(lua_State* L, int index) {
  Result<nlohmann::json> j = LuaToJson(L, index);
  if (!j.ok()) return j.status();
  try {
    return j->dump();
  } catch (const nlohmann::json::exception&) {
    return Status(ErrorKind::kScript,
                  "cannot encode a string that is not valid UTF-8 as JSON (siphon.json encodes "
                  "text; hex- or base64-encode binary data first)");
  }
}

void PushCell(lua_State* L, const RowBatch& batch, const Cell& cell) {
  switch (cell.type) {
    case ValueType::kNull:
      lua_pushnil(L);
      return;
    case ValueType::kInt:
      lua_pushinteger(L, static_cast<lua_Integer>(cell.i));
      return;
    case ValueType::kReal:
      lua_pushnumber(L, cell.d);
      return;
    case ValueType::kText:
    case ValueType::kBlob: {
      std::string_view b = batch.bytes(cell);
      lua_pushlstring(L, b.data(), b.size());
      return;
    }
  }
  lua_pushnil(L);
}

bool ToCursorValue(lua_State* L, int index, CursorValue& out, std::string& error) {
  switch (lua_type(L, index)) {
    case LUA_TNIL:
      out = std::monostate{};
      return true;
    case LUA_TBOOLEAN:
      out = int64_t{lua_toboolean(L, index) != 0 ? 1 : 0};
      return true;
    case LUA_TNUMBER:
      if (lua_isinteger(L, index)) {
        out = static_cast<int64_t>(lua_tointeger(L, index));
      } else {
        out = static_cast<double>(lua_tonumber(L, index));
      }
      return true;
    case LUA_TSTRING: {
      size_t len = 0;
      const char* s = lua_tolstring(L, index, &len);
      out = std::string(s, len);
      return true;
    }
    default:
      if (IsNull(L, index)) {
        out = std::monostate{};
        return true;
      }
      error = std::string("a ") + luaL_typename(L, index) +
              " cannot be a parameter (nil, siphon.null, number, string or boolean)";
      return false;
  }
}

}  // namespace siphon

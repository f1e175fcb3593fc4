#include "runtime/lua/options.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <set>

#include "runtime/base/duration.hpp"

namespace siphon {
namespace {

std::string Expected(const FieldSpec& f) {
  if (!f.expected.empty()) return f.expected;
  switch (f.type) {
    case FieldType::kString:
      return "a string";
    case FieldType::kInteger:
      return "an integer";
    case FieldType::kBoolean:
      return "a boolean";
    case FieldType::kDuration:
      return "a duration string or number";
    case FieldType::kStringList:
      return "a string or a list of strings";
    case FieldType::kSource:
      return "a source";
    case FieldType::kFunction:
      return "a function";
    case FieldType::kTable:
      return "a table";
    case FieldType::kAny:
      return "a value";
  }
  return "a value";
}

std::string TypeName(FieldType type) {
  switch (type) {
    case FieldType::kString:
      return "string";
    case FieldType::kInteger:
      return "integer";
    case FieldType::kBoolean:
      return "boolean";
    case FieldType::kDuration:
      return "duration";
    case FieldType::kStringList:
      return "string or list of strings";
    case FieldType::kSource:
      return "source";
    case FieldType::kFunction:
      return "function";
    case FieldType::kTable:
      return "table";
    case FieldType::kAny:
      return "any";
  }
  return "value";
}

std::string Quote(std::string_view s) {
  return "\"" + std::string(s) + "\"";
}

Status FieldError(std::string_view what, const std::string& name, const std::string& message) {
  return Status(ErrorKind::kConfig, std::string(what) + ": field '" + name + "' " + message);
}

Status WrongType(lua_State* L, int value, std::string_view what, const FieldSpec& f) {
  return FieldError(
      what, f.name,
      "must be " + Expected(f) + ", got " +
          (f.secret ? std::string(luaL_typename(L, value)) : DescribeValue(L, value)));
}

// A string value as a std::string; Lua strings may hold NUL bytes, kept as they are.
std::string ToString(lua_State* L, int index) {
  size_t len = 0;
  const char* s = lua_tolstring(L, index, &len);
  return std::string(s, len);
}

Result<FieldValue> ReadString(lua_State* L, int v, std::string_view what, const FieldSpec& f) {
  if (lua_type(L, v) != LUA_TSTRING) return WrongType(L, v, what, f);
  std::string s = ToString(L, v);
  if (!f.choices.empty() && std::find(f.choices.begin(), f.choices.end(), s) == f.choices.end()) {
    std::string list;
    for (const auto& c : f.choices) list += (list.empty() ? "" : ", ") + Quote(c);
    return FieldError(what, f.name, "must be one of " + list + ", got " + Quote(s));
  }
  return FieldValue(std::move(s));
}

Result<FieldValue> ReadInteger(lua_State* L, int v, std::string_view what, const FieldSpec& f) {
  if (lua_type(L, v) != LUA_TNUMBER) return WrongType(L, v, what, f);
  lua_Integer n = 0;
  if (lua_isinteger(L, v)) {
    n = lua_tointeger(L, v);
  } else {
    // 1e3 is a float in Lua but plainly an integer to the writer.
    double d = lua_tonumber(L, v);
    if (!std::isfinite(d) || std::floor(d) != d || d < -9.2e18 || d > 9.2e18) {
      return WrongType(L, v, what, f);
    }
    n = static_cast<lua_Integer>(d);
  }
  if (n < f.min || n > f.max) {
    return FieldError(what, f.name,
                      "must be between " + std::to_string(f.min) + " and " + std::to_string(f.max) +
                          ", got " + std::to_string(n));
  }
  return FieldValue(static_cast<int64_t>(n));
}

Result<FieldValue> ReadDuration(lua_State* L, int v, std::string_view what, const FieldSpec& f) {
  Result<std::chrono::milliseconds> d = Status();
  if (lua_type(L, v) == LUA_TSTRING) {
    d = ParseDuration(ToString(L, v));
  } else if (lua_type(L, v) == LUA_TNUMBER) {
    d = DurationFromSeconds(lua_tonumber(L, v));
  } else {
    return WrongType(L, v, what, f);
  }
  if (!d.ok()) return FieldError(what, f.name, "is an " + d.status().message());
  return FieldValue(*d);
}

Result<FieldValue> ReadStringList(lua_State* L, int v, std::string_view what, const FieldSpec& f) {
  std::vector<std::string> list;
  if (lua_type(L, v) == LUA_TSTRING) {
    list.push_back(ToString(L, v));
  } else if (lua_type(L, v) == LUA_TTABLE) {
    lua_Integer n = static_cast<lua_Integer>(lua_rawlen(L, v));
    lua_pushnil(L);
    while (lua_next(L, v) != 0) {
      bool is_index =
          lua_isinteger(L, -2) && lua_tointeger(L, -2) >= 1 && lua_tointeger(L, -2) <= n;
      if (!is_index) {
        lua_pop(L, 2);
        return FieldError(what, f.name,
                          "must be " + Expected(f) + ", got a table with non-list keys");
      }
      lua_pop(L, 1);
    }
    for (lua_Integer i = 1; i <= n; ++i) {
      lua_rawgeti(L, v, i);
      if (lua_type(L, -1) != LUA_TSTRING) {
        std::string got = DescribeValue(L, lua_gettop(L));
        lua_pop(L, 1);
        return FieldError(what, f.name,
                          "must be " + Expected(f) + ", got a list with " + got + " at [" +
                              std::to_string(i) + "]");
      }
      list.push_back(ToString(L, -1));
      lua_pop(L, 1);
    }
    if (list.empty()) return FieldError(what, f.name, "must not be an empty list");
  } else {
    return WrongType(L, v, what, f);
  }
  std::set<std::string> seen;
  for (const auto& s : list) {
    if (s.empty()) return FieldError(what, f.name, "must not contain an empty name");
    if (!seen.insert(s).second) return FieldError(what, f.name, "lists " + Quote(s) + " twice");
  }
  return FieldValue(std::move(list));
}

Result<FieldValue> ReadValue(lua_State* L, int v, std::string_view what, const FieldSpec& f) {
  switch (f.type) {
    case FieldType::kString:
      return ReadString(L, v, what, f);
    case FieldType::kInteger:
      return ReadInteger(L, v, what, f);
    case FieldType::kBoolean:
      if (lua_type(L, v) != LUA_TBOOLEAN) return WrongType(L, v, what, f);
      return FieldValue(lua_toboolean(L, v) != 0);
    case FieldType::kDuration:
      return ReadDuration(L, v, what, f);
    case FieldType::kStringList:
      return ReadStringList(L, v, what, f);
    case FieldType::kSource: {
      auto* h = static_cast<SourceHandle*>(luaL_testudata(L, v, kSourceHandleMeta));
      if (h == nullptr) return WrongType(L, v, what, f);
      return FieldValue(*h);
    }
    case FieldType::kFunction:
      if (lua_type(L, v) != LUA_TFUNCTION) return WrongType(L, v, what, f);
      return FieldValue(LuaValuePresent{});
    case FieldType::kTable:
      if (lua_type(L, v) != LUA_TTABLE) return WrongType(L, v, what, f);
      return FieldValue(LuaValuePresent{});
    case FieldType::kAny:
      return FieldValue(LuaValuePresent{});
  }
  return WrongType(L, v, what, f);
}

std::string DefaultText(const FieldValue& v) {
  struct Visitor {
    std::string operator()(std::monostate) const { return ""; }
    std::string operator()(const std::string& s) const { return Quote(s); }
    std::string operator()(int64_t n) const { return std::to_string(n); }
    std::string operator()(bool b) const { return b ? "true" : "false"; }
    std::string operator()(std::chrono::milliseconds ms) const {
      if (ms.count() % 1000 == 0) return Quote(std::to_string(ms.count() / 1000) + "s");
      return Quote(std::to_string(ms.count()) + "ms");
    }
    std::string operator()(const std::vector<std::string>& l) const {
      std::string out;
      for (const auto& s : l) out += (out.empty() ? "" : ", ") + Quote(s);
      return "{ " + out + " }";
    }
    std::string operator()(SourceHandle) const { return ""; }
    std::string operator()(LuaValuePresent) const { return ""; }
  };
  return std::visit(Visitor{}, v);
}

}  // namespace

bool Fields::has(const std::string& name) const {
  auto it = values_.find(name);
  return it != values_.end() && !std::holds_alternative<std::monostate>(it->second);
}

std::string DescribeValue(lua_State* L, int index) {
  switch (lua_type(L, index)) {
    case LUA_TNUMBER: {
      char buf[64];
      if (lua_isinteger(L, index)) {
        std::snprintf(buf, sizeof buf, "number (%lld)",
                      static_cast<long long>(lua_tointeger(L, index)));
      } else {
        std::snprintf(buf, sizeof buf, "number (%.14g)", lua_tonumber(L, index));
      }
      return buf;
    }
    case LUA_TSTRING: {
      std::string s = ToString(L, index);
      if (s.size() > 40) s = s.substr(0, 37) + "...";
      return "string " + Quote(s);
    }
    case LUA_TUSERDATA:
      if (luaL_testudata(L, index, kSourceHandleMeta) != nullptr) return "a source";
      return "userdata";
    default:
      return luaL_typename(L, index);
  }
}

Result<Fields> ReadFields(lua_State* L, int index, const std::vector<FieldSpec>& spec,
                          std::string_view what) {
  index = lua_absindex(L, index);
  if (lua_type(L, index) != LUA_TTABLE) {
    return Status(ErrorKind::kConfig, std::string(what) + " expects a table of fields { … }, got " +
                                          DescribeValue(L, index));
  }
  std::vector<std::string> names;
  for (const auto& f : spec) names.push_back(f.name);

  // Every key first, so a typo is reported even when another field is wrong too.
  lua_pushnil(L);
  while (lua_next(L, index) != 0) {
    if (lua_type(L, -2) != LUA_TSTRING) {
      std::string key = DescribeValue(L, lua_gettop(L) - 1);
      lua_pop(L, 2);
      return Status(
          ErrorKind::kConfig,
          std::string(what) + ": fields must be named (name = value), got a " + key + " key");
    }
    std::string key = ToString(L, -2);
    lua_pop(L, 1);
    if (std::find(names.begin(), names.end(), key) == names.end()) {
      lua_pop(L, 1);
      std::string message = std::string(what) + ": unknown field '" + key + "'";
      std::string close = ClosestName(key, names);
      if (!close.empty()) message += " (did you mean '" + close + "'?)";
      return Status(ErrorKind::kConfig, message);
    }
  }

  Fields fields;
  for (const auto& f : spec) {
    lua_pushlstring(L, f.name.data(), f.name.size());
    lua_rawget(L, index);
    int v = lua_gettop(L);
    if (lua_isnil(L, v)) {
      lua_pop(L, 1);
      if (f.required) {
        return Status(ErrorKind::kConfig,
                      std::string(what) + ": missing required field '" + f.name + "'");
      }
      fields.set(f.name, f.default_value);
      continue;
    }
    Result<FieldValue> value = ReadValue(L, v, what, f);
    lua_pop(L, 1);
    if (!value.ok()) return value.status();
    fields.set(f.name, std::move(value).value());
  }
  return fields;
}

std::vector<FieldSpec> FieldsFromSourceOptions(const std::vector<OptionSpec>& options) {
  std::vector<FieldSpec> spec;
  for (const auto& o : options) {
    FieldSpec f;
    f.name = o.name;
    f.required = o.required;
    f.doc = o.doc;
    f.secret = o.name == "password" || o.name == "dsn";  // a DSN may hold the password
    switch (o.type) {
      case OptionType::kString:
        f.type = FieldType::kString;
        break;
      case OptionType::kInteger:
        f.type = FieldType::kInteger;
        break;
      case OptionType::kBoolean:
        f.type = FieldType::kBoolean;
        break;
    }
    spec.push_back(std::move(f));
  }
  return spec;
}

std::string DescribeFields(const std::vector<FieldSpec>& spec) {
  std::string out;
  for (const auto& f : spec) {
    out += "- `" + f.name + "` (" + TypeName(f.type);
    if (f.required) out += ", required";
    std::string def = DefaultText(f.default_value);
    if (!def.empty()) out += ", default " + def;
    if (!f.choices.empty()) {
      std::string list;
      for (const auto& c : f.choices) list += (list.empty() ? "" : " | ") + Quote(c);
      out += ": " + list;
    }
    out += ")";
    if (!f.doc.empty()) out += ": " + f.doc;
    out += "\n";
  }
  return out;
}

}  // namespace siphon

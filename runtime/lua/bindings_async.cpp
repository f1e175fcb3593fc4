// siphon.every / siphon.after (timers), siphon.http.request / siphon.http.post, and the
// target's methods siphon.target:query / siphon.target:exec.
#include <algorithm>
#include <cctype>

#include <sqlite3.h>

#include "runtime/base/ascii.hpp"
#include "runtime/base/duration.hpp"
#include "runtime/base/sqlite_value.hpp"
#include "runtime/lua/async.hpp"
#include "runtime/lua/binding.hpp"
#include "runtime/lua/convert.hpp"
#include "runtime/lua/options.hpp"

namespace siphon {
namespace {

std::chrono::milliseconds ReadInterval(lua_State* L, int index, const std::string& what) {
  Result<std::chrono::milliseconds> d = Status();
  if (lua_type(L, index) == LUA_TSTRING) {
    d = ParseDuration(lua_tostring(L, index));
  } else if (lua_type(L, index) == LUA_TNUMBER) {
    d = DurationFromSeconds(lua_tonumber(L, index));
  } else {
    throw ScriptError(what + " expects an interval (\"30s\", \"5m\" or seconds) first, got " +
                      DescribeValue(L, index));
  }
  if (!d.ok()) throw ScriptError(what + ": " + d.status().message());
  if (d->count() <= 0) throw ScriptError(what + ": the interval must be positive");
  return *d;
}

template <bool kRepeat>
int TimerBody(lua_State* L) {
  std::string what = kRepeat ? "siphon.every" : "siphon.after";
  std::chrono::milliseconds interval = ReadInterval(L, 1, what);
  if (lua_type(L, 2) != LUA_TFUNCTION) {
    throw ScriptError(what + " expects a function second, got " + DescribeValue(L, 2));
  }
  std::string label = what + " callback";
  std::string at = CallerLocation(L, 1);
  if (!at.empty()) label += " (" + at + ")";
  lua_pushvalue(L, 2);
  LuaRef fn = LuaRef::Pop(L);
  Status st = LuaHost::From(L)->async().AddTimer(std::move(fn), interval, kRepeat, label);
  if (!st.ok()) throw ScriptError(what + ": " + st.message());
  return 0;
}

void RequireCoroutine(lua_State* L, const char* what) {
  if (!LuaHost::From(L)->CanAwait(L)) {
    throw ScriptError(std::string(what) +
                      " waits for its result, so it can only be called from an event handler "
                      "(siphon.on, on = { … }) or a timer callback (siphon.every, siphon.after), "
                      "not from a transform or the script's main chunk");
  }
}

const std::vector<FieldSpec>& HttpSpec() {
  static const std::vector<FieldSpec> spec = [] {
    std::vector<FieldSpec> s;
    auto add = [&s](const char* name, FieldType type, const char* doc) -> FieldSpec& {
      FieldSpec f;
      f.name = name;
      f.type = type;
      f.doc = doc;
      return s.emplace_back(std::move(f));
    };
    add("method", FieldType::kString, "HTTP method (default GET, or POST for siphon.http.post)");
    add("url", FieldType::kString, "http:// or https:// URL").required = true;
    add("headers", FieldType::kTable, "request headers { [\"X-Name\"] = \"value\" }");
    add("body", FieldType::kString, "request body");
    add("json", FieldType::kAny,
        "a value (table, string, number, boolean or siphon.null) sent as the JSON body (sets "
        "Content-Type)");
    add("timeout", FieldType::kDuration, "whole-request timeout (default 30s)");
    return s;
  }();
  return spec;
}

template <bool kPost>
int HttpBody(lua_State* L) {
  const std::string what = kPost ? "siphon.http.post" : "siphon.http.request";
  if (lua_type(L, 1) != LUA_TTABLE) {
    throw ScriptError(what + " expects a table { url = …, … }, got " + DescribeValue(L, 1));
  }
  Result<Fields> fields = ReadFields(L, 1, HttpSpec(), what);
  if (!fields.ok()) throw ScriptError(fields.status().message());
  RequireCoroutine(L, what.c_str());

  LuaHttpRequest request;
  request.url = *fields->get<std::string>("url");
  // curl would guess the scheme of "hooks.example.com/…" and send it as plain http, the
  // forgotten https:// taking the webhook's secret out in clear text. (The URL, which may be
  // that secret, is not repeated.)
  const size_t separator = request.url.find("://");
  const std::string scheme =
      AsciiLower(request.url.substr(0, separator == std::string::npos ? 0 : separator));
  if (scheme != "http" && scheme != "https") {
    throw ScriptError(what + ": field 'url' must begin with http:// or https://");
  }
  if (const auto* m = fields->get<std::string>("method")) {
    request.method = *m;
  } else {
    request.method = kPost ? "POST" : "GET";
  }
  for (char& c : request.method) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (request.method.empty() ||
      request.method.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZ") != std::string::npos) {
    throw ScriptError(what + ": field 'method' must be a word such as \"POST\"");
  }
  if (const auto* b = fields->get<std::string>("body")) request.body = *b;
  if (const auto* t = fields->get<std::chrono::milliseconds>("timeout")) {
    request.timeout_ms = static_cast<long>(std::max<int64_t>(t->count(), 1));
  }
  bool content_type = false;
  if (fields->has("headers")) {
    lua_getfield(L, 1, "headers");
    int h = lua_gettop(L);
    lua_pushnil(L);
    while (lua_next(L, h) != 0) {
      if (lua_type(L, -2) != LUA_TSTRING ||
          (lua_type(L, -1) != LUA_TSTRING && lua_type(L, -1) != LUA_TNUMBER)) {
        throw ScriptError(what + ": field 'headers' must map header names to strings");
      }
      std::string name = lua_tostring(L, -2);
      lua_pushvalue(L, -1);
      std::string value = lua_tostring(L, -1);
      lua_pop(L, 2);
      if (name.empty() || name.find_first_of("\r\n: ") != std::string::npos ||
          value.find_first_of("\r\n") != std::string::npos) {
        throw ScriptError(what + ": header '" + name + "' has a line break, space or colon");
      }
      content_type = content_type || AsciiLower(name) == "content-type";
      request.headers.emplace_back(std::move(name), std::move(value));
    }
    lua_pop(L, 1);
  }
  if (fields->has("json")) {
    if (fields->has("body")) throw ScriptError(what + ": give either 'body' or 'json', not both");
    lua_getfield(L, 1, "json");
    Result<std::string> text = EncodeJson(L, -1);
    lua_pop(L, 1);
    if (!text.ok()) throw ScriptError(what + ": field 'json': " + text.status().message());
    request.body = std::move(*text);
    if (!content_type) request.headers.emplace_back("Content-Type", "application/json");
  }
  LuaHost* host = LuaHost::From(L);
  Result<bool> started = host->async().StartHttp(L, std::move(request));
  if (!started.ok()) throw ScriptError(started.status().message());
  if (!*started) return 2;  // refused at once: nil, message
  host->Await(L);
  return kYield;
}

// ---- siphon.target:query / :exec ----

// Arguments 3.. (after the target and the SQL) as parameters.
std::vector<CursorValue> Params(lua_State* L, const std::string& what) {
  std::vector<CursorValue> params;
  for (int i = 3; i <= lua_gettop(L); ++i) {
    CursorValue v;
    std::string error;
    if (!ToCursorValue(L, i, v, error)) {
      throw ScriptError(what + ": parameter " + std::to_string(i - 2) + ": " + error);
    }
    params.push_back(std::move(v));
  }
  return params;
}

std::string Sql(lua_State* L, const std::string& what) {
  if (lua_type(L, 1) != LUA_TTABLE) {
    throw ScriptError(what + " is a method: call it with a colon, siphon.target:" +
                      what.substr(what.find(':') + 1) + "(sql, …)");
  }
  if (lua_type(L, 2) != LUA_TSTRING) {
    throw ScriptError(what + " expects the SQL text, got " + DescribeValue(L, 2));
  }
  size_t len = 0;
  const char* s = lua_tolstring(L, 2, &len);
  return std::string(s, len);
}

struct Stmt {
  sqlite3_stmt* s = nullptr;
  ~Stmt() { sqlite3_finalize(s); }
};

int QueryBody(lua_State* L) {
  const std::string what = "siphon.target:query";
  std::string sql = Sql(L, what);
  std::vector<CursorValue> params = Params(L, what);
  Result<sqlite3*> db = LuaHost::From(L)->async().Reader();
  if (!db.ok()) throw ScriptError(db.status().message());
  Stmt st;
  const char* tail = nullptr;
  if (sqlite3_prepare_v2(*db, sql.c_str(), static_cast<int>(sql.size()), &st.s, &tail) !=
      SQLITE_OK) {
    throw ScriptError(what + ": " + sqlite3_errmsg(*db));
  }
  if (st.s == nullptr) throw ScriptError(what + ": no SQL statement");
  for (const char* p = tail; p != nullptr && *p != 0; ++p) {
    if (!std::isspace(static_cast<unsigned char>(*p)) && *p != ';') {
      throw ScriptError(what + " runs one statement (use siphon.target:exec for several)");
    }
  }
  if (static_cast<int>(params.size()) != sqlite3_bind_parameter_count(st.s)) {
    throw ScriptError(what + ": the statement has " +
                      std::to_string(sqlite3_bind_parameter_count(st.s)) + " parameter(s), " +
                      std::to_string(params.size()) + " given");
  }
  for (size_t i = 0; i < params.size(); ++i) {
    BindCursorValue(st.s, static_cast<int>(i) + 1, params[i]);
  }
  lua_newtable(L);
  int rows = lua_gettop(L);
  int columns = sqlite3_column_count(st.s);
  lua_Integer n = 0;
  int rc;
  while ((rc = sqlite3_step(st.s)) == SQLITE_ROW) {
    // The rows are built by siphon, outside the cap's reach: it is checked here instead.
    if ((n & 255) == 0 && !FitsMemoryCap(L, 0)) {
      throw ScriptError(what + ": the result passed the Lua memory cap (" + CapMiB(L) +
                        " MiB) after " + std::to_string(n) + " rows; select fewer rows or columns");
    }
    lua_createtable(L, 0, columns);
    for (int c = 0; c < columns; ++c) {
      switch (sqlite3_column_type(st.s, c)) {
        case SQLITE_INTEGER:
          lua_pushinteger(L, sqlite3_column_int64(st.s, c));
          break;
        case SQLITE_FLOAT:
          lua_pushnumber(L, sqlite3_column_double(st.s, c));
          break;
        case SQLITE_NULL:
          continue;  // a missing key is NULL
        default: {
          const void* b = sqlite3_column_blob(st.s, c);
          lua_pushlstring(L, static_cast<const char*>(b), sqlite3_column_bytes(st.s, c));
        }
      }
      lua_setfield(L, -2, sqlite3_column_name(st.s, c));
    }
    lua_rawseti(L, rows, ++n);
  }
  if (rc != SQLITE_DONE) throw ScriptError(what + ": " + sqlite3_errmsg(*db));
  return 1;
}

int ExecBody(lua_State* L) {
  const std::string what = "siphon.target:exec";
  std::string sql = Sql(L, what);
  std::vector<CursorValue> params = Params(L, what);
  RequireCoroutine(L, what.c_str());
  LuaHost* host = LuaHost::From(L);
  Status st = host->async().StartExec(L, std::move(sql), std::move(params));
  if (!st.ok()) throw ScriptError(st.message());
  host->Await(L);
  return kYield;
}

// Resumed with (true, changes) or (false, message): the message becomes an error at the
// calling line, as the errors raised before the wait are.
int ExecDone(lua_State* L, int, lua_KContext) {
  if (lua_toboolean(L, -2) == 0) {
    luaL_where(L, 1);
    lua_insert(L, -2);
    lua_concat(L, 2);
    lua_remove(L, -2);
    return lua_error(L);
  }
  return 1;
}

}  // namespace

void RegisterAsyncBindings(lua_State* L, int siphon) {
  lua_pushcfunction(L, Bind<TimerBody<true>>);
  lua_setfield(L, siphon, "every");
  lua_pushcfunction(L, Bind<TimerBody<false>>);
  lua_setfield(L, siphon, "after");

  lua_createtable(L, 0, 2);
  lua_pushcfunction(L, BindAwaiting<HttpBody<false>>);
  lua_setfield(L, -2, "request");
  lua_pushcfunction(L, BindAwaiting<HttpBody<true>>);
  lua_setfield(L, -2, "post");
  lua_setfield(L, siphon, "http");

  // siphon.target is the table { query, exec } whose __call declares the target
  // (bindings_target.cpp sets it up first).
  lua_getfield(L, siphon, "target");
  lua_pushcfunction(L, Bind<QueryBody>);
  lua_setfield(L, -2, "query");
  lua_pushcfunction(L, (BindAwaiting<ExecBody, ExecDone>));
  lua_setfield(L, -2, "exec");
  lua_pop(L, 1);
}

}  // namespace siphon

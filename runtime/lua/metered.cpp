// Library functions whose work the instruction budget would not see, made to count it:
// the count hook only fires between VM instructions, so one call into C that loops for long
// held the event loop (and every table) for as long. Pattern matching is replaced (see
// pattern.hpp); table functions that shift or move elements without allocating are charged
// their element count up front; string.rep of nothing returns at once. Everything here is a
// plain lua_CFunction that raises like Lua's own library: no C++ object is alive when one of
// them can longjmp.
#include <bit>
#include <cctype>
#include <cstring>

#include "runtime/lua/binding.hpp"
#include "runtime/lua/pattern.hpp"

namespace siphon {
namespace {

// A 1-based string position as Lua's string functions read one (negative from the end).
size_t PosRelatI(lua_Integer pos, size_t len) {
  if (pos > 0) return static_cast<size_t>(pos);
  if (pos == 0) return 1;
  if (pos < -static_cast<lua_Integer>(len)) return 1;
  return len + static_cast<size_t>(pos) + 1;
}

// PatternMatcher::Search under the budget of the Call in progress, its steps charged to
// it. Raises the pattern's error or the budget error.
const char* Search(lua_State* L, LuaHost* host, PatternMatcher& m, const char** from,
                   bool anchored) {
  const char* end = nullptr;
  PatternMatcher::Error error;
  bool malformed = false;
  bool out_of_steps = false;
  try {
    end = m.Search(from, anchored, host->StepsLeft());
  } catch (const PatternMatcher::Error& e) {
    error = e;
    malformed = true;
  } catch (const PatternMatcher::OutOfSteps&) {
    out_of_steps = true;
  }
  host->SpendSteps(L, out_of_steps ? UINT64_MAX : m.TakeSteps());
  if (malformed) luaL_error(L, "%s", error.message);
  return end;
}

// Capture i of the last match from s to e; without captures, capture 0 is the whole match.
void PushCapture(lua_State* L, const PatternMatcher& m, int i, const char* s, const char* e) {
  if (i >= m.level()) {
    if (i != 0) luaL_error(L, "invalid capture index %%%d", i + 1);
    lua_pushlstring(L, s, static_cast<size_t>(e - s));
    return;
  }
  const PatternMatcher::Capture& c = m.capture(i);
  if (c.len == PatternMatcher::kUnfinished) luaL_error(L, "unfinished capture");
  if (c.len == PatternMatcher::kPosition) {
    lua_pushinteger(L, c.init - m.subject() + 1);
  } else {
    lua_pushlstring(L, c.init, static_cast<size_t>(c.len));
  }
}

// Every capture, or the whole match when there are none and s is given.
int PushCaptures(lua_State* L, const PatternMatcher& m, const char* s, const char* e) {
  int n = (m.level() == 0 && s != nullptr) ? 1 : m.level();
  luaL_checkstack(L, n, "too many captures");
  for (int i = 0; i < n; ++i) PushCapture(L, m, i, s, e);
  return n;
}

bool NoSpecials(const char* p, size_t lp) {
  for (size_t i = 0; i < lp; ++i) {
    switch (p[i]) {
      case '^':
      case '$':
      case '*':
      case '+':
      case '?':
      case '.':
      case '(':
      case '[':
      case '%':
      case '-':
        return false;
      default:
        break;
    }
  }
  return true;
}

// string.find (find) and string.match.
int FindAux(lua_State* L, bool find) {
  size_t ls = 0, lp = 0;
  const char* s = luaL_checklstring(L, 1, &ls);
  const char* p = luaL_checklstring(L, 2, &lp);
  size_t init = PosRelatI(luaL_optinteger(L, 3, 1), ls);
  if (init > ls + 1) {
    luaL_pushfail(L);
    return 1;
  }
  if (find && (lua_toboolean(L, 4) || NoSpecials(p, lp))) {
    // Plain text: glibc's memmem is linear in the subject's length.
    const void* at = memmem(s + init - 1, ls - init + 1, p, lp);
    if (at != nullptr) {
      lua_Integer start = static_cast<const char*>(at) - s + 1;
      lua_pushinteger(L, start);
      lua_pushinteger(L, start + static_cast<lua_Integer>(lp) - 1);
      return 2;
    }
    luaL_pushfail(L);
    return 1;
  }
  LuaHost* host = LuaHost::From(L);
  bool anchor = *p == '^';
  if (anchor) {
    ++p;
    --lp;
  }
  PatternMatcher m({s, ls}, {p, lp});
  const char* s1 = s + init - 1;
  if (const char* e = Search(L, host, m, &s1, anchor)) {
    if (!find) return PushCaptures(L, m, s1, e);
    lua_pushinteger(L, s1 - s + 1);
    lua_pushinteger(L, e - s);
    return PushCaptures(L, m, nullptr, nullptr) + 2;
  }
  luaL_pushfail(L);
  return 1;
}

int Find(lua_State* L) {
  return FindAux(L, true);
}
int Match(lua_State* L) {
  return FindAux(L, false);
}

// The iterator string.gmatch returns. Upvalues: subject, pattern, where the next search
// starts (0-based) and where the last match ended (-1 before the first).
int GmatchStep(lua_State* L) {
  size_t ls = 0, lp = 0;
  const char* s = lua_tolstring(L, lua_upvalueindex(1), &ls);
  const char* p = lua_tolstring(L, lua_upvalueindex(2), &lp);
  lua_Integer from = lua_tointeger(L, lua_upvalueindex(3));
  lua_Integer last = lua_tointeger(L, lua_upvalueindex(4));
  LuaHost* host = LuaHost::From(L);
  if (from > static_cast<lua_Integer>(ls)) return 0;  // started past the end
  PatternMatcher m({s, ls}, {p, lp});
  const char* src = s + from;
  const char* e = Search(L, host, m, &src, false);
  // Not the empty match where the last one ended: the next one after it.
  if (e != nullptr && e - s == last && src < s + ls) {
    ++src;
    e = Search(L, host, m, &src, false);
  }
  if (e == nullptr || e - s == last) return 0;
  lua_pushinteger(L, e - s);
  lua_pushvalue(L, -1);
  lua_replace(L, lua_upvalueindex(3));
  lua_replace(L, lua_upvalueindex(4));
  return PushCaptures(L, m, src, e);
}

int Gmatch(lua_State* L) {
  size_t ls = 0;
  luaL_checklstring(L, 1, &ls);
  luaL_checkstring(L, 2);
  size_t from = PosRelatI(luaL_optinteger(L, 3, 1), ls) - 1;
  if (from > ls) from = ls + 1;  // past the end: no match, not even an empty one
  lua_settop(L, 2);
  lua_pushinteger(L, static_cast<lua_Integer>(from));
  lua_pushinteger(L, -1);
  lua_pushcclosure(L, GmatchStep, 4);
  return 1;
}

// A string replacement: "%0" the whole match, "%1".."%9" captures, "%%" a percent sign.
void AddString(lua_State* L, luaL_Buffer* b, const PatternMatcher& m, const char* s,
               const char* e) {
  size_t l = 0;
  const char* news = lua_tolstring(L, 3, &l);
  const char* p;
  while ((p = static_cast<const char*>(std::memchr(news, '%', l))) != nullptr) {
    luaL_addlstring(b, news, static_cast<size_t>(p - news));
    ++p;
    char c = *p;  // the string's terminating '\0' after a final '%'
    if (c == '%') {
      luaL_addchar(b, c);
    } else if (c == '0') {
      luaL_addlstring(b, s, static_cast<size_t>(e - s));
    } else if (std::isdigit(static_cast<unsigned char>(c))) {
      int i = c - '1';
      if (i < m.level() && m.capture(i).len >= 0) {
        luaL_addlstring(b, m.capture(i).init, static_cast<size_t>(m.capture(i).len));
      } else {
        PushCapture(L, m, i, s, e);  // a position, the whole match, or the error
        luaL_addvalue(b);
      }
    } else {
      luaL_error(L, "invalid use of '%c' in replacement string", '%');
    }
    l -= static_cast<size_t>(p + 1 - news);
    news = p + 1;
  }
  luaL_addlstring(b, news, l);
}

// Adds the replacement of the match s..e; false when it kept the match as it was.
bool AddValue(lua_State* L, luaL_Buffer* b, const PatternMatcher& m, const char* s, const char* e,
              int tr) {
  if (tr == LUA_TFUNCTION) {
    lua_pushvalue(L, 3);
    int n = PushCaptures(L, m, s, e);
    lua_call(L, n, 1);
  } else if (tr == LUA_TTABLE) {
    PushCapture(L, m, 0, s, e);
    lua_gettable(L, 3);
  } else {
    AddString(L, b, m, s, e);
    return true;
  }
  if (!lua_toboolean(L, -1)) {  // nil or false: keep the original text
    lua_pop(L, 1);
    luaL_addlstring(b, s, static_cast<size_t>(e - s));
    return false;
  }
  if (!lua_isstring(L, -1)) {
    luaL_error(L, "invalid replacement value (a %s)", luaL_typename(L, -1));
  }
  luaL_addvalue(b);
  return true;
}

int Gsub(lua_State* L) {
  size_t srcl = 0, lp = 0;
  const char* src = luaL_checklstring(L, 1, &srcl);
  const char* p = luaL_checklstring(L, 2, &lp);
  int tr = lua_type(L, 3);
  lua_Integer max_s = luaL_optinteger(L, 4, static_cast<lua_Integer>(srcl) + 1);
  luaL_argexpected(
      L, tr == LUA_TNUMBER || tr == LUA_TSTRING || tr == LUA_TFUNCTION || tr == LUA_TTABLE, 3,
      "string/function/table");
  LuaHost* host = LuaHost::From(L);
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  bool anchor = *p == '^';
  if (anchor) {
    ++p;
    --lp;
  }
  PatternMatcher m({src, srcl}, {p, lp});
  const char* end = src + srcl;
  const char* lastmatch = nullptr;
  lua_Integer n = 0;
  bool changed = false;
  while (n < max_s) {
    const char* at = src;
    const char* e = Search(L, host, m, &at, anchor);
    if (e != nullptr && e == lastmatch && at == src) {
      // The empty match where the last one ended is not replaced: the next one after it.
      if (anchor || src == end) break;
      luaL_addchar(&b, *src++);
      at = src;
      e = Search(L, host, m, &at, false);
    }
    if (e == nullptr) break;
    luaL_addlstring(&b, src, static_cast<size_t>(at - src));  // what was searched past
    ++n;
    changed = AddValue(L, &b, m, at, e, tr) || changed;
    src = lastmatch = e;
    if (anchor) break;
  }
  if (!changed) {
    lua_pushvalue(L, 1);  // the subject itself
  } else {
    luaL_addlstring(&b, src, static_cast<size_t>(end - src));
    luaL_pushresult(&b);
  }
  lua_pushinteger(L, n);
  return 2;
}

// Calls the original library function (upvalue 1) with the arguments as they are.
int CallOriginal(lua_State* L) {
  int n = lua_gettop(L);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, n, LUA_MULTRET);
  return lua_gettop(L);
}

void Spend(lua_State* L, uint64_t steps) {
  LuaHost::From(L)->SpendSteps(L, steps);
}

// string.rep of an empty string and separator: Lua's loops n times to make nothing.
int Rep(lua_State* L) {
  size_t l = 0, lsep = 0;
  luaL_checklstring(L, 1, &l);
  lua_Integer n = luaL_checkinteger(L, 2);
  luaL_optlstring(L, 3, "", &lsep);
  if (n > 0 && l == 0 && lsep == 0) {
    lua_pushliteral(L, "");
    return 1;
  }
  return CallOriginal(L);
}

// table.move(a1, f, e, t [, a2]): one step per element moved (nils allocate nothing).
int Move(lua_State* L) {
  lua_Integer f = luaL_checkinteger(L, 2);
  lua_Integer e = luaL_checkinteger(L, 3);
  if (e >= f) Spend(L, static_cast<uint64_t>(e) - static_cast<uint64_t>(f) + 1);
  return CallOriginal(L);
}

// The length table.insert and table.remove shift over (raw: what the original reads unless a
// __len says otherwise).
uint64_t RawLength(lua_State* L) {
  return lua_type(L, 1) == LUA_TTABLE ? static_cast<uint64_t>(lua_rawlen(L, 1)) : 0;
}

// table.insert(t, pos, v): one step per element shifted up.
int Insert(lua_State* L) {
  int is_integer = 0;
  lua_Integer pos = lua_tointegerx(L, 2, &is_integer);
  if (lua_gettop(L) == 3 && is_integer) {
    uint64_t len = RawLength(L);
    if (pos >= 1 && static_cast<uint64_t>(pos) <= len) {
      Spend(L, len - static_cast<uint64_t>(pos) + 1);
    }
  }
  return CallOriginal(L);
}

// table.remove(t, pos): one step per element shifted down.
int Remove(lua_State* L) {
  int is_integer = 0;
  lua_Integer pos = lua_tointegerx(L, 2, &is_integer);
  if (lua_gettop(L) >= 2 && is_integer) {
    uint64_t len = RawLength(L);
    if (pos >= 1 && static_cast<uint64_t>(pos) < len) Spend(L, len - static_cast<uint64_t>(pos));
  }
  return CallOriginal(L);
}

// table.sort(t [, comp]): n log n steps (a comparator's own instructions count as well).
int Sort(lua_State* L) {
  uint64_t n = RawLength(L);
  if (n > 1) Spend(L, n * static_cast<uint64_t>(std::bit_width(n)));
  return CallOriginal(L);
}

void SetFunction(lua_State* L, int t, const char* name, lua_CFunction fn) {
  lua_pushcfunction(L, fn);
  lua_setfield(L, t, name);
}

}  // namespace

void InstallMeteredFunctions(lua_State* L) {
  lua_getglobal(L, LUA_STRLIBNAME);
  int string = lua_gettop(L);
  SetFunction(L, string, "find", Find);
  SetFunction(L, string, "match", Match);
  SetFunction(L, string, "gmatch", Gmatch);
  SetFunction(L, string, "gsub", Gsub);
  WrapField(L, string, "rep", Rep);
  lua_getglobal(L, LUA_TABLIBNAME);
  int table = lua_gettop(L);
  WrapField(L, table, "move", Move);
  WrapField(L, table, "insert", Insert);
  WrapField(L, table, "remove", Remove);
  WrapField(L, table, "sort", Sort);
  lua_pop(L, 2);
}

}  // namespace siphon

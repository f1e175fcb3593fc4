#include <cstring>

#include "runtime/lua/lua_ref.hpp"
#include "tests/unit/lua/lua_test_util.hpp"

namespace siphon::testing {
namespace {

bool Contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

TEST_F(LuaTest, BudgetStopsARunawayLoop) {
  auto host = NewHost();
  Status s = Exec(*host, "local n = 0\nwhile true do n = n + 1 end", "transform orders",
                  "@transforms.lua");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.kind(), ErrorKind::kScript);
  EXPECT_EQ(s.message().rfind("transforms.lua:2: instruction budget exceeded in transform orders "
                              "(limit 10000000 instructions)",
                              0),
            0u)
      << s.message();
  EXPECT_TRUE(Contains(s.message(), "stack traceback:")) << s.message();

  // The host is usable afterwards, with a fresh budget and the cheap hook back.
  EXPECT_TRUE(Exec(*host, "local n = 0 for i = 1, 1000000 do n = n + i end", "after").ok());
  EXPECT_EQ(lua_gettop(host->state()), 0);
}

TEST_F(LuaTest, BudgetKillCannotBeSwallowedByPcall) {
  auto host = NewHost();
  const char* scripts[] = {
      "while true do pcall(function() while true do end end) end",
      "for i = 1, 10 do pcall(function() while true do end end) end\nreturn 'survived'",
      "local co = coroutine.wrap(function() while true do end end)\nwhile true do pcall(co) end",
      "while true do xpcall(function() while true do end end, function() while true do end end) "
      "end",
      "while true do xpcall(error, function() while true do end end) end",
      "local t <close> = setmetatable({}, { __close = function() while true do end end })\n"
      "while true do end",
  };
  for (const char* code : scripts) {
    Status s = Exec(*host, code, "handler error");
    ASSERT_FALSE(s.ok()) << code;
    EXPECT_TRUE(Contains(s.message(), "instruction budget exceeded in handler error"))
        << code << s.message();
  }
}

TEST_F(LuaTest, FinalizersAreRefusedInTheSandbox) {
  auto host = NewHost();
  Status s = Exec(*host, "setmetatable({}, { __gc = function() while true do end end })",
                  "handler gc", "@gc.lua");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.message().rfind("gc.lua:1: __gc metamethods are not available in the siphon "
                              "sandbox",
                              0),
            0u)
      << s.message();
  EXPECT_TRUE(Exec(*host, "assert(getmetatable(setmetatable({}, { __index = {} })))", "mt").ok());
  EXPECT_TRUE(Exec(*host, "assert(getmetatable('').__index == string)", "mt").ok());
}

TEST_F(LuaTest, XpcallHandlersStillRunNormally) {
  auto host = NewHost();
  Status s = Exec(*host, R"(
local ok, msg = xpcall(function() error("boom") end, function(e) return "handled: " .. e end)
assert(not ok and msg:find("handled: .*boom"), msg)
local co = coroutine.wrap(function()
  return xpcall(function() coroutine.yield(1) return 2 end, debug.traceback)
end)
assert(co() == 1)
local ok2, v = co()
assert(ok2 == true and v == 2)
)",
                  "xpcall");
  EXPECT_TRUE(s.ok()) << s.message();
}

TEST_F(LuaTest, BudgetAppliesToTheScriptAndIsConfigurable) {
  LuaOptions options;
  options.load_instruction_budget = 100000;
  auto host = NewHost(options);
  Status s = Load(*host, std::string(kHeader) + "for i = 1, 1e9 do end\n");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.kind(), ErrorKind::kConfig);
  EXPECT_EQ(s.message().rfind(ScriptPath() + ":3: instruction budget exceeded in script " +
                                  ScriptPath() + " (limit 100000 instructions)",
                              0),
            0u)
      << s.message();

  LuaOptions small;
  small.instruction_budget = 50000;
  auto host2 = NewHost(small);
  EXPECT_TRUE(Exec(*host2, "for i = 1, 1000 do end", "small").ok());
  EXPECT_FALSE(Exec(*host2, "for i = 1, 100000 do end", "small").ok());
}

TEST_F(LuaTest, MemoryCapStopsStringRep) {
  auto host = NewHost();
  Status s = Exec(*host, "local s = string.rep('x', 1e9)", "handler synced");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.message(), "memory limit exceeded in handler synced (limit 256 MiB)");
  EXPECT_LT(host->memory_used(), size_t{16} << 20);
  EXPECT_TRUE(Exec(*host, "local s = string.rep('x', 1e6)", "after").ok());
}

TEST_F(LuaTest, MemoryCapStopsAGrowingTableAndAPcallLoop) {
  LuaOptions options;
  options.memory_limit = size_t{32} << 20;
  options.instruction_budget = 1'000'000'000;
  auto host = NewHost(options);
  Status s =
      Exec(*host, "t = {}\nlocal i = 0\nwhile true do i = i + 1 t[i] = { i } end", "handler grow");
  ASSERT_FALSE(s.ok());
  EXPECT_TRUE(Contains(s.message(), "memory limit exceeded in handler grow (limit 32 MiB)"))
      << s.message();
  EXPECT_LE(host->memory_used(), options.memory_limit);

  // The script's own pcall cannot swallow the cap either.
  s = Exec(*host, "t = nil\nwhile true do pcall(string.rep, 'x', 1e9) end", "handler loop",
           "@loop.lua");
  ASSERT_FALSE(s.ok());
  EXPECT_TRUE(Contains(s.message(), "memory limit exceeded in handler loop")) << s.message();

  // Collected afterwards: the next call has room again.
  s = Exec(*host, "local t = {} for i = 1, 1000 do t[i] = i end", "after");
  EXPECT_TRUE(s.ok()) << s.message();
}

TEST_F(LuaTest, CallRestoresTheStackAndReturnsResults) {
  auto host = NewHost();
  lua_State* L = host->state();
  lua_pushinteger(L, 7);  // something of the caller's, below the call
  ASSERT_EQ(luaL_loadstring(L, "local a, b = ... return a + b, 'x'"), LUA_OK);
  lua_pushinteger(L, 2);
  lua_pushinteger(L, 3);
  Status s = host->Call(2, 2, "sum");
  ASSERT_TRUE(s.ok()) << s.message();
  ASSERT_EQ(lua_gettop(L), 3);
  EXPECT_EQ(lua_tointeger(L, 2), 5);
  EXPECT_STREQ(lua_tostring(L, 3), "x");
  lua_settop(L, 1);

  const char* code = "local x = ...\nerror('bad ' .. x)";
  ASSERT_EQ(luaL_loadbuffer(L, code, std::strlen(code), "@cb.lua"), LUA_OK);
  lua_pushstring(L, "row");
  s = host->Call(1, 1, "transform t");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.kind(), ErrorKind::kScript);
  EXPECT_EQ(s.message().rfind("cb.lua:2: bad row\nstack traceback:", 0), 0u) << s.message();
  EXPECT_EQ(lua_gettop(L), 1);
  EXPECT_EQ(lua_tointeger(L, 1), 7);

  // A non-string error object still gives a message.
  ASSERT_EQ(luaL_loadstring(L, "error({})"), LUA_OK);
  s = host->Call(0, 0, "t");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.message().rfind("(error object is a table value)", 0), 0u) << s.message();
  EXPECT_EQ(lua_gettop(L), 1);
}

TEST_F(LuaTest, LuaRefsAreReleasedAndCounted) {
  int64_t before = LuaRef::LiveCount();
  {
    auto host = NewHost();
    lua_State* L = host->state();
    lua_newtable(L);
    LuaRef a = LuaRef::Pop(L);
    lua_pushstring(L, "value");
    LuaRef b = LuaRef::Pop(L);
    lua_pushnil(L);
    LuaRef empty = LuaRef::Pop(L);
    EXPECT_FALSE(empty);
    EXPECT_EQ(LuaRef::LiveCount(), before + 2);
    LuaRef moved = std::move(b);
    EXPECT_FALSE(b);  // NOLINT: checking the moved-from state on purpose
    EXPECT_EQ(LuaRef::LiveCount(), before + 2);
    moved.Push(L);
    EXPECT_STREQ(lua_tostring(L, -1), "value");
    lua_pop(L, 1);
    a = std::move(moved);  // releases the table's ref
    EXPECT_EQ(LuaRef::LiveCount(), before + 1);
    a.Reset();
    EXPECT_EQ(LuaRef::LiveCount(), before);
    std::vector<LuaRef> many;
    for (int i = 0; i < 100; ++i) {
      lua_pushinteger(L, i);
      many.push_back(LuaRef::Pop(L));
    }
    EXPECT_EQ(LuaRef::LiveCount(), before + 100);
    EXPECT_EQ(lua_gettop(L), 0);
  }
  EXPECT_EQ(LuaRef::LiveCount(), before);
}

}  // namespace
}  // namespace siphon::testing

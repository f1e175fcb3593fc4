// siphon's string.find, match, gmatch and gsub (runtime/lua/pattern.hpp, metered.cpp) against
// Lua's own string library, loaded beside them as `stock`: same results and errors on a
// corpus of awkward cases and on generated ones; and the budget stops what Lua's would not.
#include "tests/unit/lua/lua_test_util.hpp"

namespace siphon::testing {
namespace {

bool Contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// `compare(name, ...)` calls string[name] and stock[name] under pcall and fails the Call
// (with both outcomes) unless results, or error messages, are the same. gmatch is compared
// by everything its iterator returns.
constexpr const char* kCompare = R"lua(
local function pack(ok, ...) return { ok = ok, n = select("#", ...), ... } end
local function run(lib, name, ...)
  if name ~= "gmatch" then return pack(pcall(lib[name], ...)) end
  local ok, it = pcall(lib.gmatch, ...)
  if not ok then return pack(false, it) end
  local all = { ok = true, n = 0 }
  for _ = 1, 100 do
    local r = pack(pcall(it))
    if not r.ok then return r end
    if r[1] == nil then break end
    for i = 1, r.n do all.n = all.n + 1; all[all.n] = r[i] end
    all.n = all.n + 1; all[all.n] = "|"
  end
  return all
end
local function show(r)
  local parts = { tostring(r.ok) }
  for i = 1, r.n do parts[#parts + 1] = string.format("%q", r[i]) end
  return table.concat(parts, " ")
end
function compare(name, ...)
  local mine, theirs = run(string, name, ...), run(stock, name, ...)
  if not theirs.ok then theirs[1] = stock.gsub(theirs[1], "'stock%.", "'string.") end
  local same = mine.ok == theirs.ok and mine.n == theirs.n
  for i = 1, mine.n do same = same and mine[i] == theirs[i] and math.type(mine[i]) == math.type(theirs[i]) end
  if not same then
    local args = table.pack(...)
    for i = 1, args.n do args[i] = string.format("%q", tostring(args[i])) end
    error(name .. "(" .. table.concat(args, ", ", 1, args.n) .. "): siphon " .. show(mine) ..
          " / Lua " .. show(theirs), 0)
  end
end
)lua";

class PatternTest : public LuaTest {
 protected:
  void SetUp() override {
    LuaTest::SetUp();
    LuaOptions options;
    options.instruction_budget = 500'000'000;
    host_ = NewHost(options);
    ASSERT_NE(host_, nullptr);
    lua_State* L = host_->state();
    // Lua's library as `stock`; opening it pointed strings' methods at it, so point them back.
    luaL_requiref(L, "stock", luaopen_string, 1);
    lua_pop(L, 1);
    lua_pushliteral(L, "");
    ASSERT_TRUE(lua_getmetatable(L, -1));
    lua_getglobal(L, "string");
    lua_setfield(L, -2, "__index");
    lua_pop(L, 2);
    Status s = Exec(*host_, kCompare, "setup");
    ASSERT_TRUE(s.ok()) << s.message();
  }

  std::unique_ptr<LuaHost> host_;
};

TEST_F(PatternTest, AwkwardCasesMatchLikeLuasOwnLibrary) {
  Status s = Exec(*host_, R"lua(
local subjects = { "", "a", "hello world", "  padded  ", "x=1, y=22, z=333", "f(a(b)c)d(e",
  "THE (quick) fox", "a\0b\0c", "aaa", "abab", "line1\nline2", "\255\128é", "%a%" }
local patterns = { "", "a", "^a", "a$", "^$", ".", ".-", ".*", "a*", "a+", "a-", "a?", "%a+",
  "%A", "%d+", "%s*", "%S+", "%w+", "%W", "%p", "%c", "%l", "%u", "%x+", "%g", "[%a_]+",
  "[^%s]+", "[a-c]+", "[]]", "[^]]", "[a-]", "[-a]", "[%]]", "(%w+)=(%w+)", "()a()", "(a)%1",
  "(a*(.)%w(%s*))", "%b()", "%bxy", "%f[%w]%w+", "%f[%W]", "%f[%a]", "^(%s*)(.-)(%s*)$", "$^",
  "a$b", "(()", "(", ")", "%", "[a", "[^", "%b", "%b(", "%f", "%fa", "%1", "(a)%2", "%0",
  "(a%1)", "\0", "%z", "[\0-a]", "(%d)(%d)(%d)(%d)(%d)(%d)(%d)(%d)(%d)(%d)", "%%", "[%%]",
  "^%^", "%$$", "a.-b", "(.-)%s", "[%w.]+", ".-$", "%.", "[.]" }
for _, s in ipairs(subjects) do
  for _, p in ipairs(patterns) do
    compare("find", s, p)
    compare("match", s, p)
    compare("gmatch", s, p)
    compare("gsub", s, p, "<%0>")
    compare("gsub", s, p, "%1%%")
    compare("find", s, p, 3)
    compare("find", s, p, -2, true)
    compare("match", s, p, -1)
    compare("match", s, p, 100)
    compare("gmatch", s, p, 2)
    compare("gsub", s, p, { a = "A", ["hello"] = false, x = 1 })
    compare("gsub", s, p, function(c) if c == "" then return nil end return #c end)
    compare("gsub", s, p, "X", 1)
  end
end
compare("gsub", "abc", "%w", "%2")
compare("gsub", "abc", "%w", "%")
compare("gsub", "abc", "%w", "%x")
compare("gsub", "abc", "(%w)", "%1()")
compare("gsub", "abc", "()%w", "%1")
compare("gsub", "abc", "%w", { a = true })
compare("gsub", "abc", "%w", function() return {} end)
compare("gsub", "abc", "%w")
compare("gsub", "abc", "%w", 7)
compare("gsub", 123, 2, 9)
compare("find", 12345, 34)
compare("find", "a+b", "+", 1, true)
compare("find", "abc", "", 10)
compare("find", "abc", "", 4)
compare("find", "abc", "c", -100)
compare("gmatch", "abc", "^a")
compare("match", "key = value", "^(%w+)%s*=%s*(%w+)$")
compare("match", ("x"):rep(300), ("x?"):rep(300) .. ("x"):rep(300))
compare("match", "(((((((((((", ("%b()"):rep(3))
)lua",
                  "corpus");
  EXPECT_TRUE(s.ok()) << s.message();
}

TEST_F(PatternTest, GeneratedCasesMatchLikeLuasOwnLibrary) {
  // Short subjects and patterns from awkward pieces, 20,000 of each function, same seed
  // every run. Short keeps Lua's own matcher fast on the worst of them.
  for (int chunk = 0; chunk < 20; ++chunk) {
    Status s = Exec(*host_, "local seed = " + std::to_string(12345 + chunk) + R"lua(
local function random(n)
  seed = (seed * 1103515245 + 12345) % 2147483648
  return seed % n + 1
end
local pieces = { ".", "%a", "%d", "%s", "%S", "%w", "[a-c]", "[^ab]", "[%a_]", "a", "b", " ",
  "(", ")", "()", "%1", "%2", "*", "+", "-", "?", "^", "$", "%b()", "%f[%w]", "%f[%W]", "%",
  "[", "]", "%%", ".-", "a*", "[]", "\0", "%z", "x" }
local letters = { "a", "b", "c", " ", "(", ")", "1", "_", "x", "\0", "%", "]" }
for _ = 1, 1000 do
  local p, s = {}, {}
  for i = 1, random(5) do p[i] = pieces[random(#pieces)] end
  for i = 1, random(9) - 1 do s[i] = letters[random(#letters)] end
  p, s = table.concat(p), table.concat(s)
  compare("find", s, p)
  compare("match", s, p, random(5) - 2)
  compare("gmatch", s, p)
  compare("gsub", s, p, "[%0%1]")
end
)lua",
                    "generated " + std::to_string(chunk));
    ASSERT_TRUE(s.ok()) << s.message();
  }
}

TEST_F(LuaTest, BudgetStopsABacktrackingPattern) {
  auto host = NewHost();
  // The usual trim over a run of 50,000 inner spaces: 9 s in Lua's own matcher.
  const std::string trim =
      "local s = 'a' .. string.rep(' ', 50000) .. 'b'\n"
      "local r = s:match('^%s*(.-)%s*$')\n";
  Status s = Exec(*host, trim, "transform orders", "@transforms.lua");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.message().rfind("transforms.lua:2: instruction budget exceeded in transform orders "
                              "(limit 10000000 instructions)",
                              0),
            0u)
      << s.message();
  // Nor can a pcall around it swallow the stop.
  s = Exec(*host,
           "local s = 'a' .. string.rep(' ', 50000) .. 'b'\n"
           "pcall(string.match, s, '^%s*(.-)%s*$')\nreturn 'survived'",
           "transform orders");
  ASSERT_FALSE(s.ok());
  EXPECT_TRUE(Contains(s.message(), "instruction budget exceeded in transform orders"))
      << s.message();
  // gsub and gmatch too, and the host is usable after.
  s = Exec(*host, "local n = 0 for _ in string.rep('a', 20000):gmatch('.-b') do n = n + 1 end",
           "handler synced");
  EXPECT_TRUE(Contains(s.message(), "instruction budget exceeded in handler synced"))
      << s.message();
  s = Exec(*host, "local r = string.rep('(', 50000):gsub('%b()', '')", "handler synced");
  EXPECT_TRUE(Contains(s.message(), "instruction budget exceeded in handler synced"))
      << s.message();
  s = Exec(*host, "assert(('  x  '):match('^%s*(.-)%s*$') == 'x')", "after");
  EXPECT_TRUE(s.ok()) << s.message();
}

TEST_F(LuaTest, PatternStepsCountAgainstTheBudget) {
  // Each find is a few instructions and 500,000 steps of matching: 100 of them pass the
  // budget of 1,000,000 though the instructions alone would not.
  LuaOptions options;
  options.instruction_budget = 1'000'000;
  auto host = NewHost(options);
  Status s = Exec(*host, "local s = string.rep('a', 1000)\nfor i = 1, 100 do s:find('.-b') end",
                  "handler synced");
  ASSERT_FALSE(s.ok());
  EXPECT_TRUE(Contains(s.message(),
                       "instruction budget exceeded in handler synced (limit "
                       "1000000 instructions)"))
      << s.message();
  // Cheap matching is cheap: a million single-character finds stay far below.
  s = Exec(*host,
           "local n = 0 for w in string.rep('ab ', 1000):gmatch('%a+') do n = n + 1 end "
           "assert(n == 1000)",
           "handler synced");
  EXPECT_TRUE(s.ok()) << s.message();
}

TEST_F(LuaTest, TableShiftsAndEmptyRepeatsCountAgainstTheBudget) {
  auto host = NewHost();
  // Draining a 200,000-element list from the front shifts 1.5e10 elements.
  Status s = Exec(*host,
                  "local t = {} for i = 1, 200000 do t[i] = i end\n"
                  "for i = 1, 100000 do table.remove(t, 1) end",
                  "handler drain", "@drain.lua");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.message().rfind("drain.lua:2: instruction budget exceeded in handler drain", 0), 0u)
      << s.message();
  for (const char* code : {
           "local t = {} for i = 1, 200000 do table.insert(t, 1, i) end",
           "table.move({}, 1, 1e14, 2)",
           "local t = {} for i = 1, 100000 do t[i] = -i end for i = 1, 100 do table.sort(t) end",
       }) {
    s = Exec(*host, code, "handler shift");
    EXPECT_TRUE(Contains(s.message(), "instruction budget exceeded in handler shift"))
        << code << ": " << s.message();
  }
  // Nothing repeated any number of times is nothing, at once; ordinary use is unchanged.
  s = Exec(*host,
           "assert(string.rep('', 1e15) == '' and string.rep('', 1e15, '') == '')\n"
           "assert(string.rep('ab', 3, ',') == 'ab,ab,ab')\n"
           "local t = { 3, 1, 2 } table.sort(t) table.insert(t, 1, 0) table.remove(t, 2)\n"
           "assert(table.concat(t, ',') == '0,2,3')\n"
           "assert(table.concat(table.move({ 1, 2, 3 }, 1, 3, 2), ',') == '1,1,2,3')",
           "after");
  EXPECT_TRUE(s.ok()) << s.message();
}

}  // namespace
}  // namespace siphon::testing

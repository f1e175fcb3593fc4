// libFuzzer target: siphon's pattern functions (string.find, match, gmatch, gsub; see
// runtime/lua/pattern.hpp) against Lua's own string library on the same input. Each input
// is an operation byte, a start position byte, then the subject, a newline and the pattern
// (no newline: all pattern, on an empty subject). siphon's version runs first under a small budget;
// when it finishes, Lua's runs too (its work is then bounded alike) and both outcomes, results or
// error messages, must be the same.
#include <spdlog/spdlog.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>

#include "adapters/postgres/postgres_source.hpp"
#include "runtime/lua/lua_host.hpp"

namespace {

constexpr const char* kRunner = R"lua(
local function show(ok, ...)
  local parts = { tostring(ok) }
  for i = 1, select("#", ...) do parts[#parts + 1] = string.format("%q", (select(i, ...))) end
  return table.concat(parts, " ")
end
function run(lib, name, s, p, init)
  if name == "gmatch" then
    local ok, it = pcall(lib.gmatch, s, p, init)
    if not ok then return show(false, (stock.gsub(it, "'stock%.", "'string."))) end
    local out = {}
    for _ = 1, 50 do
      local r = table.pack(pcall(it))
      if not r[1] or r[2] == nil then out[#out + 1] = show(table.unpack(r, 1, r.n)) break end
      out[#out + 1] = show(table.unpack(r, 1, r.n))
    end
    return table.concat(out, " | ")
  end
  local extra = name == "gsub" and "<%0%1>" or init
  local r = table.pack(pcall(lib[name], s, p, extra))
  if not r[1] then r[2] = stock.gsub(r[2], "'stock%.", "'string.") end
  return show(table.unpack(r, 1, r.n))
end
)lua";

siphon::LuaHost* Host() {
  static std::unique_ptr<siphon::LuaHost> host = [] {
    siphon::LuaOptions options;
    options.memory_limit = size_t{64} << 20;
    auto created = siphon::LuaHost::Create({siphon::postgres::Definition()}, options);
    if (!created.ok()) __builtin_trap();
    std::unique_ptr<siphon::LuaHost> h = std::move(created).value();
    lua_State* L = h->state();
    luaL_requiref(L, "stock", luaopen_string, 1);
    lua_pop(L, 1);
    lua_pushliteral(L, "");  // strings' methods back to siphon's functions
    lua_getmetatable(L, -1);
    lua_getglobal(L, "string");
    lua_setfield(L, -2, "__index");
    lua_pop(L, 2);
    if (luaL_loadstring(L, kRunner) != LUA_OK || !h->Call(0, 0, "runner").ok()) __builtin_trap();
    return h;
  }();
  return host.get();
}

// run(lib, op, subject, pattern, init) under `budget`; false when it did not finish.
bool Run(const char* lib, const char* op, const std::string& subject, const std::string& pattern,
         int init, uint64_t budget, std::string* out) {
  siphon::LuaHost* host = Host();
  lua_State* L = host->state();
  lua_getglobal(L, "run");
  lua_getglobal(L, lib);
  lua_pushstring(L, op);
  lua_pushlstring(L, subject.data(), subject.size());
  lua_pushlstring(L, pattern.data(), pattern.size());
  lua_pushinteger(L, init);
  siphon::Status st = host->Call(5, 1, "fuzz", budget);
  if (!st.ok()) return false;
  size_t n = 0;
  const char* s = lua_tolstring(L, -1, &n);
  out->assign(s, n);
  lua_pop(L, 1);
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  spdlog::set_level(spdlog::level::off);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2 || size > 512) return -1;
  static const char* const kOps[] = {"find", "match", "gmatch", "gsub"};
  const char* op = kOps[data[0] % 4];
  int init = static_cast<int8_t>(data[1]) % 8;
  std::string rest(reinterpret_cast<const char*>(data + 2), size - 2);
  size_t newline = rest.find('\n');
  std::string subject, pattern = rest;
  if (newline != std::string::npos) {
    subject = rest.substr(0, newline);
    pattern = rest.substr(newline + 1);
  }
  std::string mine, theirs;
  if (!Run("string", op, subject, pattern, init, 200'000, &mine)) return 0;  // over budget
  if (!Run("stock", op, subject, pattern, init, 1'000'000'000, &theirs)) __builtin_trap();
  if (mine != theirs) {
    std::fprintf(stderr, "%s differs:\n siphon: %s\n Lua:    %s\n", op, mine.c_str(),
                 theirs.c_str());
    __builtin_trap();
  }
  return 0;
}

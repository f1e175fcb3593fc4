#pragma once
// Shared by the Lua unit tests: a temporary script folder and a LuaHost over the real
// PostgreSQL definition (declaring a source opens no connection).
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include <sstream>

#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>

#include "adapters/postgres/postgres_source.hpp"
#include "runtime/base/log.hpp"
#include "runtime/lua/lua_host.hpp"

namespace siphon::testing {

class LuaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "siphon_lua_test_XXXXXX").string();
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  std::string Write(const std::string& name, const std::string& text) {
    std::filesystem::path p = dir_ / name;
    std::filesystem::create_directories(p.parent_path());
    std::ofstream(p) << text;
    return p.string();
  }

  std::unique_ptr<LuaHost> NewHost(LuaOptions options = {}) {
    auto host = LuaHost::Create({postgres::Definition()}, options);
    EXPECT_TRUE(host.ok()) << host.status().message();
    return host.ok() ? std::move(host).value() : nullptr;
  }

  /// Writes `script` as script.lua and loads it in `host`.
  Status Load(LuaHost& host, const std::string& script) {
    return host.LoadScript(Write("script.lua", script));
  }

  /// Runs `code` as a chunk named `name` through Call, as a callback would run.
  Status Exec(LuaHost& host, const std::string& code, const std::string& what,
              const std::string& name = "=callback") {
    lua_State* L = host.state();
    if (luaL_loadbufferx(L, code.data(), code.size(), name.c_str(), "t") != LUA_OK) {
      std::string m = lua_tostring(L, -1);
      lua_pop(L, 1);
      return Status(ErrorKind::kScript, m);
    }
    return host.Call(0, 0, what);
  }

  std::string ScriptPath() const { return (dir_ / "script.lua").string(); }

  std::filesystem::path dir_;
};

// A valid declaration to build on: source on line 1, target on line 2.
inline constexpr const char* kHeader =
    "local pg = siphon.postgres { dsn = 'postgresql://repl@127.0.0.1:5432/shop' }\n"
    "siphon.target { path = 'replica.db' }\n";

}  // namespace siphon::testing

// libFuzzer target: the deployment-script loader. Each input is written as a script file and
// loaded by LuaHost::LoadScript with the real source definitions (postgres, mysql), in the
// sandbox and under the memory cap and instruction budget siphon runs scripts with. A bad
// script must come back as a Status (siphon exits 2 with its message), never as a crash,
// a leak or undefined behaviour.
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "adapters/mysql/mysql_source.hpp"
#include "adapters/postgres/postgres_source.hpp"
#include "runtime/lua/lua_host.hpp"

namespace {

std::string& ScriptPath() {
  static std::string path;
  return path;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  spdlog::set_level(spdlog::level::off);  // scripts may log at will; keep the fuzzer's output
  std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("siphon-fuzz-script-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  ScriptPath() = (dir / "deploy.lua").string();
  std::atexit([] {
    std::error_code ec;
    std::filesystem::remove_all(std::filesystem::path(ScriptPath()).parent_path(), ec);
  });
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  {
    std::ofstream out(ScriptPath(), std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  }
  siphon::LuaOptions options;
  // Smaller limits than siphon's defaults keep each input fast; the code paths are the same.
  options.memory_limit = size_t{32} << 20;
  options.load_instruction_budget = 200'000;
  options.instruction_budget = 200'000;
  auto host = siphon::LuaHost::Create({siphon::postgres::Definition(), siphon::mysql::Definition()},
                                      options);
  if (!host.ok()) __builtin_trap();  // the state itself must always build
  siphon::Status st = (*host)->LoadScript(ScriptPath());
  if (st.ok()) {
    siphon::Deployment d = (*host)->TakeDeployment();
    (void)d;
  } else if (st.message().empty()) {
    __builtin_trap();  // a failure must say what is wrong
  }
  bool drained = false;
  (*host)->Shutdown([&drained] { drained = true; });
  if (!drained) __builtin_trap();  // without a loop, Shutdown completes at once
  return 0;
}

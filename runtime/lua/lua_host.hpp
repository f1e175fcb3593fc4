#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <lua.hpp>

#include "adapters/source.hpp"
#include "runtime/base/status.hpp"
#include "runtime/sync/deployment.hpp"

namespace siphon {

/// Limits and trust of a Lua state.
struct LuaOptions {
  /// Opens the full standard library (os, io, debug, C modules): `--unsafe-lua`.
  bool unsafe = false;
  /// Bytes the state may hold; a script allocating beyond gets a memory error.
  size_t memory_limit = size_t{256} << 20;
  /// VM instructions one Call may run (a transform, a handler) before it is stopped.
  uint64_t instruction_budget = 10'000'000;
  /// VM instructions the script's main chunk may run in LoadScript.
  uint64_t load_instruction_budget = 10'000'000;
};

/// What the declaration bindings build while the script runs. Owned by the LuaHost; the
/// bindings (runtime/lua/bindings_*.cpp) reach it through LuaHost::From(L).
struct Declarations {
  std::vector<SourceDefinition> definitions;  ///< the `siphon.<kind>` constructors
  std::string script_path;                    ///< as the user gave it; chunk name and messages
  std::string script_dir;                     ///< absolute folder of the script
  Deployment deployment;
  /// True while LoadScript runs the main chunk: declarations are refused at any other time
  /// (from a callback, after TakeDeployment).
  bool loading = false;
  std::map<std::string, int> kind_counts;  ///< for SourceDecl names: "postgres#2"
  /// `siphon.replicate "name"` calls whose field table has not been given yet, by serial:
  /// "orders" at "script.lua:9". Left over at the end of the script, they are an error.
  std::map<int, std::pair<std::string, std::string>> pending_tables;
  int next_pending = 0;
};

/// One Lua state (Lua 5.4) and everything about it: the sandbox, the memory cap, the
/// instruction budget, the `siphon` declaration API, and the one door into Lua (Call).
///
/// Lives on the loop thread. Bindings run with the cap lifted (see EnterNative), so the only
/// way a binding leaves through lua_error is its own, after its C++ objects are gone.
class LuaHost {
 public:
  /// Builds the state: sandbox (unless options.unsafe), `siphon` table with one
  /// `siphon.<kind>` per definition, `require "siphon"`. The core passes the adapters'
  /// definitions in; the Lua layer knows no adapter.
  static Result<std::unique_ptr<LuaHost>> Create(const std::vector<SourceDefinition>& definitions,
                                                 LuaOptions options = {});
  ~LuaHost();
  LuaHost(const LuaHost&) = delete;
  LuaHost& operator=(const LuaHost&) = delete;

  /// Runs the script's main chunk once, with options.load_instruction_budget, declaring the
  /// deployment. Errors are ErrorKind::kConfig: a missing file, a syntax error, a
  /// declaration error (`script.lua:LINE: message` then the traceback), no target, no
  /// table, a `siphon.replicate "name"` never given its fields. Call it once.
  Status LoadScript(const std::string& path);

  /// The deployment LoadScript declared (moved out; a second call returns an empty one).
  Deployment TakeDeployment();

  /// The one door into Lua. Calls the function below `nargs` arguments on top of the stack
  /// with a traceback message handler and an instruction budget (`budget`, 0 for
  /// options.instruction_budget), and returns with the stack as it was below the function
  /// plus `nresults` results on success (none on failure). A failure is ErrorKind::kScript
  /// whose message is `file:line: error` and the traceback; a runaway loop gets
  /// "instruction budget exceeded in <what>", a runaway allocation "memory limit exceeded
  /// in <what>", and a script's own pcall cannot swallow either. Nested calls (a binding
  /// calling back into Lua) share the outer budget.
  Status Call(int nargs, int nresults, std::string_view what, uint64_t budget = 0);

  lua_State* state() const { return L_; }
  const LuaOptions& options() const { return options_; }
  size_t memory_used() const { return used_; }

  /// The host owning a state (or one of its coroutines).
  static LuaHost* From(lua_State* L);

  /// True while the Call in progress is being stopped (budget or memory): message handlers
  /// the script installed (xpcall) are skipped then, because Lua runs them with hooks off.
  bool stopping() const { return kill_ != Kill::kNone; }

  /// For bindings: the declarations under construction.
  Declarations& declarations() { return decl_; }

  /// For bindings: while inside, allocations ignore the cap, so no Lua API call made by
  /// C++ code with live destructors can longjmp for lack of memory. Balanced by LeaveNative.
  void EnterNative() { ++native_depth_; }
  void LeaveNative() { --native_depth_; }

 private:
  enum class Kill { kNone, kBudget, kMemory };

  LuaHost(const std::vector<SourceDefinition>& definitions, LuaOptions options);
  static void* Alloc(void* ud, void* ptr, size_t osize, size_t nsize);
  static void Hook(lua_State* L, lua_Debug* ar);
  std::string LimitMessage(Kill kill) const;

  LuaOptions options_;
  lua_State* L_ = nullptr;
  Declarations decl_;
  bool loaded_ = false;

  // Memory accounting (Alloc).
  size_t used_ = 0;
  int native_depth_ = 0;
  bool refused_ = false;  // an allocation was refused and not yet satisfied by a retry
  const void* refused_ptr_ = nullptr;
  size_t refused_osize_ = 0;
  size_t refused_nsize_ = 0;

  // The Call in progress (Hook).
  int call_depth_ = 0;
  uint64_t budget_total_ = 0;
  uint64_t budget_left_ = 0;
  std::string what_;
  Kill kill_ = Kill::kNone;
};

}  // namespace siphon

#pragma once
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <uv.h>
#include <lua.hpp>

#include "adapters/source.hpp"
#include "runtime/base/status.hpp"
#include "runtime/lua/lua_ref.hpp"
#include "runtime/lua/small_blocks.hpp"
#include "runtime/sync/deployment.hpp"
#include "runtime/sync/events.hpp"

namespace siphon {

class Target;
class LuaAsync;
class LuaEvents;

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

  /// A file the script names: a relative path is relative to the script's folder.
  std::string BesideScript(const std::string& path) const {
    std::filesystem::path p(path);
    if (p.is_relative() && !script_dir.empty()) p = std::filesystem::path(script_dir) / p;
    return p.lexically_normal().string();
  }
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

  /// Where the runners send their events: the script's `siphon.on` and `on = { … }` handlers
  /// run from here, each in its own coroutine. Owned by the host; valid while it lives.
  EventSink* events();

  /// Gives `siphon.every`, `siphon.after` and `siphon.http` their loop (the loop thread's).
  /// Timers the script declared while loading start now. Call once, after LoadScript.
  void AttachLoop(uv_loop_t* loop);

  /// Gives `siphon.target:exec` the writer (Target::Exec, between pages) and
  /// `siphon.target:query` the file, read through a read-only connection of its own (WAL:
  /// it never blocks the writer and never sees a page half written). `target` must outlive
  /// the host's callbacks (call Shutdown before destroying it).
  void AttachTarget(Target* target, const std::string& path);

  /// What siphon.status() returns: the deployment's state as JSON text, asked on the loop
  /// thread at each call. Unset (or null), siphon.status() is an error: the script is being
  /// loaded or checked, nothing runs.
  void SetStatusProvider(std::function<std::string()> provider) {
    status_provider_ = std::move(provider);
  }
  const std::function<std::string()>& status_provider() const { return status_provider_; }

  /// Stops the timers, lets the handlers and HTTP requests in flight finish (at most
  /// `timeout`, then they are abandoned), closes every loop handle of the host and then
  /// calls `drained` on the loop thread. The loop must keep running until then. Without an
  /// attached loop, `drained` runs at once. No callback runs afterwards.
  void Shutdown(std::function<void()> drained,
                std::chrono::milliseconds timeout = std::chrono::seconds(10));

  /// The one door into Lua. Calls the function below `nargs` arguments on top of the stack
  /// with a traceback message handler and an instruction budget (`budget`, 0 for
  /// options.instruction_budget), and returns with the stack as it was below the function
  /// plus `nresults` results on success (none on failure). A failure is ErrorKind::kScript
  /// whose message is `file:line: error` and the traceback; a runaway loop gets
  /// "instruction budget exceeded in <what>", a runaway allocation "memory limit exceeded
  /// in <what>", and a script's own pcall cannot swallow either. Nested calls (a binding
  /// calling back into Lua) share the outer budget.
  Status Call(int nargs, int nresults, std::string_view what, uint64_t budget = 0) {
    return Call(L_, nargs, nresults, what, budget);
  }
  /// The same on thread `L` (a coroutine of this state, e.g. a binding called from a handler).
  Status Call(lua_State* L, int nargs, int nresults, std::string_view what, uint64_t budget = 0);

  /// The coroutine door: runs the function below `nargs` arguments on top of state() in a
  /// new coroutine, with the budget of a Call for each step it runs (a step ends when it
  /// finishes or waits in a helper such as siphon.http). A failure (error, budget, memory) is
  /// logged with its traceback as "<what> failed: …" and returned when it happens in this
  /// first step. Never raises. `on_failure`, when given, also gets a failure of any step
  /// (after the coroutine is gone), e.g. to turn it into an `error` event.
  Status Spawn(int nargs, std::string_view what,
               std::function<void(const Status&)> on_failure = nullptr);

  /// Resumes a coroutine that waits in a helper (see Await) with the `nargs` values on top
  /// of `co`. Failures are logged. Loop thread only, never from inside Lua.
  void Resume(lua_State* co, int nargs);

  /// For helpers that wait: true when `L` is a coroutine started by Spawn and can yield.
  bool CanAwait(lua_State* L) const;
  /// For helpers that wait: marks `L` as waiting; the helper then returns lua_yield and
  /// later calls Resume. Without it, a coroutine that yields is an error.
  void Await(lua_State* L);

  /// Coroutines started by Spawn that have not finished (waiting in a helper).
  size_t pending_tasks() const { return tasks_.size(); }

  /// True when the last Call or Spawn step was stopped by the instruction budget or the
  /// memory cap (not an ordinary error).
  bool last_call_killed() const { return last_killed_; }

  /// For bindings: the async helpers (timers, HTTP, target access).
  LuaAsync& async() { return *async_; }
  LuaEvents& event_handlers() { return *events_; }

  /// Expires when the host is destroyed: objects that outlive it (a RowTransform kept by a
  /// runner, a Target::Exec completion) check it before touching the state.
  std::weak_ptr<LuaHost*> weak() const { return self_; }

  lua_State* state() const { return L_; }
  const LuaOptions& options() const { return options_; }
  size_t memory_used() const { return used_; }

  /// The host owning a state (or one of its coroutines).
  static LuaHost* From(lua_State* L);

  /// True while the Call in progress is being stopped (budget or memory): message handlers
  /// the script installed (xpcall) are skipped then, because Lua runs them with hooks off.
  bool stopping() const { return kill_ != Kill::kNone; }

  /// Steps a library function (a pattern match, a table shift) may still take in the Call in
  /// progress before its instruction budget is spent; no limit outside a Call.
  uint64_t StepsLeft() const { return call_depth_ > 0 ? budget_left_ : UINT64_MAX; }

  /// Counts `steps` of a library function against the Call's instruction budget. When they
  /// pass it, raises "instruction budget exceeded" at the calling line as the count hook does
  /// (and, like it, again on every instruction after, so a pcall cannot swallow it). May
  /// longjmp: call it with no C++ object alive.
  void SpendSteps(lua_State* L, uint64_t steps) {
    if (call_depth_ == 0) return;
    if (steps < budget_left_) {
      budget_left_ -= steps;
      return;
    }
    KillForSteps(L);
  }

  /// For bindings: the declarations under construction.
  Declarations& declarations() { return decl_; }

  /// For bindings: while inside, allocations ignore the cap, so no Lua API call made by
  /// C++ code with live destructors can longjmp for lack of memory. Balanced by LeaveNative.
  void EnterNative() { ++native_depth_; }
  void LeaveNative() { --native_depth_; }

 private:
  enum class Kill { kNone, kBudget, kMemory };

  LuaHost(const std::vector<SourceDefinition>& definitions, LuaOptions options);
  struct Task {
    LuaRef thread;
    std::string what;
    bool awaiting = false;
    std::function<void(const Status&)> on_failure;
  };
  bool Arm(uint64_t budget, std::string_view what);
  void Disarm(bool outer, lua_State* co);
  Status Step(lua_State* co, int nargs);
  static void* Alloc(void* ud, void* ptr, size_t osize, size_t nsize);
  static void Hook(lua_State* L, lua_Debug* ar);
  std::string LimitMessage(Kill kill) const;
  [[noreturn]] void KillForSteps(lua_State* L);

  LuaOptions options_;
  lua_State* L_ = nullptr;
  Declarations decl_;
  std::function<std::string()> status_provider_;
  bool loaded_ = false;

  // Memory accounting (Alloc), and the state's small blocks (closed before they go).
  size_t used_ = 0;
  SmallBlocks blocks_;
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
  bool last_killed_ = false;

  std::shared_ptr<LuaHost*> self_;
  std::map<lua_State*, Task> tasks_;  // coroutines started by Spawn, by thread
  std::unique_ptr<LuaEvents> events_;
  std::unique_ptr<LuaAsync> async_;  // after the state: destroyed (refs released) before it
};

}  // namespace siphon

#pragma once
// Shared by the bindings_*.cpp files: how a C++ binding is exposed to Lua safely.
#include <stdexcept>
#include <string>
#include <string_view>

#include <lua.hpp>

#include "runtime/lua/lua_host.hpp"

namespace siphon {

/// Thrown by a binding body for a mistake in the script; Bind turns it into a Lua error
/// prefixed with the calling line.
class ScriptError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// "script.lua:12" for the Lua function `level` frames up (1: the caller of the running C
/// function), or "" when that frame is not Lua code. Uses the full chunk name, not Lua's
/// 60-character short form.
std::string CallerLocation(lua_State* L, int level = 1);

/// Lifts the memory cap for the scope of a binding body (LuaHost::EnterNative).
class NativeScope {
 public:
  explicit NativeScope(lua_State* L) : host_(LuaHost::From(L)) { host_->EnterNative(); }
  ~NativeScope() { host_->LeaveNative(); }
  NativeScope(const NativeScope&) = delete;
  NativeScope& operator=(const NativeScope&) = delete;

 private:
  LuaHost* host_;
};

/// Throws a ScriptError unless the script's main chunk is running: `function` (e.g.
/// "siphon.replicate") declares the deployment and cannot be called from a callback.
void RequireLoading(lua_State* L, const char* function);

/// Pushes "LOCATION: message" (or just the message when the caller is not Lua code).
void PushErrorAt(lua_State* L, const char* message);

/// Exposes `Body` to Lua. The body runs with the memory cap lifted and may throw
/// (ScriptError or any std::exception); it must only use Lua API calls that cannot raise
/// otherwise (raw access, no metamethods, no calls into Lua). Errors are raised after every
/// C++ object of the body is destroyed, so lua_error's longjmp skips no destructor.
template <int (*Body)(lua_State*)>
int Bind(lua_State* L) {
  int results = 0;
  bool failed = false;
  {
    NativeScope native(L);
    try {
      results = Body(L);
    } catch (const std::exception& e) {
      PushErrorAt(L, e.what());
      failed = true;
    }
  }
  if (failed) return lua_error(L);
  return results;
}

/// True when the script's memory plus `more` bytes stays within the memory cap, which
/// bindings run without: what they build for the script is checked with this instead.
/// Garbage counts until collected: a full collection comes first when it would not fit.
bool FitsMemoryCap(lua_State* L, size_t more);

/// The memory cap in MiB, for messages ("256").
std::string CapMiB(lua_State* L);

/// Pushes the value of a JSON text (siphon.json.decode's tables: null → siphon.null), built as
/// it is parsed under the memory cap. Throws ScriptError naming `what` when the text is not
/// JSON, nests deeper than 100 levels or would pass the cap.
void PushJsonText(lua_State* L, std::string_view text, const std::string& what);

// Each namespace of the API registers its functions into the `siphon` table at `siphon`.
void RegisterSourceBindings(lua_State* L, int siphon);
void RegisterTargetBinding(lua_State* L, int siphon);
void RegisterReplicateBinding(lua_State* L, int siphon);
void RegisterEnvLogBindings(lua_State* L, int siphon);
void RegisterJsonBindings(lua_State* L, int siphon);   // siphon.json, siphon.null
void RegisterEventBindings(lua_State* L, int siphon);  // siphon.on
void RegisterAsyncBindings(lua_State* L, int siphon);
void RegisterHttpApiBinding(
    lua_State* L, int siphon);  // siphon.http_api  // siphon.every/after/http, target:query/exec

/// Return value of a Bind body that waits: the wrapper (Awaiting) yields the coroutine.
inline constexpr int kYield = -1;

/// Exposes a body that may wait (returns kYield after LuaHost::Await): like Bind, then
/// yields outside every C++ scope. `Cont` runs when the coroutine is resumed (nullptr: the
/// values passed to Resume are returned as they are).
template <int (*Body)(lua_State*), lua_KFunction Cont = nullptr>
int BindAwaiting(lua_State* L) {
  int n = Bind<Body>(L);
  if (n == kYield) return lua_yieldk(L, 0, 0, Cont);
  return n;
}

/// Opens the standard libraries: the sandbox (runtime/lua/sandbox.cpp) or, when `unsafe`,
/// all of them; both get `require` of the embedded lua/ modules and the script's folder.
void OpenLibraries(lua_State* L, bool unsafe);

/// Replaces the library functions whose work the count hook cannot see with versions that
/// charge it to the instruction budget: string.find, match, gmatch and gsub (pattern.hpp),
/// string.rep, table.move, insert, remove and sort (runtime/lua/metered.cpp).
void InstallMeteredFunctions(lua_State* L);

/// Wraps the function t[name] as a closure of `fn` with the original as upvalue 1.
void WrapField(lua_State* L, int t, const char* name, lua_CFunction fn);

}  // namespace siphon

#pragma once
#include <cstdint>

#include <lua.hpp>

namespace siphon {

/// A Lua value kept alive from C++: a registry reference released when the LuaRef dies.
/// Move-only, so exactly one owner releases each reference. A LuaRef must die before the
/// LuaHost whose state it points into, and only on the loop thread that owns that state.
class LuaRef {
 public:
  LuaRef() = default;
  ~LuaRef() { Reset(); }
  LuaRef(LuaRef&& other) noexcept;
  LuaRef& operator=(LuaRef&& other) noexcept;
  LuaRef(const LuaRef&) = delete;
  LuaRef& operator=(const LuaRef&) = delete;

  /// Pops the value on top of L's stack into a new reference (nil gives an empty LuaRef).
  /// Allocates in the registry: call it where a memory error may be raised, i.e. from Lua
  /// or from a binding (whose allocations never fail, see LuaHost).
  static LuaRef Pop(lua_State* L);

  /// Pushes the referenced value (nil when empty).
  void Push(lua_State* L) const;

  bool valid() const { return state_ != nullptr; }
  explicit operator bool() const { return valid(); }

  /// Releases the reference now.
  void Reset();
  /// Forgets the reference without touching the state (the state is gone or going).
  void Abandon();

  /// References alive in the whole process: tests assert it returns to zero.
  static int64_t LiveCount();

 private:
  lua_State* state_ = nullptr;  // the main thread, which outlives every coroutine
  int ref_ = LUA_NOREF;
};

}  // namespace siphon

#include "runtime/lua/lua_ref.hpp"

#include <atomic>
#include <utility>

namespace siphon {
namespace {
std::atomic<int64_t> g_live_refs{0};
}  // namespace

LuaRef::LuaRef(LuaRef&& other) noexcept
    : state_(std::exchange(other.state_, nullptr)), ref_(std::exchange(other.ref_, LUA_NOREF)) {}

LuaRef& LuaRef::operator=(LuaRef&& other) noexcept {
  if (this != &other) {
    Reset();
    state_ = std::exchange(other.state_, nullptr);
    ref_ = std::exchange(other.ref_, LUA_NOREF);
  }
  return *this;
}

LuaRef LuaRef::Pop(lua_State* L) {
  LuaRef r;
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    return r;
  }
  lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
  r.state_ = lua_tothread(L, -1);
  lua_pop(L, 1);
  r.ref_ = luaL_ref(L, LUA_REGISTRYINDEX);
  ++g_live_refs;
  return r;
}

void LuaRef::Push(lua_State* L) const {
  if (state_ == nullptr) {
    lua_pushnil(L);
  } else {
    lua_rawgeti(L, LUA_REGISTRYINDEX, ref_);
  }
}

void LuaRef::Abandon() {
  if (state_ == nullptr) return;
  state_ = nullptr;
  ref_ = LUA_NOREF;
  --g_live_refs;
}

void LuaRef::Reset() {
  if (state_ == nullptr) return;
  luaL_unref(state_, LUA_REGISTRYINDEX, ref_);
  state_ = nullptr;
  ref_ = LUA_NOREF;
  --g_live_refs;
}

int64_t LuaRef::LiveCount() {
  return g_live_refs.load();
}

}  // namespace siphon

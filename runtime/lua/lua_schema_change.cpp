#include "runtime/lua/lua_schema_change.hpp"

namespace siphon {
namespace {

void PushStrings(lua_State* L, const std::vector<std::string>& v) {
  lua_createtable(L, static_cast<int>(v.size()), 0);
  for (size_t i = 0; i < v.size(); ++i) {
    lua_pushlstring(L, v[i].data(), v[i].size());
    lua_rawseti(L, -2, static_cast<lua_Integer>(i) + 1);
  }
}

}  // namespace

LuaSchemaChange::LuaSchemaChange(LuaHost& host, std::string table)
    : host_(&host),
      alive_(host.weak()),
      what_("on_schema_change of table \"" + table + "\""),
      fn_(LuaRef::Pop(host.state())) {}

LuaSchemaChange::~LuaSchemaChange() {
  // Outliving the host (a deployment kept after its state closed): nothing to release.
  if (!alive_.lock()) fn_.Abandon();
}

Result<SchemaChangeAction> LuaSchemaChange::Decide(const std::string& table,
                                                   const SchemaDiff& diff) {
  if (!alive_.lock()) return Status(ErrorKind::kScript, what_ + ": the Lua state is gone");
  lua_State* L = host_->state();
  const int top = lua_gettop(L);
  fn_.Push(L);
  lua_createtable(L, 0, 4);
  lua_pushlstring(L, table.data(), table.size());
  lua_setfield(L, -2, "table");
  PushStrings(L, diff.added);
  lua_setfield(L, -2, "added");
  PushStrings(L, diff.dropped);
  lua_setfield(L, -2, "dropped");
  lua_createtable(L, static_cast<int>(diff.retyped.size()), 0);
  for (size_t i = 0; i < diff.retyped.size(); ++i) {
    lua_createtable(L, 0, 3);
    lua_pushstring(L, diff.retyped[i].column.c_str());
    lua_setfield(L, -2, "column");
    lua_pushstring(L, diff.retyped[i].from.c_str());
    lua_setfield(L, -2, "from");
    lua_pushstring(L, diff.retyped[i].to.c_str());
    lua_setfield(L, -2, "to");
    lua_rawseti(L, -2, static_cast<lua_Integer>(i) + 1);
  }
  lua_setfield(L, -2, "retyped");
  if (Status st = host_->Call(1, 1, what_); !st.ok()) {
    lua_settop(L, top);
    return st;
  }
  std::string word = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "";
  lua_settop(L, top);
  if (word == "continue") return SchemaChangeAction::kContinue;
  if (word == "pause") return SchemaChangeAction::kPause;
  if (word == "resync") return SchemaChangeAction::kResync;
  return Status(ErrorKind::kScript, what_ +
                                        " must return \"continue\", \"pause\" or \"resync\", got " +
                                        (word.empty() ? "something else" : "\"" + word + "\""));
}

}  // namespace siphon

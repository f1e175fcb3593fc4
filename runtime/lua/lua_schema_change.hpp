#pragma once
#include <memory>
#include <string>

#include "runtime/lua/lua_host.hpp"
#include "runtime/lua/lua_ref.hpp"
#include "runtime/sync/deployment.hpp"

namespace siphon {

/// `on_schema_change = function(diff) … end`: the function gets the diff ({ added = {…},
/// dropped = {…}, retyped = { { column, from, to }, … } }) and returns "continue", "pause"
/// or "resync". Called through LuaHost::Call, with its budget and traceback.
class LuaSchemaChange : public SchemaChangeHandler {
 public:
  /// Takes the function on top of the host's stack.
  /// Declared tables (and so this handler) go before their Lua state (Replicator, reload).
  LuaSchemaChange(LuaHost& host, std::string table);
  ~LuaSchemaChange() override;

  Result<SchemaChangeAction> Decide(const std::string& table, const SchemaDiff& diff) override;

 private:
  LuaHost* host_;
  std::weak_ptr<LuaHost*> alive_;
  std::string what_;
  LuaRef fn_;
};

}  // namespace siphon

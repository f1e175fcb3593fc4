// siphon.target{ path = … }: the one SQLite target of a deployment.

#include "runtime/lua/binding.hpp"
#include "runtime/lua/options.hpp"

namespace siphon {
namespace {

const std::vector<FieldSpec>& TargetSpec() {
  static const std::vector<FieldSpec> spec = [] {
    FieldSpec path;
    path.name = "path";
    path.required = true;
    path.doc = "the SQLite file to replicate into; relative to the script's folder";
    return std::vector<FieldSpec>{path};
  }();
  return spec;
}

int TargetBody(lua_State* L) {
  Declarations& d = LuaHost::From(L)->declarations();
  lua_remove(L, 1);  // __call's first argument: siphon.target itself
  RequireLoading(L, "siphon.target");
  if (lua_type(L, 1) != LUA_TTABLE) {
    throw ScriptError(
        "siphon.target expects a table of fields: siphon.target { path = "
        "\"replica.db\" }, got " +
        DescribeValue(L, 1));
  }
  Result<Fields> fields = ReadFields(L, 1, TargetSpec(), "siphon.target");
  if (!fields.ok()) throw ScriptError(fields.status().message());
  if (d.deployment.target) {
    throw ScriptError("siphon.target is already declared at " + d.deployment.target->location +
                      " (a deployment has exactly one target)");
  }
  const std::string& path = *fields->get<std::string>("path");
  if (path.empty() || path.find('\0') != std::string::npos) {
    throw ScriptError("siphon.target: field 'path' must be a file name, got an empty string");
  }
  TargetDecl target;
  target.path = d.BesideScript(path);
  target.location = CallerLocation(L, 1);
  d.deployment.target = std::move(target);
  return 0;
}

}  // namespace

void RegisterTargetBinding(lua_State* L, int siphon) {
  // A table, so that siphon.target:query/exec (bindings_async.cpp) sit beside the
  // declaration siphon.target { … } (its __call).
  lua_newtable(L);
  lua_createtable(L, 0, 1);
  lua_pushcfunction(L, Bind<TargetBody>);
  lua_setfield(L, -2, "__call");
  lua_setmetatable(L, -2);
  lua_setfield(L, siphon, "target");
}

}  // namespace siphon

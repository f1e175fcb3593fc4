// siphon.<kind>{ … }: one constructor per SourceDefinition the core passed to the LuaHost.
#include "runtime/lua/binding.hpp"
#include "runtime/lua/options.hpp"

namespace siphon {
namespace {

int SourceBody(lua_State* L) {
  Declarations& d = LuaHost::From(L)->declarations();
  auto i = static_cast<size_t>(lua_tointeger(L, lua_upvalueindex(1)));
  const SourceDefinition& def = d.definitions.at(i);
  std::string what = "siphon." + def.kind;
  RequireLoading(L, what.c_str());
  if (lua_type(L, 1) != LUA_TTABLE) {
    throw ScriptError(what + " expects a table of options: " + what + " { … }, got " +
                      DescribeValue(L, 1));
  }
  // Every kind shares `max_connections`: the sync layer's pool, not the adapter, uses it.
  std::vector<FieldSpec> spec = FieldsFromSourceOptions(def.options);
  FieldSpec max_connections;
  max_connections.name = "max_connections";
  max_connections.type = FieldType::kInteger;
  max_connections.default_value = static_cast<int64_t>(SourceDecl::kDefaultMaxConnections);
  max_connections.min = 1;
  max_connections.max = 1000;
  max_connections.doc = "connections its tables share";
  spec.push_back(std::move(max_connections));
  Result<Fields> fields = ReadFields(L, 1, spec, what);
  if (!fields.ok()) throw ScriptError(fields.status().message());

  Options options;
  std::vector<std::pair<std::string, std::string>> files;
  for (const OptionSpec& o : def.options) {
    if (const auto* s = fields->get<std::string>(o.name)) {
      options[o.name] = o.file && !s->empty() ? d.BesideScript(*s) : *s;
      if (o.file && !s->empty()) files.emplace_back(o.name, d.BesideScript(*s));
    }
    if (const auto* n = fields->get<int64_t>(o.name)) options[o.name] = *n;
    if (const auto* b = fields->get<bool>(o.name)) options[o.name] = *b;
  }
  Result<std::unique_ptr<Source>> made = def.make(options);
  if (!made.ok()) {
    const std::string& m = made.status().message();
    // Adapters may already name themselves ("siphon.postgres needs `dsn` or `host`").
    throw ScriptError(m.rfind(what, 0) == 0 ? m : what + ": " + m);
  }

  auto decl = std::make_shared<SourceDecl>();
  decl->name = def.kind + "#" + std::to_string(++d.kind_counts[def.kind]);
  decl->location = CallerLocation(L, 1);
  decl->source = std::shared_ptr<Source>(std::move(made).value());
  decl->options = std::move(options);
  decl->files = std::move(files);
  decl->max_connections = static_cast<size_t>(*fields->get<int64_t>("max_connections"));
  d.deployment.sources.push_back(std::move(decl));

  auto* handle = static_cast<SourceHandle*>(lua_newuserdatauv(L, sizeof(SourceHandle), 0));
  handle->index = d.deployment.sources.size() - 1;
  luaL_setmetatable(L, kSourceHandleMeta);
  return 1;
}

int SourceToStringBody(lua_State* L) {
  const auto* h = static_cast<SourceHandle*>(luaL_testudata(L, 1, kSourceHandleMeta));
  const auto& sources = LuaHost::From(L)->declarations().deployment.sources;
  if (h == nullptr || h->index >= sources.size()) {
    lua_pushliteral(L, "siphon source");
    return 1;
  }
  const SourceDecl& s = *sources[h->index];
  std::string text = "siphon source " + s.name + " (" + s.source->Describe() + ")";
  lua_pushlstring(L, text.data(), text.size());
  return 1;
}

}  // namespace

void RegisterSourceBindings(lua_State* L, int siphon) {
  luaL_newmetatable(L, kSourceHandleMeta);
  lua_pushcfunction(L, Bind<SourceToStringBody>);
  lua_setfield(L, -2, "__tostring");
  lua_pushliteral(L, "siphon.source");  // getmetatable() answers this; setmetatable refuses
  lua_setfield(L, -2, "__metatable");
  lua_pop(L, 1);

  const auto& definitions = LuaHost::From(L)->declarations().definitions;
  for (size_t i = 0; i < definitions.size(); ++i) {
    lua_pushinteger(L, static_cast<lua_Integer>(i));
    lua_pushcclosure(L, Bind<SourceBody>, 1);
    lua_setfield(L, siphon, definitions[i].kind.c_str());
  }
}

}  // namespace siphon

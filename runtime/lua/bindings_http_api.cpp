// siphon.http_api{ listen = "127.0.0.1:8787", token = siphon.env("SIPHON_TOKEN") }: the admin
// API declared in the script (the `--http` flag overrides it).
#include "runtime/lua/binding.hpp"
#include "runtime/lua/options.hpp"

namespace siphon {
namespace {

const std::vector<FieldSpec>& HttpApiSpec() {
  static const std::vector<FieldSpec> spec = [] {
    FieldSpec listen;
    listen.name = "listen";
    listen.required = true;
    listen.doc = "ADDR:PORT or PORT to serve the admin API on (127.0.0.1 when no address)";
    FieldSpec token;
    token.name = "token";
    token.secret = true;
    token.doc = "bearer token every endpoint but /healthz requires; needed off loopback";
    return std::vector<FieldSpec>{listen, token};
  }();
  return spec;
}

int HttpApiBody(lua_State* L) {
  Declarations& d = LuaHost::From(L)->declarations();
  RequireLoading(L, "siphon.http_api");
  if (lua_type(L, 1) != LUA_TTABLE) {
    throw ScriptError(
        "siphon.http_api expects a table of fields: siphon.http_api { listen = "
        "\"127.0.0.1:8787\" }, got " +
        DescribeValue(L, 1));
  }
  Result<Fields> fields = ReadFields(L, 1, HttpApiSpec(), "siphon.http_api");
  if (!fields.ok()) throw ScriptError(fields.status().message());
  if (d.deployment.http_api) {
    throw ScriptError("siphon.http_api is already declared at " + d.deployment.http_api->location);
  }
  HttpApiDecl api;
  api.listen = *fields->get<std::string>("listen");
  if (const auto* token = fields->get<std::string>("token")) api.token = *token;
  api.location = CallerLocation(L, 1);
  d.deployment.http_api = std::move(api);
  return 0;
}

}  // namespace

void RegisterHttpApiBinding(lua_State* L, int siphon) {
  lua_pushcfunction(L, Bind<HttpApiBody>);
  lua_setfield(L, siphon, "http_api");
}

}  // namespace siphon

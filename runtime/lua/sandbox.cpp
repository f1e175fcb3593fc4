// The standard libraries a script gets, and `require`. See OpenLibraries in binding.hpp.
//
// Sandbox (default): base library without dofile/loadfile, `load` for text chunks only,
// `setmetatable` refusing __gc (finalizers run outside the instruction budget) and
// `getmetatable` refusing userdata (a file handle's metatable has a __gc to replace);
// string, table, math, utf8, coroutine; os.time/clock/date/difftime/getenv; io.open and
// io.lines for reading files inside the script's folder, io.type; debug.traceback. Every
// other function of those libraries is a stub raising "X is not available in the siphon
// sandbox (run with --unsafe-lua to allow it)" at the calling line. `print` logs to the
// "lua" logger (stdout belongs to siphon). Reading an undefined global is an error (a typo
// such as `source = gp` fails at its line instead of passing nil on). `require` finds
// package.preload, the embedded lua/ modules, then pure-Lua modules in the script's folder
// (NAME.lua or NAME/init.lua, text only); no C modules.
// Unsafe: every standard library as lua(1) has it, plus the embedded and script-folder
// searchers ahead of the standard ones. Both: xpcall skips the script's message handler
// while a call is being stopped (see GuardedXpcall).
#include <filesystem>
#include <fstream>
#include <sstream>

#include "runtime/base/log.hpp"
#include "runtime/lua/binding.hpp"
#include "runtime/lua/embedded.hpp"

namespace siphon {
namespace {

namespace fs = std::filesystem;

int Unavailable(lua_State* L) {
  return luaL_error(L,
                    "%s is not available in the siphon sandbox (run with --unsafe-lua to "
                    "allow it)",
                    lua_tostring(L, lua_upvalueindex(1)));
}

// Sets t[name] to a stub naming `qualified` ("os.execute").
void SetStub(lua_State* L, int t, const char* name, const char* qualified) {
  lua_pushstring(L, qualified);
  lua_pushcclosure(L, Unavailable, 1);
  lua_setfield(L, t, name);
}

// Copies the listed fields of the table on top into a new table, stubs the others, and
// replaces the global `lib` with it.
void RestrictLibrary(lua_State* L, const char* lib, std::initializer_list<const char*> keep) {
  int full = lua_gettop(L);
  lua_newtable(L);
  int safe = lua_gettop(L);
  lua_pushnil(L);
  while (lua_next(L, full) != 0) {  // key at -2, value at -1
    if (lua_type(L, -2) != LUA_TSTRING) {
      lua_pop(L, 1);
      continue;
    }
    std::string name = lua_tostring(L, -2);
    bool kept = false;
    for (const char* k : keep) kept = kept || name == k;
    if (kept) {
      lua_setfield(L, safe, name.c_str());
      continue;
    }
    bool is_function = lua_type(L, -1) == LUA_TFUNCTION;
    lua_pop(L, 1);
    std::string qualified = std::string(lib) + "." + name;
    lua_pushstring(L, qualified.c_str());
    lua_pushcclosure(L, Unavailable, 1);
    if (!is_function) {
      // io.stdout and the like: any use (io.stdout:write) raises the message naming it.
      lua_createtable(L, 0, 1);
      lua_insert(L, -2);
      lua_setfield(L, -2, "__index");
      lua_newtable(L);
      lua_insert(L, -2);
      lua_setmetatable(L, -2);
    }
    lua_setfield(L, safe, name.c_str());
  }
  // require(lib) finds package.loaded[lib] before any searcher: it must be the safe table
  // too, or `require "os"` hands back the full library.
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  lua_pushvalue(L, safe);
  lua_setfield(L, -2, lib);
  lua_pop(L, 1);
  lua_setglobal(L, lib);
  lua_pop(L, 1);
}

// load(chunk [, chunkname [, mode [, env]]]) with mode forced to "t".
int TextOnlyLoad(lua_State* L) {
  lua_settop(L, 4);
  lua_pushliteral(L, "t");
  lua_replace(L, 3);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, 4, LUA_MULTRET);
  return lua_gettop(L);
}

// xpcall's message handler runs with hooks off when the error comes from the budget hook,
// so a looping handler could never be stopped: skip the script's handler during a kill.
int GuardedHandler(lua_State* L) {
  if (LuaHost::From(L)->stopping()) return 1;
  int n = lua_gettop(L);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, n, 1);
  return 1;
}

int XpcallDone(lua_State* L, int, lua_KContext) {
  return lua_gettop(L);
}

// xpcall(f, handler, ...) with the handler guarded; upvalue 1 is the original xpcall.
// Called with lua_callk so a coroutine may still yield inside f.
int GuardedXpcall(lua_State* L) {
  luaL_checkany(L, 2);
  lua_pushvalue(L, 2);
  lua_pushcclosure(L, GuardedHandler, 1);
  lua_replace(L, 2);
  int n = lua_gettop(L);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_callk(L, n, LUA_MULTRET, 0, XpcallDone);
  return XpcallDone(L, LUA_OK, 0);
}

// Calls the wrapped original function (upvalue 1) with the first `nargs` arguments; returns
// its one result.
int CallOriginal(lua_State* L, int nargs) {
  lua_settop(L, nargs);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, nargs, 1);
  return 1;
}

// setmetatable refusing __gc: Lua runs finalizers with hooks off, out of the budget's reach.
int NoFinalizerSetmetatable(lua_State* L) {
  if (lua_type(L, 2) == LUA_TTABLE && lua_getfield(L, 2, "__gc") != LUA_TNIL) {
    return luaL_error(L,
                      "__gc metamethods are not available in the siphon sandbox (run with "
                      "--unsafe-lua to allow them)");
  }
  return CallOriginal(L, 2);
}

// getmetatable refusing userdata: the metatable of a file handle (or any other userdata)
// already has a __gc, which a script could replace with code running outside the budget.
int NoUserdataGetmetatable(lua_State* L) {
  luaL_checkany(L, 1);
  if (lua_type(L, 1) == LUA_TUSERDATA) {
    return luaL_error(L,
                      "getmetatable of a userdata is not available in the siphon sandbox (run "
                      "with --unsafe-lua to allow it)");
  }
  return CallOriginal(L, 1);
}

// print(...) → the "lua" logger at info, prefixed with the calling line.
int Print(lua_State* L) {
  int n = lua_gettop(L);
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  for (int i = 1; i <= n; ++i) {
    luaL_tolstring(L, i, nullptr);
    if (i > 1) luaL_addchar(&b, '\t');
    luaL_addvalue(&b);
  }
  luaL_pushresult(&b);
  {
    NativeScope native(L);
    std::string where = CallerLocation(L, 1);
    try {
      Logger("lua")->info("{}{}{}", where, where.empty() ? "" : ": ", lua_tostring(L, -1));
    } catch (const std::exception&) {
      // A log sink failing must not fail the script.
    }
  }
  return 0;
}

int UndefinedGlobal(lua_State* L) {
  if (lua_type(L, 2) == LUA_TSTRING) {
    return luaL_error(L, "global '%s' is not defined", lua_tostring(L, 2));
  }
  return luaL_error(L, "global %s is not defined", luaL_typename(L, 2));
}

bool IsModuleName(const std::string& name) {
  if (name.empty() || name.front() == '.' || name.find("..") != std::string::npos) return false;
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.';
    if (!ok) return false;
  }
  return true;
}

// package.searchers entry: the lua/ modules embedded in the binary.
int EmbeddedSearcherBody(lua_State* L) {
  if (lua_type(L, 1) != LUA_TSTRING) return 0;
  std::string name = lua_tostring(L, 1);
  // The prelude is also reachable as "siphon.<module>", which no script folder can shadow.
  if (name.rfind("siphon.", 0) == 0) name = name.substr(7);
  for (const EmbeddedFile& f : EmbeddedLua()) {
    if (f.name != name) continue;
    std::string chunkname = "@[siphon]/lua/" + name + ".lua";
    if (luaL_loadbufferx(L, f.source.data(), f.source.size(), chunkname.c_str(), "t") != LUA_OK) {
      throw ScriptError("error loading embedded module '" + name + "': " + lua_tostring(L, -1));
    }
    lua_pushstring(L, chunkname.c_str() + 1);
    return 2;
  }
  lua_pushfstring(L, "no embedded module '%s'", name.c_str());
  return 1;
}

// package.searchers entry: pure-Lua modules in the script's folder.
int ScriptFolderSearcherBody(lua_State* L) {
  if (lua_type(L, 1) != LUA_TSTRING) return 0;
  std::string name = lua_tostring(L, 1);
  const std::string& dir = LuaHost::From(L)->declarations().script_dir;
  if (dir.empty()) {
    lua_pushliteral(L, "no script folder (no script loaded)");
    return 1;
  }
  if (!IsModuleName(name)) {
    lua_pushfstring(L, "'%s' is not a module name of the script's folder (letters, digits, _ - .)",
                    name.c_str());
    return 1;
  }
  std::string rel = name;
  for (char& c : rel) c = c == '.' ? '/' : c;
  std::string tried;
  for (const std::string& candidate : {rel + ".lua", rel + "/init.lua"}) {
    fs::path path = fs::path(dir) / candidate;
    std::ifstream in(path, std::ios::binary);
    std::error_code ec;
    if (!in || fs::is_directory(path, ec)) {
      tried += (tried.empty() ? "no file '" : "\n\tno file '") + path.string() + "'";
      continue;
    }
    std::stringstream buffer;
    buffer << in.rdbuf();
    std::string code = buffer.str();
    std::string chunkname = "@" + path.string();
    if (luaL_loadbufferx(L, code.data(), code.size(), chunkname.c_str(), "t") != LUA_OK) {
      throw ScriptError("error loading module '" + name + "' from file '" + path.string() +
                        "':\n\t" + lua_tostring(L, -1));
    }
    lua_pushstring(L, path.string().c_str());
    return 2;
  }
  lua_pushstring(L, tried.c_str());
  return 1;
}

// Replaces argument 1 (a file name) with its absolute path when it lies inside the
// script's folder; otherwise pushes the error message and returns false. `mode_arg` > 0:
// that argument must be a read mode. Raises nothing, so callers can lua_error afterwards
// with no C++ object alive.
bool ResolveReadPath(lua_State* L, const char* function, int mode_arg) {
  NativeScope native(L);
  try {
    if (lua_type(L, 1) != LUA_TSTRING) {
      throw ScriptError(std::string(function) +
                        (mode_arg > 0 ? ": expects a file name"
                                      : " without a file name reads stdin, which is not "
                                        "available in the siphon sandbox (run with --unsafe-lua "
                                        "to allow it)"));
    }
    if (mode_arg > 0 && !lua_isnoneornil(L, mode_arg)) {
      std::string mode = lua_type(L, mode_arg) == LUA_TSTRING ? lua_tostring(L, mode_arg) : "?";
      if (mode != "r" && mode != "rb") {
        throw ScriptError(std::string(function) + ": mode '" + mode +
                          "' is not available in the siphon sandbox, only \"r\" and \"rb\" "
                          "(run with --unsafe-lua to allow it)");
      }
    }
    const std::string& dir = LuaHost::From(L)->declarations().script_dir;
    if (dir.empty()) throw ScriptError(std::string(function) + ": no script folder");
    std::string path = lua_tostring(L, 1);
    fs::path p(path);
    if (p.is_relative()) p = fs::path(dir) / p;
    std::error_code ec;
    // Canonical on both sides, so neither ".." nor a symlink leads outside.
    fs::path file = fs::weakly_canonical(p, ec);
    fs::path root = fs::weakly_canonical(dir, ec);
    auto mismatch = std::mismatch(root.begin(), root.end(), file.begin(), file.end());
    if (mismatch.first != root.end()) {
      throw ScriptError(std::string(function) + ": '" + path +
                        "' is outside the script's folder; the siphon sandbox only reads "
                        "files under " +
                        root.string() + " (run with --unsafe-lua to allow it)");
    }
    lua_pushstring(L, file.string().c_str());
    lua_replace(L, 1);
    return true;
  } catch (const std::exception& e) {
    PushErrorAt(L, e.what());
    return false;
  }
}

// io.open(path [, mode]) and io.lines(path, ...) reading inside the script's folder; the
// original function is upvalue 1.
int SandboxOpen(lua_State* L) {
  if (!ResolveReadPath(L, "io.open", 2)) return lua_error(L);
  int n = lua_gettop(L);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, n, LUA_MULTRET);
  return lua_gettop(L);
}

int SandboxLines(lua_State* L) {
  if (!ResolveReadPath(L, "io.lines", 0)) return lua_error(L);
  int n = lua_gettop(L);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, n, LUA_MULTRET);
  return lua_gettop(L);
}

void OpenSandbox(lua_State* L) {
  luaL_requiref(L, LUA_GNAME, luaopen_base, 1);
  int g = lua_gettop(L);
  SetStub(L, g, "dofile", "dofile");
  SetStub(L, g, "loadfile", "loadfile");
  WrapField(L, g, "load", TextOnlyLoad);
  WrapField(L, g, "setmetatable", NoFinalizerSetmetatable);
  WrapField(L, g, "getmetatable", NoUserdataGetmetatable);
  lua_pop(L, 1);

  const std::pair<const char*, lua_CFunction> full[] = {
      {LUA_LOADLIBNAME, luaopen_package}, {LUA_COLIBNAME, luaopen_coroutine},
      {LUA_TABLIBNAME, luaopen_table},    {LUA_STRLIBNAME, luaopen_string},
      {LUA_MATHLIBNAME, luaopen_math},    {LUA_UTF8LIBNAME, luaopen_utf8}};
  for (const auto& [name, open] : full) {
    luaL_requiref(L, name, open, 1);
    lua_pop(L, 1);
  }

  luaL_requiref(L, LUA_OSLIBNAME, luaopen_os, 0);
  RestrictLibrary(L, "os", {"time", "clock", "date", "difftime", "getenv"});

  luaL_requiref(L, LUA_IOLIBNAME, luaopen_io, 0);
  RestrictLibrary(L, "io", {"open", "lines", "type"});
  lua_getglobal(L, "io");
  WrapField(L, lua_gettop(L), "open", SandboxOpen);
  WrapField(L, lua_gettop(L), "lines", SandboxLines);
  lua_pop(L, 1);

  luaL_requiref(L, LUA_DBLIBNAME, luaopen_debug, 0);
  RestrictLibrary(L, "debug", {"traceback"});

  // package: no C loaders, no file-system probing outside the searchers below.
  lua_getglobal(L, LUA_LOADLIBNAME);
  int package = lua_gettop(L);
  SetStub(L, package, "loadlib", "package.loadlib");
  SetStub(L, package, "searchpath", "package.searchpath");
  lua_pushliteral(L, "");
  lua_setfield(L, package, "path");
  lua_pushliteral(L, "");
  lua_setfield(L, package, "cpath");
  lua_getfield(L, package, "searchers");
  lua_rawgeti(L, -1, 1);  // the preload searcher
  lua_createtable(L, 3, 0);
  lua_insert(L, -2);
  lua_rawseti(L, -2, 1);
  lua_pushcfunction(L, Bind<EmbeddedSearcherBody>);
  lua_rawseti(L, -2, 2);
  lua_pushcfunction(L, Bind<ScriptFolderSearcherBody>);
  lua_rawseti(L, -2, 3);
  lua_setfield(L, package, "searchers");
  lua_pop(L, 2);
}

}  // namespace

void WrapField(lua_State* L, int t, const char* name, lua_CFunction fn) {
  lua_getfield(L, t, name);
  lua_pushcclosure(L, fn, 1);
  lua_setfield(L, t, name);
}

void OpenLibraries(lua_State* L, bool unsafe) {
  if (unsafe) {
    luaL_openlibs(L);
    // Embedded modules and the script's folder first, then lua(1)'s usual searchers.
    lua_getglobal(L, LUA_LOADLIBNAME);
    lua_getfield(L, -1, "searchers");
    int searchers = lua_gettop(L);
    auto n = static_cast<lua_Integer>(lua_rawlen(L, searchers));
    for (lua_Integer i = n; i >= 2; --i) {
      lua_rawgeti(L, searchers, i);
      lua_rawseti(L, searchers, i + 2);
    }
    lua_pushcfunction(L, Bind<EmbeddedSearcherBody>);
    lua_rawseti(L, searchers, 2);
    lua_pushcfunction(L, Bind<ScriptFolderSearcherBody>);
    lua_rawseti(L, searchers, 3);
    lua_pop(L, 2);
  } else {
    OpenSandbox(L);
  }
  InstallMeteredFunctions(L);
  lua_pushglobaltable(L);
  WrapField(L, lua_gettop(L), "xpcall", GuardedXpcall);
  lua_pop(L, 1);
  lua_pushcfunction(L, Print);
  lua_setglobal(L, "print");
  // Strict globals: reading one never assigned is an error at its line.
  lua_pushglobaltable(L);
  lua_createtable(L, 0, 1);
  lua_pushcfunction(L, UndefinedGlobal);
  lua_setfield(L, -2, "__index");
  lua_setmetatable(L, -2);
  lua_pop(L, 1);
}

}  // namespace siphon

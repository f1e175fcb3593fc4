#include "runtime/lua/lua_host.hpp"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "runtime/base/file_id.hpp"
#include "runtime/base/log.hpp"
#include "runtime/lua/async.hpp"
#include "runtime/lua/binding.hpp"
#include "runtime/lua/lua_events.hpp"

namespace siphon {
namespace {

// Whether two paths name one file: the same inode when both exist (a link, another
// spelling), else the same path once `.`, `..` and links are resolved.
bool SameFile(const std::string& a, const std::string& b) {
  const std::optional<FileId> fa = FileIdOf(a);
  const std::optional<FileId> fb = FileIdOf(b);
  if (fa && fb) return fa == fb;
  std::error_code ea, eb;
  auto ca = std::filesystem::weakly_canonical(a, ea);
  auto cb = std::filesystem::weakly_canonical(b, eb);
  return !ea && !eb && ca == cb;
}

// The count hook fires every kHookEvery instructions: DESIGN §10 measured 4–13% for a
// hook every 1000, and the budget is only as precise as this.
constexpr int kHookEvery = 1000;

// Message handler of every Call: the error with a traceback from where it was raised.
int MessageHandler(lua_State* L) {
  const char* message = lua_tostring(L, 1);
  if (message == nullptr) {
    // A kill is raised from the hook, which leaves hooks off: run no script code then.
    if (!LuaHost::From(L)->stopping() && luaL_callmeta(L, 1, "__tostring") &&
        lua_type(L, -1) == LUA_TSTRING) {
      message = lua_tostring(L, -1);
    } else {
      message = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    }
  }
  luaL_traceback(L, L, message, 1);
  return 1;
}

// Builds the libraries and the `siphon` table, run through Call so a failure is a Status.
int Setup(lua_State* L) {
  NativeScope native(L);
  LuaHost* host = LuaHost::From(L);
  OpenLibraries(L, host->options().unsafe);
  lua_newtable(L);
  int siphon = lua_gettop(L);
  RegisterSourceBindings(L, siphon);
  RegisterTargetBinding(L, siphon);
  RegisterReplicateBinding(L, siphon);
  RegisterEnvLogBindings(L, siphon);
  RegisterJsonBindings(L, siphon);
  RegisterEventBindings(L, siphon);
  RegisterAsyncBindings(L, siphon);
  RegisterHttpApiBinding(L, siphon);
  lua_pushvalue(L, siphon);
  lua_setglobal(L, "siphon");
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  lua_pushvalue(L, siphon);
  lua_setfield(L, -2, "siphon");
  lua_settop(L, 0);
  return 0;
}

int Panic(lua_State* L) {
  const char* message = lua_tostring(L, -1);
  Logger("lua")->critical("unprotected Lua error: {}", message ? message : "(not a string)");
  std::abort();
}

// A mistake found while the script loads already names its place ("deploy.lua:4: os.execute
// is not available …"). Its traceback is dropped when it only says that again: C functions
// (the one refusing) and the main chunk at the line named. One that says more (a function
// called on the way, a required module) stays.
std::string WithoutRepeatedPlace(const std::string& message) {
  const std::string marker = "\nstack traceback:\n";
  const size_t at = message.find(marker);
  if (at == std::string::npos) return message;
  const std::string main_chunk = ": in main chunk";
  std::istringstream frames(message.substr(at + marker.size()));
  std::string place;
  int lua_frames = 0;
  for (std::string line; std::getline(frames, line);) {
    if (line.rfind("\t[C]: in ", 0) == 0) continue;
    ++lua_frames;
    if (line.size() > 1 + main_chunk.size() &&
        line.compare(line.size() - main_chunk.size(), main_chunk.size(), main_chunk) == 0) {
      place = line.substr(1, line.size() - 1 - main_chunk.size());
    }
  }
  if (lua_frames != 1 || place.empty() || message.rfind(place + ": ", 0) != 0) return message;
  return message.substr(0, at);
}

std::string MiB(size_t bytes) {
  if (bytes % (size_t{1} << 20) == 0) return std::to_string(bytes >> 20) + " MiB";
  return std::to_string(bytes) + " bytes";
}

}  // namespace

LuaHost::LuaHost(const std::vector<SourceDefinition>& definitions, LuaOptions options)
    : options_(std::move(options)), self_(std::make_shared<LuaHost*>(this)) {
  decl_.definitions = definitions;
}

LuaHost::~LuaHost() {
  self_.reset();
  // Everything holding a reference into the state goes before the state: the declarations
  // of a script that failed half-way (their handlers and transforms) first.
  decl_.deployment = Deployment{};
  async_.reset();
  events_.reset();
  tasks_.clear();
  if (L_ != nullptr) lua_close(L_);
}

EventSink* LuaHost::events() {
  return events_.get();
}

void LuaHost::AttachLoop(uv_loop_t* loop) {
  async_->AttachLoop(loop);
}

void LuaHost::AttachTarget(Target* target, const std::string& path) {
  async_->AttachTarget(target, path);
}

void LuaHost::Shutdown(std::function<void()> drained, std::chrono::milliseconds timeout) {
  async_->Shutdown(std::move(drained), timeout);
}

Result<std::unique_ptr<LuaHost>> LuaHost::Create(const std::vector<SourceDefinition>& definitions,
                                                 LuaOptions options) {
  std::unique_ptr<LuaHost> host(new LuaHost(definitions, std::move(options)));
  lua_State* L = lua_newstate(&LuaHost::Alloc, host.get());
  if (L == nullptr) return Status(ErrorKind::kScript, "cannot create a Lua state: out of memory");
  host->L_ = L;
  *static_cast<LuaHost**>(lua_getextraspace(L)) = host.get();
  lua_atpanic(L, Panic);
  host->events_ = std::make_unique<LuaEvents>(*host);
  host->async_ = std::make_unique<LuaAsync>(*host);
  // Set before any coroutine exists: new threads inherit their creator's hook, so every
  // coroutine a script makes is under the budget too.
  lua_sethook(L, &LuaHost::Hook, LUA_MASKCOUNT, kHookEvery);
  lua_pushcfunction(L, Setup);
  Status s = host->Call(0, 0, "siphon setup");
  if (!s.ok()) return s;
  return host;
}

LuaHost* LuaHost::From(lua_State* L) {
  return *static_cast<LuaHost**>(lua_getextraspace(L));
}

void* LuaHost::Alloc(void* ud, void* ptr, size_t osize, size_t nsize) {
  auto* host = static_cast<LuaHost*>(ud);
  if (ptr == nullptr) osize = 0;  // then osize only says what kind of object is made
  constexpr size_t kSmall = SmallBlocks::kLargest;
  if (nsize == 0) {
    if (osize <= kSmall) {
      if (ptr != nullptr) host->blocks_.Give(ptr, osize);
    } else {
      std::free(ptr);
    }
    host->used_ -= osize;
    return nullptr;
  }
  // The cap binds script code only: host code (bindings, payload building between calls)
  // must never see a memory error longjmp through its C++ frames.
  bool enforce = host->call_depth_ > 0 && host->native_depth_ == 0;
  if (enforce && nsize > osize && host->used_ - osize + nsize > host->options_.memory_limit) {
    host->refused_ = true;
    host->refused_ptr_ = ptr;
    host->refused_osize_ = osize;
    host->refused_nsize_ = nsize;
    return nullptr;
  }
  void* block = nullptr;
  if (ptr != nullptr && osize <= kSmall && nsize <= kSmall &&
      SmallBlocks::SameClass(osize, nsize)) {
    block = ptr;
  } else if (osize > kSmall && nsize > kSmall) {
    block = std::realloc(ptr, nsize);
  } else {
    // A new block, or one moving between the small classes and malloc.
    block = nsize <= kSmall ? host->blocks_.Take(nsize) : std::malloc(nsize);
    if (block != nullptr && ptr != nullptr) {
      std::memcpy(block, ptr, std::min(osize, nsize));
      if (osize <= kSmall) {
        host->blocks_.Give(ptr, osize);
      } else {
        std::free(ptr);
      }
    }
  }
  if (block == nullptr) return nullptr;
  // Lua retries a refused allocation after an emergency collection; when the retry fits,
  // nothing was refused after all.
  if (host->refused_ && ptr == host->refused_ptr_ && osize == host->refused_osize_ &&
      nsize == host->refused_nsize_) {
    host->refused_ = false;
  }
  host->used_ = host->used_ - osize + nsize;
  return block;
}

std::string LuaHost::LimitMessage(Kill kill) const {
  if (kill == Kill::kMemory) {
    return "memory limit exceeded in " + what_ + " (limit " + MiB(options_.memory_limit) + ")";
  }
  return "instruction budget exceeded in " + what_ + " (limit " + std::to_string(budget_total_) +
         " instructions)";
}

void LuaHost::Hook(lua_State* L, lua_Debug* ar) {
  LuaHost* host = From(L);
  if (host->call_depth_ == 0 || host->kill_ == Kill::kNone) {
    // A coroutine left in kill mode by an earlier call: back to the cheap hook.
    if (lua_gethookcount(L) != kHookEvery) {
      lua_sethook(L, &LuaHost::Hook, LUA_MASKCOUNT, kHookEvery);
    }
    if (host->call_depth_ == 0) return;
    if (host->refused_) {
      host->kill_ = Kill::kMemory;
    } else if (ar->event == LUA_HOOKCOUNT) {
      if (host->budget_left_ > static_cast<uint64_t>(kHookEvery)) {
        host->budget_left_ -= kHookEvery;
        return;
      }
      host->kill_ = Kill::kBudget;
    } else {
      return;
    }
  }
  // Killed: raise now and again on every line and instruction of this thread (other
  // threads at their next count hook), so a pcall in the script cannot swallow the kill.
  lua_sethook(L, &LuaHost::Hook, LUA_MASKCOUNT | LUA_MASKLINE, 1);
  lua_getinfo(L, "Sl", ar);
  {
    // Built with the cap lifted and destroyed before lua_error's longjmp.
    NativeScope native(L);
    std::string message;
    if (ar->currentline > 0) {
      const char* source = ar->source;
      message = (source[0] == '@' || source[0] == '=') ? source + 1 : ar->short_src;
      message += ":" + std::to_string(ar->currentline) + ": ";
    }
    message += host->LimitMessage(host->kill_);
    lua_pushlstring(L, message.data(), message.size());
  }
  lua_error(L);
}

void LuaHost::KillForSteps(lua_State* L) {
  budget_left_ = 0;
  kill_ = Kill::kBudget;
  lua_sethook(L, &LuaHost::Hook, LUA_MASKCOUNT | LUA_MASKLINE, 1);
  {
    // Built with the cap lifted and destroyed before lua_error's longjmp.
    NativeScope native(L);
    std::string where = CallerLocation(L, 1);
    std::string message = (where.empty() ? "" : where + ": ") + LimitMessage(kill_);
    lua_pushlstring(L, message.data(), message.size());
  }
  lua_error(L);
  std::abort();  // lua_error does not return
}

bool LuaHost::Arm(uint64_t budget, std::string_view what) {
  bool outer = call_depth_ == 0;
  if (outer) {
    budget_total_ = budget != 0 ? budget : options_.instruction_budget;
    budget_left_ = budget_total_;
    what_.assign(what.data(), what.size());  // no allocation per call once it fits
    kill_ = Kill::kNone;
    refused_ = false;
  }
  ++call_depth_;
  return outer;
}

void LuaHost::Disarm(bool outer, lua_State* co) {
  --call_depth_;
  if (!outer) return;
  last_killed_ = kill_ != Kill::kNone || refused_;
  if (kill_ != Kill::kNone) {
    lua_sethook(L_, &LuaHost::Hook, LUA_MASKCOUNT, kHookEvery);
    if (co != nullptr) lua_sethook(co, &LuaHost::Hook, LUA_MASKCOUNT, kHookEvery);
  }
  if (kill_ == Kill::kMemory || refused_) lua_gc(L_, LUA_GCCOLLECT);
  kill_ = Kill::kNone;
  refused_ = false;
}

Status LuaHost::Call(lua_State* L, int nargs, int nresults, std::string_view what,
                     uint64_t budget) {
  int func = lua_gettop(L) - nargs;
  lua_pushcfunction(L, MessageHandler);
  lua_insert(L, func);
  bool outer = Arm(budget, what);
  int rc = lua_pcall(L, nargs, nresults, func);

  Status status;
  if (rc == LUA_OK) {
    lua_remove(L, func);
  } else {
    std::string message;
    if (rc == LUA_ERRMEM) {
      // Memory errors skip the message handler: no traceback to give.
      message = refused_ || kill_ == Kill::kMemory ? LimitMessage(Kill::kMemory)
                                                   : "out of memory in " + std::string(what);
    } else if (const char* m = lua_tostring(L, -1)) {
      message = m;
    } else {
      message = "error in " + std::string(what);
    }
    lua_settop(L, func - 1);
    status = Status(ErrorKind::kScript, std::move(message));
  }
  Disarm(outer, L == L_ ? nullptr : L);
  return status;
}

Status LuaHost::Spawn(int nargs, std::string_view what,
                      std::function<void(const Status&)> on_failure) {
  lua_State* co = lua_newthread(L_);
  lua_insert(L_, -(nargs + 2));  // below the function
  lua_xmove(L_, co, nargs + 1);
  Task task;
  task.what = std::string(what);
  task.on_failure = std::move(on_failure);
  task.thread = LuaRef::Pop(L_);
  tasks_.emplace(co, std::move(task));
  return Step(co, nargs);
}

void LuaHost::Resume(lua_State* co, int nargs) {
  auto it = tasks_.find(co);
  if (it == tasks_.end() || !it->second.awaiting) {
    // Abandoned (shutdown) or never waiting: nothing to resume.
    lua_pop(co, nargs);
    return;
  }
  it->second.awaiting = false;
  Step(co, nargs);
}

bool LuaHost::CanAwait(lua_State* L) const {
  return tasks_.count(L) != 0 && lua_isyieldable(L);
}

void LuaHost::Await(lua_State* L) {
  auto it = tasks_.find(L);
  if (it != tasks_.end()) it->second.awaiting = true;
}

Status LuaHost::Step(lua_State* co, int nargs) {
  auto it = tasks_.find(co);
  std::string what = it->second.what;
  bool outer = Arm(0, what);
  int nresults = 0;
  int rc = lua_resume(co, L_, nargs, &nresults);
  Status status;
  bool done = true;
  if (rc == LUA_YIELD) {
    lua_pop(co, nresults);
    if (it->second.awaiting) {
      done = false;
    } else {
      // Named by the line that yielded, as a Lua error would be: the caller logs `what`.
      std::string where = what;
      lua_Debug ar;
      for (int level = 0; lua_getstack(co, level, &ar) != 0; ++level) {
        if (lua_getinfo(co, "Sl", &ar) != 0 && ar.currentline > 0) {
          where = std::string(ar.short_src) + ":" + std::to_string(ar.currentline);
          break;
        }
      }
      status = Status(ErrorKind::kScript,
                      where +
                          ": coroutine.yield outside a coroutine of the script's own (a "
                          "callback may only wait in siphon's helpers such as siphon.http)");
    }
  } else if (rc != LUA_OK) {
    std::string message;
    if (rc == LUA_ERRMEM) {
      message = refused_ || kill_ == Kill::kMemory ? LimitMessage(Kill::kMemory)
                                                   : "out of memory in " + what;
    } else {
      NativeScope native(L_);
      const char* m = lua_tostring(co, -1);
      luaL_traceback(L_, co, m != nullptr ? m : ("error in " + what).c_str(), 0);
      message = lua_tostring(L_, -1);
      lua_pop(L_, 1);
    }
    status = Status(ErrorKind::kScript, std::move(message));
  }
  Disarm(outer, co);
  if (!status.ok()) Logger("lua")->error("{} failed: {}", what, status.message());
  std::function<void(const Status&)> on_failure;
  if (!status.ok()) on_failure = it->second.on_failure;
  if (done) {
    tasks_.erase(co);
    async_->OnTaskDone();
  }
  if (on_failure) on_failure(status);
  return status;
}

Status LuaHost::LoadScript(const std::string& path) {
  if (loaded_) return Status(ErrorKind::kConfig, "a script is already loaded");
  loaded_ = true;
  std::ifstream in(path, std::ios::binary);
  std::error_code ec;
  if (!in || std::filesystem::is_directory(path, ec)) {
    return Status(ErrorKind::kConfig,
                  "cannot read script '" + path + "': " +
                      (std::filesystem::exists(path, ec) ? "permission denied or not a file"
                                                         : "no such file"));
  }
  std::stringstream buffer;
  buffer << in.rdbuf();
  std::string code = buffer.str();
  // A "#!" first line is allowed, as lua(1) does; keep its newline so line numbers hold.
  if (code.rfind("#", 0) == 0)
    code.erase(0, code.find('\n') == std::string::npos ? code.size() : code.find('\n'));
  decl_.script_path = path;
  decl_.script_dir = std::filesystem::absolute(path, ec).parent_path().lexically_normal().string();
  decl_.deployment.script_path = path;

  std::string chunkname = "@" + path;
  // Text only: a precompiled chunk could break the VM's invariants.
  int rc = luaL_loadbufferx(L_, code.data(), code.size(), chunkname.c_str(), "t");
  if (rc != LUA_OK) {
    std::string message = lua_tostring(L_, -1) ? lua_tostring(L_, -1) : "cannot load the script";
    lua_pop(L_, 1);
    // Syntax errors carry "path:line:"; a few limits ("C stack overflow" for a table nested
    // 200 deep) carry no place at all: name the file at least.
    if (message.rfind(path + ":", 0) != 0) message = path + ": " + message;
    return Status(ErrorKind::kConfig, message);
  }
  decl_.loading = true;
  Status s = Call(0, 0, "script " + path, options_.load_instruction_budget);
  decl_.loading = false;
  if (!s.ok()) return Status(ErrorKind::kConfig, WithoutRepeatedPlace(s.message()));

  if (!decl_.pending_tables.empty()) {
    const auto& [name, location] = decl_.pending_tables.begin()->second;
    return Status(ErrorKind::kConfig, location + ": siphon.replicate \"" + name +
                                          "\" has no field table (write siphon.replicate \"" +
                                          name + "\" { source = …, … })");
  }
  if (!decl_.deployment.target) {
    return Status(ErrorKind::kConfig, path +
                                          ": no siphon.target{…} declared (add siphon.target "
                                          "{ path = \"replica.db\" })");
  }
  if (decl_.deployment.tables.empty()) {
    return Status(ErrorKind::kConfig, path +
                                          ": no tables declared (add siphon.replicate "
                                          "\"name\" { source = …, … })");
  }
  // A source reading the target file would see siphon's own tables and columns, and a full
  // refresh of it would delete the rows it reads.
  const std::string& target = decl_.deployment.target->path;
  for (const TableDecl& t : decl_.deployment.tables) {
    for (const auto& [option, file] : t.source->files) {
      if (!SameFile(file, target)) continue;
      return Status(ErrorKind::kConfig,
                    t.source->location + ": siphon." + std::string(t.source->source->kind()) +
                        " { " + option + " = \"" + file + "\" } is the target file (" +
                        decl_.deployment.target->location +
                        "): siphon writes the replica there and would change the rows it "
                        "reads; read from another file or a copy of it");
    }
  }
  return Status::Ok();
}

Deployment LuaHost::TakeDeployment() {
  Deployment d = std::move(decl_.deployment);
  decl_.deployment = Deployment();
  return d;
}

}  // namespace siphon

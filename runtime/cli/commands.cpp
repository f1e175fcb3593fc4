#include "runtime/cli/commands.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <memory>
#include <optional>

#include <spdlog/spdlog.h>
#include <sqlite3.h>
#include <uv.h>
#include <nlohmann/json.hpp>

#include "adapters/source.hpp"
#include "runtime/base/log.hpp"
#include "runtime/cli/progress.hpp"
#include "runtime/http/admin_api.hpp"
#include "runtime/http/metrics.hpp"
#include "runtime/http/status_json.hpp"
#include "runtime/loop/resolve.hpp"
#include "runtime/lua/lua_host.hpp"
#include "runtime/sync/event_fanout.hpp"
#include "runtime/sync/plan.hpp"
#include "runtime/sync/reconciler.hpp"
#include "runtime/sync/replicator.hpp"
#include "runtime/target/target.hpp"

namespace siphon {
namespace {

/// A loaded script: the deployment and the Lua state its callbacks live in.
struct Loaded {
  std::unique_ptr<LuaHost> host;
  Deployment deployment;
};

Result<Loaded> LoadScript(const ScriptOptions& options) {
  LuaOptions lua;
  lua.unsafe = options.unsafe_lua;
  auto created = LuaHost::Create(SourceDefinitions(), lua);
  if (!created.ok()) return created.status();
  std::unique_ptr<LuaHost> host = std::move(*created);
  if (Status st = host->LoadScript(options.script); !st.ok()) return st;
  Loaded loaded;
  loaded.deployment = host->TakeDeployment();
  loaded.host = std::move(host);
  return loaded;
}

std::optional<Loaded> Load(const ScriptOptions& options) {
  auto loaded = LoadScript(options);
  if (!loaded.ok()) {
    std::cerr << "siphon: " << loaded.status().message() << "\n";
    return std::nullopt;
  }
  return std::move(*loaded);
}

/// Closes every handle still open, runs the loop until they are gone and returns `code`. A
/// host name lookup still running on libuv's thread pool (a name server that does not answer
/// holds it for the resolver's timeout, 10 s and more) is not waited for: nothing needs its
/// answer any more, so the process exits here with `code`, logs flushed, instead of waiting
/// for it (and libuv's exit handler would join the pool's threads, waiting again).
int CloseLoop(uv_loop_t* loop, int code) {
  uv_walk(
      loop,
      [](uv_handle_t* h, void*) {
        if (!uv_is_closing(h)) uv_close(h, nullptr);
      },
      nullptr);
  for (;;) {
    bool handles = false;
    uv_walk(
        loop, [](uv_handle_t*, void* any) { *static_cast<bool*>(any) = true; }, &handles);
    if (!handles && LookupsInFlight(loop)) {
      spdlog::shutdown();
      std::cout.flush();
      std::cerr.flush();
      std::fflush(nullptr);
      _exit(code);
    }
    if (uv_run(loop, UV_RUN_ONCE) == 0) break;
  }
  uv_loop_close(loop);
  return code;
}

std::string Join(const std::vector<std::string>& v, std::string_view sep = ", ") {
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) out += (i ? std::string(sep) : "") + v[i];
  return out;
}

std::string FormatDuration(std::chrono::milliseconds ms) {
  auto n = ms.count();
  if (n % 3600000 == 0) return std::to_string(n / 3600000) + "h";
  if (n % 60000 == 0) return std::to_string(n / 60000) + "m";
  if (n % 1000 == 0) return std::to_string(n / 1000) + "s";
  return std::to_string(n) + "ms";
}

/// SIGINT/SIGTERM: stop scheduling, let the page in flight commit or roll back, then stop the
/// loop. A second signal exits at once, with 128 + its number (130 for SIGINT, 143 for SIGTERM),
/// as a shell reports a process a signal ended: a stop cut short is not a success. The target
/// stays consistent (SQLite rolls back what was not committed).
class SignalStop {
 public:
  SignalStop(uv_loop_t* loop, std::function<void()> on_signal) : on_signal_(std::move(on_signal)) {
    for (int i = 0; i < 2; ++i) {
      handles_[i] = new uv_signal_t;
      uv_signal_init(loop, handles_[i]);
      handles_[i]->data = this;
      uv_signal_start(
          handles_[i],
          [](uv_signal_t* h, int signum) {
            auto* self = static_cast<SignalStop*>(h->data);
            if (self->signalled_) {
              const int code = 128 + signum;
              Logger("siphon")->warn(
                  "second signal {} ({}): exiting now, exit code {}, without waiting for the "
                  "pages in flight or the event handlers (what was not committed is read again "
                  "by the next run)",
                  signum, strsignal(signum), code);
              std::_Exit(code);
            }
            self->signalled_ = true;
            Logger("siphon")->info(
                "signal {}: finishing the pages in flight (a second signal exits at once)", signum);
            self->on_signal_();
          },
          i == 0 ? SIGINT : SIGTERM);
      uv_unref(reinterpret_cast<uv_handle_t*>(handles_[i]));
    }
  }
  ~SignalStop() {
    for (auto* h : handles_) {
      uv_close(reinterpret_cast<uv_handle_t*>(h),
               [](uv_handle_t* x) { delete reinterpret_cast<uv_signal_t*>(x); });
    }
  }
  bool signalled() const { return signalled_; }

 private:
  std::function<void()> on_signal_;
  uv_signal_t* handles_[2] = {nullptr, nullptr};
  bool signalled_ = false;
};

/// SIGHUP: re-run the script (see Reloader).
class SignalReload {
 public:
  SignalReload(uv_loop_t* loop, std::function<void()> on_signal)
      : on_signal_(std::move(on_signal)), handle_(new uv_signal_t) {
    uv_signal_init(loop, handle_);
    handle_->data = this;
    uv_signal_start(
        handle_, [](uv_signal_t* h, int) { static_cast<SignalReload*>(h->data)->on_signal_(); },
        SIGHUP);
    uv_unref(reinterpret_cast<uv_handle_t*>(handle_));
  }
  ~SignalReload() {
    uv_close(reinterpret_cast<uv_handle_t*>(handle_),
             [](uv_handle_t* x) { delete reinterpret_cast<uv_signal_t*>(x); });
  }

 private:
  std::function<void()> on_signal_;
  uv_signal_t* handle_;
};

/// Re-runs the script into a new Lua state and applies the difference to the replicator.
/// A script that fails to load changes nothing. The previous state is freed once the runners
/// that may still call into it (replaced or removed tables) are gone.
/// Events to the Lua handlers of the script loaded now (a reload swaps the Lua state).
class CurrentLuaEvents : public EventSink {
 public:
  explicit CurrentLuaEvents(Loaded& current) : current_(current) {}
  void Emit(const Event& event) override {
    if (current_.host) current_.host->events()->Emit(event);
  }

 private:
  Loaded& current_;
};

class Reloader {
 public:
  Reloader(const ScriptOptions& options, Replicator& replicator, Loaded& current, uv_loop_t* loop,
           Target& target)
      : options_(options),
        replicator_(replicator),
        current_(current),
        loop_(loop),
        target_(target) {}

  ReloadOutcome Reload() {
    auto log = Logger("siphon");
    log->info("reloading {}", options_.script);
    ReloadOutcome out;
    auto loaded = LoadScript(options_);
    if (!loaded.ok()) {
      out.status = loaded.status();
      log->error("reload failed, the running deployment stays: {}", out.status.message());
      return out;
    }
    if (!loaded->deployment.target || !current_.deployment.target ||
        loaded->deployment.target->path != current_.deployment.target->path) {
      out.status = Status(ErrorKind::kConfig,
                          "reload: the target cannot change while siphon runs (restart instead)");
      log->error("{}", out.status.message());
      return out;
    }
    // The old state stays alive until the runners declared by it are gone, and its handlers
    // and HTTP calls in flight have finished.
    loaded->host->AttachLoop(loop_);
    loaded->host->AttachTarget(&target_, loaded->deployment.target->path);
    loaded->host->SetStatusProvider(status_);
    auto old = std::make_shared<std::unique_ptr<LuaHost>>(std::move(current_.host));
    current_.host = std::move(loaded->host);
    current_.deployment = std::move(loaded->deployment);
    out.diff = replicator_.Reconcile(current_.deployment, [old] {
      LuaHost* host = old->get();
      host->Shutdown([old] { old->reset(); });
    });
    log->info("reloaded: {} added, {} removed, {} changed, {} unchanged", out.diff.added.size(),
              out.diff.removed.size(), out.diff.changed.size(), out.diff.unchanged.size());
    if (applied_) applied_(current_.deployment);
    return out;
  }

  /// Runs after each reload that applied a new deployment.
  void OnApplied(std::function<void(const Deployment&)> fn) { applied_ = std::move(fn); }
  /// What siphon.status() answers in each new Lua state.
  void SetStatusProvider(std::function<std::string()> fn) { status_ = std::move(fn); }

 private:
  std::function<void(const Deployment&)> applied_;
  std::function<std::string()> status_;
  const ScriptOptions& options_;
  Replicator& replicator_;
  Loaded& current_;
  uv_loop_t* loop_;
  Target& target_;
};

// A token no client can present is refused where it is set: a header value holds no line
// break or other control character, and the spaces around it are not part of it (a secret
// file's trailing newline, kept by an environment variable, answered every request 401).
Result<std::string> PresentableToken(std::string token, const std::string& from) {
  bool control = false;
  for (char c : token) {
    const auto u = static_cast<unsigned char>(c);
    control |= u < 0x20 || u == 0x7F;
  }
  if (control || token.front() == ' ' || token.back() == ' ') {
    return Status(ErrorKind::kConfig,
                  "the admin API token from " + from +
                      (control ? " holds a line break or another control character"
                               : " begins or ends with a space") +
                      ", which no client can send in an Authorization header; remove it");
  }
  return token;
}

// The admin API's token: --http-token-env's variable, else the script's token, else
// SIPHON_HTTP_TOKEN; empty when none is set.
Result<std::string> ApiToken(const ScriptOptions& options, const std::string& script_token) {
  if (!options.http_token_env.empty()) {
    const char* v = std::getenv(options.http_token_env.c_str());
    if (!v || !*v) {
      return Status(ErrorKind::kConfig, "--http-token-env " + options.http_token_env +
                                            ": the environment variable is not set or empty");
    }
    return PresentableToken(v, options.http_token_env);
  }
  if (!script_token.empty()) return PresentableToken(script_token, "siphon.http_api { token }");
  const char* v = std::getenv("SIPHON_HTTP_TOKEN");
  if (!v || !*v) return std::string();
  return PresentableToken(v, "SIPHON_HTTP_TOKEN");
}

/// The admin API a command serves: where, and with which token.
struct AdminApiPlan {
  ListenAddress address;
  std::string listen;        ///< as given
  std::string token;         ///< empty: none
  bool from_script = false;  ///< siphon.http_api's address (not --http's)
};

// `--http`, else the script's siphon.http_api { listen } (not under `once`). The token:
// --http-token-env's, else the script's siphon.http_api { token } (also under --http: the
// flag moves the API, it does not open it), else SIPHON_HTTP_TOKEN. No API: nullopt. `run`
// and `check` ask the same, so check refuses what run would.
Result<std::optional<AdminApiPlan>> ResolveAdminApi(const ScriptOptions& options,
                                                    const Deployment& d, bool once) {
  AdminApiPlan plan;
  plan.listen = options.http;
  plan.from_script = plan.listen.empty() && d.http_api && !once;
  if (plan.from_script) plan.listen = d.http_api->listen;
  if (plan.listen.empty()) return std::optional<AdminApiPlan>();
  auto parsed = ParseListenAddress(plan.listen);
  if (!parsed.ok() && plan.from_script) {
    // The address came from the script, not from a --http the user never gave: say where.
    std::string message = parsed.status().message();
    constexpr std::string_view kFlag = "--http: ";
    if (message.compare(0, kFlag.size(), kFlag) == 0) message.erase(0, kFlag.size());
    return Status(ErrorKind::kConfig,
                  d.http_api->location + ": siphon.http_api { listen }: " + message);
  }
  if (!parsed.ok()) return parsed.status();
  plan.address = *parsed;
  auto chosen = ApiToken(options, d.http_api ? d.http_api->token : "");
  if (!chosen.ok()) return chosen.status();
  plan.token = *chosen;
  if (!plan.address.loopback && plan.token.empty()) {
    // An address the script declared is fixed there: say where.
    return Status(ErrorKind::kConfig,
                  (plan.from_script ? d.http_api->location + ": " : std::string()) +
                      "admin API on " + plan.listen +
                      ": refusing to serve it on a non-loopback address without a token; set "
                      "one with --http-token-env NAME, SIPHON_HTTP_TOKEN or siphon.http_api { "
                      "token }");
  }
  return std::optional<AdminApiPlan>(std::move(plan));
}

// What opening the target (Target::Open) would say about its path, found without creating
// or changing a file: check writes nothing. A missing file needs a folder that takes one
// (SQLite's own message for a folder that does not: "unable to open database file").
Status ProbeTarget(const std::string& path) {
  auto cannot = [&path](std::string_view why) {
    return Status(ErrorKind::kTarget, "cannot open target " + path + ": " + std::string(why));
  };
  std::error_code ec;
  if (std::filesystem::exists(path, ec)) {
    sqlite3* db = nullptr;
    int rc =
        sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, nullptr);
    std::string why = rc == SQLITE_OK ? "" : (db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
    if (rc == SQLITE_OK && sqlite3_db_readonly(db, "main") == 1) why = ReadOnlyTargetReason();
    sqlite3_close_v2(db);
    if (!why.empty()) return cannot(why);
    // SQLite opens any file and reads it at the first statement, where run and once then
    // fail ("file is not a database"): a file that is not empty starts with SQLite's header.
    // Read here, so that check changes nothing.
    if (std::filesystem::is_regular_file(path, ec) && std::filesystem::file_size(path, ec) > 0) {
      constexpr char kHeader[] = "SQLite format 3";  // and its NUL: 16 bytes
      char head[sizeof(kHeader)] = {};
      std::FILE* f = std::fopen(path.c_str(), "rb");
      const size_t got = f ? std::fread(head, 1, sizeof(head), f) : 0;
      if (f) std::fclose(f);
      if (f && (got != sizeof(head) || std::memcmp(head, kHeader, sizeof(head)) != 0)) {
        return cannot(sqlite3_errstr(SQLITE_NOTADB));
      }
    }
    return Status::Ok();
  }
  std::filesystem::path folder = std::filesystem::path(path).parent_path();
  if (folder.empty()) folder = ".";
  if (!std::filesystem::is_directory(folder, ec) || access(folder.c_str(), W_OK | X_OK) != 0) {
    return cannot(sqlite3_errstr(SQLITE_CANTOPEN) + TargetFolderHint(path));
  }
  return Status::Ok();
}

// One siphon writes a target at a time. Two (a cron job's `once` overlapping the one before,
// or `run` beside it) would both append an append table's new rows, and one's full-refresh
// pass would sweep what the other's wrote. An flock on the target file, held while the
// target is open and released by the kernel if the process dies; SQLite's own locks are
// fcntl locks, which an flock does not touch.
class TargetLock {
 public:
  TargetLock() = default;
  TargetLock(const TargetLock&) = delete;
  TargetLock& operator=(const TargetLock&) = delete;
  // Closed only once the target's connections are: closing a descriptor of the file drops
  // every fcntl lock this process holds on it, SQLite's included.
  ~TargetLock() {
    if (fd_ >= 0) close(fd_);
  }

  Status Take(const std::string& path) {
    fd_ = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) {
      return Status(ErrorKind::kTarget,
                    "cannot open target " + path + " to lock it: " + std::strerror(errno));
    }
    if (flock(fd_, LOCK_EX | LOCK_NB) != 0) {
      if (errno == EWOULDBLOCK) {
        return Status(ErrorKind::kTarget,
                      "target " + path +
                          " is in use by another siphon process (one siphon writes a target at "
                          "a time; a running siphon syncs, resyncs and resumes through its "
                          "admin API)");
      }
      return Status(ErrorKind::kTarget, "cannot lock target " + path + ": " + std::strerror(errno));
    }
    return Status::Ok();
  }

 private:
  int fd_ = -1;
};

// What the first run of each table does besides syncing (`resync`, `resume`).
enum class FirstRun { kSync, kResync, kAcceptSchema };

int Replicate(const ScriptOptions& options, bool once, const std::vector<std::string>& tables,
              FirstRun first = FirstRun::kSync) {
  auto loaded = Load(options);
  if (!loaded) return 2;
  const Deployment& d = loaded->deployment;
  for (const auto& name : tables) {
    bool found = false;
    for (const auto& t : d.tables) found |= t.name == name;
    if (!found) {
      std::cerr << "siphon: --table " << name << ": no such table in " << options.script << "\n";
      return 2;
    }
  }

  auto api = ResolveAdminApi(options, d, once);
  if (!api.ok()) {
    std::cerr << "siphon: " << api.status().message() << "\n";
    return 2;
  }
  std::optional<ListenAddress> http;
  std::string token;
  std::string listen;
  bool api_from_script = false;
  if (*api) {
    http = (*api)->address;
    token = (*api)->token;
    listen = (*api)->listen;
    api_from_script = (*api)->from_script;
  }

  auto log = Logger("siphon");
  uv_loop_t loop;
  uv_loop_init(&loop);
  // The admin API's address is bound before anything else: a port in use (or an address this
  // host does not have) ends the command before it opens the target or replicates anything.
  std::unique_ptr<HttpServer> bound;
  if (http) {
    auto server = AdminApi::Bind(&loop, *http, !token.empty());
    if (!server.ok()) {
      std::cerr << "siphon: " << server.status().message() << "\n";
      return CloseLoop(&loop, 2);
    }
    bound = std::move(*server);
  }
  int code = 0;
  {
    TargetLock lock;  // released after the target is closed
    Target target(&loop, d.target->path);
    if (Status st = target.Open(); !st.ok()) {
      std::cerr << "siphon: " << st.message() << "\n";
      return 1;
    }
    if (Status st = lock.Take(d.target->path); !st.ok()) {
      std::cerr << "siphon: " << st.message() << "\n";
      return 1;
    }
    loaded->host->AttachLoop(&loop);
    loaded->host->AttachTarget(&target, d.target->path);
    SyncMetrics metrics;
    CurrentLuaEvents lua_events(*loaded);
    EventFanout events;
    events.Add(&metrics);
    events.Add(&lua_events);
    // Once nothing replicates any more, the Lua handlers and HTTP calls in flight finish
    // (bounded), then the loop stops.
    auto drain_and_stop = [&] {
      if (loaded->host) {
        loaded->host->Shutdown([&] { uv_stop(&loop); });
      } else {
        uv_stop(&loop);
      }
    };
    RunnerOptions runner_options;
    runner_options.once = once;
    runner_options.resync_first = first == FirstRun::kResync;
    runner_options.accept_schema_first = first == FirstRun::kAcceptSchema;
    runner_options.events = &events;
    Replicator replicator(&loop, target, d, runner_options, tables);
    Reloader reloader(options, replicator, *loaded, &loop, target);
    // siphon.status() answers what GET /status does, in this Lua state and every reloaded one.
    const auto status_since = std::chrono::system_clock::now();
    std::function<std::string()> status = [&replicator, &metrics, status_since,
                                           path = d.target->path] {
      return DeploymentStatusJson(replicator, metrics, status_since, path)
          .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    };
    loaded->host->SetStatusProvider(status);
    reloader.SetStatusProvider(status);
    std::unique_ptr<AdminApi> admin;
    if (bound) {
      AdminOptions admin_options;
      admin_options.token = token;
      admin_options.target_path = d.target->path;
      admin_options.lua_memory = [&loaded] {
        return loaded->host ? static_cast<int64_t>(loaded->host->memory_used()) : int64_t{0};
      };
      if (!once) admin_options.reload = [&reloader] { return reloader.Reload(); };
      admin = std::make_unique<AdminApi>(replicator, metrics, admin_options, std::move(bound));
      admin->LogServing(*http);
    }
    if (admin && !once) {
      // A reload applies a new siphon.http_api token at once (a rotated token takes effect
      // without a restart); a new address needs a restart.
      reloader.OnApplied([&, address = *http](const Deployment& next) {
        if (!admin) return;
        if (api_from_script && (!next.http_api || next.http_api->listen != listen)) {
          log->warn(
              "reload: siphon.http_api's address changed or is gone; the admin API stays "
              "on {} until siphon restarts",
              listen);
          return;
        }
        auto next_token = ApiToken(options, next.http_api ? next.http_api->token : "");
        if (!next_token.ok() || (!address.loopback && next_token->empty())) {
          log->error(
              "reload: the admin API keeps its token: {}",
              next_token.ok() ? "a non-loopback address needs one" : next_token.status().message());
          return;
        }
        if (*next_token == token) return;
        if (next_token->empty()) {
          // Turning authentication off is not a reload's to do: a script that lost its token
          // by mistake would open the API.
          log->warn("reload: the admin API keeps its token (removing it needs a restart)");
          return;
        }
        token = *next_token;
        admin->SetToken(token);
        log->info("reload: the admin API token changed");
      });
    }
    std::optional<SignalReload> hup;
    bool stopping = false;
    if (!once) {
      hup.emplace(&loop, [&] {
        if (stopping) {
          log->info("SIGHUP: not reloading, siphon is stopping");
          return;
        }
        if (admin) {
          admin->RunReload();
        } else {
          reloader.Reload();
        }
      });
    }
    std::unique_ptr<Progress> progress;
    // JSON logs are one object per line, on a terminal too: no line redrawn among them.
    if (!options.quiet) {
      progress =
          std::make_unique<Progress>(&loop, replicator, isatty(2) != 0 && !options.json_logs);
    }
    log->info("{} {} table(s) into {}", once ? "syncing" : "replicating",
              replicator.runners().size(), d.target->path);
    for (const auto& r : replicator.runners()) {
      const TableDecl& t = r->decl();
      log->info("  {} <- {} {} ({}, every {}, batch {})", t.name, t.source->source->kind(),
                t.Origin(), t.cursor.empty() ? "full refresh" : "cursor " + Join(t.cursor),
                FormatDuration(t.every), t.batch);
    }
    bool stop_ended = false;
    SignalStop signals(&loop, [&] {
      stopping = true;  // a reload now would start tables again
      admin.reset();    // no new requests while the pages in flight finish
      replicator.Stop([&] {
        stop_ended = true;
        drain_and_stop();
      });
    });
    auto started = std::chrono::steady_clock::now();
    bool stopped_on_purpose = false;
    replicator.Start(once ? std::function<void()>([&] {
      stopped_on_purpose = true;
      drain_and_stop();
    })
                          : nullptr);
    uv_run(&loop, UV_RUN_DEFAULT);
    // The loop only ends by uv_stop (all tables done, or a signal). Running out of work
    // instead means a table waits for a callback that will never come: say so, exit 1.
    if (!stopped_on_purpose && !signals.signalled()) {
      log->error("the event loop ran out of work while tables were still replicating");
      code = 1;
    }
    // The same after a signal: a stop ends when every table's work in flight has answered,
    // and a table whose work never did left the stop unfinished. That is no clean stop.
    const bool stop_unfinished = signals.signalled() && !stopped_on_purpose && !stop_ended;
    if (stop_unfinished) {
      log->error(
          "the stop did not end: {} did not finish the work in flight (the event loop ran out "
          "of work waiting for it); what was not committed is read again by the next run",
          Join(replicator.StopsPending()));
      code = 1;
    }
    progress.reset();
    // The replicator goes with this scope; the Lua state stays a little longer.
    if (loaded->host) loaded->host->SetStatusProvider(nullptr);

    if (once && (code == 0 || stop_unfinished)) {
      auto secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
      for (const auto& r : replicator.runners()) {
        if (r->last_status().ok()) {
          // The rows this process wrote: a run a signal stopped mid-table wrote the pages it
          // committed, though it never finished (and so never counted as the last run).
          log->info("  {}: {} rows{}", r->decl().name, r->stats().rows_written,
                    r->finished() ? "" : " (stopped before catching up)");
        } else {
          log->error("  {}: failed: {}", r->decl().name, r->last_status().ToString());
        }
      }
      code = stop_unfinished ? 1 : signals.signalled() ? 0 : replicator.ExitCode();
      log->info("done in {:.2f} s{}", secs, code == 0 ? "" : " with failures");
    }
  }
  return CloseLoop(&loop, code);
}

}  // namespace

int RunCommand(const ScriptOptions& options) {
  return Replicate(options, false, {});
}

int OnceCommand(const ScriptOptions& options, const std::vector<std::string>& tables) {
  return Replicate(options, true, tables);
}

int ResyncCommand(const ScriptOptions& options, const std::vector<std::string>& tables) {
  return Replicate(options, true, tables, FirstRun::kResync);
}

int ResumeCommand(const ScriptOptions& options, const std::vector<std::string>& tables) {
  return Replicate(options, true, tables, FirstRun::kAcceptSchema);
}

namespace {

/// Checks the tables one after the other: connect, reflect, plan, print.
class Checker {
 public:
  Checker(uv_loop_t* loop, const Deployment& d) : loop_(loop), d_(d) {}

  void Next() {
    if (index_ >= d_.tables.size()) return;
    const TableDecl& t = d_.tables[index_];
    conn_ = t.source->source->NewConnection(loop_);
    conn_->Connect([this](Status st) {
      if (!st.ok()) return Done(st);
      conn_->ReflectSource(d_.tables[index_].from, d_.tables[index_].query,
                           [this](Result<TableSchema> schema) { OnSchema(std::move(schema)); });
    });
  }
  int exit_code() const { return exit_code_; }

 private:
  void OnSchema(Result<TableSchema> schema) {
    if (!schema.ok()) return Done(schema.status());
    const TableDecl& t = d_.tables[index_];
    Result<TablePlan> plan = MakePlan(t, *schema);
    if (!plan.ok() && t.key.empty() && schema->primary_key.empty()) {
      // As run and once say it: the replica may have been keyed by a unique index the source
      // no longer has as such, which the target's state row names (read only).
      Result<StoredKey> stored = ReadStoredKeyReadOnly(d_.target->path, t.name);
      return Done(stored.ok() ? KeyIndexGone(plan.status(), *stored) : plan.status());
    }
    if (!plan.ok()) return Done(plan.status());
    // The columns the replica gets are the transform's, as a run finds them: a key column it
    // leaves out is refused here as there, and the columns it adds are printed.
    if (t.transform) {
      if (Status st = ApplyTransformColumns(*plan, *t.transform); !st.ok()) return Done(st);
    }
    if (Status st = conn_->CheckCursor(*schema, plan->order_by, t.cursor.size(),
                                       plan->lookback_seconds.has_value());
        !st.ok()) {
      return Done(st);
    }
    if (t.query.empty()) {
      std::cout << "  from:    " << t.from;
    } else {
      std::cout << "  query:   " << t.query;
    }
    if (schema->row_estimate >= 0) std::cout << " (about " << schema->row_estimate << " rows)";
    std::cout << "\n  columns:\n";
    for (const auto& c : plan->target.columns) {
      // A column without a declared type (BLOB affinity) keeps each value as given, e.g. a
      // BIGINT UNSIGNED as INTEGER up to 2^63-1 and exact decimal TEXT above.
      std::string_view declared = ColumnTypeName(c.type);
      std::cout << "    " << c.name << "  " << c.source_type << " -> "
                << (declared.empty() ? "(no declared type: each value kept as given)" : declared)
                << (c.nullable ? "" : " NOT NULL")
                << (c.text_form ? " (the source's text form: no conversion for this type)" : "")
                << "\n";
    }
    std::cout << "  key:     " << Join(plan->key);
    if (t.key.empty() && !schema->key_index.empty()) {
      std::cout << " (unique index \"" << schema->key_index << "\": the table has no primary key)";
    } else if (t.key.empty()) {
      std::cout << " (primary key)";
    }
    std::cout << "\n";
    if (plan->incremental) {
      std::cout << "  mode:    incremental, cursor (" << Join(plan->order_by) << ")";
      if (plan->lookback_seconds) std::cout << ", lookback " << *plan->lookback_seconds << " s";
    } else {
      std::cout << "  mode:    full refresh, paged by key (" << Join(plan->order_by) << ")";
    }
    std::cout << ", " << (t.write == WriteMode::kAppend ? "append" : "upsert") << ", every "
              << FormatDuration(t.every) << ", batch " << t.batch << "\n";
    if (t.soft_delete || t.reconcile_every) {
      std::cout << "  deletes:";
      if (t.soft_delete) {
        std::cout << " soft (\"" << t.soft_delete->column
                  << "\" set: " << (t.soft_delete->keep ? "kept with its flag" : "removed") << ")";
      }
      if (t.reconcile_every) {
        if (Status st = Reconciler::CheckKey(*schema, plan->target.key); !st.ok()) return Done(st);
        std::cout << (t.soft_delete ? "," : "") << " reconcile every "
                  << FormatDuration(*t.reconcile_every) << " (key ranges compared by digest)";
      }
      std::cout << "\n";
    }
    std::cout << "  first page: " << conn_->PageSql(*schema, FirstPage(*plan, std::nullopt))
              << "\n";
    Cursor example;
    // Placeholder values: PageSql shows parameters, never values.
    for (size_t i = 0; i < plan->order_by.size(); ++i) example.emplace_back(std::string());
    PageQuery next = NextPage(*plan, example);
    std::cout << "  next pages: " << conn_->PageSql(*schema, next) << "\n";
    if (plan->lookback_seconds) {
      PageQuery resume = FirstPage(*plan, example);
      std::cout << "  each run starts with: " << conn_->PageSql(*schema, resume) << "\n";
    }
    Done(Status::Ok());
  }

  void Done(const Status& st) {
    if (!st.ok()) {
      std::cout << "  error:   " << st.ToString() << "\n";
      exit_code_ = std::max(exit_code_, st.kind() == ErrorKind::kConfig ? 2 : 1);
      if (st.kind() == ErrorKind::kConfig) {
        // A script refused (exit 2) names where, on stderr as for a mistake found loading it.
        // Most such messages name them already ("deploy.lua:3: table \"q\" (…) has no …").
        const TableDecl& t = d_.tables[index_];
        const std::string& m = st.message();
        if (m.rfind(t.location + ": ", 0) == 0) {
          std::cerr << "siphon: " << m << "\n";
        } else {
          std::cerr << "siphon: " << t.location << ": table \"" << t.name << "\": " << m << "\n";
        }
      }
    }
    conn_->Close();
    // The connection is destroyed on a later tick: this callback may run inside it.
    retired_.push_back(std::move(conn_));
    if (++index_ < d_.tables.size()) {
      PrintHeader();
      Next();
    }
  }

 public:
  void PrintHeader() {
    const TableDecl& t = d_.tables[index_];
    std::cout << "\ntable " << t.name << "  (" << t.location
              << ")\n  source:  " << t.source->source->Describe() << "\n";
  }

 private:
  uv_loop_t* loop_;
  const Deployment& d_;
  size_t index_ = 0;
  int exit_code_ = 0;
  std::unique_ptr<SourceConnection> conn_;
  std::vector<std::unique_ptr<SourceConnection>> retired_;
};

}  // namespace

int CheckCommand(const ScriptOptions& options) {
  auto loaded = Load(options);
  if (!loaded) return 2;
  const Deployment& d = loaded->deployment;
  std::cout << "script:  " << options.script << "\ntarget:  " << d.target->path << "\n";
  // What `run` refuses before it connects anywhere, check refuses too, with run's message
  // and exit code; the tables are still checked.
  int refused = 0;
  if (auto api = ResolveAdminApi(options, d, /*once=*/false); !api.ok()) {
    std::cerr << "siphon: " << api.status().message() << "\n";
    refused = 2;
  }
  if (Status st = ProbeTarget(d.target->path); !st.ok()) {
    std::cerr << "siphon: " << st.message() << "\n";
    refused = std::max(refused, 1);
  }
  uv_loop_t loop;
  uv_loop_init(&loop);
  int code;
  {
    Checker checker(&loop, d);
    if (!d.tables.empty()) {
      checker.PrintHeader();
      checker.Next();
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    code = std::max(checker.exit_code(), refused);
  }
  // A lookup still hanging exits here: the summary goes first.
  std::cout << "\n" << (code == 0 ? "ok: " : "failed: ") << d.tables.size() << " table(s)\n";
  CloseLoop(&loop, code);
  return code;
}

namespace {

// A cell of `siphon status`'s table on one line: a line break in an error message (or a
// table's name) would otherwise start a line of its own. Control characters are escaped.
std::string OneLine(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (u < 0x20 || u == 0x7F) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\x%02X", u);
      out += buf;
    } else {
      out.push_back(c);
    }
  }
  return out;
}

// The character at `text[i]`: its code point and its length in bytes. A byte that starts no
// valid UTF-8 sequence stands for itself (a terminal shows it as one replacement character).
std::pair<char32_t, size_t> NextCodePoint(std::string_view text, size_t i) {
  const auto byte = [&text](size_t k) { return static_cast<unsigned char>(text[k]); };
  const unsigned char c = byte(i);
  size_t n = 0;
  if (c < 0x80) {
    n = 1;
  } else if (c >= 0xC2 && c <= 0xDF) {
    n = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    n = 3;
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 4;
  }
  if (n == 0 || i + n > text.size()) return {0xFFFD, 1};
  char32_t cp = n == 1 ? c : c & (0x7F >> n);
  for (size_t k = 1; k < n; ++k) {
    if ((byte(i + k) & 0xC0) != 0x80) return {0xFFFD, 1};
    cp = (cp << 6) | (byte(i + k) & 0x3F);
  }
  return {cp, n};
}

// The columns a terminal gives a character: two for the wide ones of East Asian scripts
// (CJK, kana, Hangul, full-width forms) and emoji, none for a combining mark or a zero-width
// space, one otherwise.
size_t CharWidth(char32_t cp) {
  if ((cp >= 0x0300 && cp <= 0x036F) || (cp >= 0x1AB0 && cp <= 0x1AFF) ||
      (cp >= 0x1DC0 && cp <= 0x1DFF) || (cp >= 0x200B && cp <= 0x200F) ||
      (cp >= 0x20D0 && cp <= 0x20FF) || (cp >= 0xFE00 && cp <= 0xFE0F) ||
      (cp >= 0xFE20 && cp <= 0xFE2F)) {
    return 0;
  }
  if ((cp >= 0x1100 && cp <= 0x115F) || (cp >= 0x2E80 && cp <= 0x303E) ||
      (cp >= 0x3041 && cp <= 0x33FF) || (cp >= 0x3400 && cp <= 0x4DBF) ||
      (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0xA000 && cp <= 0xA4CF) ||
      (cp >= 0xAC00 && cp <= 0xD7A3) || (cp >= 0xF900 && cp <= 0xFAFF) ||
      (cp >= 0xFE30 && cp <= 0xFE4F) || (cp >= 0xFF00 && cp <= 0xFF60) ||
      (cp >= 0xFFE0 && cp <= 0xFFE6) || (cp >= 0x1F300 && cp <= 0x1F64F) ||
      (cp >= 0x1F900 && cp <= 0x1F9FF) || (cp >= 0x20000 && cp <= 0x3FFFD)) {
    return 2;
  }
  return 1;
}

size_t DisplayWidth(std::string_view text) {
  size_t width = 0;
  for (size_t i = 0; i < text.size();) {
    auto [cp, n] = NextCodePoint(text, i);
    width += CharWidth(cp);
    i += n;
  }
  return width;
}

// `text` cut to at most `columns` columns, "..." included, before a character, not in one.
std::string FitColumns(const std::string& text, size_t columns) {
  if (DisplayWidth(text) <= columns) return text;
  size_t width = 0, cut = 0;
  while (cut < text.size()) {
    auto [cp, n] = NextCodePoint(text, cut);
    if (width + CharWidth(cp) > columns - 3) break;
    width += CharWidth(cp);
    cut += n;
  }
  return text.substr(0, cut) + "...";
}

}  // namespace

int StatusCommand(const std::string& replica, bool json) {
  sqlite3* db = nullptr;
  if (OpenReplicaToRead(replica, &db) != SQLITE_OK) {
    std::cerr << "siphon: cannot open " << replica << ": " << sqlite3_errmsg(db) << "\n";
    sqlite3_close(db);
    return 1;
  }
  sqlite3_stmt* s = nullptr;
  const char* sql =
      "SELECT table_name, status, rows_total, last_success_at, last_sync_at, cursor, "
      "last_error, source_table FROM _siphon_state ORDER BY table_name";
  // A file that is not a replica, and one that cannot be read now (another process holding a
  // write lock past the busy timeout), are told apart: the second is not "not a replica".
  auto cannot_read = [&db, &replica](int rc) {
    const std::string why = sqlite3_errmsg(db);
    if (rc == SQLITE_NOTADB || why.rfind("no such table", 0) == 0) {
      std::cerr << "siphon: " << replica << " is not a siphon replica: " << why << "\n";
    } else {
      std::cerr << "siphon: cannot read " << replica << ": " << why
                << ((rc & 0xFF) == SQLITE_BUSY || (rc & 0xFF) == SQLITE_LOCKED
                        ? " (another process holds a write lock on it; try again)"
                        : "")
                << "\n";
    }
    sqlite3_close(db);
    return 1;
  };
  if (int rc = sqlite3_prepare_v2(db, sql, -1, &s, nullptr); rc != SQLITE_OK) {
    return cannot_read(rc);
  }
  auto text = [&s](int i) {
    const unsigned char* v = sqlite3_column_text(s, i);
    return v ? std::string(reinterpret_cast<const char*>(v)) : std::string();
  };
  nlohmann::json out = nlohmann::json::array();
  std::vector<std::vector<std::string>> rows;
  int rc;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    nlohmann::json row = {{"table", text(0)},
                          {"status", text(1)},
                          {"rows_total", sqlite3_column_int64(s, 2)},
                          {"last_success_at", text(3)},
                          {"last_sync_at", text(4)},
                          {"cursor", text(5)},
                          {"last_error", text(6)},
                          {"source_table", text(7)}};
    out.push_back(row);
    rows.push_back(
        {text(0), text(1), std::to_string(sqlite3_column_int64(s, 2)), text(3), text(5), text(6)});
  }
  sqlite3_finalize(s);
  // A read that failed part way would show some tables only: nothing is printed instead.
  if (rc != SQLITE_DONE) return cannot_read(rc);
  sqlite3_close(db);
  if (json) {
    // A source's error message may carry bytes that are not UTF-8: replaced, not thrown.
    std::cout << out.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
    return 0;
  }
  // WRITTEN is rows_total: rows written over all runs, every pass of a full refresh counted
  // again. It is not the table's size, so the column does not say ROWS.
  std::vector<std::string> header = {"TABLE",        "STATUS", "WRITTEN",
                                     "LAST SUCCESS", "CURSOR", "ERROR"};
  // Columns are aligned by the width a terminal shows, not by bytes: a name or an error in
  // another script than Latin takes two to four bytes a character.
  std::vector<size_t> width(header.size());
  for (size_t i = 0; i < header.size(); ++i) width[i] = header[i].size();
  for (auto& r : rows) {
    for (size_t i = 0; i < r.size(); ++i) {
      r[i] = FitColumns(OneLine(r[i]), 60);
      width[i] = std::max(width[i], DisplayWidth(r[i]));
    }
  }
  auto print = [&width](const std::vector<std::string>& r) {
    for (size_t i = 0; i < r.size(); ++i) {
      std::cout << r[i];
      if (i + 1 < r.size()) std::cout << std::string(width[i] - DisplayWidth(r[i]) + 2, ' ');
    }
    std::cout << "\n";
  };
  print(header);
  for (const auto& r : rows) print(r);
  return 0;
}

}  // namespace siphon

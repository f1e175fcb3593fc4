#pragma once
#include <chrono>
#include <functional>
#include <memory>
#include <set>
#include <string>

#include <uv.h>
#include <nlohmann/json.hpp>

#include "runtime/base/status.hpp"
#include "runtime/http/http_server.hpp"
#include "runtime/http/metrics.hpp"
#include "runtime/sync/replicator.hpp"

struct sqlite3;

namespace siphon {

/// The outcome of `POST /reload`, from whoever owns the script.
struct ReloadOutcome {
  Status status;  ///< not ok: the script failed to load and the running deployment stays
  ReloadDiff diff;
};

/// What the admin API serves and how it is protected.
struct AdminOptions {
  std::string token;                    ///< empty: no authentication (loopback only)
  std::string target_path;              ///< the SQLite target, read through a read-only connection
  std::function<int64_t()> lua_memory;  ///< may be null
  std::function<ReloadOutcome()> reload;  ///< may be null: POST /reload answers 404
  HttpLimits limits;
};

/// The HTTP admin API (DESIGN §7): status, per-table control, the run log and metrics.
/// Loop thread only. The replicator and metrics must outlive it.
class AdminApi {
 public:
  AdminApi(uv_loop_t* loop, Replicator& replicator, SyncMetrics& metrics, AdminOptions options);
  ~AdminApi();
  AdminApi(const AdminApi&) = delete;
  AdminApi& operator=(const AdminApi&) = delete;

  /// Binds and starts serving.
  Status Listen(const ListenAddress& address);
  int port() const { return server_.port(); }

  /// Answers one request (what the server calls; public for tests).
  HttpResponse Handle(const HttpRequest& request);

  /// Requests from now on need this token (empty: none).
  void SetToken(std::string token) { options_.token = std::move(token); }

  /// Re-runs the script through options.reload and re-applies pauses made through the API
  /// (SIGHUP and `POST /reload`).
  ReloadOutcome RunReload();

  /// The JSON of one table, as in `/status` and `/tables/NAME`.
  nlohmann::json TableJson(const TableRunner& runner) const;

 private:
  HttpResponse StatusJson() const;
  HttpResponse Table(const std::string& name, const HttpRequest& request);
  HttpResponse Logs(const HttpRequest& request);
  HttpResponse Metrics() const;
  HttpResponse Reload();
  sqlite3* Reader();

  uv_loop_t* loop_;
  Replicator& replicator_;
  SyncMetrics& metrics_;
  AdminOptions options_;
  HttpServer server_;
  std::set<std::string> paused_;
  sqlite3* reader_ = nullptr;  // read-only, never the writer's connection
  std::chrono::system_clock::time_point started_ = std::chrono::system_clock::now();
};

/// A JSON error body: {"error": message}.
HttpResponse JsonError(int status, const std::string& message);

}  // namespace siphon

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
};

/// The HTTP admin API (DESIGN §7): status, per-table control, the run log and metrics.
/// Loop thread only. The replicator and metrics must outlive it.
class AdminApi {
 public:
  /// Binds the API's address, before what it serves exists: a command learns that the port
  /// is taken (or the address refused) before it starts anything. `token`: one will be
  /// required (a non-loopback address needs one). Connections wait until an AdminApi serves.
  static Result<std::unique_ptr<HttpServer>> Bind(uv_loop_t* loop, const ListenAddress& address,
                                                  bool token, HttpLimits limits = {});

  /// Serves on `server` (from Bind).
  AdminApi(Replicator& replicator, SyncMetrics& metrics, AdminOptions options,
           std::unique_ptr<HttpServer> server);
  ~AdminApi();
  AdminApi(const AdminApi&) = delete;
  AdminApi& operator=(const AdminApi&) = delete;

  /// Logs where the API serves ("admin API on http://…").
  void LogServing(const ListenAddress& address) const;
  int port() const { return server_->port(); }

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

  Replicator& replicator_;
  SyncMetrics& metrics_;
  AdminOptions options_;
  std::unique_ptr<HttpServer> server_;
  std::set<std::string> paused_;
  sqlite3* reader_ = nullptr;  // read-only, never the writer's connection
  std::chrono::system_clock::time_point started_ = std::chrono::system_clock::now();
};

/// A JSON error body: {"error": message}.
HttpResponse JsonError(int status, const std::string& message);

}  // namespace siphon

#include "runtime/http/admin_api.hpp"

#include <sqlite3.h>

#include <cctype>

#include "runtime/base/ascii.hpp"
#include "runtime/base/log.hpp"
#include "runtime/http/status_json.hpp"
#include "runtime/target/target.hpp"

namespace siphon {

HttpResponse JsonError(int status, const std::string& message) {
  HttpResponse r;
  r.status = status;
  // A message may quote a name from the request, decoded from %XX into any bytes: invalid
  // UTF-8 is replaced, not thrown (which answered 500 where a 404 was due).
  r.body = nlohmann::json{{"error", message}}.dump(-1, ' ', false,
                                                   nlohmann::json::error_handler_t::replace) +
           "\n";
  return r;
}

namespace {

HttpResponse Json(int status, const nlohmann::json& body) {
  HttpResponse r;
  r.status = status;
  // Replace invalid UTF-8 (a source error message may carry anything) rather than throw.
  r.body = body.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  return r;
}

HttpResponse MethodNotAllowed(const char* allow) {
  HttpResponse r = JsonError(405, std::string("method not allowed; use ") + allow);
  r.headers.emplace_back("Allow", allow);
  return r;
}

// A resource read with GET is also read with HEAD (the server answers it as the GET).
constexpr const char* kGetOrHead = "GET, HEAD";

nlohmann::json TextOrNull(sqlite3_stmt* s, int i) {
  const unsigned char* v = sqlite3_column_text(s, i);
  if (!v) return nullptr;
  return std::string(reinterpret_cast<const char*>(v));
}

}  // namespace

Result<std::unique_ptr<HttpServer>> AdminApi::Bind(uv_loop_t* loop, const ListenAddress& address,
                                                   bool token, HttpLimits limits) {
  if (!address.loopback && !token) {
    return Status(ErrorKind::kConfig, "--http " + address.host +
                                          ": a non-loopback address needs a token "
                                          "(--http-token-env NAME or SIPHON_HTTP_TOKEN)");
  }
  auto server = std::make_unique<HttpServer>(loop, limits, nullptr);
  if (Status st = server->Listen(address.host, address.port); !st.ok()) {
    return Status(st.kind(), "admin API: " + st.message());
  }
  return server;
}

AdminApi::AdminApi(Replicator& replicator, SyncMetrics& metrics, AdminOptions options,
                   std::unique_ptr<HttpServer> server)
    : replicator_(replicator),
      metrics_(metrics),
      options_(std::move(options)),
      server_(std::move(server)) {
  server_->SetHandler([this](const HttpRequest& r) { return Handle(r); });
}

AdminApi::~AdminApi() {
  // The server goes first: no request reaches a half-destroyed API.
  server_.reset();
  if (reader_) sqlite3_close(reader_);
}

void AdminApi::LogServing(const ListenAddress& address) const {
  const bool v6 = address.host.find(':') != std::string::npos;
  Logger("http")->info("admin API on http://{}{}{}:{}{}", v6 ? "[" : "", address.host,
                       v6 ? "]" : "", server_->port(),
                       options_.token.empty() ? "" : " (token required)");
}

HttpResponse AdminApi::Handle(const HttpRequest& req) {
  const std::string& path = req.path;
  if (path == "/healthz") {
    if (req.method != "GET") return MethodNotAllowed(kGetOrHead);
    // One line, as health checks and load balancers match it (the other answers are indented
    // for people reading them).
    HttpResponse r;
    r.body = "{\"status\":\"ok\"}\n";
    return r;
  }
  if (!options_.token.empty()) {
    std::string_view auth = req.Header("authorization");
    constexpr std::string_view kBearer = "Bearer ";
    HttpResponse denied;
    std::string challenge = "Bearer realm=\"siphon\"";
    auto is_bearer = [&auth, kBearer] {
      if (auth.size() < kBearer.size()) return false;
      for (size_t i = 0; i < kBearer.size(); ++i) {  // the scheme is case-insensitive
        if (AsciiLower(auth[i]) != AsciiLower(kBearer[i])) {
          return false;
        }
      }
      return true;
    };
    // "Bearer" 1*SP token (RFC 6750 2.1): more than one space is allowed.
    std::string_view presented = is_bearer() ? auth.substr(kBearer.size()) : std::string_view();
    while (!presented.empty() && presented.front() == ' ') presented.remove_prefix(1);
    if (!is_bearer()) {
      denied = JsonError(401, "missing bearer token (Authorization: Bearer <token>)");
    } else if (!ConstantTimeEquals(presented, options_.token)) {
      denied = JsonError(401, "invalid token");
      // A client told a token was sent but refused (RFC 6750 3.1) knows not to send it again.
      challenge += ", error=\"invalid_token\"";
    }
    if (denied.status == 401) {
      denied.headers.emplace_back("WWW-Authenticate", challenge);
      return denied;
    }
  }
  if (path == "/status" || path == "/tables") {
    if (req.method != "GET") return MethodNotAllowed(kGetOrHead);
    return StatusJson();
  }
  if (path == "/metrics") {
    if (req.method != "GET") return MethodNotAllowed(kGetOrHead);
    return Metrics();
  }
  if (path == "/logs") {
    if (req.method != "GET") return MethodNotAllowed(kGetOrHead);
    return Logs(req);
  }
  if (path == "/reload") {
    if (!options_.reload) return JsonError(404, "reload is not available in this mode");
    if (req.method != "POST") return MethodNotAllowed("POST");
    return Reload();
  }
  constexpr std::string_view kTables = "/tables/";
  if (path.size() > kTables.size() && path.compare(0, kTables.size(), kTables) == 0) {
    return Table(path.substr(kTables.size()), req);
  }
  return JsonError(404, "no such endpoint: " + path);
}

nlohmann::json AdminApi::TableJson(const TableRunner& r) const {
  return TableStatusJson(r, metrics_, std::chrono::system_clock::now());
}

HttpResponse AdminApi::StatusJson() const {
  return Json(200, DeploymentStatusJson(replicator_, metrics_, started_, options_.target_path));
}

HttpResponse AdminApi::Table(const std::string& rest, const HttpRequest& req) {
  // /tables/NAME[/ACTION]. A name may hold a '/' (sent as is or as %2F; the path arrives
  // decoded): the whole rest naming a table wins over a split at its last '/'.
  std::string name = rest, action;
  if (size_t slash = rest.rfind('/'); slash != std::string::npos && !replicator_.Find(rest)) {
    name = rest.substr(0, slash);
    action = rest.substr(slash + 1);
  }
  TableRunner* runner = replicator_.Find(name);
  if (!runner) return JsonError(404, "no such table: " + name);
  if (action.empty()) {
    if (req.method != "GET") return MethodNotAllowed(kGetOrHead);
    nlohmann::json j = TableJson(*runner);
    j["persisted"] = nullptr;
    if (sqlite3* db = Reader()) {
      sqlite3_stmt* s = nullptr;
      if (sqlite3_prepare_v2(db,
                             "SELECT rows_total, last_sync_at, last_success_at, status, "
                             "last_error, cursor FROM _siphon_state WHERE table_name = ?1",
                             -1, &s, nullptr) == SQLITE_OK) {
        sqlite3_bind_text(s, 1, name.c_str(), -1, SQLITE_TRANSIENT);
        if (sqlite3_step(s) == SQLITE_ROW) {
          const unsigned char* cursor = sqlite3_column_text(s, 5);
          j["persisted"] = {
              {"rows_total", sqlite3_column_int64(s, 0)},
              {"last_sync_at", TextOrNull(s, 1)},
              {"last_success_at", TextOrNull(s, 2)},
              {"status", TextOrNull(s, 3)},
              {"last_error", TextOrNull(s, 4)},
              {"cursor", cursor ? CursorJson(reinterpret_cast<const char*>(cursor)) : nullptr}};
        }
      }
      sqlite3_finalize(s);
    }
    return Json(200, j);
  }
  if (action != "sync" && action != "pause" && action != "resume" && action != "resync") {
    return JsonError(404, "no such action: " + action + " (sync, pause, resume, resync)");
  }
  if (req.method != "POST") return MethodNotAllowed("POST");
  auto log = Logger("http");
  nlohmann::json out = {{"table", name}, {"action", action}};
  if (action == "sync") {
    if (paused_.count(name) || runner->stats().state == RunnerState::kPaused) {
      return JsonError(409, "table " + name + " is paused; resume it first");
    }
    if (!runner->SyncNow()) return JsonError(409, "a sync of " + name + " is already running");
    log->info("{}: sync requested", name);
    out["state"] = "scheduled";
    return Json(202, out);
  }
  if (action == "pause") {
    runner->Pause();
    paused_.insert(name);
    log->info("{}: paused", name);
    out["state"] = "paused";
    return Json(200, out);
  }
  if (action == "resume") {
    paused_.erase(name);
    runner->Resume();
    log->info("{}: resumed", name);
    out["state"] = std::string(RunnerStateName(runner->stats().state));
    return Json(200, out);
  }
  // A table without a key that holds rows would get each row again (the target refuses the
  // reset too, but only into the log): say so here.
  if (runner->keyless() && Reader() != nullptr) {
    if (Result<bool> rows = TableHasRows(Reader(), name); rows.ok() && *rows) {
      return JsonError(409, KeylessResyncRefused(name).message());
    }
  }
  if (Status st = runner->Resync(); !st.ok()) {
    return JsonError(409, "a sync of " + name + " is running; resync when it ends");
  }
  log->info("{}: resync requested", name);
  // Paused by hand or by the script (on_schema_change = "pause"): the re-pull waits for a resume.
  out["state"] = runner->paused() ? "paused" : "scheduled";
  return Json(202, out);
}

sqlite3* AdminApi::Reader() {
  if (reader_) return reader_;
  // The path as is, never inside a file: URI, where '#', '?' and '%' in it mean something.
  if (sqlite3_open_v2(options_.target_path.c_str(), &reader_, SQLITE_OPEN_READONLY, nullptr) !=
      SQLITE_OK) {
    Logger("http")->warn("cannot open {} read-only: {}", options_.target_path,
                         sqlite3_errmsg(reader_));
    sqlite3_close(reader_);
    reader_ = nullptr;
    return nullptr;
  }
  // The writer commits pages in short transactions (WAL): a reader waits for a lock only
  // during a checkpoint, briefly.
  sqlite3_busy_timeout(reader_, 1000);
  return reader_;
}

HttpResponse AdminApi::Logs(const HttpRequest& req) {
  int64_t limit = 50;
  std::string value;
  if (req.QueryParam("limit", &value)) {
    char* end = nullptr;
    long long n = value.empty() ? 0 : std::strtoll(value.c_str(), &end, 10);
    if (value.empty() || *end != '\0' || n < 1 || n > 1000) {
      return JsonError(400, "limit must be an integer from 1 to 1000");
    }
    limit = n;
  }
  std::string table;
  const bool by_table = req.QueryParam("table", &table);
  sqlite3* db = Reader();
  if (!db) return JsonError(500, "the target cannot be read");
  std::string sql =
      "SELECT id, at, table_name, event, rows, duration_ms, error, deleted FROM _siphon_log ";
  sql += by_table ? "WHERE table_name = ?2 " : "";
  sql += "ORDER BY id DESC LIMIT ?1";
  sqlite3_stmt* s = nullptr;
  if (sqlite3_prepare_v2(db, sql.c_str(), -1, &s, nullptr) != SQLITE_OK) {
    std::string msg = sqlite3_errmsg(db);
    sqlite3_finalize(s);
    return JsonError(500, "reading _siphon_log: " + msg);
  }
  sqlite3_bind_int64(s, 1, limit);
  if (by_table) sqlite3_bind_text(s, 2, table.c_str(), -1, SQLITE_TRANSIENT);
  nlohmann::json entries = nlohmann::json::array();
  int rc;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    entries.push_back({{"id", sqlite3_column_int64(s, 0)},
                       {"at", TextOrNull(s, 1)},
                       {"table", TextOrNull(s, 2)},
                       {"event", TextOrNull(s, 3)},
                       {"rows", sqlite3_column_int64(s, 4)},
                       {"duration_ms", sqlite3_column_int64(s, 5)},
                       {"error", TextOrNull(s, 6)},
                       {"deleted", sqlite3_column_int64(s, 7)}});
  }
  sqlite3_finalize(s);
  if (rc != SQLITE_DONE)
    return JsonError(500, std::string("reading _siphon_log: ") + sqlite3_errstr(rc));
  // A name siphon never knew (a typo) is not a table with nothing logged yet. A table a reload
  // removed keeps its history, so the log answers for it too.
  if (by_table && entries.empty() && !replicator_.Find(table)) {
    return JsonError(404, "no such table: " + table);
  }
  return Json(200, {{"entries", entries}});
}

HttpResponse AdminApi::Metrics() const {
  std::vector<const TableRunner*> runners;
  for (const auto& r : replicator_.runners()) runners.push_back(r.get());
  ProcessFigures process;
  process.resident_bytes = ResidentMemoryBytes();
  process.lua_bytes = options_.lua_memory ? options_.lua_memory() : 0;
  HttpResponse r;
  r.content_type = "text/plain; version=0.0.4; charset=utf-8";
  r.body = metrics_.Render(runners, paused_, process, std::chrono::system_clock::now());
  return r;
}

ReloadOutcome AdminApi::RunReload() {
  ReloadOutcome outcome = options_.reload();
  if (!outcome.status.ok()) return outcome;
  // A table paused through the API stays paused across a reload.
  for (auto it = paused_.begin(); it != paused_.end();) {
    if (TableRunner* r = replicator_.Find(*it)) {
      r->Pause();
      ++it;
    } else {
      it = paused_.erase(it);
    }
  }
  return outcome;
}

HttpResponse AdminApi::Reload() {
  ReloadOutcome outcome = RunReload();
  if (!outcome.status.ok()) {
    return Json(400, {{"error", outcome.status.message()}, {"reloaded", false}});
  }
  const ReloadDiff& d = outcome.diff;
  return Json(200, {{"reloaded", true},
                    {"added", d.added},
                    {"removed", d.removed},
                    {"changed", d.changed},
                    {"unchanged", d.unchanged}});
}

}  // namespace siphon

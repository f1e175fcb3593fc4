#pragma once
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "adapters/source.hpp"
#include "runtime/sync/transform.hpp"

namespace siphon {

/// How a page is written into the target.
enum class WriteMode {
  kUpsert,  ///< INSERT … ON CONFLICT(key) DO UPDATE
  kAppend,  ///< INSERT … ON CONFLICT DO NOTHING
};

/// What a table does when a source column changes type (`on_schema_change`).
enum class SchemaChangeAction {
  kContinue,  ///< keep replicating; the target column keeps its declared type
  kPause,     ///< stop the table until resumed (an `error` event says why)
  kResync,    ///< forget the cursor and pull everything again
};

/// Decides the action for a schema change (the Lua layer implements it for
/// `on_schema_change = function(diff) … end`).
class SchemaChangeHandler {
 public:
  virtual ~SchemaChangeHandler() = default;
  virtual Result<SchemaChangeAction> Decide(const std::string& table, const SchemaDiff& diff) = 0;
};

/// A declared source: the adapter's Source plus where it was declared.
struct SourceDecl {
  std::string name;      ///< "postgres#1": kind and declaration order, for logs
  std::string location;  ///< "script.lua:3"
  std::shared_ptr<Source> source;
  /// The options it was made from, secrets included (never printed): a reload compares them,
  /// so a rotated password or a new timeout makes a new source.
  Options options;
  /// Its options that name a file (OptionSpec::file), resolved: {option, path}.
  std::vector<std::pair<std::string, std::string>> files;
  /// `max_connections`: how many connections its tables share (see ConnectionPool).
  size_t max_connections = kDefaultMaxConnections;
  static constexpr size_t kDefaultMaxConnections = 4;
};

/// One `siphon.replicate "name" { … }`: everything the pipeline needs for a table.
/// Plain data, no Lua: the Lua layer builds it, the sync layer runs it.
struct TableDecl {
  std::string name;      ///< target table name
  std::string location;  ///< "script.lua:12", for messages about this table
  std::shared_ptr<SourceDecl> source;
  std::string from;  ///< source table, e.g. "public.orders"
  /// `query = "SELECT …"`: a sub-select read instead of a table (then `from` is empty).
  std::string query;
  std::vector<std::string> key;      ///< empty: the source's primary key
  std::vector<std::string> cursor;   ///< empty: full refresh each run
  std::vector<std::string> columns;  ///< empty: every column
  std::chrono::milliseconds every{std::chrono::seconds(60)};
  size_t batch = 5000;
  std::optional<double> lookback_seconds;
  WriteMode write = WriteMode::kUpsert;
  /// `lagging` fires when the table has not synced successfully for this long.
  std::optional<std::chrono::milliseconds> max_lag;
  /// Schema evolution: what a retyped column does, and whether added columns are
  /// back-filled at once (a full re-pull) rather than as rows change.
  SchemaChangeAction on_schema_change = SchemaChangeAction::kContinue;
  std::shared_ptr<SchemaChangeHandler> schema_change_handler;  ///< overrides on_schema_change
  bool backfill = false;
  /// Soft deletes (`deletes = { soft = "deleted_at", keep = false }`): a row whose column is
  /// set (not NULL, not false/0) is removed from the target, or kept with its flag.
  struct SoftDelete {
    std::string column;
    bool keep = false;
  };
  std::optional<SoftDelete> soft_delete;
  /// `deletes = { reconcile = "1h" }`: how often to look for rows gone from the source
  /// (key ranges compared by digest on both sides; see Reconciler).
  std::optional<std::chrono::milliseconds> reconcile_every;
  /// Optional row transform (the Lua layer provides it); null: rows are written as pulled.
  std::shared_ptr<RowTransform> transform;

  /// The source as events, the run log and the state row name it ("" when there is none).
  std::string SourceDescription() const {
    return source && source->source ? source->source->Describe() : "";
  }

  /// What the table reads, for messages and status: `from`, or `query "SELECT o.id, …"` (the
  /// query's start, on one line).
  std::string Origin() const {
    if (query.empty()) return from;
    std::string text;
    for (char ch : query) {
      const bool space = ch == ' ' || ch == '\n' || ch == '\t' || ch == '\r';
      if (space && (text.empty() || text.back() == ' ')) continue;
      text.push_back(space ? ' ' : ch);
    }
    while (!text.empty() && text.back() == ' ') text.pop_back();
    constexpr size_t kShown = 60;
    if (text.size() > kShown) {
      size_t cut = kShown;  // not inside a UTF-8 sequence
      while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
      text = text.substr(0, cut) + "…";
    }
    return "query \"" + text + "\"";
  }
};

/// The SQLite target.
struct TargetDecl {
  std::string path;
  std::string location;
};

/// `siphon.http_api { listen, token }`: the admin API as the script declares it.
struct HttpApiDecl {
  std::string listen;  ///< "ADDR:PORT" or "PORT"
  std::string token;   ///< empty: no token (loopback only)
  std::string location;
};

/// Everything a script declared.
struct Deployment {
  std::string script_path;
  std::optional<TargetDecl> target;
  std::optional<HttpApiDecl> http_api;
  std::vector<std::shared_ptr<SourceDecl>> sources;
  std::vector<TableDecl> tables;
};

}  // namespace siphon

#pragma once
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include <uv.h>

#include "runtime/base/key_digest.hpp"
#include "runtime/base/row_batch.hpp"
#include "runtime/base/schema.hpp"
#include "runtime/base/status.hpp"

namespace siphon {

/// A connection to a source database, used by one table at a time, on the loop thread.
/// Every method returns at once; its callback runs later on the loop, exactly once, unless
/// the connection is destroyed first (then it never runs). No method blocks the loop.
/// Adapters know their SQL dialect; the sync pipeline knows none.
class SourceConnection {
 public:
  virtual ~SourceConnection() = default;

  /// Opens the connection (no-op when already open and healthy).
  virtual void Connect(std::function<void(Status)> done) = 0;

  /// Reads a table's columns, primary key and row estimate from the catalog.
  /// `table` is the name the script gave (`schema.table` or `table`). A missing table is
  /// ErrorKind::kConfig: the script names a table the source does not have.
  virtual void Reflect(const std::string& table, std::function<void(Result<TableSchema>)> done) = 0;

  /// Reads the columns of a query's result (a `SELECT …` the script gave as `query`): their
  /// names and source types as the server describes them, nullable unless the source can
  /// tell a column comes straight from a NOT NULL table column. The schema's `query` holds
  /// the text, so every later statement reads from it as a sub-select; a query has no
  /// primary key. An invalid query fails with the server's message; duplicate column names,
  /// a table the query reads that the source does not have (QueryTableNotFound) and a column
  /// it names that its table does not have (QueryColumnNotFound) are ErrorKind::kConfig. The
  /// default reports that the source cannot replicate a query.
  virtual void ReflectQuery(const std::string& query,
                            std::function<void(Result<TableSchema>)> done);

  /// Which of `columns` (the first in their order) is NULL in some row of the table, if any:
  /// a query's key and cursor columns can be NULL where the catalog says NOT NULL (an outer
  /// join), and keyset pages never return those rows. The default finds none.
  virtual void FirstNull(const TableSchema& table, const std::vector<std::string>& columns,
                         std::function<void(Result<std::optional<std::string>>)> done);

  /// Reflect for a table, ReflectQuery when `query` is set.
  void ReflectSource(const std::string& table, const std::string& query,
                     std::function<void(Result<TableSchema>)> done) {
    if (query.empty()) return Reflect(table, std::move(done));
    ReflectQuery(query, std::move(done));
  }

  /// Pulls one page. The batch has query.columns in that order, typed per DESIGN §5.
  virtual void Pull(const TableSchema& table, const PageQuery& query,
                    std::function<void(Result<RowBatch>)> done) = 0;

  /// Pulls up to query.pages pages of query.limit rows with one statement: `page` gets each
  /// page, in order, and the call with `last` true is the final one. Every page but the last
  /// is full. The last holds the last rows (none when there were none) and is full when rows
  /// may remain, as a page from Pull is: the statement stopped at query.pages pages, or the
  /// source pulls one page at a time. An error comes as the last call, after whole pages
  /// only. The source goes on producing while the pages are used: no round trip between
  /// them. The default pulls one page.
  virtual void PullPages(const TableSchema& table, const PageQuery& query,
                         std::function<void(Result<RowBatch>, bool last)> page);

  /// The exact SQL Pull runs for this query (for `siphon check`), parameters as $n or ?.
  virtual std::string PageSql(const TableSchema& table, const PageQuery& query) const = 0;

  /// Checks that a cursor over `order_by` can be paged by this source; the message says
  /// what to do otherwise (e.g. a nullable cursor column). The first `cursor_columns` of
  /// `order_by` are the declared cursor, the rest the key that orders ties (a full refresh
  /// has no cursor and pages by its key alone).
  virtual Status CheckCursor(const TableSchema& table, const std::vector<std::string>& order_by,
                             size_t cursor_columns, bool has_lookback) const;

  /// The safe horizon for a cursor on `column`: a value such that no transaction still open
  /// on the source can commit a row below it, or none when the source cannot tell (or the
  /// column is not a time the source stamps or a number it counts). A run reads only rows
  /// below it, so a transaction committing late is not skipped. `after` is where the run
  /// starts reading on `column` (exclusive; none on a first run): a horizon only matters
  /// above it. The default has no horizon and calls `done` before returning.
  virtual void SafeHorizon(const TableSchema& table, const std::string& column,
                           const std::optional<CursorValue>& after,
                           std::function<void(Result<std::optional<CursorValue>>)> done);

  /// Reconcile: the digests of the keys in consecutive parts of `range`, cut at `splits`
  /// (ascending key values inside the range): (after, splits[0]], (splits[0], splits[1]], …,
  /// (splits.back(), upto], so splits.size() + 1 digests. `key` names the key columns;
  /// ranges follow the source's own order, each key hashes as KeyHash() of its columns'
  /// text, computed by the server. The default reports that the source cannot reconcile.
  virtual void DigestKeys(const TableSchema& table, const std::vector<std::string>& key,
                          const KeyRange& range, const std::vector<Cursor>& splits,
                          std::function<void(Result<std::vector<KeyDigest>>)> done);

  /// Reconcile: which of `keys` (values of the `key` columns) the source has, each as Pull
  /// would return it, in any order. At most kMaxFindKeys keys per call.
  virtual void FindKeys(const TableSchema& table, const std::vector<std::string>& key,
                        const std::vector<Cursor>& keys,
                        std::function<void(Result<std::vector<Cursor>>)> done);
  static constexpr size_t kMaxFindKeys = 500;

  /// Drops the connection; a later Connect opens a new one.
  virtual void Close() = 0;
};

/// ReflectQuery's error for a table the query reads that the source does not have, from the
/// server's error `server`, which names it (in the server's language): the script's mistake,
/// as a `from` the source does not have is, so ErrorKind::kConfig (exit 2 from `once` and
/// `check`; `run` retries it like any failure, and picks the table up once it is there).
Status QueryTableNotFound(const Status& server);

/// ReflectQuery's error for a column the query names that its table does not have (a typo, a
/// column dropped at the source), from the server's error `server`, which names it: the
/// script's mistake as a missing table is (QueryTableNotFound), so ErrorKind::kConfig.
Status QueryColumnNotFound(const Status& server);

/// A declared source (one `siphon.postgres{…}` call): makes connections.
class Source {
 public:
  virtual ~Source() = default;
  virtual std::string_view kind() const = 0;  ///< "postgres", "mysql", "sqlite"
  /// Where it points, safe to print: never a password.
  virtual std::string Describe() const = 0;
  virtual std::unique_ptr<SourceConnection> NewConnection(uv_loop_t* loop) = 0;
};

/// Options of a source as the script gave them, already checked against the adapter's spec.
using OptionValue = std::variant<std::string, int64_t, bool>;
using Options = std::map<std::string, OptionValue>;

enum class OptionType { kString, kInteger, kBoolean };

/// One option a source accepts. The Lua layer validates scripts against these, and the
/// README's reference lists them.
struct OptionSpec {
  std::string name;
  OptionType type = OptionType::kString;
  bool required = false;
  std::string doc;
  /// A file name: a relative one is relative to the script's folder (resolved before `make`).
  bool file = false;
};

/// How an adapter registers itself: its `siphon.<kind>` name, its options and a factory.
struct SourceDefinition {
  std::string kind;
  std::vector<OptionSpec> options;
  /// Checks option combinations the spec cannot express (e.g. dsn or host) and builds the
  /// source. Errors are ErrorKind::kConfig and name the option.
  std::function<Result<std::unique_ptr<Source>>(const Options&)> make;
};

/// Every adapter compiled in (adapters/registry.cpp holds the list).
const std::vector<SourceDefinition>& SourceDefinitions();
const SourceDefinition* FindSourceDefinition(std::string_view kind);

}  // namespace siphon

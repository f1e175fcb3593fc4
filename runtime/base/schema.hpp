#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "runtime/base/row_batch.hpp"

namespace siphon {

/// The SQLite column type a source column is stored as (DESIGN §5).
enum class ColumnType {
  kInteger,
  kReal,
  kText,
  kBlob,
  /// No declared type (BLOB affinity): values are stored exactly as given, an integer as
  /// INTEGER and text as TEXT (e.g. MySQL BIGINT UNSIGNED: INTEGER up to 2^63-1, exact
  /// decimal TEXT above).
  kAny,
};

/// "INTEGER", "REAL", "TEXT", "BLOB", or "" for kAny.
std::string_view ColumnTypeName(ColumnType type);

/// How a column orders, which decides what a cursor on it may do.
enum class OrderKind {
  kNumber,  ///< integers, floats, numerics: compared as numbers on the source
  kText,    ///< strings, uuids
  kTime,    ///< dates and timestamps: `lookback` applies
  kBytes,   ///< binary strings (bytea, BINARY, VARBINARY, SQLite BLOB): compared byte by byte
  kOther,   ///< not usable as a cursor (json, large objects, arrays, booleans)
};

/// One column of a source table, as reflected from the source's catalog.
struct ColumnInfo {
  std::string name;
  std::string source_type;  ///< the source's own spelling, e.g. "timestamp with time zone"
  ColumnType type = ColumnType::kText;
  OrderKind order = OrderKind::kOther;
  bool nullable = true;
  /// The adapter has no conversion for the source type and keeps the source's text form; a
  /// run that replicates the column says so once (one left out by `columns` is not named).
  bool text_form = false;
  /// What makes the source hold some different values of the column equal ('a' and 'A')
  /// when it cannot tell siphon which, as a message names it: `the nondeterministic collation
  /// "ci", which holds some different values equal ('a' and 'A')` (PostgreSQL); empty when
  /// equal values are equal bytes, or the source says which (RowBatch::order_keys).
  std::string loose_equality = {};
  /// The character set the source keeps the column's text in when some of its bytes have no
  /// UTF-8 equivalent, which the source would send as '?' (MariaDB's cp1251 holds 0x98,
  /// which is no character): the adapter checks every value it reads and fails the page on
  /// such a value, naming it. Empty when every value converts (UTF-8, latin1, not text).
  std::string lossy_charset = {};
  /// For a key column taken from a unique index that holds it under another collation than
  /// the column's own, one that orders the same (PostgreSQL's "POSIX" on a "C" column): that
  /// collation, as the source spells it in SQL, for pages to compare and order under so the
  /// server reads them through the index. Empty: the column's own.
  std::string key_collation = {};
  /// The source orders the column's values as SQLite orders what siphon stores for them, as
  /// its adapter vouches: integers (but MySQL's BIGINT UNSIGNED, text past 2^63-1), binary
  /// strings, a PostgreSQL uuid (whose text has its hex digits in the order of its bytes). A
  /// full refresh keyed by such columns sweeps by key range (TargetTable::key_range_sweep).
  /// Not set for a SQLite source, whose columns may hold values of any kind, each compared
  /// under the column's collation.
  bool stored_order = false;

  bool operator==(const ColumnInfo&) const = default;
};

/// A source table: columns in source order, primary key, estimated rows.
struct TableSchema {
  std::string qualified_name;  ///< as the script named it, e.g. "public.orders"; "query"
  /// The `SELECT …` a query table reads (SourceConnection::ReflectQuery); empty for a table.
  /// Adapters read from `(query) AS "_siphon_query"` where they would name the table.
  std::string query;
  std::vector<ColumnInfo> columns;
  std::vector<std::string> primary_key;
  /// For a table without a primary key: the unique index `primary_key` was taken from
  /// (TakeKeyFromUniqueIndex); empty when the key is the primary key or there is none.
  std::string key_index;
  /// For a table without a primary key: its unique indexes that cannot be its key, each
  /// with why (`unique index "u" has the nullable column "c"`), for the message of a table
  /// left without one.
  std::vector<std::string> refused_key_indexes;
  int64_t row_estimate = -1;  ///< -1 when unknown

  /// Index of a column by exact name, or -1.
  int Find(std::string_view name) const;
  /// Whether rows in the order of `order_by` never share their order values: it holds every
  /// column of the primary key (never, for a table without one).
  bool OrderIsUnique(const std::vector<std::string>& order_by) const;
  /// A stable digest of the column names and types (for `_siphon_state.schema_hash`).
  std::string Hash() const;
};

/// A unique index of a table, as its adapter reflected it.
struct UniqueIndex {
  std::string name;
  std::vector<std::string> columns;  ///< its key columns, in index order
  /// Why the index cannot identify rows as a primary key would, whatever its columns (it is
  /// partial, indexes an expression, a prefix …): "is partial". Empty when it can.
  std::string unusable;
};

/// For a table without a primary key: takes as its key a unique index that identifies rows
/// as a primary key would — usable (UniqueIndex::unusable empty), over columns that are all
/// NOT NULL (NULLs are never equal, and no keyset page can pass one) and of a type a key can
/// have (one that orders). Of several, the one of fewest columns, then the first by name, so
/// every run picks the same. Sets primary_key and key_index; the others go, each with why,
/// to refused_key_indexes (those usable but not chosen are not listed). A table with a
/// primary key is left as it is.
void TakeKeyFromUniqueIndex(TableSchema& schema, const std::vector<UniqueIndex>& indexes);

/// A binary cursor or key value (bytea, BINARY(16) uuids, SQLite blobs): its bytes, kept
/// apart from text so each source compares and binds it as bytes.
struct Bytes {
  std::string data;
  bool operator==(const Bytes&) const = default;
};

/// One value of a cursor: the order columns of the last row written.
/// Integers stay integers so the source compares numbers as numbers.
using CursorValue = std::variant<std::monostate, int64_t, double, std::string, Bytes>;
using Cursor = std::vector<CursorValue>;

/// The cell of a batch as a cursor value (a blob as Bytes, a null as monostate).
CursorValue CursorValueOf(const RowBatch& batch, size_t row, size_t column);
/// Every row of a batch as cursor values (e.g. the keys a source found).
std::vector<Cursor> CursorsOf(const RowBatch& batch);

/// The row `row` of `batch` as a JSON object keyed by `columns` (for `_siphon_rejects`):
/// blobs as "\x…" hex text, invalid UTF-8 in text replaced (U+FFFD).
std::string RowToJson(const std::vector<ColumnInfo>& columns, const RowBatch& batch, size_t row);

/// Cursor <-> JSON array text, as stored in `_siphon_state.cursor`.
std::string CursorToJson(const Cursor& cursor);
std::optional<Cursor> CursorFromJson(std::string_view json);
/// The names of a cursor's columns as a JSON array, as stored in
/// `_siphon_state.cursor_columns`.
std::string CursorColumnsJson(const std::vector<std::string>& columns);

/// Columns added, dropped and retyped on the source since the schema siphon recorded.
struct SchemaDiff {
  std::vector<std::string> added;
  std::vector<std::string> dropped;
  struct Retyped {
    std::string column, from, to;
  };
  std::vector<Retyped> retyped;
  bool empty() const { return added.empty() && dropped.empty() && retyped.empty(); }
  /// {"added":[…],"dropped":[…],"retyped":[{"column":…,"from":…,"to":…}]}
  std::string ToJson() const;
};

/// The reflected columns as JSON ([{"name":…,"type":…},…]), recorded in _siphon_state.
std::string SchemaToJson(const TableSchema& schema);
/// What changed between a recorded schema (SchemaToJson) and the reflected one. An empty or
/// unreadable record gives an empty diff.
SchemaDiff DiffSchema(std::string_view recorded_json, const TableSchema& now);

/// What a page query asks of a source. The adapter turns it into its dialect.
struct PageQuery {
  std::vector<std::string> columns;   ///< projection, in this order
  std::vector<std::string> order_by;  ///< keyset: cursor columns, then the remaining key columns
  std::optional<Cursor> after;        ///< exclusive lower bound on order_by; none = from the start
  /// When set (and `after` is set), the page starts at order_by[0] >= after[0] - lookback,
  /// ignoring the tie-breaking columns: re-reads a window behind the watermark.
  std::optional<double> lookback_seconds;
  /// When set, only rows with order_by[0] < before: the source's safe horizon, behind which
  /// no write transaction is still open (SourceConnection::SafeHorizon).
  std::optional<CursorValue> before;
  size_t limit = 5000;
  /// SourceConnection::PullPages: one statement may bring up to `pages` pages of `limit` rows,
  /// each handed over as soon as it is whole. Pull brings one page whatever it says.
  size_t pages = 1;
};

}  // namespace siphon

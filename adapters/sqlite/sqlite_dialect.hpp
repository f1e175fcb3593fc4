#pragma once
#include <optional>
#include <string>
#include <string_view>

#include <vector>

#include "runtime/base/key_digest.hpp"
#include "runtime/base/schema.hpp"
#include "runtime/base/status.hpp"

namespace siphon::sqlite_source {

/// How a SQLite column is stored and ordered, from its declared type (affinity rules of
/// https://sqlite.org/datatype3.html §3.1, plus date/time names → kTime).
struct SqliteTypeClass {
  ColumnType type = ColumnType::kBlob;
  OrderKind order = OrderKind::kOther;
};
SqliteTypeClass ClassifyDeclaredType(std::string_view declared);

/// Whether a single-column primary key declared so is the rowid (exactly INTEGER, any case):
/// then it is never NULL, whatever the declaration says.
bool IsRowidType(std::string_view declared);

/// `name` as a SQLite identifier: double quotes, inner quotes doubled.
std::string QuoteIdent(std::string_view name);

/// "main.table", "temp.table" or "table" (schema "main"); a table's name may hold dots.
struct TableRef {
  std::string schema = "main";
  std::string table;
};
TableRef SplitTableName(std::string_view qualified);

/// What a statement reads from: `"schema"."table"`, or for a query table
/// (TableSchema::query) the query as a sub-select, `(SELECT …) AS "_siphon_query"`.
std::string From(const TableSchema& table);

/// The page query; parameters are numbered: ?1…?n the cursor values (order_by order), then
///   keyset:   WHERE ("c1", "c2") > (?1, ?2)        (a row value: SQLite uses the index)
///   lookback: WHERE "c1" >= ?1                      (the lower bound, computed by the caller)
/// ORDER BY "c1", "c2" LIMIT n. Every identifier must be a column of `table` (kSchema).
Result<std::string> BuildPageSql(const TableSchema& table, const PageQuery& query);

/// Where a page's rows can share their order values (the order does not hold the whole
/// primary key) and a text order column may compare by NOCASE or RTRIM ('a', 'A' and 'a '
/// equal), the page's positions (in `columns` of the page) of its order columns, which
/// OrderKeyOf reads; empty otherwise (values equal when their bytes are).
std::vector<size_t> OrderKeyColumns(const TableSchema& table, const PageQuery& query);

/// A row's RowBatch::order_keys entry: its values at `columns`, text with ASCII letters in
/// lower case and without trailing spaces (equal under BINARY, NOCASE and RTRIM alike, the
/// collations SQLite has without an extension), numbers as doubles (SQLite holds 1 and 1.0
/// equal).
std::string OrderKeyOf(const RowBatch& page, size_t row, const std::vector<size_t>& columns);

/// A query and the values bound to ?1…?n.
struct BoundSql {
  std::string sql;
  std::vector<CursorValue> params;
};

/// Reconcile's digest query (SourceConnection::DigestKeys): one row per non-empty part,
/// (part, count, sum of the hashes' high halves, sum of their low halves), hashing with
/// siphon_key_hash() (registered on the connection); row values bound the range and parts.
Result<BoundSql> DigestSql(const TableSchema& table, const std::vector<std::string>& key,
                           const KeyRange& range, const std::vector<Cursor>& splits);

/// Reconcile's lookup of keys (SourceConnection::FindKeys):
///   SELECT "k1", "k2" FROM t WHERE ("k1", "k2") IN (VALUES (?1, ?2), …)
Result<BoundSql> FindKeysSql(const TableSchema& table, const std::vector<std::string>& key,
                             const std::vector<Cursor>& keys);

/// The lower bound of a lookback page for a time cursor value: text in the same layout as
/// the value ('YYYY-MM-DD HH:MM:SS' or with 'T'), `seconds` earlier, truncated to whole
/// seconds so it never lies after the exact bound; an integer (a unix time) minus `seconds`,
/// a real (a Julian day) minus `seconds` / 86,400.
/// nullopt when the text is not a date SQLite understands.
std::optional<CursorValue> LookbackBound(const CursorValue& value, double seconds);

}  // namespace siphon::sqlite_source

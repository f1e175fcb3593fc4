#pragma once
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/base/key_digest.hpp"
#include "runtime/base/schema.hpp"
#include "runtime/base/status.hpp"

namespace siphon::postgres {

/// `name` as a PostgreSQL identifier: always double-quoted, inner `"` doubled.
std::string QuoteIdent(std::string_view name);

/// A table name as a script gives it: `table` or `schema.table`. Names are taken literally
/// (no case folding); a part may be double-quoted to hold a dot or a quote (`"my.schema".t`).
struct TableName {
  std::string schema;  ///< empty: resolved through the session's search_path
  std::string table;
};

/// Splits on the first dot outside double quotes. Errors are ErrorKind::kConfig.
Result<TableName> SplitTableName(std::string_view name);

/// `"schema"."table"` or `"table"`: the FROM target, also the argument of to_regclass().
std::string QuotedTableName(const TableName& name);

/// What a statement reads from: QuotedTableName of the table, or for a query table
/// (TableSchema::query) the query as a sub-select, `(SELECT …) AS "_siphon_query"`.
Result<std::string> FromClause(const TableSchema& table);

/// One page query: SQL with $n placeholders and its parameters in text format.
struct PageStatement {
  std::string sql;
  std::vector<std::string> params;
};

/// A cursor value as a text-format parameter: integers in decimal, doubles with 17
/// significant digits (exact round trip), strings as they are.
std::string CursorParam(const CursorValue& value);

/// Builds the keyset page query:
///   SELECT "a", to_json("tags")::text AS "tags" FROM "s"."t"
///   WHERE ("c1", "c2") > ($1::type1, $2::type2) ORDER BY "c1", "c2" LIMIT n
/// or, with lookback and a cursor: WHERE "c1" >= ($1::type1 - make_interval(secs => $2…)).
/// Every column must exist in `table` (kSchema otherwise); array columns are selected as
/// JSON text built by the server.
Result<PageStatement> BuildPageQuery(const TableSchema& table, const PageQuery& query);

/// `value` as a string literal that reads back the same whatever standard_conforming_strings
/// says (the rule PQescapeLiteral follows): quotes doubled, and with a backslash the E'' form
/// with backslashes doubled.
std::string QuoteLiteral(std::string_view value);

/// The statement with its $n placeholders replaced by their parameters as literals, for
/// statements that take none (COPY). Quoted identifiers and literals are left alone.
std::string InlineParams(const PageStatement& statement);

/// The page query as `COPY (…) TO STDOUT`, its parameters inlined: the rows stream as they
/// are produced, so they are decoded while the server still produces them. In text format,
/// or in binary format (`(FORMAT binary)`) when `binary`. COPY does not say its columns'
/// types, so a second statement follows, `SELECT <the same columns> FROM <table> LIMIT 0`:
/// sent as one query string both run in one transaction, the COPY's lock on the table keeps
/// an ALTER TABLE out until it ends, and the second result's column types are those of the
/// rows the COPY sent. With `columns_first` that statement comes first instead: its lock
/// holds from before the COPY, so the types are known before the first row (the rows can
/// be used as they come).
Result<std::string> BuildPageCopy(const TableSchema& table, const PageQuery& query,
                                  bool binary = false, bool columns_first = false);

/// Reconcile's digest query (SourceConnection::DigestKeys): one row per non-empty part,
/// (part, count, sum of the hashes' high halves, sum of their low halves), all as text.
///   SELECT b, count(*), sum(…)::text, sum(…)::text FROM (SELECT CASE WHEN ("k") <= ($1::t)
///   THEN 0 … ELSE n END AS b, md5(concat_ws(chr(1), "k"::text)) AS h FROM "s"."t"
///   WHERE ("k") > ($2::t) AND ("k") <= ($3::t)) s GROUP BY b
Result<PageStatement> BuildDigestQuery(const TableSchema& table,
                                       const std::vector<std::string>& key, const KeyRange& range,
                                       const std::vector<Cursor>& splits);

/// Reconcile's lookup of keys (SourceConnection::FindKeys):
///   SELECT "k1", "k2" FROM "s"."t" WHERE ("k1", "k2") IN (($1::t1, $2::t2), …)
Result<PageStatement> BuildFindKeysQuery(const TableSchema& table,
                                         const std::vector<std::string>& key,
                                         const std::vector<Cursor>& keys);

/// The catalog query of Reflect: one row per column in attnum order; $1 is
/// QuotedTableName(). Columns: attname, base type (format_type), not null, typtype,
/// position in the primary key (NULL if none), reltuples, relkind.
extern const std::string kReflectSql;

/// The unique indexes of a table without a primary key ($1 is QuotedTableName()), one row
/// per key column (INCLUDE columns left out), by index name and position: index name,
/// column name (NULL for an expression), and why the index cannot be a key (NULL when it
/// can): not valid or not ready (a build that failed or is under way), partial, an
/// expression, a column compared under a collation not its own (nor one of "C", "POSIX" or
/// a "C" or "POSIX" database default where the column has another of them: those order the
/// same); and the index's collation, schema-qualified and quoted, where it is not the
/// column's (NULL otherwise).
extern const char* const kUniqueIndexesSql;

/// For a table Reflect did not find: up to three tables, views or foreign tables in any
/// schema named the same but for case; $1 is the schema given (empty when none), $2 the
/// table. Columns: schema, name, and whether the search_path finds it by its bare name;
/// those in the schema given first, then those named exactly so.
extern const char* const kSimilarTablesSql;

/// How a script's `from` names `schema`.`table` (the bare `table` when `schema` is empty): a
/// part holding a dot or a double quote is double-quoted (SplitTableName reads it back).
std::string FromSpelling(const std::string& schema, const std::string& table);

/// For a table Reflect did not find: where it was looked for. Columns: the session's
/// database, and the schemas of its search_path that exist, comma-separated.
extern const char* const kNotFoundWhereSql;

/// Where a table Reflect did not find was looked for, as kNotFoundWhereSql answered: the
/// database, and the search_path's schemas when `from` names no schema.
struct NotFoundWhere {
  std::string database;                    ///< empty: unknown (the look-up failed)
  std::optional<std::string> search_path;  ///< the schemas searched; none when `from` names one
};

/// The message of a table Reflect did not find (`from` as the script gave it), naming where
/// it was looked for and the `similar` tables kSimilarTablesSql found as `from` would name
/// them; `case_differs` when one differs from `from` in case.
std::string TableNotFoundMessage(const std::string& from, const NotFoundWhere& where,
                                 const std::vector<std::string>& similar, bool case_differs);

/// ReflectQuery's catalog query: for the columns of a query's result, given as arrays of
/// their type oids ($1), type modifiers ($2), and the table oid ($3) and attribute number
/// ($4) each comes from (0 when none), one row per column in order: base type
/// (format_type), not null (as the table column and its domain say), typtype, and whether
/// it is a view's (or a materialized view's) column as it is.
extern const char* const kQueryTypesSql;

/// The source's safe horizon (SafeHorizon), one row: the horizon (timestamptz), a
/// description of a write transaction open for over 60 s that no longer holds it back (NULL
/// when none), and whether the role sees other roles' transactions (when it does not, the
/// horizon is at least `settle_seconds` before now).
std::string HorizonSql(int settle_seconds);

/// The safe horizon of an integer cursor (one a sequence counts, say): the smallest value of
/// `column` (above $1 when `above`) on a row a transaction committed after the oldest write
/// transaction still open had begun writing, so one that commits late (its ids taken
/// earlier) is not skipped; NULL when there is none. Same three columns as HorizonSql. Not
/// for a query table (no row versions to read); a view fails with SQLSTATE 42703.
Result<std::string> CountedHorizonSql(const TableSchema& table, const std::string& column,
                                      bool above);

/// kReflectSql with HorizonSql's three columns added to every row: a run's reflection and
/// its horizon in one round trip.
std::string ReflectWithHorizonSql(int settle_seconds);

/// Session settings sent once after connecting (one round trip). The decoders rely on them.
extern const char* const kSessionSql;

}  // namespace siphon::postgres

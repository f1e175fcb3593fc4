#pragma once
#include <string>
#include <string_view>
#include <vector>

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

/// The catalog query of Reflect: one row per column in attnum order; $1 is
/// QuotedTableName(). Columns: attname, base type (format_type), not null, typtype,
/// position in the primary key (NULL if none), reltuples, relkind.
extern const char* const kReflectSql;

/// Session settings sent once after connecting (one round trip). The decoders rely on them.
extern const char* const kSessionSql;

}  // namespace siphon::postgres

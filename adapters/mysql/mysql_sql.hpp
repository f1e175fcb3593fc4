#pragma once
#include <array>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/base/key_digest.hpp"
#include "runtime/base/schema.hpp"
#include "runtime/base/status.hpp"

namespace siphon::mysql {

/// `name` quoted as a MySQL identifier: backticks, inner backticks doubled.
std::string QuoteIdent(std::string_view name);

/// A table as the script named it: "db.table" or "table" (the connection's database); a part
/// in backticks may hold a dot ("`a.b`", "db.`a.b`", a doubled backtick for one).
struct TableRef {
  std::string schema;  ///< empty = the current database
  std::string table;
};
TableRef SplitTableName(std::string_view qualified);
std::string QuotedTable(const TableRef& ref);

/// What a statement reads from: QuotedTable of the table, or for a query table
/// (TableSchema::query) the query as a sub-select, `(SELECT …\n) AS `_siphon_query``. The
/// line break ends a `-- ` or `#` comment the query may end with.
std::string FromClause(const TableSchema& table);

/// ReflectQuery's statement: `SELECT * FROM (query\n) AS `_siphon_query` LIMIT 0`, whose
/// result describes the query's columns as the pages will read them (running nothing).
std::string DescribeQuerySql(const std::string& query);

/// The character sets of a query's `columns` (CHARSET() of each, in order, in one row), which
/// its result's metadata does not give (the server describes text as the session's utf8mb4).
/// The query is joined in as `SELECT * FROM (query) … LIMIT 0`: it reads no rows.
std::string QueryCharsetsSql(const std::string& query, const std::vector<std::string>& columns);

/// Renders a string as a complete SQL literal ('…' with the connection's escaping).
using QuoteLiteral = std::function<std::string(std::string_view)>;

/// The page query's parameters as SQL literals: one per order_by column (the cursor), then,
/// when lookback applies, the lookback in microseconds. Every value is escaped by `quote` or
/// validated as a number; time cursor values are converted back to MySQL's form.
/// Errors: kType (a NULL or unusable cursor value), kSchema (an unknown column).
Result<std::vector<std::string>> PageParameters(const TableSchema& table, const PageQuery& query,
                                                const QuoteLiteral& quote);

/// The page query. `params` from PageParameters, or nullptr to show `?` placeholders.
///   SELECT `a`, `b` FROM `db`.`t` (or FromClause's sub-select)
///   WHERE `c1` >= ? AND (`c1` > ? OR (`c2` >= ? AND (`c2` > ? OR `c3` > ?)))
///   ORDER BY `c1`, `c2`, `c3` LIMIT n
/// The leading `c1 >= ?` gives MySQL an index range (a row comparison would not); the rest
/// is the exact keyset. With lookback: WHERE `c1` >= (? - INTERVAL ? MICROSECOND).
/// A FLOAT column is read as `f` + 0e0 AS `f`, a double holding its exact value (the text
/// protocol prints a FLOAT with six significant digits); decode it with MysqlDecoder::kFloat.
/// Every identifier must be a column of `table` (kSchema otherwise). After the columns come
/// the collation keys of CollationKeyColumns, in its order, then one check of each column of
/// CharsetCheckColumns, in its order: NULL, or the hex of the value's bytes when the server
/// sends it with a '?' for bytes that have no character.
Result<std::string> BuildPageSql(const TableSchema& table, const PageQuery& query,
                                 const std::vector<std::string>* params);

/// The order columns of a page whose values the server may hold equal though their bytes
/// differ, when rows of the page can share their order values (the order does not hold the
/// whole primary key): text under its collation, which ignores trailing spaces (PAD SPACE,
/// `_bin` collations too) and, when case- or accent-insensitive, more ('a', 'A', 'á' and
/// 'a ' are equal under utf8mb4_general_ci). The page selects a collation key for each:
///   TRIM(TRAILING WEIGHT_STRING(CONCAT(LEFT(`c`, 0), ' ') LEVEL 1)
///        FROM WEIGHT_STRING(`c` LEVEL 1))
/// the column's primary weights without those of trailing spaces: equal for every two
/// values the server holds equal (and for some it does not: NO PAD and case-sensitive
/// multi-level collations compare more, which only keeps more rows in one page). Empty when
/// rows cannot tie or every order column compares by its bytes. ENUM and SET columns compare
/// by member, not by collation.
std::vector<std::string> CollationKeyColumns(const TableSchema& table, const PageQuery& query);

/// The columns of a page (`columns`, or all of `table`'s when empty) whose text is in a
/// character set that may hold bytes without a UTF-8 equivalent (ColumnInfo::lossy_charset),
/// which the server would send as '?': the page checks each of their values.
std::vector<std::string> CharsetCheckColumns(const TableSchema& table,
                                             const std::vector<std::string>& columns);

/// Reconcile's digest query (SourceConnection::DigestKeys), values as escaped literals:
/// one row per non-empty part, (part, count, sum of the hashes' high halves, sum of their
/// low halves), over MD5(CONCAT_WS(CHAR(1), `k1`, …)) of the keys in the range. The range
/// uses the expanded keyset predicates (an index range); the parts a row comparison.
Result<std::string> DigestSql(const TableSchema& table, const std::vector<std::string>& key,
                              const KeyRange& range, const std::vector<Cursor>& splits,
                              const QuoteLiteral& quote);

/// Reconcile's lookup of keys (SourceConnection::FindKeys): `k` IN (…) for one key column,
/// (`k1` = … AND `k2` = …) OR … for several.
Result<std::string> FindKeysSql(const TableSchema& table, const std::vector<std::string>& key,
                                const std::vector<Cursor>& keys, const QuoteLiteral& quote);

/// The column of information_schema.STATISTICS that says the optimizer may not use an index:
/// MariaDB's IGNORED (10.6 and later), MySQL's IS_VISIBLE (8.0 and later), or none (older
/// servers have neither, and naming a column a server lacks fails the whole statement).
enum class HiddenIndexColumn { kNone, kIgnored, kInvisible };
/// The one the server has, from mariadb_connection() and mysql_get_server_version()
/// (100600 for 10.6.0, 80000 for 8.0.0).
HiddenIndexColumn HiddenIndexColumnOf(bool mariadb, unsigned long server_version);

/// One query returning, for `ref`, rows ('c', name, COLUMN_TYPE, DATA_TYPE, IS_NULLABLE,
/// ordinal, CHARACTER_SET_NAME), ('k', name, …, seq_in_index, …) for the primary key, ('u', column
/// (NULL for an expression), index, SUB_PART, INDEX_TYPE, seq_in_index, hidden) for the other
/// unique indexes, where hidden is "ignored" or "invisible" for an index the optimizer may not use
/// (by `hidden`'s column; NULL otherwise), and ('t', …, TABLE_ROWS, NULL).
/// With `horizon_local_time`, also ('h', HorizonSql's two columns, …) for that kind of
/// cursor: the safe horizon in the same statement (so it needs PROCESS too).
/// The rows come in no set order (OrderReflectedRows puts them in order): sorting them on
/// the server built a temporary table for every run, 14% of the reflection's server CPU.
std::string ReflectSql(const TableRef& ref, const QuoteLiteral& quote,
                       std::optional<bool> horizon_local_time = std::nullopt,
                       HiddenIndexColumn hidden = HiddenIndexColumn::kNone);

/// One row of ReflectSql's result, its seven cells as the server sent them.
using ReflectedRow = std::array<std::optional<std::string>, 7>;
/// Puts ReflectSql's rows in the order they are read in: by kind, then by the sixth cell as
/// a number (a column's ordinal, a key column's place in its index), as `ORDER BY 1, 6` did.
void OrderReflectedRows(std::vector<ReflectedRow>& rows);

/// How long an open write transaction may hold a run's upper bound back. Beyond it the
/// transaction is reported (HorizonSql's second column) and `lookback` is the defence, so a
/// session left idle in a transaction cannot stall replication.
constexpr int kHorizonMaxHoldSeconds = 60;

/// The safe horizon query (MariaDB's and MySQL's information_schema.INNODB_TRX; needs the
/// PROCESS privilege, error 1227 otherwise). One row:
///   1. the start of the oldest write transaction of another session, opened less than
///      kHorizonMaxHoldSeconds ago, else NOW(6): 'YYYY-MM-DD HH:MM:SS.ffffff';
///   2. NULL, or a description of the oldest write transaction older than that (ignored).
/// Transactions count as writing when they modified or locked something or wait for a
/// lock; read-only ones never hold replication back. With `local_time` (a DATETIME cursor,
/// which holds the writers' local time) column 1 is in the server's default time zone
/// (@@global.time_zone, what NOW() gives an application session); else in UTC (a
/// TIMESTAMP cursor, which the session reads in '+00:00').
std::string HorizonSql(bool local_time);

/// The horizon for a user that cannot see other sessions' transactions (no PROCESS): NOW(6)
/// minus `settle_seconds`, as HorizonSql's two columns (the second NULL), in the same time
/// zone as HorizonSql's for `local_time`.
std::string SettleHorizonSql(bool local_time, int settle_seconds);

/// Whether a cursor on a column of this COLUMN_TYPE is bounded by the safe horizon: the
/// column must hold times the server stamps (DATETIME, TIMESTAMP), not dates.
bool HorizonApplies(std::string_view column_type);

/// The error kind of a MySQL client or server error number.
ErrorKind ErrorKindFor(unsigned error_number);

/// "context: message (MySQL error N)", with `password` (when not empty) masked.
Status MysqlStatus(unsigned error_number, std::string_view message, std::string_view context,
                   std::string_view password);

}  // namespace siphon::mysql

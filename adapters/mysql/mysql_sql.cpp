#include "adapters/mysql/mysql_sql.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <variant>

#include "adapters/mysql/mysql_types.hpp"
#include "runtime/base/ascii.hpp"
#include "runtime/base/hex.hpp"

namespace siphon::mysql {

namespace {

// A number the server parses as a numeric literal: [-+]digits[.digits][e[-+]digits].
bool IsNumericLiteral(std::string_view s) {
  size_t i = 0;
  if (i < s.size() && (s[i] == '-' || s[i] == '+')) ++i;
  size_t digits = 0;
  while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i, ++digits;
  if (i < s.size() && s[i] == '.') {
    ++i;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i, ++digits;
  }
  if (digits == 0) return false;
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '-' || s[i] == '+')) ++i;
    size_t exp = 0;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i, ++exp;
    if (exp == 0) return false;
  }
  return i == s.size();
}

Status UnknownColumn(const TableSchema& table, std::string_view column) {
  return Status(ErrorKind::kSchema,
                "column \"" + std::string(column) + "\" not found in " + table.qualified_name);
}

// An ENUM of at most this many members is compared as a list of member positions.
constexpr uint64_t kMaxEnumList = 64;

// `column op value`. An ENUM's value is its member's position (CursorLiteral), which the
// server compares by position, as it orders, but reads as an index range only as a list
// (`c IN (2, 3)`, not `c >= 2`): `members` > 0 gives that list for an ENUM of that many.
std::string Compare(const std::string& column, std::string_view op, const std::string& value,
                    uint64_t members) {
  uint64_t n = 0;
  if (members == 0 || members > kMaxEnumList ||
      std::from_chars(value.data(), value.data() + value.size(), n).ec != std::errc() ||
      n > members) {
    return column + " " + std::string(op) + " " + value;
  }
  uint64_t from = 0, to = members;  // position 0: '', an invalid value
  if (op == ">=") from = n;
  if (op == ">") from = n + 1;
  if (op == "<=") to = n;
  if (op == "<") {
    if (n == 0) return "FALSE";
    to = n - 1;
  }
  if (from > to) return "FALSE";
  std::string list;
  for (uint64_t i = from; i <= to; ++i) list += (i == from ? "" : ", ") + std::to_string(i);
  return column + " IN (" + list + ")";
}

// The expanded keyset predicate over columns `cols`: key > values (`greater`) or key <= values,
//   P(i) = c_i >= v_i AND (c_i > v_i OR P(i+1)); P(last) = c_last > v_last (or the <=, <
// forms), whose leading condition gives MySQL an index range (a row comparison would not).
// `members[i]`, when given, is the number of members of an ENUM column (0 for another).
std::string Keyset(const std::vector<std::string>& cols, const std::vector<std::string>& values,
                   bool greater, const std::vector<uint64_t>& members = {}) {
  auto m = [&](size_t i) { return i < members.size() ? members[i] : 0; };
  const char* wide = greater ? ">=" : "<=";
  const char* strict = greater ? ">" : "<";
  const size_t last = cols.size() - 1;
  std::string predicate = Compare(cols[last], greater ? ">" : "<=", values[last], m(last));
  for (size_t i = last; i-- > 0;) {
    predicate = Compare(cols[i], wide, values[i], m(i)) + " AND (" +
                Compare(cols[i], strict, values[i], m(i)) + " OR " +
                (i + 2 == cols.size() ? predicate : "(" + predicate + ")") + ")";
  }
  return predicate;
}

// The member count of an ENUM column (for Keyset), 0 for any other column.
uint64_t EnumSize(const ColumnInfo& column) {
  if (AsciiLower(column.source_type).rfind("enum(", 0) != 0) return 0;
  std::optional<std::vector<std::string>> members = EnumMembers(column.source_type);
  return members ? members->size() : 0;
}

}  // namespace

std::string QuoteIdent(std::string_view name) {
  std::string out = "`";
  for (char c : name) {
    if (c == '`') out.push_back('`');
    out.push_back(c);
  }
  out.push_back('`');
  return out;
}

namespace {

// One part of a table name, from `at`: an identifier in backticks (a doubled backtick for
// one), which may hold dots, or the text up to the next dot. False for an unclosed quote.
bool NamePart(std::string_view name, size_t& at, std::string& out) {
  if (at < name.size() && name[at] == '`') {
    for (size_t i = at + 1; i < name.size(); ++i) {
      if (name[i] != '`') {
        out.push_back(name[i]);
      } else if (i + 1 < name.size() && name[i + 1] == '`') {
        out.push_back('`');
        ++i;
      } else {
        at = i + 1;
        return true;
      }
    }
    return false;
  }
  size_t end = std::min(name.find('.', at), name.size());
  out.assign(name.substr(at, end - at));
  at = end;
  return true;
}

}  // namespace

TableRef SplitTableName(std::string_view qualified) {
  std::string first, second;
  size_t at = 0;
  if (NamePart(qualified, at, first)) {
    if (at == qualified.size()) return {"", first};
    if (qualified[at] == '.' && NamePart(qualified, ++at, second) && at == qualified.size()) {
      return {first, second};
    }
  }
  // Not a name MySQL would read: taken as it is, split at its first dot.
  size_t dot = qualified.find('.');
  if (dot == std::string_view::npos) return {"", std::string(qualified)};
  return {std::string(qualified.substr(0, dot)), std::string(qualified.substr(dot + 1))};
}

std::string QuotedTable(const TableRef& ref) {
  if (ref.schema.empty()) return QuoteIdent(ref.table);
  return QuoteIdent(ref.schema) + "." + QuoteIdent(ref.table);
}

std::string FromClause(const TableSchema& table) {
  if (!table.query.empty()) return "(" + table.query + "\n) AS `_siphon_query`";
  return QuotedTable(SplitTableName(table.qualified_name));
}

std::string DescribeQuerySql(const std::string& query) {
  TableSchema shell;
  shell.query = query;
  return "SELECT * FROM " + FromClause(shell) + " LIMIT 0";
}

std::string QueryCharsetsSql(const std::string& query, const std::vector<std::string>& columns) {
  std::string sql = "SELECT ";
  for (size_t i = 0; i < columns.size(); ++i) {
    sql +=
        (i ? ", " : "") + std::string("CHARSET(`_siphon_columns`.") + QuoteIdent(columns[i]) + ")";
  }
  // Outer-joined to one row, so the columns' types answer though the query gives no row.
  return sql + " FROM (SELECT 1) AS `_siphon_one` LEFT JOIN (" + DescribeQuerySql(query) +
         ") AS `_siphon_columns` ON TRUE";
}

namespace {

// One cursor value of `column` as a SQL literal (see PageParameters).
Result<std::string> CursorLiteral(const ColumnInfo& column, const CursorValue& v,
                                  const QuoteLiteral& quote) {
  if (const int64_t* n = std::get_if<int64_t>(&v)) return std::to_string(*n);
  if (const double* d = std::get_if<double>(&v)) {
    if (!std::isfinite(*d)) {
      return Status(ErrorKind::kType, "cursor value of \"" + column.name + "\" is not finite");
    }
    char buf[32];
    snprintf(buf, sizeof buf, "%.17g", *d);
    return std::string(buf);
  }
  if (const std::string* s = std::get_if<std::string>(&v)) {
    if (column.order == OrderKind::kNumber) {
      // Wide integers and decimals travel as text; a numeric literal keeps the comparison
      // exact and numeric (a quoted string would be compared as a double).
      if (!IsNumericLiteral(*s)) {
        return Status(ErrorKind::kType, "cursor value of numeric column \"" + column.name +
                                            "\" is not a number: " + *s);
      }
      return *s;
    }
    if (column.order == OrderKind::kTime) return quote(TimeForMysql(*s));
    if (std::optional<std::vector<std::string>> members = EnumMembers(column.source_type)) {
      // Compared by the number the server orders it by, not as text (mysql_types.cpp).
      const bool set = AsciiLower(column.source_type).rfind("set(", 0) == 0;
      std::optional<uint64_t> n = EnumNumber(*members, set, *s);
      if (!n) {
        return Status(ErrorKind::kType, "cursor value of \"" + column.name +
                                            "\" is not a value of " + column.source_type + ": " +
                                            *s);
      }
      return std::to_string(*n);
    }
    return quote(*s);
  }
  if (const Bytes* b = std::get_if<Bytes>(&v)) {
    // A hex literal is a binary string: a BINARY or VARBINARY column compares it byte by byte.
    std::string literal = "X'";
    AppendHex(literal, b->data);
    return literal + "'";
  }
  return Status(ErrorKind::kType, "cursor value of \"" + column.name + "\" is NULL");
}

Status AppendAfterParameters(const TableSchema& table, const PageQuery& query,
                             const QuoteLiteral& quote, std::vector<std::string>& params) {
  if (!query.after) return Status::Ok();
  const Cursor& after = *query.after;
  if (after.size() != query.order_by.size()) {
    return Status(ErrorKind::kType, "cursor of " + table.qualified_name + " has " +
                                        std::to_string(after.size()) + " values for " +
                                        std::to_string(query.order_by.size()) + " order columns");
  }
  for (size_t i = 0; i < after.size(); ++i) {
    int idx = table.Find(query.order_by[i]);
    if (idx < 0) return UnknownColumn(table, query.order_by[i]);
    Result<std::string> literal = CursorLiteral(table.columns[idx], after[i], quote);
    if (!literal.ok()) return literal.status();
    params.push_back(std::move(*literal));
  }
  if (query.lookback_seconds) {
    params.push_back(std::to_string(std::llround(*query.lookback_seconds * 1e6)));
  }
  return Status::Ok();
}

}  // namespace

Result<std::vector<std::string>> PageParameters(const TableSchema& table, const PageQuery& query,
                                                const QuoteLiteral& quote) {
  std::vector<std::string> params;
  if (Status st = AppendAfterParameters(table, query, quote, params); !st.ok()) return st;
  if (query.before && !query.order_by.empty()) {
    int idx = table.Find(query.order_by[0]);
    if (idx < 0) return UnknownColumn(table, query.order_by[0]);
    Result<std::string> literal = CursorLiteral(table.columns[idx], *query.before, quote);
    if (!literal.ok()) return literal.status().WithContext("safe horizon");
    params.push_back(std::move(*literal));
  }
  return params;
}

std::vector<std::string> CollationKeyColumns(const TableSchema& table, const PageQuery& query) {
  std::vector<std::string> out;
  if (table.OrderIsUnique(query.order_by)) return out;
  for (const auto& name : query.order_by) {
    int idx = table.Find(name);
    if (idx < 0 || table.columns[idx].order != OrderKind::kText) continue;
    const std::string type = AsciiLower(table.columns[idx].source_type);
    if (type.rfind("enum(", 0) == 0 || type.rfind("set(", 0) == 0) continue;
    // The server prints equal times alike ('-00:00:00.500000'): their bytes tell them apart.
    if (type.rfind("time", 0) == 0) continue;
    out.push_back(name);
  }
  return out;
}

std::vector<std::string> CharsetCheckColumns(const TableSchema& table,
                                             const std::vector<std::string>& columns) {
  std::vector<std::string> out;
  auto add = [&](const ColumnInfo& c) {
    if (!c.lossy_charset.empty()) out.push_back(c.name);
  };
  if (columns.empty()) {
    for (const auto& c : table.columns) add(c);
  }
  for (const auto& name : columns) {
    if (int idx = table.Find(name); idx >= 0) add(table.columns[idx]);
  }
  return out;
}

Result<std::string> BuildPageSql(const TableSchema& table, const PageQuery& query,
                                 const std::vector<std::string>* params) {
  std::vector<std::string> columns = query.columns;
  if (columns.empty()) {
    for (const auto& c : table.columns) columns.push_back(c.name);
  }
  std::string sql = "SELECT ";
  for (size_t i = 0; i < columns.size(); ++i) {
    int idx = table.Find(columns[i]);
    if (idx < 0) return UnknownColumn(table, columns[i]);
    if (i) sql += ", ";
    sql += QuoteIdent(columns[i]);
    // The text protocol prints a FLOAT with six significant digits; as a double it is exact.
    if (IsSingleFloat(table.columns[idx].source_type)) {
      sql += " + 0e0 AS " + QuoteIdent(columns[i]);
    }
  }
  for (const auto& name : CollationKeyColumns(table, query)) {
    const std::string c = QuoteIdent(name);
    sql += ", TRIM(TRAILING WEIGHT_STRING(CONCAT(LEFT(" + c + ", 0), ' ') LEVEL 1) FROM " +
           "WEIGHT_STRING(" + c + " LEVEL 1))";
  }
  for (const auto& name : CharsetCheckColumns(table, query.columns)) {
    // A byte without a character reaches a utf8mb4 session as '?', silently: such a value
    // holds more '?' once converted than it did. Most values hold none, which LOCATE tells
    // at once.
    const std::string c = QuoteIdent(name);
    const std::string utf8 = "CONVERT(" + c + " USING utf8mb4)";
    sql += ", IF(LOCATE('?', " + utf8 + ") > 0 AND CHAR_LENGTH(" + utf8 +
           ") - CHAR_LENGTH(REPLACE(" + utf8 + ", '?', '')) > CHAR_LENGTH(" + c +
           ") - CHAR_LENGTH(REPLACE(" + c + ", '?', '')), HEX(" + c + "), NULL)";
  }
  sql += " FROM " + FromClause(table);
  std::vector<std::string> order;
  for (const auto& name : query.order_by) {
    if (table.Find(name) < 0) return UnknownColumn(table, name);
    order.push_back(QuoteIdent(name));
  }
  auto param = [&](size_t i) -> std::string {
    return params && i < params->size() ? (*params)[i] : std::string("?");
  };
  if (query.after && !order.empty()) {
    if (query.lookback_seconds) {
      // The first page of a run re-reads a window behind the watermark; the tie-breaking
      // columns do not apply (the window may hold rows before and after the last key). A zero
      // date minus an interval is NULL, which would match nothing: the window starts at it.
      sql += " WHERE " + order[0] + " >= COALESCE(" + param(0) + " - INTERVAL " +
             param(order.size()) + " MICROSECOND, " + param(0) + ")";
    } else {
      std::vector<std::string> values;
      std::vector<uint64_t> members;
      for (size_t i = 0; i < order.size(); ++i) {
        values.push_back(param(i));
        members.push_back(EnumSize(table.columns[table.Find(query.order_by[i])]));
      }
      sql += " WHERE " + Keyset(order, values, true, members);
    }
  }
  if (query.before && !order.empty()) {
    // The safe horizon: nothing at or beyond it is read this run. Its parameter follows the
    // cursor's (and the lookback's).
    size_t at = query.after ? order.size() + (query.lookback_seconds ? 1 : 0) : 0;
    // Every keyset predicate above is a conjunction at its top level (its ORs are inside
    // parentheses), so the bound can simply be AND-ed on.
    sql += std::string(query.after ? " AND " : " WHERE ") + order[0] + " < " + param(at);
  }
  if (!order.empty()) {
    sql += " ORDER BY ";
    for (size_t i = 0; i < order.size(); ++i) {
      if (i) sql += ", ";
      sql += order[i];
    }
  }
  sql += " LIMIT " + std::to_string(query.limit);
  return sql;
}

namespace {

// The key columns (quoted) and a key's values as literals.
struct KeyLiterals {
  std::vector<std::string> columns;
  std::vector<const ColumnInfo*> info;
};

Result<KeyLiterals> KeyColumns(const TableSchema& table, const std::vector<std::string>& key) {
  KeyLiterals out;
  for (const auto& k : key) {
    int idx = table.Find(k);
    if (idx < 0) return UnknownColumn(table, k);
    out.columns.push_back(QuoteIdent(k));
    out.info.push_back(&table.columns[idx]);
  }
  if (out.columns.empty()) return Status(ErrorKind::kSchema, table.qualified_name + " has no key");
  return out;
}

Result<std::vector<std::string>> Literals(const KeyLiterals& key, const Cursor& values,
                                          const QuoteLiteral& quote) {
  if (values.size() != key.columns.size()) {
    return Status(ErrorKind::kType, "a key value has " + std::to_string(values.size()) +
                                        " parts for " + std::to_string(key.columns.size()) +
                                        " key columns");
  }
  std::vector<std::string> out;
  for (size_t i = 0; i < values.size(); ++i) {
    Result<std::string> literal = CursorLiteral(*key.info[i], values[i], quote);
    if (!literal.ok()) return literal.status();
    out.push_back(std::move(*literal));
  }
  return out;
}

std::string Tuple(const std::vector<std::string>& parts) {
  std::string out = "(";
  for (size_t i = 0; i < parts.size(); ++i) out += (i ? ", " : "") + parts[i];
  return out + ")";
}

}  // namespace

Result<std::string> DigestSql(const TableSchema& table, const std::vector<std::string>& key,
                              const KeyRange& range, const std::vector<Cursor>& splits,
                              const QuoteLiteral& quote) {
  auto cols = KeyColumns(table, key);
  if (!cols.ok()) return cols.status();
  std::string part = "0";
  if (!splits.empty()) {
    part = "CASE";
    for (size_t i = 0; i < splits.size(); ++i) {
      auto values = Literals(*cols, splits[i], quote);
      if (!values.ok()) return values.status();
      part +=
          " WHEN " + Tuple(cols->columns) + " <= " + Tuple(*values) + " THEN " + std::to_string(i);
    }
    part += " ELSE " + std::to_string(splits.size()) + " END";
  }
  std::vector<uint64_t> members;
  for (const ColumnInfo* c : cols->info) members.push_back(EnumSize(*c));
  std::string where;
  if (range.after) {
    auto values = Literals(*cols, *range.after, quote);
    if (!values.ok()) return values.status();
    where = " WHERE " + Keyset(cols->columns, *values, true, members);
  }
  if (range.upto) {
    auto values = Literals(*cols, *range.upto, quote);
    if (!values.ok()) return values.status();
    where += (where.empty() ? " WHERE " : " AND (") +
             Keyset(cols->columns, *values, false, members) + (range.after ? ")" : "");
  }
  // Digested as UTF-8, as the replica holds the key (a latin1 column's bytes are not). The
  // separator is text, not a binary string, which would make the whole a binary string.
  // A binary key is digested as "\\x" and its hex digits, as the replica's blob is.
  std::string text = "CONVERT(CONCAT_WS(CHAR(1 USING utf8mb4)";
  for (size_t i = 0; i < cols->columns.size(); ++i) {
    const std::string& c = cols->columns[i];
    text += cols->info[i]->order == OrderKind::kBytes
                ? ", CONCAT(CHAR(92, 120 USING utf8mb4), LOWER(HEX(" + c + ")))"
                : ", " + c;
  }
  text += ") USING utf8mb4)";
  auto half = [](int from) {
    return "CAST(SUM(CAST(CONV(SUBSTR(h, " + std::to_string(from) +
           ", 8), 16, 10) AS UNSIGNED)) AS CHAR)";
  };
  return "SELECT b, COUNT(*), " + half(1) + ", " + half(9) + " FROM (SELECT " + part +
         " AS b, MD5(" + text + ") AS h FROM " + FromClause(table) + where + ") s GROUP BY b";
}

Result<std::string> FindKeysSql(const TableSchema& table, const std::vector<std::string>& key,
                                const std::vector<Cursor>& keys, const QuoteLiteral& quote) {
  auto cols = KeyColumns(table, key);
  if (!cols.ok()) return cols.status();
  std::string where;
  for (const Cursor& k : keys) {
    auto values = Literals(*cols, k, quote);
    if (!values.ok()) return values.status();
    if (cols->columns.size() == 1) {
      where += (where.empty() ? "" : ", ") + (*values)[0];
    } else {
      std::string match;
      for (size_t i = 0; i < values->size(); ++i) {
        match += (i ? " AND " : "") + cols->columns[i] + " = " + (*values)[i];
      }
      where += (where.empty() ? "(" : " OR (") + match + ")";
    }
  }
  std::string select;
  for (size_t i = 0; i < cols->columns.size(); ++i) select += (i ? ", " : "") + cols->columns[i];
  std::string sql = "SELECT " + select + " FROM " + FromClause(table);
  if (keys.empty()) return sql + " WHERE FALSE";
  if (cols->columns.size() == 1) return sql + " WHERE " + select + " IN (" + where + ")";
  return sql + " WHERE " + where;
}

namespace {

// The start of the INNODB_TRX row `alias` in UTC, like the session's NOW(): InnoDB writes
// trx_started in the server's system time zone (localtime), whatever the session's.
std::string StartedUtc(const char* alias) {
  return std::string("CONVERT_TZ(") + alias + ".trx_started, 'SYSTEM', '+00:00')";
}

// HorizonSql's two columns and the rest of its statement, so a reflection can bring the same
// row along.
std::string HorizonColumns(bool local_time) {
  const std::string hold = std::to_string(kHorizonMaxHoldSeconds);
  // A transaction's start is a lower bound of every NOW() its statements stamp; trx_started
  // has whole seconds, truncated, so it stays a lower bound.
  const std::string started = StartedUtc("t");
  std::string bound = "LEAST(h.now, COALESCE(MIN(IF(" + started + " > h.now - INTERVAL " + hold +
                      " SECOND, " + started + ", NULL)), h.now))";
  if (local_time) bound = "CONVERT_TZ(" + bound + ", '+00:00', @@global.time_zone)";
  return "DATE_FORMAT(" + bound +
         ", '%Y-%m-%d %H:%i:%s.%f'), "
         "(SELECT CONCAT('thread ', o.trx_mysql_thread_id, ', user ', COALESCE(p.USER, '?'), "
         "', host ', COALESCE(p.HOST, '?'), ', ', o.trx_state, ' since ', " +
         StartedUtc("o") +
         ", ' UTC') "
         "FROM information_schema.INNODB_TRX o LEFT JOIN information_schema.PROCESSLIST p "
         "ON p.ID = o.trx_mysql_thread_id "
         "WHERE o.trx_mysql_thread_id <> CONNECTION_ID() AND o.trx_is_read_only = 0 "
         "AND (o.trx_rows_modified > 0 OR o.trx_tables_locked > 0 OR o.trx_state = 'LOCK WAIT') "
         "AND (p.DB = DATABASE() OR p.DB IS NULL) AND " +
         StartedUtc("o") + " <= h.now - INTERVAL " + hold +
         " SECOND ORDER BY o.trx_started LIMIT 1)";
}

// Transactions of sessions whose default database is this one, or none, count. InnoDB does
// not say which tables a transaction wrote, and a session writes anywhere by qualified name:
// one connected without a database (an admin script, `mysql` without -D) was missed and its
// row lost. One whose default database is another is still not seen (`lookback` covers it):
// counting every transaction on the server would hold every replica back behind any long
// transaction anywhere, as PostgreSQL's datname filter avoids.
constexpr const char* kHorizonFrom =
    " FROM (SELECT NOW(6) AS now) h LEFT JOIN information_schema.INNODB_TRX t "
    "ON t.trx_mysql_thread_id <> CONNECTION_ID() AND t.trx_is_read_only = 0 "
    "AND (t.trx_rows_modified > 0 OR t.trx_tables_locked > 0 OR t.trx_state = 'LOCK WAIT') "
    "AND t.trx_mysql_thread_id IN "
    "(SELECT ID FROM information_schema.PROCESSLIST WHERE DB = DATABASE() OR DB IS NULL) "
    "GROUP BY h.now";

}  // namespace

HiddenIndexColumn HiddenIndexColumnOf(bool mariadb, unsigned long server_version) {
  if (mariadb) {
    return server_version >= 100600 ? HiddenIndexColumn::kIgnored : HiddenIndexColumn::kNone;
  }
  return server_version >= 80000 ? HiddenIndexColumn::kInvisible : HiddenIndexColumn::kNone;
}

std::string ReflectSql(const TableRef& ref, const QuoteLiteral& quote,
                       std::optional<bool> horizon_local_time, HiddenIndexColumn hidden) {
  std::string schema = ref.schema.empty() ? std::string("DATABASE()") : quote(ref.schema);
  std::string where = "TABLE_SCHEMA = " + schema + " AND TABLE_NAME = " + quote(ref.table);
  // An index the optimizer may not use (ALTER INDEX … IGNORED on MariaDB, INVISIBLE on
  // MySQL) still keeps its rows unique, but no page could be read through it: every page
  // would sort the table.
  const char* hidden_sql =
      hidden == HiddenIndexColumn::kIgnored     ? "IF(IGNORED = 'YES', 'ignored', NULL)"
      : hidden == HiddenIndexColumn::kInvisible ? "IF(IS_VISIBLE = 'NO', 'invisible', NULL)"
                                                : "NULL";
  // The horizon goes first: a user without PROCESS is refused before any row is sent, and
  // the connection can ask again without it (a refusal mid-result would end the session).
  std::string sql;
  if (horizon_local_time) {
    sql = "SELECT 'h', " + HorizonColumns(*horizon_local_time) + ", NULL, NULL, NULL, NULL" +
          kHorizonFrom + " UNION ALL ";
  }
  sql +=
      "SELECT 'c', COLUMN_NAME, COLUMN_TYPE, DATA_TYPE, IS_NULLABLE, ORDINAL_POSITION, "
      "CHARACTER_SET_NAME FROM information_schema.COLUMNS WHERE " +
      where +
      // The primary key, and the other unique indexes for a table without one, read in one
      // pass over STATISTICS (a second pass made a reflection 29% slower, one 7%). A
      // functional key part (MySQL 8) has no COLUMN_NAME; SUB_PART is a prefix's length.
      " UNION ALL SELECT IF(INDEX_NAME = 'PRIMARY', 'k', 'u'), COLUMN_NAME, INDEX_NAME, "
      "SUB_PART, INDEX_TYPE, SEQ_IN_INDEX, " +
      hidden_sql + " FROM information_schema.STATISTICS WHERE " + where +
      " AND NON_UNIQUE = 0"
      " UNION ALL SELECT 't', TABLE_TYPE, NULL, NULL, NULL, TABLE_ROWS, NULL "
      "FROM information_schema.TABLES WHERE " +
      where;
  return sql;
}

void OrderReflectedRows(std::vector<ReflectedRow>& rows) {
  auto place = [](const ReflectedRow& row) {
    return row[5] ? std::strtoll(row[5]->c_str(), nullptr, 10) : 0;
  };
  std::stable_sort(rows.begin(), rows.end(), [&](const ReflectedRow& a, const ReflectedRow& b) {
    const std::string_view kind_a = a[0] ? std::string_view(*a[0]) : std::string_view();
    const std::string_view kind_b = b[0] ? std::string_view(*b[0]) : std::string_view();
    if (kind_a != kind_b) return kind_a < kind_b;
    return place(a) < place(b);
  });
}

std::string HorizonSql(bool local_time) {
  return "SELECT " + HorizonColumns(local_time) + kHorizonFrom;
}

std::string SettleHorizonSql(bool local_time, int settle_seconds) {
  std::string bound = "NOW(6) - INTERVAL " + std::to_string(settle_seconds) + " SECOND";
  if (local_time) bound = "CONVERT_TZ(" + bound + ", '+00:00', @@global.time_zone)";
  return "SELECT DATE_FORMAT(" + bound + ", '%Y-%m-%d %H:%i:%s.%f'), NULL";
}

bool HorizonApplies(std::string_view column_type) {
  const std::string lower = AsciiLower(column_type);
  return lower.rfind("datetime", 0) == 0 || lower.rfind("timestamp", 0) == 0;
}

ErrorKind ErrorKindFor(unsigned error_number) {
  switch (error_number) {
    case 1044:  // ER_DBACCESS_DENIED_ERROR
    case 1045:  // ER_ACCESS_DENIED_ERROR
    case 1142:  // ER_TABLEACCESS_DENIED_ERROR
    case 1143:  // ER_COLUMNACCESS_DENIED_ERROR
    case 1698:  // ER_ACCESS_DENIED_NO_PASSWORD_ERROR
    case 1130:  // ER_HOST_NOT_PRIVILEGED: this host may not connect as this user
    case 1251:  // ER_NOT_SUPPORTED_AUTH_MODE
    case 2059:  // CR_AUTH_PLUGIN_CANNOT_LOAD
    case 1820:  // ER_MUST_CHANGE_PASSWORD
    case 1862:  // ER_MUST_CHANGE_PASSWORD_LOGIN: the password expired
    case 3118:  // ER_ACCOUNT_HAS_BEEN_LOCKED (MySQL)
    case 4151:  // ER_ACCOUNT_HAS_BEEN_LOCKED (MariaDB)
      return ErrorKind::kAuth;
    case 1040:  // ER_CON_COUNT_ERROR
    case 1053:  // ER_SERVER_SHUTDOWN
    case 1927:  // ER_CONNECTION_KILLED (MariaDB)
    case 2002:  // CR_CONNECTION_ERROR
    case 2003:  // CR_CONN_HOST_ERROR
    case 2005:  // CR_UNKNOWN_HOST
    case 2006:  // CR_SERVER_GONE_ERROR
    case 2013:  // CR_SERVER_LOST
    case 2026:  // CR_SSL_CONNECTION_ERROR
    case 2055:  // CR_SERVER_LOST_EXTENDED
    case 4031:  // ER_CLIENT_INTERACTION_TIMEOUT (MySQL 8)
      return ErrorKind::kConnect;
    case 1064:  // ER_PARSE_ERROR (in a `query`)
    case 1049:  // ER_BAD_DB_ERROR: `database` names none (exit 2, as PostgreSQL's 3D000)
      return ErrorKind::kConfig;
    // Asking again gets the same answer: the statement names what is not there, or says
    // what cannot be.
    case 1054:  // ER_BAD_FIELD_ERROR
    case 1146:  // ER_NO_SUCH_TABLE
    case 1356:  // ER_VIEW_INVALID: a view over a table or column dropped since
    case 1052:  // ER_NON_UNIQ_ERROR: an ambiguous column
    case 1055:  // ER_WRONG_FIELD_WITH_GROUP (ONLY_FULL_GROUP_BY)
    case 1066:  // ER_NONUNIQ_TABLE: a table or alias named twice
    case 1109:  // ER_UNKNOWN_TABLE
    case 1111:  // ER_INVALID_GROUP_FUNC_USE
    case 1222:  // ER_WRONG_NUMBER_OF_COLUMNS_IN_SELECT (a UNION)
    case 1235:  // ER_NOT_SUPPORTED_YET
    case 1241:  // ER_OPERAND_COLUMNS
    case 1242:  // ER_SUBQUERY_NO_1_ROW
    case 1248:  // ER_DERIVED_MUST_HAVE_ALIAS
    case 1305:  // ER_SP_DOES_NOT_EXIST: no such function
    case 1582:  // ER_WRONG_PARAMCOUNT_TO_NATIVE_FCT
    case 1630:  // ER_FUNC_INEXISTENT_NAME_COLLISION
    case 1792:  // ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION
      return ErrorKind::kSchema;
    case 1292:  // ER_TRUNCATED_WRONG_VALUE
    case 1365:  // ER_DIVISION_BY_ZERO
    case 1366:  // ER_TRUNCATED_WRONG_VALUE_FOR_FIELD
    case 1690:  // ER_DATA_OUT_OF_RANGE
      return ErrorKind::kType;
    default:
      return ErrorKind::kQuery;
  }
}

Status MysqlStatus(unsigned error_number, std::string_view message, std::string_view context,
                   std::string_view password) {
  std::string text(message);
  if (!password.empty()) {
    for (size_t at = text.find(password); at != std::string::npos; at = text.find(password, at)) {
      text.replace(at, password.size(), "***");
      at += 3;
    }
  }
  std::string full = std::string(context);
  if (!full.empty()) full += ": ";
  full += text + " (MySQL error " + std::to_string(error_number) + ")";
  return Status(ErrorKindFor(error_number), full);
}

}  // namespace siphon::mysql

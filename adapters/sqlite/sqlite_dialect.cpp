#include "adapters/sqlite/sqlite_dialect.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <ctime>

namespace siphon::sqlite_source {

namespace {

std::string Upper(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

bool Contains(const std::string& s, const char* part) {
  return s.find(part) != std::string::npos;
}

Status UnknownColumn(const TableSchema& table, std::string_view column) {
  return Status(ErrorKind::kSchema,
                "column \"" + std::string(column) + "\" not found in " + table.qualified_name);
}

}  // namespace

SqliteTypeClass ClassifyDeclaredType(std::string_view declared) {
  std::string t = Upper(declared);
  // The affinity rules, in SQLite's order.
  if (Contains(t, "INT")) return {ColumnType::kInteger, OrderKind::kNumber};
  if (Contains(t, "CHAR") || Contains(t, "CLOB") || Contains(t, "TEXT")) {
    return {ColumnType::kText, OrderKind::kText};
  }
  // An untyped column holds numbers, text and blobs side by side, and SQLite orders them so
  // (numbers, then text, then blobs) in ORDER BY and in a keyset comparison alike: it can be a
  // key or cursor column, a blob binding as a blob.
  if (t.empty()) return {ColumnType::kBlob, OrderKind::kNumber};
  if (Contains(t, "BLOB")) return {ColumnType::kBlob, OrderKind::kBytes};
  if (Contains(t, "REAL") || Contains(t, "FLOA") || Contains(t, "DOUB")) {
    return {ColumnType::kReal, OrderKind::kNumber};
  }
  // NUMERIC affinity: a date or time is ISO text, a unix time (integer) or a Julian day
  // (real), side by side in one column; a column without affinity keeps each as it is (a TEXT
  // one would turn 1700000000 into '1700000000').
  if (Contains(t, "DATE") || Contains(t, "TIMESTAMP")) return {ColumnType::kAny, OrderKind::kTime};
  if (Contains(t, "TIME")) return {ColumnType::kAny, OrderKind::kOther};
  if (Contains(t, "BOOL")) return {ColumnType::kInteger, OrderKind::kOther};
  // NUMERIC affinity holds integers and reals side by side; a BLOB-affinity target column
  // keeps each as it is (a REAL one would turn 10 into 10.0).
  return {ColumnType::kAny, OrderKind::kNumber};
}

bool IsRowidType(std::string_view declared) {
  return Upper(declared) == "INTEGER";
}

std::string QuoteIdent(std::string_view name) {
  std::string out = "\"";
  for (char c : name) {
    if (c == '"') out.push_back('"');
    out.push_back(c);
  }
  out.push_back('"');
  return out;
}

TableRef SplitTableName(std::string_view qualified) {
  // A source connection attaches nothing: "main" and "temp" are its only schemas, and any
  // other dot is part of the table's name ("app.events").
  size_t dot = qualified.find('.');
  if (dot != std::string_view::npos) {
    std::string schema = Upper(qualified.substr(0, dot));
    if (schema == "MAIN" || schema == "TEMP") {
      return {std::string(qualified.substr(0, dot)), std::string(qualified.substr(dot + 1))};
    }
  }
  return {"main", std::string(qualified)};
}

std::string From(const TableSchema& table) {
  // The line break ends a `--` comment the query may end with.
  if (!table.query.empty()) return "(" + table.query + "\n) AS \"_siphon_query\"";
  TableRef ref = SplitTableName(table.qualified_name);
  return QuoteIdent(ref.schema) + "." + QuoteIdent(ref.table);
}

Result<std::string> BuildPageSql(const TableSchema& table, const PageQuery& query) {
  std::vector<std::string> columns = query.columns;
  if (columns.empty()) {
    for (const auto& c : table.columns) columns.push_back(c.name);
  }
  std::string sql = "SELECT ";
  for (size_t i = 0; i < columns.size(); ++i) {
    if (table.Find(columns[i]) < 0) return UnknownColumn(table, columns[i]);
    if (i) sql += ", ";
    sql += QuoteIdent(columns[i]);
  }
  sql += " FROM " + From(table);
  std::string order;
  std::string values;
  for (size_t i = 0; i < query.order_by.size(); ++i) {
    if (table.Find(query.order_by[i]) < 0) return UnknownColumn(table, query.order_by[i]);
    if (i) order += ", ", values += ", ";
    order += QuoteIdent(query.order_by[i]);
    values += "?" + std::to_string(i + 1);
  }
  if (query.after && !query.order_by.empty()) {
    if (query.lookback_seconds) {
      sql += " WHERE " + QuoteIdent(query.order_by[0]) + " >= ?1";
    } else if (query.order_by.size() == 1) {
      sql += " WHERE " + order + " > " + values;
    } else {
      sql += " WHERE (" + order + ") > (" + values + ")";
    }
  }
  if (!order.empty()) sql += " ORDER BY " + order;
  sql += " LIMIT " + std::to_string(query.limit);
  return sql;
}

std::vector<size_t> OrderKeyColumns(const TableSchema& table, const PageQuery& query) {
  bool text = false;
  std::vector<size_t> out;
  for (const std::string& name : query.order_by) {
    int idx = table.Find(name);
    if (idx < 0) return {};
    text = text || table.columns[idx].order == OrderKind::kText;
    if (query.columns.empty()) {
      out.push_back(static_cast<size_t>(idx));
      continue;
    }
    auto it = std::find(query.columns.begin(), query.columns.end(), name);
    if (it == query.columns.end()) return {};
    out.push_back(static_cast<size_t>(it - query.columns.begin()));
  }
  if (!text || table.OrderIsUnique(query.order_by)) return {};
  return out;
}

std::string OrderKeyOf(const RowBatch& page, size_t row, const std::vector<size_t>& columns) {
  std::string key;
  for (size_t column : columns) {
    const Cell& c = page.at(row, column);
    double number = 0;
    switch (c.type) {
      case ValueType::kNull:
        key += 'z';
        continue;
      case ValueType::kInt:
      case ValueType::kReal:
        number = c.type == ValueType::kInt ? static_cast<double>(c.i) : c.d;
        if (number == 0) number = 0;  // -0.0 is 0
        key += 'n';
        key.append(reinterpret_cast<const char*>(&number), sizeof number);
        continue;
      case ValueType::kText:
      case ValueType::kBlob: {
        std::string_view bytes = page.bytes(c);
        if (c.type == ValueType::kText) {
          while (!bytes.empty() && bytes.back() == ' ') bytes.remove_suffix(1);
        }
        const uint32_t size = static_cast<uint32_t>(bytes.size());
        key += c.type == ValueType::kText ? 't' : 'b';
        key.append(reinterpret_cast<const char*>(&size), sizeof size);
        for (char ch : bytes) {
          const bool upper = c.type == ValueType::kText && ch >= 'A' && ch <= 'Z';
          key += upper ? static_cast<char>(ch - 'A' + 'a') : ch;
        }
        continue;
      }
    }
  }
  return key;
}

std::optional<CursorValue> LookbackBound(const CursorValue& value, double seconds) {
  if (const int64_t* i = std::get_if<int64_t>(&value)) {
    return CursorValue(*i - static_cast<int64_t>(std::ceil(seconds)));
  }
  // A real in a date column is a Julian day (SQLite's julianday()).
  if (const double* d = std::get_if<double>(&value)) return CursorValue(*d - seconds / 86400.0);
  const std::string* s = std::get_if<std::string>(&value);
  if (!s) return std::nullopt;
  struct tm tm = {};
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, sec = 0;
  char sep = 0;
  int n = 0;
  if (sscanf(s->c_str(), "%4d-%2d-%2d%n", &y, &mo, &d, &n) != 3 || n != 10) return std::nullopt;
  bool has_time = s->size() >= 19;
  if (has_time) {
    sep = (*s)[10];
    if ((sep != ' ' && sep != 'T') || sscanf(s->c_str() + 11, "%2d:%2d:%2d", &h, &mi, &sec) != 3) {
      return std::nullopt;
    }
  } else if (s->size() != 10) {
    return std::nullopt;
  }
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = sec;
  time_t t = timegm(&tm) - static_cast<time_t>(std::ceil(seconds));
  struct tm out = {};
  gmtime_r(&t, &out);
  char buf[64];
  if (has_time) {
    snprintf(buf, sizeof buf, "%04d-%02d-%02d%c%02d:%02d:%02d", out.tm_year + 1900, out.tm_mon + 1,
             out.tm_mday, sep, out.tm_hour, out.tm_min, out.tm_sec);
  } else {
    snprintf(buf, sizeof buf, "%04d-%02d-%02d", out.tm_year + 1900, out.tm_mon + 1, out.tm_mday);
  }
  return CursorValue(std::string(buf));
}

namespace {

Result<std::string> KeyTuple(const TableSchema& table, const std::vector<std::string>& key) {
  if (key.empty()) return Status(ErrorKind::kSchema, table.qualified_name + " has no key");
  std::string out = "(";
  for (size_t i = 0; i < key.size(); ++i) {
    if (table.Find(key[i]) < 0) {
      return Status(ErrorKind::kSchema,
                    "key column \"" + key[i] + "\" not found in " + table.qualified_name);
    }
    out += (i ? ", " : "") + QuoteIdent(key[i]);
  }
  return out + ")";
}

// "(?n, ?m)" for a key value, appending it to `params`.
Result<std::string> Placeholders(const Cursor& values, size_t width,
                                 std::vector<CursorValue>& params) {
  if (values.size() != width) {
    return Status(ErrorKind::kType, "a key value has " + std::to_string(values.size()) +
                                        " parts for " + std::to_string(width) + " key columns");
  }
  std::string out = "(";
  for (size_t i = 0; i < values.size(); ++i) {
    params.push_back(values[i]);
    out += (i ? ", ?" : "?") + std::to_string(params.size());
  }
  return out + ")";
}

}  // namespace

Result<BoundSql> DigestSql(const TableSchema& table, const std::vector<std::string>& key,
                           const KeyRange& range, const std::vector<Cursor>& splits) {
  auto tuple = KeyTuple(table, key);
  if (!tuple.ok()) return tuple.status();
  BoundSql out;
  std::string part = "0";
  if (!splits.empty()) {
    part = "CASE";
    for (size_t i = 0; i < splits.size(); ++i) {
      auto p = Placeholders(splits[i], key.size(), out.params);
      if (!p.ok()) return p.status();
      part += " WHEN " + *tuple + " <= " + *p + " THEN " + std::to_string(i);
    }
    part += " ELSE " + std::to_string(splits.size()) + " END";
  }
  std::string where;
  if (range.after) {
    auto p = Placeholders(*range.after, key.size(), out.params);
    if (!p.ok()) return p.status();
    where = " WHERE " + *tuple + " > " + *p;
  }
  if (range.upto) {
    auto p = Placeholders(*range.upto, key.size(), out.params);
    if (!p.ok()) return p.status();
    where += (where.empty() ? " WHERE " : " AND ") + *tuple + " <= " + *p;
  }
  std::string args = tuple->substr(1, tuple->size() - 2);
  out.sql = "SELECT b, count(*), sum((h >> 32) & 4294967295), sum(h & 4294967295) FROM (SELECT " +
            part + " AS b, siphon_key_hash(" + args + ") AS h FROM " + From(table) + where +
            ") GROUP BY b";
  return out;
}

Result<BoundSql> FindKeysSql(const TableSchema& table, const std::vector<std::string>& key,
                             const std::vector<Cursor>& keys) {
  auto tuple = KeyTuple(table, key);
  if (!tuple.ok()) return tuple.status();
  BoundSql out;
  std::string values;
  for (const Cursor& k : keys) {
    auto p = Placeholders(k, key.size(), out.params);
    if (!p.ok()) return p.status();
    values += (values.empty() ? "VALUES " : ", ") + *p;
  }
  std::string columns = tuple->substr(1, tuple->size() - 2);
  out.sql = "SELECT " + columns + " FROM " + From(table);
  out.sql += keys.empty() ? " WHERE 0" : " WHERE " + *tuple + " IN (" + values + ")";
  return out;
}

}  // namespace siphon::sqlite_source

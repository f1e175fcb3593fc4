#include "adapters/postgres/pg_sql.hpp"

#include <cstdio>

#include "adapters/postgres/pg_types.hpp"
#include "runtime/base/hex.hpp"
#include "runtime/base/spelling.hpp"

namespace siphon::postgres {

namespace {

// Reflect's catalog query, in two parts: ReflectWithHorizonSql joins the horizon between.
constexpr const char* kReflectColumns =
    "SELECT a.attname,"
    " format_type(CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE a.atttypid END,"
    "  CASE WHEN t.typtype = 'd' THEN t.typtypmod ELSE a.atttypmod END),"
    " a.attnotnull OR (t.typtype = 'd' AND t.typnotnull),"
    " COALESCE(bt.typtype, t.typtype),"
    " (SELECT k.ord FROM pg_catalog.pg_index i,"
    "   unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)"
    "   WHERE i.indrelid = c.oid AND i.indisprimary AND k.attnum = a.attnum),"
    " c.reltuples::float8, c.relkind,"
    // A nondeterministic collation holds some values equal whose bytes differ (read through
    // to_jsonb: the column is not there before PostgreSQL 12, which has no such collations).
    " (SELECT co.collname FROM pg_catalog.pg_collation co WHERE co.oid = a.attcollation"
    "   AND to_jsonb(co) ->> 'collisdeterministic' = 'false')";
constexpr const char* kReflectFrom =
    " pg_catalog.pg_class c"
    " JOIN pg_catalog.pg_attribute a"
    "  ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped"
    " JOIN pg_catalog.pg_type t ON t.oid = a.atttypid"
    " LEFT JOIN pg_catalog.pg_type bt ON t.typtype = 'd' AND bt.oid = t.typbasetype"
    " WHERE c.oid = pg_catalog.to_regclass($1)"
    " ORDER BY a.attnum";

// The safe horizon: the start of the oldest write transaction still open in this database
// (it may yet commit rows stamped with its now()), or this statement's start when there is
// none (a transaction starting after it stamps later values). A transaction open for longer
// than 60 s no longer holds replication back: column 2 names it. Column 3: whether this
// role can see other roles' transactions at all; when it cannot, the horizon also holds
// `settle` seconds back (a write transaction it cannot see may still commit below now()).
constexpr const char* kHorizonOpen =
    "open AS ("
    "  SELECT pid, application_name, usename, state, xact_start, backend_xid FROM pg_stat_activity"
    "  WHERE backend_xid IS NOT NULL AND datname = current_database()"
    "    AND pid <> pg_backend_pid()),"
    " seen AS (SELECT pg_has_role(current_user, 'pg_read_all_stats', 'USAGE')"
    "   OR (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) AS all_roles)";

// HorizonSql's columns 2 and 3.
constexpr const char* kStaleAndSeen =
    " (SELECT format('pid %s, user %s, application %L, %s since %s', pid, usename,"
    "                application_name, state, xact_start)"
    "  FROM open WHERE xact_start <= statement_timestamp() - interval '60 seconds'"
    "  ORDER BY xact_start LIMIT 1) AS stale,"
    " (SELECT all_roles FROM seen) AS sees_all";

std::string HorizonColumns(int settle_seconds) {
  return " least(statement_timestamp() - CASE WHEN (SELECT all_roles FROM seen)"
         " THEN interval '0 s' ELSE interval '" +
         std::to_string(settle_seconds) +
         " s' END,"
         "       (SELECT min(xact_start) FROM open"
         "        WHERE xact_start > statement_timestamp() - interval '60 seconds')) AS horizon," +
         std::string(kStaleAndSeen);
}

}  // namespace

const std::string kReflectSql = std::string(kReflectColumns) + " FROM" + kReflectFrom;

const char* const kQueryTypesSql =
    "SELECT format_type(CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END,"
    "  CASE WHEN t.typtype = 'd' THEN t.typtypmod ELSE f.mod END),"
    " COALESCE(a.attnotnull OR (at.typtype = 'd' AND at.typnotnull), false)"
    "  OR (t.typtype = 'd' AND t.typnotnull),"
    " COALESCE(bt.typtype, t.typtype),"
    " a.attnum IS NOT NULL AND COALESCE(rc.relkind IN ('v', 'm'), false),"
    " (SELECT co.collname FROM pg_catalog.pg_collation co WHERE co.oid = a.attcollation"
    "   AND to_jsonb(co) ->> 'collisdeterministic' = 'false')"
    " FROM unnest($1::oid[], $2::int4[], $3::oid[], $4::int2[]) WITH ORDINALITY"
    "  AS f(typ, mod, rel, col, ord)"
    " JOIN pg_catalog.pg_type t ON t.oid = f.typ"
    " LEFT JOIN pg_catalog.pg_class rc ON rc.oid = f.rel"
    " LEFT JOIN pg_catalog.pg_type bt ON t.typtype = 'd' AND bt.oid = t.typbasetype"
    " LEFT JOIN pg_catalog.pg_attribute a"
    "  ON f.col > 0 AND a.attrelid = f.rel AND a.attnum = f.col AND NOT a.attisdropped"
    " LEFT JOIN pg_catalog.pg_type at ON at.oid = a.atttypid"
    " ORDER BY f.ord";

// A deferrable unique constraint is accepted: siphon reads committed snapshots only, and the
// check holds at every commit. NULLS NOT DISTINCT does not matter: a key's columns must all be
// NOT NULL (checked by TakeKeyFromUniqueIndex). A collation other than the column's would
// make two rows distinct for the index equal (or out of order) for a page's comparison; but
// "C" and "POSIX" (libc's, or the database default when it is one of them) both compare bytes,
// and an index under one of them on a column of the other was refused for nothing.
const char* const kUniqueIndexesSql =
    "WITH bytewise AS (SELECT co.oid FROM pg_catalog.pg_collation co"
    "  WHERE (co.collprovider = 'c' AND co.collcollate IN ('C', 'POSIX'))"
    "   OR (co.collprovider = 'd' AND EXISTS (SELECT FROM pg_catalog.pg_database d"
    "    WHERE d.datname = current_database() AND d.datcollate IN ('C', 'POSIX')"
    // The database's locale provider (PostgreSQL 15 and later; libc before): an ICU default
    // ignores datcollate.
    "    AND COALESCE(to_jsonb(d) ->> 'datlocprovider', 'c') = 'c')))"
    " SELECT ic.relname, a.attname,"
    " CASE WHEN NOT (i.indisvalid AND i.indisready AND i.indislive)"
    "   THEN 'is not valid (its build failed or is under way)'"
    "  WHEN i.indpred IS NOT NULL THEN 'is partial (it has a WHERE clause)'"
    "  WHEN k.attnum = 0 THEN 'indexes an expression'"
    "  WHEN k.coll IS DISTINCT FROM a.attcollation"
    "   AND NOT (k.coll IN (SELECT oid FROM bytewise)"
    "    AND a.attcollation IN (SELECT oid FROM bytewise))"
    "   THEN 'compares the column \"' || a.attname || '\" under a collation not its own' END,"
    // The index's collation where it is not the column's (then one ordering as the column's
    // does): pages name it, or the server would not read them through the index.
    " (SELECT quote_ident(n.nspname) || '.' || quote_ident(co.collname)"
    "   FROM pg_catalog.pg_collation co JOIN pg_catalog.pg_namespace n ON n.oid = co.collnamespace"
    "   WHERE co.oid = k.coll AND k.coll IS DISTINCT FROM a.attcollation)"
    " FROM pg_catalog.pg_index i"
    " JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid"
    " CROSS JOIN LATERAL unnest(i.indkey::int2[], i.indcollation::oid[])"
    "  WITH ORDINALITY AS k(attnum, coll, ord)"
    " LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum"
    " WHERE i.indrelid = pg_catalog.to_regclass($1) AND i.indisunique AND NOT i.indisprimary"
    "  AND k.ord <= i.indnkeyatts"
    " ORDER BY ic.relname, k.ord";

// The same name in other case (in any schema) first; then, as typo candidates, names of about
// the same length in the schema `from` names, or visible ones when it names none.
const char* const kSimilarTablesSql =
    "SELECT n.nspname, c.relname, pg_catalog.pg_table_is_visible(c.oid),"
    "  lower(c.relname) = lower($2)"
    " FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
    " WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f')"
    "  AND n.nspname <> 'information_schema' AND n.nspname !~ '^pg_'"
    "  AND (lower(c.relname) = lower($2)"
    "   OR (CASE WHEN $1 = '' THEN pg_catalog.pg_table_is_visible(c.oid)"
    "        ELSE lower(n.nspname) = lower($1) END"
    "       AND abs(length(c.relname) - length($2)) <= greatest(2, length($2) / 3)))"
    " ORDER BY lower(c.relname) = lower($2) DESC, lower(n.nspname) = lower($1) DESC,"
    "  c.relname = $2 DESC, pg_catalog.pg_table_is_visible(c.oid) DESC, n.nspname, c.relname"
    " LIMIT 2000";

std::string FromSpelling(const std::string& schema, const std::string& table) {
  auto part = [](const std::string& name) {
    if (!name.empty() && name.find_first_of(".\"") == std::string::npos) return name;
    return QuoteIdent(name);
  };
  return schema.empty() ? part(table) : part(schema) + "." + part(table);
}

const char* const kNotFoundWhereSql =
    "SELECT current_database(), array_to_string(current_schemas(false), ', ')";

// A script pointed at the wrong database (or a role whose search_path lacks the schema) reads
// "not found in database staging (search_path: public)", not only "not found".
std::string TableNotFoundMessage(const std::string& from, const NotFoundWhere& where,
                                 const std::vector<std::string>& similar, bool case_differs) {
  std::string message = "table " + from + " not found";
  if (!where.database.empty()) message += " in database " + where.database;
  if (!where.database.empty() && where.search_path) {
    message +=
        " (search_path: " +
        (where.search_path->empty() ? std::string("no schema of it exists") : *where.search_path) +
        ")";
  }
  message += DidYouMeanFrom(similar);
  if (case_differs) message += " (`from` is matched as written, upper and lower case apart)";
  return message;
}

std::string HorizonSql(int settle_seconds) {
  return std::string("WITH ") + kHorizonOpen + " SELECT" + HorizonColumns(settle_seconds);
}

Result<std::string> CountedHorizonSql(const TableSchema& table, const std::string& column,
                                      bool above) {
  if (!table.query.empty()) return Status(ErrorKind::kSchema, "a query has no row versions");
  auto from = FromClause(table);
  if (!from.ok()) return from.status();
  int idx = table.Find(column);
  if (idx < 0) return Status(ErrorKind::kSchema, "column \"" + column + "\" not found");
  const std::string quoted = QuoteIdent(column);
  // How many transactions ago the oldest write transaction still open got its id (age()),
  // or, for a role that cannot see other roles' sessions, the oldest transaction id still
  // running anywhere on the server (the snapshot's xmin, which needs no privilege).
  // Rows whose xmin is at most that old were committed after it began writing. With no
  // transaction open the age is NULL or 0, and the first condition (a one-time filter in the
  // plan) skips the scan: without it, a run with no cursor yet read every row's xmin for
  // nothing (419 ms for a million rows).
  return std::string("WITH ") + kHorizonOpen +
         ", oldest AS (SELECT CASE WHEN (SELECT all_roles FROM seen)"
         "   THEN (SELECT max(age(backend_xid)) FROM open"
         "         WHERE xact_start > statement_timestamp() - interval '60 seconds')"
         "   ELSE age((txid_snapshot_xmin(txid_current_snapshot()) % 4294967296)::text::xid)"
         "   END AS age)"
         " SELECT (SELECT min(t." +
         quoted + ") FROM " + *from + " AS t WHERE " +
         (above ? "t." + quoted + " > $1::" + table.columns[idx].source_type + " AND " : "") +
         "(SELECT age FROM oldest) > 0 AND age(t.xmin) <= (SELECT age FROM oldest)) AS horizon," +
         kStaleAndSeen;
}

std::string ReflectWithHorizonSql(int settle_seconds) {
  return std::string("WITH ") + kHorizonOpen + ", h AS (SELECT" + HorizonColumns(settle_seconds) +
         ") " + kReflectColumns + ", h.horizon, h.stale, h.sees_all FROM h," + kReflectFrom;
}

// TimeZone/DateStyle fix the timestamp text the decoders parse; extra_float_digits=3 makes
// float output exact; every later statement runs in a read-only transaction.
const char* const kSessionSql =
    "SET TimeZone = 'UTC'; SET DateStyle = 'ISO, MDY'; SET IntervalStyle = 'postgres';"
    " SET extra_float_digits = 3; SET bytea_output = 'hex';"
    " SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY;"
    // A statement siphon abandons (a stop closes the connection) ends on the server within
    // 2 s instead of running on, or waiting for its lock, until it has rows to send
    // (PostgreSQL 14 and later have the setting).
    " SELECT set_config('client_connection_check_interval', '2000', false)"
    "  WHERE current_setting('server_version_num')::int >= 140000";

std::string QuoteIdent(std::string_view name) {
  std::string out;
  out.reserve(name.size() + 2);
  out.push_back('"');
  for (char ch : name) {
    if (ch == '"') out.push_back('"');
    out.push_back(ch);
  }
  out.push_back('"');
  return out;
}

Result<TableName> SplitTableName(std::string_view name) {
  std::string parts[2];
  bool quoted_part[2] = {false, false};
  int part = 0;
  bool in_quotes = false;
  for (size_t i = 0; i < name.size(); ++i) {
    char ch = name[i];
    if (in_quotes) {
      if (ch == '"') {
        if (i + 1 < name.size() && name[i + 1] == '"') {
          parts[part].push_back('"');
          ++i;
        } else {
          in_quotes = false;
        }
      } else {
        parts[part].push_back(ch);
      }
    } else if (ch == '"') {
      in_quotes = true;
      quoted_part[part] = true;
    } else if (ch == '.' && part == 0) {
      part = 1;
    } else {
      parts[part].push_back(ch);
    }
  }
  std::string quoted_name = "\"" + std::string(name) + "\"";
  if (in_quotes)
    return Status(ErrorKind::kConfig, "table name " + quoted_name + " has an unclosed quote");
  for (int p = 0; p <= part; ++p) {
    if (parts[p].empty() && !quoted_part[p]) {
      return Status(ErrorKind::kConfig, "table name " + quoted_name + " has an empty part");
    }
  }
  if (part == 0) return TableName{"", std::move(parts[0])};
  return TableName{std::move(parts[0]), std::move(parts[1])};
}

std::string QuotedTableName(const TableName& name) {
  if (name.schema.empty()) return QuoteIdent(name.table);
  return QuoteIdent(name.schema) + "." + QuoteIdent(name.table);
}

std::string CursorParam(const CursorValue& value) {
  if (const auto* i = std::get_if<int64_t>(&value)) return std::to_string(*i);
  if (const auto* d = std::get_if<double>(&value)) {
    char buf[40];
    snprintf(buf, sizeof buf, "%.17g", *d);
    return buf;
  }
  if (const auto* s = std::get_if<std::string>(&value)) return *s;
  if (const auto* b = std::get_if<Bytes>(&value)) {  // a bytea's text input
    std::string hex = "\\x";
    AppendHex(hex, b->data);
    return hex;
  }
  return std::string();
}

namespace {

// An array as JSON text, built by the server. A JSON array has no place for lower bounds, so
// an array whose bounds are not all 1 (`'[0:2]={1,2,3}'`) keeps PostgreSQL's text form,
// which holds them. The same for a json or jsonb array with an element that is JSON null:
// to_json prints it as `null`, as it prints an SQL NULL element, and only the text form
// (`{"null",NULL}`) tells them apart; `null` in a JSON array is always an SQL NULL. The first
// test after that settles the common case, a one-dimensional array from 1, with two cheap
// calls; only other arrays have their dimensions printed and searched.
std::string ArraySelect(const std::string& quoted, std::string_view source_type) {
  std::string sql = "CASE ";
  if (source_type == "jsonb[]") {
    sql += "WHEN 'null'::jsonb = ANY(" + quoted + ") THEN " + quoted + "::text ";
  } else if (source_type == "json[]") {
    // json has no equality: each element's type is looked at, but only in arrays whose
    // elements spell `null` somewhere (a subquery on every row took 4 times to_json's time).
    sql += "WHEN CASE WHEN strpos(array_to_string(" + quoted +
           "::text[], ','), 'null') = 0 THEN false ELSE EXISTS (SELECT FROM unnest(" + quoted +
           ") AS _siphon_e(_siphon_v) WHERE json_typeof(_siphon_v) = 'null') END THEN " + quoted +
           "::text ";
  }
  return sql + "WHEN array_ndims(" + quoted + ") = 1 AND array_lower(" + quoted +
         ", 1) = 1 THEN to_json(" + quoted + ")::text WHEN strpos(replace(array_dims(" + quoted +
         "), '[1:', ''), '[') > 0 THEN " + quoted + "::text ELSE to_json(" + quoted + ")::text END";
}

// A column as a page compares and orders it: under its key index's collation when that is
// not the column's own (ColumnInfo::key_collation), so the server reads through the index.
std::string Compared(const ColumnInfo& c) {
  return c.key_collation.empty() ? QuoteIdent(c.name)
                                 : QuoteIdent(c.name) + " COLLATE " + c.key_collation;
}

}  // namespace

Result<std::string> FromClause(const TableSchema& table) {
  // The line break ends a `--` comment the query may end with.
  if (!table.query.empty()) return "(" + table.query + "\n) AS \"_siphon_query\"";
  auto name = SplitTableName(table.qualified_name);
  if (!name.ok()) return name.status();
  return QuotedTableName(*name);
}

Result<PageStatement> BuildPageQuery(const TableSchema& table, const PageQuery& query) {
  auto from = FromClause(table);
  if (!from.ok()) return from.status();
  auto column = [&table](const std::string& c) -> const ColumnInfo* {
    int idx = table.Find(c);
    return idx < 0 ? nullptr : &table.columns[idx];
  };
  auto missing = [&table](const std::string& c) {
    return Status(ErrorKind::kSchema, "column \"" + c + "\" not found in " + table.qualified_name);
  };

  PageStatement st;
  std::string& sql = st.sql;
  sql = "SELECT ";
  for (size_t i = 0; i < query.columns.size(); ++i) {
    const ColumnInfo* c = column(query.columns[i]);
    if (c == nullptr) return missing(query.columns[i]);
    if (i > 0) sql += ", ";
    std::string quoted = QuoteIdent(c->name);
    if (ClassifyType(c->source_type, 'b').json_array) {
      sql += ArraySelect(quoted, c->source_type) + " AS " + quoted;
    } else {
      sql += quoted;
    }
  }
  if (query.columns.empty()) return Status(ErrorKind::kSchema, "a page needs at least one column");
  sql += " FROM " + *from;

  std::vector<const ColumnInfo*> order;
  for (const auto& o : query.order_by) {
    const ColumnInfo* c = column(o);
    if (c == nullptr) return missing(o);
    order.push_back(c);
  }
  if (query.after.has_value()) {
    const Cursor& after = *query.after;
    if (after.size() != order.size() || order.empty()) {
      return Status(ErrorKind::kSchema, "cursor of " + table.qualified_name + " has " +
                                            std::to_string(after.size()) + " values for " +
                                            std::to_string(order.size()) + " order columns");
    }
    for (size_t i = 0; i < after.size(); ++i) {
      if (std::holds_alternative<std::monostate>(after[i])) {
        return Status(ErrorKind::kSchema, "cursor value for \"" + order[i]->name + "\" of " +
                                              table.qualified_name + " is NULL");
      }
    }
    if (query.lookback_seconds.has_value()) {
      // Only the first column bounds the window: ties and later values are all re-read.
      st.params.push_back(CursorParam(after[0]));
      st.params.push_back(CursorParam(*query.lookback_seconds));
      sql += " WHERE " + Compared(*order[0]) + " >= ($1::" + order[0]->source_type +
             " - make_interval(secs => $2::double precision))";
    } else {
      std::string lhs, rhs;
      for (size_t i = 0; i < order.size(); ++i) {
        if (i > 0) {
          lhs += ", ";
          rhs += ", ";
        }
        lhs += Compared(*order[i]);
        st.params.push_back(CursorParam(after[i]));
        rhs += "$" + std::to_string(i + 1) + "::" + order[i]->source_type;
      }
      // A row comparison is one index range condition on a (c1, c2, …) btree index.
      if (order.size() == 1) {
        sql += " WHERE " + lhs + " > " + rhs;
      } else {
        sql += " WHERE (" + lhs + ") > (" + rhs + ")";
      }
    }
  }
  if (query.before.has_value() && !order.empty()) {
    if (std::holds_alternative<std::monostate>(*query.before)) {
      return Status(ErrorKind::kSchema, "the horizon of " + table.qualified_name + " is NULL");
    }
    st.params.push_back(CursorParam(*query.before));
    sql += std::string(query.after.has_value() ? " AND " : " WHERE ") + Compared(*order[0]) +
           " < $" + std::to_string(st.params.size()) + "::" + order[0]->source_type;
  }
  if (!order.empty()) {
    sql += " ORDER BY ";
    for (size_t i = 0; i < order.size(); ++i) {
      if (i > 0) sql += ", ";
      sql += Compared(*order[i]);
    }
  }
  sql += " LIMIT " + std::to_string(query.limit);
  return st;
}

std::string QuoteLiteral(std::string_view value) {
  const bool backslash = value.find('\\') != std::string_view::npos;
  std::string out = backslash ? " E'" : "'";
  for (char c : value) {
    if (c == '\'' || (c == '\\' && backslash)) out += c;
    out += c;
  }
  return out + "'";
}

std::string InlineParams(const PageStatement& statement) {
  const std::string& sql = statement.sql;
  std::string out;
  out.reserve(sql.size() + 64);
  for (size_t i = 0; i < sql.size();) {
    const char c = sql[i];
    if (c == '"' || c == '\'') {  // to the closing quote; a doubled quote stays inside
      size_t end = i + 1;
      while (end < sql.size() && !(sql[end] == c && (end + 1 >= sql.size() || sql[end + 1] != c))) {
        end += sql[end] == c ? 2 : 1;
      }
      out.append(sql, i, end + 1 - i);
      i = end + 1;
      continue;
    }
    if (c == '$' && i + 1 < sql.size() && sql[i + 1] >= '0' && sql[i + 1] <= '9') {
      size_t end = i + 1;
      size_t n = 0;
      while (end < sql.size() && sql[end] >= '0' && sql[end] <= '9')
        n = n * 10 + (sql[end++] - '0');
      if (n >= 1 && n <= statement.params.size()) {
        out += QuoteLiteral(statement.params[n - 1]);
        i = end;
        continue;
      }
    }
    out += c;
    ++i;
  }
  return out;
}

Result<std::string> BuildPageCopy(const TableSchema& table, const PageQuery& query, bool binary,
                                  bool columns_first) {
  // A query's own text is not scanned for placeholders (its quoting is the script's): the
  // parameters are inlined around a stand-in for it, which is then replaced.
  constexpr char kStandIn = '\x01';
  TableSchema shell = table;
  if (!shell.query.empty()) shell.query = std::string(1, kStandIn);
  auto st = BuildPageQuery(shell, query);
  if (!st.ok()) return st.status();
  PageQuery columns_only;
  columns_only.columns = query.columns;
  columns_only.limit = 0;
  auto probe = BuildPageQuery(shell, columns_only);
  if (!probe.ok()) return probe.status();
  std::string copy = InlineParams(*st);
  std::string columns = probe->sql;
  if (!table.query.empty()) {
    // Each statement's FROM comes before any inlined value: its first stand-in is the one.
    auto put = [&](std::string& sql) {
      const size_t at = sql.find(kStandIn);
      if (at != std::string::npos) sql.replace(at, 1, table.query);
    };
    put(copy);
    put(columns);
  }
  copy = "COPY (" + copy + ") TO STDOUT" + (binary ? " (FORMAT binary)" : "");
  return columns_first ? columns + "; " + copy : copy + "; " + columns;
}

namespace {

// The key columns, checked against the table, for the reconcile queries.
Result<std::vector<const ColumnInfo*>> KeyColumns(const TableSchema& table,
                                                  const std::vector<std::string>& key) {
  std::vector<const ColumnInfo*> out;
  for (const auto& k : key) {
    int idx = table.Find(k);
    if (idx < 0) {
      return Status(ErrorKind::kSchema,
                    "key column \"" + k + "\" not found in " + table.qualified_name);
    }
    out.push_back(&table.columns[idx]);
  }
  if (out.empty()) return Status(ErrorKind::kSchema, table.qualified_name + " has no key");
  return out;
}

// ""k1", "k2"": the key columns as a list.
std::string ColumnList(const std::vector<const ColumnInfo*>& cols) {
  std::string out;
  for (size_t i = 0; i < cols.size(); ++i) out += (i ? ", " : "") + QuoteIdent(cols[i]->name);
  return out;
}

// The key columns as a list, as pages compare them (Compared).
std::string ComparedList(const std::vector<const ColumnInfo*>& cols) {
  std::string out;
  for (size_t i = 0; i < cols.size(); ++i) out += (i ? ", " : "") + Compared(*cols[i]);
  return out;
}

// "($n::t1, $m::t2)" for a key value, appending its parts to `params`.
Result<std::string> KeyValue(const std::vector<const ColumnInfo*>& cols, const Cursor& values,
                             std::vector<std::string>& params) {
  if (values.size() != cols.size()) {
    return Status(ErrorKind::kSchema, "a key value has " + std::to_string(values.size()) +
                                          " parts for " + std::to_string(cols.size()) +
                                          " key columns");
  }
  std::string out = "(";
  for (size_t i = 0; i < cols.size(); ++i) {
    if (std::holds_alternative<std::monostate>(values[i])) {
      return Status(ErrorKind::kSchema, "a key value of \"" + cols[i]->name + "\" is NULL");
    }
    params.push_back(CursorParam(values[i]));
    out += (i ? ", $" : "$") + std::to_string(params.size()) + "::" + cols[i]->source_type;
  }
  return out + ")";
}

}  // namespace

Result<PageStatement> BuildDigestQuery(const TableSchema& table,
                                       const std::vector<std::string>& key, const KeyRange& range,
                                       const std::vector<Cursor>& splits) {
  auto from = FromClause(table);
  if (!from.ok()) return from.status();
  auto cols = KeyColumns(table, key);
  if (!cols.ok()) return cols.status();
  PageStatement st;
  const std::string tuple = "(" + ComparedList(*cols) + ")";
  std::string part = "0";
  if (!splits.empty()) {
    part = "CASE";
    for (size_t i = 0; i < splits.size(); ++i) {
      auto value = KeyValue(*cols, splits[i], st.params);
      if (!value.ok()) return value.status();
      part += " WHEN " + tuple + " <= " + *value + " THEN " + std::to_string(i);
    }
    part += " ELSE " + std::to_string(splits.size()) + " END";
  }
  // Each value as its type prints it, which is what the replica holds: a char(n) keeps its
  // padding there, which a cast to text would strip (and then no digest would ever match).
  std::string text;
  for (size_t i = 0; i < cols->size(); ++i) text += ", " + QuoteIdent((*cols)[i]->name);
  std::string where;
  if (range.after) {
    auto value = KeyValue(*cols, *range.after, st.params);
    if (!value.ok()) return value.status();
    where += " WHERE " + tuple + " > " + *value;
  }
  if (range.upto) {
    auto value = KeyValue(*cols, *range.upto, st.params);
    if (!value.ok()) return value.status();
    where += (where.empty() ? " WHERE " : " AND ") + tuple + " <= " + *value;
  }
  // Each half of the hash as a non-negative bigint: 'x' and 16 hex digits make a bit(64).
  auto half = [](int from) {
    return "sum(('x' || lpad(substr(h, " + std::to_string(from) +
           ", 8), 16, '0'))::bit(64)::bigint)::text";
  };
  st.sql = "SELECT b, count(*), " + half(1) + ", " + half(9) + " FROM (SELECT " + part +
           " AS b, md5(concat_ws(chr(1)" + text + ")) AS h FROM " + *from + where +
           ") s GROUP BY b";
  return st;
}

Result<PageStatement> BuildFindKeysQuery(const TableSchema& table,
                                         const std::vector<std::string>& key,
                                         const std::vector<Cursor>& keys) {
  auto from = FromClause(table);
  if (!from.ok()) return from.status();
  auto cols = KeyColumns(table, key);
  if (!cols.ok()) return cols.status();
  PageStatement st;
  const std::string select = ColumnList(*cols);
  std::string list;
  for (const Cursor& k : keys) {
    auto value = KeyValue(*cols, k, st.params);
    if (!value.ok()) return value.status();
    list += (list.empty() ? "" : ", ") + *value;
  }
  if (keys.empty()) list = "(NULL)";
  st.sql = "SELECT " + select + " FROM " + *from + " WHERE (" + ComparedList(*cols) + ") IN (" +
           list + ")";
  return st;
}

}  // namespace siphon::postgres

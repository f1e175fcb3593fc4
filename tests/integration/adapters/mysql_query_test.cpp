// `query = "SELECT …"` on the MySQL/MariaDB adapter, against the real MariaDB started by the
// `servers` fixture: the query is described by the server and read as a sub-select.
#include <set>

#include <gtest/gtest.h>

#include "adapters/mysql/mysql_config.hpp"
#include "adapters/mysql/mysql_connection.hpp"
#include "adapters/mysql/mysql_sql.hpp"
#include "runtime/base/key_digest.hpp"
#include "tests/integration/adapters/mysql_adapter_fixture.hpp"
#include "tests/integration/harness/harness.hpp"

namespace siphon::mysql {
namespace {

class MysqlQueryTest : public MysqlAdapterTest {};

// Customers and their orders; some orders name a referrer, a customer too.
void CreateShop(test::MyDb& db) {
  db.Exec(
      "CREATE TABLE customers (id INT UNSIGNED NOT NULL PRIMARY KEY,"
      " name VARCHAR(40) NOT NULL, region CHAR(2) NOT NULL, email VARCHAR(80));"
      "CREATE TABLE orders (id BIGINT NOT NULL PRIMARY KEY, customer_id INT UNSIGNED NOT NULL,"
      " referrer_id INT UNSIGNED, amount DECIMAL(12,2) NOT NULL,"
      " status ENUM('new','paid') NOT NULL DEFAULT 'new', updated_at DATETIME(6) NOT NULL,"
      " paid_at TIMESTAMP(3) NULL, KEY orders_cursor (updated_at, id))");
}

// The server describes the query's result: a column taken as it is from a NOT NULL table
// column stays NOT NULL, a LEFT JOIN's inner column and an expression on a NULL-able column
// may be NULL, and each column is typed as the table column of its type would be.
TEST_F(MysqlQueryTest, AQueryIsReflectedFromItsResult) {
  test::MyDb db;
  CreateShop(db);
  auto conn = NewConnection(db);
  ASSERT_TRUE(Connect(*conn).ok());
  const std::string text =
      "SELECT o.id, o.updated_at, o.amount, o.amount * 2 AS doubled, c.name AS customer,\n"
      "  CONCAT(c.name, '#', o.id) AS label, c.email, r.name AS referrer, o.paid_at,\n"
      "  o.customer_id + 0 AS wide, o.status\n"
      "FROM orders o JOIN customers c ON c.id = o.customer_id\n"
      "LEFT JOIN customers r ON r.id = o.referrer_id # a comment at the end";
  auto t = ReflectQuery(*conn, text);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ(t->qualified_name, "query");
  EXPECT_EQ(t->query, text);
  EXPECT_TRUE(t->primary_key.empty());
  EXPECT_EQ(t->row_estimate, -1);
  std::vector<std::string> got;
  for (const auto& c : t->columns) {
    std::string affinity(ColumnTypeName(c.type));
    got.push_back(c.name + " " + c.source_type + " " + (affinity.empty() ? "ANY" : affinity) +
                  (c.nullable ? "" : " NOT NULL"));
  }
  EXPECT_EQ(got, (std::vector<std::string>{
                     "id bigint(20) INTEGER NOT NULL",
                     "updated_at datetime(6) TEXT NOT NULL",
                     "amount decimal(12,2) TEXT NOT NULL",
                     "doubled decimal(13,2) TEXT NOT NULL",
                     "customer varchar(40) TEXT NOT NULL",
                     // CONCAT's result may be NULL as far as MariaDB tells.
                     "label varchar(61) TEXT",
                     "email varchar(80) TEXT",
                     // NOT NULL in its table, but the inner side of a LEFT JOIN.
                     "referrer varchar(40) TEXT",
                     "paid_at timestamp(3) TEXT",
                     // BIGINT UNSIGNED: as a table column of that type, BLOB affinity.
                     "wide bigint(11) unsigned ANY NOT NULL",
                     "status enum TEXT NOT NULL",
                 }));
  // Exactly as the table's own columns: storage type, and but for an ENUM (no members) order
  // kind and COLUMN_TYPE.
  auto orders = Reflect(*conn, "orders");
  ASSERT_TRUE(orders.ok()) << orders.status().ToString();
  for (const std::string name : {"id", "updated_at", "amount", "paid_at", "status"}) {
    const ColumnInfo& in_query = t->columns[t->Find(name)];
    const ColumnInfo& in_table = orders->columns[orders->Find(name)];
    EXPECT_EQ(in_query.type, in_table.type) << name;
    EXPECT_EQ(in_query.nullable, in_table.nullable) << name;
    if (name != "status") {
      EXPECT_EQ(in_query.order, in_table.order) << name;
      EXPECT_EQ(in_query.source_type, in_table.source_type) << name;
    } else {
      // Without its members a query's ENUM has no order siphon can page by.
      EXPECT_EQ(in_table.order, OrderKind::kText);
      EXPECT_EQ(in_query.order, OrderKind::kOther);
    }
  }
  // Only NOT NULL columns can be a query's cursor.
  EXPECT_TRUE(conn->CheckCursor(*t, {"updated_at", "id"}, 2, false).ok());
  Status nullable = conn->CheckCursor(*t, {"referrer"}, 1, false);
  EXPECT_EQ(nullable.kind(), ErrorKind::kConfig);
  EXPECT_NE(nullable.message().find("may be NULL"), std::string::npos) << nullable.ToString();
}

// Every column type a table can have is typed the same when a query selects it: the
// storage type and (but for ENUM and SET) the order kind and the COLUMN_TYPE; its values too.
TEST_F(MysqlQueryTest, AQueryColumnIsTypedAsItsTableColumn) {
  test::MyDb db;
  db.Exec(
      "CREATE TABLE t (id INT NOT NULL PRIMARY KEY, a TINYINT(1), b SMALLINT UNSIGNED,"
      " c MEDIUMINT, d BIGINT, e BIGINT UNSIGNED, f DECIMAL(10,3), g FLOAT, h DOUBLE, i BIT(1),"
      " j BIT(64), k YEAR, l DATE, m DATETIME, n DATETIME(6), o TIMESTAMP(3) NULL, p TIME(2),"
      " q CHAR(3), r VARCHAR(40), s VARCHAR(10) CHARACTER SET latin1, u BINARY(4),"
      " v VARBINARY(10), w TINYTEXT, x TEXT, y MEDIUMTEXT, z LONGTEXT, ba TINYBLOB, bb BLOB,"
      " bc MEDIUMBLOB, bd LONGBLOB, be ENUM('x','y'), bf SET('x','y'), bg JSON, bh UUID,"
      " bi INET6, bj POINT, bk GEOMETRY, bl INT(5) UNSIGNED ZEROFILL)");
  db.Exec(
      "INSERT INTO t VALUES (1, 1, 65535, -8388608, -9223372036854775808, 18446744073709551615,"
      " 1234567.125, 0.5, 1e300, b'1', 18446744073709551615, 2024, '2024-02-29', '2024-01-01 "
      "10:00:00', '2024-01-01 10:00:00.123456',"
      " '2024-01-01 10:00:00.5', '-838:59:59', 'abc', 'тест 🦄', 'caf\xc3\xa9', x'00ff0001',"
      " x'ff', 't', 'tt', 'ttt', 'tttt', x'01', x'02', x'03', x'04', 'y', 'x,y', '{\"k\": 1}',"
      " '123e4567-e89b-12d3-a456-426655440000', '::1', POINT(1, 2), POINT(3, 4), 42),"
      " (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,"
      " NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,"
      " NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)");
  auto conn = NewConnection(db);
  ASSERT_TRUE(Connect(*conn).ok());
  auto table = Reflect(*conn, "t");
  ASSERT_TRUE(table.ok()) << table.status().ToString();
  // Merged into the statement that reads it, or (with its own LIMIT) materialized first.
  for (const std::string text : {"SELECT * FROM t", "SELECT * FROM t ORDER BY id LIMIT 10"}) {
    auto query = ReflectQuery(*conn, text);
    ASSERT_TRUE(query.ok()) << query.status().ToString();
    ASSERT_EQ(query->columns.size(), table->columns.size());
    for (size_t i = 0; i < table->columns.size(); ++i) {
      const ColumnInfo& want = table->columns[i];
      const ColumnInfo& got = query->columns[i];
      const std::string what = text + ": " + want.name + " " + want.source_type;
      EXPECT_EQ(got.name, want.name);
      EXPECT_EQ(got.type, want.type) << what;
      EXPECT_EQ(got.nullable, want.nullable) << what;
      if (want.name == "be" || want.name == "bf") {
        EXPECT_EQ(got.source_type, want.name == "be" ? "enum" : "set");
        // Paged by member position as a table's column, not as a query's (no members).
        EXPECT_EQ(want.order, OrderKind::kText) << what;
        EXPECT_EQ(got.order, OrderKind::kOther) << what;
      } else {
        EXPECT_EQ(got.order, want.order) << what;
        EXPECT_EQ(got.source_type, want.source_type) << what;
      }
    }
  }
  auto query = ReflectQuery(*conn, "SELECT * FROM t");
  ASSERT_TRUE(query.ok()) << query.status().ToString();
  // And the values arrive as they do from the table.
  PageQuery q;
  q.order_by = {"id"};
  auto from_table = Pull(*conn, *table, q);
  ASSERT_TRUE(from_table.ok()) << from_table.status().ToString();
  auto from_query = Pull(*conn, *query, q);
  ASSERT_TRUE(from_query.ok()) << from_query.status().ToString();
  ASSERT_EQ(from_query->rows(), 2u);
  ASSERT_EQ(from_table->rows(), 2u);
  for (size_t r = 0; r < 2; ++r) {
    for (size_t c = 0; c < table->columns.size(); ++c) {
      const Cell& want = from_table->at(r, c);
      const Cell& got = from_query->at(r, c);
      const std::string what = table->columns[c].name + " row " + std::to_string(r);
      ASSERT_EQ(got.type, want.type) << what;
      if (want.type == ValueType::kInt) {
        EXPECT_EQ(got.i, want.i) << what;
      } else if (want.type == ValueType::kReal) {
        EXPECT_EQ(got.d, want.d) << what;
      } else if (want.type == ValueType::kText || want.type == ValueType::kBlob) {
        EXPECT_EQ(from_query->bytes(got), from_table->bytes(want)) << what;
      }
    }
  }
}

// Pages read through the sub-select with a keyset cursor: in order, every row once, with
// rows written between pages arriving too.
TEST_F(MysqlQueryTest, PagesAreReadThroughTheSubSelect) {
  test::MyDb db;
  CreateShop(db);
  db.Exec(
      "INSERT INTO customers SELECT seq, CONCAT('c', seq), IF(seq % 2 = 0, 'eu', 'us'), NULL"
      " FROM seq_1_to_50");
  // Seven orders share each second: ties at page edges.
  db.Exec(
      "INSERT INTO orders (id, customer_id, amount, updated_at) SELECT seq, 1 + seq % 50,"
      " seq / 100, '2024-01-01' + INTERVAL (seq DIV 7) SECOND FROM seq_1_to_3000");
  auto conn = NewConnection(db);
  ASSERT_TRUE(Connect(*conn).ok());
  auto t = ReflectQuery(*conn,
                        "SELECT o.id, o.updated_at, c.name AS customer, o.amount * 2 AS doubled\n"
                        "FROM orders o JOIN customers c ON c.id = o.customer_id\n"
                        "WHERE c.region = 'eu' -- even customers only");
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  ASSERT_TRUE(conn->CheckCursor(*t, {"updated_at", "id"}, 2, false).ok());
  PageQuery q;
  q.columns = {"id", "updated_at", "customer", "doubled"};
  q.order_by = {"updated_at", "id"};
  q.limit = 37;
  std::vector<std::pair<std::string, int64_t>> seen;
  for (int page = 0;; ++page) {
    auto batch = Pull(*conn, *t, q);
    ASSERT_TRUE(batch.ok()) << batch.status().ToString();
    if (batch->rows() == 0) break;
    ASSERT_LE(batch->rows(), 37u);
    for (size_t r = 0; r < batch->rows(); ++r) {
      const int64_t id = batch->at(r, 0).i;
      seen.emplace_back(std::string(batch->bytes(batch->at(r, 1))), id);
      EXPECT_EQ(batch->bytes(batch->at(r, 2)), "c" + std::to_string(1 + id % 50));
      EXPECT_EQ(id % 2, 1) << "an odd order is an even customer's";
    }
    if (page == 10) {
      // A late row behind the cursor is not this cursor's to find; one ahead of it is.
      db.Exec(
          "INSERT INTO orders (id, customer_id, amount, updated_at) VALUES"
          " (5001, 2, 1, '2024-01-01'), (5003, 4, 1, '2030-01-01')");
    }
    const size_t last = batch->rows() - 1;
    q.after = Cursor{CursorValueOf(*batch, last, 1), CursorValueOf(*batch, last, 0)};
  }
  ASSERT_EQ(seen.size(), 1501u);  // the 1500 odd orders and the one written ahead
  for (size_t i = 1; i < seen.size(); ++i) EXPECT_LT(seen[i - 1], seen[i]) << i;
  EXPECT_EQ(seen.front(), std::make_pair(std::string("2024-01-01T00:00:00.000000"), int64_t{1}));
  EXPECT_EQ(seen.back().second, 5003);
  std::set<int64_t> ids;
  for (const auto& s : seen) ids.insert(s.second);
  EXPECT_EQ(ids.size(), seen.size());
  EXPECT_EQ(ids.count(5001), 0u);

  // The safe horizon applies to the query's DATETIME column as to a table's.
  auto horizon = Await<Result<std::optional<CursorValue>>>(
      [&](auto done) { conn->SafeHorizon(*t, "updated_at", std::nullopt, done); });
  ASSERT_TRUE(horizon.ok()) << horizon.status().ToString();
  EXPECT_TRUE(horizon->has_value());
  auto none = Await<Result<std::optional<CursorValue>>>(
      [&](auto done) { conn->SafeHorizon(*t, "id", std::nullopt, done); });
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
}

// Reconcile's digests and key lookups read from the query: only the keys it returns.
TEST_F(MysqlQueryTest, KeysOfAQueryAreDigestedAndFound) {
  test::MyDb db;
  CreateShop(db);
  db.Exec(
      "INSERT INTO customers SELECT seq, CONCAT('c', seq), IF(seq % 2 = 0, 'eu', 'us'), NULL"
      " FROM seq_1_to_10");
  db.Exec(
      "INSERT INTO orders (id, customer_id, amount, updated_at) SELECT seq, 1 + seq % 10, 1,"
      " '2024-01-01' FROM seq_1_to_1000");
  auto conn = NewConnection(db);
  ASSERT_TRUE(Connect(*conn).ok());
  auto t = ReflectQuery(*conn,
                        "SELECT o.id, c.region FROM orders o JOIN customers c"
                        " ON c.id = o.customer_id WHERE c.region = 'eu'");
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  // The odd orders, split at 500; the range leaves out the first ten.
  KeyRange range;
  range.after = Cursor{int64_t{10}};
  auto digests = Await<Result<std::vector<KeyDigest>>>(
      [&](auto done) { conn->DigestKeys(*t, {"id"}, range, {Cursor{int64_t{500}}}, done); });
  ASSERT_TRUE(digests.ok()) << digests.status().ToString();
  ASSERT_EQ(digests->size(), 2u);
  KeyDigest low, high;
  for (int64_t id = 11; id <= 1000; id += 2) {
    (id <= 500 ? low : high).Add(KeyHash(KeyText(Cursor{id})));
  }
  EXPECT_EQ((*digests)[0], low);
  EXPECT_EQ((*digests)[1], high);
  EXPECT_EQ((*digests)[0].count, 245);
  auto found = Await<Result<std::vector<Cursor>>>([&](auto done) {
    conn->FindKeys(
        *t, {"id"},
        {Cursor{int64_t{1}}, Cursor{int64_t{2}}, Cursor{int64_t{3}}, Cursor{int64_t{99999}}}, done);
  });
  ASSERT_TRUE(found.ok()) << found.status().ToString();
  std::set<int64_t> ids;
  for (const auto& key : *found) ids.insert(std::get<int64_t>(key.at(0)));
  EXPECT_EQ(ids, (std::set<int64_t>{1, 3}));  // 2 is a customer's in 'us'
  // A composite key, with a text part.
  auto pairs = Await<Result<std::vector<Cursor>>>([&](auto done) {
    conn->FindKeys(*t, {"region", "id"},
                   {Cursor{std::string("eu"), int64_t{5}}, Cursor{std::string("us"), int64_t{7}}},
                   done);
  });
  ASSERT_TRUE(pairs.ok()) << pairs.status().ToString();
  ASSERT_EQ(pairs->size(), 1u);
  EXPECT_EQ(std::get<int64_t>((*pairs)[0].at(1)), 5);
}

// A query the server refuses comes back with the server's message; the connection stays
// usable.
TEST_F(MysqlQueryTest, ABadQueryGivesTheServersMessage) {
  test::MyDb db;
  CreateShop(db);
  auto conn = NewConnection(db);
  ASSERT_TRUE(Connect(*conn).ok());
  auto column = ReflectQuery(*conn, "SELECT nope FROM orders");
  ASSERT_FALSE(column.ok());
  // A column its table does not have: the script's mistake, as a missing table is.
  EXPECT_EQ(column.status().kind(), ErrorKind::kConfig) << column.status().ToString();
  EXPECT_EQ(column.status().message().rfind("reflect the query: ", 0), 0u)
      << column.status().ToString();
  EXPECT_NE(column.status().message().find("Unknown column 'nope'"), std::string::npos)
      << column.status().ToString();
  auto table = ReflectQuery(*conn, "SELECT id FROM no_such_table");
  ASSERT_FALSE(table.ok());
  // As a `from` the server does not have: the script's mistake.
  EXPECT_EQ(table.status().kind(), ErrorKind::kConfig) << table.status().ToString();
  EXPECT_NE(table.status().message().find("no_such_table"), std::string::npos);
  auto syntax = ReflectQuery(*conn, "SELEC id FROM orders");
  ASSERT_FALSE(syntax.ok());
  EXPECT_NE(syntax.status().message().find("MySQL error 1064"), std::string::npos)
      << syntax.status().ToString();
  // A semicolon ends the statement inside the sub-select.
  EXPECT_FALSE(ReflectQuery(*conn, "SELECT id FROM orders;").ok());
  EXPECT_EQ(QueryText(*conn, "SELECT 1").size(), 1u);
  EXPECT_TRUE(ReflectQuery(*conn, "SELECT id FROM orders").ok());
}

// A sub-select's columns need distinct names: refused as the script's to fix.
TEST_F(MysqlQueryTest, DuplicateColumnNamesAreRefused) {
  test::MyDb db;
  CreateShop(db);
  auto conn = NewConnection(db);
  ASSERT_TRUE(Connect(*conn).ok());
  auto dup = ReflectQuery(*conn,
                          "SELECT o.id, c.id FROM orders o JOIN customers c"
                          " ON c.id = o.customer_id");
  ASSERT_FALSE(dup.ok());
  EXPECT_EQ(dup.status().kind(), ErrorKind::kConfig) << dup.status().ToString();
  EXPECT_NE(dup.status().message().find("give them distinct names"), std::string::npos)
      << dup.status().ToString();
  EXPECT_NE(dup.status().message().find("'id'"), std::string::npos) << dup.status().ToString();
  auto renamed = ReflectQuery(*conn,
                              "SELECT o.id, c.id AS customer_id FROM orders o JOIN customers c"
                              " ON c.id = o.customer_id");
  ASSERT_TRUE(renamed.ok()) << renamed.status().ToString();
}

// MariaDB merges the sub-select into the page query, so a query on one table pages by that
// table's index on the cursor, as the table itself does (PageQueryIsAnIndexRangeScan).
TEST_F(MysqlQueryTest, PageQueryOnAQueryIsAnIndexRangeScan) {
  test::MyDb db;
  CreateIndexedEvents(db);
  auto conn = NewConnection(db);
  ASSERT_TRUE(Connect(*conn).ok());
  auto schema = ReflectQuery(*conn,
                             "SELECT id, updated_at, UPPER(v) AS note FROM e\n"
                             "WHERE v <> 'skip' -- a comment at the end");
  ASSERT_TRUE(schema.ok()) << schema.status().ToString();
  auto quote = [](std::string_view v) { return "'" + std::string(v) + "'"; };
  PageQuery q;
  q.columns = {"id", "updated_at", "note"};
  q.order_by = {"updated_at", "id"};
  q.after = Cursor{std::string("2024-01-01T00:10:00"), int64_t{6000}};
  q.limit = 100;
  auto params = PageParameters(*schema, q, quote);
  ASSERT_TRUE(params.ok());
  auto sql = BuildPageSql(*schema, q, &*params);
  ASSERT_TRUE(sql.ok());
  // id, select_type, table, type, possible_keys, key, key_len, ref, rows, Extra
  auto plan = QueryText(*conn, "EXPLAIN " + *sql);
  ASSERT_EQ(plan.size(), 1u) << *sql;
  EXPECT_EQ(plan[0][2].value_or(""), "e") << *sql;
  EXPECT_EQ(plan[0][3].value_or(""), "range") << *sql;
  EXPECT_EQ(plan[0][5].value_or(""), "e_upd") << *sql;
  EXPECT_EQ(plan[0][9].value_or("").find("filesort"), std::string::npos) << *sql;
  auto page = Pull(*conn, *schema, q);
  ASSERT_TRUE(page.ok()) << page.status().ToString();
  ASSERT_EQ(page->rows(), 100u);
  EXPECT_EQ(page->at(0, 0).i, 6001);
  EXPECT_EQ(page->bytes(page->at(0, 2)), "V");
  // The lookback page too.
  q.columns = {"id"};
  q.lookback_seconds = 5;
  params = PageParameters(*schema, q, quote);
  sql = BuildPageSql(*schema, q, &*params);
  plan = QueryText(*conn, "EXPLAIN " + *sql);
  ASSERT_EQ(plan.size(), 1u);
  EXPECT_EQ(plan[0][3].value_or(""), "range") << *sql;
  page = Pull(*conn, *schema, q);
  ASSERT_TRUE(page.ok()) << page.status().ToString();
  EXPECT_EQ(page->at(0, 0).i, 5950);  // 00:09:55 is the first second of the window
}

}  // namespace
}  // namespace siphon::mysql

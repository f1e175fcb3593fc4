#include <sqlite3.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <set>
#include <thread>
#include <type_traits>

#include <gtest/gtest.h>

#include "adapters/sqlite/sqlite_connection.hpp"
#include "adapters/sqlite/sqlite_dialect.hpp"
#include "adapters/sqlite/sqlite_source.hpp"
#include "tests/source_await.hpp"

namespace siphon::sqlite_source {
namespace {

TEST(SqliteDialect, DeclaredTypes) {
  struct Case {
    const char* declared;
    ColumnType type;
    OrderKind order;
  } cases[] = {
      {"INTEGER", ColumnType::kInteger, OrderKind::kNumber},
      {"bigint", ColumnType::kInteger, OrderKind::kNumber},
      {"VARCHAR(20)", ColumnType::kText, OrderKind::kText},
      {"TEXT", ColumnType::kText, OrderKind::kText},
      {"CLOB", ColumnType::kText, OrderKind::kText},
      {"BLOB", ColumnType::kBlob, OrderKind::kBytes},
      {"", ColumnType::kBlob, OrderKind::kNumber},
      {"REAL", ColumnType::kReal, OrderKind::kNumber},
      {"DOUBLE PRECISION", ColumnType::kReal, OrderKind::kNumber},
      {"DECIMAL(10,2)", ColumnType::kAny, OrderKind::kNumber},
      {"DATE", ColumnType::kAny, OrderKind::kTime},
      {"DATETIME", ColumnType::kAny, OrderKind::kTime},
      {"timestamp", ColumnType::kAny, OrderKind::kTime},
      {"TIME", ColumnType::kAny, OrderKind::kOther},
      {"BOOLEAN", ColumnType::kInteger, OrderKind::kOther},
  };
  for (const auto& c : cases) {
    SqliteTypeClass cls = ClassifyDeclaredType(c.declared);
    EXPECT_EQ(cls.type, c.type) << c.declared;
    EXPECT_EQ(cls.order, c.order) << c.declared;
  }
}

TEST(SqliteDialect, LookbackBound) {
  EXPECT_EQ(std::get<std::string>(*LookbackBound(std::string("2024-01-01 00:00:03.250"), 5)),
            "2023-12-31 23:59:58");
  EXPECT_EQ(std::get<std::string>(*LookbackBound(std::string("2024-03-01T10:00:00Z"), 1.5)),
            "2024-03-01T09:59:58");
  EXPECT_EQ(std::get<std::string>(*LookbackBound(std::string("2024-03-01"), 1)), "2024-02-29");
  EXPECT_EQ(std::get<int64_t>(*LookbackBound(int64_t{1000}, 2.5)), 997);
  EXPECT_FALSE(LookbackBound(std::string("soon"), 5).has_value());
}

TEST(SqliteDialect, PageSql) {
  TableSchema t;
  t.qualified_name = "events";
  t.columns = {{"id", "INTEGER", ColumnType::kInteger, OrderKind::kNumber, false},
               {"at", "TEXT", ColumnType::kText, OrderKind::kText, false},
               {"we\"ird", "TEXT", ColumnType::kText, OrderKind::kText, true}};
  PageQuery q;
  q.columns = {"id", "we\"ird"};
  q.order_by = {"at", "id"};
  q.limit = 3;
  EXPECT_EQ(
      *BuildPageSql(t, q),
      "SELECT \"id\", \"we\"\"ird\" FROM \"main\".\"events\" ORDER BY \"at\", \"id\" LIMIT 3");
  q.after = Cursor{std::string("x"), int64_t{1}};
  EXPECT_EQ(*BuildPageSql(t, q),
            "SELECT \"id\", \"we\"\"ird\" FROM \"main\".\"events\" WHERE (\"at\", \"id\") > (?1, "
            "?2) ORDER BY \"at\", \"id\" LIMIT 3");
  q.lookback_seconds = 5;
  EXPECT_EQ(*BuildPageSql(t, q),
            "SELECT \"id\", \"we\"\"ird\" FROM \"main\".\"events\" WHERE \"at\" >= ?1 ORDER BY "
            "\"at\", \"id\" LIMIT 3");
  q.columns = {"nope"};
  EXPECT_EQ(BuildPageSql(t, q).status().kind(), ErrorKind::kSchema);
}

// A dot is part of a table's name unless it follows "main" or "temp", the only schemas of a
// source connection ("my.table" was read as table "table" of a database "my": not found).
// Order keys: equal for values NOCASE or RTRIM holds equal, and for 1 and 1.0, which SQLite
// compares as one number; different for text and blob, or a number and its text.
TEST(SqliteDialect, OrderKeysAreEqualWhereSQLiteComparesEqual) {
  RowBatch page(2);
  auto row = [&](auto value, int64_t n) {
    using T = decltype(value);
    if constexpr (std::is_same_v<T, double>) {
      page.AddReal(value);
    } else if constexpr (std::is_same_v<T, int64_t>) {
      page.AddInt(value);
    } else {
      page.AddText(value);
    }
    page.AddInt(n);
  };
  row(std::string_view("Ab"), 1);    // 0
  row(std::string_view("aB  "), 1);  // 1
  row(std::string_view("ab"), 2);    // 2
  row(int64_t{1}, 1);                // 3
  row(1.0, 1);                       // 4
  row(std::string_view("1"), 1);     // 5
  row(std::string_view("é"), 1);     // 6
  row(std::string_view("É"), 1);     // 7
  page.AddBlob("ab");
  page.AddInt(2);  // 8
  auto key = [&](size_t r) { return OrderKeyOf(page, r, {0, 1}); };
  EXPECT_EQ(key(0), key(1));
  EXPECT_NE(key(1), key(2));
  EXPECT_EQ(key(3), key(4));
  EXPECT_NE(key(3), key(5));
  EXPECT_NE(key(6), key(7));  // NOCASE folds ASCII letters only
  EXPECT_NE(key(2), key(8));

  TableSchema t;
  t.qualified_name = "main.ev";
  t.columns = {{"name", "TEXT", ColumnType::kText, OrderKind::kText, false},
               {"n", "INTEGER", ColumnType::kInteger, OrderKind::kNumber, false}};
  PageQuery q;
  q.columns = {"n", "name"};
  q.order_by = {"name"};
  EXPECT_EQ(OrderKeyColumns(t, q), std::vector<size_t>{1});
  q.order_by = {"n"};
  EXPECT_TRUE(OrderKeyColumns(t, q).empty());  // numbers compare by their values' bytes
  t.primary_key = {"name"};
  q.order_by = {"name"};
  EXPECT_TRUE(OrderKeyColumns(t, q).empty());  // no two rows share the primary key
}

TEST(SqliteDialect, ADotInATableNameIsPartOfIt) {
  struct Case {
    const char* name;
    const char* schema;
    const char* table;
  } cases[] = {
      {"events", "main", "events"},
      {"main.events", "main", "events"},
      {"MAIN.events", "MAIN", "events"},
      {"temp.t", "temp", "t"},
      {"my.table", "main", "my.table"},
      {"main.my.table", "main", "my.table"},
      {".x", "main", ".x"},
  };
  for (const auto& c : cases) {
    TableRef ref = SplitTableName(c.name);
    EXPECT_EQ(ref.schema, c.schema) << c.name;
    EXPECT_EQ(ref.table, c.table) << c.name;
  }
}

// A real SQLite file in a fresh directory, written with the plain C API.
class SqliteSourceTest : public ::testing::Test, protected testing_support::SourceAwait {
 protected:
  SqliteSourceTest() : SourceAwait(&loop_) {}
  void SetUp() override {
    char tmpl[] = "/tmp/siphon-sqlite-src-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/app.db";
    ASSERT_EQ(sqlite3_open(path_.c_str(), &db_), SQLITE_OK);
    uv_loop_init(&loop_);
  }
  void TearDown() override {
    sqlite3_close(db_);
    uv_run(&loop_, UV_RUN_DEFAULT);
    uv_loop_close(&loop_);
    std::filesystem::remove_all(dir_);
  }
  void Exec(const std::string& sql) {
    char* err = nullptr;
    ASSERT_EQ(sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err), SQLITE_OK) << err;
  }
  std::string QueryPlan(const std::string& sql) {
    sqlite3_stmt* stmt = nullptr;
    std::string plan;
    EXPECT_EQ(sqlite3_prepare_v2(db_, ("EXPLAIN QUERY PLAN " + sql).c_str(), -1, &stmt, nullptr),
              SQLITE_OK);
    while (sqlite3_step(stmt) == SQLITE_ROW) {
      plan += reinterpret_cast<const char*>(sqlite3_column_text(stmt, 3));
      plan += "\n";
    }
    sqlite3_finalize(stmt);
    return plan;
  }

  std::unique_ptr<SourceConnection> NewConnection(const std::string& path) {
    auto source = Definition().make({{"path", path}});
    EXPECT_TRUE(source.ok());
    return (*source)->NewConnection(&loop_);
  }

  std::string dir_, path_;
  sqlite3* db_ = nullptr;
  uv_loop_t loop_;
};

TEST_F(SqliteSourceTest, ReflectsColumnsKeyAndEstimate) {
  Exec(
      "CREATE TABLE orders (region TEXT NOT NULL, id INTEGER NOT NULL, amount DECIMAL(10,2),"
      " note TEXT, created DATETIME NOT NULL, payload BLOB, PRIMARY KEY (region, id));"
      "CREATE TABLE t2 (id INTEGER PRIMARY KEY, x);"
      "INSERT INTO t2 (id, x) VALUES (41, 1), (42, 2)");
  auto conn = NewConnection(path_);
  ASSERT_TRUE(Connect(*conn).ok());
  auto schema = Reflect(*conn, "orders");
  ASSERT_TRUE(schema.ok()) << schema.status().ToString();
  ASSERT_EQ(schema->columns.size(), 6u);
  EXPECT_EQ(schema->columns[0].name, "region");
  EXPECT_FALSE(schema->columns[0].nullable);
  EXPECT_EQ(schema->columns[2].source_type, "DECIMAL(10,2)");
  EXPECT_EQ(schema->columns[4].order, OrderKind::kTime);
  EXPECT_EQ(schema->columns[5].type, ColumnType::kBlob);
  EXPECT_EQ(schema->primary_key, (std::vector<std::string>{"region", "id"}));
  auto t2 = Reflect(*conn, "main.t2");
  ASSERT_TRUE(t2.ok());
  EXPECT_EQ(t2->primary_key, std::vector<std::string>{"id"});
  EXPECT_FALSE(t2->columns[0].nullable);  // INTEGER PRIMARY KEY is the rowid
  EXPECT_EQ(t2->columns[1].type, ColumnType::kBlob);
  EXPECT_EQ(t2->row_estimate, 42);
  auto missing = Reflect(*conn, "nope");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().kind(), ErrorKind::kConfig);  // the script's `from`: exit 2
  EXPECT_NE(missing.status().message().find("nope"), std::string::npos);
}

// A PRIMARY KEY is NOT NULL as in any database, though SQLite lets one not declared so hold
// NULL: a page that meets such a row, or would page past one, fails naming the column.
TEST_F(SqliteSourceTest, APrimaryKeyIsNotNullAndARowWithoutOneFailsThePage) {
  Exec(
      "CREATE TABLE s (k TEXT PRIMARY KEY, v TEXT);"
      "INSERT INTO s VALUES ('a', '1'), ('b', '2'), (NULL, 'none'), ('c', '3')");
  auto conn = NewConnection(path_);
  ASSERT_TRUE(Connect(*conn).ok());
  auto schema = Reflect(*conn, "s");
  ASSERT_TRUE(schema.ok()) << schema.status().ToString();
  EXPECT_FALSE(schema->columns[0].nullable);
  EXPECT_TRUE(schema->columns[1].nullable);
  EXPECT_TRUE(conn->CheckCursor(*schema, {"k"}, 1, false).ok());
  PageQuery q;
  q.columns = {"v", "k"};
  q.order_by = {"k"};
  q.limit = 2;
  auto first = Pull(*conn, *schema, q);  // NULL sorts first
  ASSERT_FALSE(first.ok());
  EXPECT_EQ(first.status().kind(), ErrorKind::kSchema);
  EXPECT_NE(first.status().message().find("key column \"k\""), std::string::npos)
      << first.status().ToString();
  q.after = Cursor{std::string("a")};  // past the start: the page never returns it
  auto later = Pull(*conn, *schema, q);
  ASSERT_FALSE(later.ok());
  EXPECT_NE(later.status().message().find("key column \"k\""), std::string::npos);
  Exec("DELETE FROM s WHERE k IS NULL");
  later = Pull(*conn, *schema, q);
  ASSERT_TRUE(later.ok()) << later.status().ToString();
  EXPECT_EQ(later->rows(), 2u);
}

TEST_F(SqliteSourceTest, TablesWithOddNamesAreReadAsTheyAreNamed) {
  Exec(
      "CREATE TABLE \"my.table\" (id INTEGER PRIMARY KEY, v TEXT);"
      "INSERT INTO \"my.table\" VALUES (1, 'dot');"
      "CREATE TABLE \"we\"\"ird ü t\" (\"sp ace\" INTEGER PRIMARY KEY, \"q\"\"c\" TEXT);"
      "INSERT INTO \"we\"\"ird ü t\" VALUES (7, 'odd')");
  auto conn = NewConnection(path_);
  ASSERT_TRUE(Connect(*conn).ok());
  for (const char* name : {"my.table", "main.my.table", "we\"ird ü t"}) {
    auto schema = Reflect(*conn, name);
    ASSERT_TRUE(schema.ok()) << name << ": " << schema.status().ToString();
    PageQuery q;
    q.order_by = {schema->primary_key[0]};
    q.after = Cursor{int64_t{0}};
    auto batch = Pull(*conn, *schema, q);
    ASSERT_TRUE(batch.ok()) << name << ": " << batch.status().ToString();
    ASSERT_EQ(batch->rows(), 1u) << name;
    EXPECT_EQ(schema->row_estimate, batch->at(0, 0).i) << name;
  }
}

TEST_F(SqliteSourceTest, MissingFileAndNotADatabase) {
  auto conn = NewConnection(dir_ + "/absent.db");
  Status s = Connect(*conn);
  // The script's wrong path, not a passing failure: `once` does not retry it (exit 2).
  EXPECT_EQ(s.kind(), ErrorKind::kConfig) << s.ToString();
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/absent.db"));  // read-only never creates
  FILE* f = fopen((dir_ + "/junk.db").c_str(), "w");
  fputs("this is not a database, just text that is long enough to have a header.......", f);
  fclose(f);
  auto junk = NewConnection(dir_ + "/junk.db");
  EXPECT_EQ(Connect(*junk).kind(), ErrorKind::kConfig);
}

// An open connection follows the file its path names: a copy renamed over it, or the file
// deleted, is noticed by the next Connect (the handle went on reading the old file).
TEST_F(SqliteSourceTest, ConnectReopensAFileReplacedOrDeleted) {
  Exec("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT); INSERT INTO t VALUES (1, 'old')");
  auto conn = NewConnection(path_);
  ASSERT_TRUE(Connect(*conn).ok());
  auto schema = Reflect(*conn, "t");
  ASSERT_TRUE(schema.ok());
  PageQuery q;
  q.columns = {"id", "v"};
  q.order_by = {"id"};
  auto values = [&] {
    auto batch = Pull(*conn, *schema, q);
    EXPECT_TRUE(batch.ok()) << batch.status().ToString();
    std::string out;
    for (size_t r = 0; batch.ok() && r < batch->rows(); ++r) {
      out += (r ? "," : "") + std::string(batch->bytes(batch->at(r, 1)));
    }
    return out;
  };
  EXPECT_EQ(values(), "old");
  sqlite3* other = nullptr;
  ASSERT_EQ(sqlite3_open((dir_ + "/new.db").c_str(), &other), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(other,
                         "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);"
                         "INSERT INTO t VALUES (1, 'new'), (2, 'two')",
                         nullptr, nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(other);
  std::filesystem::rename(dir_ + "/new.db", path_);
  ASSERT_TRUE(Connect(*conn).ok());
  EXPECT_EQ(values(), "new,two");
  ASSERT_TRUE(Connect(*conn).ok());  // the same file: the same handle
  EXPECT_EQ(values(), "new,two");
  std::filesystem::remove(path_);
  Status gone = Connect(*conn);
  EXPECT_EQ(gone.kind(), ErrorKind::kConfig) << gone.ToString();
  EXPECT_NE(gone.message().find(path_), std::string::npos) << gone.ToString();
  EXPECT_FALSE(std::filesystem::exists(path_));
}

TEST_F(SqliteSourceTest, OpensReadOnly) {
  Exec("CREATE TABLE t (id INTEGER PRIMARY KEY)");
  auto conn = NewConnection(path_);
  ASSERT_TRUE(Connect(*conn).ok());
  sqlite3* ro = nullptr;
  // The same flags the adapter uses: a write must fail.
  ASSERT_EQ(sqlite3_open_v2(("file:" + path_ + "?mode=ro").c_str(), &ro,
                            SQLITE_OPEN_READONLY | SQLITE_OPEN_URI, nullptr),
            SQLITE_OK);
  EXPECT_EQ(sqlite3_exec(ro, "INSERT INTO t VALUES (1)", nullptr, nullptr, nullptr),
            SQLITE_READONLY);
  sqlite3_close(ro);
}

TEST_F(SqliteSourceTest, ValuesKeepTheirStorageClass) {
  Exec(
      "CREATE TABLE v (id INTEGER PRIMARY KEY, a, b TEXT, c BLOB, d REAL);"
      "INSERT INTO v VALUES (1, 9223372036854775807, 'emoji 🦄 тест', x'', 1.5),"
      " (2, 'text in untyped', NULL, x'00ff', -0.25), (3, 2.75, '', NULL, NULL)");
  auto conn = NewConnection(path_);
  ASSERT_TRUE(Connect(*conn).ok());
  auto schema = Reflect(*conn, "v");
  ASSERT_TRUE(schema.ok());
  PageQuery q;
  q.columns = {"id", "a", "b", "c", "d"};
  q.order_by = {"id"};
  auto batch = Pull(*conn, *schema, q);
  ASSERT_TRUE(batch.ok()) << batch.status().ToString();
  ASSERT_EQ(batch->rows(), 3u);
  EXPECT_EQ(batch->at(0, 1).type, ValueType::kInt);
  EXPECT_EQ(batch->at(0, 1).i, INT64_MAX);
  EXPECT_EQ(batch->bytes(batch->at(0, 2)), "emoji 🦄 тест");
  EXPECT_EQ(batch->at(0, 3).type, ValueType::kBlob);
  EXPECT_EQ(batch->bytes(batch->at(0, 3)), "");
  EXPECT_EQ(batch->at(0, 4).d, 1.5);
  EXPECT_EQ(batch->at(1, 1).type, ValueType::kText);
  EXPECT_EQ(batch->at(1, 2).type, ValueType::kNull);
  EXPECT_EQ(batch->bytes(batch->at(1, 3)), std::string("\x00\xff", 2));
  EXPECT_EQ(batch->at(2, 1).type, ValueType::kReal);
  EXPECT_EQ(batch->at(2, 2).type, ValueType::kText);
  EXPECT_EQ(batch->at(2, 3).type, ValueType::kNull);
}

// Thousands of rows tied on the cursor value, small pages, more tied rows added in between:
// every row arrives exactly once.
TEST_F(SqliteSourceTest, KeysetPagingNeverSkipsTies) {
  Exec(
      "CREATE TABLE e (id INTEGER PRIMARY KEY, at TEXT NOT NULL, v TEXT);"
      "CREATE INDEX e_at ON e (at, id);"
      "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000)"
      " INSERT INTO e SELECT i, CASE WHEN i % 3 = 0 THEN '2024-01-01 00:00:00' ELSE"
      " '2024-01-0' || (1 + i % 5) || ' 12:00:00' END, 'v' || i FROM n");
  auto conn = NewConnection(path_);
  ASSERT_TRUE(Connect(*conn).ok());
  auto schema = Reflect(*conn, "e");
  ASSERT_TRUE(schema.ok());
  PageQuery q;
  q.columns = {"id", "at"};
  q.order_by = {"at", "id"};
  q.limit = 7;
  std::multiset<int64_t> seen;
  int pages = 0;
  bool added = false;
  for (;;) {
    auto batch = Pull(*conn, *schema, q);
    ASSERT_TRUE(batch.ok()) << batch.status().ToString();
    if (batch->rows() == 0) break;
    for (size_t r = 0; r < batch->rows(); ++r) seen.insert(batch->at(r, 0).i);
    size_t last = batch->rows() - 1;
    q.after = Cursor{CursorValueOf(*batch, last, 1), CursorValueOf(*batch, last, 0)};
    if (++pages == 100 && !added) {
      // Rows tied with the current watermark but with higher keys, and some later.
      Exec("INSERT INTO e SELECT 3000 + id, at, 'late' FROM e WHERE id <= 60");
      added = true;
    }
  }
  EXPECT_EQ(seen.size(), 3060u);
  EXPECT_EQ(std::set<int64_t>(seen.begin(), seen.end()).size(), 3060u);
  // SQLite serves the row-value keyset from the index.
  std::string plan = QueryPlan(conn->PageSql(*schema, q));
  EXPECT_NE(plan.find("USING COVERING INDEX e_at"), std::string::npos) << plan;
  EXPECT_NE(plan.find("SEARCH"), std::string::npos) << plan;
}

TEST_F(SqliteSourceTest, LookbackRereadsTheWindow) {
  Exec(
      "CREATE TABLE e (id INTEGER PRIMARY KEY, at TEXT NOT NULL);"
      "INSERT INTO e VALUES (1, '2024-01-01T09:59:50Z'), (2, '2024-01-01T09:59:56Z'),"
      " (3, '2024-01-01T10:00:00Z'), (4, '2024-01-01T10:00:01Z')");
  auto conn = NewConnection(path_);
  ASSERT_TRUE(Connect(*conn).ok());
  auto schema = Reflect(*conn, "e");
  ASSERT_TRUE(schema.ok());
  PageQuery q;
  q.columns = {"id"};
  q.order_by = {"at", "id"};
  q.after = Cursor{std::string("2024-01-01T10:00:00Z"), int64_t{3}};
  q.lookback_seconds = 5;
  auto batch = Pull(*conn, *schema, q);
  ASSERT_TRUE(batch.ok()) << batch.status().ToString();
  ASSERT_EQ(batch->rows(), 3u);
  EXPECT_EQ(batch->at(0, 0).i, 2);
}

// A DATETIME column may hold Julian days (reals) and unix times (integers): the window is
// seconds of either. It was subtracted from a Julian day as days: "5 s" re-read 5 days.
TEST_F(SqliteSourceTest, LookbackOnJulianDaysAndUnixTimesCountsSeconds) {
  Exec(
      "CREATE TABLE j (id INTEGER PRIMARY KEY, at DATETIME NOT NULL);"
      "INSERT INTO j VALUES (1, 2460310.5 - 2.0), (2, 2460310.5 - 10.0 / 86400),"
      " (3, 2460310.5 - 4.0 / 86400), (4, 2460310.5), (5, 2460310.5 + 1.0 / 86400);"
      "CREATE TABLE u (id INTEGER PRIMARY KEY, at DATETIME NOT NULL);"
      "INSERT INTO u VALUES (1, 1700000000 - 172800), (2, 1700000000 - 10),"
      " (3, 1700000000 - 4), (4, 1700000000), (5, 1700000001);");
  auto conn = NewConnection(path_);
  ASSERT_TRUE(Connect(*conn).ok());
  for (const auto& [table, at] : {std::pair<std::string, CursorValue>{"j", 2460310.5},
                                  std::pair<std::string, CursorValue>{"u", int64_t{1700000000}}}) {
    auto schema = Reflect(*conn, table);
    ASSERT_TRUE(schema.ok());
    PageQuery q;
    q.columns = {"id"};
    q.order_by = {"at", "id"};
    q.after = Cursor{at, int64_t{4}};
    q.lookback_seconds = 5;
    auto batch = Pull(*conn, *schema, q);
    ASSERT_TRUE(batch.ok()) << batch.status().ToString();
    ASSERT_EQ(batch->rows(), 3u) << table;
    EXPECT_EQ(batch->at(0, 0).i, 3) << table;
  }
}

TEST_F(SqliteSourceTest, DestroyWhileAPageRunsNeverCallsBack) {
  Exec(
      "CREATE TABLE big (id INTEGER PRIMARY KEY, v TEXT);"
      "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200000)"
      " INSERT INTO big SELECT i, hex(randomblob(16)) FROM n");
  auto conn = NewConnection(path_);
  ASSERT_TRUE(Connect(*conn).ok());
  auto schema = Reflect(*conn, "big");
  ASSERT_TRUE(schema.ok());
  PageQuery q;
  q.columns = {"id", "v"};
  q.order_by = {"v"};  // no index: a long sort on the worker
  q.limit = 200000;
  bool called = false;
  conn->Pull(*schema, q, [&](Result<RowBatch>) { called = true; });
  conn.reset();
  uv_run(&loop_, UV_RUN_DEFAULT);
  EXPECT_FALSE(called);
}

TEST_F(SqliteSourceTest, CloseWhileAPageRunsAnswersCancelledOnce) {
  Exec(
      "CREATE TABLE big (id INTEGER PRIMARY KEY, v TEXT);"
      "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000)"
      " INSERT INTO big SELECT i, hex(randomblob(16)) FROM n");
  auto conn = NewConnection(path_);
  ASSERT_TRUE(Connect(*conn).ok());
  auto schema = Reflect(*conn, "big");
  ASSERT_TRUE(schema.ok());
  PageQuery q;
  q.columns = {"id", "v"};
  q.order_by = {"v"};
  q.limit = 100000;
  int calls = 0;
  Status status;
  conn->Pull(*schema, q, [&](Result<RowBatch> b) {
    ++calls;
    status = b.status();
  });
  conn->Close();
  uv_run(&loop_, UV_RUN_DEFAULT);
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(status.kind(), ErrorKind::kCancelled);
  // Reopens after Close.
  ASSERT_TRUE(Connect(*conn).ok());
  q.limit = 3;
  auto page = Pull(*conn, *schema, q);
  ASSERT_TRUE(page.ok()) << page.status().ToString();
  EXPECT_EQ(page->rows(), 3u);
}

TEST_F(SqliteSourceTest, LoopStaysResponsiveDuringAPage) {
  Exec(
      "CREATE TABLE big (id INTEGER PRIMARY KEY, v TEXT);"
      "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 300000)"
      " INSERT INTO big SELECT i, hex(randomblob(16)) FROM n");
  auto conn = NewConnection(path_);
  ASSERT_TRUE(Connect(*conn).ok());
  auto schema = Reflect(*conn, "big");
  ASSERT_TRUE(schema.ok());
  PageQuery q;
  q.columns = {"id", "v"};
  q.order_by = {"v"};
  q.limit = 300000;
  int ticks = 0;
  bool done = false;
  uv_timer_t timer;
  uv_timer_init(&loop_, &timer);
  timer.data = &ticks;
  uv_timer_start(
      &timer, [](uv_timer_t* t) { ++*static_cast<int*>(t->data); }, 1, 1);
  conn->Pull(*schema, q, [&](Result<RowBatch> b) {
    EXPECT_TRUE(b.ok());
    EXPECT_EQ(b->rows(), 300000u);
    done = true;
  });
  while (!done) uv_run(&loop_, UV_RUN_ONCE);
  uv_close(reinterpret_cast<uv_handle_t*>(&timer), nullptr);
  uv_run(&loop_, UV_RUN_DEFAULT);
  // The 1 ms timer kept firing while the page was read on a worker thread.
  EXPECT_GT(ticks, 5);
}

}  // namespace
}  // namespace siphon::sqlite_source

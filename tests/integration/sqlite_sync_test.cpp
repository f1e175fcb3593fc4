// End-to-end: the real siphon binary replicates a SQLite file (`siphon.sqlite{ path }`, an
// app's local database) into the SQLite target, incrementally and by full refresh.
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <fstream>

#include "tests/integration/harness/harness.hpp"

namespace siphon::test {
namespace {

std::string Dump(const ProcessResult& r) {
  return "exit " + std::to_string(r.exit_code) + "\nstdout:\n" + r.out + "\nstderr:\n" + r.err;
}

class SqliteSync : public ::testing::Test {
 protected:
  /// Runs statements on the source file (a writable connection, closed at once).
  void SourceExec(const std::string& sql) { SqliteExec(SourcePath(), sql); }
  std::string SourcePath() const { return dir_.File("app.db"); }
  std::string Replica() const { return dir_.File("replica.db"); }
  std::string Script(const std::string& tables) {
    std::string path = dir_.File("deploy.lua");
    WriteFile(path, "local app = siphon.sqlite { path = '" + SourcePath() +
                        "' }\nsiphon.target { path = '" + Replica() + "' }\n" + tables);
    return path;
  }
  ProcessResult Once(const std::string& script) {
    return siphon::test::Run({SIPHON_BIN, "once", script});
  }
  std::string TargetScalar(const std::string& sql) {
    Rows r = SqliteQuery(Replica(), sql);
    return r.empty() || r[0].empty() || !r[0][0] ? "" : *r[0][0];
  }
  std::string SourceScalar(const std::string& sql) {
    Rows r = SqliteQuery(SourcePath(), sql);
    return r.empty() || r[0].empty() || !r[0][0] ? "" : *r[0][0];
  }
  std::string Cell(const std::string& table, int id, const std::string& col) {
    return TargetScalar("SELECT typeof(" + col + ") || ':' || coalesce(quote(" + col +
                        "), '') FROM " + table + " WHERE id = " + std::to_string(id));
  }

  TempDir dir_;
};

// A source file that is not there: SQLite's "unable to open database file" alone did not say
// that nothing was there. And it is the script's mistake, not a passing one: `once` retried it
// 3 times (4.5 s) and exited 1; it now gives up at once, exit 2, as `check` does.
TEST_F(SqliteSync, AMissingSourceFileIsNamedAsMissingAndNotRetried) {
  std::string path = dir_.File("deploy.lua");
  WriteFile(path, "local app = siphon.sqlite { path = 'nosuch.db' }\nsiphon.target { path = '" +
                      Replica() + "' }\nsiphon.replicate 's' { source = app }\n");
  const std::string message = "open " + dir_.File("nosuch.db") +
                              " (read-only): unable to open database file (no such file)";
  const auto started = std::chrono::steady_clock::now();
  auto r = Once(path);
  const auto took = std::chrono::steady_clock::now() - started;
  EXPECT_EQ(r.exit_code, 2) << Dump(r);
  EXPECT_NE(r.err.find(message), std::string::npos) << Dump(r);
  EXPECT_NE(r.err.find("giving up"), std::string::npos) << Dump(r);
  EXPECT_EQ(r.err.find("retrying"), std::string::npos) << Dump(r);
  EXPECT_LT(took, std::chrono::seconds(2)) << Dump(r);
  auto check = siphon::test::Run({SIPHON_BIN, "check", path});
  EXPECT_EQ(check.exit_code, 2) << Dump(check);
  EXPECT_NE(check.err.find(message), std::string::npos) << Dump(check);
}

// A misspelt table or column is answered with the closest name the file has (it said only
// "table custmers not found", and named no column close to "emial"). Both are mistakes in
// the script: a missing table exited 1 where a missing column exited 2; both exit 2 now, from
// once and check.
TEST_F(SqliteSync, AMisspeltTableOrColumnNamesTheClosestOne) {
  SourceExec(
      "CREATE TABLE customers (id INTEGER PRIMARY KEY, email TEXT); CREATE TABLE orders (id "
      "INTEGER PRIMARY KEY)");
  const std::string script = Script("siphon.replicate 'c' { source = app, from = 'custmers' }\n");
  auto r = Once(script);
  EXPECT_EQ(r.exit_code, 2) << Dump(r);
  EXPECT_NE(r.err.find("table custmers not found; did you mean from = \"customers\"?"),
            std::string::npos)
      << Dump(r);
  r = siphon::test::Run({SIPHON_BIN, "check", script});
  EXPECT_EQ(r.exit_code, 2) << Dump(r);
  EXPECT_NE(r.err.find("table custmers not found; did you mean from = \"customers\"?"),
            std::string::npos)
      << Dump(r);
  r = Once(Script("siphon.replicate 'c' { source = app, from = 'main.Customer' }\n"));
  EXPECT_NE(r.err.find("table main.Customer not found; did you mean from = \"main.customers\"?"),
            std::string::npos)
      << Dump(r);
  r = Once(Script("siphon.replicate 'c' { source = app, from = 'invoices' }\n"));
  EXPECT_NE(r.err.find("table invoices not found ("), std::string::npos) << Dump(r);
  r = Once(Script(
      "siphon.replicate 'c' { source = app, from = 'customers', columns = { 'id', 'emial' } }\n"));
  EXPECT_EQ(r.exit_code, 2) << Dump(r);
  EXPECT_NE(r.err.find("projected column \"emial\" does not exist in the source; did you mean "
                       "\"email\"? (its columns: id, email)"),
            std::string::npos)
      << Dump(r);
}

TEST_F(SqliteSync, EveryStorageClassRoundTrips) {
  SourceExec(R"sql(
    CREATE TABLE t (id INTEGER PRIMARY KEY, i INTEGER, r REAL, tx TEXT, b BLOB, anything,
                    n NUMERIC, at DATETIME);
    INSERT INTO t VALUES
      (1, 42, 1.5, 'héllo 🌍 "q"', X'00FF00', 7, 10, '2024-02-29 23:59:59.123'),
      (2, -9223372036854775808, 1e308, '', X'', 'text in an untyped column', 2.5,
       '2024-01-01T00:00:00Z'),
      (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
      (4, 9223372036854775807, -0.25, 'line1
line2', X'DEADBEEF', X'01', '12345678901234567890', NULL);
  )sql");
  auto r = Once(Script("siphon.replicate 't' { source = app, from = 't', batch = 3 }\n"));
  ASSERT_EQ(r.exit_code, 0) << Dump(r);
  EXPECT_EQ(Cell("t", 1, "i"), "integer:42");
  EXPECT_EQ(Cell("t", 2, "i"), "integer:-9223372036854775808");
  EXPECT_EQ(Cell("t", 4, "i"), "integer:9223372036854775807");
  EXPECT_EQ(Cell("t", 1, "r"), "real:1.5");
  EXPECT_EQ(Cell("t", 2, "r"), "real:1.0e+308");
  EXPECT_EQ(Cell("t", 1, "tx"), "text:'héllo 🌍 \"q\"'");
  EXPECT_EQ(Cell("t", 2, "tx"), "text:''");
  EXPECT_EQ(Cell("t", 4, "tx"), "text:'line1\nline2'");
  EXPECT_EQ(Cell("t", 1, "b"), "blob:X'00FF00'");
  EXPECT_EQ(Cell("t", 2, "b"), "blob:X''");
  // An untyped column keeps each value's own storage class.
  EXPECT_EQ(Cell("t", 1, "anything"), "integer:7");
  EXPECT_EQ(Cell("t", 2, "anything"), "text:'text in an untyped column'");
  EXPECT_EQ(Cell("t", 4, "anything"), "blob:X'01'");
  EXPECT_EQ(Cell("t", 1, "n"),
            SourceScalar("SELECT typeof(n) || ':' || quote(n) FROM t WHERE id = 1"));
  EXPECT_EQ(Cell("t", 2, "n"),
            SourceScalar("SELECT typeof(n) || ':' || quote(n) FROM t WHERE id = 2"));
  EXPECT_EQ(Cell("t", 1, "at"), "text:'2024-02-29 23:59:59.123'");
  for (const char* col : {"i", "r", "tx", "b", "anything", "n", "at"}) {
    EXPECT_EQ(Cell("t", 3, col), "null:NULL") << col;
  }
}

// A DATETIME or TIME column has NUMERIC affinity: apps keep unix times (integers) and Julian
// days (reals) there beside ISO text. Each value keeps its storage class in the replica, and
// such a column still orders a cursor. (The replica's column was TEXT: 1700000000 became the
// text '1700000000', and 2460000.5 the text '2460000.5'.)
TEST_F(SqliteSync, ADateColumnKeepsNumbersAsNumbers) {
  SourceExec(R"sql(
    CREATE TABLE d (id INTEGER PRIMARY KEY, at DATETIME NOT NULL, t TIME);
    INSERT INTO d VALUES (1, 1700000000, 3600), (2, 2460000.5, 12.5),
                         (3, '2024-01-01 10:00:00', '10:00');
  )sql");
  auto r = Once(Script("siphon.replicate 'd' { source = app, from = 'd', cursor = 'at' }\n"));
  ASSERT_EQ(r.exit_code, 0) << Dump(r);
  EXPECT_EQ(Cell("d", 1, "at"), "integer:1700000000");
  EXPECT_EQ(Cell("d", 2, "at"), "real:2460000.5");
  EXPECT_EQ(Cell("d", 3, "at"), "text:'2024-01-01 10:00:00'");
  EXPECT_EQ(Cell("d", 1, "t"), "integer:3600");
  EXPECT_EQ(Cell("d", 2, "t"), "real:12.5");
  EXPECT_EQ(Cell("d", 3, "t"), "text:'10:00'");
  EXPECT_EQ(TargetScalar("SELECT cursor FROM _siphon_state"), "[\"2024-01-01 10:00:00\",3]");
}

TEST_F(SqliteSync, IncrementalTiedCursorUpdatesAndInsertsArriveExactly) {
  SourceExec(R"sql(
    CREATE TABLE ev (id INTEGER PRIMARY KEY, v INTEGER NOT NULL, updated_at TEXT NOT NULL);
    CREATE INDEX ev_sync ON ev (updated_at, id);
    WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 3000)
    INSERT INTO ev SELECT n, n, '2024-01-01 00:00:00' FROM g;
  )sql");
  std::string script = Script(
      "siphon.replicate 'ev' { source = app, from = 'ev', cursor = 'updated_at', batch = 7 }\n");
  auto r = Once(script);
  ASSERT_EQ(r.exit_code, 0) << Dump(r);
  EXPECT_EQ(TargetScalar("SELECT count(*) || '/' || count(DISTINCT id) || '/' || sum(id) FROM ev"),
            "3000/3000/4501500");
  SourceExec(R"sql(
    WITH RECURSIVE g(n) AS (SELECT 3001 UNION ALL SELECT n + 1 FROM g WHERE n < 4000)
    INSERT INTO ev SELECT n, n, '2024-01-01 00:00:00' FROM g;
    UPDATE ev SET v = -v, updated_at = '2024-01-01 00:00:01' WHERE id % 100 = 0;
  )sql");
  r = Once(script);
  ASSERT_EQ(r.exit_code, 0) << Dump(r);
  const char* digest = "SELECT count(*) || '/' || count(DISTINCT id) || '/' || sum(v) FROM ev";
  EXPECT_EQ(TargetScalar(digest), SourceScalar(digest));
  EXPECT_EQ(TargetScalar("SELECT cursor FROM _siphon_state WHERE table_name = 'ev'"),
            "[\"2024-01-01 00:00:01\",4000]");
  // Nothing changed: a run reads nothing and writes nothing new.
  r = Once(script);
  ASSERT_EQ(r.exit_code, 0) << Dump(r);
  EXPECT_EQ(TargetScalar(digest), SourceScalar(digest));
}

// A blob in the last row of a page stopped the table for good ("cursor column is NULL"): a
// BLOB key had no order at all, and a blob in a TEXT cursor column could not be a position.
// Both page by their bytes now, as SQLite orders them (numbers, text, then blobs).
TEST_F(SqliteSync, BlobKeysAndBlobCursorValuesPageByTheirBytes) {
  SourceExec(R"sql(
    CREATE TABLE k (id INTEGER PRIMARY KEY, v TEXT NOT NULL);
    INSERT INTO k VALUES (1, 'a'), (2, x'62');
    CREATE TABLE b (k BLOB NOT NULL PRIMARY KEY, n INTEGER NOT NULL);
    INSERT INTO b VALUES (x'', 1), (x'00', 2), (x'0000', 3), (x'ff', 4), (x'61', 5), (x'6100', 6);
  )sql");
  std::string script = Script(R"(
siphon.replicate "k" { source = app, from = "k", cursor = "v", batch = 2 }
siphon.replicate "b" { source = app, from = "b", batch = 2 })");
  auto r = Once(script);
  ASSERT_EQ(r.exit_code, 0) << Dump(r);
  EXPECT_EQ(TargetScalar("SELECT cursor FROM _siphon_state WHERE table_name = 'k'"),
            R"([{"bytes_hex":"62"},2])");
  EXPECT_EQ(TargetScalar("SELECT group_concat(hex(k), ',') FROM (SELECT k FROM b ORDER BY k)"),
            ",00,0000,61,6100,FF");
  SourceExec("INSERT INTO k VALUES (3, x'63'); INSERT INTO b VALUES (x'6101', 7)");
  r = Once(script);
  ASSERT_EQ(r.exit_code, 0) << Dump(r);
  EXPECT_EQ(TargetScalar("SELECT group_concat(hex(v)) FROM (SELECT v FROM k ORDER BY id)"),
            "61,62,63");
  EXPECT_EQ(TargetScalar("SELECT count(*) FROM b"), "7");
}

// A run that ends on a REAL cursor at Infinity, or on text that is not UTF-8, stored another
// position than the one it reached: [null, 2] (the next runs matched nothing and found
// nothing new, for good) and "a" U+FFFD (past "a\x90", which was never pulled).
TEST_F(SqliteSync, ACursorAtInfinityOrOnTextThatIsNotUtf8IsStoredExactly) {
  SourceExec(R"sql(
    CREATE TABLE r (id INTEGER PRIMARY KEY, at REAL NOT NULL);
    INSERT INTO r VALUES (1, 1.5), (2, 9e999);
    CREATE TABLE s (id INTEGER PRIMARY KEY, v TEXT NOT NULL);
    INSERT INTO s VALUES (1, 'a'), (2, CAST(x'6180' AS TEXT));
  )sql");
  std::string script = Script(R"(
siphon.replicate "r" { source = app, from = "r", cursor = "at" }
siphon.replicate "s" { source = app, from = "s", cursor = "v" }
)");
  auto r = Once(script);
  ASSERT_EQ(r.exit_code, 0) << Dump(r);
  EXPECT_EQ(TargetScalar("SELECT cursor FROM _siphon_state WHERE table_name = 'r'"),
            R"([{"real":"Infinity"},2])");
  EXPECT_EQ(TargetScalar("SELECT cursor FROM _siphon_state WHERE table_name = 's'"),
            R"([{"text_hex":"6180"},2])");
  SourceExec("INSERT INTO r VALUES (3, 9e999); INSERT INTO s VALUES (3, CAST(x'6190' AS TEXT))");
  r = Once(script);
  ASSERT_EQ(r.exit_code, 0) << Dump(r);
  EXPECT_EQ(TargetScalar("SELECT group_concat(id) FROM (SELECT id FROM r ORDER BY id)"), "1,2,3");
  EXPECT_EQ(TargetScalar("SELECT group_concat(hex(v)) FROM (SELECT v FROM s ORDER BY id)"),
            "61,6180,6190");
}

TEST_F(SqliteSync, FullRefreshPicksUpEveryChange) {
  SourceExec(R"sql(
    CREATE TABLE settings (key TEXT PRIMARY KEY NOT NULL, value TEXT, version INTEGER);
    INSERT INTO settings VALUES ('theme', 'dark', 1), ('lang', 'fr', 1), ('tz', 'UTC', 1);
  )sql");
  std::string script =
      Script("siphon.replicate 'settings' { source = app, from = 'settings', batch = 2 }\n");
  auto r = Once(script);
  ASSERT_EQ(r.exit_code, 0) << Dump(r);
  EXPECT_EQ(TargetScalar("SELECT group_concat(key || '=' || value) FROM (SELECT * FROM settings "
                         "ORDER BY key)"),
            "lang=fr,theme=dark,tz=UTC");
  SourceExec(
      "UPDATE settings SET value = 'light', version = 2 WHERE key = 'theme';"
      "INSERT INTO settings VALUES ('font', 'mono', 1);");
  r = Once(script);
  ASSERT_EQ(r.exit_code, 0) << Dump(r);
  EXPECT_EQ(TargetScalar("SELECT group_concat(key || '=' || value) FROM (SELECT * FROM settings "
                         "ORDER BY key)"),
            "font=mono,lang=fr,theme=light,tz=UTC");
  EXPECT_EQ(TargetScalar("SELECT cursor IS NULL FROM _siphon_state"), "1");
  // The source file was only read.
  EXPECT_EQ(SourceScalar("SELECT count(*) FROM sqlite_master WHERE name LIKE '_siphon%'"), "0");
}

// An INT key column of a SQLite source may hold text and blobs too ('A12' beside 7; in a key
// of two columns, which the replica keeps in no rowid): such keys are not compared by range,
// and a full refresh still deletes what the source deleted, whatever its kind.
TEST_F(SqliteSync, AFullRefreshOfAnIntKeyHoldingTextDeletesWhatTheSourceDeleted) {
  SourceExec(R"sql(
    CREATE TABLE codes (code INT NOT NULL, part INT NOT NULL, v TEXT, PRIMARY KEY (code, part));
    INSERT INTO codes VALUES (1, 0, 'a'), (2, 0, 'b'), (7, 0, 'c'), ('A12', 0, 'd'), ('B7', 0, 'e'),
      (x'01', 0, 'f'), (x'02', 0, 'g');
  )sql");
  std::string script =
      Script("siphon.replicate 'codes' { source = app, from = 'codes', batch = 2 }\n");
  auto r = Once(script);
  ASSERT_EQ(r.exit_code, 0) << Dump(r);
  SourceExec("DELETE FROM codes WHERE code IN (2, 'A12', x'01')");
  r = Once(script);
  ASSERT_EQ(r.exit_code, 0) << Dump(r);
  EXPECT_EQ(TargetScalar("SELECT group_concat(typeof(code) || ':' || quote(code) || '=' || v) FROM "
                         "(SELECT * FROM codes ORDER BY code)"),
            "integer:1=a,integer:7=c,text:'B7'=e,blob:X'02'=g");
  EXPECT_EQ(TargetScalar("SELECT cursor_columns FROM _siphon_state"), "[\"code\",\"part\"]");
}

// The usual way to write a table keyed by text: `key TEXT PRIMARY KEY`, without NOT NULL. It
// replicates (it was refused at start-up as a nullable "cursor column", exit 2, though the
// script gave no cursor). SQLite lets such a column hold NULL: a row without a key fails the
// run naming the column instead of being left out, and the table goes on once it has one.
TEST_F(SqliteSync, ATextPrimaryKeyWithoutNotNullReplicates) {
  SourceExec(R"sql(
    CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT);
    INSERT INTO settings VALUES ('theme', 'dark'), ('lang', 'fr');
    CREATE TABLE tags (name TEXT PRIMARY KEY, n INTEGER NOT NULL);
    INSERT INTO tags VALUES ('a', 1), ('b', 2);
  )sql");
  std::string script = Script(
      "siphon.replicate 'settings' { source = app, from = 'settings', batch = 1 }\n"
      "siphon.replicate 'tags' { source = app, from = 'tags', cursor = 'name', batch = 1 }\n");
  auto r = Once(script);
  ASSERT_EQ(r.exit_code, 0) << Dump(r);
  EXPECT_EQ(TargetScalar("SELECT group_concat(key || '=' || value) FROM (SELECT * FROM settings "
                         "ORDER BY key)"),
            "lang=fr,theme=dark");
  EXPECT_EQ(TargetScalar("SELECT count(*) FROM tags"), "2");
  SourceExec(
      "INSERT INTO settings VALUES (NULL, 'orphan');"
      "INSERT INTO tags VALUES (NULL, 3), ('c', 4);");
  r = Once(script);
  EXPECT_EQ(r.exit_code, 1) << Dump(r);
  EXPECT_NE(r.err.find("key column \"key\""), std::string::npos) << Dump(r);
  EXPECT_NE(r.err.find("key column \"name\""), std::string::npos) << Dump(r);
  SourceExec(
      "UPDATE settings SET key = 'orphan' WHERE key IS NULL;"
      "UPDATE tags SET name = 'd' WHERE name IS NULL;");
  r = Once(script);
  ASSERT_EQ(r.exit_code, 0) << Dump(r);
  EXPECT_EQ(TargetScalar("SELECT count(*) FROM settings"), "3");
  EXPECT_EQ(TargetScalar("SELECT group_concat(name) FROM (SELECT name FROM tags ORDER BY name)"),
            "a,b,c,d");
}

// A view's columns are nullable in SQLite's catalog; one taken as it is from a NOT NULL or
// PRIMARY KEY table column is not, so a view replicates by a key, by full refresh or with a
// cursor. (Both tables were refused at start-up: "cursor column "id" of open_orders is
// nullable", exit 2.)
// A table without a primary key but with a UNIQUE index or constraint over NOT NULL columns
// is keyed by it: paged by it, upserted by it, rows deleted on the source swept. Of several,
// the one of fewest columns, then the first by name. It was refused (exit 2) for want of `key`.
TEST_F(SqliteSync, ATableWithAUniqueNotNullIndexIsKeyedByIt) {
  SourceExec(R"sql(
    CREATE TABLE legacy (code TEXT NOT NULL, region INTEGER NOT NULL, ref INTEGER NOT NULL,
                         alt INTEGER NOT NULL UNIQUE, name TEXT);
    CREATE UNIQUE INDEX legacy_code_region ON legacy (code, region);
    CREATE UNIQUE INDEX legacy_ref ON legacy (ref);
    WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 25)
    INSERT INTO legacy SELECT 'c' || n, n % 3, n, 1000 - n, 'n' || n FROM g;
  )sql");
  std::string script =
      Script("siphon.replicate 'legacy' { source = app, from = 'legacy', batch = 4 }\n");
  auto r = siphon::test::Run({SIPHON_BIN, "check", script});
  ASSERT_EQ(r.exit_code, 0) << Dump(r);
  EXPECT_NE(r.out.find("key:     ref (unique index \"legacy_ref\": the table has no primary key)"),
            std::string::npos)
      << Dump(r);
  r = Once(script);
  ASSERT_EQ(r.exit_code, 0) << Dump(r);
  EXPECT_NE(r.err.find("its key [\"ref\"] is the unique index \"legacy_ref\""), std::string::npos)
      << Dump(r);
  EXPECT_EQ(TargetScalar("SELECT group_concat(name) FROM pragma_table_info('legacy') WHERE pk > 0"),
            "ref");
  const std::string sums =
      "SELECT count(*) || '/' || sum(alt) || '/' || sum(length(name)) FROM legacy";
  EXPECT_EQ(TargetScalar(sums), SourceScalar(sums));
  SourceExec(R"sql(
    UPDATE legacy SET name = 'renamed' WHERE ref = 7;
    DELETE FROM legacy WHERE ref IN (3, 20);
    INSERT INTO legacy VALUES ('new', 1, 99, 5, 'added');
  )sql");
  r = Once(script);
  ASSERT_EQ(r.exit_code, 0) << Dump(r);
  EXPECT_EQ(TargetScalar(sums), SourceScalar(sums));
  EXPECT_EQ(TargetScalar("SELECT name FROM legacy WHERE ref = 7"), "renamed");
  EXPECT_EQ(TargetScalar("SELECT count(*) FROM legacy WHERE ref IN (3, 20)"), "0");
}

// A table appended without a key gets one when a UNIQUE index over NOT NULL columns appears:
// the replica is rebuilt under it and pulled again, each row once (not appended twice).
TEST_F(SqliteSync, AnAppendedTableIsRekeyedWhenAUniqueIndexAppears) {
  SourceExec(R"sql(
    CREATE TABLE log (seq INTEGER NOT NULL, msg TEXT NOT NULL);
    WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 30)
    INSERT INTO log SELECT n, 'm' || n FROM g;
  )sql");
  std::string script = Script(
      "siphon.replicate 'log' { source = app, from = 'log', write = 'append', cursor = 'seq', "
      "batch = 7 }\n");
  auto r = Once(script);
  ASSERT_EQ(r.exit_code, 0) << Dump(r);
  EXPECT_EQ(TargetScalar("SELECT count(*) FROM pragma_table_info('log') WHERE pk > 0"), "0");
  SourceExec("CREATE UNIQUE INDEX log_seq ON log (seq); INSERT INTO log VALUES (31, 'm31');");
  r = Once(script);
  ASSERT_EQ(r.exit_code, 0) << Dump(r);
  EXPECT_NE(r.err.find("the key changed from [] to [\"seq\"]"), std::string::npos) << Dump(r);
  EXPECT_EQ(TargetScalar("SELECT group_concat(name) FROM pragma_table_info('log') WHERE pk > 0"),
            "seq");
  EXPECT_EQ(TargetScalar("SELECT count(*) || '/' || sum(seq) FROM log"), "31/496");
}

// A UNIQUE index that cannot stand for a primary key is not the key: one over a nullable
// column (SQLite lets it hold many NULLs), a partial one, one over an expression, one comparing
// a column under a collation not its own (a NOCASE column holding "a" and "A" under a BINARY
// index: equal to a page's comparison). The message names each and why.
TEST_F(SqliteSync, AUniqueIndexThatIsNotLikeAPrimaryKeyIsNotTheKey) {
  SourceExec(R"sql(
    CREATE TABLE loose (a INTEGER UNIQUE, b INTEGER NOT NULL, c TEXT NOT NULL,
                        d TEXT NOT NULL COLLATE NOCASE);
    CREATE UNIQUE INDEX loose_b_partial ON loose (b) WHERE b > 0;
    CREATE UNIQUE INDEX loose_lower_c ON loose (lower(c));
    CREATE UNIQUE INDEX loose_d ON loose (d COLLATE BINARY);
  )sql");
  auto r = Once(Script("siphon.replicate 'loose' { source = app, from = 'loose' }\n"));
  EXPECT_EQ(r.exit_code, 2) << Dump(r);
  EXPECT_NE(r.err.find("has no primary key: name the columns that identify a row with key = "
                       "{ … }, from its NOT NULL columns: \"b\", \"c\", \"d\"; unique index "
                       "\"loose_b_partial\" is partial (it has a WHERE clause); unique index "
                       "\"loose_d\" compares the column \"d\" under a collation not its own; "
                       "unique index \"loose_lower_c\" indexes an expression; unique index "
                       "\"sqlite_autoindex_loose_1\" has the nullable column \"a\""),
            std::string::npos)
      << Dump(r);
}

TEST_F(SqliteSync, AViewReplicatesByTheKeyItTakesFromATable) {
  SourceExec(R"sql(
    CREATE TABLE orders (id INTEGER PRIMARY KEY, status TEXT, at TEXT NOT NULL);
    INSERT INTO orders VALUES (1, 'open', 'a'), (2, 'paid', 'b'), (3, 'open', 'c');
    CREATE VIEW open_orders AS SELECT id, at, upper(status) AS s FROM orders
      WHERE status = 'open';
  )sql");
  auto r = Once(
      Script("siphon.replicate 'open_orders' { source = app, from = 'open_orders', key = 'id' }\n"
             "siphon.replicate 'recent' { source = app, from = 'open_orders', key = 'id',"
             " cursor = 'at' }\n"));
  ASSERT_EQ(r.exit_code, 0) << Dump(r);
  EXPECT_EQ(TargetScalar("SELECT group_concat(id || s) FROM open_orders"), "1OPEN,3OPEN");
  EXPECT_EQ(TargetScalar("SELECT group_concat(id) FROM recent"), "1,3");
}

// SQLite lets a table go from under a view that reads it. Such a view as `from` is a broken
// object the script names, as a missing table is (and as MariaDB's is): once and check exit 2
// naming the view and the table it lacks (once exited 1, "schema: reflect v: no such table").
TEST_F(SqliteSync, AViewOverADroppedTableIsTheScriptsMistake) {
  SourceExec(R"sql(
    CREATE TABLE base (id INTEGER PRIMARY KEY, v TEXT);
    CREATE VIEW v AS SELECT id, v FROM base;
    DROP TABLE base;
  )sql");
  const std::string script =
      Script("siphon.replicate 'x' { source = app, from = 'v', key = 'id' }\n");
  auto r = Once(script);
  EXPECT_EQ(r.exit_code, 2) << Dump(r);
  EXPECT_NE(r.err.find("x: failed: config: table v cannot be read: no such table: main.base"),
            std::string::npos)
      << Dump(r);
  r = siphon::test::Run({SIPHON_BIN, "check", script});
  EXPECT_EQ(r.exit_code, 2) << Dump(r);
  EXPECT_NE(r.err.find("deploy.lua:3: table \"x\": table v cannot be read: no such table: "
                       "main.base"),
            std::string::npos)
      << Dump(r);
}

// An untyped column (`id PRIMARY KEY`, no type) holds numbers and text side by side, and
// SQLite orders them the same way in ORDER BY and in the keyset comparison: it can be the key
// a full refresh walks and an incremental cursor, across pages that change storage class.
// (Both tables were refused at start-up: "column "id" () cannot be a cursor or key column".)
TEST_F(SqliteSync, AnUntypedColumnCanBeAKeyOrACursor) {
  SourceExec(R"sql(
    CREATE TABLE t (id PRIMARY KEY, v TEXT);
    INSERT INTO t VALUES (1, 'one'), ('x', 'ex'), (2.5, 'two and a half'), ('a', 'a');
    CREATE TABLE e (id INTEGER PRIMARY KEY, at NOT NULL);
    INSERT INTO e VALUES (1, 5), (2, 'abc'), (3, 2.5), (4, 10), (5, 'b'), (6, 'abd'), (7, -1);
  )sql");
  std::string script = Script(
      "siphon.replicate 't' { source = app, from = 't', batch = 1 }\n"
      "siphon.replicate 'e' { source = app, from = 'e', cursor = 'at', batch = 2 }\n");
  auto r = Once(script);
  ASSERT_EQ(r.exit_code, 0) << Dump(r);
  EXPECT_EQ(TargetScalar("SELECT group_concat(typeof(id) || ':' || v, ',') FROM "
                         "(SELECT * FROM t ORDER BY id)"),
            "integer:one,real:two and a half,text:a,text:ex");
  EXPECT_EQ(TargetScalar("SELECT group_concat(id) FROM (SELECT id FROM e ORDER BY at)"),
            "7,3,1,4,2,6,5");
  SourceExec("INSERT INTO e VALUES (8, 'c'), (10, 'bb')");
  r = Once(script);
  ASSERT_EQ(r.exit_code, 0) << Dump(r);
  EXPECT_EQ(TargetScalar("SELECT group_concat(id) FROM (SELECT id FROM e ORDER BY at)"),
            "7,3,1,4,2,6,5,10,8");
  EXPECT_EQ(TargetScalar("SELECT cursor FROM _siphon_state WHERE table_name = 'e'"), "[\"c\",8]");
}

TEST_F(SqliteSync, AMissingSourceFileFailsThatTableClearly) {
  auto r = Once(Script("siphon.replicate 'x' { source = app, from = 'x' }\n"));
  EXPECT_EQ(r.exit_code, 2) << Dump(r);  // the script's wrong path
  EXPECT_NE(r.err.find("app.db"), std::string::npos) << Dump(r);
  EXPECT_FALSE(std::filesystem::exists(SourcePath()));  // read-only: never created
}

// `siphon run` keeps its source open between runs. An app that writes a new copy of its
// database and renames it over the old one, or deletes it, is seen by the next run. (The open
// handle kept reading the old file: the replica held "old" for good, and a deleted file went
// on "syncing".)
TEST_F(SqliteSync, ARunningSiphonFollowsTheFileItsPathNames) {
  SourceExec(
      "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL);"
      "INSERT INTO t VALUES (1, 'old')");
  std::string script =
      Script("siphon.replicate 't' { source = app, from = 't', every = '200ms' }\n");
  Process siphon({SIPHON_BIN, "run", script});
  ASSERT_TRUE(siphon.WaitForOutput("synced 1 rows")) << siphon.Stderr();
  auto value = [this] { return TargetScalar("SELECT group_concat(v) FROM t"); };
  EXPECT_EQ(value(), "old");
  // A new copy renamed over the old file.
  SqliteExec(dir_.File("new.db"),
             "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL);"
             "INSERT INTO t VALUES (1, 'new'), (2, 'two')");
  std::filesystem::rename(dir_.File("new.db"), SourcePath());
  EXPECT_TRUE(WaitUntil([&] { return value() == "new,two"; }, std::chrono::seconds(20)))
      << value() << "\n"
      << siphon.Stderr();
  // Deleted: the table fails, naming the file; back again: it recovers.
  std::filesystem::remove(SourcePath());
  EXPECT_TRUE(siphon.WaitForOutput("unable to open database file", std::chrono::seconds(20)))
      << siphon.Stderr();
  SourceExec(
      "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL);"
      "INSERT INTO t VALUES (3, 'back')");
  EXPECT_TRUE(WaitUntil([&] { return value() == "back"; }, std::chrono::seconds(20)))
      << value() << "\n"
      << siphon.Stderr();
  siphon.Signal(SIGTERM);
  EXPECT_EQ(siphon.Wait(std::chrono::seconds(20)).exit_code, 0);
}

// A WAL-mode file is read through its -wal and -shm files; while the application has it
// closed they are gone, and a reader creates them. In a folder siphon's user cannot write,
// the run fails saying so (it said "attempt to write a readonly database" though siphon
// writes nothing), creates nothing, and reads the file once the application has it open.
TEST_F(SqliteSync, AWalFileInAFolderSiphonCannotWriteSaysWhatItNeeds) {
  const std::string folder = dir_.File("ro");
  const std::string source = folder + "/app.db";
  ASSERT_TRUE(std::filesystem::create_directory(folder));
  SqliteExec(source,
             "PRAGMA journal_mode = wal; CREATE TABLE t (id INTEGER PRIMARY KEY);"
             "INSERT INTO t VALUES (1), (2)");
  ASSERT_FALSE(std::filesystem::exists(source + "-shm"));
  ASSERT_EQ(chmod(folder.c_str(), 0555), 0);
  ASSERT_EQ(chmod(dir_.path().c_str(), 0777), 0);
  const std::string script = dir_.File("deploy.lua");
  WriteFile(script, "local app = siphon.sqlite { path = '" + source + "' }\n" +
                        "siphon.target { path = '" + Replica() + "' }\n" +
                        "siphon.replicate 't' { source = app, from = 't' }\n");
  // Root writes anywhere: run siphon as nobody then.
  std::vector<std::string> argv = {SIPHON_BIN, "once", script};
  if (geteuid() == 0) {
    argv.insert(argv.begin(), {"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"});
  }
  auto r = siphon::test::Run(argv);
  EXPECT_EQ(r.exit_code, 1) << Dump(r);
  EXPECT_NE(r.err.find("the file is in WAL mode"), std::string::npos) << Dump(r);
  EXPECT_FALSE(std::filesystem::exists(source + "-shm"));
  // The application opens it (making its -wal and -shm): siphon reads it.
  sqlite3* app = nullptr;
  ASSERT_EQ(sqlite3_open(source.c_str(), &app), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(app, "SELECT count(*) FROM t", nullptr, nullptr, nullptr), SQLITE_OK);
  r = siphon::test::Run(argv);
  EXPECT_EQ(r.exit_code, 0) << Dump(r);
  EXPECT_EQ(TargetScalar("SELECT count(*) FROM t"), "2");
  sqlite3_close(app);
  chmod(folder.c_str(), 0755);
}

// A damaged source file is no mistake of the script: the run fails with exit 1 (it was exit
// 2, "bad usage or bad script", with the error filed as "config"), retried like a read error.
TEST_F(SqliteSync, ADamagedSourceFileIsAReplicationFailureNotABadScript) {
  SourceExec(R"sql(
    CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);
    WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 2000)
    INSERT INTO t SELECT n, printf('%.200c', 'x') FROM g;
  )sql");
  {
    std::fstream file(SourcePath(), std::ios::in | std::ios::out | std::ios::binary);
    file.seekp(4096 * 20);
    const std::string junk(4096, '\xff');
    file.write(junk.data(), junk.size());
  }
  auto r = Once(Script("siphon.replicate 't' { source = app, from = 't' }\n"));
  EXPECT_EQ(r.exit_code, 1) << Dump(r);
  EXPECT_NE(r.err.find("malformed"), std::string::npos) << Dump(r);
  EXPECT_EQ(r.err.find("config:"), std::string::npos) << Dump(r);
}

// A writer killed in the middle of a transaction leaves a hot journal that a reader cannot
// roll back: the run says so (it said "attempt to write a readonly database"), writes nothing
// to the source, and reads it once the application has opened it again (rolling it back).
TEST_F(SqliteSync, AJournalLeftByAKilledWriterIsNamedAndWaitedFor) {
  SourceExec("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT); INSERT INTO t VALUES (1, 'kept')");
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    sqlite3* db = nullptr;
    sqlite3_open(SourcePath().c_str(), &db);
    sqlite3_exec(db,
                 "PRAGMA cache_size = 1; BEGIN;"
                 "WITH RECURSIVE g(n) AS (SELECT 2 UNION ALL SELECT n + 1 FROM g WHERE n < 3000)"
                 " INSERT INTO t SELECT n, printf('%.500c', 'x') FROM g",
                 nullptr, nullptr, nullptr);
    _exit(0);  // no commit, no rollback: the journal stays hot
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(std::filesystem::exists(SourcePath() + "-journal"));
  std::string script = Script("siphon.replicate 't' { source = app, from = 't' }\n");
  auto r = Once(script);
  EXPECT_EQ(r.exit_code, 1) << Dump(r);
  EXPECT_NE(r.err.find("left its rollback journal"), std::string::npos) << Dump(r);
  EXPECT_TRUE(std::filesystem::exists(SourcePath() + "-journal"));
  SourceExec("SELECT count(*) FROM t");  // the application opens it
  r = Once(script);
  ASSERT_EQ(r.exit_code, 0) << Dump(r);
  EXPECT_EQ(TargetScalar("SELECT group_concat(v) FROM t"), "kept");
}

TEST_F(SqliteSync, TheMultiSourceExampleChecksAgainstTheTestServers) {
  PgDb pg;
  MyDb my;
  pg.Exec(
      "CREATE TABLE invoices (id bigint PRIMARY KEY, total numeric(12,2), "
      "updated_at timestamptz NOT NULL)");
  my.Exec(
      "CREATE TABLE orders (id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY, "
      "status VARCHAR(10), updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6), "
      "KEY orders_sync (updated_at, id))");
  SourceExec("CREATE TABLE settings (key TEXT PRIMARY KEY NOT NULL, value TEXT)");
  const ServerEnv& s = Servers();
  std::map<std::string, std::string> env = {{"BILLING_DSN", pg.Dsn()},
                                            {"SHOP_HOST", s.mysql_host},
                                            {"SHOP_PORT", std::to_string(s.mysql_port)},
                                            {"SHOP_USER", s.mysql_user},
                                            {"SHOP_PW", s.mysql_password},
                                            {"SHOP_DB", my.name()},
                                            {"APP_DB", SourcePath()},
                                            {"REPLICA", Replica()}};
  const std::string example = std::string(SIPHON_SOURCE_DIR) + "/examples/multi_source.lua";
  auto r = siphon::test::Run({SIPHON_BIN, "check", example}, env);
  ASSERT_EQ(r.exit_code, 0) << Dump(r);
  for (const char* table : {"invoices", "orders", "settings"}) {
    EXPECT_NE(r.out.find(table), std::string::npos) << table << "\n" << r.out;
  }
  EXPECT_FALSE(std::filesystem::exists(Replica()));
  // And it replicates: one row per source.
  pg.Exec("INSERT INTO invoices VALUES (1, 9.90, now() - interval '1 minute')");
  my.Exec("INSERT INTO orders (status, updated_at) VALUES ('paid', NOW(6) - INTERVAL 1 MINUTE)");
  SourceExec("INSERT INTO settings VALUES ('theme', 'dark')");
  r = siphon::test::Run({SIPHON_BIN, "once", example}, env);
  ASSERT_EQ(r.exit_code, 0) << Dump(r);
  EXPECT_EQ(TargetScalar("SELECT (SELECT total FROM invoices) || '/' || (SELECT status FROM "
                         "orders) || '/' || (SELECT value FROM settings)"),
            "9.90/paid/dark");
}

// A relative path is relative to the script's folder, as the target's is, wherever siphon
// runs from. (It was relative to the working directory: the file was not found.)
TEST_F(SqliteSync, ARelativePathIsBesideTheScript) {
  SourceExec("CREATE TABLE t (id INTEGER PRIMARY KEY); INSERT INTO t VALUES (1), (2)");
  std::string script = dir_.File("deploy.lua");
  WriteFile(script,
            "local app = siphon.sqlite { path = 'app.db' }\n"
            "siphon.target { path = 'replica.db' }\n"
            "siphon.replicate 't' { source = app, from = 't' }\n");
  ASSERT_NE(std::filesystem::current_path(), std::filesystem::path(dir_.File("")).parent_path());
  auto r = Once(script);
  ASSERT_EQ(r.exit_code, 0) << Dump(r);
  EXPECT_EQ(TargetScalar("SELECT count(*) FROM t"), "2");
}

// A source that is the target file itself (the same path, another spelling of it, or a link to
// it): the first run added siphon's own column to the source table and a second one deleted
// its rows ("synced 2 rows, deleted 2"). It is refused at start-up, exit 2, and the file is
// not touched.
TEST_F(SqliteSync, ASourceThatIsTheTargetFileIsRefused) {
  SourceExec(
      "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT); INSERT INTO t VALUES (1, 'a'), (2, 'b')");
  std::filesystem::create_symlink(SourcePath(), dir_.File("link.db"));
  for (const std::string& spelled :
       {SourcePath(), dir_.File("") + "/./app.db", std::string("link.db")}) {
    std::string script = dir_.File("deploy.lua");
    WriteFile(script, "local app = siphon.sqlite { path = '" + spelled +
                          "' }\nsiphon.target { path = 'app.db' }\n"
                          "siphon.replicate 't' { source = app, from = 't' }\n");
    for (const char* command : {"check", "once", "once"}) {
      auto r = siphon::test::Run({SIPHON_BIN, command, script});
      EXPECT_EQ(r.exit_code, 2) << spelled << "\n" << Dump(r);
      EXPECT_NE(r.err.find("deploy.lua:1: siphon.sqlite { path = "), std::string::npos) << Dump(r);
      EXPECT_NE(r.err.find("} is the target file (" + script + ":2)"), std::string::npos)
          << Dump(r);
    }
  }
  EXPECT_EQ(SourceScalar("SELECT group_concat(id || v) FROM t"), "1a,2b");
  EXPECT_EQ(SourceScalar("SELECT group_concat(name) FROM pragma_table_info('t')"), "id,v");
  EXPECT_EQ(SourceScalar("SELECT count(*) FROM sqlite_master WHERE name LIKE '_siphon%'"), "0");
}

// A user who drops a replicated table in the replica (to pull it again, or by mistake) found it
// created again holding only the rows changed since: the cursor stayed in _siphon_state, so
// the next run read past it (1 row of 4, the 3 older ones missing for good). A table siphon
// has to create while a cursor is stored is now pulled again from the start.
TEST_F(SqliteSync, ATargetTableDroppedByHandIsPulledAgainWhole) {
  SourceExec(
      "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT, at INTEGER NOT NULL);"
      "INSERT INTO t VALUES (1, 'a', 10), (2, 'b', 20), (3, 'c', 30)");
  const std::string script =
      Script("siphon.replicate 't' { source = app, from = 't', cursor = { 'at', 'id' } }\n");
  auto r = Once(script);
  ASSERT_EQ(r.exit_code, 0) << Dump(r);
  ASSERT_EQ(TargetScalar("SELECT count(*) FROM t"), "3");
  SqliteExec(Replica(), "DROP TABLE t");
  SourceExec("INSERT INTO t VALUES (4, 'd', 40)");
  r = Once(script);
  ASSERT_EQ(r.exit_code, 0) << Dump(r);
  EXPECT_EQ(TargetScalar("SELECT group_concat(id || v) FROM (SELECT * FROM t ORDER BY id)"),
            "1a,2b,3c,4d");
  EXPECT_EQ(TargetScalar("SELECT cursor FROM _siphon_state"), "[40,4]");
  EXPECT_NE(r.err.find("pulled again from the start"), std::string::npos) << Dump(r);
}

// A table without a key (write = "append", a cursor only) lost rows sharing a cursor value
// at a page edge: with batch 2, the values 1, 1, 1, 2, 2, 3 replicated as 5 rows, the third 1
// missing for good (the next page started after 1). A group now goes into one page whole, and
// a page that one value fills (five 4s) is pulled again larger.
TEST_F(SqliteSync, RowsSharingACursorValueAreNotSplitWithoutAKey) {
  SourceExec(
      "CREATE TABLE ev (at INTEGER NOT NULL, msg TEXT);"
      "INSERT INTO ev VALUES (1, 'a'), (1, 'b'), (1, 'c'), (2, 'd'), (2, 'e'), (3, 'f'),"
      "(4, 'g'), (4, 'h'), (4, 'i'), (4, 'j'), (4, 'k'), (5, 'l')");
  auto r = Once(
      Script("siphon.replicate 'ev' { source = app, from = 'ev', cursor = 'at', write = 'append', "
             "batch = 2 }\n"));
  ASSERT_EQ(r.exit_code, 0) << Dump(r);
  EXPECT_EQ(TargetScalar("SELECT group_concat(at || msg, ',') FROM (SELECT * FROM ev ORDER BY "
                         "at, msg)"),
            "1a,1b,1c,2d,2e,3f,4g,4h,4i,4j,4k,5l");
  EXPECT_EQ(TargetScalar("SELECT cursor FROM _siphon_state"), "[5]");
  SourceExec("INSERT INTO ev VALUES (6, 'm'), (6, 'n'), (6, 'o')");
  r = Once(
      Script("siphon.replicate 'ev' { source = app, from = 'ev', cursor = 'at', write = 'append', "
             "batch = 2 }\n"));
  ASSERT_EQ(r.exit_code, 0) << Dump(r);
  EXPECT_EQ(TargetScalar("SELECT count(*) || ' ' || count(DISTINCT at || msg) FROM ev"), "15 15");
  // The same as a query (where such ties failed the run as a key repeated by a join).
  r =
      Once(Script("siphon.replicate 'q' { source = app, query = 'SELECT at, msg FROM ev', "
                  "cursor = 'at', write = 'append', batch = 2 }\n"));
  ASSERT_EQ(r.exit_code, 0) << Dump(r);
  EXPECT_EQ(TargetScalar("SELECT count(*) || ' ' || count(DISTINCT at || msg) FROM q"), "15 15");
}

// The same where SQLite's collation holds different values equal: NOCASE ('a', 'A') and RTRIM
// ('a', 'a '). The page's last group was found by the values' bytes, and the next page asked
// for values after the last one as the collation compares them: in pages of 2, 3 of 7 rows
// replicated from each table.
TEST_F(SqliteSync, RowsTheCollationHoldsEqualAreNotSkippedAtAPageEdgeWithoutAKey) {
  SourceExec(
      "CREATE TABLE nocase (name TEXT COLLATE NOCASE NOT NULL, n INTEGER);"
      "INSERT INTO nocase VALUES ('a', 1), ('A', 2), ('a', 3), ('b', 4), ('B', 5), ('c', 6),"
      "('C', 7);"
      "CREATE TABLE rtrim (name TEXT COLLATE RTRIM NOT NULL, n INTEGER);"
      "INSERT INTO rtrim VALUES ('a', 1), ('a ', 2), ('a  ', 3), ('b', 4), ('b ', 5), ('c', 6),"
      "('c ', 7)");
  const std::string script = Script(
      "siphon.replicate 'nocase' { source = app, from = 'nocase', cursor = 'name', "
      "write = 'append', batch = 2 }\n"
      "siphon.replicate 'rtrim' { source = app, from = 'rtrim', cursor = 'name', "
      "write = 'append', batch = 2 }\n");
  auto r = Once(script);
  ASSERT_EQ(r.exit_code, 0) << Dump(r);
  EXPECT_EQ(TargetScalar("SELECT count(*) || '/' || sum(n) FROM nocase"), "7/28");
  EXPECT_EQ(TargetScalar("SELECT count(*) || '/' || sum(n) FROM rtrim"), "7/28");
  SourceExec(
      "INSERT INTO nocase VALUES ('d', 8), ('D', 9), ('e', 10);"
      "INSERT INTO rtrim VALUES ('d', 8), ('d ', 9), ('e', 10)");
  r = Once(script);
  ASSERT_EQ(r.exit_code, 0) << Dump(r);
  EXPECT_EQ(TargetScalar("SELECT count(*) || '/' || sum(n) FROM nocase"), "10/55");
  EXPECT_EQ(TargetScalar("SELECT count(*) || '/' || sum(n) FROM rtrim"), "10/55");
}

// An untyped column keeps 1 and 1.0 as an integer and a real, which SQLite compares as one
// number. A table without a key paged by one told them apart (an integer is not a double), so
// a page ending inside such a group went on after its value and lost the rest: 6 rows in
// pages of 2, 3 replicated. Numbers now compare as numbers.
TEST_F(SqliteSync, AnIntegerAndARealSQLiteHoldsEqualAreNotSkippedAtAPageEdgeWithoutAKey) {
  SourceExec(
      "CREATE TABLE u (v NOT NULL, note TEXT);"
      "INSERT INTO u VALUES (1, 'a'), (1.0, 'b'), (1, 'c'), (2, 'd'), (2.0, 'e'), (2.5, 'f')");
  auto r = Once(
      Script("siphon.replicate 'u' { source = app, from = 'u', cursor = 'v', write = 'append', "
             "batch = 2 }\n"));
  ASSERT_EQ(r.exit_code, 0) << Dump(r);
  EXPECT_EQ(TargetScalar("SELECT group_concat(note, '') FROM (SELECT note FROM u ORDER BY note)"),
            "abcdef");
}

// The replica deleted (or another file renamed over it) under a running siphon: SQLite went
// on writing the open file, which no path names any more, and every run said "synced 2 rows"
// while `siphon status` found no replica. A run that writes now fails, naming what happened.
TEST_F(SqliteSync, ATargetFileDeletedOrReplacedUnderARunningSiphonFailsItsRuns) {
  SourceExec(
      "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL);"
      "INSERT INTO t VALUES (1, 'a'), (2, 'b')");
  std::string script =
      Script("siphon.replicate 't' { source = app, from = 't', every = '200ms' }\n");
  {
    Process siphon({SIPHON_BIN, "run", script});
    ASSERT_TRUE(siphon.WaitForOutput("synced 2 rows")) << siphon.Stderr();
    for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(Replica() + suffix);
    EXPECT_TRUE(siphon.WaitForOutput(
        "the target file " + Replica() + " was deleted while siphon ran", std::chrono::seconds(20)))
        << siphon.Stderr();
    siphon.Signal(SIGTERM);
    EXPECT_EQ(siphon.Wait(std::chrono::seconds(20)).exit_code, 0);
  }
  {
    Process siphon({SIPHON_BIN, "run", script});
    ASSERT_TRUE(siphon.WaitForOutput("synced 2 rows")) << siphon.Stderr();
    std::filesystem::copy_file(Replica(), dir_.File("copy.db"));
    std::filesystem::rename(dir_.File("copy.db"), Replica());
    EXPECT_TRUE(siphon.WaitForOutput(
        "the target file " + Replica() + " was replaced by another file while siphon ran",
        std::chrono::seconds(20)))
        << siphon.Stderr();
    siphon.Signal(SIGTERM);
    EXPECT_EQ(siphon.Wait(std::chrono::seconds(20)).exit_code, 0);
  }
}

}  // namespace
}  // namespace siphon::test

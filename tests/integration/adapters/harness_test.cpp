// Smoke tests of the integration test harness itself, against the fixture's real servers:
// if these fail, no other integration test result means anything.
// Note: inside a TEST body, plain `Run` names testing::Test::Run; call siphon::test::Run.

#include <gtest/gtest-spi.h>
#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <signal.h>

#include <set>
#include <string>

#include "tests/integration/harness/harness.hpp"

namespace siphon::test {
namespace {

TEST(Harness, ServersEnvIsComplete) {
  const ServerEnv& s = Servers();
  EXPECT_EQ(s.pg_host, "127.0.0.1");
  EXPECT_EQ(s.mysql_host, "127.0.0.1");
  EXPECT_GT(s.pg_port, 0);
  EXPECT_GT(s.mysql_port, 0);
  EXPECT_NE(s.pg_port, s.mysql_port);
  EXPECT_FALSE(s.pg_password.empty());
  EXPECT_FALSE(s.mysql_password.empty());
  EXPECT_FALSE(s.all.at("SERVERS_DIR").empty());
  EXPECT_FALSE(s.all.at("MYSQL_SOCKET").empty());
}

TEST(Harness, PgDbCreatesQueriesAndDrops) {
  std::string name;
  {
    PgDb db;
    name = db.name();
    db.Exec(
        "CREATE TABLE t (id int PRIMARY KEY, s text, n numeric(10,2)); "
        "INSERT INTO t VALUES (1, 'a', 1.50), (2, NULL, NULL)");
    Rows rows = db.Query("SELECT id, s, n FROM t ORDER BY id");
    ASSERT_EQ(rows.size(), 2u);
    EXPECT_EQ(rows[0], (Row{"1", "a", "1.50"}));
    EXPECT_EQ(rows[1], (Row{"2", std::nullopt, std::nullopt}));
    EXPECT_EQ(db.Scalar("SELECT count(*) FROM t"), "2");
    EXPECT_EQ(db.Scalar("SELECT NULL"), "");
    EXPECT_EQ(db.Scalar("SELECT current_database()"), name);

    // The DSN is what siphon's scripts get: it must log in with the password.
    PGconn* c = PQconnectdb(db.Dsn().c_str());
    EXPECT_EQ(PQstatus(c), CONNECTION_OK) << PQerrorMessage(c);
    PQfinish(c);
  }
  PgDb other;
  EXPECT_NE(other.name(), name);
  EXPECT_EQ(other.Scalar("SELECT count(*) FROM pg_database WHERE datname = '" + name + "'"), "0");
}

TEST(Harness, PgDbDropsDespiteOpenConnections) {
  std::string name;
  PGconn* lingering = nullptr;
  {
    PgDb db;
    name = db.name();
    lingering = PQconnectdb(db.Dsn().c_str());
    ASSERT_EQ(PQstatus(lingering), CONNECTION_OK);
  }
  PQfinish(lingering);
  PgDb other;
  EXPECT_EQ(other.Scalar("SELECT count(*) FROM pg_database WHERE datname = '" + name + "'"), "0");
}

TEST(Harness, PgDbReportsServerErrors) {
  PgDb db;
  EXPECT_NONFATAL_FAILURE(db.Exec("SELEC 1"), "syntax error");
  EXPECT_NONFATAL_FAILURE(db.Query("SELECT * FROM no_such_table"), "no_such_table");
  EXPECT_NONFATAL_FAILURE(db.Scalar("SELECT 1 WHERE false"), "no row");
}

TEST(Harness, PgDbNamesAreUnique) {
  PgDb a, b, c;
  EXPECT_EQ((std::set<std::string>{a.name(), b.name(), c.name()}).size(), 3u);
}

TEST(Harness, MyDbCreatesQueriesAndDrops) {
  std::string name;
  {
    MyDb db;
    name = db.name();
    db.Exec(
        "CREATE TABLE t (id INT PRIMARY KEY, s VARCHAR(10), b VARBINARY(4)); "
        "INSERT INTO t VALUES (1, 'a', x'00ff'), (2, NULL, NULL)");
    Rows rows = db.Query("SELECT id, s, b FROM t ORDER BY id");
    ASSERT_EQ(rows.size(), 2u);
    EXPECT_EQ(rows[0], (Row{"1", "a", std::string("\x00\xff", 2)}));
    EXPECT_EQ(rows[1], (Row{"2", std::nullopt, std::nullopt}));
    EXPECT_EQ(db.Scalar("SELECT COUNT(*) FROM t"), "2");
    EXPECT_EQ(db.Scalar("SELECT DATABASE()"), name);
    // Multi-statement: the last result set wins.
    EXPECT_EQ(db.Scalar("SET @x = 5; SELECT @x + 1"), "6");
    EXPECT_NONFATAL_FAILURE(db.Exec("SELEC 1"), "SQL syntax");
    // The connection stays usable after an error.
    EXPECT_EQ(db.Scalar("SELECT 7"), "7");
  }
  MyDb other;
  EXPECT_NE(other.name(), name);
  EXPECT_EQ(other.Scalar("SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = '" +
                         name + "'"),
            "0");
}

TEST(Harness, SqliteQueryReturnsTextNullAndRawBlobs) {
  TempDir dir;
  const std::string path = dir.File("t.db");
  SqliteExec(path,
             "CREATE TABLE t (i INTEGER, r REAL, s TEXT, b BLOB);"
             "INSERT INTO t VALUES (42, 1.5, 'hé', x'00ff10'), (NULL, NULL, NULL, NULL)");

  Rows rows = SqliteQuery(path, "SELECT i, r, s, b FROM t ORDER BY i IS NULL");
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0], (Row{"42", "1.5", "hé", std::string("\x00\xff\x10", 3)}));
  EXPECT_EQ(rows[1], (Row{std::nullopt, std::nullopt, std::nullopt, std::nullopt}));
  EXPECT_NONFATAL_FAILURE(SqliteQuery(path, "INSERT INTO t VALUES (1, 1, 1, 1)"), "readonly");
  EXPECT_NONFATAL_FAILURE(SqliteQuery(path, "SELECT * FROM missing"), "no such table");
}

TEST(Harness, SqliteExecWritesAndNamesTheStatementThatFails) {
  TempDir dir;
  const std::string path = dir.File("w.db");
  SqliteExec(path, "CREATE TABLE t (x); INSERT INTO t VALUES (1); SELECT * FROM t");
  // Statements run in order up to the failing one; what ran before it stays written.
  EXPECT_NONFATAL_FAILURE(
      SqliteExec(path, "INSERT INTO t VALUES (2); INSERT INTO missing VALUES (3)"),
      "no such table: missing  in: INSERT INTO t VALUES (2)");
  EXPECT_EQ(SqliteQuery(path, "SELECT group_concat(x) FROM t"), (Rows{{"1,2"}}));
  EXPECT_NONFATAL_FAILURE(SqliteExec(dir.File("no/such/folder.db"), "SELECT 1"),
                          "SQLite open " + dir.File("no/such/folder.db") + ": unable to open");
}

TEST(Harness, TempDirAndFiles) {
  std::string path;
  {
    TempDir dir;
    path = dir.path();
    WriteFile(dir.File("a.txt"), std::string("x\0y", 3));
    EXPECT_EQ(ReadFile(dir.File("a.txt")), std::string("x\0y", 3));
  }
  EXPECT_NONFATAL_FAILURE(ReadFile(path + "/a.txt"), "cannot read");
}

TEST(Harness, RunCapturesOutputAndExitCode) {
  ProcessResult r = siphon::test::Run({"/bin/echo", "hello", "world"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.term_signal, 0);
  EXPECT_FALSE(r.timed_out);
  EXPECT_EQ(r.out, "hello world\n");
  EXPECT_EQ(r.err, "");

  r = siphon::test::Run({"sh", "-c", "echo \"$SIPHON_X\"; echo oops >&2; exit 3"},
                        {{"SIPHON_X", "from env"}});
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_EQ(r.out, "from env\n");
  EXPECT_EQ(r.err, "oops\n");

  r = siphon::test::Run({"/no/such/program"});
  EXPECT_EQ(r.exit_code, 127);
  EXPECT_NE(r.err.find("exec failed"), std::string::npos);
}

TEST(Harness, RunDrainsBothPipesWithoutDeadlock) {
  // Far more than a pipe buffer on each stream, interleaved.
  ProcessResult r = siphon::test::Run(
      {"sh", "-c", "head -c 3000000 /dev/zero; head -c 2000000 /dev/zero >&2; echo end"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.out.size(), 3000004u);
  EXPECT_EQ(r.err.size(), 2000000u);
}

TEST(Harness, RunTimesOut) {
  const auto start = std::chrono::steady_clock::now();
  ProcessResult r = siphon::test::Run({"sleep", "30"}, {}, std::chrono::milliseconds(300));
  EXPECT_TRUE(r.timed_out);
  EXPECT_EQ(r.term_signal, SIGKILL);
  EXPECT_EQ(r.exit_code, -1);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
}

TEST(Harness, ProcessSignalAndWait) {
  Process p({"sh", "-c",
             "trap 'echo got-term; exit 7' TERM; echo ready; "
             "while :; do sleep 0.05; done"});
  ASSERT_GT(p.pid(), 0);
  ASSERT_TRUE(p.WaitForOutput("ready", std::chrono::seconds(10))) << p.Stderr();
  EXPECT_TRUE(p.Running());
  p.Signal(SIGTERM);
  ProcessResult r = p.Wait(std::chrono::seconds(10));
  EXPECT_FALSE(r.timed_out);
  EXPECT_EQ(r.exit_code, 7);
  EXPECT_EQ(r.out, "ready\ngot-term\n");
  EXPECT_FALSE(p.Running());
}

TEST(Harness, ProcessKillAndTimeout) {
  Process killed({"sleep", "30"});
  EXPECT_TRUE(killed.Running());
  killed.Signal(SIGKILL);
  ProcessResult r = killed.Wait(std::chrono::seconds(10));
  EXPECT_EQ(r.term_signal, SIGKILL);
  EXPECT_FALSE(r.timed_out);

  Process slow({"sleep", "30"});
  r = slow.Wait(std::chrono::milliseconds(200));
  EXPECT_TRUE(r.timed_out);
  EXPECT_EQ(r.term_signal, SIGKILL);
}

TEST(Harness, FreeTcpPort) {
  const int port = FreeTcpPort();
  EXPECT_GT(port, 0);
  EXPECT_LT(port, 65536);
}

}  // namespace
}  // namespace siphon::test

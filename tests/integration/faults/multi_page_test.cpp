// Fault (k): a statement that brings several pages (SourceConnection::PullPages: one COPY on
// PostgreSQL, one streamed SELECT on MariaDB, LIMIT 4 × batch) cut short after its first
// pages were handed over: the source session killed (pg_terminate_backend, KILL), or siphon
// killed with SIGKILL. Each page commits with its own cursor, so the replica holds exactly the
// rows up to its cursor at any moment, and a run after the fault ends with every row once.
//
// The kill lands mid-statement by construction, not by timing: pages of 1,000 rows of 15 kB
// (PostgreSQL) or 30 kB (MariaDB), so the pages still to come outgrow the socket buffers
// (loopback TCP grows them to 36 MB here), and a transform stops on the first row of a page
// for about 3 s of CPU and logs it. While it runs the event loop reads nothing, so the server
// is stuck sending the statement's later pages; the test asks the server that the statement
// is still running before it kills.
#include <signal.h>

#include "tests/integration/faults/fault_util.hpp"

namespace siphon::test {
namespace {

constexpr int kBatch = 1000;
// The rows of the first page a table pulls after start-up (its rows' size not yet known, it
// holds at most 8); the statement of several pages follows it, from row kFirstPage + 1.
constexpr int kFirstPage = 8;
constexpr int kPause = kFirstPage + 1;

class MultiPageFaults : public FaultTest {
 protected:
  /// The declaration of table "pages" from `source`, whose transform pauses on row `pause_at`
  /// (the first row of a page) and the 150 rows after it, once per process.
  static std::string Pages(const std::string& source, int pause_at) {
    return "local paused = 0\n"
           "siphon.replicate \"pages\" { source = " +
           source + ", cursor = \"id\", batch = " + std::to_string(kBatch) +
           ",\n"
           "  transform = function(row)\n"
           "    if row.id == " +
           std::to_string(pause_at) +
           " and paused == 0 then\n"
           "      siphon.log.warn(\"MULTIPAGE PAUSE %d\", row.id)\n"
           "      paused = 1\n"
           "    end\n"
           "    if paused > 0 and paused <= 150 then\n"
           "      paused = paused + 1\n"
           "      local resume = os.clock() + 0.02\n"
           "      while os.clock() < resume do end\n"
           "    end\n"
           "    return row\n"
           "  end }\n";
  }
  std::string MySource() const {
    const ServerEnv& s = Servers();
    return "local my = siphon.mysql { host = '" + s.mysql_host +
           "', port = " + std::to_string(s.mysql_port) + ", user = '" + s.mysql_user +
           "', password = siphon.env('TEST_MYSQL_PW'), database = '" + my_.name() +
           "', connect_timeout = 2 }\n";
  }
  /// 6,000 rows of 15 kB: the plain query of the first page, then a COPY of four pages (a
  /// page's 15 MB leave room for four under the runner's 64 MB of waiting pages).
  void LoadPg() {
    rows_ = 6000;
    db_.Exec(
        "CREATE TABLE pages (id int8 PRIMARY KEY, v text NOT NULL);"
        "INSERT INTO pages SELECT g, repeat(md5(g::text), 480) FROM generate_series(1, " +
        std::to_string(rows_) + ") g;");
  }
  /// 6,000 rows of 15 kB, as LoadPg's: the first SELECT brings one page (no page size is
  /// known yet), the one after it four.
  void LoadMy() {
    rows_ = 6000;
    my_.Exec(
        "CREATE TABLE pages (id BIGINT PRIMARY KEY, v MEDIUMTEXT NOT NULL);"
        "INSERT INTO pages SELECT seq, REPEAT(MD5(seq), 480) FROM seq_1_to_" +
        std::to_string(rows_));
  }
  /// siphon's COPY, while the server still runs it: its backend's pid, else "".
  std::string PgCopyRunning() {
    return db_.Scalar(
        "SELECT coalesce(min(pid)::text, '') FROM pg_stat_activity WHERE application_name = "
        "'siphon' AND datname = current_database() AND state = 'active' AND query LIKE "
        "'%COPY (%'");
  }
  /// siphon's SELECT of the table, while the server still runs it: its thread id, else "".
  std::string MySelectRunning() {
    Rows t = my_.Query("SELECT ID FROM information_schema.PROCESSLIST WHERE USER = '" +
                       Servers().mysql_user + "' AND DB = '" + my_.name() +
                       "' AND ID <> CONNECTION_ID() AND COMMAND = 'Query' AND INFO LIKE "
                       "'SELECT%pages%'");
    return t.size() == 1 && t[0][0] ? *t[0][0] : "";
  }
  /// The replica right after the fault: rows 1 .. its cursor, each once, and nothing beyond.
  void ExpectUpToCursor(int64_t rows) {
    EXPECT_EQ(Target("PRAGMA integrity_check"), "ok");
    EXPECT_EQ(Target("SELECT cursor FROM _siphon_state WHERE table_name = 'pages'"),
              "[" + std::to_string(rows) + "]");
    EXPECT_EQ(Target("SELECT count(*) || ' ' || max(id) FROM pages"),
              std::to_string(rows) + " " + std::to_string(rows));
  }
  /// Every source row once, with its value, and the cursor on the last; the mismatches.
  int64_t ExpectWhole(const Rows& source) {
    EXPECT_EQ(Target("PRAGMA integrity_check"), "ok");
    TableDiff d = CompareRows(source, SqliteQuery(Replica(), "SELECT id, v FROM pages ORDER BY 1"));
    EXPECT_EQ(d.mismatches, 0) << d.first;
    EXPECT_EQ(d.target_rows, rows_);
    EXPECT_EQ(Target("SELECT cursor FROM _siphon_state WHERE table_name = 'pages'"),
              "[" + std::to_string(rows_) + "]");
    return d.mismatches;
  }
  int ErrorRuns() {
    return std::stoi(
        Target("SELECT count(*) FROM _siphon_log WHERE table_name = 'pages' AND event = 'error'"));
  }

  MyDb my_;
  int64_t rows_ = 0;
};

// PostgreSQL's first page of a column list is a plain query (rows 1-8); the COPY after it
// brings rows 9-4008, and its first page is handed over when row 1009 arrives.
TEST_F(MultiPageFaults, PgSessionKilledAfterTheFirstPageOfACopy) {
  LoadPg();
  Process p(Argv("once", Script(Pages("pg", kPause))), Env());
  ASSERT_TRUE(
      p.WaitForOutput("MULTIPAGE PAUSE " + std::to_string(kPause), std::chrono::seconds(60)))
      << p.Stderr();
  const std::string pid = PgCopyRunning();
  ASSERT_NE(pid, "") << "the COPY should still run while its first page is transformed";
  EXPECT_EQ(db_.Scalar("SELECT pg_terminate_backend(" + pid + ")"), "t");
  // `once` retries the lost connection and goes on from the cursor.
  ProcessResult r = p.Wait(std::chrono::seconds(120));
  EXPECT_EQ(r.exit_code, 0) << Dump(r);
  EXPECT_GE(ErrorRuns(), 1) << "the kill should fail a run\n" << Dump(r);
  const int64_t mismatches = ExpectWhole(db_.Query("SELECT id::text, v FROM pages ORDER BY 1"));
  Summary("multi_page_kill", 1, 1, rows_, mismatches, "source=postgres");
}

// The COPY's backend is stopped (SIGSTOP) while siphon transforms the COPY's first page (rows
// 9-1008): the statement cannot end, and the pages that reached siphon commit, each with
// its cursor (the first of them only once the write before it is answered on the loop, so
// the loop must run meanwhile). siphon is killed then, with the COPY's last page still on the
// server.
TEST_F(MultiPageFaults, PgSigkillBetweenThePagesOfACopy) {
  LoadPg();
  const std::string script = Script(Pages("pg", kPause));
  {
    Process p(Argv("once", script), Env());
    ASSERT_TRUE(
        p.WaitForOutput("MULTIPAGE PAUSE " + std::to_string(kPause), std::chrono::seconds(60)))
        << p.Stderr();
    const std::string pid = PgCopyRunning();
    ASSERT_NE(pid, "") << "the COPY should still run while its first page is transformed";
    ASSERT_EQ(kill(std::stoi(pid), SIGSTOP), 0);
    struct Thaw {
      int pid;
      ~Thaw() { kill(pid, SIGCONT); }
    } thaw{std::stoi(pid)};
    EXPECT_TRUE(WaitUntil([&] { return TargetCount(Replica(), "pages") >= kFirstPage + kBatch; },
                          std::chrono::seconds(20), std::chrono::milliseconds(10)))
        << p.Stderr();
    p.Signal(SIGKILL);
    p.Wait();
  }
  const int64_t at_kill = TargetCount(Replica(), "pages");
  EXPECT_LT(at_kill, kFirstPage + 4 * kBatch) << "the COPY's last page cannot have come";
  ExpectUpToCursor(at_kill);
  ProcessResult r = Once(script);
  EXPECT_EQ(r.exit_code, 0) << Dump(r);
  const int64_t mismatches = ExpectWhole(db_.Query("SELECT id::text, v FROM pages ORDER BY 1"));
  Summary("multi_page_sigkill", 2, 1, rows_, mismatches,
          "source=postgres committed_at_kill=" + std::to_string(at_kill));
}

// MariaDB's first SELECT brings one page (rows 1-8), the second rows 9-4008; its first page
// is handed over when row 1009 arrives.
TEST_F(MultiPageFaults, MysqlSessionKilledAfterTheFirstPageOfASelect) {
  LoadMy();
  Process p(Argv("once", Script(Pages("my", kPause), MySource())), Env());
  ASSERT_TRUE(
      p.WaitForOutput("MULTIPAGE PAUSE " + std::to_string(kPause), std::chrono::seconds(60)))
      << p.Stderr();
  const std::string id = MySelectRunning();
  ASSERT_NE(id, "") << "the SELECT should still run while its first page is transformed";
  my_.Exec("KILL " + id);
  ProcessResult r = p.Wait(std::chrono::seconds(120));
  EXPECT_EQ(r.exit_code, 0) << Dump(r);
  EXPECT_GE(ErrorRuns(), 1) << "the kill should fail a run\n" << Dump(r);
  const int64_t mismatches = ExpectWhole(my_.Query("SELECT id, v FROM pages ORDER BY 1"));
  Summary("multi_page_kill", 1, 1, rows_, mismatches, "source=mariadb");
}

// The first SELECT's page (rows 1-8) is the run's first write, sent to the writer at once:
// it commits while the first page of the second SELECT (rows 9-4008) is transformed.
// siphon is killed then, with three more pages of that statement on their way.
TEST_F(MultiPageFaults, MysqlSigkillBetweenThePagesOfASelect) {
  LoadMy();
  const std::string script = Script(Pages("my", kPause), MySource());
  {
    Process p(Argv("once", script), Env());
    ASSERT_TRUE(
        p.WaitForOutput("MULTIPAGE PAUSE " + std::to_string(kPause), std::chrono::seconds(60)))
        << p.Stderr();
    EXPECT_TRUE(WaitUntil([&] { return TargetCount(Replica(), "pages") >= kFirstPage; },
                          std::chrono::seconds(2), std::chrono::milliseconds(10)));
    ASSERT_NE(MySelectRunning(), "") << "the SELECT should still run while its first page is "
                                        "transformed\n"
                                     << p.Stderr();
    p.Signal(SIGKILL);
    p.Wait();
  }
  ExpectUpToCursor(kFirstPage);
  ProcessResult r = Once(script);
  EXPECT_EQ(r.exit_code, 0) << Dump(r);
  const int64_t mismatches = ExpectWhole(my_.Query("SELECT id, v FROM pages ORDER BY 1"));
  Summary("multi_page_sigkill", 2, 1, rows_, mismatches, "source=mariadb");
}

// SIGTERM while the first page of a statement is transformed and the server still sends the
// rest: the page in hand is written with its cursor, the statement is abandoned (the pages
// after it are not written), and siphon exits 0 without waiting for the statement to end.
TEST_F(MultiPageFaults, SigtermDuringAStatementOfSeveralPages) {
  LoadPg();
  LoadMy();
  struct Case {
    const char* source;
    int pause_at;
    std::function<std::string()> running;
  };
  const Case cases[] = {{"pg", kPause, [&] { return PgCopyRunning(); }},
                        {"my", kPause, [&] { return MySelectRunning(); }}};
  int64_t mismatches = 0;
  for (const Case& c : cases) {
    SCOPED_TRACE(c.source);
    for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(Replica() + suffix);
    const std::string script = Script(Pages(c.source, c.pause_at), MySource());
    Process p(Argv("once", script), Env());
    ASSERT_TRUE(
        p.WaitForOutput("MULTIPAGE PAUSE " + std::to_string(c.pause_at), std::chrono::seconds(60)))
        << p.Stderr();
    ASSERT_NE(c.running(), "") << "the statement should still run while its page is transformed";
    p.Signal(SIGTERM);
    ProcessResult r = p.Wait(std::chrono::seconds(30));
    EXPECT_EQ(r.exit_code, 0) << Dump(r);
    const int64_t page_end = c.pause_at + kBatch - 1;
    EXPECT_EQ(TargetCount(Replica(), "pages"), page_end) << Dump(r);
    // The table's stop ended (the statement it abandoned answered), not just the loop's work.
    EXPECT_NE(r.err.find("stopped after " + std::to_string(page_end) + " rows"), std::string::npos)
        << Dump(r);
    ExpectUpToCursor(page_end);
    rows_ = 6000;
    r = Once(script);
    EXPECT_EQ(r.exit_code, 0) << Dump(r);
    mismatches += ExpectWhole(std::string(c.source) == "pg"
                                  ? db_.Query("SELECT id::text, v FROM pages ORDER BY 1")
                                  : my_.Query("SELECT id, v FROM pages ORDER BY 1"));
  }
  Summary("multi_page_sigterm", 4, 2, 12000, mismatches, "source=postgres,mariadb");
}

}  // namespace
}  // namespace siphon::test

// Fault tests: the MariaDB server of the test fixture is stopped and started under a running
// siphon. They run alone (ctest RUN_SERIAL), since every other test would see the outage.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include "tests/integration/faults/fault_util.hpp"

namespace siphon::test {
namespace {

TEST(MysqlFaults, TheServerRestartedMidSyncFailsCleanlyRetriesAndLosesNothing) {
  MyDb db;
  TempDir dir;
  db.Exec(R"sql(
    CREATE TABLE big (id BIGINT PRIMARY KEY, v VARCHAR(64) NOT NULL,
                      updated_at DATETIME(6) NOT NULL, KEY big_sync (updated_at, id));
    INSERT INTO big SELECT seq, MD5(seq), '2024-01-01' + INTERVAL seq MICROSECOND
      FROM seq_1_to_300000;
  )sql");
  const ServerEnv& s = Servers();
  const std::string replica = dir.File("replica.db");
  const std::string script = dir.File("deploy.lua");
  WriteFile(script, "local my = siphon.mysql { host = '" + s.mysql_host +
                        "', port = " + std::to_string(s.mysql_port) + ", user = '" + s.mysql_user +
                        "', password = siphon.env('TEST_MYSQL_PW'), database = '" + db.name() +
                        "', connect_timeout = 2 }\nsiphon.target { path = '" + replica +
                        "' }\nsiphon.replicate 'big' { source = my, from = 'big', cursor = "
                        "'updated_at', batch = 500, every = '1s' }\n");
  Process p({SIPHON_BIN, "run", script}, {{"TEST_MYSQL_PW", s.mysql_password}});
  // Wait for the first pages, then take the server away in the middle of the sync.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (TargetCount(replica, "big") < 2000 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_GE(TargetCount(replica, "big"), 2000) << p.Stderr();
  ServersCtl("stop-mysql");
  const int64_t at_stop = TargetCount(replica, "big");
  EXPECT_LT(at_stop, 300000) << "the sync finished before the server stopped: make it larger";
  EXPECT_TRUE(p.WaitForOutput("retrying in", std::chrono::seconds(30))) << p.Stderr();
  std::this_thread::sleep_for(std::chrono::seconds(2));
  EXPECT_TRUE(p.Running()) << p.Stderr();
  ServersCtl("start-mysql");
  deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (TargetCount(replica, "big") < 300000 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  p.Signal(SIGTERM);
  ProcessResult r = p.Wait(std::chrono::seconds(30));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(TargetScalar(replica, "PRAGMA integrity_check"), "ok");
  EXPECT_EQ(TargetScalar(replica,
                         "SELECT count(*) || '/' || sum(id) || '/' || "
                         "sum(length(v)) FROM big"),
            db.Scalar("SELECT CONCAT(count(*), '/', sum(id), '/', sum(length(v))) FROM big"));
  EXPECT_EQ(TargetScalar(replica, "SELECT cursor FROM _siphon_state WHERE table_name = 'big'"),
            "[\"2024-01-01T00:00:00.300000\",300000]");
  // The failure and the recovery are in the audit log.
  EXPECT_GE(std::stoi(TargetScalar(replica,
                                   "SELECT count(*) FROM _siphon_log WHERE "
                                   "table_name = 'big' AND event = 'error'")),
            1);
  EXPECT_NE(r.err.find("recovered"), std::string::npos) << r.err;
  // Row by row.
  TableDiff d = CompareRows(
      db.Query(
          "SELECT id, v, DATE_FORMAT(updated_at, '%Y-%m-%dT%H:%i:%s.%f') FROM big ORDER BY id"),
      SqliteQuery(replica,
                  "SELECT id, v, CASE WHEN instr(updated_at, '.') = 0 THEN updated_at || "
                  "'.000000' ELSE updated_at END FROM big ORDER BY id"));
  EXPECT_EQ(d.mismatches, 0) << d.first;
  Summary("mysql_restart", 1, 1, d.source_rows, d.mismatches);
}

}  // namespace
}  // namespace siphon::test

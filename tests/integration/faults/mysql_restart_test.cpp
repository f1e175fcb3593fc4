// Fault (c), MariaDB: the fixture's server stopped for 10 s in the middle of a first sync
// under `siphon run`, then started. siphon fails cleanly, does not spin while the server is
// away, retries, and loses nothing. (Fault tests run alone, ctest RUN_SERIAL: every other
// test would see the outage.)
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
                        "'updated_at', batch = 500, every = '1s' }\n" +
                        kEventHandlers);
  Process p({SIPHON_BIN, "run", script}, {{"TEST_MYSQL_PW", s.mysql_password}});
  // Wait for the first pages, then take the server away in the middle of the sync.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (TargetCount(replica, "big") < 2000 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_GE(TargetCount(replica, "big"), 2000) << p.Stderr();
  ServersCtl("stop-mysql");
  // Whatever happens below, the server comes back for the tests after this one.
  struct Restart {
    bool done = false;
    ~Restart() {
      if (!done) ServersCtl("start-mysql");
    }
  } restart;
  const auto down_at = std::chrono::steady_clock::now();
  const double cpu_before = CpuSeconds(p.pid());
  const int64_t at_stop = TargetCount(replica, "big");
  EXPECT_LT(at_stop, 300000) << "the sync finished before the server stopped: make it larger";
  EXPECT_TRUE(p.WaitForOutput("retrying in", std::chrono::seconds(30))) << p.Stderr();
  // Down for 10 s in all: siphon waits between attempts instead of spinning.
  std::this_thread::sleep_until(down_at + std::chrono::seconds(10));
  const double cpu_after = CpuSeconds(p.pid());
  const double wall =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - down_at).count();
  EXPECT_TRUE(p.Running()) << p.Stderr();
  ServersCtl("start-mysql");
  restart.done = true;
  const double cpu_share = (cpu_after - cpu_before) / wall;
  EXPECT_LT(cpu_share, 0.20) << "siphon used " << cpu_after - cpu_before << " s of CPU in " << wall
                             << " s while the server was down";
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
  // One outage, seen by the script's handlers: an `error` per failed attempt, then one
  // `recovered`.
  Outages o = ReadOutages(r.err, "big");
  EXPECT_EQ(o.problem, "") << r.err;
  EXPECT_EQ(o.outages, 1) << r.err;
  // Row by row.
  TableDiff d = CompareRows(
      db.Query(
          "SELECT id, v, DATE_FORMAT(updated_at, '%Y-%m-%dT%H:%i:%s.%f') FROM big ORDER BY id"),
      SqliteQuery(replica,
                  "SELECT id, v, CASE WHEN instr(updated_at, '.') = 0 THEN updated_at || "
                  "'.000000' ELSE updated_at END FROM big ORDER BY id"));
  EXPECT_EQ(d.mismatches, 0) << d.first;
  char cpu[64];
  std::snprintf(cpu, sizeof cpu, "cpu_down=%.1f%%", cpu_share * 100);
  Summary("mysql_restart", 1, 1, d.source_rows, d.mismatches,
          std::string(cpu) + " error_events=" + std::to_string(o.errors));
}

}  // namespace
}  // namespace siphon::test

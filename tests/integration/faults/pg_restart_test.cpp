// Fault (c): the PostgreSQL server stopped for 10 s under `siphon run` and started again.
// siphon keeps running, does not spin while the server is away, and catches up after.
#include <signal.h>

#include "tests/integration/faults/fault_util.hpp"

namespace siphon::test {
namespace {

class PgRestartFaults : public FaultTest {};

TEST_F(PgRestartFaults, AStoppedServerCostsNoCpuAndTheReplicaCatchesUp) {
  db_.Exec(R"sql(
    CREATE TABLE r (id int8 PRIMARY KEY, v text NOT NULL, updated_at timestamptz NOT NULL);
    INSERT INTO r SELECT g, md5(g::text), now() - interval '1 hour' + g * interval '1 ms'
      FROM generate_series(1, 20000) g;
    CREATE INDEX ON r (updated_at, id);
    CREATE TABLE rf (id int8 PRIMARY KEY, v text NOT NULL);
    INSERT INTO rf SELECT g, md5(g::text) FROM generate_series(1, 5000) g;
  )sql");
  const std::string script = Script(R"(
siphon.replicate "r" { source = pg, cursor = { "updated_at", "id" }, batch = 1000, every = "200ms" }
siphon.replicate "rf" { source = pg, batch = 1000, every = "200ms" }
)",
                                    kEventHandlers);
  Process p(Argv("run", script), Env());
  ASSERT_TRUE(
      WaitUntil([&] { return TargetCount(Replica(), "r") == 20000; }, std::chrono::seconds(60)))
      << p.Stderr();

  ServersCtl("stop-pg");
  // Whatever happens below, the server comes back for the tests after this one.
  struct Restart {
    bool done = false;
    ~Restart() {
      if (!done) ServersCtl("start-pg");
    }
  } restart;
  const auto down_at = std::chrono::steady_clock::now();
  const double cpu_before = CpuSeconds(p.pid());
  std::this_thread::sleep_for(std::chrono::seconds(10));
  const double cpu_after = CpuSeconds(p.pid());
  const double wall =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - down_at).count();
  const bool alive = p.Running();
  ServersCtl("start-pg");
  restart.done = true;
  ASSERT_TRUE(alive) << "siphon ended while the server was down: " << Dump(p.Wait());
  const double cpu_share = (cpu_after - cpu_before) / wall;
  EXPECT_LT(cpu_share, 0.20) << "siphon used " << cpu_after - cpu_before << " s of CPU in " << wall
                             << " s while the server was down";
  EXPECT_NE(p.Stderr().find("retrying in"), std::string::npos) << p.Stderr();

  // New rows and changes after the restart arrive.
  db_.Exec(R"sql(
    INSERT INTO r SELECT g, md5(g::text), clock_timestamp() FROM generate_series(20001, 25000) g;
    UPDATE r SET v = 'after', updated_at = clock_timestamp() WHERE id % 97 = 0;
    UPDATE rf SET v = 'after' WHERE id % 13 = 0;
  )sql");
  EXPECT_TRUE(WaitUntil(
      [&] {
        return TargetCount(Replica(), "r") == 25000 &&
               Target("SELECT count(*) FROM r WHERE v = 'after'") == "257" &&
               Target("SELECT count(*) FROM rf WHERE v = 'after'") == "384";
      },
      std::chrono::seconds(90), std::chrono::milliseconds(200)))
      << p.Stderr();
  p.Signal(SIGTERM);
  ProcessResult res = p.Wait(std::chrono::seconds(30));
  EXPECT_EQ(res.exit_code, 0) << Dump(res);
  EXPECT_NE(res.err.find("recovered"), std::string::npos) << Dump(res);
  EXPECT_EQ(Target("PRAGMA integrity_check"), "ok");
  EXPECT_GE(std::stoi(Target("SELECT count(*) FROM _siphon_log WHERE event = 'error'")), 1);
  // One outage per table, seen by the script's handlers: an `error` per failed attempt
  // (attempt 1, 2, ...), then one `recovered`.
  int errors = 0;
  for (const char* table : {"r", "rf"}) {
    Outages o = ReadOutages(res.err, table);
    EXPECT_EQ(o.problem, "") << table << "\n" << Dump(res);
    EXPECT_EQ(o.outages, 1) << table << "\n" << Dump(res);
    errors += o.errors;
  }
  TableDiff d =
      ComparePg("r", "id::text, v, " + PgTs("updated_at"), "id, v, " + TargetTs("updated_at"));
  TableDiff f = ComparePg("rf", "id::text, v", "id, v");
  char cpu[64];
  std::snprintf(cpu, sizeof cpu, "cpu_down=%.1f%% error_events=%d", cpu_share * 100, errors);
  Summary("source_restart", 1, 1, d.source_rows + f.source_rows, d.mismatches + f.mismatches, cpu);
}

}  // namespace
}  // namespace siphon::test

// Fault (a): siphon killed with SIGKILL at random moments, during a large first sync and
// during incremental runs under a concurrent writer. Nothing may be lost or duplicated.
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <iterator>
#include <random>

#include "tests/integration/faults/fault_util.hpp"

namespace siphon::test {
namespace {

class KillFaults : public FaultTest {
 protected:
  /// Starts `siphon run` `times` times, each killed with SIGKILL 300-1500 ms later (it must
  /// still be running then); the replica must pass integrity_check after each. False, with the
  /// failure added, when one does not: the caller stops its writer before it asserts.
  bool KillRuns(const std::string& script, int times, std::mt19937& rng, int& runs, int& kills) {
    for (int i = 0; i < times; ++i) {
      Process p(Argv("run", script), Env());
      ++runs;
      std::this_thread::sleep_for(
          std::chrono::milliseconds(std::uniform_int_distribution<>(300, 1500)(rng)));
      if (p.Running()) {
        p.Signal(SIGKILL);
        ++kills;
      } else {
        ADD_FAILURE() << "siphon run exited on its own\n" << Dump(p.Wait());
      }
      p.Wait();
      const std::string check = Target("PRAGMA integrity_check");
      EXPECT_EQ(check, "ok") << "after kill " << i;
      if (check != "ok") return false;
    }
    return true;
  }
};

TEST_F(KillFaults, SigkillDuringFirstSyncAndIncrementalRunsLosesNothing) {
  db_.Exec(R"sql(
    CREATE TABLE k (id int8 PRIMARY KEY, v text NOT NULL, n int4 NOT NULL DEFAULT 0,
                    updated_at timestamptz NOT NULL);
    INSERT INTO k SELECT g, md5(g::text), 0,
                         now() - interval '1 day' + g * interval '1 ms'
      FROM generate_series(1, 300000) g;
    CREATE INDEX ON k (updated_at, id);
  )sql");
  const std::string script = Script(
      R"(siphon.replicate "k" { source = pg, cursor = { "updated_at", "id" }, batch = 1000, every = "200ms" })");
  std::mt19937 rng(std::random_device{}());
  int runs = 0, kills = 0;

  // Phase 1: `siphon once`, the first sync of 300k rows, killed 10 times.
  for (int i = 0; i < 10; ++i) {
    Process p(Argv("once", script), Env());
    ++runs;
    std::this_thread::sleep_for(
        std::chrono::milliseconds(std::uniform_int_distribution<>(30, 250)(rng)));
    if (p.Running()) {
      p.Signal(SIGKILL);
      ++kills;
    }
    ProcessResult r = p.Wait();
    // A kill may land before siphon created the replica (a slow start, a sanitizer build).
    if (std::filesystem::exists(Replica())) {
      ASSERT_EQ(Target("PRAGMA integrity_check"), "ok");
    }
    // Pages commit whole: a page of 1000 rows is in or out, never a part of it; so is each
    // start's first page, of 8 rows (the rows' size not yet known). (No `lookback` in this
    // script: it would re-read rows behind the cursor on each start.)
    const int64_t n = TargetCount(Replica(), "k");
    EXPECT_TRUE(n % 1000 % 8 == 0 && n % 1000 / 8 <= runs)
        << "after kill " << i << ": " << n << " rows\n"
        << Dump(r);
  }

  // Phase 2: `siphon run` every 200 ms while a writer inserts and updates rows (bumping
  // updated_at); killed 10 times at random moments and started again.
  std::atomic<bool> stop{false};
  std::atomic<int64_t> written{0};
  std::thread writer([&] {
    PgSession s(db_.Dsn());
    int64_t next = 300001;
    std::mt19937 wr(12345);
    while (!stop) {
      s.Exec("INSERT INTO k SELECT g, md5(g::text), 0, clock_timestamp() FROM generate_series(" +
             std::to_string(next) + ", " + std::to_string(next + 49) + ") g");
      next += 50;
      const int64_t id = std::uniform_int_distribution<int64_t>(1, next - 1)(wr);
      s.Exec(
          "UPDATE k SET n = n + 1, v = 'u' || n, updated_at = clock_timestamp() WHERE id "
          "BETWEEN " +
          std::to_string(id) + " AND " + std::to_string(id + 20));
      written += 71;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  });
  const bool killed = KillRuns(script, 10, rng, runs, kills);
  stop = true;
  writer.join();
  ASSERT_TRUE(killed);

  // A final run, then the whole table compared row by row.
  ProcessResult r = Once(script);
  ASSERT_EQ(r.exit_code, 0) << Dump(r);
  ++runs;
  EXPECT_EQ(Target("PRAGMA integrity_check"), "ok");
  EXPECT_GE(kills, 10) << "the kills should land while siphon works";
  TableDiff d = ComparePg("k", "id::text, v, n::text, " + PgTs("updated_at"),
                          "id, v, n, " + TargetTs("updated_at"));
  Summary("sigkill", runs, kills, d.source_rows, d.mismatches,
          "writes=" + std::to_string(written.load()));
}

// A full refresh keyed by integers deletes, with each page, the rows of its key range the page
// does not hold. Killed in the middle of passes over a table the source deleted rows from, it
// resumes each pass where its last page committed and never deletes a row the source still
// has; once a pass ends, the replica is the source, under a writer too.
TEST_F(KillFaults, SigkillDuringFullRefreshPassesThatDeleteLosesNothing) {
  db_.Exec(R"sql(
    CREATE TABLE f (id int8 PRIMARY KEY, v text NOT NULL);
    INSERT INTO f SELECT g, md5(g::text) FROM generate_series(1, 200000) g;
  )sql");
  const std::string script =
      Script(R"(siphon.replicate "f" { source = pg, batch = 1000, every = "200ms" })");
  ProcessResult r = Once(script);
  ASSERT_EQ(r.exit_code, 0) << Dump(r);
  std::mt19937 rng(std::random_device{}());
  int runs = 1, kills = 0;

  // Phase 1: before each pass, rows deleted all over the table (every 7th and a run of 3000,
  // then every 13th with another remainder each time), and the pass killed midway. Every row
  // the source holds stays in the replica after each kill.
  int midway = 0;  // kills that left a pass in progress (its cursor stored)
  for (int i = 0; i < 8; ++i) {
    db_.Exec(i == 0 ? "DELETE FROM f WHERE id % 7 = 0 OR id BETWEEN 50000 AND 52999"
                    : "DELETE FROM f WHERE id % 13 = " + std::to_string(i));
    std::vector<int64_t> kept;
    for (const Row& row : db_.Query("SELECT id::text FROM f")) kept.push_back(std::stoll(*row[0]));
    std::sort(kept.begin(), kept.end());
    Process p(Argv("once", script), Env());
    ++runs;
    // Killed once the pass has committed a page (its cursor stored), a moment later: at a
    // random page, however long start-up takes (a sanitizer build's is long).
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (p.Running() && std::chrono::steady_clock::now() < give_up &&
           Target("SELECT cursor IS NOT NULL FROM _siphon_state") != "1") {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    std::this_thread::sleep_for(
        std::chrono::milliseconds(std::uniform_int_distribution<>(0, 80)(rng)));
    if (p.Running()) {
      p.Signal(SIGKILL);
      ++kills;
    }
    ProcessResult killed = p.Wait();
    ASSERT_EQ(Target("PRAGMA integrity_check"), "ok");
    if (Target("SELECT cursor IS NOT NULL FROM _siphon_state") == "1") ++midway;
    std::vector<int64_t> held;
    for (const Row& row : SqliteQuery(Replica(), "SELECT id FROM f ORDER BY id")) {
      held.push_back(std::stoll(*row[0]));
    }
    std::vector<int64_t> lost;
    std::set_difference(kept.begin(), kept.end(), held.begin(), held.end(),
                        std::back_inserter(lost));
    ASSERT_TRUE(lost.empty()) << "after kill " << i << ", " << lost.size()
                              << " rows the source holds are gone from the replica, the first "
                              << lost.front() << ", the last " << lost.back() << "\n"
                              << Dump(killed);
  }
  EXPECT_GE(midway, 2) << "the kills should land in the middle of passes";

  // Phase 2: `siphon run` under a writer that deletes, updates and inserts, killed 5 times.
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    PgSession s(db_.Dsn());
    std::mt19937 wr(4242);
    int64_t next = 200001;
    while (!stop) {
      const int64_t id = std::uniform_int_distribution<int64_t>(1, next - 1)(wr);
      s.Exec("DELETE FROM f WHERE id BETWEEN " + std::to_string(id) + " AND " +
             std::to_string(id + 30) + "; UPDATE f SET v = 'u' || v WHERE id BETWEEN " +
             std::to_string(id + 100) + " AND " + std::to_string(id + 120) +
             "; INSERT INTO f VALUES (" + std::to_string(next) + ", 'new'), (" +
             std::to_string(id + 10) + ", 'again') ON CONFLICT (id) DO NOTHING");
      ++next;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  });
  const bool killed = KillRuns(script, 5, rng, runs, kills);
  stop = true;
  writer.join();
  ASSERT_TRUE(killed);

  // A pass after the last kill ends the one in progress, a second is whole: the replica is
  // the source.
  for (int i = 0; i < 2; ++i) {
    r = Once(script);
    ASSERT_EQ(r.exit_code, 0) << Dump(r);
    ++runs;
  }
  EXPECT_GE(kills, 8) << "the kills should land while siphon works";  // 5 of them `run`s
  TableDiff d = ComparePg("f", "id::text, v", "id, v");
  Summary("sigkill-full-refresh", runs, kills, d.source_rows, d.mismatches,
          "midway=" + std::to_string(midway));
}

}  // namespace
}  // namespace siphon::test

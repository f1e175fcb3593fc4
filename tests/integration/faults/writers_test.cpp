// Fault (f): concurrent writers on the source (inserts, updates that bump the cursor, and
// transactions that commit late, inside `lookback`) while `siphon run` syncs every 200 ms.
// The replica ends equal, and the replication lag (commit on the source to visible in the
// SQLite file) is measured and reported as p50/p99.
#include <signal.h>
#include <sqlite3.h>

#include <atomic>
#include <mutex>
#include <random>
#include <unordered_map>

#include "tests/integration/faults/fault_util.hpp"

namespace siphon::test {
namespace {

class WriterFaults : public FaultTest {};

using Clock = std::chrono::system_clock;

TEST_F(WriterFaults, ConcurrentWritersAndLateCommitsArriveWithMeasuredLag) {
  db_.Exec(R"sql(
    CREATE TABLE w (id int8 PRIMARY KEY, v int8 NOT NULL, note text NOT NULL,
                    updated_at timestamptz NOT NULL);
    CREATE INDEX ON w (updated_at, id);
    INSERT INTO w SELECT g, 0, 'seed', now() - interval '1 hour' + g * interval '1 ms'
      FROM generate_series(1, 10000) g;
  )sql");
  const std::string script = Script(
      R"(siphon.replicate "w" { source = pg, cursor = { "updated_at", "id" }, batch = 1000, lookback = "5s", every = "200ms" })");
  Process p(Argv("run", script), Env());
  ASSERT_TRUE(
      WaitUntil([&] { return TargetCount(Replica(), "w") == 10000; }, std::chrono::seconds(60)))
      << p.Stderr();

  const auto duration = std::chrono::seconds(Soak() ? 60 : 20);
  std::atomic<bool> stop{false};
  std::atomic<int64_t> next_id{10001};
  std::mutex mu;
  std::unordered_map<int64_t, Clock::time_point> committed;  // insert commit time per id
  std::atomic<int> inserts{0}, updates{0}, late{0};

  auto inserter = [&](int seed) {
    PgSession s(db_.Dsn());
    std::mt19937 rng(seed);
    while (!stop) {
      const int n = std::uniform_int_distribution<>(1, 5)(rng);
      std::vector<int64_t> ids;
      std::string sql = "INSERT INTO w VALUES ";
      for (int i = 0; i < n; ++i) {
        ids.push_back(next_id++);
        sql += (i ? ", (" : "(") + std::to_string(ids.back()) + ", 0, 'ins', clock_timestamp())";
      }
      s.Exec(sql);
      const auto at = Clock::now();
      {
        std::lock_guard<std::mutex> lock(mu);
        for (int64_t id : ids) committed[id] = at;
      }
      inserts += n;
      std::this_thread::sleep_for(
          std::chrono::milliseconds(std::uniform_int_distribution<>(5, 30)(rng)));
    }
  };
  auto updater = [&] {
    PgSession s(db_.Dsn());
    std::mt19937 rng(7);
    while (!stop) {
      const int64_t id = std::uniform_int_distribution<int64_t>(1, next_id - 1)(rng);
      s.Exec("UPDATE w SET v = v + 1, note = 'upd', updated_at = clock_timestamp() WHERE id = " +
             std::to_string(id));
      ++updates;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  };
  // Late commits: the rows are stamped when the transaction starts (now()) and committed
  // 1-3 s later, after rows stamped later were already replicated. One row per transaction
  // is stamped a second before the transaction began (an application whose clock runs
  // behind): the safe horizon cannot hold it back, only `lookback` brings it in.
  auto late_writer = [&] {
    PgSession s(db_.Dsn());
    std::mt19937 rng(99);
    while (!stop) {
      const int64_t id = next_id++;
      const int64_t skewed = next_id++;
      s.Exec("BEGIN");
      s.Exec("INSERT INTO w VALUES (" + std::to_string(id) + ", 0, 'late', now()), (" +
             std::to_string(skewed) + ", 0, 'late-skewed', now() - interval '1 s')");
      s.Exec("UPDATE w SET note = 'late-upd', v = v + 1, updated_at = now() WHERE id = " +
             std::to_string(std::uniform_int_distribution<int64_t>(1, 10000)(rng)));
      std::this_thread::sleep_for(
          std::chrono::milliseconds(std::uniform_int_distribution<>(1000, 3000)(rng)));
      s.Exec("COMMIT");
      ++late;
    }
  };
  // The poller: the first moment each id is visible in the replica.
  std::unordered_map<int64_t, Clock::time_point> first_seen;
  std::atomic<bool> stop_poll{false};
  auto poller = [&] {
    sqlite3* db = nullptr;
    sqlite3_open_v2(Replica().c_str(), &db, SQLITE_OPEN_READONLY, nullptr);
    sqlite3_busy_timeout(db, 5000);
    sqlite3_stmt* q = nullptr;
    sqlite3_prepare_v2(db, "SELECT id FROM w WHERE id > 10000", -1, &q, nullptr);
    while (!stop_poll) {
      const auto now = Clock::now();
      while (q != nullptr && sqlite3_step(q) == SQLITE_ROW) {
        first_seen.emplace(sqlite3_column_int64(q, 0), now);
      }
      if (q != nullptr) sqlite3_reset(q);
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    sqlite3_finalize(q);
    sqlite3_close(db);
  };

  std::vector<std::thread> threads;
  threads.emplace_back(inserter, 1);
  threads.emplace_back(inserter, 2);
  threads.emplace_back(updater);
  threads.emplace_back(late_writer);
  std::thread poll(poller);
  std::this_thread::sleep_for(duration);
  stop = true;
  for (auto& t : threads) t.join();

  // Every row reaches the replica: wait for the counts, then compare row by row.
  const int64_t rows = std::stoll(db_.Scalar("SELECT count(*) FROM w"));
  EXPECT_TRUE(
      WaitUntil([&] { return TargetCount(Replica(), "w") == rows; }, std::chrono::seconds(30)))
      << TargetCount(Replica(), "w") << " of " << rows;
  std::this_thread::sleep_for(std::chrono::seconds(1));  // the last updates' run
  stop_poll = true;
  poll.join();
  p.Signal(SIGTERM);
  ProcessResult r = p.Wait(std::chrono::seconds(30));
  EXPECT_EQ(r.exit_code, 0) << Dump(r);
  EXPECT_EQ(Target("SELECT count(*) FROM _siphon_log WHERE event = 'error'"), "0");
  TableDiff d = ComparePg("w", "id::text, v::text, note, " + PgTs("updated_at"),
                          "id, v, note, " + TargetTs("updated_at"));
  EXPECT_GT(late.load(), 3);
  // (The updater may have changed a late row since: count on both sides.)
  EXPECT_EQ(Target("SELECT count(*) FROM w WHERE note LIKE 'late%'"),
            db_.Scalar("SELECT count(*) FROM w WHERE note LIKE 'late%'"));

  std::vector<double> lags;
  for (const auto& [id, at] : committed) {
    auto it = first_seen.find(id);
    if (it != first_seen.end()) {
      lags.push_back(std::chrono::duration<double, std::milli>(it->second - at).count());
    }
  }
  EXPECT_GT(lags.size(), committed.size() * 9 / 10) << "the poller missed rows";
  char extra[160];
  std::snprintf(
      extra, sizeof extra,
      "lag_p50_ms=%.0f lag_p99_ms=%.0f inserts=%d updates=%d late_commits=%d seconds=%lld",
      Percentile(lags, 50), Percentile(lags, 99), inserts.load(), updates.load(), late.load(),
      static_cast<long long>(duration.count()));
  Summary("concurrent_writers", 1, late.load(), d.source_rows, d.mismatches, extra);
}

}  // namespace
}  // namespace siphon::test

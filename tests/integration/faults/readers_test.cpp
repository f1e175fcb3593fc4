// Fault (e): readers on the target while siphon writes: one holds long read transactions,
// one polls counts. siphon never fails with SQLITE_BUSY, and no reader ever sees a page
// half written.
#include <signal.h>
#include <sqlite3.h>

#include <atomic>
#include <mutex>
#include <set>

#include "tests/integration/faults/fault_util.hpp"

namespace siphon::test {
namespace {

class ReaderFaults : public FaultTest {};

/// Count of `table` through `db`, -1 while the table does not exist, -2 on another error.
int64_t Count(sqlite3* db, const char* sql) {
  sqlite3_stmt* s = nullptr;
  if (sqlite3_prepare_v2(db, sql, -1, &s, nullptr) != SQLITE_OK) return -1;
  int64_t n = -2;
  if (sqlite3_step(s) == SQLITE_ROW) n = sqlite3_column_int64(s, 0);
  sqlite3_finalize(s);
  return n;
}

TEST_F(ReaderFaults, LongReadersNeitherBlockTheWriterNorSeeHalfAPage) {
  constexpr int64_t kRows = 200500;  // not a multiple of the batch: the last page is partial
  db_.Exec(R"sql(
    CREATE TABLE rd (id int8 PRIMARY KEY, v text NOT NULL, updated_at timestamptz NOT NULL);
    INSERT INTO rd SELECT g, md5(g::text), now() - interval '1 day' + g * interval '1 ms'
      FROM generate_series(1, 200500) g;
    CREATE INDEX ON rd (updated_at, id);
  )sql");
  const std::string script = Script(
      R"(siphon.replicate "rd" { source = pg, cursor = { "updated_at", "id" }, batch = 1000, every = "200ms" })");
  std::atomic<bool> stop{false};
  std::mutex mu;
  std::set<int64_t> seen;
  int64_t bad = -1, polls = 0, long_reads = 0;
  std::string reader_error;
  auto reader = [&](bool long_tx) {
    sqlite3* db = nullptr;
    // Waits for siphon to create the file, then reads through its own connection.
    while (!stop && !std::filesystem::exists(Replica())) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    if (sqlite3_open_v2(Replica().c_str(), &db, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
      std::lock_guard<std::mutex> lock(mu);
      reader_error = sqlite3_errmsg(db);
      sqlite3_close(db);
      return;
    }
    sqlite3_busy_timeout(db, 5000);
    while (!stop) {
      if (long_tx) sqlite3_exec(db, "BEGIN", nullptr, nullptr, nullptr);
      const int64_t n = Count(db, "SELECT count(*) FROM rd");
      if (long_tx && n < 0) {  // no table yet, so no snapshot was taken
        sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr);
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
        continue;
      }
      if (long_tx) {
        // Hold the snapshot for 3 s (in small sleeps, so the test can end promptly).
        for (int i = 0; i < 60 && !stop; ++i)
          std::this_thread::sleep_for(std::chrono::milliseconds(50));
        // The snapshot has not moved.
        const int64_t again = Count(db, "SELECT count(*) FROM rd");
        sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr);
        std::lock_guard<std::mutex> lock(mu);
        ++long_reads;
        if (again != n && reader_error.empty()) {
          reader_error = "a read transaction saw " + std::to_string(n) + " then " +
                         std::to_string(again) + " rows";
        }
      }
      std::lock_guard<std::mutex> lock(mu);
      ++polls;
      if (n >= 0) seen.insert(n);
      // Pages of 1000 after the first, of 8 (the rows' size not yet known).
      if (n > 0 && (n - 8) % 1000 != 0 && n != kRows && bad < 0) bad = n;
      if (n == -2 && reader_error.empty()) reader_error = sqlite3_errmsg(db);
    }
    sqlite3_close(db);
  };
  std::thread long_reader(reader, true);
  std::thread poller(reader, false);

  Process p(Argv("run", script), Env());
  const bool done =
      WaitUntil([&] { return TargetCount(Replica(), "rd") == kRows; }, std::chrono::seconds(90));
  // More syncs while the readers go on: updates rewrite pages of existing rows.
  db_.Exec("UPDATE rd SET v = 'again', updated_at = clock_timestamp() WHERE id % 10 = 0");
  EXPECT_TRUE(
      WaitUntil([&] { return Target("SELECT count(*) FROM rd WHERE v = 'again'") == "20050"; },
                std::chrono::seconds(60)))
      << p.Stderr();
  std::this_thread::sleep_for(std::chrono::seconds(3));  // one more long read over idle runs
  stop = true;
  long_reader.join();
  poller.join();
  p.Signal(SIGTERM);
  ProcessResult r = p.Wait(std::chrono::seconds(30));
  ASSERT_TRUE(done) << Dump(r);
  EXPECT_EQ(r.exit_code, 0) << Dump(r);
  EXPECT_EQ(reader_error, "");
  EXPECT_EQ(bad, -1) << "a reader saw " << bad << " rows: part of a page";
  EXPECT_GT(seen.size(), 10u) << "the poller should have watched the load progress";
  EXPECT_GE(long_reads, 2);
  // The sync itself never failed (no SQLITE_BUSY, nothing else).
  EXPECT_EQ(Target("SELECT count(*) FROM _siphon_log WHERE event = 'error'"), "0")
      << Target("SELECT group_concat(error, ' | ') FROM _siphon_log WHERE event = 'error'");
  EXPECT_EQ(r.err.find("busy"), std::string::npos) << Dump(r);
  EXPECT_EQ(Target("PRAGMA integrity_check"), "ok");
  TableDiff d =
      ComparePg("rd", "id::text, v, " + PgTs("updated_at"), "id, v, " + TargetTs("updated_at"));
  Summary("target_readers", 1, static_cast<int>(long_reads), d.source_rows, d.mismatches,
          "polls=" + std::to_string(polls) + " half_pages_seen=" + std::to_string(bad < 0 ? 0 : 1));
}

}  // namespace
}  // namespace siphon::test

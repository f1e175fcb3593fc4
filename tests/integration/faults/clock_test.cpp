// Fault (h): clock trouble on the source. A row stamped in the future (year 2100) and a row
// whose cursor goes backwards. What siphon guarantees, asserted here and written down in the
// README's reliability section:
//  - an incremental run reads only rows stamped before the safe horizon (now, or the start
//    of the oldest open write transaction), so a future-stamped row is held back, and does
//    not drag the watermark to 2100: rows with normal timestamps keep arriving;
//  - the future row arrives once its timestamp is corrected (or once its time comes);
//  - a row whose cursor moves backwards inside `lookback` is re-read and written as the
//    source has it now; behind the watermark minus `lookback` it is not seen by incremental
//    runs, and a resync (cursor reset) pulls it again.
#include "tests/integration/faults/fault_util.hpp"

namespace siphon::test {
namespace {

class ClockFaults : public FaultTest {
 protected:
  std::string V(int id) { return Target("SELECT v FROM c WHERE id = " + std::to_string(id)); }
};

TEST_F(ClockFaults, FutureAndBackwardTimestampsNeitherStallNorCorruptTheTable) {
  db_.Exec(R"sql(
    CREATE TABLE c (id int8 PRIMARY KEY, v text NOT NULL, updated_at timestamptz NOT NULL);
    CREATE INDEX ON c (updated_at, id);
    INSERT INTO c SELECT g, 'v1', now() - interval '1 hour' + g * interval '1 s'
      FROM generate_series(1, 100) g;
  )sql");
  const std::string script = Script(
      R"(siphon.replicate "c" { source = pg, cursor = { "updated_at", "id" }, lookback = "5s", batch = 10 })");
  int runs = 0;
  auto once = [&] {
    ProcessResult r = Once(script);
    ++runs;
    EXPECT_EQ(r.exit_code, 0) << Dump(r);
  };
  once();
  ASSERT_EQ(TargetCount(Replica(), "c"), 100);

  // A row from the future, and one from now.
  db_.Exec(R"sql(
    INSERT INTO c VALUES (101, 'future', '2100-01-01 00:00:00+00');
    INSERT INTO c VALUES (102, 'now', now());
  )sql");
  once();
  EXPECT_EQ(V(102), "now") << "a future-stamped row must not stall the table";
  EXPECT_EQ(V(101), "") << "a row stamped in 2100 is held back by the horizon";
  const std::string cursor = Target("SELECT cursor FROM _siphon_state WHERE table_name = 'c'");
  EXPECT_EQ(cursor.find("2100"), std::string::npos) << "the watermark jumped to 2100: " << cursor;

  // Later rows with normal timestamps keep arriving.
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  db_.Exec("INSERT INTO c VALUES (103, 'later', now())");
  once();
  EXPECT_EQ(V(103), "later");

  // A cursor going backwards: row 5 changes and is stamped in 2000, far behind the
  // watermark and outside `lookback`. Row 6 goes back by 2 s, inside `lookback`.
  db_.Exec(R"sql(
    UPDATE c SET v = 'back', updated_at = '2000-01-01 00:00:00+00' WHERE id = 5;
    UPDATE c SET v = 'back-2s', updated_at = updated_at - interval '2 s' WHERE id = 102;
  )sql");
  once();
  EXPECT_EQ(V(5), "v1") << "incremental runs read only past the watermark minus lookback";
  // Inside lookback the re-read sees the row and writes it as the source has it now.
  EXPECT_EQ(V(102), "back-2s");

  // Resync (the cursor reset, as POST /tables/c/resync does): every row is read again.
  SqliteExec(Replica(), "UPDATE _siphon_state SET cursor = NULL WHERE table_name = 'c'");
  once();
  EXPECT_EQ(V(5), "back");
  EXPECT_EQ(V(101), "") << "still in the future";

  // Correcting the future timestamp brings the row in with the next run.
  db_.Exec("UPDATE c SET updated_at = now() WHERE id = 101");
  once();
  EXPECT_EQ(V(101), "future");

  TableDiff d =
      ComparePg("c", "id::text, v, " + PgTs("updated_at"), "id, v, " + TargetTs("updated_at"));
  Summary("clock_trouble", runs, 2, d.source_rows, d.mismatches);
}

}  // namespace
}  // namespace siphon::test

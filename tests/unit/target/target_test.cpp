#include "runtime/target/target.hpp"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>

namespace siphon {
namespace {

class TargetTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("siphon_target_" + std::to_string(getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    path_ = (dir_ / "replica.db").string();
    uv_loop_init(&loop_);
  }
  void TearDown() override {
    uv_run(&loop_, UV_RUN_DEFAULT);
    uv_loop_close(&loop_);
    std::filesystem::remove_all(dir_);
  }

  static TargetTable Orders() {
    TargetTable t;
    t.name = "orders";
    t.columns = {{"id", "bigint", ColumnType::kInteger, OrderKind::kNumber, false},
                 {"note", "text", ColumnType::kText, OrderKind::kText, true},
                 {"updated_at", "timestamptz", ColumnType::kText, OrderKind::kTime, false},
                 {"data", "bytea", ColumnType::kBlob, OrderKind::kOther, true}};
    t.key = {"id"};
    t.source = "postgres test";
    t.source_table = "public.orders";
    return t;
  }

  TableState Prepare(Target& target, TargetTable t) {
    std::optional<Result<TableState>> result;
    target.PrepareTable(std::move(t), [&](Result<TableState> r) { result = std::move(r); });
    uv_run(&loop_, UV_RUN_DEFAULT);
    EXPECT_TRUE(result && result->ok()) << (result ? result->status().ToString() : "no result");
    return result && result->ok() ? **result : TableState{};
  }

  Status Write(Target& target, const RowBatch& rows, std::optional<Cursor> cursor) {
    PageWrite page;
    page.rows = std::make_shared<RowBatch>(rows);
    page.cursor_after = std::move(cursor);
    return WritePage(target, std::move(page)).status();
  }
  // The rows the page deleted.
  Result<int64_t> WritePage(Target& target, PageWrite page, const std::string& table = "orders") {
    Result<PageResult> result = WritePageResult(target, std::move(page), table);
    if (!result.ok()) return result.status();
    return result->deleted;
  }
  Result<PageResult> WritePageResult(Target& target, PageWrite page,
                                     const std::string& table = "orders") {
    std::optional<Result<PageResult>> result;
    target.WritePage(table, std::move(page), [&](Result<PageResult> r) { result = std::move(r); });
    uv_run(&loop_, UV_RUN_DEFAULT);
    return result.value_or(Result<PageResult>(Status(ErrorKind::kTarget, "no callback")));
  }

  std::vector<std::string> Column(const std::string& sql) {
    sqlite3* db;
    sqlite3_open_v2(path_.c_str(), &db, SQLITE_OPEN_READONLY, nullptr);
    sqlite3_stmt* s;
    EXPECT_EQ(sqlite3_prepare_v2(db, sql.c_str(), -1, &s, nullptr), SQLITE_OK)
        << sqlite3_errmsg(db);
    std::vector<std::string> out;
    while (sqlite3_step(s) == SQLITE_ROW) {
      const unsigned char* v = sqlite3_column_text(s, 0);
      out.push_back(v ? reinterpret_cast<const char*>(v) : "NULL");
    }
    sqlite3_finalize(s);
    sqlite3_close(db);
    return out;
  }

  // A page of a full-refresh pass: rows `ids`; a page that does not end the pass carries its
  // last id as the cursor, the one that ends it sweeps.
  Result<int64_t> PassPage(Target& target, std::vector<int64_t> ids, int64_t pass, bool sweep,
                           bool starts = false) {
    RowBatch b(4);
    for (int64_t id : ids) AddRow(b, id, "x", "2024-01-01T00:00:00Z");
    PageWrite w;
    w.rows = std::make_shared<RowBatch>(b);
    if (!sweep) w.cursor_after = Cursor{ids.back()};
    w.pass = pass;
    w.starts_pass = starts;
    w.sweep = sweep;
    return WritePage(target, std::move(w));
  }
  static void AddRow(RowBatch& b, int64_t id, const char* note, const char* at) {
    b.AddInt(id);
    if (note) {
      b.AddText(note);
    } else {
      b.AddNull();
    }
    b.AddText(at);
    b.AddBlob(std::string_view("\0x\0", 3));
  }

  std::filesystem::path dir_;
  std::string path_;
  uv_loop_t loop_;
};

TEST_F(TargetTest, PageAndCursorCommitTogetherAndSurviveReopen) {
  {
    Target target(&loop_, path_);
    ASSERT_TRUE(target.Open().ok());
    TableState s = Prepare(target, Orders());
    EXPECT_FALSE(s.cursor.has_value());
    RowBatch b(4);
    AddRow(b, 1, "a", "2024-01-01T00:00:00Z");
    AddRow(b, 2, nullptr, "2024-01-01T00:00:01.5Z");
    Cursor c = {std::string("2024-01-01T00:00:01.5Z"), int64_t{2}};
    ASSERT_TRUE(Write(target, b, c).ok());
  }
  EXPECT_EQ(Column("SELECT note FROM orders ORDER BY id"), std::vector<std::string>({"a", "NULL"}));
  EXPECT_EQ(Column("SELECT length(data) FROM orders WHERE id = 1"),
            std::vector<std::string>({"3"}));
  EXPECT_EQ(Column("SELECT cursor FROM _siphon_state"),
            std::vector<std::string>({R"(["2024-01-01T00:00:01.5Z",2])"}));
  EXPECT_EQ(Column("PRAGMA journal_mode"), std::vector<std::string>({"wal"}));
  Target again(&loop_, path_);
  ASSERT_TRUE(again.Open().ok());
  TableState s = Prepare(again, Orders());
  ASSERT_TRUE(s.cursor.has_value());
  EXPECT_EQ(std::get<int64_t>((*s.cursor)[1]), 2);
  EXPECT_EQ(s.rows_total, 2);
}

TEST_F(TargetTest, UpsertTakesTheRowAsTheSourceHasItEvenWhenItsTimestampWentBack) {
  Target target(&loop_, path_);
  ASSERT_TRUE(target.Open().ok());
  Prepare(target, Orders());
  RowBatch b(4);
  AddRow(b, 1, "new", "2024-01-01T00:00:02Z");
  ASSERT_TRUE(Write(target, b, Cursor{std::string("x"), int64_t{1}}).ok());
  RowBatch older(4);
  AddRow(older, 1, "old", "2024-01-01T00:00:01.999999Z");
  ASSERT_TRUE(Write(target, older, Cursor{std::string("x"), int64_t{1}}).ok());
  EXPECT_EQ(Column("SELECT note FROM orders"), std::vector<std::string>({"old"}));
  RowBatch newer(4);
  AddRow(newer, 1, "newer", "2024-01-01T00:00:02.5Z");
  ASSERT_TRUE(Write(target, newer, std::nullopt).ok());
  EXPECT_EQ(Column("SELECT note FROM orders"), std::vector<std::string>({"newer"}));
  EXPECT_EQ(Column("SELECT count(*) FROM _siphon_state WHERE cursor IS NULL"),
            std::vector<std::string>({"1"}));
}

TEST_F(TargetTest, FailedPageLeavesCursorUnchanged) {
  Target target(&loop_, path_);
  ASSERT_TRUE(target.Open().ok());
  Prepare(target, Orders());
  RowBatch b(4);
  AddRow(b, 1, "a", "2024-01-01T00:00:00Z");
  ASSERT_TRUE(Write(target, b, Cursor{int64_t{1}}).ok());
  // A text value in an INTEGER PRIMARY KEY fails the second row: the first row of the
  // page must roll back with it, and the cursor must not move.
  RowBatch mismatch(4);
  AddRow(mismatch, 3, "c", "2024-01-01T00:00:02Z");
  mismatch.AddText("not-an-integer-key");
  mismatch.AddText("d");
  mismatch.AddText("2024-01-01T00:00:03Z");
  mismatch.AddNull();
  Status st = Write(target, mismatch, Cursor{int64_t{99}});
  EXPECT_FALSE(st.ok());
  // A row the table refuses is no transient failure: retrying writes it no better.
  EXPECT_EQ(st.kind(), ErrorKind::kType);
  EXPECT_NE(st.message().find(R"("id":"not-an-integer-key","note":"d")"), std::string::npos)
      << st.message();
  EXPECT_EQ(Column("SELECT count(*) FROM orders"), std::vector<std::string>({"1"}));
  EXPECT_EQ(Column("SELECT cursor FROM _siphon_state"), std::vector<std::string>({"[1]"}));
}

TEST_F(TargetTest, RunRecordsAreLoggedAndStateUpdated) {
  Target target(&loop_, path_);
  ASSERT_TRUE(target.Open().ok());
  Prepare(target, Orders());
  bool done = false;
  target.RecordRun({"orders", "error", 0, 0, 12, "connect: refused", "error"},
                   [&](Status st) { done = st.ok(); });
  uv_run(&loop_, UV_RUN_DEFAULT);
  EXPECT_TRUE(done);
  EXPECT_EQ(Column("SELECT last_error FROM _siphon_state"),
            std::vector<std::string>({"connect: refused"}));
  EXPECT_EQ(Column("SELECT last_success_at IS NULL FROM _siphon_state"),
            std::vector<std::string>({"1"}));
  target.RecordRun({"orders", "synced", 5, 0, 3, "", "ok"}, nullptr);
  uv_run(&loop_, UV_RUN_DEFAULT);
  EXPECT_EQ(Column("SELECT last_error FROM _siphon_state"), std::vector<std::string>({"NULL"}));
  EXPECT_EQ(Column("SELECT event || ':' || rows FROM _siphon_log ORDER BY id"),
            std::vector<std::string>({"error:0", "synced:5"}));
}

// A run that changed nothing is recorded with the others of the next kRecordBatchMs, in one
// transaction; one that wrote rows or failed is committed at once, with those waiting.
TEST_F(TargetTest, QuietRunRecordsShareACommitAndNoneIsLost) {
  auto target = std::make_unique<Target>(&loop_, path_);
  ASSERT_TRUE(target->Open().ok());
  Prepare(*target, Orders());
  int done = 0;
  auto count = [&done](Status st) { done += st.ok() ? 1 : 100; };
  target->RecordRun({"orders", "synced", 0, 0, 2, "", "ok"}, count);
  target->RecordRun({"orders", "synced", 0, 0, 3, "", "ok"}, count);
  for (int i = 0; i < 20; ++i) uv_run(&loop_, UV_RUN_NOWAIT);
  EXPECT_EQ(done, 0);
  EXPECT_EQ(Column("SELECT count(*) FROM _siphon_log"), std::vector<std::string>({"0"}));
  uv_run(&loop_, UV_RUN_DEFAULT);  // the batch's timer fires
  EXPECT_EQ(done, 2);
  EXPECT_EQ(Column("SELECT count(*) FROM _siphon_log"), std::vector<std::string>({"2"}));

  // Rows written: this record and the quiet one before it go now.
  const auto started = std::chrono::steady_clock::now();
  target->RecordRun({"orders", "synced", 0, 0, 4, "", "ok"}, count);
  target->RecordRun({"orders", "synced", 7, 0, 5, "", "ok"}, count);
  while (done < 4) uv_run(&loop_, UV_RUN_ONCE);
  EXPECT_LT(std::chrono::steady_clock::now() - started,
            std::chrono::milliseconds(Target::kRecordBatchMs));
  EXPECT_EQ(Column("SELECT group_concat(duration_ms || ':' || rows) FROM _siphon_log"),
            std::vector<std::string>({"2:0,3:0,4:0,5:7"}));

  // A quiet record still waiting when the target closes is written, not dropped.
  target->RecordRun({"orders", "synced", 0, 0, 6, "", "ok"}, count);
  target.reset();
  EXPECT_EQ(Column("SELECT max(duration_ms) FROM _siphon_log"), std::vector<std::string>({"6"}));
}

// A run's pages do not wait for a checkpoint: the WAL they grew is copied into the file after
// the run's record. A long run's pages after its first few checkpoint as SQLite would, and a
// WAL of Target::kWalMaxBytes is checkpointed by any commit.
TEST_F(TargetTest, CheckpointsWaitForTheEndOfAShortRun) {
  Target target(&loop_, path_);
  ASSERT_TRUE(target.Open().ok());
  Prepare(target, Orders());
  auto file_size = [this] { return std::filesystem::file_size(path_); };
  int64_t next_id = 1;
  // About `kib` KiB of rows: each of these rows fills most of a 4 KiB SQLite page.
  auto write = [&](size_t kib) {
    const std::string note(3000, 'n');
    RowBatch b(4);
    for (size_t i = 0; i < kib / 4; ++i) AddRow(b, next_id++, note.c_str(), "2024-01-01T00:00:00Z");
    return Write(target, b, Cursor{next_id - 1});
  };
  auto record = [&] {
    bool done = false;
    target.RecordRun({"orders", "synced", 1, 0, 1, "", "ok"}, [&](Status st) {
      EXPECT_TRUE(st.ok()) << st.ToString();
      done = true;
    });
    while (!done) uv_run(&loop_, UV_RUN_ONCE);
  };
  const auto empty = file_size();
  // 6 MiB, 1500 WAL frames: SQLite alone would have checkpointed in this commit.
  ASSERT_TRUE(write(6 << 10).ok());
  EXPECT_EQ(file_size(), empty);
  record();
  const auto after_run = file_size();
  EXPECT_GT(after_run, empty + (5 << 20));

  // A long run: its first kUncheckpointedCommits pages leave the WAL be, the next does not.
  for (int i = 0; i < Target::kUncheckpointedCommits; ++i) ASSERT_TRUE(write(600).ok());
  EXPECT_EQ(file_size(), after_run);
  ASSERT_TRUE(write(600).ok());
  const auto long_run = file_size();
  EXPECT_GT(long_run, after_run + (5 << 20));
  record();

  // A short run writing more than kWalMaxBytes is checkpointed when the WAL reaches it.
  ASSERT_TRUE(write(Target::kWalMaxBytes / 1024 + 1024).ok());
  EXPECT_GT(file_size(), long_run + (Target::kWalMaxBytes / 2));
  record();
  // The WAL that run grew is cut back when the next write starts it over.
  ASSERT_TRUE(write(4).ok());
  EXPECT_LE(std::filesystem::file_size(path_ + "-wal"),
            static_cast<uintmax_t>(Target::kWalKeepBytes));
  EXPECT_EQ(Column("SELECT count(*) = max(id) FROM orders"), std::vector<std::string>({"1"}));
}

// Every run prepares its table again; one already prepared in the same shape keeps its
// statements, but a table or state row removed by another connection is made again.
TEST_F(TargetTest, PreparingAgainKeepsStateAndRemakesWhatWasRemoved) {
  Target target(&loop_, path_);
  ASSERT_TRUE(target.Open().ok());
  Prepare(target, Orders());
  RowBatch b(4);
  AddRow(b, 1, "a", "2024-01-01T00:00:00Z");
  ASSERT_TRUE(Write(target, b, Cursor{int64_t{1}}).ok());
  TableState again = Prepare(target, Orders());
  ASSERT_TRUE(again.cursor.has_value());
  EXPECT_EQ(std::get<int64_t>((*again.cursor)[0]), 1);
  EXPECT_EQ(again.rows_total, 1);

  auto exec = [this](const char* sql) {
    sqlite3* db;
    ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
    EXPECT_EQ(sqlite3_exec(db, sql, nullptr, nullptr, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
    sqlite3_close(db);
  };
  exec("DROP TABLE orders");
  // Made again empty, so the cursor of the rows it held goes with them: pulled from the start.
  TableState remade = Prepare(target, Orders());
  EXPECT_FALSE(remade.cursor.has_value());
  EXPECT_TRUE(remade.table_recreated);
  EXPECT_FALSE(again.table_recreated);
  RowBatch c(4);
  AddRow(c, 2, "b", "2024-01-01T00:00:01Z");
  ASSERT_TRUE(Write(target, c, Cursor{int64_t{2}}).ok());
  EXPECT_EQ(Column("SELECT group_concat(id) FROM orders"), std::vector<std::string>({"2"}));

  exec("DELETE FROM _siphon_state");
  TableState fresh = Prepare(target, Orders());
  EXPECT_FALSE(fresh.cursor.has_value());
  EXPECT_EQ(Column("SELECT status FROM _siphon_state"), std::vector<std::string>({"new"}));

  // A changed shape (a new column) is prepared afresh, the column added.
  TargetTable wider = Orders();
  wider.columns.push_back({"extra", "text", ColumnType::kText, OrderKind::kText, true});
  Prepare(target, wider);
  EXPECT_EQ(Column("SELECT count(*) FROM pragma_table_info('orders') WHERE name = 'extra'"),
            std::vector<std::string>({"1"}));
}

TEST_F(TargetTest, ExistingTableGainsNewColumns) {
  Target target(&loop_, path_);
  ASSERT_TRUE(target.Open().ok());
  TargetTable t = Orders();
  t.columns.pop_back();
  Prepare(target, t);
  Prepare(target, Orders());
  EXPECT_EQ(Column("SELECT name FROM pragma_table_info('orders') ORDER BY cid"),
            std::vector<std::string>({"id", "note", "updated_at", "data"}));
}

TEST_F(TargetTest, FullRefreshPassesSweepRowsTheSourceNoLongerHas) {
  Target target(&loop_, path_);
  ASSERT_TRUE(target.Open().ok());
  TargetTable t = Orders();
  t.pass_marks = true;
  Prepare(target, t);
  auto page = [&](std::vector<int64_t> ids, int64_t pass, bool sweep) {
    return PassPage(target, std::move(ids), pass, sweep);
  };
  ASSERT_TRUE(page({1, 2, 3}, 1, false).ok());
  auto swept = page({4, 5}, 1, true);
  ASSERT_TRUE(swept.ok());
  EXPECT_EQ(*swept, 0);
  // Pass 2: rows 2 and 4 are gone from the source. Mid-pass, readers still see them.
  ASSERT_TRUE(page({1, 3}, 2, false).ok());
  EXPECT_EQ(Column("SELECT count(*) FROM orders"), std::vector<std::string>({"5"}));
  swept = page({5}, 2, true);
  ASSERT_TRUE(swept.ok());
  EXPECT_EQ(*swept, 2);
  EXPECT_EQ(Column("SELECT group_concat(id) FROM (SELECT id FROM orders ORDER BY id)"),
            std::vector<std::string>({"1,3,5"}));
  EXPECT_EQ(Column("SELECT full_pass FROM _siphon_state"), std::vector<std::string>({"2"}));
  // A source that became empty: the sweep of an empty last page empties the table.
  swept = page({}, 3, true);
  ASSERT_TRUE(swept.ok());
  EXPECT_EQ(*swept, 3);
}

// The first page of a pass on an empty table lets the pass skip its closing sweep; rows that
// got in some other way are still swept.
TEST_F(TargetTest, APassThatStartedOnAnEmptyTableStillSweepsRowsFromElsewhere) {
  Target target(&loop_, path_);
  ASSERT_TRUE(target.Open().ok());
  TargetTable t = Orders();
  t.pass_marks = true;
  Prepare(target, t);
  auto page = [&](std::vector<int64_t> ids, int64_t pass, bool starts, bool sweep) {
    return PassPage(target, std::move(ids), pass, sweep, starts);
  };
  auto exec = [&](std::string sql) {
    std::optional<Result<int64_t>> result;
    target.Exec(std::move(sql), {}, true, [&](Result<int64_t> r) { result = std::move(r); });
    uv_run(&loop_, UV_RUN_DEFAULT);
    return result && result->ok();
  };
  // Pass 1 starts on the empty table; a script adds a row of its own before the pass ends.
  ASSERT_TRUE(page({1, 2}, 1, true, false).ok());
  ASSERT_TRUE(exec("INSERT INTO orders (id, note, updated_at) VALUES (99, 'x', 'x')"));
  auto swept = page({3}, 1, false, true);
  ASSERT_TRUE(swept.ok());
  EXPECT_EQ(*swept, 1);
  // Pass 2 starts on a table full of pass 1: what it does not write again is swept.
  ASSERT_TRUE(page({1}, 2, true, false).ok());
  swept = page({3}, 2, false, true);
  ASSERT_TRUE(swept.ok());
  EXPECT_EQ(*swept, 1);
  EXPECT_EQ(Column("SELECT group_concat(id) FROM (SELECT id FROM orders ORDER BY id)"),
            std::vector<std::string>({"1,3"}));
}

TEST_F(TargetTest, SoftDeletedRowsLeaveTheTargetAndComeBackWhenUndeleted) {
  Target target(&loop_, path_);
  ASSERT_TRUE(target.Open().ok());
  TargetTable t = Orders();
  t.soft_delete_column = "note";  // any value set means deleted, NULL means alive
  Prepare(target, t);
  RowBatch b(4);
  AddRow(b, 1, nullptr, "2024-01-01T00:00:00Z");
  AddRow(b, 2, nullptr, "2024-01-01T00:00:01Z");
  ASSERT_TRUE(Write(target, b, Cursor{int64_t{2}}).ok());
  RowBatch del(4);
  AddRow(del, 2, "2024-01-02T00:00:00Z", "2024-01-01T00:00:02Z");
  PageWrite w;
  w.rows = std::make_shared<RowBatch>(del);
  w.cursor_after = Cursor{int64_t{3}};
  auto deleted = WritePage(target, std::move(w));
  ASSERT_TRUE(deleted.ok());
  EXPECT_EQ(*deleted, 1);
  EXPECT_EQ(Column("SELECT group_concat(id) FROM orders"), std::vector<std::string>({"1"}));
  RowBatch undelete(4);
  AddRow(undelete, 2, nullptr, "2024-01-01T00:00:03Z");
  ASSERT_TRUE(Write(target, undelete, Cursor{int64_t{4}}).ok());
  EXPECT_EQ(Column("SELECT group_concat(id) FROM (SELECT id FROM orders ORDER BY id)"),
            std::vector<std::string>({"1,2"}));
}

TEST_F(TargetTest, LargePagesWriteManyRowsPerStatementInOrder) {
  Target target(&loop_, path_);
  ASSERT_TRUE(target.Open().ok());
  Prepare(target, Orders());
  // 100 rows: three full multi-row statements and 4 single rows; key 5 appears twice in the
  // first group (the later row must win) and key 99 twice across the boundary.
  RowBatch b(4);
  for (int64_t i = 0; i < 100; ++i) {
    int64_t id = i == 20 ? 5 : (i == 98 ? 99 : i);
    std::string note = "n" + std::to_string(i);
    AddRow(b, id, note.c_str(), "2024-01-01T00:00:00Z");
  }
  ASSERT_TRUE(Write(target, b, Cursor{int64_t{100}}).ok());
  EXPECT_EQ(Column("SELECT count(*) FROM orders"), std::vector<std::string>({"98"}));
  EXPECT_EQ(Column("SELECT note FROM orders WHERE id = 5"), std::vector<std::string>({"n20"}));
  EXPECT_EQ(Column("SELECT note FROM orders WHERE id = 99"), std::vector<std::string>({"n99"}));
  EXPECT_EQ(Column("SELECT rows_total FROM _siphon_state"), std::vector<std::string>({"100"}));
}

// A transform's rows can carry a NULL key, text in the INTEGER key or one key twice. Each such
// row is refused on its own (to `_siphon_rejects`), in a multi-row statement as in a single
// row, and the rest of the page commits with its cursor.
TEST_F(TargetTest, RefusedRowsAreRejectedAndTheRestOfThePageIsWritten) {
  Target target(&loop_, path_);
  ASSERT_TRUE(target.Open().ok());
  TargetTable spec = Orders();
  spec.reject_refused_rows = true;
  spec.distinct_keys = true;
  Prepare(target, spec);
  // 100 rows: rows 3 and 97 have a NULL key (one in a multi-row group, one single), rows 40
  // and 98 text keys, row 60 the key of row 50, row 70 key 1.0 (row 1's, as a REAL).
  RowBatch b(4);
  for (int64_t i = 0; i < 100; ++i) {
    if (i == 3 || i == 97) {
      b.AddNull();
    } else if (i == 40 || i == 98) {
      b.AddText("str" + std::to_string(i));
    } else if (i == 60) {
      b.AddInt(50);
    } else if (i == 70) {
      b.AddReal(1.0);
    } else {
      b.AddInt(i);
    }
    b.AddText("n" + std::to_string(i));
    b.AddText("2024-01-01T00:00:00Z");
    b.AddNull();
  }
  PageWrite w;
  w.rows = std::make_shared<RowBatch>(b);
  w.cursor_after = Cursor{int64_t{99}};
  w.rejects.push_back(Reject{R"({"id":1000})", "a transform error"});
  for (int run = 0; run < 2; ++run) {  // the same page again adds nothing
    PageWrite again = w;
    Result<PageResult> written = WritePageResult(target, std::move(again));
    ASSERT_TRUE(written.ok()) << written.status().ToString();
    EXPECT_EQ(written->refused, 6);
    // Written again, every row is found as it is (single rows and multi-row statements).
    EXPECT_EQ(written->unchanged, run == 0 ? 0 : 94);
  }
  EXPECT_EQ(Column("SELECT count(*) FROM orders"), std::vector<std::string>({"94"}));
  EXPECT_EQ(Column("SELECT count(*) FROM orders WHERE id IN (3, 40, 60, 70, 97, 98) OR id > 99 "
                   "OR typeof(id) <> 'integer'"),
            std::vector<std::string>({"0"}));
  EXPECT_EQ(Column("SELECT note FROM orders WHERE id IN (1, 50) ORDER BY id"),
            std::vector<std::string>({"n1", "n50"}));
  // The second write found every row as it was: rows_total counts the first's 94 only.
  EXPECT_EQ(Column("SELECT cursor || ' ' || rows_total FROM _siphon_state"),
            std::vector<std::string>({"[99] 94"}));
  std::vector<std::string> rejects =
      Column("SELECT row_json || ' | ' || error FROM _siphon_rejects WHERE id <= 7 ORDER BY id");
  ASSERT_EQ(rejects.size(), 7u);
  EXPECT_EQ(rejects[0], R"({"id":1000} | a transform error)");
  EXPECT_EQ(rejects[1].find(R"({"data":null,"id":null,"note":"n3",)"), 0u) << rejects[1];
  EXPECT_NE(rejects[1].find(R"(| key column "id" is NULL)"), std::string::npos) << rejects[1];
  EXPECT_NE(rejects[2].find(R"("note":"n60")"), std::string::npos) << rejects[2];
  EXPECT_NE(rejects[2].find(R"(key ["id"] = [50] repeats an earlier row of the page)"),
            std::string::npos)
      << rejects[2];
  EXPECT_NE(rejects[3].find(R"(key ["id"] = [1.0] repeats)"), std::string::npos) << rejects[3];
  EXPECT_NE(rejects[4].find(R"(| key column "id" is NULL)"), std::string::npos) << rejects[4];
  // Found by SQLite as the page is written, after the checks above.
  EXPECT_NE(rejects[5].find(R"(key column "id" is an INTEGER PRIMARY KEY and cannot hold the )"
                            R"(text "str40" (datatype mismatch))"),
            std::string::npos)
      << rejects[5];
  EXPECT_NE(rejects[6].find(R"(cannot hold the text "str98")"), std::string::npos) << rejects[6];
}

TEST_F(TargetTest, ARefusedRowFailsThePageWhenRowsAreNotRejected) {
  Target target(&loop_, path_);
  ASSERT_TRUE(target.Open().ok());
  TargetTable spec = Orders();
  spec.distinct_keys = true;
  Prepare(target, spec);
  for (int bad = 0; bad < 2; ++bad) {
    RowBatch b(4);
    AddRow(b, 1, "a", "2024-01-01T00:00:00Z");
    if (bad == 0) {
      b.AddNull();
    } else {
      b.AddInt(1);
    }
    b.AddText("b");
    b.AddText("2024-01-01T00:00:00Z");
    b.AddNull();
    Status st = Write(target, b, Cursor{int64_t{2}});
    ASSERT_FALSE(st.ok());
    EXPECT_EQ(st.kind(), ErrorKind::kType);
    EXPECT_NE(st.message().find(R"("note":"b")"), std::string::npos) << st.message();
    EXPECT_NE(st.message().find(bad == 0 ? "is NULL" : "repeats"), std::string::npos)
        << st.message();
  }
  EXPECT_EQ(Column("SELECT count(*) FROM orders"), std::vector<std::string>({"0"}));
  EXPECT_EQ(Column("SELECT count(*) FROM _siphon_rejects"), std::vector<std::string>({"0"}));
  EXPECT_EQ(Column("SELECT cursor IS NULL FROM _siphon_state"), std::vector<std::string>({"1"}));
}

// Constraints someone added to the replica (here triggers) refuse rows too: RAISE(ABORT)
// refuses the one row; RAISE(ROLLBACK) ends the transaction, so the page fails whole.
TEST_F(TargetTest, RowsATriggerRefusesAreRejectedButARollbackFailsThePage) {
  Target target(&loop_, path_);
  ASSERT_TRUE(target.Open().ok());
  TargetTable spec = Orders();
  spec.reject_refused_rows = true;
  Prepare(target, spec);
  {
    sqlite3* db;
    ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
    EXPECT_EQ(sqlite3_exec(db,
                           "CREATE TRIGGER no_bad BEFORE INSERT ON orders WHEN NEW.note = 'bad' "
                           "BEGIN SELECT RAISE(ABORT, 'no bad notes'); END; "
                           "CREATE TRIGGER no_worse BEFORE INSERT ON orders WHEN NEW.note = "
                           "'worse' BEGIN SELECT RAISE(ROLLBACK, 'never'); END",
                           nullptr, nullptr, nullptr),
              SQLITE_OK);
    sqlite3_close(db);
  }
  RowBatch b(4);
  for (int64_t i = 0; i < 40; ++i) AddRow(b, i, i == 7 || i == 35 ? "bad" : "ok", "2024-01-01");
  PageWrite w;
  w.rows = std::make_shared<RowBatch>(b);
  w.cursor_after = Cursor{int64_t{40}};
  Result<PageResult> written = WritePageResult(target, std::move(w));
  ASSERT_TRUE(written.ok()) << written.status().ToString();
  EXPECT_EQ(written->refused, 2);
  EXPECT_EQ(Column("SELECT count(*) FROM orders"), std::vector<std::string>({"38"}));
  EXPECT_EQ(Column("SELECT error FROM _siphon_rejects ORDER BY id"),
            std::vector<std::string>({"no bad notes", "no bad notes"}));
  RowBatch worse(4);
  AddRow(worse, 100, "ok", "2024-01-02");
  AddRow(worse, 101, "worse", "2024-01-02");
  Status st = Write(target, worse, Cursor{int64_t{101}});
  EXPECT_FALSE(st.ok());
  EXPECT_EQ(Column("SELECT count(*) FROM orders"), std::vector<std::string>({"38"}));
  EXPECT_EQ(Column("SELECT cursor FROM _siphon_state"), std::vector<std::string>({"[40]"}));
}

TEST_F(TargetTest, ExecRunsMaintenanceWithBoundParameters) {
  Target target(&loop_, path_);
  ASSERT_TRUE(target.Open().ok());
  Prepare(target, Orders());
  RowBatch b(4);
  AddRow(b, 1, "a", "2024-01-01T00:00:00Z");
  AddRow(b, 2, "b", "2024-01-01T00:00:01Z");
  ASSERT_TRUE(Write(target, b, Cursor{int64_t{2}}).ok());
  std::optional<Result<int64_t>> changed;
  target.Exec("DELETE FROM orders WHERE note = ?1; PRAGMA optimize",
              {std::string("a'); DROP TABLE orders; --")}, true,
              [&](Result<int64_t> r) { changed = std::move(r); });
  uv_run(&loop_, UV_RUN_DEFAULT);
  ASSERT_TRUE(changed && changed->ok());
  EXPECT_EQ(**changed, 0);
  target.Exec("DELETE FROM orders WHERE note = ?1", {std::string("a")}, true,
              [&](Result<int64_t> r) { changed = std::move(r); });
  uv_run(&loop_, UV_RUN_DEFAULT);
  ASSERT_TRUE(changed && changed->ok());
  EXPECT_EQ(**changed, 1);
  // Statements that change no rows count none, whatever the page before them wrote.
  RowBatch more(4);
  AddRow(more, 3, "c", "2024-01-01T00:00:02Z");
  AddRow(more, 4, "d", "2024-01-01T00:00:03Z");
  AddRow(more, 5, "e", "2024-01-01T00:00:04Z");
  ASSERT_TRUE(Write(target, more, Cursor{int64_t{5}}).ok());
  target.Exec("CREATE INDEX orders_by_note ON orders (note); PRAGMA optimize", {}, true,
              [&](Result<int64_t> r) { changed = std::move(r); });
  uv_run(&loop_, UV_RUN_DEFAULT);
  ASSERT_TRUE(changed && changed->ok());
  EXPECT_EQ(**changed, 0);
  target.Exec("CREATE TABLE notes (note TEXT); INSERT INTO notes SELECT note FROM orders", {}, true,
              [&](Result<int64_t> r) { changed = std::move(r); });
  uv_run(&loop_, UV_RUN_DEFAULT);
  ASSERT_TRUE(changed && changed->ok());
  EXPECT_EQ(**changed, 4);
  target.Exec("SELEC nonsense", {}, true, [&](Result<int64_t> r) { changed = std::move(r); });
  uv_run(&loop_, UV_RUN_DEFAULT);
  ASSERT_TRUE(changed && !changed->ok());
  EXPECT_EQ(changed->status().kind(), ErrorKind::kTarget);
}

// A transaction the script's SQL opens and leaves open (a failing statement between BEGIN and
// COMMIT, or a BEGIN alone) is rolled back when the call ends: left open, every page after it
// failed ("cannot start a transaction within a transaction") and held what it wrote
// uncommitted.
TEST_F(TargetTest, ExecNeverLeavesATransactionOpen) {
  Target target(&loop_, path_);
  ASSERT_TRUE(target.Open().ok());
  Prepare(target, Orders());
  std::optional<Result<int64_t>> changed;
  auto exec = [&](const std::string& sql) {
    changed.reset();
    target.Exec(sql, {}, true, [&](Result<int64_t> r) { changed = std::move(r); });
    uv_run(&loop_, UV_RUN_DEFAULT);
    return changed && changed->ok() ? std::string() : changed->status().message();
  };
  std::string error =
      exec("BEGIN; CREATE TABLE notes (n TEXT); INSERT INTO missing VALUES (1); COMMIT");
  EXPECT_NE(error.find("no such table: missing"), std::string::npos) << error;
  EXPECT_NE(error.find("rolled back"), std::string::npos) << error;
  RowBatch b(4);
  AddRow(b, 1, "a", "2024-01-01T00:00:00Z");
  ASSERT_TRUE(Write(target, b, Cursor{int64_t{1}}).ok());
  EXPECT_EQ(Column("SELECT count(*) FROM sqlite_master WHERE name = 'notes'"),
            std::vector<std::string>{"0"});

  error = exec("BEGIN; INSERT INTO orders (id, note, updated_at) VALUES (9, 'x', 'y')");
  EXPECT_NE(error.find("left a transaction open"), std::string::npos) << error;
  RowBatch c(4);
  AddRow(c, 2, "b", "2024-01-01T00:00:01Z");
  ASSERT_TRUE(Write(target, c, Cursor{int64_t{2}}).ok());
  EXPECT_EQ(Column("SELECT id FROM orders ORDER BY id"), (std::vector<std::string>{"1", "2"}));

  // A whole transaction in one call is fine.
  EXPECT_EQ(exec("BEGIN; CREATE TABLE notes (n TEXT); INSERT INTO notes VALUES ('x'); COMMIT"), "");
  EXPECT_EQ(Column("SELECT count(*) FROM notes"), std::vector<std::string>{"1"});
}

}  // namespace
}  // namespace siphon

// End-to-end: rows a transform makes that the replica cannot take as they are (a NULL key,
// text in an INTEGER key, a key repeated within a page) are row errors handled by
// `on_row_error`, through the real siphon binary and a real PostgreSQL database.
#include <gtest/gtest.h>

#include "tests/integration/harness/harness.hpp"

namespace siphon::test {
namespace {

class RowErrors : public ::testing::Test {
 protected:
  void SetUp() override {
    db_.Exec(R"sql(
      CREATE TABLE acc (id int PRIMARY KEY, v text NOT NULL);
      INSERT INTO acc SELECT g, 'v' || g FROM generate_series(1, 9) g;)sql");
  }
  // deploy.lua replicating public.acc with the declaration's other `fields`.
  std::string ScriptWith(const std::string& fields) {
    std::string path = dir_.File("deploy.lua");
    WriteFile(path,
              "local pg = siphon.postgres { dsn = siphon.env(\"TEST_PG_DSN\") }\n"
              "siphon.target { path = \"" +
                  dir_.File("replica.db") +
                  "\" }\n"
                  "siphon.replicate \"acc\" { source = pg, from = \"public.acc\",\n  " +
                  fields + " }\n");
    return path;
  }
  std::string Script(const std::string& policy, const std::string& transform) {
    return ScriptWith("on_row_error = \"" + policy + "\",\n  transform = " + transform);
  }
  ProcessResult Once(const std::string& script) {
    return siphon::test::Run({SIPHON_BIN, "once", script}, {{"TEST_PG_DSN", db_.Dsn()}},
                             std::chrono::minutes(2));
  }
  Rows Target(const std::string& sql) { return SqliteQuery(dir_.File("replica.db"), sql); }
  static std::string Dump(const ProcessResult& r) {
    return "exit " + std::to_string(r.exit_code) + "\nstdout:\n" + r.out + "\nstderr:\n" + r.err;
  }

  PgDb db_;
  TempDir dir_;
};

// `id` is the replica's INTEGER PRIMARY KEY, SQLite's rowid: a NULL there used to become a
// key SQLite made up (another row's id, and one more row every run).
TEST_F(RowErrors, ANullKeyIsRejectedNotGivenAnInventedKey) {
  const std::string script =
      Script("reject", "function(r) if r.id == 5 then r.id = nil end return r end");
  for (int run = 0; run < 2; ++run) {
    auto r = Once(script);
    ASSERT_EQ(r.exit_code, 0) << Dump(r);
    db_.Exec("UPDATE acc SET v = v || '+' WHERE id = 2");
  }
  EXPECT_EQ(Target("SELECT count(*), group_concat(id) FROM (SELECT id FROM acc ORDER BY id)"),
            (Rows{{"8", "1,2,3,4,6,7,8,9"}}));
  Rows rejects = Target("SELECT row_json, error FROM _siphon_rejects ORDER BY id");
  ASSERT_EQ(rejects.size(), 2u);
  EXPECT_EQ(*rejects[0][0], R"({"id":null,"v":"v5"})");
  EXPECT_EQ(*rejects[0][1], R"(key column "id" is NULL)");
  EXPECT_EQ(Target("SELECT rows_total FROM _siphon_state"), (Rows{{"16"}}));
}

// A transform that fails on every row used to look like a quiet success, "synced 0 rows (9
// pulled)" at info level: the run now warns with the count, where the rows are and the first
// row's error, which names the transform's line.
TEST_F(RowErrors, RejectedRowsAreWarnedAboutWithTheFirstError) {
  auto r = Once(Script("reject", "function(r) return r.v end"));
  ASSERT_EQ(r.exit_code, 0) << Dump(r);
  EXPECT_EQ(Target("SELECT count(*) FROM _siphon_rejects"), (Rows{{"9"}}));
  EXPECT_NE(r.err.find("warning [table:acc] 9 row(s) rejected, kept in _siphon_rejects (SELECT "
                       "error, row_json FROM _siphon_rejects WHERE table_name = 'acc'); the "
                       "first: the transform must return the row, a list of rows or nil, got a "
                       "string (transform at "),
            std::string::npos)
      << Dump(r);
  EXPECT_NE(r.err.find("deploy.lua:5)"), std::string::npos) << Dump(r);
  // A run that rejects nothing says nothing of it.
  db_.Exec("UPDATE acc SET v = v || '+'");
  r = Once(ScriptWith("transform = function(r) return r end"));
  ASSERT_EQ(r.exit_code, 0) << Dump(r);
  EXPECT_EQ(r.err.find("rejected"), std::string::npos) << Dump(r);
}

TEST_F(RowErrors, TextInAnIntegerKeyRejectsThatRowOnly) {
  auto r = Once(Script("reject",
                       "function(r) if r.id == 3 then r.id = 'str' .. r.id end "
                       "return r end"));
  ASSERT_EQ(r.exit_code, 0) << Dump(r);
  EXPECT_EQ(Target("SELECT count(*) FROM acc"), (Rows{{"8"}}));
  Rows rejects = Target("SELECT row_json, error FROM _siphon_rejects");
  ASSERT_EQ(rejects.size(), 1u);
  EXPECT_EQ(*rejects[0][0], R"({"id":"str3","v":"v3"})");
  EXPECT_EQ(*rejects[0][1],
            R"(key column "id" is an INTEGER PRIMARY KEY and cannot hold the text "str3" )"
            "(datatype mismatch)");
}

// A fan-out that repeats a key within a page: the first row with the key is written, the
// later ones rejected (the upsert would have kept only the last, silently).
TEST_F(RowErrors, AFanOutRepeatingAKeyRejectsTheLaterRows) {
  const std::string fan_out = R"lua(function(r)
    if r.id % 3 ~= 0 then return r end
    return { r, { id = r.id, v = "copy of " .. r.v } }
  end)lua";
  auto r = Once(Script("reject", fan_out));
  ASSERT_EQ(r.exit_code, 0) << Dump(r);
  EXPECT_EQ(Target("SELECT count(*), count(*) FILTER (WHERE v LIKE 'copy%') FROM acc"),
            (Rows{{"9", "0"}}));
  Rows rejects = Target("SELECT row_json, error FROM _siphon_rejects ORDER BY id");
  ASSERT_EQ(rejects.size(), 3u);
  EXPECT_EQ(*rejects[0][0], R"({"id":3,"v":"copy of v3"})");
  EXPECT_EQ(*rejects[0][1],
            R"(key ["id"] = [3] repeats an earlier row of the page (rows written by one page )"
            "need distinct keys: a fan-out gives each row its own)");

  // on_row_error = "fail": the page is not written, the run fails naming the row.
  db_.Exec("UPDATE acc SET v = 'changed'");
  r = Once(Script("fail", fan_out));
  EXPECT_EQ(r.exit_code, 1) << Dump(r);
  EXPECT_NE(r.err.find(R"(row {"id":3,"v":"copy of changed"} is refused: key ["id"] = [3])"),
            std::string::npos)
      << Dump(r);
  EXPECT_EQ(Target("SELECT count(*) FROM acc WHERE v = 'changed'"), (Rows{{"0"}}));
}

// A run's rows (its log line, `_siphon_log.rows`, the `synced` event) are the rows it wrote, as
// `rows_total` counts them: not the rows dropped, rejected or refused, and each row of a fan-out.
TEST_F(RowErrors, ARunCountsTheRowsItWroteNotTheRowsItPulled) {
  const std::string transform = R"lua(function(r)
    if r.id <= 2 then return nil end
    if r.id == 3 then error("no three") end
    if r.id == 4 then r.id = nil end
    if r.id == 9 then return { r, { id = 109, v = "copy" } } end
    return r
  end)lua";
  auto r = Once(ScriptWith(
      "transform = " + transform +
      ",\n  on = { synced = function(ev) siphon.log.info('event rows %d', ev.rows) end }"));
  ASSERT_EQ(r.exit_code, 0) << Dump(r);
  EXPECT_EQ(Target("SELECT count(*) FROM acc"), (Rows{{"6"}}));
  EXPECT_EQ(Target("SELECT count(*) FROM _siphon_rejects"), (Rows{{"2"}}));
  EXPECT_EQ(Target("SELECT rows_total FROM _siphon_state"), (Rows{{"6"}}));
  EXPECT_EQ(Target("SELECT rows FROM _siphon_log"), (Rows{{"6"}}));
  EXPECT_NE(r.err.find("synced 6 rows (9 pulled) in "), std::string::npos) << Dump(r);
  EXPECT_NE(r.err.find("event rows 6"), std::string::npos) << Dump(r);
}

}  // namespace
}  // namespace siphon::test

// Fault (g): hostile source data: bytes that are not UTF-8 in bytea and BLOB columns, a
// 100 MB text value, a table of 1,000 columns, identifiers that are SQL reserved words.
// Each replicates exactly (asserted below); siphon never crashes.
#include <algorithm>
#include <filesystem>
#include <random>
#include <sstream>

#include "tests/integration/faults/fault_util.hpp"

namespace siphon::test {
namespace {

/// SQLite's hex of a column, NULL kept NULL (hex(NULL) is '').
std::string Hex(const std::string& col) {
  return "CASE WHEN " + col + " IS NULL THEN NULL ELSE lower(hex(" + col + ")) END";
}

class HostileInputFaults : public FaultTest {
 protected:
  std::string MySource() const {
    const ServerEnv& s = Servers();
    return "local my = siphon.mysql { host = '" + s.mysql_host +
           "', port = " + std::to_string(s.mysql_port) + ", user = '" + s.mysql_user +
           "', password = siphon.env('TEST_MYSQL_PW'), database = '" + my_.name() + "' }\n";
  }
  MyDb my_;
};

TEST_F(HostileInputFaults, InvalidUtf8BytesWideTablesAndReservedWordsReplicate) {
  // Bytes that are not UTF-8 (lone continuation bytes, an overlong NUL, 0xFF, embedded
  // NULs) in a bytea column; the table and its columns are reserved words.
  db_.Exec(R"sql(
    CREATE TABLE "order" (id int4 PRIMARY KEY, "select" text, "from" timestamptz NOT NULL,
                          "by" bytea);
    INSERT INTO "order" VALUES
      (1, 'where', '2024-01-01 00:00:00+00', '\xff'::bytea),
      (2, 'group', '2024-01-01 00:00:01+00', '\xc328a0a1e28228f0288cbc00c080fffe'::bytea),
      (3, ''' OR 1=1 --', '2024-01-01 00:00:02+00', '\x00'::bytea),
      (4, NULL, '2024-01-01 00:00:03+00', NULL);
  )sql");
  std::string wide = "CREATE TABLE wide (id int4 PRIMARY KEY";
  std::string wide_insert = "INSERT INTO wide SELECT g";
  std::string wide_cols = "id";
  for (int i = 1; i < 1000; ++i) {
    wide += ", c" + std::to_string(i) + " int8";
    wide_insert += ", g * " + std::to_string(i);
    wide_cols += ", c" + std::to_string(i);
  }
  db_.Exec(wide + "); " + wide_insert + " FROM generate_series(1, 300) g;");
  my_.Exec(R"sql(
    CREATE TABLE `select` (id INT PRIMARY KEY, `group` VARCHAR(20), `blob` BLOB,
                           `order` DATETIME(6) NOT NULL, KEY s_sync (`order`, id));
    INSERT INTO `select` VALUES
      (1, 'from', X'FF', '2024-01-01 00:00:00'),
      (2, 'where', X'C328A0A1E28228F0288CBC00C080FFFE', '2024-01-01 00:00:01'),
      (3, '`; DROP', X'00', '2024-01-01 00:00:02'),
      (4, NULL, NULL, '2024-01-01 00:00:03');
  )sql");
  const std::string script = Script(R"(
siphon.replicate "order" { source = pg, from = "public.order", cursor = { "from", "id" }, batch = 2 }
siphon.replicate "wide" { source = pg, batch = 100 }
siphon.replicate "select" { source = my, from = "select", cursor = { "order", "id" }, batch = 2 }
)",
                                    MySource());
  ProcessResult r = Once(script);
  ASSERT_EQ(r.exit_code, 0) << Dump(r);
  // A second run over the same rows (upserts of the same values) changes nothing.
  r = Once(script);
  ASSERT_EQ(r.exit_code, 0) << Dump(r);
  EXPECT_EQ(Target("PRAGMA integrity_check"), "ok");

  TableDiff o =
      ComparePg("order", "id::text, \"select\", encode(\"by\", 'hex'), " + PgTs("\"from\""),
                "id, \"select\", " + Hex("\"by\"") + ", " + TargetTs("\"from\""));
  // NULL stays NULL, an empty-looking value stays a blob.
  EXPECT_EQ(Target("SELECT typeof(\"by\") FROM \"order\" WHERE id = 2"), "blob");
  EXPECT_EQ(Target("SELECT typeof(\"by\") FROM \"order\" WHERE id = 4"), "null");
  TableDiff w = ComparePg("wide", wide_cols, wide_cols);
  // (Full-refresh tables get one more column of siphon's own: the pass that last saw a row.)
  EXPECT_EQ(Target("SELECT count(*) FROM pragma_table_info('wide') WHERE name = 'id' OR name "
                   "GLOB 'c[0-9]*'"),
            "1000");
  Rows ms = my_.Query("SELECT id, `group`, LOWER(HEX(`blob`)) FROM `select` ORDER BY id");
  Rows mt = SqliteQuery(
      Replica(), "SELECT id, \"group\", " + Hex("\"blob\"") + " FROM \"select\" ORDER BY id");
  TableDiff m = CompareRows(ms, mt);
  EXPECT_EQ(m.mismatches, 0) << m.first;
  EXPECT_EQ(m.target_rows, 4);
  EXPECT_EQ(Target("SELECT typeof(\"blob\") FROM \"select\" WHERE id = 2"), "blob");
  Summary("hostile_values", 2, 0, o.source_rows + w.source_rows + m.source_rows,
          o.mismatches + w.mismatches + m.mismatches);
}

TEST_F(HostileInputFaults, AHundredMegabyteTextValueReplicates) {
  db_.Exec(R"sql(
    CREATE TABLE huge (id int4 PRIMARY KEY, t text);
    INSERT INTO huge VALUES (1, 'small'), (3, 'after');
    INSERT INTO huge SELECT 2, repeat(md5('siphon'), 3276800);
  )sql");
  ASSERT_EQ(db_.Scalar("SELECT length(t) FROM huge WHERE id = 2"), "104857600");
  ProcessResult r = Once(Script(R"(siphon.replicate "huge" { source = pg, batch = 2 })"));
  ASSERT_EQ(r.exit_code, 0) << Dump(r);
  EXPECT_EQ(Target("SELECT length(t) || '/' || typeof(t) FROM huge WHERE id = 2"),
            "104857600/text");
  TableDiff d = ComparePg("huge", "id::text, t", "id, t");
  Summary("hostile_100mb", 1, 0, d.source_rows, d.mismatches);
}

// Scenario 7's other half: scripts mutated from the shipped examples (a line deleted, a value
// of the wrong type, huge numbers, deep tables, bytes that are not UTF-8, a cut file) never
// crash the real binary: `siphon check` ends with 0, 1 or 2, and a 2 says why.
TEST_F(HostileInputFaults, MutatedExampleScriptsNeverCrashSiphon) {
  std::vector<std::string> examples;
  for (const auto& entry : std::filesystem::directory_iterator(SIPHON_SOURCE_DIR "/examples")) {
    if (entry.path().extension() == ".lua") examples.push_back(entry.path().string());
  }
  std::sort(examples.begin(), examples.end());
  ASSERT_GE(examples.size(), 5u);
  const ServerEnv& s = Servers();
  std::map<std::string, std::string> env = Env();
  env["PG_DSN"] = env["BILLING_DSN"] = env["SHOP_DSN"] = db_.Dsn();
  env["REPLICA"] = Replica();
  env["APP_DB"] = env["SHOP_DB"] = dir_.File("app.db");
  env["SHOP_HOST"] = s.mysql_host;
  env["SHOP_PORT"] = std::to_string(s.mysql_port);
  env["SHOP_USER"] = s.mysql_user;
  env["SHOP_PW"] = s.mysql_password;
  env["SLACK_WEBHOOK_URL"] = "http://127.0.0.1:9/hook";
  env["SIPHON_TOKEN"] = "hostile-scripts-token";

  const std::vector<std::string> values = {"1e308",
                                           "-9223372036854775808",
                                           "9223372036854775807",
                                           "{}",
                                           "true",
                                           "nil",
                                           "\"\xff\xfe\xc0\x80 not utf-8\"",
                                           std::string(400, '{') + std::string(400, '}'),
                                           "string.rep('x', 1e9)",
                                           "function() end",
                                           "\"\"",
                                           "0/0"};
  std::mt19937 rng(20261123);
  int variants = 0, refused = 0, crashed = 0;
  for (const auto& path : examples) {
    std::string text = ReadFile(path);
    std::vector<std::string> lines;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    for (int v = 0; v < 14; ++v) {
      std::vector<std::string> mutated = lines;
      const size_t at = rng() % mutated.size();
      std::string& line = mutated[at];
      switch (v % 4) {
        case 0:  // a field or statement gone
          line.clear();
          break;
        case 1: {  // the value after the first '=' replaced
          size_t eq = line.find('=');
          const std::string& value = values[rng() % values.size()];
          line = eq == std::string::npos ? value : line.substr(0, eq + 1) + " " + value + ",";
          break;
        }
        case 2:  // bytes that are not UTF-8 in the middle of a line
          line.insert(line.size() / 2, "\xff\xfe\x80");
          break;
        case 3:  // the file cut short
          mutated.resize(at);
          break;
      }
      std::string script;
      for (const auto& l : mutated) script += l + "\n";
      std::string file = dir_.File("mutated.lua");
      WriteFile(file, script);
      ProcessResult r =
          siphon::test::Run({SIPHON_BIN, "check", file}, env, std::chrono::seconds(60));
      ++variants;
      // Under the sanitizer build a report exits with 1: look for it too.
      const bool sanitizer_report = r.err.find("Sanitizer") != std::string::npos ||
                                    r.err.find("runtime error:") != std::string::npos;
      const bool clean = !r.timed_out && r.term_signal == 0 && r.exit_code >= 0 &&
                         r.exit_code <= 2 && !sanitizer_report;
      if (!clean) ++crashed;
      EXPECT_TRUE(clean) << path << " variant " << v << " (line " << at + 1 << ")\n"
                         << script << "\n"
                         << Dump(r);
      if (r.exit_code == 2) {
        ++refused;
        EXPECT_NE(r.err.find("mutated.lua"), std::string::npos)
            << "a refused script names the file: " << Dump(r);
      }
    }
  }
  std::printf("[ hostile ] %d mutated scripts: %d refused with a message, %d crashed\n", variants,
              refused, crashed);
  Summary("hostile_scripts", variants, variants, variants, crashed);
}

}  // namespace
}  // namespace siphon::test

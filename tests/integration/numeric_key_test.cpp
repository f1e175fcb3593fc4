// End-to-end: a PostgreSQL `numeric` key without a scale keeps the scale each value was given,
// so an UPDATE can rewrite a key to the same number spelled otherwise (1.0 to 1.00). The
// replica keeps the text the source prints, so it sees another key; how each kind of table
// ends up holding the row once.
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "tests/integration/harness/harness.hpp"

namespace siphon::test {
namespace {

std::string Dump(const ProcessResult& r) {
  return "exit " + std::to_string(r.exit_code) + "\nstdout:\n" + r.out + "\nstderr:\n" + r.err;
}

class PgNumericKeyReconcile : public ::testing::Test {
 protected:
  std::string Replica() const { return dir_.File("replica.db"); }
  std::string Script(const std::string& tables) {
    std::string path = dir_.File("deploy.lua");
    WriteFile(path, "siphon.target { path = '" + Replica() +
                        "' }\nlocal pg = siphon.postgres { dsn = siphon.env('TEST_PG_DSN') }\n" +
                        tables);
    return path;
  }
  ProcessResult Once(const std::string& script) {
    return siphon::test::Run({SIPHON_BIN, "once", script}, {{"TEST_PG_DSN", db_.Dsn()}});
  }
  std::string TargetScalar(const std::string& sql) {
    Rows r = SqliteQuery(Replica(), sql);
    return r.empty() || r[0].empty() || !r[0][0] ? "" : *r[0][0];
  }
  /// The replica's rows of `table` as "key=v,…", ordered by the key's text.
  std::string Held(const std::string& table, const std::string& key = "k") {
    return TargetScalar("SELECT group_concat(" + key + " || '=' || v, ',') FROM (SELECT * FROM " +
                        table + " ORDER BY " + key + ")");
  }
  /// The last reconcile's row of _siphon_log: "keys looked up/deleted".
  std::string LastReconcile(const std::string& table) {
    return TargetScalar("SELECT rows || '/' || deleted FROM _siphon_log WHERE table_name = '" +
                        table + "' AND event = 'reconcile' ORDER BY id DESC LIMIT 1");
  }
  /// The reconcile interval of the script below is 1 s: let it come due.
  static void WaitForReconcile() { std::this_thread::sleep_for(std::chrono::milliseconds(1100)); }

  TempDir dir_;
  PgDb db_;
};

// The replica holds a numeric key as PostgreSQL prints it, so 1.0 rewritten to 1.00 arrives as
// a new row beside the old, as a key rewritten to another number would, and the old one goes
// as deleted keys go: at the end of a full refresh's pass, at a reconcile. Asked for 1.0, the
// source answers 1.00: the same row. A reconcile deleted every key the source spelled
// otherwise, also where the rewrite had not moved the row's cursor, so that the new spelling
// never arrived: with the key as the cursor, the row was gone from the replica for good (2 of
// 4 rows left). Such a row now takes the source's spelling; a stale twin of a row the replica
// holds in the new spelling is still deleted.
TEST_F(PgNumericKeyReconcile, AKeyRewrittenToAnotherScaleIsHeldOnce) {
  db_.Exec(R"sql(
    CREATE TABLE plain (k numeric PRIMARY KEY, v text NOT NULL);
    INSERT INTO plain VALUES (1.0, 'a'), (2, 'b');
    CREATE TABLE stamped (k numeric PRIMARY KEY, v text NOT NULL, updated_at timestamptz NOT NULL);
    INSERT INTO stamped VALUES (1.0, 'a', now() - interval '1 hour'),
                               (2, 'b', now() - interval '1 hour');
    CREATE TABLE counted (k numeric PRIMARY KEY, v text NOT NULL);
    INSERT INTO counted VALUES (1.0, 'a'), (2, 'b'), (2.5, 'c'), (3.00, 'd');
    CREATE TABLE parts (a int4, k numeric, v text NOT NULL, updated_at timestamptz NOT NULL,
                        PRIMARY KEY (a, k));
    INSERT INTO parts SELECT a, k, a || '/' || k, now() - interval '1 hour'
      FROM (VALUES (1, 1.0), (1, 2.50), (2, 1.0)) AS p(a, k);
  )sql");
  const std::string script = Script(R"(
    siphon.replicate "plain" { source = pg, batch = 1 }
    siphon.replicate "stamped" { source = pg, cursor = "updated_at",
                                 deletes = { reconcile = "1s" } }
    siphon.replicate "counted" { source = pg, cursor = "k", batch = 2,
                                 deletes = { reconcile = "1s" } }
    siphon.replicate "parts" { source = pg, cursor = "updated_at",
                               deletes = { reconcile = "1s" } })");
  auto r = Once(script);
  ASSERT_EQ(r.exit_code, 0) << Dump(r);
  EXPECT_EQ(Held("plain"), "1.0=a,2=b");
  EXPECT_EQ(TargetScalar("SELECT typeof(k) FROM plain WHERE v = 'a'"), "text");
  EXPECT_EQ(Held("counted"), "1.0=a,2=b,2.5=c,3.00=d");
  // The stored position is the key's text, which the next page compares as a numeric.
  EXPECT_EQ(TargetScalar("SELECT cursor FROM _siphon_state WHERE table_name = 'counted'"),
            "[\"3.00\"]");

  db_.Exec(R"sql(
    UPDATE plain SET k = 1.00 WHERE k = 1;
    UPDATE stamped SET k = 1.00, v = 'a2', updated_at = now() WHERE k = 1;
    UPDATE counted SET k = 1.00 WHERE k = 1;
    UPDATE counted SET k = 3.0 WHERE k = 3;
    UPDATE parts SET k = 1.00, v = 'new', updated_at = now() WHERE a = 1 AND k = 1;
    UPDATE parts SET k = 2.5 WHERE a = 1 AND k = 2.5;
  )sql");
  WaitForReconcile();
  r = Once(script);
  ASSERT_EQ(r.exit_code, 0) << Dump(r);
  // A full refresh writes 1.00 and its sweep deletes 1.0.
  EXPECT_EQ(Held("plain"), "1.00=a,2=b");
  // The cursor moved: 1.00 arrived, and the reconcile deleted its stale twin.
  EXPECT_EQ(Held("stamped"), "1.00=a2,2=b");
  EXPECT_EQ(LastReconcile("stamped"), "2/1");
  // The key is the cursor, which did not move (1.00 and 3.0 are the numbers it was past):
  // nothing was pulled, and the reconcile gave both rows the source's spelling.
  EXPECT_EQ(Held("counted"), "1.00=a,2=b,2.5=c,3.0=d");
  EXPECT_EQ(LastReconcile("counted"), "2/0");
  // Both inside a composite key.
  EXPECT_EQ(Held("parts", "a || ':' || k"), "1:1.00=new,1:2.5=1/2.50,2:1.0=2/1.0");

  // The replica now holds the source's keys as the source spells them: the digests agree.
  WaitForReconcile();
  r = Once(script);
  ASSERT_EQ(r.exit_code, 0) << Dump(r);
  EXPECT_EQ(LastReconcile("stamped"), "0/0");
  EXPECT_EQ(LastReconcile("counted"), "0/0");
  EXPECT_EQ(LastReconcile("parts"), "0/0");
  EXPECT_EQ(Held("counted"), "1.00=a,2=b,2.5=c,3.0=d");
}

}  // namespace
}  // namespace siphon::test

// End-to-end: deletions and schema changes on the source reach the replica (issue 7).
#include <gtest/gtest.h>
#include <libpq-fe.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "tests/integration/harness/harness.hpp"

namespace siphon::test {
namespace {

class Evolution : public ::testing::Test {
 protected:
  std::string Script(const std::string& tables) {
    std::string path = dir_.File("deploy.lua");
    WriteFile(path,
              "local pg = siphon.postgres { dsn = siphon.env(\"TEST_PG_DSN\") }\n"
              "siphon.target { path = \"" +
                  Replica() + "\" }\n" + tables);
    return path;
  }
  std::string Replica() const { return dir_.File("replica.db"); }
  ProcessResult Once(const std::string& script) {
    return siphon::test::Run({SIPHON_BIN, "once", script}, {{"TEST_PG_DSN", db_.Dsn()}});
  }
  std::string TargetScalar(const std::string& sql) {
    Rows r = SqliteQuery(Replica(), sql);
    return r.empty() || r[0].empty() || !r[0][0] ? "" : *r[0][0];
  }
  static std::string Dump(const ProcessResult& r) {
    return "exit " + std::to_string(r.exit_code) + "\n" + r.out + r.err;
  }

  PgDb db_;
  TempDir dir_;
};

TEST_F(Evolution, AFullRefreshTableFollowsDeletesAndIsNeverEmptyForReaders) {
  db_.Exec(R"sql(
    CREATE TABLE items (id int4 PRIMARY KEY, name text NOT NULL);
    INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 20000) g;
  )sql");
  std::string script = Script(R"(siphon.replicate "items" { source = pg, batch = 500 })");
  auto r = Once(script);
  ASSERT_EQ(r.exit_code, 0) << Dump(r);
  ASSERT_EQ(TargetScalar("SELECT count(*) FROM items"), "20000");

  db_.Exec(R"sql(
    DELETE FROM items WHERE id % 40 = 0;
    INSERT INTO items SELECT g, 'new ' || g FROM generate_series(20001, 20300) g;
    UPDATE items SET name = 'renamed' WHERE id = 7;
  )sql");
  // A reader polls the replica through the whole run: it must never see the table empty
  // (or missing rows that are still in the source, here: fewer than the survivors).
  std::atomic<bool> done{false};
  std::atomic<int> polls{0};
  std::atomic<long> lowest{1 << 30};
  std::thread reader([&] {
    while (!done) {
      Rows rows = SqliteQuery(Replica(), "SELECT count(*) FROM items");
      if (!rows.empty() && rows[0][0]) {
        long n = std::stol(*rows[0][0]);
        if (n < lowest) lowest = n;
        ++polls;
      }
    }
  });
  r = Once(script);
  done = true;
  reader.join();
  ASSERT_EQ(r.exit_code, 0) << Dump(r);
  EXPECT_GT(polls.load(), 0);
  EXPECT_GE(lowest.load(), 19500);  // 20000 - 500 deleted: never below the survivors
  EXPECT_EQ(TargetScalar("SELECT count(*) || '/' || sum(id) FROM items"),
            db_.Scalar("SELECT count(*) || '/' || sum(id) FROM items"));
  EXPECT_EQ(TargetScalar("SELECT name FROM items WHERE id = 7"), "renamed");
  EXPECT_EQ(TargetScalar("SELECT deleted FROM _siphon_log WHERE table_name = 'items' "
                         "ORDER BY id DESC LIMIT 1"),
            "500");
  // The source emptied: the replica follows.
  db_.Exec("DELETE FROM items");
  r = Once(script);
  ASSERT_EQ(r.exit_code, 0) << Dump(r);
  EXPECT_EQ(TargetScalar("SELECT count(*) FROM items"), "0");
}

TEST_F(Evolution, AddedDroppedAndRetypedColumnsFollowTheRules) {
  db_.Exec(R"sql(
    CREATE TABLE o (id int8 PRIMARY KEY, status text, amount numeric(10,2),
                    updated_at timestamptz NOT NULL DEFAULT clock_timestamp());
    INSERT INTO o (id, status, amount) SELECT g, 'new', g FROM generate_series(1, 100) g;
  )sql");
  std::string script =
      Script(R"(siphon.replicate "o" { source = pg, cursor = { "updated_at", "id" } })");
  auto r = Once(script);
  ASSERT_EQ(r.exit_code, 0) << Dump(r);

  // Added with values, and a row changed after it: the new column arrives with the row.
  db_.Exec(R"sql(
    ALTER TABLE o ADD COLUMN note text DEFAULT 'hello';
    UPDATE o SET note = 'changed', updated_at = clock_timestamp() WHERE id = 5;
  )sql");
  r = Once(script);
  ASSERT_EQ(r.exit_code, 0) << Dump(r);
  EXPECT_NE(r.err.find("schema change"), std::string::npos) << Dump(r);
  EXPECT_EQ(TargetScalar("SELECT note FROM o WHERE id = 5"), "changed");
  EXPECT_EQ(TargetScalar("SELECT count(*) FROM pragma_table_info('o') WHERE name = 'note'"), "1");

  // Dropped: the target keeps the column and its old values; new rows leave it NULL.
  db_.Exec(R"sql(
    ALTER TABLE o DROP COLUMN status;
    INSERT INTO o (id, amount) VALUES (101, 1);
  )sql");
  r = Once(script);
  ASSERT_EQ(r.exit_code, 0) << Dump(r);
  EXPECT_EQ(TargetScalar("SELECT status FROM o WHERE id = 1"), "new");
  EXPECT_EQ(TargetScalar("SELECT coalesce(status, 'NULL') FROM o WHERE id = 101"), "NULL");

  // Retyped: by default replication continues with the new values.
  db_.Exec(R"sql(
    ALTER TABLE o ALTER COLUMN amount TYPE numeric(14,4);
    UPDATE o SET amount = 2.5, updated_at = clock_timestamp() WHERE id = 6;
  )sql");
  r = Once(script);
  ASSERT_EQ(r.exit_code, 0) << Dump(r);
  EXPECT_NE(r.err.find("numeric(14,4)"), std::string::npos) << Dump(r);
  EXPECT_EQ(TargetScalar("SELECT amount FROM o WHERE id = 6"), "2.5000");
  // The new schema is recorded: the next run reports nothing.
  r = Once(script);
  ASSERT_EQ(r.exit_code, 0) << Dump(r);
  EXPECT_EQ(r.err.find("schema change"), std::string::npos) << Dump(r);
}

// A column retyped to one stored differently (integer -> text, as for zip codes) gets the new
// type in the target too, with its rows, key and indexes: under the old INTEGER affinity
// SQLite would store the new text '01234' as 1234.
TEST_F(Evolution, ARetypedColumnTakesItsNewStorageTypeAndKeepsItsRows) {
  db_.Exec(R"sql(
    CREATE TABLE c (id int8 PRIMARY KEY, zip int4, big int8,
                    updated_at timestamptz NOT NULL DEFAULT clock_timestamp());
    INSERT INTO c (id, zip, big) SELECT g, 1000 + g, g FROM generate_series(1, 50) g;
    CREATE TABLE d (id int8 PRIMARY KEY, zip int4);
    INSERT INTO d VALUES (1, 1);
  )sql");
  const std::string tables = R"(
siphon.replicate "c" { source = pg, cursor = { "updated_at", "id" }, on_schema_change = "%s" }
siphon.replicate "d" { source = pg })";
  auto with = [&](const char* action) {
    std::string t = tables;
    t.replace(t.find("%s"), 2, action);
    return Script(t);
  };
  auto r = Once(with("continue"));
  ASSERT_EQ(r.exit_code, 0) << Dump(r);
  // An index a user made on the replica, and a table with a constraint siphon did not make.
  SqliteExec(Replica(),
             "CREATE INDEX c_zip ON c (zip); ALTER TABLE d ADD COLUMN twice GENERATED ALWAYS AS "
             "(zip * 2)");
  db_.Exec(R"sql(
    ALTER TABLE c ALTER COLUMN zip TYPE text;
    ALTER TABLE c ALTER COLUMN big TYPE numeric(30,2);
    INSERT INTO c (id, zip, big) VALUES (51, '01234', 12345678901234567890.12);
    ALTER TABLE d ALTER COLUMN zip TYPE text;
  )sql");
  // A script that pauses on the change: the target is not touched.
  r = Once(with("pause"));
  EXPECT_NE(r.exit_code, 0) << Dump(r);
  EXPECT_EQ(TargetScalar("SELECT group_concat(type) FROM pragma_table_info('c') WHERE name IN "
                         "('zip', 'big')"),
            "INTEGER,INTEGER");
  // Accepted: the columns take the new types, with their rows, key and index.
  r = Once(with("continue"));
  ASSERT_EQ(r.exit_code, 0) << Dump(r);
  EXPECT_EQ(TargetScalar("SELECT typeof(zip) || ' ' || zip || ' ' || typeof(big) || ' ' || big "
                         "FROM c WHERE id = 51"),
            "text 01234 text 12345678901234567890.12");
  EXPECT_EQ(TargetScalar("SELECT group_concat(name || ':' || type, ',') FROM "
                         "pragma_table_info('c') WHERE name IN ('zip', 'big')"),
            "zip:TEXT,big:TEXT");
  // Rows written before take the new type's affinity (1001 is now the text '1001').
  EXPECT_EQ(TargetScalar("SELECT count(*) || ' ' || sum(zip) || ' ' || typeof(zip) FROM c WHERE "
                         "id = 1 OR id <= 50"),
            "50 51275 text");
  EXPECT_EQ(TargetScalar("SELECT count(*) FROM sqlite_master WHERE name = 'c_zip'"), "1");
  EXPECT_EQ(TargetScalar("SELECT group_concat(name) FROM pragma_table_info('c') WHERE pk > 0"),
            "id");
  // Upserts still find the key: an update of an old row replaces it.
  db_.Exec("UPDATE c SET zip = '00001', updated_at = clock_timestamp() WHERE id = 1");
  r = Once(with("continue"));
  ASSERT_EQ(r.exit_code, 0) << Dump(r);
  EXPECT_EQ(TargetScalar("SELECT count(*) || ' ' || (SELECT zip FROM c WHERE id = 1) FROM c"),
            "51 00001");
  // The table with a generated column is left as it is, with a warning.
  EXPECT_EQ(TargetScalar("SELECT type FROM pragma_table_info('d') WHERE name = 'zip'"), "INTEGER");
  EXPECT_NE(r.err.find("d: a column's source type changed, but the table has constraints"),
            std::string::npos)
      << Dump(r);
}

TEST_F(Evolution, ResyncPullsAgainAndEndsEqualToTheSource) {
  db_.Exec(R"sql(
    CREATE TABLE r (id int8 PRIMARY KEY, v text, updated_at timestamptz NOT NULL DEFAULT now());
    INSERT INTO r (id, v) SELECT g, 'v' || g FROM generate_series(1, 3000) g;
  )sql");
  std::string script =
      Script(R"(siphon.replicate "r" { source = pg, cursor = "updated_at", batch = 250 })");
  auto r = Once(script);
  ASSERT_EQ(r.exit_code, 0) << Dump(r);
  // Changes a cursor cannot see: deletions, and an update that does not move the cursor.
  db_.Exec("DELETE FROM r WHERE id % 7 = 0; UPDATE r SET v = 'quiet' WHERE id = 10;");
  r = Once(script);
  ASSERT_EQ(r.exit_code, 0) << Dump(r);
  EXPECT_EQ(TargetScalar("SELECT count(*) FROM r"), "3000");
  r = siphon::test::Run({SIPHON_BIN, "resync", script, "--table", "r"},
                        {{"TEST_PG_DSN", db_.Dsn()}});
  ASSERT_EQ(r.exit_code, 0) << Dump(r);
  EXPECT_EQ(TargetScalar("SELECT count(*) || '/' || sum(id) FROM r"),
            db_.Scalar("SELECT count(*) || '/' || sum(id) FROM r"));
  EXPECT_EQ(TargetScalar("SELECT v FROM r WHERE id = 10"), "quiet");
  EXPECT_EQ(TargetScalar("SELECT resync_pass IS NULL FROM _siphon_state"), "1");
  // Incremental runs go on from the new cursor.
  db_.Exec("INSERT INTO r (id, v) VALUES (5000, 'after')");
  r = Once(script);
  ASSERT_EQ(r.exit_code, 0) << Dump(r);
  EXPECT_EQ(TargetScalar("SELECT v FROM r WHERE id = 5000"), "after");
  // A resync of an unknown table is a usage error.
  r = siphon::test::Run({SIPHON_BIN, "resync", script, "--table", "nope"},
                        {{"TEST_PG_DSN", db_.Dsn()}});
  EXPECT_EQ(r.exit_code, 2) << Dump(r);
}

// A table without a key cannot tell a row read again from one it holds: whatever would
// read rows again (resync, lookback, backfill, on_schema_change = "resync") is refused
// instead of inserting them twice. Before, `siphon resync` doubled the table.
TEST_F(Evolution, AKeylessAppendTableRefusesWhatWouldReadRowsAgain) {
  db_.Exec(R"sql(
    CREATE TABLE ev (at timestamptz NOT NULL, v text);
    INSERT INTO ev SELECT '2026-01-01'::timestamptz + g * interval '1 s', 'v' || g
      FROM generate_series(1, 100) g;
  )sql");
  auto declare = [&](const std::string& extra) {
    return Script(R"(siphon.replicate "ev" { source = pg, write = "append", cursor = "at")" +
                  extra + " }");
  };
  std::string script = declare("");
  auto r = Once(script);
  ASSERT_EQ(r.exit_code, 0) << Dump(r);
  EXPECT_EQ(TargetScalar("SELECT count(*) FROM ev"), "100");

  r = siphon::test::Run({SIPHON_BIN, "resync", script, "--table", "ev"},
                        {{"TEST_PG_DSN", db_.Dsn()}});
  EXPECT_EQ(r.exit_code, 2) << Dump(r);
  EXPECT_NE(r.err.find("cannot resync \"ev\": it has no key"), std::string::npos) << Dump(r);
  EXPECT_EQ(TargetScalar("SELECT count(*) FROM ev"), "100");

  for (const std::string extra :
       {", lookback = \"1h\"", ", backfill = true", ", on_schema_change = \"resync\""}) {
    r = Once(declare(extra));
    EXPECT_EQ(r.exit_code, 2) << extra << "\n" << Dump(r);
    EXPECT_NE(r.err.find("reads rows again, and a table without a key"), std::string::npos)
        << Dump(r);
    EXPECT_EQ(TargetScalar("SELECT count(*) FROM ev"), "100");
  }

  // Emptied by hand, it can be pulled again.
  SqliteExec(Replica(), "DELETE FROM ev");
  script = declare("");
  r = siphon::test::Run({SIPHON_BIN, "resync", script, "--table", "ev"},
                        {{"TEST_PG_DSN", db_.Dsn()}});
  EXPECT_EQ(r.exit_code, 0) << Dump(r);
  EXPECT_EQ(TargetScalar("SELECT count(*) FROM ev"), "100");
}

// A resync reads below the safe horizon like any incremental run, but its closing sweep must
// not delete a row that is past the horizon: that row still exists (a reader would see it
// vanish until the next run).
TEST_F(Evolution, AResyncNeverDeletesARowPastTheHorizon) {
  db_.Exec(R"sql(
    CREATE TABLE r2 (id int8 PRIMARY KEY, v text, updated_at timestamptz NOT NULL DEFAULT now());
    CREATE TABLE other (x int);
    INSERT INTO r2 (id, v) SELECT g, 'v' || g FROM generate_series(1, 500) g;
  )sql");
  std::string script =
      Script(R"(siphon.replicate "r2" { source = pg, cursor = "updated_at", batch = 100 })");
  auto r = Once(script);
  ASSERT_EQ(r.exit_code, 0) << Dump(r);
  // Session A holds a write transaction open: the horizon stays at its start.
  PGconn* a = PQconnectdb(db_.Dsn().c_str());
  ASSERT_EQ(PQstatus(a), CONNECTION_OK) << PQerrorMessage(a);
  auto exec = [a](const char* sql) {
    PGresult* res = PQexec(a, sql);
    EXPECT_EQ(PQresultStatus(res), PGRES_COMMAND_OK) << PQerrorMessage(a);
    PQclear(res);
  };
  exec("BEGIN");
  exec("INSERT INTO other VALUES (1)");
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  // Row 42 moves past the horizon; row 7 is deleted.
  db_.Exec(
      "UPDATE r2 SET v = 'moved', updated_at = now() WHERE id = 42; DELETE FROM r2 WHERE "
      "id = 7");
  r = siphon::test::Run({SIPHON_BIN, "resync", script, "--table", "r2"},
                        {{"TEST_PG_DSN", db_.Dsn()}});
  ASSERT_EQ(r.exit_code, 0) << Dump(r);
  EXPECT_EQ(TargetScalar("SELECT count(*) || '/' || sum(id) FROM r2"), "499/125243");
  EXPECT_EQ(TargetScalar("SELECT v FROM r2 WHERE id = 42"), "moved");
  EXPECT_EQ(TargetScalar("SELECT deleted FROM _siphon_log ORDER BY id DESC LIMIT 1"), "1");
  // The cursor stayed below the horizon: A's late rows still arrive.
  exec("INSERT INTO r2 (id, v) VALUES (1000, 'late')");
  exec("COMMIT");
  PQfinish(a);
  r = Once(script);
  ASSERT_EQ(r.exit_code, 0) << Dump(r);
  EXPECT_EQ(TargetScalar("SELECT count(*) || '/' || sum(id) FROM r2"),
            db_.Scalar("SELECT count(*) || '/' || sum(id) FROM r2"));
}

TEST_F(Evolution, SoftDeletedRowsDisappearAndComeBackWhenUndeleted) {
  db_.Exec(R"sql(
    CREATE TABLE s (id int8 PRIMARY KEY, v text, deleted_at timestamptz,
                    updated_at timestamptz NOT NULL DEFAULT clock_timestamp());
    INSERT INTO s (id, v) SELECT g, 'v' || g FROM generate_series(1, 100) g;
  )sql");
  std::string script = Script(R"(siphon.replicate "s" {
    source = pg, cursor = "updated_at", deletes = { soft = "deleted_at" } })");
  auto r = Once(script);
  ASSERT_EQ(r.exit_code, 0) << Dump(r);
  db_.Exec("UPDATE s SET deleted_at = now(), updated_at = clock_timestamp() WHERE id <= 10");
  r = Once(script);
  ASSERT_EQ(r.exit_code, 0) << Dump(r);
  EXPECT_EQ(TargetScalar("SELECT count(*) || '/' || min(id) FROM s"), "90/11");
  EXPECT_EQ(TargetScalar("SELECT deleted FROM _siphon_log ORDER BY id DESC LIMIT 1"), "10");
  db_.Exec("UPDATE s SET deleted_at = NULL, updated_at = clock_timestamp() WHERE id = 3");
  r = Once(script);
  ASSERT_EQ(r.exit_code, 0) << Dump(r);
  EXPECT_EQ(TargetScalar("SELECT v FROM s WHERE id = 3"), "v3");
  EXPECT_EQ(TargetScalar("SELECT count(*) FROM s"), "91");
}

// A new key (the script's `key`, or the source's primary key) becomes the target's PRIMARY KEY:
// the table is rebuilt with its rows and indexes, and pulled again. The upsert by the new key
// failed every run before ("ON CONFLICT clause does not match any PRIMARY KEY").
TEST_F(Evolution, AChangedKeyRebuildsTheTableUnderItAndPullsAgain) {
  db_.Exec(R"sql(
    CREATE TABLE k (id int8 PRIMARY KEY, sku text NOT NULL UNIQUE, name text,
                    updated_at timestamptz NOT NULL DEFAULT clock_timestamp());
    INSERT INTO k (id, sku, name) SELECT g, 'sku-' || g, 'n' || g FROM generate_series(1, 300) g;
  )sql");
  auto r = Once(Script(R"(siphon.replicate "k" { source = pg, cursor = { "updated_at", "id" } })"));
  ASSERT_EQ(r.exit_code, 0) << Dump(r);
  SqliteExec(Replica(), "CREATE INDEX k_name ON k (name)");

  // The script keys the table by sku now; ids were renumbered at the source meanwhile.
  db_.Exec("UPDATE k SET id = id + 1000, updated_at = clock_timestamp() WHERE id <= 10");
  std::string by_sku = Script(R"(siphon.replicate "k" {
    source = pg, key = "sku", cursor = { "updated_at", "sku" } })");
  r = Once(by_sku);
  ASSERT_EQ(r.exit_code, 0) << Dump(r);
  EXPECT_NE(r.err.find("the key changed from [\"id\"] to [\"sku\"]"), std::string::npos) << Dump(r);
  EXPECT_EQ(TargetScalar("SELECT group_concat(name) FROM pragma_table_info('k') WHERE pk > 0"),
            "sku");
  EXPECT_EQ(TargetScalar("SELECT count(*) FROM sqlite_master WHERE name = 'k_name'"), "1");
  EXPECT_EQ(TargetScalar("SELECT count(*) || '/' || sum(id) FROM k"),
            db_.Scalar("SELECT count(*) || '/' || sum(id) FROM k"));
  db_.Exec("UPDATE k SET name = 'renamed', updated_at = clock_timestamp() WHERE sku = 'sku-7'");
  r = Once(by_sku);
  ASSERT_EQ(r.exit_code, 0) << Dump(r);
  EXPECT_EQ(r.err.find("key changed"), std::string::npos) << Dump(r);
  EXPECT_EQ(TargetScalar("SELECT name || '/' || id FROM k WHERE sku = 'sku-7'"), "renamed/1007");

  // A full-refresh table follows the source's primary key: (id) becomes (id, region), and
  // rows sharing an id arrive.
  db_.Exec(R"sql(
    CREATE TABLE f (id int4 PRIMARY KEY, region text NOT NULL DEFAULT 'eu', v text);
    INSERT INTO f (id, v) SELECT g, 'v' || g FROM generate_series(1, 50) g;
  )sql");
  std::string full = Script(R"(siphon.replicate "f" { source = pg })");
  r = Once(full);
  ASSERT_EQ(r.exit_code, 0) << Dump(r);
  db_.Exec(R"sql(
    ALTER TABLE f DROP CONSTRAINT f_pkey, ADD PRIMARY KEY (id, region);
    INSERT INTO f (id, region, v) SELECT g, 'us', 'us' || g FROM generate_series(1, 20) g;
  )sql");
  r = Once(full);
  ASSERT_EQ(r.exit_code, 0) << Dump(r);
  EXPECT_EQ(TargetScalar("SELECT group_concat(name, ',') FROM (SELECT name FROM "
                         "pragma_table_info('f') WHERE pk > 0 ORDER BY pk)"),
            "id,region");
  EXPECT_EQ(TargetScalar("SELECT count(*) || '/' || sum(id) FROM f"), "70/1485");

  // No key at all (the source dropped its primary key, the script gives none): refused, the
  // replica left as it is.
  db_.Exec("ALTER TABLE f DROP CONSTRAINT f_pkey");
  r = Once(full);
  EXPECT_NE(r.exit_code, 0) << Dump(r);
  EXPECT_NE(r.err.find("has no primary key"), std::string::npos) << Dump(r);
  EXPECT_EQ(TargetScalar("SELECT count(*) FROM f"), "70");
  db_.Exec(R"sql(
    CREATE TABLE a (id int4 PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp());
    INSERT INTO a (id) SELECT generate_series(1, 30);
  )sql");
  std::string append =
      Script(R"(siphon.replicate "a" { source = pg, cursor = "at", write = "append" })");
  r = Once(append);
  ASSERT_EQ(r.exit_code, 0) << Dump(r);
  db_.Exec("ALTER TABLE a DROP CONSTRAINT a_pkey");
  r = Once(append);
  EXPECT_EQ(r.exit_code, 2) << Dump(r);
  EXPECT_NE(r.err.find("has the PRIMARY KEY [\"id\"], but the table now has no key"),
            std::string::npos)
      << Dump(r);
  EXPECT_EQ(TargetScalar("SELECT count(*) FROM a"), "30");
}

// A column the script starts replicating (`columns` lists one more) is added to the target;
// with backfill the table is pulled again so the rows it holds get their values, as when the
// source adds one. It stayed NULL for every row that did not change before.
TEST_F(Evolution, AColumnTheScriptAddsIsBackfilledOrNamedAsNull) {
  db_.Exec(R"sql(
    CREATE TABLE c (id int8 PRIMARY KEY, a text, b text, d text,
                    updated_at timestamptz NOT NULL DEFAULT clock_timestamp());
    INSERT INTO c (id, a, b, d) SELECT g, 'a' || g, 'b' || g, 'd' || g
      FROM generate_series(1, 200) g;
  )sql");
  auto declare = [&](const std::string& columns, const std::string& extra) {
    return Script(R"(siphon.replicate "c" { source = pg, cursor = "updated_at", batch = 50,
      columns = )" +
                  columns + extra + " }");
  };
  auto r = Once(declare(R"({ "a" })", ""));
  ASSERT_EQ(r.exit_code, 0) << Dump(r);

  r = Once(declare(R"({ "a", "b" })", ", backfill = true"));
  ASSERT_EQ(r.exit_code, 0) << Dump(r);
  EXPECT_NE(r.err.find("gained [\"b\"]: pulling the table again"), std::string::npos) << Dump(r);
  EXPECT_EQ(TargetScalar("SELECT count(*) FROM c WHERE b = 'b' || id"), "200");
  EXPECT_EQ(TargetScalar("SELECT rows FROM _siphon_log ORDER BY id DESC LIMIT 1"), "200");
  // Once filled, the next run pulls nothing again.
  r = Once(declare(R"({ "a", "b" })", ", backfill = true"));
  ASSERT_EQ(r.exit_code, 0) << Dump(r);
  EXPECT_EQ(r.err.find("gained"), std::string::npos) << Dump(r);
  EXPECT_EQ(TargetScalar("SELECT rows FROM _siphon_log ORDER BY id DESC LIMIT 1"), "0");

  // Without backfill the run says which rows stay NULL, and only changed rows get a value.
  db_.Exec("UPDATE c SET updated_at = clock_timestamp() WHERE id = 5");
  r = Once(declare(R"({ "a", "b", "d" })", ""));
  ASSERT_EQ(r.exit_code, 0) << Dump(r);
  EXPECT_NE(r.err.find("gained [\"d\"]: rows already replicated hold NULL"), std::string::npos)
      << Dump(r);
  EXPECT_EQ(TargetScalar("SELECT count(d) || '/' || max(d) FROM c"), "1/d5");
}

TEST_F(Evolution, OnSchemaChangePausesOrAsksTheScript) {
  db_.Exec(R"sql(
    CREATE TABLE p (id int8 PRIMARY KEY, amount numeric(10,2),
                    updated_at timestamptz NOT NULL DEFAULT clock_timestamp());
    INSERT INTO p (id, amount) VALUES (1, 1), (2, 2);
  )sql");
  std::string paused = Script(R"(siphon.replicate "p" {
    source = pg, cursor = "updated_at", on_schema_change = "pause" })");
  auto r = Once(paused);
  ASSERT_EQ(r.exit_code, 0) << Dump(r);
  db_.Exec("ALTER TABLE p ALTER COLUMN amount TYPE numeric(14,4)");
  r = Once(paused);
  EXPECT_NE(r.exit_code, 0) << Dump(r);
  EXPECT_NE(r.err.find("paused"), std::string::npos) << Dump(r);
  // A function decides: it sees the diff, and "resync" pulls everything again.
  std::string asks = Script(R"(siphon.replicate "p" {
    source = pg, cursor = "updated_at", backfill = false,
    on_schema_change = function(diff)
      siphon.log.warn("retyped %s from %s to %s", diff.retyped[1].column, diff.retyped[1].from,
                      diff.retyped[1].to)
      return "resync"
    end })");
  r = Once(asks);
  ASSERT_EQ(r.exit_code, 0) << Dump(r);
  EXPECT_NE(r.err.find("retyped amount from numeric(10,2) to numeric(14,4)"), std::string::npos)
      << Dump(r);
  EXPECT_EQ(TargetScalar("SELECT amount FROM p WHERE id = 2"), "2.0000");

  // Without an admin API (cron and `once`), `siphon resume` accepts the change: it was paused
  // on every run until the script changed.
  paused = Script(R"(siphon.replicate "p" {
    source = pg, cursor = "updated_at", on_schema_change = "pause" })");
  db_.Exec(R"sql(
    ALTER TABLE p ALTER COLUMN amount TYPE text;
    UPDATE p SET amount = '0' || amount, updated_at = clock_timestamp() WHERE id = 1;
  )sql");
  r = Once(paused);
  EXPECT_NE(r.exit_code, 0) << Dump(r);
  EXPECT_NE(r.err.find("paused"), std::string::npos) << Dump(r);
  r = siphon::test::Run({SIPHON_BIN, "resume", paused, "--table", "p"},
                        {{"TEST_PG_DSN", db_.Dsn()}});
  ASSERT_EQ(r.exit_code, 0) << Dump(r);
  EXPECT_EQ(TargetScalar("SELECT typeof(amount) || ':' || amount FROM p WHERE id = 1"),
            "text:01.0000");
  r = Once(paused);
  EXPECT_EQ(r.exit_code, 0) << Dump(r);
  EXPECT_EQ(r.err.find("schema change"), std::string::npos) << Dump(r);
  r = siphon::test::Run({SIPHON_BIN, "resume", paused}, {{"TEST_PG_DSN", db_.Dsn()}});
  EXPECT_EQ(r.exit_code, 2) << Dump(r);
}

// Words in names are not constraints: a table named unique_codes with a column "checksum"
// was taken for one with UNIQUE and CHECK constraints added by hand, so its new key was
// refused and a changed column type stayed as it was.
TEST_F(Evolution, ANameHoldingAConstraintWordDoesNotStopARebuild) {
  db_.Exec(R"sql(
    CREATE TABLE unique_codes (id int8 PRIMARY KEY, code text NOT NULL UNIQUE, checksum int4,
                               updated_at timestamptz NOT NULL DEFAULT clock_timestamp());
    INSERT INTO unique_codes (id, code, checksum) SELECT g, 'c' || g, g FROM generate_series(1, 40) g;
  )sql");
  auto r =
      Once(Script(R"(siphon.replicate "unique_codes" { source = pg, cursor = "updated_at" })"));
  ASSERT_EQ(r.exit_code, 0) << Dump(r);
  std::string by_code = Script(R"(siphon.replicate "unique_codes" {
    source = pg, key = "code", cursor = "updated_at" })");
  r = Once(by_code);
  ASSERT_EQ(r.exit_code, 0) << Dump(r);
  EXPECT_NE(r.err.find("the key changed from [\"id\"] to [\"code\"]"), std::string::npos)
      << Dump(r);
  EXPECT_EQ(TargetScalar("SELECT group_concat(name) FROM pragma_table_info('unique_codes') "
                         "WHERE pk > 0"),
            "code");
  EXPECT_EQ(TargetScalar("SELECT count(*) || '/' || sum(id) FROM unique_codes"), "40/820");

  db_.Exec(R"sql(
    ALTER TABLE unique_codes ALTER COLUMN checksum TYPE text USING lpad(checksum::text, 4, '0');
    UPDATE unique_codes SET updated_at = clock_timestamp() WHERE id = 7;
  )sql");
  r = Once(by_code);
  ASSERT_EQ(r.exit_code, 0) << Dump(r);
  EXPECT_EQ(r.err.find("constraints siphon did not make"), std::string::npos) << Dump(r);
  EXPECT_EQ(TargetScalar("SELECT typeof(checksum) || ':' || checksum FROM unique_codes "
                         "WHERE id = 7"),
            "text:0007");
}

// An append table keeps the rows it holds as they are, so its backfill's re-pull wrote nothing
// (DO NOTHING): the added column stayed NULL for good under "pulling the table again to fill
// them", and the re-pull never ended (its state row kept a resync in progress). The re-pull
// fills what is NULL and keeps every value held.
TEST_F(Evolution, AnAppendTableIsBackfilledAndKeepsTheValuesItHolds) {
  db_.Exec(R"sql(
    CREATE TABLE ev (id int8 PRIMARY KEY, kind text, extra text,
                     at timestamptz NOT NULL DEFAULT clock_timestamp());
    INSERT INTO ev (id, kind, extra) SELECT g, 'k' || g, 'x' || g FROM generate_series(1, 120) g;
  )sql");
  auto declare = [&](const std::string& rest) {
    return Script(R"(siphon.replicate "ev" { source = pg, cursor = "at", write = "append",
      batch = 50, )" +
                  rest + " }");
  };
  auto r = Once(declare(R"(columns = { "kind" })"));
  ASSERT_EQ(r.exit_code, 0) << Dump(r);
  db_.Exec("UPDATE ev SET kind = 'changed' WHERE id = 3");
  std::string filled = declare(R"(columns = { "kind", "extra" }, backfill = true)");
  r = Once(filled);
  ASSERT_EQ(r.exit_code, 0) << Dump(r);
  EXPECT_NE(r.err.find("gained [\"extra\"]: pulling the table again"), std::string::npos)
      << Dump(r);
  EXPECT_EQ(TargetScalar("SELECT count(*) FROM ev WHERE extra = 'x' || id"), "120");
  EXPECT_EQ(TargetScalar("SELECT kind FROM ev WHERE id = 3"), "k3");  // appended rows stay
  EXPECT_EQ(TargetScalar("SELECT coalesce(resync_pass, 'none') FROM _siphon_state"), "none");
  r = Once(filled);
  ASSERT_EQ(r.exit_code, 0) << Dump(r);
  EXPECT_EQ(TargetScalar("SELECT rows FROM _siphon_log ORDER BY id DESC LIMIT 1"), "0");
}

// A column added with a new key is filled by the re-pull the new key starts: the run said it
// stayed NULL for rows already replicated.
TEST_F(Evolution, AColumnAddedWithANewKeyIsNotNamedAsNull) {
  db_.Exec(R"sql(
    CREATE TABLE kc (id int8 PRIMARY KEY, b text NOT NULL, a text,
                     updated_at timestamptz NOT NULL DEFAULT clock_timestamp());
    INSERT INTO kc (id, b, a) SELECT g, 'b' || g, 'a' || g FROM generate_series(1, 60) g;
  )sql");
  auto r = Once(Script(R"(siphon.replicate "kc" { source = pg, cursor = "updated_at",
    columns = { "a" } })"));
  ASSERT_EQ(r.exit_code, 0) << Dump(r);
  r = Once(Script(R"(siphon.replicate "kc" { source = pg, cursor = "updated_at",
    columns = { "a", "b" }, key = { "b" } })"));
  ASSERT_EQ(r.exit_code, 0) << Dump(r);
  EXPECT_NE(r.err.find("the key changed from [\"id\"] to [\"b\"]"), std::string::npos) << Dump(r);
  EXPECT_EQ(r.err.find("hold NULL"), std::string::npos) << Dump(r);
  EXPECT_EQ(TargetScalar("SELECT count(*) FROM kc WHERE b = 'b' || substr(a, 2)"), "60");
}

// A change to source columns the table does not pull (outside `columns`) does nothing to it:
// a retyped one paused a table under on_schema_change = "pause", and an added one had it
// pulled again in full for backfill, with nothing to fill. Still reported as a change.
TEST_F(Evolution, AChangeOutsideTheColumnsPulledNeitherPausesNorPullsAgain) {
  db_.Exec(R"sql(
    CREATE TABLE w (id int8 PRIMARY KEY, v text, notes text,
                    updated_at timestamptz NOT NULL DEFAULT clock_timestamp());
    INSERT INTO w (id, v) SELECT g, 'v' || g FROM generate_series(1, 100) g;
  )sql");
  std::string script = Script(R"(siphon.replicate "w" {
    source = pg, cursor = "updated_at", columns = { "id", "v", "updated_at" },
    on_schema_change = "pause", backfill = true })");
  auto r = Once(script);
  ASSERT_EQ(r.exit_code, 0) << Dump(r);
  db_.Exec(R"sql(
    ALTER TABLE w ALTER COLUMN notes TYPE varchar(200);
    ALTER TABLE w ADD COLUMN extra int4 DEFAULT 7;
    UPDATE w SET v = 'changed', updated_at = clock_timestamp() WHERE id = 5;
  )sql");
  r = Once(script);
  ASSERT_EQ(r.exit_code, 0) << Dump(r);
  EXPECT_NE(r.err.find("schema change"), std::string::npos) << Dump(r);
  EXPECT_EQ(r.err.find("paused"), std::string::npos) << Dump(r);
  EXPECT_NE(r.err.find("w: 1 rows"), std::string::npos) << Dump(r);  // not all 100 again
  EXPECT_EQ(TargetScalar("SELECT v FROM w WHERE id = 5"), "changed");
  // The same change to a column it pulls still pauses it.
  db_.Exec("ALTER TABLE w ALTER COLUMN v TYPE varchar(50)");
  r = Once(script);
  EXPECT_NE(r.exit_code, 0) << Dump(r);
  EXPECT_NE(r.err.find("paused"), std::string::npos) << Dump(r);
  // Pulling every column, an added one is backfilled: the table is pulled again.
  script = Script(R"(siphon.replicate "w" { source = pg, cursor = "updated_at",
    backfill = true, on_schema_change = "continue" })");
  r = Once(script);
  ASSERT_EQ(r.exit_code, 0) << Dump(r);
  db_.Exec("ALTER TABLE w ADD COLUMN more int4 DEFAULT 9");
  r = Once(script);
  ASSERT_EQ(r.exit_code, 0) << Dump(r);
  EXPECT_NE(r.err.find("w: 100 rows"), std::string::npos) << Dump(r);
  EXPECT_EQ(TargetScalar("SELECT count(*) FROM w WHERE more = 9"), "100");
}

// A full-refresh append table whose rows fill its last page exactly ends its pass on an empty
// page: that page clears the position too, so the next run walks the whole table again and
// brings the rows inserted before the old end.
TEST_F(Evolution, AnAppendFullRefreshEndingOnAnEmptyPageStartsOverNextRun) {
  db_.Exec(R"sql(
    CREATE TABLE a (id int4 PRIMARY KEY, name text NOT NULL);
    INSERT INTO a SELECT g, 'row ' || g FROM generate_series(2, 60, 2) g;
  )sql");
  std::string script =
      Script(R"(siphon.replicate "a" { source = pg, write = "append", key = "id", batch = 10 })");
  auto r = Once(script);
  ASSERT_EQ(r.exit_code, 0) << Dump(r);
  EXPECT_EQ(TargetScalar("SELECT count(*) FROM a"), "30");
  EXPECT_EQ(TargetScalar("SELECT coalesce(cursor, 'NULL') FROM _siphon_state WHERE "
                         "table_name = 'a'"),
            "NULL");
  db_.Exec("INSERT INTO a VALUES (1, 'one'), (3, 'three')");
  r = Once(script);
  ASSERT_EQ(r.exit_code, 0) << Dump(r);
  EXPECT_EQ(TargetScalar("SELECT count(*) || '/' || sum(id) FROM a"),
            db_.Scalar("SELECT count(*) || '/' || sum(id) FROM a"));
  EXPECT_EQ(TargetScalar("SELECT coalesce(cursor, 'NULL') FROM _siphon_state WHERE "
                         "table_name = 'a'"),
            "NULL");
}

// An append table never updates a row it holds: a column it gains without backfill stays NULL
// for those rows for good (a new pass of a full refresh does not fill it either), and the run
// says so rather than "until they change". `siphon resync` fills it and keeps the rest.
TEST_F(Evolution, AColumnAnAppendTableGainsIsNamedAsNullForGoodUntilAResync) {
  db_.Exec(R"sql(
    CREATE TABLE inc (id int4 PRIMARY KEY, name text NOT NULL);
    CREATE TABLE full_ (id int4 PRIMARY KEY, name text NOT NULL);
    INSERT INTO inc SELECT g, 'row ' || g FROM generate_series(1, 25) g;
    INSERT INTO full_ SELECT g, 'row ' || g FROM generate_series(1, 25) g;
  )sql");
  std::string script = Script(R"(
    siphon.replicate "inc" { source = pg, cursor = "id", write = "append", batch = 10 }
    siphon.replicate "full_" { source = pg, write = "append", key = "id", batch = 10 })");
  auto r = Once(script);
  ASSERT_EQ(r.exit_code, 0) << Dump(r);
  db_.Exec(R"sql(
    ALTER TABLE inc ADD COLUMN extra int4 DEFAULT 5;
    ALTER TABLE full_ ADD COLUMN extra int4 DEFAULT 5;
    UPDATE inc SET name = 'changed' WHERE id = 3;
    UPDATE full_ SET name = 'changed' WHERE id = 3;
  )sql");
  r = Once(script);
  ASSERT_EQ(r.exit_code, 0) << Dump(r);
  EXPECT_EQ(r.err.find("until they change"), std::string::npos) << Dump(r);
  for (const char* table : {"inc", "full_"}) {
    EXPECT_NE(r.err.find("[table:" + std::string(table) +
                         "] the target table gained [\"extra\"]: rows already replicated hold "
                         "NULL there for good"),
              std::string::npos)
        << table << "\n"
        << Dump(r);
    EXPECT_EQ(TargetScalar(std::string("SELECT count(extra) FROM ") + table), "0") << table;
  }
  // A resync fills the column and keeps the values the rows hold.
  for (const char* table : {"inc", "full_"}) {
    r = siphon::test::Run({SIPHON_BIN, "resync", script, "--table", table},
                          {{"TEST_PG_DSN", db_.Dsn()}});
    ASSERT_EQ(r.exit_code, 0) << Dump(r);
    EXPECT_EQ(TargetScalar(std::string("SELECT count(*) || '/' || count(extra) FROM ") + table),
              "25/25")
        << table;
    EXPECT_EQ(TargetScalar(std::string("SELECT name FROM ") + table + " WHERE id = 3"), "row 3")
        << table;
    EXPECT_EQ(TargetScalar(std::string("SELECT coalesce(resync_pass, 'none') FROM "
                                       "_siphon_state WHERE table_name = '") +
                           table + "'"),
              "none")
        << table;
  }
}

// `backfill` on an append table fills a column `columns` gains, full-refresh ones included
// (its plan dropped backfill for a table without a cursor: the column stayed NULL for good,
// the run not even saying so).
TEST_F(Evolution, AnAppendTableBackfillsAColumnItsColumnsGain) {
  db_.Exec(R"sql(
    CREATE TABLE inc (id int4 PRIMARY KEY, name text NOT NULL, extra int4 DEFAULT 5);
    CREATE TABLE full_ (id int4 PRIMARY KEY, name text NOT NULL, extra int4 DEFAULT 5);
    INSERT INTO inc (id, name) SELECT g, 'row ' || g FROM generate_series(1, 25) g;
    INSERT INTO full_ (id, name) SELECT g, 'row ' || g FROM generate_series(1, 25) g;
  )sql");
  auto declare = [&](const std::string& columns) {
    return Script(R"(
    siphon.replicate "inc" { source = pg, cursor = "id", write = "append", batch = 10,
                             backfill = true, columns = )" +
                  columns + R"( }
    siphon.replicate "full_" { source = pg, write = "append", key = "id", batch = 10,
                               backfill = true, columns = )" +
                  columns + " }");
  };
  auto r = Once(declare(R"({ "id", "name" })"));
  ASSERT_EQ(r.exit_code, 0) << Dump(r);
  db_.Exec(
      "UPDATE inc SET name = 'changed' WHERE id = 3; UPDATE full_ SET name = 'changed' "
      "WHERE id = 3");
  r = Once(declare(R"({ "id", "name", "extra" })"));
  ASSERT_EQ(r.exit_code, 0) << Dump(r);
  for (const char* table : {"inc", "full_"}) {
    EXPECT_EQ(TargetScalar(std::string("SELECT count(*) || '/' || count(extra) FROM ") + table),
              "25/25")
        << table << "\n"
        << Dump(r);
    // Append rows keep what they hold: only the NULL column is filled.
    EXPECT_EQ(TargetScalar(std::string("SELECT name FROM ") + table + " WHERE id = 3"), "row 3")
        << table;
  }
}

}  // namespace
}  // namespace siphon::test

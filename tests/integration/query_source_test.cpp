// End-to-end: `query = "SELECT …"` replicates the result of a query (a join, a filter, a
// computed column) instead of a table, from PostgreSQL and from a SQLite source.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <thread>
#include <utility>

#include "tests/integration/harness/harness.hpp"

namespace siphon::test {
namespace {

std::string Dump(const ProcessResult& r) {
  return "exit " + std::to_string(r.exit_code) + "\nstdout:\n" + r.out + "\nstderr:\n" + r.err;
}

class QuerySource : public ::testing::Test {
 protected:
  std::string Script(const std::string& tables) {
    std::string path = dir_.File("deploy.lua");
    WriteFile(path,
              "local pg = siphon.postgres { dsn = siphon.env(\"TEST_PG_DSN\") }\n"
              "local app = siphon.sqlite { path = '" +
                  dir_.File("app.db") + "' }\nsiphon.target { path = '" + Replica() + "' }\n" +
                  tables);
    return path;
  }
  std::string Replica() const { return dir_.File("replica.db"); }
  ProcessResult Siphon(const std::vector<std::string>& args) {
    std::vector<std::string> argv = {SIPHON_BIN};
    argv.insert(argv.end(), args.begin(), args.end());
    return siphon::test::Run(argv, {{"TEST_PG_DSN", db_.Dsn()}});
  }
  ProcessResult Once(const std::string& script) { return Siphon({"once", script}); }
  std::string TargetScalar(const std::string& sql) {
    Rows r = SqliteQuery(Replica(), sql);
    return r.empty() || r[0].empty() || !r[0][0] ? "" : *r[0][0];
  }
  void AppExec(const std::string& sql) { SqliteExec(dir_.File("app.db"), sql); }

  PgDb db_;
  TempDir dir_;
};

constexpr const char* kShop = R"sql(
  CREATE TABLE customers (id int4 PRIMARY KEY, name text NOT NULL, country text NOT NULL);
  CREATE TABLE orders (id int8 PRIMARY KEY, customer_id int4 NOT NULL REFERENCES customers,
                       amount numeric(10,2) NOT NULL, updated_at timestamptz NOT NULL);
  CREATE INDEX ON orders (updated_at, id);
  INSERT INTO customers SELECT g, 'customer ' || g, CASE WHEN g % 2 = 0 THEN 'DE' ELSE 'FR' END
    FROM generate_series(1, 20) g;
  INSERT INTO orders SELECT g, 1 + g % 20, g * 1.25,
    timestamptz '2024-01-01' + (g / 4) * interval '1 s' FROM generate_series(1, 3000) g;
)sql";

constexpr const char* kOrderFacts = R"(siphon.replicate "order_facts" {
  source = pg,
  query = [[
    SELECT o.id, o.amount, o.amount * 2 AS doubled, o.updated_at, c.name AS customer
    FROM orders o JOIN customers c ON c.id = o.customer_id
    WHERE c.country = 'DE' -- German customers only
  ]],
  key = "id", cursor = { "updated_at", "id" }, batch = 200, deletes = { reconcile = "1s" },
})";

// A join replicates incrementally: updates, inserts and rows leaving the query's filter
// arrive; reconcile removes rows gone from the result; check and status name the query.
TEST_F(QuerySource, AJoinReplicatesIncrementallyAndReconciles) {
  db_.Exec(kShop);
  const std::string script = Script(kOrderFacts);
  auto check = Siphon({"check", script});
  ASSERT_EQ(check.exit_code, 0) << Dump(check);
  EXPECT_NE(check.out.find("query:   SELECT o.id"), std::string::npos) << check.out;
  EXPECT_NE(check.out.find("doubled  numeric -> TEXT"), std::string::npos) << check.out;
  EXPECT_NE(check.out.find(") AS \"_siphon_query\" WHERE (\"updated_at\", \"id\") >"),
            std::string::npos)
      << check.out;
  EXPECT_FALSE(std::filesystem::exists(Replica()));

  auto r = Once(script);
  ASSERT_EQ(r.exit_code, 0) << Dump(r);
  const std::string want = db_.Scalar(
      "SELECT count(*) || ' ' || sum(o.amount) FROM orders o JOIN customers c"
      " ON c.id = o.customer_id WHERE c.country = 'DE'");
  EXPECT_EQ(TargetScalar("SELECT count(*) || ' ' || printf('%.2f', sum(amount)) FROM order_facts"),
            want);
  EXPECT_EQ(TargetScalar("SELECT doubled || ' ' || customer FROM order_facts WHERE id = 1"),
            "2.50 customer 2");
  EXPECT_EQ(TargetScalar("SELECT source_table FROM _siphon_state"),
            "query \"SELECT o.id, o.amount, o.amount * 2 AS doubled, o.updated_at…\"");

  db_.Exec(R"sql(
    UPDATE orders SET amount = 99, updated_at = '2024-02-01' WHERE id = 1;
    INSERT INTO orders VALUES (5001, 4, 7, '2024-02-01 00:00:01');
    DELETE FROM orders WHERE id = 3;
  )sql");
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));  // reconcile is due
  r = Once(script);
  ASSERT_EQ(r.exit_code, 0) << Dump(r);
  EXPECT_EQ(TargetScalar("SELECT amount FROM order_facts WHERE id = 1"), "99.00");
  EXPECT_EQ(TargetScalar("SELECT customer FROM order_facts WHERE id = 5001"), "customer 4");
  EXPECT_EQ(TargetScalar("SELECT count(*) FROM order_facts WHERE id = 3"), "0");
  EXPECT_EQ(TargetScalar("SELECT count(*) FROM order_facts"),
            db_.Scalar("SELECT count(*) FROM orders o JOIN customers c"
                       " ON c.id = o.customer_id WHERE c.country = 'DE'"));
}

// What cannot work is refused before anything is written, saying what to do.
TEST_F(QuerySource, MistakesAreRefusedWithAdvice) {
  db_.Exec(kShop);
  struct Case {
    const char* table;
    const char* says;
  };
  const Case cases[] = {
      {R"(siphon.replicate "x" { source = pg, from = "orders", query = "SELECT 1 AS id" })",
       "not both"},
      {R"(siphon.replicate "x" { source = pg, query = "  " })", "must not be empty"},
      {R"(siphon.replicate "x" { source = pg, query = "SELECT id FROM orders" })",
       "key = { … }, from its NOT NULL columns: \"id\""},
      {R"(siphon.replicate "x" { source = pg, key = "id",
          query = "SELECT o.id, c.id FROM orders o JOIN customers c ON c.id = o.customer_id" })",
       "two columns named \"id\""},
      {R"(siphon.replicate "x" { source = pg, key = "id", cursor = "at",
          query = "SELECT id, greatest(updated_at, now()) AS at FROM orders" })",
       "may be NULL as far as the source can tell"},
  };
  for (const Case& c : cases) {
    auto r = Once(Script(c.table));
    EXPECT_EQ(r.exit_code, 2) << c.table << "\n" << Dump(r);
    EXPECT_NE(r.err.find(c.says), std::string::npos) << c.table << "\n" << Dump(r);
  }
  // check says it once: "deploy.lua:4: table "x" (query …) has no primary key", the file,
  // line and table not repeated in front of a message that names them already.
  auto r = Siphon({"check", Script(cases[2].table)});
  EXPECT_EQ(r.exit_code, 2) << Dump(r);
  EXPECT_NE(r.err.find("deploy.lua:4: table \"x\" (query \"SELECT id FROM orders\") has no "
                       "primary key"),
            std::string::npos)
      << Dump(r);
  EXPECT_EQ(r.err.find("table \"x\": "), std::string::npos) << Dump(r);
  // Asking again gets the same answer: the run gives up at once instead of retrying as for a
  // lost connection. A syntax error is the script's (exit 2), a division by zero the data's.
  r = Once(Script(R"(siphon.replicate "x" { source = pg, key = "id",
      query = "SELECT id, FROM orders" })"));
  EXPECT_EQ(r.exit_code, 2) << Dump(r);
  EXPECT_NE(r.err.find("syntax error"), std::string::npos) << Dump(r);
  EXPECT_EQ(r.err.find("retrying"), std::string::npos) << Dump(r);
  r = Once(Script(R"(siphon.replicate "x" { source = pg, key = "id",
      query = "SELECT id, amount / (id - id) AS broken FROM orders" })"));
  EXPECT_EQ(r.exit_code, 1) << Dump(r);
  EXPECT_NE(r.err.find("division by zero"), std::string::npos) << Dump(r);
  EXPECT_EQ(r.err.find("retrying"), std::string::npos) << Dump(r);
}

// A table the query reads that the source does not have is the script's mistake, as a `from`
// the source does not have is: once and check exit 2 (they exited 1), naming the relation, and
// the run gives up at once. Unqualified, and in a schema that is not there either. So is a
// column the query names that its table does not have (it exited 1).
TEST_F(QuerySource, ATableOrColumnMissingFromTheQueryIsTheScriptsMistake) {
  db_.Exec(kShop);
  const std::pair<const char*, const char*> cases[] = {
      {"SELECT id FROM no_such_orders",
       "relation \"no_such_orders\" does not exist (SQLSTATE 42P01)"},
      {"SELECT o.id FROM orders o JOIN nowhere.customers c ON c.id = o.customer_id",
       "relation \"nowhere.customers\" does not exist (SQLSTATE 42P01)"},
      {"SELECT id, amont FROM orders", "column \"amont\" does not exist (SQLSTATE 42703)"},
      {"SELECT o.id, c.nme FROM orders o JOIN customers c ON c.id = o.customer_id",
       "column c.nme does not exist (SQLSTATE 42703)"},
  };
  for (const auto& [query, says] : cases) {
    const std::string script = Script(std::string(R"(siphon.replicate "x" { source = pg, key = "id",
      query = ")") + query + "\" }");
    auto r = Once(script);
    EXPECT_EQ(r.exit_code, 2) << Dump(r);
    EXPECT_NE(r.err.find(std::string("x: failed: config: reflect the query: ") + says),
              std::string::npos)
        << Dump(r);
    EXPECT_EQ(r.err.find("retrying"), std::string::npos) << Dump(r);
    r = Siphon({"check", script});
    EXPECT_EQ(r.exit_code, 2) << Dump(r);
    EXPECT_NE(r.err.find(std::string("deploy.lua:4: table \"x\": reflect the query: ") + says),
              std::string::npos)
        << Dump(r);
  }
}

// A key or cursor taken from the optional side of an outer join passes the NOT NULL check
// (the catalog says NOT NULL) but is NULL in some rows, which keyset pages never return
// (PostgreSQL sorts NULLs last): the run fails naming the column instead of leaving them out.
TEST_F(QuerySource, ANullKeyFromAnOuterJoinFailsTheRun) {
  db_.Exec(kShop);
  for (const char* mode : {"", "cursor = { \"at\", \"order_id\" },"}) {
    auto r = Once(Script(std::string(R"(siphon.replicate "x" { source = pg, key = "order_id",
        batch = 2, )") + mode +
                         R"(
        query = [[SELECT c.id AS customer_id, o.id AS order_id, o.updated_at AS at
                  FROM customers c LEFT JOIN orders o ON o.customer_id = c.id AND o.id < 5]] })"));
    EXPECT_EQ(r.exit_code, 1) << mode << Dump(r);
    EXPECT_NE(r.err.find(*mode ? "whose \"at\" is NULL" : "whose \"order_id\" is NULL"),
              std::string::npos)
        << mode << Dump(r);
    EXPECT_EQ(TargetScalar("SELECT count(*) FROM x"), "0") << mode;
  }
}

// The key must be unique in the result; a join that repeats it fails the run rather than
// keeping whichever row came last.
TEST_F(QuerySource, AKeyRepeatedByAJoinFailsTheRun) {
  db_.Exec(kShop);
  auto r = Once(Script(R"(siphon.replicate "x" { source = pg, key = "id",
      query = [[SELECT o.id, o.amount FROM orders o JOIN customers c ON c.country = 'DE']] })"));
  EXPECT_EQ(r.exit_code, 1) << Dump(r);
  EXPECT_NE(r.err.find("two rows with the same [\"id\"]"), std::string::npos) << Dump(r);
}

// A query's cursor or key column has the collation the query gives it, which the catalog
// knows only for a column taken as it is from a table or a view. That is the only kind that
// can be one: a column the query computes (a COLLATE, a cast, a concatenation, a UNION) may
// be NULL as far as the server can tell and is refused for that, before its collation
// matters; a view's column has its collation in the catalog, a computed one included, and
// one cast to a NOT NULL domain there is refused naming that collation (in a schema off the
// search path too). None replicates a row.
TEST_F(QuerySource, AColumnUnderANondeterministicCollationNeverPagesAQuery) {
  if (db_.Scalar("SELECT count(*) FROM pg_collation WHERE collprovider = 'i'") == "0") {
    GTEST_SKIP() << "this PostgreSQL has no ICU collations";
  }
  db_.Exec(R"sql(
    CREATE COLLATION ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false);
    CREATE SCHEMA elsewhere;
    CREATE COLLATION elsewhere.ci2 (provider = icu, locale = 'und-u-ks-level2',
                                    deterministic = false);
    CREATE DOMAIN label AS text NOT NULL;
    CREATE TABLE names (name text COLLATE ci NOT NULL, plain text NOT NULL, n int4 NOT NULL);
    INSERT INTO names VALUES ('a', 'a', 1), ('A', 'A', 2), ('b', 'b', 3), ('B', 'B', 4),
                             ('c', 'c', 5);
    CREATE VIEW labelled AS SELECT (plain COLLATE elsewhere.ci2)::label AS name, n FROM names;
  )sql");
  struct Case {
    const char* query;
    const char* says;
  };
  const Case cases[] = {
      {"SELECT name::label AS name, n FROM names", "may be NULL as far as the source can tell"},
      {"SELECT plain COLLATE ci AS name, n FROM names",
       "may be NULL as far as the source can tell"},
      {"SELECT (plain || '')::label AS name, n FROM names",
       "may be NULL as far as the source can tell"},
      {"SELECT plain AS name, n FROM names UNION ALL SELECT name, n FROM names",
       "may be NULL as far as the source can tell"},
      {"SELECT name, n FROM names", "has the nondeterministic collation \"ci\""},
      {"SELECT name, n FROM labelled", "has the nondeterministic collation \"ci2\""},
  };
  for (const Case& c : cases) {
    for (const char* table : {R"(write = "append", cursor = "name")", R"(key = "name")"}) {
      auto r = Once(Script(std::string(R"(siphon.replicate "x" { source = pg, batch = 2, )") +
                           table + ", query = [[" + c.query + "]] }"));
      EXPECT_EQ(r.exit_code, 2) << c.query << "\n" << Dump(r);
      EXPECT_NE(r.err.find(c.says), std::string::npos) << c.query << "\n" << Dump(r);
      EXPECT_EQ(r.err.find("synced"), std::string::npos) << c.query << "\n" << Dump(r);
    }
  }
}

// An edited query starts over: the stored cursor is a position in the old query's result.
TEST_F(QuerySource, AnEditedQueryIsPulledAgainFromTheStart) {
  db_.Exec(kShop);
  std::string table = kOrderFacts;
  auto r = Once(Script(table));
  ASSERT_EQ(r.exit_code, 0) << Dump(r);
  EXPECT_EQ(TargetScalar("SELECT count(*) FROM order_facts WHERE customer = 'customer 1'"), "0");
  table.replace(table.find("c.country = 'DE'"), 16, "c.country <> 'XX'");
  r = Once(Script(table));
  ASSERT_EQ(r.exit_code, 0) << Dump(r);
  EXPECT_NE(r.err.find("pulling the table again from the start"), std::string::npos) << Dump(r);
  EXPECT_EQ(TargetScalar("SELECT count(*) FROM order_facts"), "3000");
}

// A SQLite source replicates a query too: a join with a cursor, then a change.
TEST_F(QuerySource, ASqliteSourceReplicatesAJoin) {
  AppExec(R"sql(
    CREATE TABLE notes (id INTEGER PRIMARY KEY, author_id INTEGER NOT NULL, body TEXT,
                        updated_at TEXT NOT NULL);
    CREATE TABLE authors (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
    INSERT INTO authors VALUES (1, 'ann'), (2, 'bob');
    WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 500)
    INSERT INTO notes SELECT n, 1 + n % 2, 'note ' || n, printf('2024-01-01T00:%02d:00Z', n / 10)
      FROM g;
  )sql");
  const std::string script = Script(R"(siphon.replicate "notes_by" {
    source = app, key = "id", cursor = { "updated_at", "id" }, batch = 64,
    query = [[SELECT n.id, n.body, n.updated_at, a.name AS author
             FROM notes n JOIN authors a ON a.id = n.author_id]],
  })");
  auto r = Once(script);
  ASSERT_EQ(r.exit_code, 0) << Dump(r);
  EXPECT_EQ(TargetScalar("SELECT count(*) || ' ' || count(DISTINCT author) FROM notes_by"),
            "500 2");
  EXPECT_EQ(TargetScalar("SELECT author FROM notes_by WHERE id = 7"), "bob");
  AppExec("UPDATE notes SET body = 'edited', updated_at = '2024-02-01T00:00:00Z' WHERE id = 7");
  r = Once(script);
  ASSERT_EQ(r.exit_code, 0) << Dump(r);
  EXPECT_EQ(TargetScalar("SELECT body FROM notes_by WHERE id = 7"), "edited");
  EXPECT_EQ(TargetScalar("SELECT rows FROM _siphon_log ORDER BY id DESC LIMIT 1"), "1");

  // Read through a sub-select SQLite renames a second "id" to "id:1": refused all the same.
  r = Once(Script(R"(siphon.replicate "dup" { source = app, key = "id",
    query = "SELECT n.id, a.ID FROM notes n JOIN authors a ON a.id = n.author_id" })"));
  EXPECT_EQ(r.exit_code, 2) << Dump(r);
  EXPECT_NE(r.err.find("two columns named \"id\""), std::string::npos) << Dump(r);
  // A mistake SQLite names is not retried: a syntax error (exit 2), an unknown function.
  r = Once(Script(R"(siphon.replicate "bad" { source = app, key = "id",
    query = "SELECT id, FROM notes" })"));
  EXPECT_EQ(r.exit_code, 2) << Dump(r);
  EXPECT_NE(r.err.find("syntax error"), std::string::npos) << Dump(r);
  EXPECT_EQ(r.err.find("retrying"), std::string::npos) << Dump(r);
  r = Once(Script(R"(siphon.replicate "bad" { source = app, key = "id",
    query = "SELECT id, no_such_function(body) AS b FROM notes" })"));
  EXPECT_EQ(r.exit_code, 1) << Dump(r);
  EXPECT_NE(r.err.find("no such function"), std::string::npos) << Dump(r);
  EXPECT_EQ(r.err.find("retrying"), std::string::npos) << Dump(r);
  // A table the query reads that the file does not have is the script's mistake, as a `from`
  // the file does not have is (it exited 1): once and check exit 2, naming it. So is a column
  // the query names that its table does not have (it exited 1).
  const std::pair<const char*, const char*> missing[] = {
      {"SELECT n.id FROM notes n JOIN no_such_authors a ON a.id = n.author_id",
       "no such table: no_such_authors"},
      {"SELECT n.id, a.nme FROM notes n JOIN authors a ON a.id = n.author_id",
       "no such column: a.nme"},
  };
  for (const auto& [query, says] : missing) {
    const std::string script =
        Script("siphon.replicate \"bad\" { source = app, key = \"id\", query = \"" +
               std::string(query) + "\" }");
    r = Once(script);
    EXPECT_EQ(r.exit_code, 2) << Dump(r);
    EXPECT_NE(r.err.find(std::string("bad: failed: config: reflect the query: ") + says),
              std::string::npos)
        << Dump(r);
    EXPECT_EQ(r.err.find("retrying"), std::string::npos) << Dump(r);
    r = Siphon({"check", script});
    EXPECT_EQ(r.exit_code, 2) << Dump(r);
    EXPECT_NE(r.err.find(std::string("deploy.lua:4: table \"bad\": reflect the query: ") + says),
              std::string::npos)
        << Dump(r);
  }
}

}  // namespace
}  // namespace siphon::test

#include "adapters/postgres/pg_sql.hpp"

#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>

#include "adapters/postgres/pg_connection.hpp"
#include "adapters/postgres/postgres_source.hpp"

namespace siphon::postgres {
namespace {

TableSchema Orders() {
  TableSchema t;
  t.qualified_name = "public.orders";
  auto add = [&t](const char* name, const char* type) {
    ColumnInfo c;
    c.name = name;
    c.source_type = type;
    t.columns.push_back(c);
  };
  add("id", "bigint");
  add("updated_at", "timestamp with time zone");
  add("status", "text");
  add("tags", "text[]");
  add("we\"ird", "integer");
  t.primary_key = {"id"};
  return t;
}

TEST(PgSql, QuotesIdentifiers) {
  EXPECT_EQ(QuoteIdent("orders"), "\"orders\"");
  EXPECT_EQ(QuoteIdent("My\"Table"), "\"My\"\"Table\"");
  EXPECT_EQ(QuoteIdent("a.b"), "\"a.b\"");
}

TEST(PgSql, SplitsTableNames) {
  struct Case {
    const char* in;
    const char* schema;
    const char* table;
  } cases[] = {
      {"orders", "", "orders"},
      {"public.orders", "public", "orders"},
      {"Sales.Orders", "Sales", "Orders"},
      {"\"my.schema\".\"my.table\"", "my.schema", "my.table"},
      {"\"say \"\"hi\"\"\"", "", "say \"hi\""},
      {"s.\"t.u\"", "s", "t.u"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.in);
    auto n = SplitTableName(c.in);
    ASSERT_TRUE(n.ok()) << n.status().ToString();
    EXPECT_EQ(n->schema, c.schema);
    EXPECT_EQ(n->table, c.table);
  }
  EXPECT_EQ(SplitTableName("\"open").status().kind(), ErrorKind::kConfig);
  EXPECT_EQ(SplitTableName(".t").status().kind(), ErrorKind::kConfig);
  EXPECT_EQ(SplitTableName("").status().kind(), ErrorKind::kConfig);
  EXPECT_EQ(QuotedTableName({"public", "x\"y"}), "\"public\".\"x\"\"y\"");
  EXPECT_EQ(QuotedTableName({"", "t"}), "\"t\"");
}

TEST(PgSql, SimilarTablesAreNamedAsFromWouldNameThem) {
  EXPECT_EQ(FromSpelling("", "orders"), "orders");
  EXPECT_EQ(FromSpelling("Sales", "Orders"), "Sales.Orders");
  EXPECT_EQ(FromSpelling("my.schema", "say \"hi\""), "\"my.schema\".\"say \"\"hi\"\"\"");
  for (const std::string& from : {FromSpelling("Sales", "Orders"), FromSpelling("my.schema", "a.b"),
                                  FromSpelling("", "x\"y")}) {
    SCOPED_TRACE(from);
    EXPECT_TRUE(SplitTableName(from).ok());
  }
  auto split = SplitTableName(FromSpelling("my.schema", "say \"hi\""));
  ASSERT_TRUE(split.ok());
  EXPECT_EQ(split->schema, "my.schema");
  EXPECT_EQ(split->table, "say \"hi\"");

  EXPECT_EQ(TableNotFoundMessage("public.nope", {}, {}, false), "table public.nope not found");
  EXPECT_EQ(TableNotFoundMessage("Orders", {}, {"orders"}, true),
            "table Orders not found; did you mean from = \"orders\"? (`from` is matched as "
            "written, upper and lower case apart)");
  EXPECT_EQ(
      TableNotFoundMessage("orders", {}, {"shop.orders", "\"a.b\".orders", "x.orders"}, false),
      "table orders not found; did you mean from = \"shop.orders\", '\"a.b\".orders' or "
      "\"x.orders\"?");
}

// A "not found" names the database, and the search_path when `from` names no schema: a script
// pointed at the wrong database said only "table orders not found".
TEST(PgSql, TableNotFoundNamesTheDatabaseAndSearchPath) {
  EXPECT_EQ(TableNotFoundMessage("public.nope", {"app", std::nullopt}, {}, false),
            "table public.nope not found in database app");
  EXPECT_EQ(TableNotFoundMessage("nope", {"app", "shop, public"}, {"shop.nopes"}, false),
            "table nope not found in database app (search_path: shop, public); did you mean "
            "from = \"shop.nopes\"?");
  EXPECT_EQ(TableNotFoundMessage("nope", {"app", ""}, {}, false),
            "table nope not found in database app (search_path: no schema of it exists)");
}

TEST(PgSql, CursorParamsAreExact) {
  EXPECT_EQ(CursorParam(int64_t{-9223372036854775807LL - 1}), "-9223372036854775808");
  EXPECT_EQ(CursorParam(0.1), "0.10000000000000001");
  EXPECT_EQ(CursorParam(std::string("2024-01-01T10:00:00.123456Z")), "2024-01-01T10:00:00.123456Z");
  // A bytea's text input: its hex form.
  EXPECT_EQ(CursorParam(Bytes{std::string("\x00\xab", 2)}), "\\x00ab");
  EXPECT_EQ(CursorParam(Bytes{}), "\\x");
}

TEST(PgSql, FirstPageHasNoWhere) {
  PageQuery q;
  q.columns = {"id", "status", "tags"};
  q.order_by = {"updated_at", "id"};
  q.limit = 5000;
  auto st = BuildPageQuery(Orders(), q);
  ASSERT_TRUE(st.ok()) << st.status().ToString();
  EXPECT_EQ(st->sql,
            "SELECT \"id\", \"status\", CASE WHEN array_ndims(\"tags\") = 1 AND "
            "array_lower(\"tags\", 1) = 1 THEN to_json(\"tags\")::text WHEN "
            "strpos(replace(array_dims(\"tags\"), '[1:', ''), '[') > 0 THEN \"tags\"::text "
            "ELSE to_json(\"tags\")::text END AS \"tags\" FROM \"public\".\"orders\" ORDER "
            "BY \"updated_at\", \"id\" LIMIT 5000");
  EXPECT_TRUE(st->params.empty());
}

TEST(PgSql, KeysetPageComparesRows) {
  PageQuery q;
  q.columns = {"id", "we\"ird"};
  q.order_by = {"updated_at", "id"};
  q.after = Cursor{std::string("2024-01-01T10:00:00Z"), int64_t{42}};
  q.limit = 7;
  auto st = BuildPageQuery(Orders(), q);
  ASSERT_TRUE(st.ok()) << st.status().ToString();
  EXPECT_EQ(st->sql,
            "SELECT \"id\", \"we\"\"ird\" FROM \"public\".\"orders\" WHERE (\"updated_at\", "
            "\"id\") > ($1::timestamp with time zone, $2::bigint) ORDER BY \"updated_at\", "
            "\"id\" LIMIT 7");
  EXPECT_EQ(st->params, (std::vector<std::string>{"2024-01-01T10:00:00Z", "42"}));
}

TEST(PgSql, LiteralsReadBackTheSameWhateverTheQuotingMode) {
  EXPECT_EQ(QuoteLiteral("plain"), "'plain'");
  EXPECT_EQ(QuoteLiteral("it's"), "'it''s'");
  EXPECT_EQ(QuoteLiteral(""), "''");
  // With a backslash: the E'' form, which reads \\ as one backslash in either mode.
  EXPECT_EQ(QuoteLiteral("a\\'b"), " E'a\\\\''b'");
}

TEST(PgSql, CopyPagesInlineTheirParametersOutsideQuotedNames) {
  PageQuery q;
  q.columns = {"id", "we\"ird"};
  q.order_by = {"updated_at", "id"};
  q.after = Cursor{std::string("2024-01-01T10:00:00Z'; DROP TABLE x; --"), int64_t{42}};
  q.limit = 7;
  auto copy = BuildPageCopy(Orders(), q);
  ASSERT_TRUE(copy.ok()) << copy.status().ToString();
  EXPECT_EQ(*copy,
            "COPY (SELECT \"id\", \"we\"\"ird\" FROM \"public\".\"orders\" WHERE (\"updated_at\", "
            "\"id\") > ('2024-01-01T10:00:00Z''; DROP TABLE x; --'::timestamp with time zone, "
            "'42'::bigint) ORDER BY \"updated_at\", \"id\" LIMIT 7) TO STDOUT; "
            "SELECT \"id\", \"we\"\"ird\" FROM \"public\".\"orders\" LIMIT 0");
  // A $1 inside a quoted name is part of the name.
  PageStatement st{"SELECT \"a$1\" FROM t WHERE x > $1::int AND y = 'b$1' AND z < $10", {"5"}};
  EXPECT_EQ(InlineParams(st), "SELECT \"a$1\" FROM t WHERE x > '5'::int AND y = 'b$1' AND z < $10");
}

TEST(PgSql, SingleColumnKeyset) {
  PageQuery q;
  q.columns = {"id"};
  q.order_by = {"id"};
  q.after = Cursor{int64_t{5}};
  auto st = BuildPageQuery(Orders(), q);
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->sql,
            "SELECT \"id\" FROM \"public\".\"orders\" WHERE \"id\" > $1::bigint ORDER BY \"id\" "
            "LIMIT 5000");
}

TEST(PgSql, LookbackIgnoresTieBreakers) {
  PageQuery q;
  q.columns = {"id"};
  q.order_by = {"updated_at", "id"};
  q.after = Cursor{std::string("2024-01-01T10:00:00Z"), int64_t{42}};
  q.lookback_seconds = 5.5;
  q.limit = 100;
  auto st = BuildPageQuery(Orders(), q);
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->sql,
            "SELECT \"id\" FROM \"public\".\"orders\" WHERE \"updated_at\" >= "
            "($1::timestamp with time zone - make_interval(secs => $2::double precision)) "
            "ORDER BY \"updated_at\", \"id\" LIMIT 100");
  EXPECT_EQ(st->params, (std::vector<std::string>{"2024-01-01T10:00:00Z", "5.5"}));
}

TEST(PgSql, TheSafeHorizonBoundsTheFirstCursorColumn) {
  PageQuery q;
  q.columns = {"id"};
  q.order_by = {"updated_at", "id"};
  q.before = std::string("2024-01-01T10:00:05Z");
  q.limit = 10;
  auto first = BuildPageQuery(Orders(), q);
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(first->sql,
            "SELECT \"id\" FROM \"public\".\"orders\" WHERE \"updated_at\" < "
            "$1::timestamp with time zone ORDER BY \"updated_at\", \"id\" LIMIT 10");
  q.after = Cursor{std::string("2024-01-01T10:00:00Z"), int64_t{42}};
  auto next = BuildPageQuery(Orders(), q);
  ASSERT_TRUE(next.ok());
  EXPECT_EQ(next->sql,
            "SELECT \"id\" FROM \"public\".\"orders\" WHERE (\"updated_at\", \"id\") > "
            "($1::timestamp with time zone, $2::bigint) AND \"updated_at\" < "
            "$3::timestamp with time zone ORDER BY \"updated_at\", \"id\" LIMIT 10");
  EXPECT_EQ(next->params,
            (std::vector<std::string>{"2024-01-01T10:00:00Z", "42", "2024-01-01T10:00:05Z"}));
}

TEST(PgSql, UnknownColumnsAndBadCursorsAreErrors) {
  PageQuery q;
  q.columns = {"id", "nope"};
  EXPECT_EQ(BuildPageQuery(Orders(), q).status().kind(), ErrorKind::kSchema);
  q.columns = {"id"};
  q.order_by = {"id"};
  q.after = Cursor{int64_t{1}, int64_t{2}};
  EXPECT_EQ(BuildPageQuery(Orders(), q).status().kind(), ErrorKind::kSchema);
  q.after = Cursor{std::monostate{}};
  EXPECT_EQ(BuildPageQuery(Orders(), q).status().kind(), ErrorKind::kSchema);
}

TEST(PgSql, InjectionInNamesStaysQuoted) {
  TableSchema t = Orders();
  t.qualified_name = "public.\"x\"\"; DROP TABLE y; --\"";
  PageQuery q;
  q.columns = {"id"};
  auto st = BuildPageQuery(t, q);
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->sql, "SELECT \"id\" FROM \"public\".\"x\"\"; DROP TABLE y; --\" LIMIT 5000");
}

// Options are checked without connecting.
TEST(PgDefinition, ValidatesOptionsAndHidesPassword) {
  SourceDefinition d = Definition();
  EXPECT_EQ(d.kind, "postgres");
  auto both = d.make(
      Options{{"dsn", std::string("host=a")}, {"host", std::string("b")}, {"port", int64_t{5432}}});
  ASSERT_FALSE(both.ok());
  EXPECT_EQ(both.status().kind(), ErrorKind::kConfig);
  EXPECT_NE(both.status().message().find("host, port"), std::string::npos);

  auto none = d.make(Options{});
  EXPECT_EQ(none.status().kind(), ErrorKind::kConfig);

  auto bad = d.make(Options{{"dsn", std::string("host=a password=s3cret nonsense")}});
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message().find("s3cret"), std::string::npos);

  auto fields = d.make(Options{{"host", std::string("db.example")},
                               {"port", int64_t{6543}},
                               {"user", std::string("repl")},
                               {"password", std::string("s3cret")},
                               {"database", std::string("shop")}});
  ASSERT_TRUE(fields.ok()) << fields.status().ToString();
  EXPECT_EQ((*fields)->Describe(), "postgres db.example:6543/shop user=repl");

  auto uri = d.make(Options{{"dsn", std::string("postgresql://repl:s3cret@db.example:6543/shop")}});
  ASSERT_TRUE(uri.ok()) << uri.status().ToString();
  EXPECT_EQ((*uri)->Describe(), "postgres db.example:6543/shop user=repl");
  EXPECT_EQ((*uri)->kind(), "postgres");

  auto conninfo = d.make(Options{{"dsn", std::string("host=h dbname=d user=u password=s3cret")}});
  ASSERT_TRUE(conninfo.ok());
  EXPECT_EQ((*conninfo)->Describe().find("s3cret"), std::string::npos);

  auto sslmode = d.make(Options{{"host", std::string("h")}, {"sslmode", std::string("maybe")}});
  EXPECT_EQ(sslmode.status().kind(), ErrorKind::kConfig);
}

// sslrootcert: a file siphon cannot read is named at start-up; a mode that would not use it
// is refused rather than silently not verifying.
TEST(PgDefinition, SslrootcertMustBeReadableAndUsed) {
  SourceDefinition d = Definition();
  std::string ca = ::testing::TempDir() + "pg_sql_test_ca.pem";
  FILE* f = fopen(ca.c_str(), "w");
  ASSERT_NE(f, nullptr);
  fputs("-----BEGIN CERTIFICATE-----\n", f);
  fclose(f);
  auto ok = d.make(Options{{"host", std::string("h")}, {"sslrootcert", ca}});
  EXPECT_TRUE(ok.ok()) << ok.status().ToString();
  auto full = d.make(Options{
      {"host", std::string("h")}, {"sslrootcert", ca}, {"sslmode", std::string("verify-full")}});
  EXPECT_TRUE(full.ok()) << full.status().ToString();

  auto missing = d.make(Options{{"host", std::string("h")}, {"sslrootcert", ca + ".missing"}});
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().kind(), ErrorKind::kConfig);
  EXPECT_NE(missing.status().message().find(ca + ".missing"), std::string::npos);

  auto prefer = d.make(
      Options{{"host", std::string("h")}, {"sslrootcert", ca}, {"sslmode", std::string("prefer")}});
  ASSERT_FALSE(prefer.ok());
  EXPECT_NE(prefer.status().message().find("verify-full"), std::string::npos);
  auto verify_ca = d.make(Options{
      {"host", std::string("h")}, {"sslrootcert", ca}, {"sslmode", std::string("verify-ca")}});
  EXPECT_TRUE(verify_ca.ok()) << verify_ca.status().ToString();
  // require with a CA is verify-ca to libpq, without the host check sslrootcert alone makes:
  // it was taken silently.
  auto require = d.make(Options{
      {"host", std::string("h")}, {"sslrootcert", ca}, {"sslmode", std::string("require")}});
  ASSERT_FALSE(require.ok());
  EXPECT_EQ(require.status().kind(), ErrorKind::kConfig);
  EXPECT_NE(require.status().message().find("not that it names the host"), std::string::npos)
      << require.status().message();
  EXPECT_NE(require.status().message().find("give sslmode = \"verify-full\""), std::string::npos)
      << require.status().message();
  // require alone (encryption, no verification) stays as libpq has it.
  auto require_alone =
      d.make(Options{{"host", std::string("h")}, {"sslmode", std::string("require")}});
  EXPECT_TRUE(require_alone.ok()) << require_alone.status().ToString();

  auto with_dsn = d.make(Options{{"dsn", std::string("host=h")}, {"sslrootcert", ca}});
  ASSERT_FALSE(with_dsn.ok());
  EXPECT_NE(with_dsn.status().message().find("sslrootcert"), std::string::npos);
  std::remove(ca.c_str());
}

// A folder given as sslrootcert, sslcert or sslkey passed the start-up check (it opens; only
// reading it fails) and failed at every connection; so did an empty file. Both are refused
// at start-up now, naming the file and why.
TEST(PgDefinition, SslFilesMustBeFilesWithContents) {
  SourceDefinition d = Definition();
  const std::string folder = ::testing::TempDir() + "pg_sql_test_folder";
  std::filesystem::create_directories(folder);
  const std::string empty = ::testing::TempDir() + "pg_sql_test_empty.pem";
  std::fclose(std::fopen(empty.c_str(), "w"));
  for (const char* field : {"sslrootcert", "sslcert", "sslkey"}) {
    SCOPED_TRACE(field);
    auto dir = d.make(Options{{"host", std::string("h")}, {field, folder}});
    ASSERT_FALSE(dir.ok());
    EXPECT_EQ(dir.status().kind(), ErrorKind::kConfig);
    EXPECT_EQ(dir.status().message(), std::string("siphon.postgres: `") + field +
                                          "`: cannot read \"" + folder +
                                          "\": it is a folder, not a file");
    auto none = d.make(Options{{"host", std::string("h")}, {field, empty}});
    ASSERT_FALSE(none.ok());
    EXPECT_EQ(none.status().message(), std::string("siphon.postgres: `") + field +
                                           "`: cannot read \"" + empty + "\": it is empty");
  }
  std::filesystem::remove(folder);
  std::filesystem::remove(empty);
}

// A certificate that does not verify is the server failing to prove who it is: not retried,
// unless another host of the list failed for a reason that may pass.
TEST(PgDefinition, CertificateFailuresAreAuthErrors) {
  Status chain = PgConnectError(
      "connection to server at \"127.0.0.1\", port 5432 failed: SSL error: certificate verify "
      "failed\n",
      "");
  EXPECT_EQ(chain.kind(), ErrorKind::kAuth) << chain.ToString();
  EXPECT_NE(chain.message().find("did not verify against sslrootcert"), std::string::npos);
  Status name = PgConnectError(
      "connection to server at \"10.0.0.1\", port 5432 failed: server certificate for "
      "\"db.example.com\" does not match host name \"10.0.0.1\"\n",
      "");
  EXPECT_EQ(name.kind(), ErrorKind::kAuth) << name.ToString();
  Status two = PgConnectError(
      "connection to server at \"10.0.0.1\", port 5432 failed: SSL error: certificate verify "
      "failed\nconnection to server at \"10.0.0.2\", port 5432 failed: timeout expired\n",
      "");
  EXPECT_EQ(two.kind(), ErrorKind::kConnect) << two.ToString();
}

}  // namespace
}  // namespace siphon::postgres

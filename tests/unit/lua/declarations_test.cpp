#include <cstdlib>

#include "runtime/lua/lua_ref.hpp"
#include "runtime/lua/options.hpp"
#include "tests/unit/lua/lua_test_util.hpp"

namespace siphon::testing {
namespace {

using std::chrono::milliseconds;

TEST_F(LuaTest, DeclaresADeployment) {
  auto host = NewHost();
  Status s = Load(*host, std::string(kHeader) + R"(
siphon.replicate "orders" {
  source = pg,
  from = "public.orders",
  key = "id",
  cursor = { "updated_at", "id" },
  every = "1m30s",
  batch = 1e3,
  lookback = "5s",
  columns = { "id", "status", "updated_at" },
  write = "append",
}
siphon.replicate("customers", { source = pg, every = 2.5 })
assert(require("siphon") == siphon)
)");
  ASSERT_TRUE(s.ok()) << s.message();
  Deployment d = host->TakeDeployment();
  EXPECT_EQ(d.script_path, ScriptPath());
  ASSERT_TRUE(d.target);
  EXPECT_EQ(d.target->path, (dir_ / "replica.db").string());
  EXPECT_EQ(d.target->location, ScriptPath() + ":2");
  ASSERT_EQ(d.sources.size(), 1u);
  EXPECT_EQ(d.sources[0]->name, "postgres#1");
  EXPECT_EQ(d.sources[0]->location, ScriptPath() + ":1");
  EXPECT_EQ(d.sources[0]->source->kind(), "postgres");
  ASSERT_EQ(d.tables.size(), 2u);

  const TableDecl& orders = d.tables[0];
  EXPECT_EQ(orders.name, "orders");
  EXPECT_EQ(orders.location, ScriptPath() + ":4");
  EXPECT_EQ(orders.source, d.sources[0]);
  EXPECT_EQ(orders.from, "public.orders");
  EXPECT_EQ(orders.key, std::vector<std::string>{"id"});
  EXPECT_EQ(orders.cursor, (std::vector<std::string>{"updated_at", "id"}));
  EXPECT_EQ(orders.every, milliseconds(90000));
  EXPECT_EQ(orders.batch, 1000u);
  ASSERT_TRUE(orders.lookback_seconds);
  EXPECT_DOUBLE_EQ(*orders.lookback_seconds, 5.0);
  EXPECT_EQ(orders.columns, (std::vector<std::string>{"id", "status", "updated_at"}));
  EXPECT_EQ(orders.write, WriteMode::kAppend);

  const TableDecl& customers = d.tables[1];
  EXPECT_EQ(customers.location, ScriptPath() + ":15");
  EXPECT_EQ(customers.from, "customers");
  EXPECT_TRUE(customers.key.empty());
  EXPECT_TRUE(customers.cursor.empty());
  EXPECT_EQ(customers.every, milliseconds(2500));
  EXPECT_EQ(customers.batch, 5000u);
  EXPECT_FALSE(customers.lookback_seconds);
  EXPECT_EQ(customers.write, WriteMode::kUpsert);
}

TEST_F(LuaTest, TargetPathAbsoluteStaysAsGiven) {
  auto host = NewHost();
  Status s = Load(*host, R"(local pg = siphon.postgres { host = "127.0.0.1", port = 5432 }
siphon.target { path = "/var/lib/siphon/../siphon/replica.db" }
siphon.replicate "t" { source = pg })");
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(host->TakeDeployment().target->path, "/var/lib/siphon/replica.db");
}

struct BadScript {
  const char* name;
  const char* body;  // appended after kHeader (lines 1-2), so its first line is line 3
  int line;          // 0: no line expected
  const char* message;
};

class DeclarationErrors : public LuaTest, public ::testing::WithParamInterface<BadScript> {};

// A limit the parser hits without a place (a table nested too deep) still names the file.
TEST_F(LuaTest, AScriptTheParserGivesUpOnNamesTheFile) {
  auto host = NewHost();
  Status s = Load(*host, std::string(kHeader) + "local t = " + std::string(400, '{') +
                             std::string(400, '}') + "\n");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.kind(), ErrorKind::kConfig);
  EXPECT_EQ(s.message().rfind(ScriptPath() + ": ", 0), 0u) << s.message();
}

TEST_P(DeclarationErrors, StopAtTheDeclaringLine) {
  const BadScript& c = GetParam();
  auto host = NewHost();
  Status s = Load(*host, std::string(kHeader) + c.body);
  ASSERT_FALSE(s.ok()) << c.name;
  EXPECT_EQ(s.kind(), ErrorKind::kConfig);
  std::string first_line = s.message().substr(0, s.message().find('\n'));
  std::string expected = c.message;
  if (size_t at = expected.find("{script}"); at != std::string::npos) {
    expected.replace(at, 8, ScriptPath());
  }
  if (c.line > 0) expected = ScriptPath() + ":" + std::to_string(c.line) + ": " + expected;
  EXPECT_EQ(first_line, expected) << c.name << "\nfull message: " << s.message();
}

const BadScript kBadScripts[] = {
    {"query_and_from", "siphon.replicate 'f' { source = pg, from = 't', query = 'SELECT 1' }", 3,
     "siphon.replicate \"f\": give 'from' (a table) or 'query' (a SELECT), not both"},
    {"query_blank", "siphon.replicate 'f' { source = pg, query = ' \\n ' }", 3,
     "siphon.replicate \"f\": field 'query' must not be empty"},
    {"query_semicolon", "siphon.replicate 'f' { source = pg, query = ' ; ' }", 3,
     "siphon.replicate \"f\": field 'query' must not be empty"},
    {"query_number", "siphon.replicate 'f' { source = pg, query = 42 }", 3,
     "siphon.replicate \"f\": field 'query' must be a string, got number (42)"},
    {"unknown_field", "siphon.replicate 'orders' { source = pg, evry = '30s' }", 3,
     "siphon.replicate \"orders\": unknown field 'evry' (did you mean 'every'?)"},
    {"unknown_field_far", "siphon.replicate 'orders' { source = pg, filter = print }", 3,
     "siphon.replicate \"orders\": unknown field 'filter'"},
    {"every_boolean", "siphon.replicate 'orders' { source = pg, every = true }", 3,
     "siphon.replicate \"orders\": field 'every' must be a duration string or number, got "
     "boolean"},
    {"every_garbage", "siphon.replicate 'orders' { source = pg, every = 'soon' }", 3,
     "siphon.replicate \"orders\": field 'every' is an invalid duration 'soon': expected a "
     "number followed by a unit (ms, s, m, h, d), e.g. '30s' or '1m30s'"},
    {"every_zero", "siphon.replicate 'orders' { source = pg, every = 0 }", 3,
     "siphon.replicate \"orders\": field 'every' is an invalid duration '0 seconds': must be "
     "greater than zero"},
    {"lookback_negative", "siphon.replicate 'orders' { source = pg, lookback = '-5s' }", 3,
     "siphon.replicate \"orders\": field 'lookback' is an invalid duration '-5s': must not be "
     "negative"},
    {"batch_zero", "siphon.replicate 'orders' { source = pg, batch = 0 }", 3,
     "siphon.replicate \"orders\": field 'batch' must be between 1 and 1000000, got 0"},
    {"batch_huge", "siphon.replicate 'orders' { source = pg, batch = 1000001 }", 3,
     "siphon.replicate \"orders\": field 'batch' must be between 1 and 1000000, got 1000001"},
    {"batch_fraction", "siphon.replicate 'orders' { source = pg, batch = 1.5 }", 3,
     "siphon.replicate \"orders\": field 'batch' must be an integer, got number (1.5)"},
    {"batch_string", "siphon.replicate 'orders' { source = pg, batch = '10' }", 3,
     "siphon.replicate \"orders\": field 'batch' must be an integer, got string \"10\""},
    {"write_choice", "siphon.replicate 'orders' { source = pg, write = 'merge' }", 3,
     "siphon.replicate \"orders\": field 'write' must be one of \"upsert\", \"append\", got "
     "\"merge\""},
    {"source_string", "siphon.replicate 'orders' { source = 'pg' }", 3,
     "siphon.replicate \"orders\": field 'source' must be a source returned by "
     "siphon.postgres{…}, got string \"pg\""},
    {"source_table", "siphon.replicate 'orders' { source = { dsn = 'x' } }", 3,
     "siphon.replicate \"orders\": field 'source' must be a source returned by "
     "siphon.postgres{…}, got table"},
    {"source_missing", "siphon.replicate 'orders' { from = 'public.orders' }", 3,
     "siphon.replicate \"orders\": missing required field 'source'"},
    {"source_undefined_global", "siphon.replicate 'orders' { source = gp }", 3,
     "global 'gp' is not defined"},
    {"key_number", "siphon.replicate 'orders' { source = pg, key = { 'id', 2 } }", 3,
     "siphon.replicate \"orders\": field 'key' must be a string or a list of strings, got a "
     "list with number (2) at [2]"},
    {"key_empty", "siphon.replicate 'orders' { source = pg, key = {} }", 3,
     "siphon.replicate \"orders\": field 'key' must not be an empty list"},
    {"cursor_boolean", "siphon.replicate 'orders' { source = pg, cursor = false }", 3,
     "siphon.replicate \"orders\": field 'cursor' must be a string or a list of strings, got "
     "boolean"},
    {"columns_twice", "siphon.replicate 'orders' { source = pg, columns = { 'id', 'id' } }", 3,
     "siphon.replicate \"orders\": field 'columns' lists \"id\" twice"},
    {"from_empty", "siphon.replicate 'orders' { source = pg, from = '' }", 3,
     "siphon.replicate \"orders\": field 'from' must not be empty"},
    {"positional_field", "siphon.replicate 'orders' { pg }", 3,
     "siphon.replicate \"orders\": fields must be named (name = value), got a number (1) key"},
    {"duplicate_table",
     "siphon.replicate 'orders' { source = pg }\n\nsiphon.replicate 'Orders' { source = pg }", 5,
     "siphon.replicate \"Orders\": table 'orders' is already declared at {script}:3"},
    {"reserved_name", "siphon.replicate '_siphon_state' { source = pg }", 3,
     "siphon.replicate: table name '_siphon_state' is reserved (names starting with _siphon "
     "hold siphon's state)"},
    {"empty_name", "siphon.replicate '' { source = pg }", 3,
     "siphon.replicate: the table name must not be empty"},
    {"name_not_string", "siphon.replicate { source = pg }", 3,
     "siphon.replicate expects the target table name first: siphon.replicate \"orders\" { "
     "source = …, … }, got table"},
    {"fields_not_table", "siphon.replicate 'orders' 'x'", 3,
     "siphon.replicate \"orders\" expects a table of fields { source = …, … }, got string "
     "\"x\""},
    {"curried_never_called", "siphon.replicate 'orders'\n", 3,
     "siphon.replicate \"orders\" has no field table (write siphon.replicate \"orders\" { "
     "source = …, … })"},
    {"multiline", "\n\nsiphon.replicate 'orders' {\n  source = pg,\n  every = {},\n}", 5,
     "siphon.replicate \"orders\": field 'every' must be a duration string or number, got "
     "table"},
    {"second_target", "siphon.target { path = 'other.db' }", 3,
     "siphon.target is already declared at {script}:2 (a deployment has exactly one target)"},
    {"target_unknown", "siphon.target { paht = 'x.db' }", 3,
     "siphon.target: unknown field 'paht' (did you mean 'path'?)"},
    {"target_string", "siphon.target 'x.db'", 3,
     "siphon.target expects a table of fields: siphon.target { path = \"replica.db\" }, got "
     "string \"x.db\""},
    // A secret's value never shows (a numeric password is still a password).
    {"postgres_wrong_type", "siphon.postgres { dsn = 1 }", 3,
     "siphon.postgres: field 'dsn' must be a string, got number"},
    {"postgres_numeric_password", "siphon.postgres { host = 'h', password = 12345678 }", 3,
     "siphon.postgres: field 'password' must be a string, got number"},
    {"http_api_numeric_token", "siphon.http_api { listen = '8787', token = 4242 }", 3,
     "siphon.http_api: field 'token' must be a string, got number"},
    {"postgres_typo", "siphon.postgres { dns = 'x' }", 3,
     "siphon.postgres: unknown field 'dns' (did you mean 'dsn'?)"},
    {"postgres_make_error", "siphon.postgres { port = 5432 }", 3,
     "siphon.postgres needs `dsn` or `host`"},
    {"env_missing", "local x = siphon.env('SIPHON_TEST_SURELY_UNSET')", 3,
     "environment variable 'SIPHON_TEST_SURELY_UNSET' is not set (set it, or give a default: "
     "siphon.env(\"SIPHON_TEST_SURELY_UNSET\", \"…\"))"},
    {"error_in_function",
     "local function declare()\n  siphon.replicate 'orders' { source = pg, batch = -1 }\nend\n"
     "declare()",
     4, "siphon.replicate \"orders\": field 'batch' must be between 1 and 1000000, got -1"},
    {"runtime_error", "local t = nil\nlocal x = t.field", 4,
     "attempt to index a nil value (local 't')"},
};

INSTANTIATE_TEST_SUITE_P(Lua, DeclarationErrors, ::testing::ValuesIn(kBadScripts),
                         [](const auto& info) { return std::string(info.param.name); });

// A traceback comes with a mistake made on the way through a function (which call led there);
// one in the main chunk names its line and nothing more.
TEST_F(LuaTest, MessagesCarryATraceback) {
  auto host = NewHost();
  Status s = Load(*host, std::string(kHeader) +
                             "local function table_of(name) siphon.replicate(name) "
                             "{ source = pg, batch = 0 } end\n"
                             "table_of('orders')\n");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("stack traceback:"), std::string::npos) << s.message();
  host = NewHost();
  s = Load(*host, std::string(kHeader) + "siphon.replicate 'orders' { source = pg, batch = 0 }\n");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.message().find("stack traceback:"), std::string::npos) << s.message();
}

TEST_F(LuaTest, ScriptWithoutTargetOrTables) {
  {
    auto host = NewHost();
    Status s = Load(*host,
                    "local pg = siphon.postgres { dsn = 'postgresql://127.0.0.1/x' }\n"
                    "siphon.replicate 'orders' { source = pg }\n");
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.message(), ScriptPath() +
                               ": no siphon.target{…} declared (add siphon.target { "
                               "path = \"replica.db\" })");
  }
  {
    auto host = NewHost();
    Status s = Load(*host, kHeader);
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.message(), ScriptPath() +
                               ": no tables declared (add siphon.replicate \"name\" "
                               "{ source = …, … })");
  }
}

TEST_F(LuaTest, MissingFileAndSyntaxError) {
  auto host = NewHost();
  Status s = host->LoadScript((dir_ / "nope.lua").string());
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.kind(), ErrorKind::kConfig);
  EXPECT_EQ(s.message(), "cannot read script '" + (dir_ / "nope.lua").string() + "': no such file");

  auto host2 = NewHost();
  s = Load(*host2, "local x = \nsiphon.target {{{ \n");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.message().rfind(ScriptPath() + ":", 0), 0u) << s.message();
  EXPECT_NE(s.message().find("expected"), std::string::npos) << s.message();
}

TEST_F(LuaTest, EnvReadsVariablesAndDefaults) {
  setenv("SIPHON_TEST_DSN", "postgresql://env@127.0.0.1/x", 1);
  unsetenv("SIPHON_TEST_UNSET_VAR");
  auto host = NewHost();
  Status s = Load(*host, R"(
local pg = siphon.postgres { dsn = siphon.env("SIPHON_TEST_DSN") }
assert(siphon.env("SIPHON_TEST_UNSET_VAR", "fallback") == "fallback")
assert(siphon.env("SIPHON_TEST_UNSET_VAR", 5) == 5)
assert(siphon.env("SIPHON_TEST_UNSET_VAR", nil) == nil)
assert(siphon.env("SIPHON_TEST_DSN", "unused") == "postgresql://env@127.0.0.1/x")
siphon.target { path = "r.db" }
siphon.replicate "t" { source = pg }
)");
  ASSERT_TRUE(s.ok()) << s.message();
  Deployment d = host->TakeDeployment();
  EXPECT_NE(d.sources[0]->source->Describe().find("127.0.0.1"), std::string::npos);
  unsetenv("SIPHON_TEST_DSN");
}

TEST_F(LuaTest, QuickstartExampleDeclaresFourTables) {
  std::string path = std::string(SIPHON_SOURCE_DIR) + "/examples/quickstart.lua";
  unsetenv("PG_DSN");
  unsetenv("REPLICA");
  {
    auto host = NewHost();
    Status s = host->LoadScript(path);
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.message().rfind(path + ":9: environment variable 'PG_DSN' is not set", 0), 0u)
        << s.message();
  }
  setenv("PG_DSN", "postgresql://repl@127.0.0.1:5432/shop", 1);
  auto host = NewHost();
  Status s = host->LoadScript(path);
  unsetenv("PG_DSN");
  ASSERT_TRUE(s.ok()) << s.message();
  Deployment d = host->TakeDeployment();
  ASSERT_EQ(d.tables.size(), 4u);
  EXPECT_EQ(d.tables[0].from, "public.orders");
  EXPECT_EQ(d.tables[1].write, WriteMode::kAppend);
  EXPECT_EQ(d.tables[1].cursor, std::vector<std::string>{"id"});
  EXPECT_EQ(d.tables[2].every, std::chrono::minutes(5));
  EXPECT_EQ(d.tables[3].from, "");
  EXPECT_EQ(d.tables[3].query.rfind("SELECT id, customer, amount, updated_at\n", 0), 0u)
      << d.tables[3].query;
  EXPECT_EQ(d.tables[3].key, std::vector<std::string>{"id"});
  EXPECT_EQ(d.target->path, std::string(SIPHON_SOURCE_DIR) + "/examples/shop-replica.db");
}

// `query` replaces `from`: trimmed of surrounding space and a closing semicolon (it is read
// as a sub-select), named in messages by its start.
TEST_F(LuaTest, AQueryIsDeclaredInsteadOfATable) {
  auto host = NewHost();
  Status s = Load(*host, std::string(kHeader) + R"(siphon.replicate "facts" { source = pg,
    key = "id", query = "\n   SELECT o.id,\n\t o.amount   FROM orders o WHERE o.amount > 0 ; \n" }
  )");
  ASSERT_TRUE(s.ok()) << s.message();
  Deployment d = host->TakeDeployment();
  ASSERT_EQ(d.tables.size(), 1u);
  EXPECT_EQ(d.tables[0].from, "");
  EXPECT_EQ(d.tables[0].query, "SELECT o.id,\n\t o.amount   FROM orders o WHERE o.amount > 0");
  EXPECT_EQ(d.tables[0].Origin(),
            "query \"SELECT o.id, o.amount FROM orders o WHERE o.amount > 0\"");
  d.tables[0].query = "SELECT " + std::string(80, 'x');
  EXPECT_EQ(d.tables[0].Origin(), "query \"SELECT " + std::string(53, 'x') + "…\"");
  // Never cut inside a UTF-8 sequence (status prints it as JSON).
  d.tables[0].query = "SELECT " + std::string(52, 'x') + "Ö";
  EXPECT_EQ(d.tables[0].Origin(), "query \"SELECT " + std::string(52, 'x') + "…\"");
}

TEST_F(LuaTest, DeletesExampleDeclaresSoftDeletesReconcileAndASchemaPolicy) {
  setenv("PG_DSN", "postgresql://repl@127.0.0.1:5432/shop", 1);
  auto host = NewHost();
  Status s = host->LoadScript(std::string(SIPHON_SOURCE_DIR) + "/examples/deletes.lua");
  unsetenv("PG_DSN");
  ASSERT_TRUE(s.ok()) << s.message();
  Deployment d = host->TakeDeployment();
  ASSERT_EQ(d.tables.size(), 3u);
  EXPECT_EQ(d.tables[1].name, "orders");
  EXPECT_EQ(d.tables[1].reconcile_every, std::chrono::hours(6));
  ASSERT_TRUE(d.tables[0].soft_delete.has_value());
  EXPECT_EQ(d.tables[0].soft_delete->column, "deleted_at");
  EXPECT_FALSE(d.tables[0].soft_delete->keep);
  EXPECT_TRUE(d.tables[0].backfill);
  ASSERT_NE(d.tables[0].schema_change_handler, nullptr);
  SchemaDiff diff;
  diff.retyped.push_back({"id", "integer", "bigint"});
  auto action = d.tables[0].schema_change_handler->Decide("accounts", diff);
  ASSERT_TRUE(action.ok()) << action.status().message();
  EXPECT_EQ(*action, SchemaChangeAction::kResync);
  diff.retyped.clear();
  action = d.tables[0].schema_change_handler->Decide("accounts", diff);
  ASSERT_TRUE(action.ok());
  EXPECT_EQ(*action, SchemaChangeAction::kContinue);
}

TEST_F(LuaTest, DeletesAndSchemaPolicyFieldsAreChecked) {
  for (const auto& [body, message] : std::vector<std::pair<std::string, std::string>>{
           {"deletes = { reconcile = '1h' }", "deletes.reconcile needs a cursor"},
           {"cursor = 'id', deletes = { reconcile = 'hourly' }", "deletes.reconcile: "},
           {"cursor = 'id', deletes = { reconcile = true }",
            "deletes.reconcile must be an interval"},
           {"cursor = 'id', write = 'append', deletes = { reconcile = '1h' }",
            "does not apply to write = \"append\""},
           {"cursor = 'id', deletes = { reconcile = '1h' }, transform = function(r) return r end",
            "cannot be combined with transform"},
           {"cursor = 'id', deletes = { reconcile = '1h', keep = true }",
            "deletes.keep applies to soft deletes"},
           {"deletes = { wipe = true }",
            "unknown field 'wipe' in deletes (known: soft, keep, "
            "reconcile)"},
           {"deletes = { keep = true }", "deletes needs soft = \"column\""},
           {"deletes = { soft = 3 }", "deletes.soft must be a column name"},
           {"on_schema_change = 'later'", "field 'on_schema_change' must be"},
       }) {
    std::string path = (dir_ / "bad.lua").string();
    std::ofstream(path) << "local pg = siphon.postgres { dsn = 'host=x' }\n"
                           "siphon.target { path = 'r.db' }\n"
                           "siphon.replicate 't' { source = pg, "
                        << body << " }\n";
    auto host = NewHost();
    Status s = host->LoadScript(path);
    ASSERT_FALSE(s.ok()) << body;
    EXPECT_NE(s.message().find(":3: "), std::string::npos) << s.message();
    EXPECT_NE(s.message().find(message), std::string::npos) << s.message();
  }
}

TEST_F(LuaTest, AScriptFailingAfterDeclaringHandlersReleasesThemBeforeTheState) {
  // The first table's Lua handler was declared when the second table's mistake stopped the
  // script: destroying the host must release it before closing the state (this crashed).
  std::string path = (dir_ / "half.lua").string();
  std::ofstream(path) << "local pg = siphon.postgres { dsn = 'host=x' }\n"
                         "siphon.target { path = 'r.db' }\n"
                         "siphon.replicate 'a' { source = pg,\n"
                         "  on_schema_change = function(diff) return 'continue' end,\n"
                         "  transform = function(row) return row end }\n"
                         "siphon.replicate 'b' { source = pg, every = function() end }\n";
  const int64_t refs = LuaRef::LiveCount();
  {
    auto host = NewHost();
    Status s = host->LoadScript(path);
    ASSERT_FALSE(s.ok());
    EXPECT_NE(s.message().find("half.lua:6:"), std::string::npos) << s.message();
  }
  EXPECT_EQ(LuaRef::LiveCount(), refs);
}

TEST_F(LuaTest, ReconcileIsDeclaredWithItsInterval) {
  std::string path = (dir_ / "ok.lua").string();
  std::ofstream(path) << "local pg = siphon.postgres { dsn = 'host=x' }\n"
                         "siphon.target { path = 'r.db' }\n"
                         "siphon.replicate 'a' { source = pg, cursor = 'id', "
                         "deletes = { reconcile = '1h30m' } }\n"
                         "siphon.replicate 'b' { source = pg, cursor = 'id', "
                         "deletes = { soft = 'gone', reconcile = 90 } }\n"
                         "siphon.replicate 'c' { source = pg, cursor = 'id' }\n";
  auto host = NewHost();
  Status s = host->LoadScript(path);
  ASSERT_TRUE(s.ok()) << s.message();
  Deployment d = host->TakeDeployment();
  ASSERT_EQ(d.tables.size(), 3u);
  EXPECT_EQ(d.tables[0].reconcile_every, std::chrono::milliseconds(5400000));
  EXPECT_FALSE(d.tables[0].soft_delete.has_value());
  EXPECT_EQ(d.tables[1].reconcile_every, std::chrono::milliseconds(90000));
  ASSERT_TRUE(d.tables[1].soft_delete.has_value());
  EXPECT_EQ(d.tables[1].soft_delete->column, "gone");
  EXPECT_FALSE(d.tables[2].reconcile_every.has_value());
}

TEST(LuaOptions, ClosestNameAndReference) {
  std::vector<std::string> names = {"source", "from", "every", "batch", "lookback"};
  EXPECT_EQ(ClosestName("evry", names), "every");
  EXPECT_EQ(ClosestName("bach", names), "batch");
  EXPECT_EQ(ClosestName("look_back", names), "lookback");
  EXPECT_EQ(ClosestName("transform", names), "");

  FieldSpec every;
  every.name = "every";
  every.type = FieldType::kDuration;
  every.default_value = std::chrono::milliseconds(60000);
  every.doc = "how often";
  FieldSpec write;
  write.name = "write";
  write.default_value = std::string("upsert");
  write.choices = {"upsert", "append"};
  EXPECT_EQ(DescribeFields({every, write}),
            "- `every` (duration, default \"60s\"): how often\n"
            "- `write` (string, default \"upsert\": \"upsert\" | \"append\")\n");
}

}  // namespace
}  // namespace siphon::testing

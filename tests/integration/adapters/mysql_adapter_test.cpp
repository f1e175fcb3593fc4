// The MySQL/MariaDB adapter against the real MariaDB started by the `servers` fixture,
// driven on a libuv loop exactly as the sync pipeline drives it.
#include <chrono>
#include <fstream>
#include <random>
#include <set>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "adapters/mysql/mysql_config.hpp"
#include "adapters/mysql/mysql_connection.hpp"
#include "adapters/mysql/mysql_source.hpp"
#include "adapters/mysql/mysql_sql.hpp"
#include "tests/integration/adapters/mysql_adapter_fixture.hpp"
#include "tests/integration/harness/harness.hpp"

namespace siphon::mysql {
namespace {

using Clock = std::chrono::steady_clock;

TEST_F(MysqlAdapterTest, ConnectsAndReflects) {
  test::MyDb db;
  db.Exec(
      "CREATE TABLE orders (region VARCHAR(10) NOT NULL, id BIGINT UNSIGNED NOT NULL,"
      " amount DECIMAL(12,2), note TEXT, updated_at DATETIME(6) NOT NULL,"
      " PRIMARY KEY (region, id))");
  db.Exec("INSERT INTO orders VALUES ('eu', 1, 1.50, NULL, NOW(6)), ('us', 2, 2, 'x', NOW(6))");
  db.Exec("ANALYZE TABLE orders");
  auto conn = NewConnection(db);
  ASSERT_TRUE(Connect(*conn).ok());
  // The session is what the adapter promises: UTC, utf8mb4, read-only.
  auto session = QueryText(*conn, "SELECT @@time_zone, @@character_set_client, @@tx_read_only");
  ASSERT_EQ(session.size(), 1u);
  EXPECT_EQ(session[0][0], "+00:00");
  EXPECT_EQ(session[0][1], "utf8mb4");
  EXPECT_EQ(session[0][2], "1");
  auto write = Await<Result<test::Rows>>([&](auto done) {
    conn->QueryText("INSERT INTO orders VALUES ('xx', 9, 1, '', NOW())", done);
  });
  ASSERT_FALSE(write.ok());
  EXPECT_NE(write.status().message().find("1792"), std::string::npos) << write.status().message();
  for (std::string name : {std::string("orders"), db.name() + ".orders"}) {
    auto schema = Reflect(*conn, name);
    ASSERT_TRUE(schema.ok()) << schema.status().ToString();
    EXPECT_EQ(schema->qualified_name, name);
    ASSERT_EQ(schema->columns.size(), 5u);
    EXPECT_EQ(schema->columns[0].name, "region");
    EXPECT_EQ(schema->columns[1].source_type, "bigint(20) unsigned");
    EXPECT_EQ(schema->columns[2].type, ColumnType::kText);
    EXPECT_EQ(schema->columns[2].order, OrderKind::kNumber);
    EXPECT_TRUE(schema->columns[3].nullable);
    EXPECT_FALSE(schema->columns[4].nullable);
    EXPECT_EQ(schema->columns[4].order, OrderKind::kTime);
    EXPECT_EQ(schema->primary_key, (std::vector<std::string>{"region", "id"}));
    EXPECT_EQ(schema->row_estimate, 2);
  }
}

TEST_F(MysqlAdapterTest, WrongPasswordIsAuthWithoutThePassword) {
  test::MyDb db;
  const std::string wrong = "Wr0ng-Passw0rd-xyz";
  auto conn = NewConnection(db, wrong);
  Status s = Connect(*conn);
  EXPECT_EQ(s.kind(), ErrorKind::kAuth) << s.ToString();
  EXPECT_NE(s.message().find("1045"), std::string::npos) << s.message();
  EXPECT_EQ(s.message().find(wrong), std::string::npos) << s.message();
}

TEST_F(MysqlAdapterTest, NothingListeningIsConnect) {
  test::MyDb db;
  auto config = std::make_shared<MysqlConfig>();
  config->host = "127.0.0.1";
  config->port = 1;  // nothing listens on port 1
  config->user = "nobody";
  MysqlConnection conn(&loop_, config);
  Status s = Connect(conn);
  EXPECT_EQ(s.kind(), ErrorKind::kConnect) << s.ToString();
  EXPECT_TRUE(s.transient());
}

// A `from` that names no table is the script's mistake (kConfig, exit 2), as a column it
// names that is not there is; a table or column gone after reflection is the source's.
TEST_F(MysqlAdapterTest, MissingTableAndColumnAreSchemaErrors) {
  test::MyDb db;
  db.Exec("CREATE TABLE t (id INT PRIMARY KEY, v INT)");
  auto conn = NewConnection(db);
  ASSERT_TRUE(Connect(*conn).ok());
  auto missing = Reflect(*conn, "nope");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().kind(), ErrorKind::kConfig);
  EXPECT_NE(missing.status().message().find("nope"), std::string::npos);
  auto schema = Reflect(*conn, "t");
  ASSERT_TRUE(schema.ok());
  PageQuery q;
  q.columns = {"id", "v"};
  q.order_by = {"id"};
  // Dropped after reflection: the server's 1054 / 1146 become kSchema.
  db.Exec("ALTER TABLE t DROP COLUMN v");
  auto page = Pull(*conn, *schema, q);
  ASSERT_FALSE(page.ok());
  EXPECT_EQ(page.status().kind(), ErrorKind::kSchema) << page.status().ToString();
  EXPECT_NE(page.status().message().find("1054"), std::string::npos);
  db.Exec("DROP TABLE t");
  q.columns = {"id"};
  page = Pull(*conn, *schema, q);
  ASSERT_FALSE(page.ok());
  EXPECT_EQ(page.status().kind(), ErrorKind::kSchema) << page.status().ToString();
  EXPECT_NE(page.status().message().find("1146"), std::string::npos);
  // The connection is still usable after query errors.
  EXPECT_EQ(QueryText(*conn, "SELECT 1").size(), 1u);
}

// information_schema lists only the tables a user may read: a table without a grant is not
// "not found" (which sends the user looking for a typo) but the server's refusal. The server
// refuses a table that is not there the same way (it does not tell this user which it is).
TEST_F(MysqlAdapterTest, ATableWithoutAGrantIsAnAuthErrorNotMissing) {
  test::MyDb db;
  const std::string user =
      "gr_" + db.name().substr(db.name().size() > 20 ? db.name().size() - 20 : 0);
  const std::string who = "'" + user + "'@'127.0.0.1'";
  db.Exec("CREATE TABLE granted (id INT PRIMARY KEY); CREATE TABLE secret (id INT PRIMARY KEY)");
  db.Exec("DROP USER IF EXISTS " + who + "; CREATE USER " + who +
          " IDENTIFIED BY 'gr-pw'; GRANT SELECT ON `" + db.name() + "`.`granted` TO " + who);
  auto conn = NewConnection(db, "gr-pw", user);
  ASSERT_TRUE(Connect(*conn).ok());
  ASSERT_TRUE(Reflect(*conn, "granted").ok());
  for (const std::string& name : {std::string("secret"), db.name() + ".secret"}) {
    auto denied = Reflect(*conn, name);
    ASSERT_FALSE(denied.ok()) << name;
    const std::string message = denied.status().ToString();
    EXPECT_EQ(denied.status().kind(), ErrorKind::kAuth) << message;
    EXPECT_NE(message.find("table " + name), std::string::npos) << message;
    EXPECT_NE(message.find("or the user may not read it"), std::string::npos) << message;
    EXPECT_NE(message.find("SELECT command denied"), std::string::npos) << message;
    EXPECT_NE(message.find("1142"), std::string::npos) << message;
  }
  EXPECT_TRUE(Reflect(*conn, "granted").ok());
  // The user who may read the database gets "not found" for a table that is not there.
  auto owner = NewConnection(db);
  ASSERT_TRUE(Connect(*owner).ok());
  auto missing = Reflect(*owner, "nope");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().kind(), ErrorKind::kConfig) << missing.status().ToString();
  EXPECT_EQ(missing.status().message(), "table nope not found in database " + db.name());
  db.Exec("DROP USER " + who);
}

// 10k rows tied on one cursor value, pages of 7, more tied rows inserted mid-way:
// every row arrives exactly once.
TEST_F(MysqlAdapterTest, TiesAtPageEdgesAreNeverSkipped) {
  test::MyDb db;
  db.Exec(
      "CREATE TABLE e (id BIGINT PRIMARY KEY, at TIMESTAMP(6) NOT NULL, v VARCHAR(10),"
      " KEY e_at (at, id))");
  // The literal is UTC (the test server's system time zone is not).
  db.Exec("SET time_zone = '+00:00'");
  db.Exec("INSERT INTO e SELECT seq, '2024-01-01 10:00:00.123456', 'x' FROM seq_1_to_10000");
  auto conn = NewConnection(db);
  ASSERT_TRUE(Connect(*conn).ok());
  auto schema = Reflect(*conn, "e");
  ASSERT_TRUE(schema.ok());
  PageQuery q;
  q.columns = {"id", "at"};
  q.order_by = {"at", "id"};
  q.limit = 7;
  std::multiset<int64_t> seen;
  int pages = 0;
  for (;;) {
    auto batch = Pull(*conn, *schema, q);
    ASSERT_TRUE(batch.ok()) << batch.status().ToString();
    if (batch->rows() == 0) break;
    for (size_t r = 0; r < batch->rows(); ++r) seen.insert(batch->at(r, 0).i);
    size_t last = batch->rows() - 1;
    ASSERT_EQ(batch->bytes(batch->at(last, 1)), "2024-01-01T10:00:00.123456Z");
    q.after = Cursor{CursorValueOf(*batch, last, 1), CursorValueOf(*batch, last, 0)};
    if (++pages == 500) {
      db.Exec(
          "INSERT INTO e SELECT 10000 + seq, '2024-01-01 10:00:00.123456', 'late'"
          " FROM seq_1_to_50");
    }
  }
  EXPECT_EQ(seen.size(), 10050u);
  EXPECT_EQ(std::set<int64_t>(seen.begin(), seen.end()).size(), 10050u);
  EXPECT_EQ(*seen.begin(), 1);
  EXPECT_EQ(*seen.rbegin(), 10050);
}

// Every page query is an index range scan (a row comparison would scan the table).
TEST_F(MysqlAdapterTest, PageQueryIsAnIndexRangeScan) {
  test::MyDb db;
  CreateIndexedEvents(db);
  auto conn = NewConnection(db);
  ASSERT_TRUE(Connect(*conn).ok());
  auto schema = Reflect(*conn, "e");
  ASSERT_TRUE(schema.ok());
  auto quote = [](std::string_view v) { return "'" + std::string(v) + "'"; };
  struct Case {
    std::vector<std::string> order_by;
    Cursor after;
    std::string key;
  } cases[] = {
      {{"updated_at", "id"}, {std::string("2024-01-01T00:10:00"), int64_t{6000}}, "e_upd"},
      {{"id"}, {int64_t{15000}}, "PRIMARY"},
  };
  for (const auto& c : cases) {
    PageQuery q;
    q.columns = {"id", "updated_at", "v"};
    q.order_by = c.order_by;
    q.after = c.after;
    q.limit = 100;
    auto params = PageParameters(*schema, q, quote);
    ASSERT_TRUE(params.ok());
    auto sql = BuildPageSql(*schema, q, &*params);
    ASSERT_TRUE(sql.ok());
    // id, select_type, table, type, possible_keys, key, key_len, ref, rows, Extra
    auto plan = QueryText(*conn, "EXPLAIN " + *sql);
    ASSERT_EQ(plan.size(), 1u);
    EXPECT_EQ(plan[0][3].value_or(""), "range") << *sql;
    EXPECT_EQ(plan[0][5].value_or(""), c.key) << *sql;
    EXPECT_EQ(plan[0][9].value_or("").find("filesort"), std::string::npos) << *sql;
    // And the page itself is right: it starts just after the cursor.
    auto page = Pull(*conn, *schema, q);
    ASSERT_TRUE(page.ok()) << page.status().ToString();
    ASSERT_EQ(page->rows(), 100u);
    EXPECT_EQ(page->at(0, 0).i, std::get<int64_t>(c.after.back()) + 1);
  }
  // The lookback page too.
  PageQuery q;
  q.columns = {"id"};
  q.order_by = {"updated_at", "id"};
  q.after = Cursor{std::string("2024-01-01T00:10:00"), int64_t{6000}};
  q.lookback_seconds = 5;
  auto params = PageParameters(*schema, q, quote);
  auto sql = BuildPageSql(*schema, q, &*params);
  auto plan = QueryText(*conn, "EXPLAIN " + *sql);
  ASSERT_EQ(plan.size(), 1u);
  EXPECT_EQ(plan[0][3].value_or(""), "range") << *sql;
  auto page = Pull(*conn, *schema, q);
  ASSERT_TRUE(page.ok()) << page.status().ToString();
  EXPECT_EQ(page->at(0, 0).i, 5950);  // 00:09:55 is the first second of the window
}

// A table without a primary key is reflected with the key of its UNIQUE key over NOT NULL
// columns, and a page by it is a range scan of that index, without a sort.
TEST_F(MysqlAdapterTest, AUniqueKeyReflectedAsTheKeyPagesByItsIndex) {
  test::MyDb db;
  db.Exec(
      "CREATE TABLE u (code VARCHAR(10) NOT NULL, region INT NOT NULL, note VARCHAR(20), "
      "UNIQUE KEY u_note (note), UNIQUE KEY u_code_region (code, region));"
      "INSERT INTO u SELECT CONCAT('c', seq % 100), seq DIV 100, NULL FROM seq_0_to_9999;"
      "ANALYZE TABLE u");
  auto conn = NewConnection(db);
  ASSERT_TRUE(Connect(*conn).ok());
  auto schema = Reflect(*conn, "u");
  ASSERT_TRUE(schema.ok()) << schema.status().ToString();
  EXPECT_EQ(schema->primary_key, std::vector<std::string>({"code", "region"}));
  EXPECT_EQ(schema->key_index, "u_code_region");
  EXPECT_EQ(schema->refused_key_indexes,
            std::vector<std::string>({"unique index \"u_note\" has the nullable column \"note\""}));
  auto quote = [](std::string_view v) { return "'" + std::string(v) + "'"; };
  PageQuery q;
  q.columns = {"code", "region", "note"};
  q.order_by = schema->primary_key;
  q.after = Cursor{std::string("c50"), int64_t{40}};
  q.limit = 100;
  auto params = PageParameters(*schema, q, quote);
  ASSERT_TRUE(params.ok());
  auto sql = BuildPageSql(*schema, q, &*params);
  ASSERT_TRUE(sql.ok());
  auto plan = QueryText(*conn, "EXPLAIN " + *sql);
  ASSERT_EQ(plan.size(), 1u);
  EXPECT_EQ(plan[0][3].value_or(""), "range") << *sql;
  EXPECT_EQ(plan[0][5].value_or(""), "u_code_region") << *sql;
  EXPECT_EQ(plan[0][9].value_or("").find("filesort"), std::string::npos) << *sql;
  auto page = Pull(*conn, *schema, q);
  ASSERT_TRUE(page.ok()) << page.status().ToString();
  ASSERT_EQ(page->rows(), 100u);
  EXPECT_EQ(page->bytes(page->at(0, 0)), "c50");
  EXPECT_EQ(page->at(0, 1).i, 41);
}

std::string Base64Decode(std::string_view in) {
  static const std::string chars =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  int val = 0, bits = -8;
  for (char c : in) {
    size_t pos = chars.find(c);
    if (pos == std::string::npos) break;
    val = (val << 6) + static_cast<int>(pos);
    bits += 6;
    if (bits >= 0) {
      out.push_back(static_cast<char>((val >> bits) & 0xff));
      bits -= 8;
    }
  }
  return out;
}

std::string Replace(std::string s, const std::string& from, const std::string& to) {
  for (size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size())) {
    s.replace(at, from.size(), to);
  }
  return s;
}

// siphon's form of a value, written as the test expects it.
struct Expected {
  ValueType type = ValueType::kNull;
  std::string bytes;
  int64_t i = 0;
  double d = 0;
};

void ExpectCell(const RowBatch& batch, size_t row, size_t col, const Expected& e,
                const std::string& what) {
  const Cell& cell = batch.at(row, col);
  ASSERT_EQ(cell.type, e.type) << what;
  if (e.type == ValueType::kInt) {
    EXPECT_EQ(cell.i, e.i) << what;
  } else if (e.type == ValueType::kReal) {
    EXPECT_NEAR(cell.d, e.d, std::abs(e.d) * 1e-15) << what;
  } else if (e.type == ValueType::kText || e.type == ValueType::kBlob) {
    EXPECT_EQ(batch.bytes(cell), e.bytes) << what;
  }
}

// Airbyte's MySQL datatype corpus: every literal inserts and arrives in siphon's form.
TEST_F(MysqlAdapterTest, AirbyteTypeCorpusRoundTrips) {
  std::ifstream file(SIPHON_SOURCE_DIR "/../shared/testdata/airbyte-types/mysql.json");
  if (!file) file.open("/work/shared/testdata/airbyte-types/mysql.json");
  ASSERT_TRUE(file) << "airbyte-types/mysql.json not found";
  nlohmann::json corpus = nlohmann::json::parse(file);
  std::mt19937 rng(42);
  std::string alnum50;
  const char* alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  for (int i = 0; i < 50; ++i) alnum50.push_back(alphabet[rng() % 62]);
  // A PNG signature and header chunk, then bytes that are not valid UTF-8.
  const std::string png_base64 =
      "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8/5+hHgAHggJ/"
      "PchI7wAAAABJRU5ErkJggg==";
  test::MyDb db;
  auto conn = NewConnection(db);
  ASSERT_TRUE(Connect(*conn).ok());
  int n = 0, checked = 0;
  for (const auto& entry : corpus) {
    if (!entry.value("valid_here", false)) continue;
    std::string type = entry["full_type"].is_null() ? entry["source_type"].get<std::string>()
                                                    : entry["full_type"].get<std::string>();
    std::string airbyte = entry["airbyte_type"];
    std::string table = "c" + std::to_string(n++);
    std::string lower = type;
    for (char& ch : lower) ch = static_cast<char>(tolower(ch));
    db.Exec("CREATE TABLE " + table + " (id INT AUTO_INCREMENT PRIMARY KEY, v " + type + ")");
    const auto& values = entry["insert_values"];
    const auto& expected = entry["expected"];
    ASSERT_EQ(values.size(), expected.size()) << type;
    for (const auto& v : values) {
      std::string literal = Replace(Replace(v.get<std::string>(), "{{RANDOM_ALNUM_50}}", alnum50),
                                    "{{TEST_PNG_BASE64}}", png_base64);
      db.Exec("SET STATEMENT sql_mode = '', time_zone = '+00:00' FOR INSERT INTO " + table +
              " (v) VALUES (" + literal + ")");
    }
    auto schema = Reflect(*conn, table);
    ASSERT_TRUE(schema.ok()) << schema.status().ToString();
    PageQuery q;
    q.columns = {"id", "v"};
    q.order_by = {"id"};
    auto batch = Pull(*conn, *schema, q);
    ASSERT_TRUE(batch.ok()) << batch.status().ToString();
    ASSERT_EQ(batch->rows(), values.size()) << type;
    for (size_t r = 0; r < values.size(); ++r) {
      std::string what = type + " <- " + values[r].get<std::string>().substr(0, 60);
      Expected e;
      if (!expected[r].is_null()) {
        std::string x =
            Replace(Replace(expected[r].get<std::string>(), "{{RANDOM_ALNUM_50}}", alnum50),
                    "{{TEST_PNG_BASE64}}", png_base64);
        if (airbyte == "boolean") {
          e = {ValueType::kInt, "", x == "true" ? 1 : 0};
        } else if (airbyte == "string(base64)" && lower.rfind("bit", 0) == 0) {
          std::string bytes = Base64Decode(x);
          int64_t value = 0;
          for (unsigned char ch : bytes) value = (value << 8) | ch;
          e = {ValueType::kInt, "", value};
        } else if (airbyte == "string(base64)") {
          e = {ValueType::kBlob, Base64Decode(x)};
        } else if (lower.rfind("decimal", 0) == 0) {
          e = {ValueType::kText, x};  // exactly as MariaDB prints it
        } else if (airbyte == "integer") {
          e = {ValueType::kInt, "", std::stoll(x)};
        } else if (airbyte == "number") {
          e = {ValueType::kReal, "", 0, std::stod(x)};
        } else if (airbyte == "string(timestamp_with_timezone)") {
          // TIMESTAMP(0): siphon prints the precision the column has, in UTC with Z.
          e = {ValueType::kText, Replace(x, ".000000Z", "Z")};
        } else if (airbyte == "string(time_without_timezone)") {
          // TIME as MariaDB prints it, sign included.
          std::string lit = values[r];
          e = {ValueType::kText, lit.substr(1, lit.size() - 2)};
        } else {
          e = {ValueType::kText, x};
        }
      }
      ExpectCell(*batch, r, 1, e, what);
      ++checked;
    }
  }
  EXPECT_GT(checked, 120);
}

TEST_F(MysqlAdapterTest, EdgeValuesRoundTrip) {
  test::MyDb db;
  db.Exec(
      "CREATE TABLE x (id INT PRIMARY KEY, u BIGINT UNSIGNED, d DECIMAL(40,12),"
      " dt DATETIME(6), ts TIMESTAMP(6) NULL, s VARCHAR(50) CHARACTER SET utf8mb4,"
      " b BLOB, vb VARBINARY(10), z DATE, bits BIT(64), y YEAR, f FLOAT, j JSON)");
  db.Exec(
      "SET STATEMENT sql_mode = '', time_zone = '+00:00' FOR INSERT INTO x VALUES"
      " (1, 18446744073709551615, 1234567890123456789012345678.123456789012,"
      "  '2024-02-29 23:59:59.000001', '2024-02-29 23:59:59.999999', '🦄 emoji ünï',"
      "  '', x'00ff00', '0000-00-00', "
      "b'1111111111111111111111111111111111111111111111111111111111111111',"
      "  2155, 3.5, '{\"k\": \"🦄\"}'),"
      " (2, 9223372036854775807, -0.000000000001, '1000-01-01 00:00:00', NULL, '', NULL,"
      "  '', '2024-01-31', b'101', 1901, -1e-3, NULL),"
      " (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)");
  auto conn = NewConnection(db);
  ASSERT_TRUE(Connect(*conn).ok());
  auto schema = Reflect(*conn, "x");
  ASSERT_TRUE(schema.ok());
  PageQuery q;
  q.order_by = {"id"};
  auto batch = Pull(*conn, *schema, q);
  ASSERT_TRUE(batch.ok()) << batch.status().ToString();
  ASSERT_EQ(batch->rows(), 3u);
  using V = ValueType;
  ExpectCell(*batch, 0, 1, {V::kText, "18446744073709551615"}, "u max");
  ExpectCell(*batch, 0, 2, {V::kText, "1234567890123456789012345678.123456789012"}, "decimal");
  ExpectCell(*batch, 0, 3, {V::kText, "2024-02-29T23:59:59.000001"}, "datetime(6)");
  ExpectCell(*batch, 0, 4, {V::kText, "2024-02-29T23:59:59.999999Z"}, "timestamp(6)");
  ExpectCell(*batch, 0, 5, {V::kText, "🦄 emoji ünï"}, "emoji");
  ExpectCell(*batch, 0, 6, {V::kBlob, ""}, "empty blob");
  ExpectCell(*batch, 0, 7, {V::kBlob, std::string("\x00\xff\x00", 3)}, "varbinary");
  ExpectCell(*batch, 0, 8, {V::kNull, ""}, "zero date");
  ExpectCell(*batch, 0, 9, {V::kText, "18446744073709551615"}, "bit(64) all ones");
  ExpectCell(*batch, 0, 10, {V::kInt, "", 2155}, "year");
  ExpectCell(*batch, 0, 11, {V::kReal, "", 0, 3.5}, "float");
  ExpectCell(*batch, 0, 12, {V::kText, "{\"k\": \"🦄\"}"}, "json");
  ExpectCell(*batch, 1, 1, {V::kInt, "", INT64_MAX}, "u fits");
  ExpectCell(*batch, 1, 2, {V::kText, "-0.000000000001"}, "small decimal");
  ExpectCell(*batch, 1, 3, {V::kText, "1000-01-01T00:00:00.000000"}, "datetime(6) min");
  ExpectCell(*batch, 1, 4, {V::kNull, ""}, "null timestamp");
  ExpectCell(*batch, 1, 5, {V::kText, ""}, "empty string");
  ExpectCell(*batch, 1, 7, {V::kBlob, ""}, "empty varbinary");
  ExpectCell(*batch, 1, 8, {V::kText, "2024-01-31"}, "date");
  ExpectCell(*batch, 1, 9, {V::kInt, "", 5}, "bit");
  ExpectCell(*batch, 1, 11, {V::kReal, "", 0, -1e-3}, "float neg");
  for (size_t c = 1; c < batch->columns(); ++c) ExpectCell(*batch, 2, c, {V::kNull, ""}, "nulls");
  // A wide unsigned value works as a cursor: bound as an exact number.
  q.columns = {"id", "u"};
  q.order_by = {"u"};
  q.after = Cursor{std::string("9223372036854775807")};
  db.Exec("UPDATE x SET u = 5 WHERE id = 3");
  auto after = Pull(*conn, *schema, q);
  ASSERT_TRUE(after.ok()) << after.status().ToString();
  ASSERT_EQ(after->rows(), 1u);
  EXPECT_EQ(after->at(0, 0).i, 1);
}

// The text protocol prints a FLOAT with six significant digits (1234567 as '1234570'), so a
// FLOAT column is read as a double and kept as the shortest decimal that is the same float.
TEST_F(MysqlAdapterTest, FloatValuesArriveAsStoredNotAsPrinted) {
  test::MyDb db;
  db.Exec("CREATE TABLE f (id INT PRIMARY KEY, f FLOAT, fs FLOAT(10,4), fu FLOAT UNSIGNED)");
  db.Exec(
      "INSERT INTO f VALUES (1, 1234567, 123456.125, 16777216), (2, 3.1415927, -1.5, 0.1),"
      " (3, -3.40282e38, 0, 1.17549435e-38), (4, NULL, NULL, NULL)");
  auto conn = NewConnection(db);
  ASSERT_TRUE(Connect(*conn).ok());
  auto table = Reflect(*conn, "f");
  ASSERT_TRUE(table.ok()) << table.status().ToString();
  auto query = ReflectQuery(*conn, "SELECT id, f, fs, fu FROM f");
  ASSERT_TRUE(query.ok()) << query.status().ToString();
  using V = ValueType;
  for (const TableSchema* schema : {&*table, &*query}) {
    PageQuery q;
    q.order_by = {"id"};
    auto batch = Pull(*conn, *schema, q);
    ASSERT_TRUE(batch.ok()) << batch.status().ToString();
    ASSERT_EQ(batch->rows(), 4u);
    const std::string what = schema->qualified_name + ": ";
    // Compared exactly: each is the double the float's shortest decimal reads as.
    auto real = [&](size_t row, size_t col, double want) {
      const Cell& cell = batch->at(row, col);
      ASSERT_EQ(cell.type, V::kReal) << what << row << "," << col;
      EXPECT_EQ(cell.d, want) << what << row << "," << col;
    };
    real(0, 1, 1234567);
    real(0, 2, 123456.125);
    real(0, 3, 16777216);
    real(1, 1, 3.1415927);
    real(1, 2, -1.5);
    real(1, 3, 0.1);
    real(2, 1, -3.40282e38);
    real(2, 2, 0);
    real(2, 3, 1.1754944e-38);
    for (size_t c = 1; c < 4; ++c) ExpectCell(*batch, 3, c, {V::kNull, ""}, what + "null");
  }
}

// MySQL's own quoting names a table whose name holds a dot: `from = "`a.b`"`.
TEST_F(MysqlAdapterTest, ABacktickQuotedTableNameMayHoldADot) {
  test::MyDb db;
  db.Exec(
      "CREATE TABLE `a.b` (id INT PRIMARY KEY, v VARCHAR(5)); INSERT INTO `a.b` VALUES (1, 'x')");
  auto conn = NewConnection(db);
  ASSERT_TRUE(Connect(*conn).ok());
  for (const std::string& name : {std::string("`a.b`"), db.name() + ".`a.b`"}) {
    auto schema = Reflect(*conn, name);
    ASSERT_TRUE(schema.ok()) << name << ": " << schema.status().ToString();
    EXPECT_EQ(schema->primary_key, std::vector<std::string>{"id"});
    PageQuery q;
    q.order_by = {"id"};
    auto batch = Pull(*conn, *schema, q);
    ASSERT_TRUE(batch.ok()) << name << ": " << batch.status().ToString();
    ASSERT_EQ(batch->rows(), 1u);
    ExpectCell(*batch, 0, 1, {ValueType::kText, "x"}, name);
  }
}

TEST_F(MysqlAdapterTest, TextCursorsAreEscaped) {
  test::MyDb db;
  db.Exec("CREATE TABLE s (code VARCHAR(40) COLLATE utf8mb4_bin PRIMARY KEY)");
  db.Exec("INSERT INTO s VALUES ('a'), ('it''s'), ('back\\\\slash'), ('q\"'), ('zz'), ('🦄')");
  auto conn = NewConnection(db);
  ASSERT_TRUE(Connect(*conn).ok());
  auto schema = Reflect(*conn, "s");
  ASSERT_TRUE(schema.ok());
  PageQuery q;
  q.columns = {"code"};
  q.order_by = {"code"};
  q.limit = 1;
  std::vector<std::string> seen;
  for (;;) {
    auto batch = Pull(*conn, *schema, q);
    ASSERT_TRUE(batch.ok()) << batch.status().ToString();
    if (batch->rows() == 0) break;
    seen.emplace_back(batch->bytes(batch->at(0, 0)));
    q.after = Cursor{seen.back()};
  }
  EXPECT_EQ(seen, (std::vector<std::string>{"a", "back\\slash", "it's", "q\"", "zz", "🦄"}));
}

// A slow query on one connection (SLEEP in a view) does not hold up another connection's
// pages on the same loop: the I/O is non-blocking.
TEST_F(MysqlAdapterTest, SlowQueryDoesNotBlockTheLoop) {
  test::MyDb db;
  db.Exec("CREATE TABLE t (id INT PRIMARY KEY, v INT)");
  db.Exec("INSERT INTO t SELECT seq, seq FROM seq_1_to_100");
  db.Exec("CREATE VIEW slow AS SELECT id, v FROM t WHERE id = 1 AND SLEEP(2) = 0");
  auto slow = NewConnection(db);
  auto fast = NewConnection(db);
  ASSERT_TRUE(Connect(*slow).ok());
  ASSERT_TRUE(Connect(*fast).ok());
  auto slow_schema = Reflect(*slow, "slow");
  auto fast_schema = Reflect(*fast, "t");
  ASSERT_TRUE(slow_schema.ok() && fast_schema.ok());
  PageQuery q;
  q.columns = {"id", "v"};
  q.order_by = {"id"};
  q.limit = 10;
  auto start = Clock::now();
  std::optional<Clock::time_point> slow_done, fast_done;
  slow->Pull(*slow_schema, q, [&](Result<RowBatch> b) {
    EXPECT_TRUE(b.ok()) << b.status().ToString();
    slow_done = Clock::now();
  });
  int fast_pages = 0;
  PageQuery fq = q;
  std::function<void(Result<RowBatch>)> next = [&](Result<RowBatch> b) {
    ASSERT_TRUE(b.ok()) << b.status().ToString();
    if (b->rows() == 0) {
      fast_done = Clock::now();
      return;
    }
    ++fast_pages;
    fq.after = Cursor{CursorValueOf(*b, b->rows() - 1, 0)};
    fast->Pull(*fast_schema, fq, next);
  };
  fast->Pull(*fast_schema, fq, next);
  while (!slow_done || !fast_done) uv_run(&loop_, UV_RUN_ONCE);
  EXPECT_EQ(fast_pages, 10);
  EXPECT_LT(*fast_done, *slow_done);
  EXPECT_LT(*fast_done - start, std::chrono::milliseconds(1000));
  EXPECT_GE(*slow_done - start, std::chrono::milliseconds(1900));
}

// Destroying a connection with a query in flight: no callback, no crash, handles closed
// (TearDown checks that the loop closes cleanly).
TEST_F(MysqlAdapterTest, DestroyWithAQueryInFlight) {
  test::MyDb db;
  db.Exec("CREATE TABLE t (id INT PRIMARY KEY)");
  db.Exec("INSERT INTO t VALUES (1)");
  db.Exec("CREATE VIEW slow AS SELECT id FROM t WHERE SLEEP(3) = 0");
  auto conn = NewConnection(db);
  ASSERT_TRUE(Connect(*conn).ok());
  auto schema = Reflect(*conn, "slow");
  ASSERT_TRUE(schema.ok());
  PageQuery q;
  q.columns = {"id"};
  q.order_by = {"id"};
  bool called = false;
  conn->Pull(*schema, q, [&](Result<RowBatch>) { called = true; });
  uv_timer_t timer;
  uv_timer_init(&loop_, &timer);
  timer.data = &conn;
  uv_timer_start(
      &timer,
      [](uv_timer_t* t) {
        static_cast<std::unique_ptr<MysqlConnection>*>(t->data)->reset();
        uv_close(reinterpret_cast<uv_handle_t*>(t), nullptr);
      },
      300, 0);
  auto start = Clock::now();
  uv_run(&loop_, UV_RUN_DEFAULT);
  EXPECT_FALSE(called);
  EXPECT_LT(Clock::now() - start, std::chrono::milliseconds(2000));
  // Close() instead: the callback runs once, cancelled.
  auto again = NewConnection(db);
  ASSERT_TRUE(Connect(*again).ok());
  Status closed;
  int calls = 0;
  again->Pull(*schema, q, [&](Result<RowBatch> b) {
    ++calls;
    closed = b.status();
  });
  uv_run(&loop_, UV_RUN_NOWAIT);
  again->Close();
  uv_run(&loop_, UV_RUN_DEFAULT);
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(closed.kind(), ErrorKind::kCancelled);
  // And it reconnects.
  ASSERT_TRUE(Connect(*again).ok());
  auto t = Reflect(*again, "t");
  EXPECT_TRUE(t.ok());
}

// The server drops the session (KILL, like a restart): the next page fails as kConnect
// (transient), and Connect opens a fresh session that works.
TEST_F(MysqlAdapterTest, KilledSessionIsAConnectErrorAndReconnects) {
  test::MyDb db;
  db.Exec("CREATE TABLE t (id INT PRIMARY KEY)");
  db.Exec("INSERT INTO t VALUES (1), (2)");
  auto conn = NewConnection(db);
  ASSERT_TRUE(Connect(*conn).ok());
  auto schema = Reflect(*conn, "t");
  ASSERT_TRUE(schema.ok());
  auto id = QueryText(*conn, "SELECT CONNECTION_ID()");
  ASSERT_EQ(id.size(), 1u);
  db.Exec("KILL " + *id[0][0]);
  PageQuery q;
  q.columns = {"id"};
  q.order_by = {"id"};
  auto page = Pull(*conn, *schema, q);
  ASSERT_FALSE(page.ok());
  EXPECT_EQ(page.status().kind(), ErrorKind::kConnect) << page.status().ToString();
  EXPECT_TRUE(page.status().transient());
  ASSERT_TRUE(Connect(*conn).ok());
  page = Pull(*conn, *schema, q);
  ASSERT_TRUE(page.ok()) << page.status().ToString();
  EXPECT_EQ(page->rows(), 2u);
}

// A session the server ends while siphon is between statements (KILL, wait_timeout, a
// restart) is noticed when it happens: the next run's Connect opens a fresh session instead
// of its first statement failing. A quiet session is left alone.
TEST_F(MysqlAdapterTest, IdleSessionEndedByTheServerIsDroppedAtOnce) {
  test::MyDb db;
  db.Exec("CREATE TABLE t (id INT PRIMARY KEY)");
  db.Exec("INSERT INTO t VALUES (1), (2)");
  auto conn = NewConnection(db);
  ASSERT_TRUE(Connect(*conn).ok());
  auto schema = Reflect(*conn, "t");
  ASSERT_TRUE(schema.ok()) << schema.status().ToString();
  auto id = QueryText(*conn, "SELECT CONNECTION_ID()");
  ASSERT_EQ(id.size(), 1u);
  test::RunLoopFor(&loop_, 300);  // the loop runs on, as between runs
  ASSERT_TRUE(Connect(*conn).ok());
  auto same = QueryText(*conn, "SELECT CONNECTION_ID()");
  ASSERT_EQ(same.size(), 1u);
  EXPECT_EQ(*same[0][0], *id[0][0]) << "a quiet session was dropped";
  db.Exec("KILL " + *id[0][0]);
  test::RunLoopFor(&loop_, 300);  // the loop runs on, as between runs
  ASSERT_TRUE(Connect(*conn).ok());
  PageQuery q;
  q.columns = {"id"};
  q.order_by = {"id"};
  auto page = Pull(*conn, *schema, q);
  ASSERT_TRUE(page.ok()) << page.status().ToString();
  EXPECT_EQ(page->rows(), 2u);
  auto fresh = QueryText(*conn, "SELECT CONNECTION_ID()");
  ASSERT_EQ(fresh.size(), 1u);
  EXPECT_NE(*fresh[0][0], *id[0][0]);
  // The idle connection does not keep the loop running.
  EXPECT_EQ(uv_run(&loop_, UV_RUN_NOWAIT), 0);
}

// Once a table has asked for a safe horizon, the next reflection brings one along: an
// incremental run costs two statements on the source, not three, and the horizon still stops
// at another session's open write transaction.
TEST_F(MysqlAdapterTest, TheHorizonComesWithTheNextReflection) {
  test::MyDb db;
  db.Exec("CREATE TABLE h (id INT PRIMARY KEY, updated_at TIMESTAMP(6) NOT NULL)");
  auto conn = NewConnection(db);
  ASSERT_TRUE(Connect(*conn).ok());
  auto horizon = [&](const TableSchema& t) {
    return Await<Result<std::optional<CursorValue>>>(
        [&](auto done) { conn->SafeHorizon(t, "updated_at", std::nullopt, done); });
  };
  auto selects = [&] {
    auto r = QueryText(*conn, "SHOW SESSION STATUS LIKE 'Com_select'");
    return r.size() == 1 && r[0].size() == 2 && r[0][1] ? std::stoll(*r[0][1]) : -1;
  };
  auto t = Reflect(*conn, "h");
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  auto first = horizon(*t);  // a statement of its own
  ASSERT_TRUE(first.ok() && first->has_value()) << first.status().ToString();

  const long long none = selects() - selects();  // what asking costs by itself
  // Another table's run a moment later: the horizon just read covers the whole source, so
  // it answers without a statement (a few reads a second for 100 tables, not 100).
  db.Exec("CREATE TABLE h2 (id INT PRIMARY KEY, updated_at TIMESTAMP(6) NOT NULL)");
  auto t2 = Reflect(*conn, "h2");
  ASSERT_TRUE(t2.ok()) << t2.status().ToString();
  const long long shared = selects();
  auto other = horizon(*t2);
  EXPECT_EQ(selects() - shared + none, 0) << "the horizon took a statement of its own";
  ASSERT_TRUE(other.ok() && other->has_value()) << other.status().ToString();
  EXPECT_EQ(**other, **first);

  // This session opens a write transaction and keeps it open.
  db.Exec("SET time_zone = '+00:00'");
  db.Exec("BEGIN");
  db.Exec("INSERT INTO h VALUES (1, NOW(6))");
  // INNODB_TRX is a snapshot the server refreshes at most every 100 ms; the horizon read
  // above is no longer recent enough to share after 0.5 s.
  std::this_thread::sleep_for(std::chrono::milliseconds(600));
  const long long before = selects();
  t = Reflect(*conn, "h");
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  auto second = horizon(*t);
  const long long after = selects();
  std::string started = db.Scalar(
      "SELECT DATE_FORMAT(CONVERT_TZ(trx_started, 'SYSTEM', '+00:00'), '%Y-%m-%d %H:%i:%s') "
      "FROM information_schema.INNODB_TRX "
      "WHERE trx_mysql_thread_id = CONNECTION_ID()");
  db.Exec("COMMIT");
  EXPECT_EQ(after - before + none, 1) << "the horizon took a statement of its own";
  ASSERT_TRUE(second.ok() && second->has_value()) << second.status().ToString();
  std::string at = std::get<std::string>(**second);
  ASSERT_GE(at.size(), 19u);
  at[10] = ' ';
  EXPECT_EQ(at.substr(0, 19), started) << std::get<std::string>(**second);

  // Asked again once the horizon is 0.5 s old, it is a statement of its own.
  std::this_thread::sleep_for(std::chrono::milliseconds(600));
  const long long again = selects();
  auto third = horizon(*t);
  ASSERT_TRUE(third.ok() && third->has_value()) << third.status().ToString();
  EXPECT_EQ(selects() - again + none, 1);
}

// PROCESS revoked from a user whose reflections bring the horizon along: the reflection
// still works, and the table goes on with the `settle` horizon (NOW() minus 5 s).
TEST_F(MysqlAdapterTest, AReflectionOutlivesARevokedProcessPrivilege) {
  test::MyDb db;
  const std::string user =
      "pr_" + db.name().substr(db.name().size() > 20 ? db.name().size() - 20 : 0);
  const std::string who = "'" + user + "'@'127.0.0.1'";
  db.Exec("CREATE TABLE h (id INT PRIMARY KEY, updated_at TIMESTAMP(6) NOT NULL)");
  db.Exec("DROP USER IF EXISTS " + who + "; CREATE USER " + who +
          " IDENTIFIED BY 'pr-pw'; GRANT SELECT ON `" + db.name() + "`.* TO " + who +
          "; GRANT PROCESS ON *.* TO " + who);
  auto conn = NewConnection(db, "pr-pw", user);
  auto horizon = [&](const TableSchema& t) {
    return Await<Result<std::optional<CursorValue>>>(
        [&](auto done) { conn->SafeHorizon(t, "updated_at", std::nullopt, done); });
  };
  ASSERT_TRUE(Connect(*conn).ok());
  auto t = Reflect(*conn, "h");
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  auto h = horizon(*t);
  ASSERT_TRUE(h.ok() && h->has_value()) << h.status().ToString();
  // A session keeps the global privileges it started with: the next one lacks PROCESS.
  db.Exec("REVOKE PROCESS ON *.* FROM " + who);
  conn->Close();
  ASSERT_TRUE(Connect(*conn).ok());
  // The horizon read above stands for the source's runs for 0.5 s, then is read again.
  std::this_thread::sleep_for(std::chrono::milliseconds(600));
  t = Reflect(*conn, "h");
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  h = horizon(*t);
  ASSERT_TRUE(h.ok()) << h.status().ToString();
  ASSERT_TRUE(h->has_value());
  const auto* at = std::get_if<std::string>(&**h);
  ASSERT_NE(at, nullptr);
  // Compared on the server: 5 s (give or take the round trip) before its NOW(6).
  EXPECT_EQ(db.Scalar("SELECT TIMESTAMPDIFF(SECOND, '" + *at +
                      "', UTC_TIMESTAMP(6)) BETWEEN 4 "
                      "AND 6"),
            "1")
      << *at;
  db.Exec("DROP USER " + who);
}

// One statement brings `pages` pages, each handed over whole and in order as the row after it
// arrives; the last is full when the statement stopped at its limit (rows may remain), and a
// statement that finds fewer rows hands over what it found as its last page.
TEST_F(MysqlAdapterTest, OneStatementBringsSeveralPagesInOrder) {
  test::MyDb db;
  db.Exec("CREATE TABLE e (id BIGINT PRIMARY KEY, v INT NOT NULL)");
  db.Exec("INSERT INTO e SELECT seq, seq * 10 FROM seq_1_to_28");
  auto conn = NewConnection(db);
  ASSERT_TRUE(Connect(*conn).ok());
  auto schema = Reflect(*conn, "e");
  ASSERT_TRUE(schema.ok()) << schema.status().ToString();
  PageQuery q;
  q.columns = {"id", "v"};
  q.order_by = {"id"};
  ExpectSeveralPagesInOrder(*conn, *schema, q);
  // The first pages too, and each value decoded.
  q.limit = 4;
  q.pages = 3;
  auto pages = PullPages(*conn, *schema, q);
  ASSERT_EQ(pages.size(), 3u);
  for (size_t i = 0; i < pages.size(); ++i) {
    ASSERT_TRUE(pages[i].page.ok()) << pages[i].page.status().ToString();
    EXPECT_EQ(pages[i].last, i == 2);
    ASSERT_EQ(pages[i].page->rows(), 4u);
    for (size_t r = 0; r < 4; ++r) {
      EXPECT_EQ(pages[i].page->at(r, 0).i, static_cast<int64_t>(i * 4 + r + 1));
      EXPECT_EQ(pages[i].page->at(r, 1).i, pages[i].page->at(r, 0).i * 10);
    }
  }
  // Pull brings one page whatever `pages` says.
  q.after = Cursor{int64_t{0}};
  auto one = Pull(*conn, *schema, q);
  ASSERT_TRUE(one.ok()) << one.status().ToString();
  EXPECT_EQ(one->rows(), 4u);
}

// A page is handed over as soon as the row after it arrives, before the rows after that are
// read: the server may send faster than they are decoded, and the page must not wait for the
// statement's end (its transform and write overlap the reading of the next). So a Close from
// its callback leaves no later page to hand over, however many the server has sent by then.
TEST_F(MysqlAdapterTest, APageIsHandedOverBeforeTheRowsAfterItAreRead) {
  test::MyDb db;
  db.Exec("CREATE TABLE e (id BIGINT PRIMARY KEY, v VARCHAR(100) NOT NULL)");
  db.Exec("INSERT INTO e SELECT seq, REPEAT('x', 100) FROM seq_1_to_4000");
  auto conn = NewConnection(db);
  ASSERT_TRUE(Connect(*conn).ok());
  auto schema = Reflect(*conn, "e");
  ASSERT_TRUE(schema.ok()) << schema.status().ToString();
  PageQuery q;
  q.columns = {"id", "v"};
  q.order_by = {"id"};
  q.limit = 10;
  q.pages = 400;
  std::vector<std::pair<Result<RowBatch>, bool>> pages;
  bool done = false;
  conn->PullPages(*schema, q, [&](Result<RowBatch> page, bool last) {
    if (pages.empty()) conn->Close();
    pages.emplace_back(std::move(page), last);
    done = last;
  });
  while (!done && uv_run(&loop_, UV_RUN_ONCE) != 0) {
  }
  ASSERT_EQ(pages.size(), 2u) << "pages handed over after the Close";
  ASSERT_TRUE(pages[0].first.ok()) << pages[0].first.status().ToString();
  EXPECT_EQ(pages[0].first->rows(), 10u);
  EXPECT_FALSE(pages[0].second);
  ASSERT_FALSE(pages[1].first.ok());
  EXPECT_EQ(pages[1].first.status().kind(), ErrorKind::kCancelled);
  EXPECT_TRUE(pages[1].second);
}

// Each page of a statement is checked as a page of its own: a value whose bytes are no
// character fails its page (the pages before it are handed over, none after it), and a page
// ending on a zero date carries the date as the server printed it, so the next page continues
// from there.
TEST_F(MysqlAdapterTest, EachPageOfAStatementIsCheckedAsItsOwn) {
  test::MyDb db;
  db.Exec(R"sql(
    SET SESSION sql_mode = '';
    CREATE TABLE e (id INT PRIMARY KEY, at DATETIME NOT NULL,
                    s VARCHAR(20) CHARACTER SET cp1251 NOT NULL);
    INSERT INTO e SELECT seq, '2024-01-01 00:00:00', 'ok' FROM seq_1_to_12;
    UPDATE e SET at = '0000-00-00 00:00:00' WHERE id = 4;
  )sql");
  auto conn = NewConnection(db);
  ASSERT_TRUE(Connect(*conn).ok());
  auto schema = Reflect(*conn, "e");
  ASSERT_TRUE(schema.ok()) << schema.status().ToString();
  PageQuery q;
  q.columns = {"id", "at", "s"};
  q.order_by = {"id"};
  q.limit = 4;
  q.pages = 3;
  auto pages = PullPages(*conn, *schema, q);
  ASSERT_EQ(pages.size(), 3u);
  for (auto& p : pages) ASSERT_TRUE(p.page.ok()) << p.page.status().ToString();
  using Texts = std::vector<std::pair<size_t, std::string>>;
  EXPECT_EQ(pages[0].page->last_row_source_text, (Texts{{1, "0000-00-00 00:00:00"}}));
  EXPECT_EQ(static_cast<int>(pages[0].page->at(3, 1).type), static_cast<int>(ValueType::kNull));
  EXPECT_EQ(pages[1].page->last_row_source_text, Texts{});
  EXPECT_EQ(pages[2].page->last_row_source_text, Texts{});

  db.Exec("UPDATE e SET s = CONCAT('a', X'98', 'b') WHERE id = 7");
  pages = PullPages(*conn, *schema, q);
  ASSERT_EQ(pages.size(), 2u);
  ASSERT_TRUE(pages[0].page.ok()) << pages[0].page.status().ToString();
  EXPECT_FALSE(pages[0].last);
  EXPECT_EQ(pages[0].page->rows(), 4u);
  EXPECT_TRUE(pages[1].last);
  ASSERT_FALSE(pages[1].page.ok());
  EXPECT_EQ(pages[1].page.status().kind(), ErrorKind::kType);
  EXPECT_NE(pages[1].page.status().message().find(
                "column \"s\" in the row where [\"id\"] = [7] holds bytes that are no cp1251 "
                "character (its bytes: 619862)"),
            std::string::npos)
      << pages[1].page.status().ToString();
  // The connection is idle again, and the page before the value still reads.
  q.pages = 1;
  auto first = Pull(*conn, *schema, q);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_EQ(first->rows(), 4u);
}

TEST_F(MysqlAdapterTest, DefinitionConnectsThroughTheSourceInterface) {
  test::MyDb db;
  db.Exec("CREATE TABLE t (id INT PRIMARY KEY)");
  const auto& env = test::Servers();
  std::string dsn = "mysql://" + env.mysql_user + ":" + env.mysql_password + "@" + env.mysql_host +
                    ":" + std::to_string(env.mysql_port) + "/" + db.name();
  auto source = Definition().make({{"dsn", dsn}});
  ASSERT_TRUE(source.ok()) << source.status().ToString();
  if (!env.mysql_password.empty()) {
    EXPECT_EQ((*source)->Describe().find(env.mysql_password), std::string::npos);
  }
  auto conn = (*source)->NewConnection(&loop_);
  ASSERT_TRUE(Connect(*conn).ok());
  auto schema = Reflect(*conn, "t");
  ASSERT_TRUE(schema.ok());
  PageQuery q;
  q.columns = {"id"};
  q.order_by = {"id"};
  q.after = Cursor{int64_t{0}};
  EXPECT_EQ(conn->PageSql(*schema, q),
            "SELECT `id` FROM `t` WHERE `id` > ? ORDER BY `id` LIMIT 5000");
}

}  // namespace
}  // namespace siphon::mysql

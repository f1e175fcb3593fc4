#include "adapters/mysql/mysql_sql.hpp"
#include "adapters/mysql/mysql_types.hpp"

#include <gtest/gtest.h>

namespace siphon::mysql {
namespace {

// A stand-in for the connection's escaping (backslash mode), enough to see where it applies.
std::string TestQuote(std::string_view v) {
  std::string out = "'";
  for (char c : v) {
    if (c == '\'' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  return out + "'";
}

TableSchema Orders() {
  TableSchema t;
  t.qualified_name = "shop.orders";
  t.columns = {
      {"id", "bigint(20)", ColumnType::kInteger, OrderKind::kNumber, false},
      {"updated_at", "datetime(6)", ColumnType::kText, OrderKind::kTime, false},
      {"code", "varchar(20)", ColumnType::kText, OrderKind::kText, false},
      {"big", "bigint(20) unsigned", ColumnType::kText, OrderKind::kNumber, false},
      {"we`ird", "int(11)", ColumnType::kInteger, OrderKind::kNumber, true},
  };
  t.primary_key = {"id"};
  return t;
}

TEST(MysqlSql, QuotesIdentifiers) {
  EXPECT_EQ(QuoteIdent("orders"), "`orders`");
  EXPECT_EQ(QuoteIdent("we`ird"), "`we``ird`");
  EXPECT_EQ(QuotedTable(SplitTableName("shop.orders")), "`shop`.`orders`");
  EXPECT_EQ(QuotedTable(SplitTableName("orders")), "`orders`");
}

// A name in backticks may hold a dot (or a backtick, doubled), as in MySQL itself.
TEST(MysqlSql, BacktickQuotedTableNamesMayHoldDots) {
  auto split = [](std::string_view name) {
    TableRef ref = SplitTableName(name);
    return ref.schema + "|" + ref.table;
  };
  EXPECT_EQ(split("`a.b`"), "|a.b");
  EXPECT_EQ(split("shop.`a.b`"), "shop|a.b");
  EXPECT_EQ(split("`my.shop`.`a.b`"), "my.shop|a.b");
  EXPECT_EQ(split("`shop`.orders"), "shop|orders");
  EXPECT_EQ(split("`we``ird`"), "|we`ird");
  EXPECT_EQ(split("`order`"), "|order");
  EXPECT_EQ(QuotedTable(SplitTableName("shop.`a.b`")), "`shop`.`a.b`");
  // Unquoted names split at the first dot, as before; text that is not a quoted name is
  // taken as it is.
  EXPECT_EQ(split("shop.orders"), "shop|orders");
  EXPECT_EQ(split("orders"), "|orders");
  EXPECT_EQ(split("`open"), "|`open");
}

TEST(MysqlSql, FirstPageHasNoPredicate) {
  PageQuery q;
  q.columns = {"id", "code", "we`ird"};
  q.order_by = {"updated_at", "id"};
  q.limit = 7;
  auto sql = BuildPageSql(Orders(), q, nullptr);
  ASSERT_TRUE(sql.ok()) << sql.status().ToString();
  EXPECT_EQ(*sql,
            "SELECT `id`, `code`, `we``ird` FROM `shop`.`orders` ORDER BY `updated_at`, `id` "
            "LIMIT 7");
}

TEST(MysqlSql, AFloatColumnIsReadAsADouble) {
  TableSchema t = Orders();
  t.columns.push_back({"f", "float(10,4) unsigned", ColumnType::kReal, OrderKind::kOther, true});
  t.columns.push_back({"d", "double", ColumnType::kReal, OrderKind::kNumber, true});
  PageQuery q;
  q.columns = {"id", "f", "d"};
  q.order_by = {"id"};
  EXPECT_EQ(*BuildPageSql(t, q, nullptr),
            "SELECT `id`, `f` + 0e0 AS `f`, `d` FROM `shop`.`orders` ORDER BY `id` LIMIT 5000");
  EXPECT_TRUE(IsSingleFloat("FLOAT"));
  EXPECT_FALSE(IsSingleFloat("double"));
}

// Rows that can share their order values (the order does not hold the whole primary key)
// are told apart by the server's collation keys of their text order columns, selected after
// the columns; ENUM and SET columns, numbers and times compare by their bytes.
TEST(MysqlSql, TextOrderColumnsThatCanTieGetCollationKeys) {
  TableSchema t = Orders();
  t.columns.push_back({"size", "enum('s','m')", ColumnType::kText, OrderKind::kText, false});
  t.columns.push_back({"lap", "time(3)", ColumnType::kText, OrderKind::kText, false});
  PageQuery q;
  q.columns = {"id", "code"};
  q.order_by = {"updated_at", "code", "size"};
  q.limit = 2;
  EXPECT_EQ(CollationKeyColumns(t, q), std::vector<std::string>{"code"});
  q.order_by = {"lap", "code"};
  EXPECT_EQ(CollationKeyColumns(t, q), std::vector<std::string>{"code"});
  q.order_by = {"updated_at", "code", "size"};
  EXPECT_EQ(*BuildPageSql(t, q, nullptr),
            "SELECT `id`, `code`, TRIM(TRAILING WEIGHT_STRING(CONCAT(LEFT(`code`, 0), ' ') LEVEL "
            "1) FROM WEIGHT_STRING(`code` LEVEL 1)) FROM `shop`.`orders` ORDER BY `updated_at`, "
            "`code`, `size` LIMIT 2");
  // Under the primary key, no two rows share their order values.
  q.order_by = {"code", "id"};
  EXPECT_TRUE(CollationKeyColumns(t, q).empty());
  t.primary_key.clear();
  EXPECT_EQ(CollationKeyColumns(t, q), std::vector<std::string>{"code"});
  q.order_by = {"id"};
  EXPECT_TRUE(CollationKeyColumns(t, q).empty());
}

TEST(MysqlSql, KeysetPredicateOneTwoThreeColumns) {
  PageQuery q;
  q.columns = {"id"};
  q.order_by = {"id"};
  q.after = Cursor{int64_t{5}};
  EXPECT_EQ(*BuildPageSql(Orders(), q, nullptr),
            "SELECT `id` FROM `shop`.`orders` WHERE `id` > ? ORDER BY `id` LIMIT 5000");
  q.order_by = {"updated_at", "id"};
  q.after = Cursor{std::string("2024-01-01T10:00:00.123456"), int64_t{5}};
  EXPECT_EQ(*BuildPageSql(Orders(), q, nullptr),
            "SELECT `id` FROM `shop`.`orders` WHERE `updated_at` >= ? AND (`updated_at` > ? OR "
            "`id` > ?) ORDER BY `updated_at`, `id` LIMIT 5000");
  q.order_by = {"updated_at", "code", "id"};
  q.after = Cursor{std::string("2024-01-01T10:00:00"), std::string("it's"), int64_t{5}};
  EXPECT_EQ(*BuildPageSql(Orders(), q, nullptr),
            "SELECT `id` FROM `shop`.`orders` WHERE `updated_at` >= ? AND (`updated_at` > ? OR "
            "(`code` >= ? AND (`code` > ? OR `id` > ?))) ORDER BY `updated_at`, `code`, `id` "
            "LIMIT 5000");
  auto params = PageParameters(Orders(), q, TestQuote);
  ASSERT_TRUE(params.ok()) << params.status().ToString();
  EXPECT_EQ(*params, (std::vector<std::string>{"'2024-01-01 10:00:00'", "'it\\'s'", "5"}));
  EXPECT_EQ(*BuildPageSql(Orders(), q, &*params),
            "SELECT `id` FROM `shop`.`orders` WHERE `updated_at` >= '2024-01-01 10:00:00' AND "
            "(`updated_at` > '2024-01-01 10:00:00' OR (`code` >= 'it\\'s' AND (`code` > "
            "'it\\'s' OR `id` > 5))) ORDER BY `updated_at`, `code`, `id` LIMIT 5000");
}

TEST(MysqlSql, LookbackStartsBehindTheWatermark) {
  PageQuery q;
  q.columns = {"id", "updated_at"};
  q.order_by = {"updated_at", "id"};
  q.after = Cursor{std::string("2024-01-01T10:00:00.123456Z"), int64_t{9}};
  q.lookback_seconds = 5.5;
  q.limit = 100;
  EXPECT_EQ(*BuildPageSql(Orders(), q, nullptr),
            "SELECT `id`, `updated_at` FROM `shop`.`orders` WHERE `updated_at` >= COALESCE(? - "
            "INTERVAL ? MICROSECOND, ?) ORDER BY `updated_at`, `id` LIMIT 100");
  auto params = PageParameters(Orders(), q, TestQuote);
  ASSERT_TRUE(params.ok());
  EXPECT_EQ(*params, (std::vector<std::string>{"'2024-01-01 10:00:00.123456'", "9", "5500000"}));
  EXPECT_EQ(*BuildPageSql(Orders(), q, &*params),
            "SELECT `id`, `updated_at` FROM `shop`.`orders` WHERE `updated_at` >= "
            "COALESCE('2024-01-01 10:00:00.123456' - INTERVAL 5500000 MICROSECOND, "
            "'2024-01-01 10:00:00.123456') ORDER BY `updated_at`, `id` LIMIT 100");
}

TEST(MysqlSql, TheSafeHorizonBoundsEveryPage) {
  PageQuery q;
  q.columns = {"id"};
  q.order_by = {"updated_at", "id"};
  q.before = CursorValue(std::string("2024-01-01T10:00:05.000000"));
  q.limit = 10;
  // First page of a table: only the bound.
  auto params = PageParameters(Orders(), q, TestQuote);
  ASSERT_TRUE(params.ok()) << params.status().ToString();
  EXPECT_EQ(*params, (std::vector<std::string>{"'2024-01-01 10:00:05.000000'"}));
  EXPECT_EQ(*BuildPageSql(Orders(), q, &*params),
            "SELECT `id` FROM `shop`.`orders` WHERE `updated_at` < '2024-01-01 10:00:05.000000' "
            "ORDER BY `updated_at`, `id` LIMIT 10");
  // After a cursor: the keyset predicate, then the bound as the last parameter.
  q.after = Cursor{std::string("2024-01-01T10:00:00Z"), int64_t{7}};
  params = PageParameters(Orders(), q, TestQuote);
  ASSERT_TRUE(params.ok());
  EXPECT_EQ(*params, (std::vector<std::string>{"'2024-01-01 10:00:00'", "7",
                                               "'2024-01-01 10:00:05.000000'"}));
  EXPECT_EQ(*BuildPageSql(Orders(), q, nullptr),
            "SELECT `id` FROM `shop`.`orders` WHERE `updated_at` >= ? AND (`updated_at` > ? OR "
            "`id` > ?) AND `updated_at` < ? ORDER BY `updated_at`, `id` LIMIT 10");
  EXPECT_EQ(*BuildPageSql(Orders(), q, &*params),
            "SELECT `id` FROM `shop`.`orders` WHERE `updated_at` >= '2024-01-01 10:00:00' AND "
            "(`updated_at` > '2024-01-01 10:00:00' OR `id` > 7) AND `updated_at` < "
            "'2024-01-01 10:00:05.000000' ORDER BY `updated_at`, `id` LIMIT 10");
  // With lookback the bound follows the lookback parameter.
  q.lookback_seconds = 2;
  params = PageParameters(Orders(), q, TestQuote);
  ASSERT_TRUE(params.ok());
  EXPECT_EQ(*BuildPageSql(Orders(), q, &*params),
            "SELECT `id` FROM `shop`.`orders` WHERE `updated_at` >= COALESCE('2024-01-01 "
            "10:00:00' - INTERVAL 2000000 MICROSECOND, '2024-01-01 10:00:00') AND `updated_at` < "
            "'2024-01-01 10:00:05.000000' ORDER BY `updated_at`, `id` LIMIT 10");
  q.before = CursorValue(std::monostate{});
  EXPECT_FALSE(PageParameters(Orders(), q, TestQuote).ok());
}

// A query table: its columns as ReflectQuery gave them, no table name of its own.
TableSchema OrdersQuery() {
  TableSchema t = Orders();
  t.qualified_name = "query";
  t.query = "SELECT o.id, o.updated_at, o.code, o.big, o.w AS `we``ird` FROM shop.orders o -- note";
  t.primary_key.clear();
  return t;
}

constexpr const char* kSubSelect =
    "(SELECT o.id, o.updated_at, o.code, o.big, o.w AS `we``ird` FROM shop.orders o -- note\n) "
    "AS `_siphon_query`";

TEST(MysqlSql, AQueryTableIsReadAsASubSelect) {
  EXPECT_EQ(FromClause(Orders()), "`shop`.`orders`");
  EXPECT_EQ(FromClause(OrdersQuery()), kSubSelect);
  // The line break ends a trailing `#` or `-- ` comment before the parenthesis.
  EXPECT_EQ(DescribeQuerySql("SELECT 1 AS a # why"),
            "SELECT * FROM (SELECT 1 AS a # why\n) AS `_siphon_query` LIMIT 0");
  PageQuery q;
  q.columns = {"id", "we`ird"};
  q.order_by = {"updated_at", "id"};
  q.limit = 10;
  EXPECT_EQ(*BuildPageSql(OrdersQuery(), q, nullptr), std::string("SELECT `id`, `we``ird` FROM ") +
                                                          kSubSelect +
                                                          " ORDER BY `updated_at`, `id` LIMIT 10");
  // The parameters go around the query's text, which is never scanned for placeholders.
  TableSchema marked = OrdersQuery();
  marked.query = "SELECT id, updated_at, code, big, w AS `we``ird` FROM t WHERE code <> '?'";
  q.after = Cursor{std::string("2024-01-01T10:00:00Z"), int64_t{7}};
  auto params = PageParameters(marked, q, TestQuote);
  ASSERT_TRUE(params.ok()) << params.status().ToString();
  EXPECT_EQ(*BuildPageSql(marked, q, &*params),
            "SELECT `id`, `we``ird` FROM (SELECT id, updated_at, code, big, w AS `we``ird` FROM t "
            "WHERE code <> '?'\n) AS `_siphon_query` WHERE `updated_at` >= '2024-01-01 10:00:00' "
            "AND (`updated_at` > '2024-01-01 10:00:00' OR `id` > 7) ORDER BY `updated_at`, `id` "
            "LIMIT 10");
  // A column the query does not return is an error here, as for a table.
  q.columns = {"nope"};
  auto missing = BuildPageSql(OrdersQuery(), q, nullptr);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().kind(), ErrorKind::kSchema);
}

TEST(MysqlSql, ReconcileReadsAQueryTableAsASubSelect) {
  KeyRange range;
  range.after = Cursor{int64_t{10}};
  range.upto = Cursor{int64_t{20}};
  auto digest = DigestSql(OrdersQuery(), {"id"}, range, {Cursor{int64_t{15}}}, TestQuote);
  ASSERT_TRUE(digest.ok()) << digest.status().ToString();
  EXPECT_EQ(*digest,
            std::string("SELECT b, COUNT(*), CAST(SUM(CAST(CONV(SUBSTR(h, 1, 8), 16, 10) AS "
                        "UNSIGNED)) AS CHAR), CAST(SUM(CAST(CONV(SUBSTR(h, 9, 8), 16, 10) AS "
                        "UNSIGNED)) AS CHAR) FROM (SELECT CASE WHEN (`id`) <= (15) THEN 0 ELSE 1 "
                        "END AS b, MD5(CONVERT(CONCAT_WS(CHAR(1 USING utf8mb4), `id`) USING "
                        "utf8mb4)) AS h FROM ") +
                kSubSelect + " WHERE `id` > 10 AND (`id` <= 20)) s GROUP BY b");
  auto find = FindKeysSql(
      OrdersQuery(), {"code", "id"},
      {Cursor{std::string("a'b"), int64_t{1}}, Cursor{std::string("c"), int64_t{2}}}, TestQuote);
  ASSERT_TRUE(find.ok()) << find.status().ToString();
  EXPECT_EQ(*find, std::string("SELECT `code`, `id` FROM ") + kSubSelect +
                       " WHERE (`code` = 'a\\'b' AND `id` = 1) OR (`code` = 'c' AND `id` = 2)");
  auto one =
      FindKeysSql(OrdersQuery(), {"id"}, {Cursor{int64_t{3}}, Cursor{int64_t{4}}}, TestQuote);
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(*one, std::string("SELECT `id` FROM ") + kSubSelect + " WHERE `id` IN (3, 4)");
}

TEST(MysqlSql, HorizonQueryReadsOtherSessionsWriteTransactions) {
  std::string utc = HorizonSql(false);
  EXPECT_NE(utc.find("information_schema.INNODB_TRX"), std::string::npos);
  EXPECT_NE(utc.find("trx_mysql_thread_id <> CONNECTION_ID()"), std::string::npos);
  EXPECT_NE(utc.find("trx_is_read_only = 0"), std::string::npos);
  EXPECT_NE(utc.find("INTERVAL 60 SECOND"), std::string::npos);
  // InnoDB's trx_started is in the server's system time zone: always converted to UTC.
  EXPECT_NE(utc.find("CONVERT_TZ(t.trx_started, 'SYSTEM', '+00:00')"), std::string::npos);
  EXPECT_EQ(utc.find("@@global.time_zone"), std::string::npos);
  EXPECT_NE(HorizonSql(true).find("@@global.time_zone"), std::string::npos);
  EXPECT_TRUE(HorizonApplies("timestamp(6)"));
  EXPECT_TRUE(HorizonApplies("datetime"));
  EXPECT_TRUE(HorizonApplies("DATETIME(3)"));
  EXPECT_FALSE(HorizonApplies("date"));
  EXPECT_FALSE(HorizonApplies("bigint(20)"));
}

TEST(MysqlSql, NumericCursorTextStaysANumberAndIsValidated) {
  PageQuery q;
  q.order_by = {"big"};
  q.after = Cursor{std::string("18446744073709551615")};
  auto params = PageParameters(Orders(), q, TestQuote);
  ASSERT_TRUE(params.ok());
  EXPECT_EQ((*params)[0], "18446744073709551615");
  q.after = Cursor{std::string("1 OR 1=1")};
  params = PageParameters(Orders(), q, TestQuote);
  ASSERT_FALSE(params.ok());
  EXPECT_EQ(params.status().kind(), ErrorKind::kType);
  q.after = Cursor{2.5};
  params = PageParameters(Orders(), q, TestQuote);
  ASSERT_TRUE(params.ok());
  EXPECT_EQ((*params)[0], "2.5");
  q.after = Cursor{std::monostate{}};
  EXPECT_FALSE(PageParameters(Orders(), q, TestQuote).ok());
}

// A binary key is a hex literal, a binary string the server compares byte by byte; quoted, its
// bytes would be read in the connection's character set.
TEST(MysqlSql, BinaryCursorValuesAreHexLiterals) {
  TableSchema t = Orders();
  t.columns.push_back({"uid", "binary(16)", ColumnType::kBlob, OrderKind::kBytes, false});
  PageQuery q;
  q.order_by = {"uid"};
  q.after = Cursor{Bytes{std::string("\x00\x27\xff", 3)}};
  auto params = PageParameters(t, q, TestQuote);
  ASSERT_TRUE(params.ok()) << params.status().ToString();
  EXPECT_EQ((*params)[0], "X'0027ff'");
  q.after = Cursor{Bytes{}};
  params = PageParameters(t, q, TestQuote);
  ASSERT_TRUE(params.ok());
  EXPECT_EQ((*params)[0], "X''");
  auto digest = DigestSql(t, {"uid"}, KeyRange{}, {}, TestQuote);
  ASSERT_TRUE(digest.ok());
  EXPECT_NE(digest->find("CONCAT(CHAR(92, 120 USING utf8mb4), LOWER(HEX(`uid`)))"),
            std::string::npos)
      << *digest;
}

// An ENUM is ordered by member position and compared as text by the server: its cursor
// value is its position, compared as a list of positions (an index range), and a SET's is its
// bits.
TEST(MysqlSql, EnumAndSetCursorValuesAreTheNumbersTheServerOrdersBy) {
  TableSchema t = Orders();
  t.columns.push_back({"size", "enum('xl','s','m')", ColumnType::kText, OrderKind::kText, false});
  t.columns.push_back({"tags", "set('b','a','c')", ColumnType::kText, OrderKind::kText, false});
  PageQuery q;
  q.columns = {"id"};
  q.order_by = {"size", "id"};
  q.after = Cursor{std::string("s"), int64_t{7}};
  q.limit = 10;
  auto params = PageParameters(t, q, TestQuote);
  ASSERT_TRUE(params.ok()) << params.status().ToString();
  auto sql = BuildPageSql(t, q, &*params);
  ASSERT_TRUE(sql.ok());
  EXPECT_EQ(*sql,
            "SELECT `id` FROM `shop`.`orders` WHERE `size` IN (2, 3) AND (`size` IN (3) OR "
            "`id` > 7) ORDER BY `size`, `id` LIMIT 10");
  q.after = Cursor{std::string("m"), int64_t{7}};
  sql = BuildPageSql(t, q, &*PageParameters(t, q, TestQuote));
  EXPECT_EQ(*sql,
            "SELECT `id` FROM `shop`.`orders` WHERE `size` IN (3) AND (FALSE OR `id` > 7) "
            "ORDER BY `size`, `id` LIMIT 10");
  q.order_by = {"tags"};
  q.after = Cursor{std::string("a,c")};
  sql = BuildPageSql(t, q, &*PageParameters(t, q, TestQuote));
  EXPECT_EQ(*sql, "SELECT `id` FROM `shop`.`orders` WHERE `tags` > 6 ORDER BY `tags` LIMIT 10");
  q.after = Cursor{std::string("d")};
  params = PageParameters(t, q, TestQuote);
  ASSERT_FALSE(params.ok());
  EXPECT_EQ(params.status().kind(), ErrorKind::kType);
  auto digest = DigestSql(
      t, {"size"}, KeyRange{Cursor{std::string("xl")}, Cursor{std::string("m")}}, {}, TestQuote);
  ASSERT_TRUE(digest.ok());
  EXPECT_NE(digest->find("WHERE `size` IN (2, 3) AND (`size` IN (0, 1, 2, 3))"), std::string::npos)
      << *digest;
}

TEST(MysqlSql, UnknownColumnsAreSchemaErrors) {
  PageQuery q;
  q.columns = {"id", "nope"};
  auto sql = BuildPageSql(Orders(), q, nullptr);
  ASSERT_FALSE(sql.ok());
  EXPECT_EQ(sql.status().kind(), ErrorKind::kSchema);
  EXPECT_NE(sql.status().message().find("nope"), std::string::npos);
  q.columns = {"id"};
  q.order_by = {"x`y"};
  EXPECT_EQ(BuildPageSql(Orders(), q, nullptr).status().kind(), ErrorKind::kSchema);
}

// A column whose character set holds bytes without a character ('?' in a utf8mb4 session)
// is checked on every page, after the collation keys: the hex of a value the server would
// send with more '?' than it holds, else NULL.
TEST(MysqlSql, TextInACharsetWithoutEveryByteIsChecked) {
  TableSchema t = Orders();
  t.primary_key.clear();
  t.columns.push_back({"note", "varchar(20)", ColumnType::kText, OrderKind::kText, false});
  t.columns.back().lossy_charset = "cp1251";
  PageQuery q;
  q.columns = {"id", "code", "note"};
  q.order_by = {"code"};
  q.limit = 2;
  EXPECT_EQ(CharsetCheckColumns(t, q.columns), std::vector<std::string>{"note"});
  EXPECT_EQ(CharsetCheckColumns(t, {}), std::vector<std::string>{"note"});
  EXPECT_TRUE(CharsetCheckColumns(t, {"id", "code"}).empty());
  const std::string utf8 = "CONVERT(`note` USING utf8mb4)";
  EXPECT_EQ(*BuildPageSql(t, q, nullptr),
            "SELECT `id`, `code`, `note`, TRIM(TRAILING WEIGHT_STRING(CONCAT(LEFT(`code`, 0), ' ') "
            "LEVEL 1) FROM WEIGHT_STRING(`code` LEVEL 1)), IF(LOCATE('?', " +
                utf8 + ") > 0 AND CHAR_LENGTH(" + utf8 + ") - CHAR_LENGTH(REPLACE(" + utf8 +
                ", '?', '')) > CHAR_LENGTH(`note`) - CHAR_LENGTH(REPLACE(`note`, '?', '')), "
                "HEX(`note`), NULL) FROM `shop`.`orders` ORDER BY `code` LIMIT 2");
  EXPECT_EQ(QueryCharsetsSql("SELECT a, b FROM t", {"a", "b`"}),
            "SELECT CHARSET(`_siphon_columns`.`a`), CHARSET(`_siphon_columns`.`b```) FROM "
            "(SELECT 1) AS `_siphon_one` LEFT JOIN (SELECT * FROM (SELECT a, b FROM t\n) AS "
            "`_siphon_query` LIMIT 0) AS `_siphon_columns` ON TRUE");
}

TEST(MysqlSql, ReflectSqlReadsEachColumnsCharset) {
  std::string sql = ReflectSql(SplitTableName("orders"), TestQuote);
  EXPECT_NE(sql.find("ORDINAL_POSITION, CHARACTER_SET_NAME FROM information_schema.COLUMNS"),
            std::string::npos)
      << sql;
}

TEST(MysqlSql, ReflectSqlQuotesNames) {
  std::string sql = ReflectSql(SplitTableName("shop.it's"), TestQuote);
  EXPECT_NE(sql.find("TABLE_SCHEMA = 'shop' AND TABLE_NAME = 'it\\'s'"), std::string::npos);
  sql = ReflectSql(SplitTableName("orders"), TestQuote);
  EXPECT_NE(sql.find("TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'orders'"), std::string::npos);
  EXPECT_EQ(sql.find("INNODB_TRX"), std::string::npos);
}

TEST(MysqlSql, ReflectSqlCanBringTheHorizonAlong) {
  // The horizon query's row, under its own kind, first in the union: a user without PROCESS
  // is refused before any other row comes.
  for (bool local_time : {false, true}) {
    std::string sql = ReflectSql(SplitTableName("orders"), TestQuote, local_time);
    std::string horizon = HorizonSql(local_time);
    ASSERT_EQ(horizon.rfind("SELECT ", 0), 0u);
    std::string row = "SELECT 'h', " + horizon.substr(7);
    size_t from = row.find(" FROM (SELECT NOW(6) AS now)");
    ASSERT_NE(from, std::string::npos);
    row.insert(from, ", NULL, NULL, NULL, NULL");
    EXPECT_EQ(sql.rfind(row + " UNION ALL SELECT 'c', ", 0), 0u) << sql;
  }
}

// The server sends the reflection's rows in no set order; they are read by kind, then by
// ordinal or place in the index as numbers (the 10th column after the 9th).
TEST(MysqlSql, ReflectedRowsAreReadInOrderOfKindAndPlace) {
  EXPECT_EQ(ReflectSql(SplitTableName("orders"), TestQuote).find("ORDER BY"), std::string::npos);
  auto row = [](const char* kind, const char* name, std::optional<std::string> place) {
    return ReflectedRow{kind, name, std::nullopt, std::nullopt, std::nullopt, place, std::nullopt};
  };
  std::vector<ReflectedRow> rows = {
      row("u", "b", "2"),  row("t", "BASE TABLE", "7"),
      row("c", "j", "10"), row("k", "id", "1"),
      row("c", "i", "9"),  row("u", "a", "1"),
      row("c", "a", "1"),  row("h", "2026-01-01", std::nullopt),
  };
  OrderReflectedRows(rows);
  std::vector<std::string> order;
  for (const ReflectedRow& r : rows) order.push_back(*r[0] + ":" + *r[1]);
  EXPECT_EQ(order, (std::vector<std::string>{"c:a", "c:i", "c:j", "h:2026-01-01", "k:id",
                                             "t:BASE TABLE", "u:a", "u:b"}));
}

// An index the optimizer may not use is told by the column the server has (a column it lacks
// would fail the statement): MariaDB 10.6's IGNORED, MySQL 8's IS_VISIBLE, else none.
TEST(MysqlSql, ReflectSqlTellsIndexesTheServerDoesNotUse) {
  EXPECT_EQ(HiddenIndexColumnOf(true, 101119), HiddenIndexColumn::kIgnored);
  EXPECT_EQ(HiddenIndexColumnOf(true, 100600), HiddenIndexColumn::kIgnored);
  EXPECT_EQ(HiddenIndexColumnOf(true, 100519), HiddenIndexColumn::kNone);
  EXPECT_EQ(HiddenIndexColumnOf(false, 80036), HiddenIndexColumn::kInvisible);
  EXPECT_EQ(HiddenIndexColumnOf(false, 50744), HiddenIndexColumn::kNone);
  const TableRef orders = SplitTableName("orders");
  std::string sql = ReflectSql(orders, TestQuote, std::nullopt, HiddenIndexColumn::kIgnored);
  EXPECT_NE(sql.find("SEQ_IN_INDEX, IF(IGNORED = 'YES', 'ignored', NULL) FROM "
                     "information_schema.STATISTICS"),
            std::string::npos)
      << sql;
  EXPECT_EQ(sql.find("IS_VISIBLE"), std::string::npos) << sql;
  sql = ReflectSql(orders, TestQuote, std::nullopt, HiddenIndexColumn::kInvisible);
  EXPECT_NE(sql.find("SEQ_IN_INDEX, IF(IS_VISIBLE = 'NO', 'invisible', NULL) FROM "
                     "information_schema.STATISTICS"),
            std::string::npos)
      << sql;
  EXPECT_EQ(sql.find("IGNORED"), std::string::npos) << sql;
  sql = ReflectSql(orders, TestQuote);
  EXPECT_NE(sql.find("SEQ_IN_INDEX, NULL FROM information_schema.STATISTICS"), std::string::npos)
      << sql;
  EXPECT_EQ(sql.find("IGNORED"), std::string::npos) << sql;
  EXPECT_EQ(sql.find("IS_VISIBLE"), std::string::npos) << sql;
}

TEST(MysqlSql, ErrorKinds) {
  EXPECT_EQ(ErrorKindFor(1045), ErrorKind::kAuth);
  // Not retried either: a host not allowed, an auth plugin, an expired password, a lock.
  for (unsigned n : {1130u, 1251u, 2059u, 1820u, 1862u, 3118u, 4151u}) {
    EXPECT_EQ(ErrorKindFor(n), ErrorKind::kAuth) << n;
  }
  EXPECT_EQ(ErrorKindFor(2002), ErrorKind::kConnect);
  EXPECT_EQ(ErrorKindFor(2003), ErrorKind::kConnect);
  EXPECT_EQ(ErrorKindFor(2006), ErrorKind::kConnect);
  EXPECT_EQ(ErrorKindFor(2013), ErrorKind::kConnect);
  EXPECT_EQ(ErrorKindFor(1146), ErrorKind::kSchema);
  EXPECT_EQ(ErrorKindFor(1054), ErrorKind::kSchema);
  EXPECT_EQ(ErrorKindFor(1356), ErrorKind::kSchema);
  // A syntax error is the script's (exit 2); an ambiguous column or a division by zero is
  // the same on every attempt; a lock wait timeout or a deadlock is not.
  EXPECT_EQ(ErrorKindFor(1064), ErrorKind::kConfig);
  EXPECT_EQ(ErrorKindFor(1052), ErrorKind::kSchema);
  EXPECT_EQ(ErrorKindFor(1365), ErrorKind::kType);
  EXPECT_EQ(ErrorKindFor(1205), ErrorKind::kQuery);
  EXPECT_EQ(ErrorKindFor(1213), ErrorKind::kQuery);
  Status s = MysqlStatus(1045, "Access denied for user 'u' (password s3cret)", "connect", "s3cret");
  EXPECT_EQ(s.kind(), ErrorKind::kAuth);
  EXPECT_EQ(s.message().find("s3cret"), std::string::npos);
  EXPECT_NE(s.message().find("1045"), std::string::npos);
}

}  // namespace
}  // namespace siphon::mysql

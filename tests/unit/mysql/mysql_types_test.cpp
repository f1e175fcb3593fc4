#include "adapters/mysql/mysql_types.hpp"

#include <mysql.h>

#include <gtest/gtest.h>

namespace siphon::mysql {
namespace {

struct ClassCase {
  const char* data_type;
  const char* column_type;
  ColumnType type;
  OrderKind order;
};

TEST(MysqlTypes, ClassifiesInformationSchemaTypes) {
  const ClassCase cases[] = {
      {"tinyint", "tinyint(4)", ColumnType::kInteger, OrderKind::kNumber},
      {"smallint", "smallint(5) unsigned", ColumnType::kInteger, OrderKind::kNumber},
      {"mediumint", "mediumint(9)", ColumnType::kInteger, OrderKind::kNumber},
      {"int", "int(11)", ColumnType::kInteger, OrderKind::kNumber},
      {"bigint", "bigint(20)", ColumnType::kInteger, OrderKind::kNumber},
      {"bigint", "bigint(20) unsigned", ColumnType::kAny, OrderKind::kNumber},
      {"BIGINT", "BIGINT UNSIGNED", ColumnType::kAny, OrderKind::kNumber},
      {"year", "year(4)", ColumnType::kInteger, OrderKind::kNumber},
      {"bit", "bit(1)", ColumnType::kInteger, OrderKind::kNumber},
      {"bit", "bit(64)", ColumnType::kAny, OrderKind::kNumber},
      {"decimal", "decimal(40,12)", ColumnType::kText, OrderKind::kNumber},
      {"float", "float", ColumnType::kReal, OrderKind::kOther},
      {"double", "double", ColumnType::kReal, OrderKind::kNumber},
      {"date", "date", ColumnType::kText, OrderKind::kTime},
      {"datetime", "datetime(6)", ColumnType::kText, OrderKind::kTime},
      {"timestamp", "timestamp", ColumnType::kText, OrderKind::kTime},
      // Compared by the server as a time, which the cursor text reads back as.
      {"time", "time", ColumnType::kText, OrderKind::kText},
      {"time", "time(6)", ColumnType::kText, OrderKind::kText},
      {"char", "char(10)", ColumnType::kText, OrderKind::kText},
      {"varchar", "varchar(255)", ColumnType::kText, OrderKind::kText},
      {"longtext", "longtext", ColumnType::kText, OrderKind::kText},
      // Paged by member position (mysql_sql.cpp); without its members, no order.
      {"enum", "enum('a','b')", ColumnType::kText, OrderKind::kText},
      {"set", "set('a','b')", ColumnType::kText, OrderKind::kText},
      {"enum", "enum", ColumnType::kText, OrderKind::kOther},
      {"json", "json", ColumnType::kText, OrderKind::kOther},
      {"binary", "binary(16)", ColumnType::kBlob, OrderKind::kBytes},
      {"varbinary", "varbinary(10)", ColumnType::kBlob, OrderKind::kBytes},
      {"longblob", "longblob", ColumnType::kBlob, OrderKind::kOther},
      {"geometry", "geometry", ColumnType::kBlob, OrderKind::kOther},
      {"something_new", "something_new", ColumnType::kText, OrderKind::kOther},
  };
  for (const auto& c : cases) {
    MysqlTypeClass cls = ClassifyType(c.data_type, c.column_type);
    EXPECT_EQ(cls.type, c.type) << c.column_type;
    EXPECT_EQ(cls.order, c.order) << c.column_type;
    // The server orders integers that fit in 64 bits and binary strings as SQLite orders what
    // siphon stores for them (a full refresh keyed by one sweeps by key range).
    EXPECT_EQ(cls.stored_order,
              cls.type == ColumnType::kInteger ||
                  (cls.type == ColumnType::kBlob && cls.order == OrderKind::kBytes))
        << c.column_type;
  }
}

TEST(MysqlTypes, CharsetsWithBytesWithoutACharacterAreLossy) {
  for (const char* lossless : {"utf8mb4", "utf8mb3", "utf8", "UTF8MB4", "latin1", "binary", ""}) {
    EXPECT_FALSE(IsLossyCharset(lossless)) << lossless;
  }
  for (const char* lossy : {"cp1251", "ascii", "cp1250", "koi8r", "sjis", "utf16", "ucs2"}) {
    EXPECT_TRUE(IsLossyCharset(lossy)) << lossy;
  }
}

TEST(MysqlTypes, EnumMembersAreReadFromTheColumnType) {
  auto members = EnumMembers("enum('xl','it''s','a\\\\b','É,x','')");
  ASSERT_TRUE(members);
  EXPECT_EQ(*members, (std::vector<std::string>{"xl", "it's", "a\\b", "É,x", ""}));
  EXPECT_EQ(EnumMembers("SET('b','a')"), (std::vector<std::string>{"b", "a"}));
  EXPECT_FALSE(EnumMembers("enum"));
  EXPECT_FALSE(EnumMembers("varchar(10)"));
  EXPECT_FALSE(EnumMembers("enum('a'"));
  EXPECT_FALSE(EnumMembers("enum('a','b)"));
  const std::vector<std::string> sizes = {"xl", "s", "m"};
  EXPECT_EQ(EnumNumber(sizes, false, "xl"), 1u);
  EXPECT_EQ(EnumNumber(sizes, false, "m"), 3u);
  EXPECT_EQ(EnumNumber(sizes, false, ""), 0u);
  EXPECT_FALSE(EnumNumber(sizes, false, "M"));
  EXPECT_EQ(EnumNumber(sizes, true, "xl,m"), 5u);
  EXPECT_EQ(EnumNumber(sizes, true, ""), 0u);
  EXPECT_FALSE(EnumNumber(sizes, true, "xl,l"));
}

struct DecoderCase {
  int field_type;
  unsigned flags;
  unsigned charsetnr;
  MysqlDecoder decoder;
};

TEST(MysqlTypes, ChoosesDecoderFromField) {
  const DecoderCase cases[] = {
      {MYSQL_TYPE_TINY, 0, 63, MysqlDecoder::kInt},
      {MYSQL_TYPE_LONG, UNSIGNED_FLAG, 63, MysqlDecoder::kInt},
      {MYSQL_TYPE_LONGLONG, 0, 63, MysqlDecoder::kInt},
      {MYSQL_TYPE_LONGLONG, UNSIGNED_FLAG, 63, MysqlDecoder::kUnsigned},
      {MYSQL_TYPE_YEAR, UNSIGNED_FLAG, 63, MysqlDecoder::kYear},
      {MYSQL_TYPE_FLOAT, 0, 63, MysqlDecoder::kReal},
      {MYSQL_TYPE_DOUBLE, 0, 63, MysqlDecoder::kReal},
      {MYSQL_TYPE_NEWDECIMAL, 0, 63, MysqlDecoder::kDecimal},
      {MYSQL_TYPE_BIT, UNSIGNED_FLAG, 63, MysqlDecoder::kBit},
      {MYSQL_TYPE_DATE, 0, 63, MysqlDecoder::kDate},
      {MYSQL_TYPE_DATETIME, 0, 63, MysqlDecoder::kDateTime},
      {MYSQL_TYPE_TIMESTAMP, 0, 63, MysqlDecoder::kTimestamp},
      {MYSQL_TYPE_TIME, 0, 63, MysqlDecoder::kTime},
      {MYSQL_TYPE_VAR_STRING, 0, 224, MysqlDecoder::kText},
      {MYSQL_TYPE_VAR_STRING, BINARY_FLAG, 46, MysqlDecoder::kText},  // utf8mb4_bin
      {MYSQL_TYPE_VAR_STRING, BINARY_FLAG, 63, MysqlDecoder::kBlob},  // varbinary
      {MYSQL_TYPE_STRING, BINARY_FLAG, 63, MysqlDecoder::kBlob},      // binary
      {MYSQL_TYPE_STRING, ENUM_FLAG, 45, MysqlDecoder::kText},
      {MYSQL_TYPE_STRING, SET_FLAG, 45, MysqlDecoder::kText},
      {MYSQL_TYPE_BLOB, 0, 45, MysqlDecoder::kText},            // text
      {MYSQL_TYPE_BLOB, BINARY_FLAG, 63, MysqlDecoder::kBlob},  // blob
      {MYSQL_TYPE_JSON, BINARY_FLAG, 63, MysqlDecoder::kText},  // MySQL 8 json
      {MYSQL_TYPE_GEOMETRY, BINARY_FLAG, 63, MysqlDecoder::kBlob},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(DecoderFor(c.field_type, c.flags, c.charsetnr), c.decoder)
        << "type " << c.field_type << " flags " << c.flags << " charset " << c.charsetnr;
  }
}

MysqlField Field(int type, unsigned flags, unsigned long length, unsigned decimals,
                 unsigned charsetnr, unsigned mbmaxlen = 1, const char* type_name = "") {
  MysqlField f;
  f.type = type;
  f.flags = flags;
  f.length = length;
  f.decimals = decimals;
  f.charsetnr = charsetnr;
  f.mbmaxlen = mbmaxlen;
  f.type_name = type_name;
  return f;
}

struct FieldCase {
  MysqlField field;
  const char* data_type;
  const char* column_type;
  ColumnType type;
  OrderKind order;
};

// A query's columns, described by their metadata as MariaDB sends it (the widths of
// strings in bytes of utf8mb4), come out as the table columns of that type would.
TEST(MysqlTypes, TypesAResultColumnAsTheTableColumnItCouldBe) {
  using C = ColumnType;
  using O = OrderKind;
  const unsigned u = UNSIGNED_FLAG;
  const FieldCase cases[] = {
      {Field(MYSQL_TYPE_TINY, 0, 1, 0, 63), "tinyint", "tinyint(1)", C::kInteger, O::kNumber},
      {Field(MYSQL_TYPE_SHORT, u, 5, 0, 63), "smallint", "smallint(5) unsigned", C::kInteger,
       O::kNumber},
      {Field(MYSQL_TYPE_INT24, 0, 9, 0, 63), "mediumint", "mediumint(9)", C::kInteger, O::kNumber},
      {Field(MYSQL_TYPE_LONG, u | ZEROFILL_FLAG, 10, 0, 63), "int", "int(10) unsigned zerofill",
       C::kInteger, O::kNumber},
      {Field(MYSQL_TYPE_LONGLONG, 0, 21, 0, 63), "bigint", "bigint(21)", C::kInteger, O::kNumber},
      {Field(MYSQL_TYPE_LONGLONG, u, 20, 0, 63), "bigint", "bigint(20) unsigned", C::kAny,
       O::kNumber},
      // DECIMAL(12,2) times 2; 1.5; DECIMAL(10,0) UNSIGNED.
      {Field(MYSQL_TYPE_NEWDECIMAL, 0, 15, 2, 63), "decimal", "decimal(13,2)", C::kText,
       O::kNumber},
      {Field(MYSQL_TYPE_NEWDECIMAL, 0, 4, 1, 63), "decimal", "decimal(2,1)", C::kText, O::kNumber},
      {Field(MYSQL_TYPE_NEWDECIMAL, u, 10, 0, 63), "decimal", "decimal(10,0) unsigned", C::kText,
       O::kNumber},
      {Field(MYSQL_TYPE_FLOAT, 0, 12, 31, 63), "float", "float", C::kReal, O::kOther},
      {Field(MYSQL_TYPE_DOUBLE, 0, 22, 31, 63), "double", "double", C::kReal, O::kNumber},
      {Field(MYSQL_TYPE_YEAR, u, 4, 0, 63), "year", "year(4)", C::kInteger, O::kNumber},
      {Field(MYSQL_TYPE_BIT, u, 1, 0, 63), "bit", "bit(1)", C::kInteger, O::kNumber},
      {Field(MYSQL_TYPE_BIT, u, 64, 0, 63), "bit", "bit(64)", C::kAny, O::kNumber},
      {Field(MYSQL_TYPE_DATE, 0, 10, 0, 63), "date", "date", C::kText, O::kTime},
      {Field(MYSQL_TYPE_DATETIME, 0, 19, 0, 63), "datetime", "datetime", C::kText, O::kTime},
      {Field(MYSQL_TYPE_DATETIME, 0, 26, 6, 63), "datetime", "datetime(6)", C::kText, O::kTime},
      {Field(MYSQL_TYPE_TIMESTAMP, 0, 23, 3, 63), "timestamp", "timestamp(3)", C::kText, O::kTime},
      {Field(MYSQL_TYPE_TIME, 0, 13, 2, 63), "time", "time(2)", C::kText, O::kText},
      {Field(MYSQL_TYPE_STRING, 0, 12, 0, 45, 4), "char", "char(3)", C::kText, O::kText},
      {Field(MYSQL_TYPE_VAR_STRING, 0, 160, 0, 45, 4), "varchar", "varchar(40)", C::kText,
       O::kText},
      {Field(MYSQL_TYPE_VAR_STRING, BINARY_FLAG, 10, 0, 63), "varbinary", "varbinary(10)", C::kBlob,
       O::kBytes},
      {Field(MYSQL_TYPE_STRING, BINARY_FLAG, 16, 0, 63), "binary", "binary(16)", C::kBlob,
       O::kBytes},
      {Field(MYSQL_TYPE_BLOB, 0, 1020, 0, 45, 4), "tinytext", "tinytext", C::kText, O::kText},
      {Field(MYSQL_TYPE_BLOB, 0, 262140, 0, 45, 4), "text", "text", C::kText, O::kText},
      {Field(MYSQL_TYPE_BLOB, 0, 67108860, 0, 45, 4), "mediumtext", "mediumtext", C::kText,
       O::kText},
      {Field(MYSQL_TYPE_BLOB, 0, 4294967295, 0, 45, 4), "longtext", "longtext", C::kText, O::kText},
      {Field(MYSQL_TYPE_BLOB, BINARY_FLAG, 255, 0, 63), "tinyblob", "tinyblob", C::kBlob,
       O::kOther},
      {Field(MYSQL_TYPE_BLOB, BINARY_FLAG, 65535, 0, 63), "blob", "blob", C::kBlob, O::kOther},
      {Field(MYSQL_TYPE_BLOB, BINARY_FLAG, 4294967295, 0, 63), "longblob", "longblob", C::kBlob,
       O::kOther},
      {Field(MYSQL_TYPE_STRING, ENUM_FLAG, 4, 0, 45, 4), "enum", "enum", C::kText, O::kOther},
      {Field(MYSQL_TYPE_STRING, SET_FLAG, 12, 0, 45, 4), "set", "set", C::kText, O::kOther},
      {Field(MYSQL_TYPE_JSON, BINARY_FLAG, 4294967295, 0, 63), "json", "json", C::kText, O::kOther},
      {Field(MYSQL_TYPE_GEOMETRY, BINARY_FLAG, 4294967295, 0, 63), "geometry", "geometry", C::kBlob,
       O::kOther},
      // MariaDB's extended metadata names the type of a type plugin or a geometry's kind.
      {Field(MYSQL_TYPE_STRING, BINARY_FLAG, 144, 0, 45, 4, "uuid"), "uuid", "uuid", C::kText,
       O::kText},
      {Field(MYSQL_TYPE_STRING, BINARY_FLAG, 156, 0, 45, 4, "inet6"), "inet6", "inet6", C::kText,
       O::kOther},
      {Field(MYSQL_TYPE_GEOMETRY, BINARY_FLAG, 4294967295, 0, 63, 1, "point"), "point", "point",
       C::kBlob, O::kOther},
      // A NULL literal.
      {Field(MYSQL_TYPE_STRING, BINARY_FLAG, 0, 0, 63), "binary", "binary(0)", C::kBlob, O::kBytes},
  };
  for (const auto& c : cases) {
    MysqlColumnType type = ColumnTypeOf(c.field);
    EXPECT_EQ(type.data_type, c.data_type) << c.column_type;
    EXPECT_EQ(type.column_type, c.column_type);
    MysqlTypeClass cls = ClassifyType(type.data_type, type.column_type);
    EXPECT_EQ(cls.type, c.type) << c.column_type;
    EXPECT_EQ(cls.order, c.order) << c.column_type;
  }
}

struct ValueCase {
  MysqlDecoder decoder;
  std::string input;
  ValueType type;
  std::string text;  // text/blob value
  int64_t i = 0;
  double d = 0;
  DecodeOutcome outcome = DecodeOutcome::kOk;
};

TEST(MysqlTypes, DecodesTextProtocolValues) {
  using D = MysqlDecoder;
  using V = ValueType;
  const ValueCase cases[] = {
      {D::kInt, "-128", V::kInt, "", -128},
      {D::kInt, "9223372036854775807", V::kInt, "", INT64_MAX},
      {D::kInt, "-9223372036854775808", V::kInt, "", INT64_MIN},
      {D::kUnsigned, "9223372036854775807", V::kInt, "", INT64_MAX},
      {D::kUnsigned, "9223372036854775808", V::kText, "9223372036854775808"},
      {D::kUnsigned, "18446744073709551615", V::kText, "18446744073709551615"},
      {D::kYear, "1997", V::kInt, "", 1997},
      {D::kReal, "10.5", V::kReal, "", 0, 10.5},
      {D::kReal, "1e308", V::kReal, "", 0, 1e308},
      {D::kReal, "1.0000000000000001e-45", V::kReal, "", 0, 1.0000000000000001e-45},
      // A FLOAT read as a double: the float's shortest decimal, not its binary expansion.
      {D::kFloat, "0.10000000149011612", V::kReal, "", 0, 0.1},
      {D::kFloat, "1234567", V::kReal, "", 0, 1234567},
      {D::kFloat, "3.1415927410125732", V::kReal, "", 0, 3.1415927},
      {D::kFloat, "-3.4028234663852886e38", V::kReal, "", 0, -3.4028235e38},
      {D::kDecimal, "1700000.010000000000", V::kText, "1700000.010000000000"},
      {D::kDecimal, "-0.188", V::kText, "-0.188"},
      {D::kBit, std::string("\x00", 1), V::kInt, "", 0},
      {D::kBit, "\x01", V::kInt, "", 1},
      {D::kBit, "A", V::kInt, "", 65},
      {D::kBit, "\x01\x02", V::kInt, "", 258},
      {D::kBit, "\xff\xff\xff\xff\xff\xff\xff\xff", V::kText, "18446744073709551615"},
      {D::kDate, "1999-01-08", V::kText, "1999-01-08"},
      {D::kDate, "0000-00-00", V::kNull, "", 0, 0, DecodeOutcome::kZeroDate},
      {D::kDate, "2021-01-00", V::kNull, "", 0, 0, DecodeOutcome::kZeroDate},
      {D::kDateTime, "2005-10-10 23:22:21", V::kText, "2005-10-10T23:22:21"},
      {D::kDateTime, "2024-01-01 10:00:00.123456", V::kText, "2024-01-01T10:00:00.123456"},
      {D::kDateTime, "2024-01-01 10:00:00.5", V::kText, "2024-01-01T10:00:00.500000"},
      {D::kDateTime, "0000-00-00 00:00:00", V::kNull, "", 0, 0, DecodeOutcome::kZeroDate},
      {D::kTimestamp, "2022-08-09 10:17:16", V::kText, "2022-08-09T10:17:16Z"},
      {D::kTimestamp, "2022-08-09 10:17:16.161342", V::kText, "2022-08-09T10:17:16.161342Z"},
      {D::kTimestamp, "0000-00-00 00:00:00", V::kNull, "", 0, 0, DecodeOutcome::kZeroDate},
      {D::kTime, "-22:59:59", V::kText, "-22:59:59"},
      {D::kTime, "838:59:59.000000", V::kText, "838:59:59.000000"},
      {D::kText, "тест 🦄", V::kText, "тест 🦄"},
      {D::kText, "", V::kText, ""},
      {D::kBlob, std::string("\x00\xff", 2), V::kBlob, std::string("\x00\xff", 2)},
      {D::kBlob, "", V::kBlob, ""},
      {D::kInt, "12x", V::kText, "12x", 0, 0, DecodeOutcome::kInvalid},
      {D::kDateTime, "garbage-value", V::kText, "garbage-value", 0, 0, DecodeOutcome::kInvalid},
  };
  for (const auto& c : cases) {
    RowBatch batch(1);
    DecodeOutcome outcome = AppendMysqlValue(c.decoder, c.input.data(), c.input.size(), batch);
    ASSERT_EQ(batch.rows(), 1u) << c.input;
    const Cell& cell = batch.at(0, 0);
    EXPECT_EQ(outcome, c.outcome) << c.input;
    EXPECT_EQ(cell.type, c.type) << c.input;
    if (c.type == V::kInt) {
      EXPECT_EQ(cell.i, c.i) << c.input;
    } else if (c.type == V::kReal) {
      EXPECT_DOUBLE_EQ(cell.d, c.d) << c.input;
    } else if (c.type == V::kText || c.type == V::kBlob) {
      EXPECT_EQ(batch.bytes(cell), c.text) << c.input;
    }
  }
}

TEST(MysqlTypes, TimeCursorBackToMysqlForm) {
  EXPECT_EQ(TimeForMysql("2024-01-01T10:00:00.123456Z"), "2024-01-01 10:00:00.123456");
  EXPECT_EQ(TimeForMysql("2024-01-01T10:00:00"), "2024-01-01 10:00:00");
  EXPECT_EQ(TimeForMysql("2024-01-01"), "2024-01-01");
}

}  // namespace
}  // namespace siphon::mysql

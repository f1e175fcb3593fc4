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
      {"time", "time", ColumnType::kText, OrderKind::kOther},
      {"char", "char(10)", ColumnType::kText, OrderKind::kText},
      {"varchar", "varchar(255)", ColumnType::kText, OrderKind::kText},
      {"longtext", "longtext", ColumnType::kText, OrderKind::kText},
      {"enum", "enum('a','b')", ColumnType::kText, OrderKind::kOther},
      {"set", "set('a','b')", ColumnType::kText, OrderKind::kOther},
      {"json", "json", ColumnType::kText, OrderKind::kOther},
      {"binary", "binary(16)", ColumnType::kBlob, OrderKind::kOther},
      {"varbinary", "varbinary(10)", ColumnType::kBlob, OrderKind::kOther},
      {"longblob", "longblob", ColumnType::kBlob, OrderKind::kOther},
      {"geometry", "geometry", ColumnType::kBlob, OrderKind::kOther},
      {"something_new", "something_new", ColumnType::kText, OrderKind::kOther},
  };
  for (const auto& c : cases) {
    MysqlTypeClass cls = ClassifyType(c.data_type, c.column_type);
    EXPECT_EQ(cls.type, c.type) << c.column_type;
    EXPECT_EQ(cls.order, c.order) << c.column_type;
  }
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

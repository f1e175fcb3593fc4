#include "adapters/postgres/pg_types.hpp"

#include "adapters/postgres/pg_connection.hpp"

#include <cmath>
#include <string>

#include <gtest/gtest.h>

namespace siphon::postgres {
namespace {

struct ClassCase {
  const char* type_name;
  char typtype;
  ColumnType type;
  OrderKind order;
  bool json_array;
  bool text_form;
};

TEST(PgTypes, ClassifiesEveryMappedType) {
  const ClassCase cases[] = {
      {"smallint", 'b', ColumnType::kInteger, OrderKind::kNumber, false, false},
      {"integer", 'b', ColumnType::kInteger, OrderKind::kNumber, false, false},
      {"bigint", 'b', ColumnType::kInteger, OrderKind::kNumber, false, false},
      {"oid", 'b', ColumnType::kInteger, OrderKind::kNumber, false, false},
      {"real", 'b', ColumnType::kReal, OrderKind::kNumber, false, false},
      {"double precision", 'b', ColumnType::kReal, OrderKind::kNumber, false, false},
      {"numeric", 'b', ColumnType::kText, OrderKind::kNumber, false, false},
      {"numeric(30,10)", 'b', ColumnType::kText, OrderKind::kNumber, false, false},
      {"boolean", 'b', ColumnType::kInteger, OrderKind::kOther, false, false},
      {"text", 'b', ColumnType::kText, OrderKind::kText, false, false},
      {"character varying(10)", 'b', ColumnType::kText, OrderKind::kText, false, false},
      {"character(8)", 'b', ColumnType::kText, OrderKind::kText, false, false},
      {"\"char\"", 'b', ColumnType::kText, OrderKind::kText, false, false},
      {"name", 'b', ColumnType::kText, OrderKind::kText, false, false},
      {"citext", 'b', ColumnType::kText, OrderKind::kText, false, false},
      {"uuid", 'b', ColumnType::kText, OrderKind::kText, false, false},
      {"json", 'b', ColumnType::kText, OrderKind::kOther, false, false},
      {"jsonb", 'b', ColumnType::kText, OrderKind::kOther, false, false},
      {"mood", 'e', ColumnType::kText, OrderKind::kOther, false, false},
      {"bytea", 'b', ColumnType::kBlob, OrderKind::kOther, false, false},
      {"date", 'b', ColumnType::kText, OrderKind::kTime, false, false},
      {"timestamp without time zone", 'b', ColumnType::kText, OrderKind::kTime, false, false},
      {"timestamp(3) without time zone", 'b', ColumnType::kText, OrderKind::kTime, false, false},
      {"timestamp with time zone", 'b', ColumnType::kText, OrderKind::kTime, false, false},
      {"timestamp(6) with time zone", 'b', ColumnType::kText, OrderKind::kTime, false, false},
      {"integer[]", 'b', ColumnType::kText, OrderKind::kOther, true, false},
      {"character varying(5)[]", 'b', ColumnType::kText, OrderKind::kOther, true, false},
      {"timestamp with time zone[]", 'b', ColumnType::kText, OrderKind::kOther, true, false},
      {"interval", 'b', ColumnType::kText, OrderKind::kOther, false, true},
      {"time without time zone", 'b', ColumnType::kText, OrderKind::kOther, false, true},
      {"time with time zone", 'b', ColumnType::kText, OrderKind::kOther, false, true},
      {"inet", 'b', ColumnType::kText, OrderKind::kOther, false, true},
      {"money", 'b', ColumnType::kText, OrderKind::kOther, false, true},
      {"bit(3)", 'b', ColumnType::kText, OrderKind::kOther, false, true},
      {"xml", 'b', ColumnType::kText, OrderKind::kOther, false, true},
      {"point", 'b', ColumnType::kText, OrderKind::kOther, false, true},
      {"tsrange", 'r', ColumnType::kText, OrderKind::kOther, false, true},
      {"inventory_item", 'c', ColumnType::kText, OrderKind::kOther, false, true},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.type_name);
    PgTypeClass cls = ClassifyType(c.type_name, c.typtype);
    EXPECT_EQ(cls.type, c.type);
    EXPECT_EQ(cls.order, c.order);
    EXPECT_EQ(cls.json_array, c.json_array);
    EXPECT_EQ(cls.text_form, c.text_form);
  }
}

TEST(PgTypes, DecoderByOid) {
  EXPECT_EQ(DecoderForOid(20), PgDecoder::kInt);
  EXPECT_EQ(DecoderForOid(21), PgDecoder::kInt);
  EXPECT_EQ(DecoderForOid(23), PgDecoder::kInt);
  EXPECT_EQ(DecoderForOid(26), PgDecoder::kInt);
  EXPECT_EQ(DecoderForOid(700), PgDecoder::kReal);
  EXPECT_EQ(DecoderForOid(701), PgDecoder::kReal);
  EXPECT_EQ(DecoderForOid(16), PgDecoder::kBool);
  EXPECT_EQ(DecoderForOid(17), PgDecoder::kBytea);
  EXPECT_EQ(DecoderForOid(1184), PgDecoder::kTimestampTz);
  EXPECT_EQ(DecoderForOid(1114), PgDecoder::kTimestamp);
  EXPECT_EQ(DecoderForOid(1700), PgDecoder::kText);  // numeric stays exact text
  EXPECT_EQ(DecoderForOid(1082), PgDecoder::kText);  // date is already YYYY-MM-DD
  EXPECT_EQ(DecoderForOid(25), PgDecoder::kText);
}

// One decoded cell, described as "type:value" so cases read as a table.
std::string Decode(PgDecoder d, const std::string& text, bool* ok = nullptr) {
  RowBatch batch(1);
  bool good = AppendPgValue(d, text.data(), text.size(), batch);
  if (ok != nullptr) *ok = good;
  const Cell& c = batch.at(0, 0);
  switch (c.type) {
    case ValueType::kInt:
      return "int:" + std::to_string(c.i);
    case ValueType::kReal: {
      char buf[40];
      snprintf(buf, sizeof buf, "%.17g", c.d);
      return std::string("real:") + buf;
    }
    case ValueType::kText:
      return "text:" + std::string(batch.bytes(c));
    case ValueType::kBlob: {
      std::string hex;
      for (unsigned char ch : batch.bytes(c)) {
        char b[3];
        snprintf(b, sizeof b, "%02x", ch);
        hex += b;
      }
      return "blob:" + hex;
    }
    case ValueType::kNull:
      return "null";
  }
  return "?";
}

struct DecodeCase {
  PgDecoder decoder;
  const char* text;
  const char* expected;
  bool ok;
};

TEST(PgTypes, DecodesTextOutput) {
  const DecodeCase cases[] = {
      {PgDecoder::kInt, "0", "int:0", true},
      {PgDecoder::kInt, "-9223372036854775808", "int:-9223372036854775808", true},
      {PgDecoder::kInt, "9223372036854775807", "int:9223372036854775807", true},
      {PgDecoder::kInt, "4294967295", "int:4294967295", true},  // oid max
      {PgDecoder::kInt, "12x", "text:12x", false},
      {PgDecoder::kReal, "1.5", "real:1.5", true},
      {PgDecoder::kReal, "0.10000000000000001", "real:0.10000000000000001", true},
      {PgDecoder::kReal, "1.2345678901234567e+09", "real:1234567890.1234567", true},
      {PgDecoder::kReal, "-0", "real:-0", true},
      {PgDecoder::kReal, "Infinity", "real:inf", true},
      {PgDecoder::kReal, "-Infinity", "real:-inf", true},
      {PgDecoder::kReal, "NaN", "text:NaN", true},
      {PgDecoder::kBool, "t", "int:1", true},
      {PgDecoder::kBool, "f", "int:0", true},
      {PgDecoder::kBytea, "\\x", "blob:", true},
      {PgDecoder::kBytea, "\\x00ff10", "blob:00ff10", true},
      {PgDecoder::kBytea, "\\xDEADbeef", "blob:deadbeef", true},
      {PgDecoder::kBytea, "\\x0g", "text:\\x0g", false},
      {PgDecoder::kTimestampTz, "2024-01-01 10:00:00+00", "text:2024-01-01T10:00:00Z", true},
      {PgDecoder::kTimestampTz, "2024-01-01 10:00:00.5+00", "text:2024-01-01T10:00:00.500000Z",
       true},
      {PgDecoder::kTimestampTz, "2024-01-01 10:00:00.123456+00", "text:2024-01-01T10:00:00.123456Z",
       true},
      {PgDecoder::kTimestampTz, "12024-01-01 10:00:00+00", "text:12024-01-01T10:00:00Z", true},
      {PgDecoder::kTimestampTz, "3004-10-19 18:23:54.123456+00 BC",
       "text:3004-10-19 18:23:54.123456+00 BC", true},
      {PgDecoder::kTimestampTz, "infinity", "text:infinity", true},
      {PgDecoder::kTimestampTz, "-infinity", "text:-infinity", true},
      {PgDecoder::kTimestampTz, "2024-01-01 10:00:00+02", "text:2024-01-01 10:00:00+02", false},
      {PgDecoder::kTimestamp, "2004-10-19 10:23:54", "text:2004-10-19T10:23:54", true},
      {PgDecoder::kTimestamp, "2004-10-19 10:23:54.12", "text:2004-10-19T10:23:54.120000", true},
      {PgDecoder::kTimestamp, "3004-10-19 10:23:54.123456 BC", "text:3004-10-19 10:23:54.123456 BC",
       true},
      {PgDecoder::kText, "", "text:", true},
      {PgDecoder::kText, "12345678901234567890.0123456789", "text:12345678901234567890.0123456789",
       true},
      {PgDecoder::kText, "héllo 🎉 'q' \"d\" \\ \n", "text:héllo 🎉 'q' \"d\" \\ \n", true},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.text);
    bool ok = false;
    EXPECT_EQ(Decode(c.decoder, c.text, &ok), c.expected);
    EXPECT_EQ(ok, c.ok);
  }
}

TEST(PgTypes, BlobKeepsZeroBytes) {
  RowBatch batch(1);
  std::string text = "\\x00610062";
  ASSERT_TRUE(AppendPgValue(PgDecoder::kBytea, text.data(), text.size(), batch));
  EXPECT_EQ(batch.at(0, 0).type, ValueType::kBlob);
  EXPECT_EQ(batch.bytes(batch.at(0, 0)), std::string_view("\0a\0b", 4));
}

TEST(PgTypes, DecodesCopyTextRows) {
  const std::vector<PgDecoder> decoders = {PgDecoder::kInt, PgDecoder::kText, PgDecoder::kBytea,
                                           PgDecoder::kText, PgDecoder::kTimestampTz};
  RowBatch b(decoders.size());
  size_t rejected = 0;
  // COPY writes a tab, a newline and a backslash inside a value as \t, \n and \\; \N is NULL;
  // a bytea's hex form gains a second backslash.
  ASSERT_TRUE(DecodeCopyRow("7\ttab\\there\\nline \\\\ end\t\\\\x00ff\t\\N\t2024-01-02 03:04:05+00",
                            decoders, b, &rejected));
  ASSERT_TRUE(DecodeCopyRow("-1\t\\N\t\\\\x\t\t2024-01-02 03:04:05.5+00", decoders, b, &rejected));
  EXPECT_EQ(rejected, 0u);
  ASSERT_EQ(b.rows(), 2u);
  EXPECT_EQ(b.at(0, 0).i, 7);
  EXPECT_EQ(b.bytes(b.at(0, 1)), "tab\there\nline \\ end");
  EXPECT_EQ(b.at(0, 2).type, ValueType::kBlob);
  EXPECT_EQ(b.bytes(b.at(0, 2)), std::string("\0\xff", 2));
  EXPECT_EQ(b.at(0, 3).type, ValueType::kNull);
  EXPECT_EQ(b.bytes(b.at(0, 4)), "2024-01-02T03:04:05Z");
  EXPECT_EQ(b.at(1, 1).type, ValueType::kNull);
  EXPECT_EQ(b.bytes(b.at(1, 2)), "");
  EXPECT_EQ(b.at(1, 3).type, ValueType::kText);  // an empty string is not NULL
  EXPECT_EQ(b.bytes(b.at(1, 3)), "");
  // COPY FROM's octal and hex escapes read back too.
  RowBatch one(1);
  ASSERT_TRUE(DecodeCopyRow("\\101\\x42\\7", {PgDecoder::kText}, one, &rejected));
  EXPECT_EQ(one.bytes(one.at(0, 0)), "AB\7");
  // A line with too few or too many fields is refused.
  RowBatch bad(decoders.size());
  EXPECT_FALSE(DecodeCopyRow("1\t2", decoders, bad, &rejected));
  EXPECT_FALSE(DecodeCopyRow("1\t2\t3\t4\t2024-01-02 03:04:05+00\t6", decoders, bad, &rejected));
  EXPECT_TRUE(DecodeCopyRow("1\t2\t3\t4\t2024-01-02 03:04:05+00", decoders, bad, &rejected));
}

}  // namespace
}  // namespace siphon::postgres

#include "adapters/postgres/pg_types.hpp"

#include "adapters/postgres/pg_connection.hpp"

#include <cmath>
#include <string>
#include <string_view>
#include <vector>

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
      {"mood", 'e', ColumnType::kText, OrderKind::kText, false, false},
      {"bytea", 'b', ColumnType::kBlob, OrderKind::kBytes, false, false},
      {"date", 'b', ColumnType::kText, OrderKind::kTime, false, false},
      {"timestamp without time zone", 'b', ColumnType::kText, OrderKind::kTime, false, false},
      {"timestamp(3) without time zone", 'b', ColumnType::kText, OrderKind::kTime, false, false},
      {"timestamp with time zone", 'b', ColumnType::kText, OrderKind::kTime, false, false},
      {"timestamp(6) with time zone", 'b', ColumnType::kText, OrderKind::kTime, false, false},
      {"integer[]", 'b', ColumnType::kText, OrderKind::kOther, true, false},
      {"character varying(5)[]", 'b', ColumnType::kText, OrderKind::kOther, true, false},
      {"timestamp with time zone[]", 'b', ColumnType::kText, OrderKind::kOther, true, false},
      {"interval", 'b', ColumnType::kText, OrderKind::kText, false, true},
      {"time without time zone", 'b', ColumnType::kText, OrderKind::kText, false, true},
      {"time(3) with time zone", 'b', ColumnType::kText, OrderKind::kText, false, true},
      {"inet", 'b', ColumnType::kText, OrderKind::kText, false, true},
      {"cidr", 'b', ColumnType::kText, OrderKind::kText, false, true},
      {"macaddr", 'b', ColumnType::kText, OrderKind::kText, false, true},
      {"macaddr8", 'b', ColumnType::kText, OrderKind::kText, false, true},
      {"bit(3)", 'b', ColumnType::kText, OrderKind::kText, false, true},
      {"bit varying(10)", 'b', ColumnType::kText, OrderKind::kText, false, true},
      {"pg_lsn", 'b', ColumnType::kText, OrderKind::kText, false, true},
      {"money", 'b', ColumnType::kText, OrderKind::kOther, false, true},  // lc_monetary's text
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
    // What siphon stores orders as the values do for integers, bytea and a uuid's text (a
    // full refresh keyed by one sweeps by key range).
    const std::string_view name = c.type_name;
    EXPECT_EQ(cls.stored_order, name == "smallint" || name == "integer" || name == "bigint" ||
                                    name == "oid" || name == "bytea" || name == "uuid");
  }
}

// citext holds 'a' and 'A' equal under any collation; other text types only under a
// nondeterministic one.
TEST(PgTypes, LooseEqualityNamesCitextOrTheNondeterministicCollation) {
  const std::string citext =
      "the type citext, which holds some different values equal ('a' and 'A')";
  EXPECT_EQ(LooseEquality(ClassifyType("citext", 'b'), nullptr), citext);
  EXPECT_EQ(LooseEquality(ClassifyType("citext", 'b'), "ci"), citext);
  EXPECT_EQ(LooseEquality(ClassifyType("text", 'b'), "ci"),
            "the nondeterministic collation \"ci\", which holds some different values equal "
            "('a' and 'A')");
  EXPECT_NE(LooseEquality(ClassifyType("interval", 'b'), nullptr).find("'1 day' and '24:00:00'"),
            std::string::npos);
  EXPECT_NE(LooseEquality(ClassifyType("bpchar", 'b'), nullptr).find("trailing spaces"),
            std::string::npos);
  EXPECT_EQ(LooseEquality(ClassifyType("character(3)", 'b'), nullptr), "");
  EXPECT_EQ(LooseEquality(ClassifyType("text", 'b'), nullptr), "");
  EXPECT_EQ(LooseEquality(ClassifyType("character varying(5)", 'b'), nullptr), "");
}

TEST(PgTypes, TimestamptzWithOrWithoutAPrecision) {
  EXPECT_TRUE(IsTimestamptz("timestamp with time zone"));
  EXPECT_TRUE(IsTimestamptz("timestamp(3) with time zone"));
  EXPECT_TRUE(IsTimestamptz("timestamp(0) with time zone"));
  EXPECT_FALSE(IsTimestamptz("timestamp without time zone"));
  EXPECT_FALSE(IsTimestamptz("timestamp(6) without time zone"));
  EXPECT_FALSE(IsTimestamptz("time with time zone"));
  EXPECT_FALSE(IsTimestamptz("timestamp with time zone[]"));
}

TEST(PgTypes, DecoderByOid) {
  EXPECT_EQ(DecoderForOid(20, -1), PgDecoder::kInt);
  EXPECT_EQ(DecoderForOid(21, -1), PgDecoder::kInt);
  EXPECT_EQ(DecoderForOid(23, -1), PgDecoder::kInt);
  EXPECT_EQ(DecoderForOid(26, -1), PgDecoder::kInt);
  EXPECT_EQ(DecoderForOid(700, -1), PgDecoder::kReal);
  EXPECT_EQ(DecoderForOid(701, -1), PgDecoder::kReal);
  EXPECT_EQ(DecoderForOid(16, -1), PgDecoder::kBool);
  EXPECT_EQ(DecoderForOid(17, -1), PgDecoder::kBytea);
  EXPECT_EQ(DecoderForOid(1184, -1), PgDecoder::kTimestampTz);
  EXPECT_EQ(DecoderForOid(1114, -1), PgDecoder::kTimestamp);
  EXPECT_EQ(DecoderForOid(1184, 3), PgDecoder::kTimestampTz);   // timestamptz(3)
  EXPECT_EQ(DecoderForOid(1184, 0), PgDecoder::kTimestampTz0);  // timestamptz(0)
  EXPECT_EQ(DecoderForOid(1114, 0), PgDecoder::kTimestamp0);
  EXPECT_EQ(DecoderForOid(1700, -1), PgDecoder::kText);  // numeric stays exact text
  EXPECT_EQ(DecoderForOid(1082, -1), PgDecoder::kText);  // date is already YYYY-MM-DD
  EXPECT_EQ(DecoderForOid(25, -1), PgDecoder::kText);
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
      // A column with fractional precision: six digits on every value, a whole second's too
      // ('…:00Z' would sort after '…:00.5Z' as text); timestamp(0) never has a fraction.
      {PgDecoder::kTimestampTz, "2024-01-01 10:00:00+00", "text:2024-01-01T10:00:00.000000Z", true},
      {PgDecoder::kTimestampTz0, "2024-01-01 10:00:00+00", "text:2024-01-01T10:00:00Z", true},
      {PgDecoder::kTimestampTz0, "0044-03-15 12:00:00+00 BC", "text:0044-03-15 12:00:00+00 BC",
       true},
      {PgDecoder::kTimestamp0, "2004-10-19 10:23:54", "text:2004-10-19T10:23:54", true},
      {PgDecoder::kTimestamp0, "infinity", "text:infinity", true},
      {PgDecoder::kTimestampTz, "2024-01-01 10:00:00.5+00", "text:2024-01-01T10:00:00.500000Z",
       true},
      {PgDecoder::kTimestampTz, "2024-01-01 10:00:00.123456+00", "text:2024-01-01T10:00:00.123456Z",
       true},
      {PgDecoder::kTimestampTz, "12024-01-01 10:00:00+00", "text:12024-01-01T10:00:00.000000Z",
       true},
      {PgDecoder::kTimestampTz, "3004-10-19 18:23:54.123456+00 BC",
       "text:3004-10-19 18:23:54.123456+00 BC", true},
      {PgDecoder::kTimestampTz, "infinity", "text:infinity", true},
      {PgDecoder::kTimestampTz, "-infinity", "text:-infinity", true},
      {PgDecoder::kTimestampTz, "2024-01-01 10:00:00+02", "text:2024-01-01 10:00:00+02", false},
      {PgDecoder::kTimestamp, "2004-10-19 10:23:54", "text:2004-10-19T10:23:54.000000", true},
      {PgDecoder::kTimestamp, "3004-10-19 10:23:54 BC", "text:3004-10-19 10:23:54 BC", true},
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
  EXPECT_EQ(b.bytes(b.at(0, 4)), "2024-01-02T03:04:05.000000Z");
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

// Bytes from hex: the binary send forms below are what PostgreSQL 15's *_send functions
// return for the values named beside them.
std::string Hex(std::string_view hex) {
  std::string out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    out += static_cast<char>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16));
  }
  return out;
}

// One binary value decoded alone: the cell's text, or "#<int>", "~<real>", "NULL".
std::string Binary(PgBinary decoder, std::string_view hex) {
  const std::string bytes = Hex(hex);
  RowBatch b(1);
  if (!AppendPgBinary(decoder, bytes.data(), bytes.size(), b)) return "refused";
  EXPECT_EQ(b.rows(), 1u);
  const Cell& c = b.at(0, 0);
  switch (c.type) {
    case ValueType::kInt:
      return "#" + std::to_string(c.i);
    case ValueType::kReal:
      return "~" + std::to_string(c.d);
    case ValueType::kBlob:
      return "blob:" + std::string(b.bytes(c));
    case ValueType::kText:
      return std::string(b.bytes(c));
    default:
      return "NULL";
  }
}

TEST(PgTypes, BinaryDecoderByOid) {
  EXPECT_EQ(BinaryDecoderForOid(20, -1), PgBinary::kInt8);
  EXPECT_EQ(BinaryDecoderForOid(1184, -1), PgBinary::kTimestampTz);
  EXPECT_EQ(BinaryDecoderForOid(1184, 6), PgBinary::kTimestampTz);
  EXPECT_EQ(BinaryDecoderForOid(1184, 0), PgBinary::kTimestampTz0);
  EXPECT_EQ(BinaryDecoderForOid(1114, 0), PgBinary::kTimestamp0);
  EXPECT_EQ(BinaryDecoderForOid(1700, -1), PgBinary::kNumeric);
  EXPECT_EQ(BinaryDecoderForOid(3802, -1), PgBinary::kJsonb);
  EXPECT_EQ(BinaryDecoderForOid(1043, -1), PgBinary::kText);
  // float4 (its text form depends on the server version), interval, inet, enums: text only.
  EXPECT_EQ(BinaryDecoderForOid(700, -1), PgBinary::kNone);
  EXPECT_EQ(BinaryDecoderForOid(1186, -1), PgBinary::kNone);
  EXPECT_EQ(BinaryDecoderForOid(869, -1), PgBinary::kNone);
  EXPECT_EQ(BinaryDecoderForOid(16385, -1), PgBinary::kNone);
}

// Each binary value decodes to the cell the text decoders make of the same value's text.
TEST(PgTypes, DecodesBinarySendForms) {
  EXPECT_EQ(Binary(PgBinary::kInt2, "ffff"), "#-1");
  EXPECT_EQ(Binary(PgBinary::kInt4, "80000000"), "#-2147483648");
  EXPECT_EQ(Binary(PgBinary::kInt8, "8000000000000000"), "#-9223372036854775808");
  EXPECT_EQ(Binary(PgBinary::kInt8, "7fffffffffffffff"), "#9223372036854775807");
  EXPECT_EQ(Binary(PgBinary::kOid, "ffffffff"), "#4294967295");
  EXPECT_EQ(Binary(PgBinary::kFloat8, "3ff8000000000000"), "~1.500000");
  EXPECT_EQ(Binary(PgBinary::kFloat8, "7ff8000000000000"), "NaN");
  EXPECT_EQ(Binary(PgBinary::kFloat8, "fff0000000000000"), "~-inf");
  EXPECT_EQ(Binary(PgBinary::kBool, "01"), "#1");
  EXPECT_EQ(Binary(PgBinary::kBool, "00"), "#0");
  EXPECT_EQ(Binary(PgBinary::kBytea, "00ff00"), std::string("blob:\0\xff\0", 8));
  EXPECT_EQ(Binary(PgBinary::kBytea, ""), "blob:");
  // timestamptz '2024-01-02 03:04:05.5+00'; the fraction always has six digits, a whole
  // second's too unless the column is timestamp(0).
  EXPECT_EQ(Binary(PgBinary::kTimestampTz, "0002b0ec851d9460"), "2024-01-02T03:04:05.500000Z");
  EXPECT_EQ(Binary(PgBinary::kTimestamp, "0002b0ec851d9460"), "2024-01-02T03:04:05.500000");
  EXPECT_EQ(Binary(PgBinary::kTimestampTz, "0002b0ec8515f340"), "2024-01-02T03:04:05.000000Z");
  EXPECT_EQ(Binary(PgBinary::kTimestamp, "0002b0ec8515f340"), "2024-01-02T03:04:05.000000");
  EXPECT_EQ(Binary(PgBinary::kTimestampTz0, "0002b0ec8515f340"), "2024-01-02T03:04:05Z");
  EXPECT_EQ(Binary(PgBinary::kTimestamp0, "0002b0ec8515f340"), "2024-01-02T03:04:05");
  // BC values and infinities keep PostgreSQL's own text, as the text decoder keeps it.
  EXPECT_EQ(Binary(PgBinary::kTimestampTz, "ff1af9e8fb4aa090"), "0044-03-15 12:00:00.25+00 BC");
  EXPECT_EQ(Binary(PgBinary::kTimestamp, "fd0f7fbdaf17e000"), "4713-01-01 00:00:00 BC");
  EXPECT_EQ(Binary(PgBinary::kTimestamp, "7fffff5bb3b29fff"), "294276-12-31T23:59:59.999999");
  EXPECT_EQ(Binary(PgBinary::kTimestampTz, "7fffffffffffffff"), "infinity");
  EXPECT_EQ(Binary(PgBinary::kTimestamp, "8000000000000000"), "-infinity");
  // Dates print as PostgreSQL prints them.
  EXPECT_EQ(Binary(PgBinary::kDate, "00002279"), "2024-02-29");
  EXPECT_EQ(Binary(PgBinary::kDate, "fff49d7b"), "0044-03-15 BC");
  EXPECT_EQ(Binary(PgBinary::kDate, "7fda970c"), "5874897-12-31");
  EXPECT_EQ(Binary(PgBinary::kDate, "7fffffff"), "infinity");
  EXPECT_EQ(Binary(PgBinary::kDate, "80000000"), "-infinity");
  // Numerics print as numeric_out prints them, scale and all.
  EXPECT_EQ(Binary(PgBinary::kNumeric, "000800040000000a04d2162e23340d801ed2007b11d722c4"),
            "12345678901234567890.0123456789");
  EXPECT_EQ(Binary(PgBinary::kNumeric, "0001fffd4000000a0064"), "-0.0000000001");
  EXPECT_EQ(Binary(PgBinary::kNumeric, "0000000000000002"), "0.00");
  EXPECT_EQ(Binary(PgBinary::kNumeric, "0003000100000001000100001388"), "10000.5");
  EXPECT_EQ(Binary(PgBinary::kNumeric, "0001ffff000000041388"), "0.5000");
  EXPECT_EQ(Binary(PgBinary::kNumeric, "00000000c0000000"), "NaN");
  EXPECT_EQ(Binary(PgBinary::kNumeric, "00000000f0000020"), "-Infinity");
  EXPECT_EQ(Binary(PgBinary::kUuid, "a0eebc999c0b4ef8bb6d6bb9bd380a11"),
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11");
  EXPECT_EQ(Binary(PgBinary::kJsonb, "017b226b223a205b312c2022c3a9225d7d"), "{\"k\": [1, \"é\"]}");
  EXPECT_EQ(Binary(PgBinary::kText, "c3a9"), "é");
}

TEST(PgTypes, RefusesMalformedBinaryValues) {
  EXPECT_EQ(Binary(PgBinary::kInt4, "0000"), "refused");
  EXPECT_EQ(Binary(PgBinary::kInt8, "00000000"), "refused");
  EXPECT_EQ(Binary(PgBinary::kBool, "02"), "refused");
  EXPECT_EQ(Binary(PgBinary::kTimestampTz, "0002b0ec851d94"), "refused");
  EXPECT_EQ(Binary(PgBinary::kDate, ""), "refused");
  EXPECT_EQ(Binary(PgBinary::kUuid, "a0eebc99"), "refused");
  EXPECT_EQ(Binary(PgBinary::kJsonb, "027b7d"), "refused");  // an unknown jsonb version
  EXPECT_EQ(Binary(PgBinary::kJsonb, ""), "refused");
  EXPECT_EQ(Binary(PgBinary::kNumeric, "0001000000000000"), "refused");      // a digit missing
  EXPECT_EQ(Binary(PgBinary::kNumeric, "00010000000000002710"), "refused");  // digit 10000
  EXPECT_EQ(Binary(PgBinary::kNumeric, "0000000012340000"), "refused");      // unknown sign
  EXPECT_EQ(Binary(PgBinary::kNone, "00"), "refused");
}

// A binary COPY stream: header and first row in one message, a row per message after it,
// then the trailer.
TEST(PgTypes, ReadsBinaryCopyMessages) {
  const std::string header = std::string("PGCOPY\n\xff\r\n\0", 11) + Hex("0000000000000000");
  // (7, 'ab', NULL) and (-1, '', 2024-01-02 03:04:05.5+00)
  const std::string row1 =
      Hex("0003"
          "0000000400000007"
          "000000026162"
          "ffffffff");
  const std::string row2 =
      Hex("0003"
          "00000004ffffffff"
          "00000000"
          "000000080002b0ec851d9460");
  const std::string trailer = Hex("ffff");
  const std::vector<PgBinary> decoders = {PgBinary::kInt4, PgBinary::kText, PgBinary::kTimestampTz};
  BinaryCopyReader reader(decoders);
  RowBatch b(decoders.size());
  ASSERT_TRUE(reader.Feed(header + row1, b));
  ASSERT_TRUE(reader.Feed(row2, b));
  EXPECT_FALSE(reader.finished());
  ASSERT_TRUE(reader.Feed(trailer, b));
  EXPECT_TRUE(reader.finished());
  ASSERT_EQ(b.rows(), 2u);
  EXPECT_EQ(b.at(0, 0).i, 7);
  EXPECT_EQ(b.bytes(b.at(0, 1)), "ab");
  EXPECT_EQ(b.at(0, 2).type, ValueType::kNull);
  EXPECT_EQ(b.at(1, 0).i, -1);
  EXPECT_EQ(b.at(1, 1).type, ValueType::kText);  // an empty string is not NULL
  EXPECT_EQ(b.bytes(b.at(1, 1)), "");
  EXPECT_EQ(b.bytes(b.at(1, 2)), "2024-01-02T03:04:05.500000Z");
  // An empty result: header and trailer in one message.
  BinaryCopyReader empty(decoders);
  RowBatch none(decoders.size());
  ASSERT_TRUE(empty.Feed(header + trailer, none));
  EXPECT_TRUE(empty.finished());
  EXPECT_EQ(none.rows(), 0u);

  auto refused = [&decoders](std::vector<std::string> messages) {
    BinaryCopyReader r(decoders);
    RowBatch batch(decoders.size());
    for (const auto& m : messages) {
      if (!r.Feed(m, batch)) return true;
    }
    return false;
  };
  EXPECT_FALSE(refused({header + row1, row2, trailer}));
  EXPECT_TRUE(refused({row1}));                                      // no header
  EXPECT_TRUE(refused({"PGCOPY\n"}));                                // a cut header
  EXPECT_TRUE(refused({header + row1.substr(0, row1.size() - 1)}));  // a cut row
  EXPECT_TRUE(refused({header + Hex("0002") + row1.substr(2)}));     // too few fields
  EXPECT_TRUE(refused({header + row1, trailer, row2}));              // a row after the end
  EXPECT_TRUE(refused({header + Hex("000000017fffffff")}));          // a field past the end
  // Rows carrying OIDs (flag bit 16) are not what siphon asked for, and bits 17-31 mark
  // format changes it does not know; bits 0-15 may be ignored.
  const std::string signature("PGCOPY\n\xff\r\n\0", 11);
  EXPECT_TRUE(refused({signature + Hex("0001000000000000") + row1}));
  EXPECT_TRUE(refused({signature + Hex("8000000000000000") + row1}));
  EXPECT_FALSE(refused({signature + Hex("0000800100000000") + row1, trailer}));
}

}  // namespace
}  // namespace siphon::postgres

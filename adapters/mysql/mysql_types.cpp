#include "adapters/mysql/mysql_types.hpp"
#include "runtime/base/ascii.hpp"

#include <mysql.h>

#include <cctype>
#include <charconv>
#include <cstring>

namespace siphon::mysql {

namespace {

constexpr unsigned kBinaryCharset = 63;

constexpr MysqlTypeClass kInteger{ColumnType::kInteger, OrderKind::kNumber, true};
// Values up to 2^63-1 must stay INTEGER and larger ones become exact TEXT (DESIGN §5), so
// the target column needs BLOB affinity, which stores each value as given: a TEXT column
// would turn 5 into '5' and an INTEGER one 18446744073709551615 into a lossy REAL.
constexpr MysqlTypeClass kWideInteger{ColumnType::kAny, OrderKind::kNumber};
constexpr MysqlTypeClass kFloat{ColumnType::kReal, OrderKind::kNumber};
// FLOAT is single precision: the text the server prints (0.1) is not the value it compares
// (0.100000001…), so a FLOAT cursor would re-read its last row forever.
constexpr MysqlTypeClass kSingle{ColumnType::kReal, OrderKind::kOther};
constexpr MysqlTypeClass kDecimal{ColumnType::kText, OrderKind::kNumber};
constexpr MysqlTypeClass kString{ColumnType::kText, OrderKind::kText};
constexpr MysqlTypeClass kDocument{ColumnType::kText, OrderKind::kOther};
constexpr MysqlTypeClass kBinary{ColumnType::kBlob, OrderKind::kOther};
// BINARY(n) and VARBINARY(n) (uuids as 16 bytes) compare byte by byte: keys and cursors.
constexpr MysqlTypeClass kShortBinary{ColumnType::kBlob, OrderKind::kBytes, true};
constexpr MysqlTypeClass kTime{ColumnType::kText, OrderKind::kTime};
// TIME (-838:59:59 to 838:59:59, a duration as much as a time of day) is a key or cursor
// column like text: the server compares it with the value siphon stored ('-00:00:00.500000')
// as a time, and cuts every page itself, so that its text does not sort as the times do
// ('-10:00:00' before '-100:00:00', '100:00:00' before '23:00:00') does not matter. It is no
// moment: no lookback, no safe horizon.
constexpr MysqlTypeClass kDuration{ColumnType::kText, OrderKind::kText};
// An ENUM or SET whose members are known pages by the number the server orders it by (its
// member's position, its bits), which the cursor literal gives (mysql_sql.cpp).
constexpr MysqlTypeClass kMembers{ColumnType::kText, OrderKind::kText};

struct NamedClass {
  std::string_view name;
  MysqlTypeClass cls;
};

// DATA_TYPE values of information_schema.COLUMNS (MySQL 5.7/8 and MariaDB 10.x).
constexpr NamedClass kNamed[] = {
    {"tinyint", kInteger},
    {"smallint", kInteger},
    {"mediumint", kInteger},
    {"int", kInteger},
    {"integer", kInteger},
    {"bigint", kInteger},
    {"year", kInteger},
    {"bit", kInteger},
    {"float", kSingle},
    {"double", kFloat},
    {"double precision", kFloat},
    {"real", kFloat},
    {"decimal", kDecimal},
    {"numeric", kDecimal},
    {"char", kString},
    {"varchar", kString},
    {"tinytext", kString},
    {"text", kString},
    {"mediumtext", kString},
    {"longtext", kString},
    {"uuid", kString},
    // ENUM orders by member index, not by its text: without its members (a query's column)
    // it cannot be a key or cursor; ClassifyType takes one with members apart (kMembers).
    {"enum", kDocument},
    {"set", kDocument},
    {"json", kDocument},
    {"time", kDuration},
    {"inet4", kDocument},
    {"inet6", kDocument},
    {"date", kTime},
    {"datetime", kTime},
    {"timestamp", kTime},
    {"binary", kShortBinary},
    {"varbinary", kShortBinary},
    {"tinyblob", kBinary},
    {"blob", kBinary},
    {"mediumblob", kBinary},
    {"longblob", kBinary},
    {"geometry", kBinary},
    {"point", kBinary},
    {"linestring", kBinary},
    {"polygon", kBinary},
    {"multipoint", kBinary},
    {"multilinestring", kBinary},
    {"multipolygon", kBinary},
    {"geometrycollection", kBinary},
};

// '0000-00-00…' and dates with a zero month or day, which MySQL stores in non-strict modes.
bool IsZeroDate(const char* data, size_t size) {
  if (size < 10 || data[4] != '-' || data[7] != '-') return false;
  return (data[5] == '0' && data[6] == '0') || (data[8] == '0' && data[9] == '0');
}

// 'YYYY-MM-DD HH:MM:SS[.f…]' → 'YYYY-MM-DDTHH:MM:SS[.ffffff][Z]'.
DecodeOutcome AppendDateTime(const char* data, size_t size, bool utc, RowBatch& batch) {
  if (IsZeroDate(data, size)) {
    batch.AddNull();
    return DecodeOutcome::kZeroDate;
  }
  std::string_view text(data, size);
  if (size < 19 || text[10] != ' ') {
    batch.AddText(text);
    return DecodeOutcome::kInvalid;
  }
  std::string_view fraction;
  if (size > 19) {
    if (text[19] != '.' || size - 20 > 6) {
      batch.AddText(text);
      return DecodeOutcome::kInvalid;
    }
    fraction = text.substr(20);
  }
  char* p = batch.AddTextBuffer(19 + (fraction.empty() ? 0 : 7) + (utc ? 1 : 0));
  memcpy(p, data, 19);
  p[10] = 'T';
  p += 19;
  if (!fraction.empty()) {
    *p++ = '.';
    memcpy(p, fraction.data(), fraction.size());
    p += fraction.size();
    for (size_t i = fraction.size(); i < 6; ++i) *p++ = '0';
  }
  if (utc) *p = 'Z';
  return DecodeOutcome::kOk;
}

void AppendUnsigned(uint64_t v, std::string_view text, RowBatch& batch) {
  if (v <= static_cast<uint64_t>(INT64_MAX)) {
    batch.AddInt(static_cast<int64_t>(v));
  } else {
    batch.AddText(text);
  }
}

}  // namespace

std::optional<std::vector<std::string>> EnumMembers(std::string_view column_type) {
  std::string_view rest;
  for (std::string_view prefix : {"enum(", "set("}) {
    if (AsciiLower(column_type.substr(0, prefix.size())) == prefix) {
      rest = column_type.substr(prefix.size());
    }
  }
  if (rest.empty()) return std::nullopt;
  std::vector<std::string> members;
  size_t i = 0;
  while (i < rest.size() && rest[i] == '\'') {
    std::string member;
    for (++i;; ++i) {
      if (i >= rest.size()) return std::nullopt;
      if (rest[i] == '\\' && i + 1 < rest.size()) {
        member.push_back(rest[++i]);
      } else if (rest[i] == '\'' && i + 1 < rest.size() && rest[i + 1] == '\'') {
        member.push_back('\'');
        ++i;
      } else if (rest[i] == '\'') {
        break;
      } else {
        member.push_back(rest[i]);
      }
    }
    members.push_back(std::move(member));
    ++i;  // the closing quote
    if (i < rest.size() && rest[i] == ',') {
      ++i;
    } else {
      break;
    }
  }
  if (members.empty() || i + 1 != rest.size() || rest[i] != ')') return std::nullopt;
  return members;
}

std::optional<uint64_t> EnumNumber(const std::vector<std::string>& members, bool set,
                                   std::string_view value) {
  auto position = [&](std::string_view member) -> std::optional<uint64_t> {
    for (size_t i = 0; i < members.size(); ++i) {
      if (members[i] == member) return i + 1;
    }
    return std::nullopt;
  };
  if (!set) {
    std::optional<uint64_t> at = position(value);
    return at || !value.empty() ? at : std::optional<uint64_t>(0);
  }
  if (members.size() > 64) return std::nullopt;
  uint64_t bits = 0;
  while (!value.empty()) {
    size_t comma = value.find(',');
    std::optional<uint64_t> at = position(value.substr(0, comma));
    if (!at) return std::nullopt;
    bits |= uint64_t{1} << (*at - 1);
    value = comma == std::string_view::npos ? std::string_view() : value.substr(comma + 1);
  }
  return bits;
}

bool IsLossyCharset(std::string_view charset) {
  const std::string name = AsciiLower(charset);
  return !name.empty() && name != "utf8mb4" && name != "utf8mb3" && name != "utf8" &&
         name != "latin1" && name != "binary";
}

bool IsSingleFloat(std::string_view column_type) {
  return AsciiLower(column_type).rfind("float", 0) == 0;
}

MysqlTypeClass ClassifyType(std::string_view data_type, std::string_view column_type) {
  std::string name = AsciiLower(data_type);
  std::string full = AsciiLower(column_type);
  if (name == "bigint" && full.find("unsigned") != std::string::npos) return kWideInteger;
  if (name == "bit" && (full == "bit(64)")) return kWideInteger;
  if ((name == "enum" || name == "set") && EnumMembers(full)) return kMembers;
  for (const auto& n : kNamed) {
    if (n.name == name) return n.cls;
  }
  return kDocument;
}

namespace {

// "name(width)" and the attributes COLUMN_TYPE appends to a number.
MysqlColumnType Number(const char* name, std::string size, unsigned flags) {
  MysqlColumnType out{name, name + size};
  if (flags & UNSIGNED_FLAG) out.column_type += " unsigned";
  if (flags & ZEROFILL_FLAG) out.column_type += " zerofill";
  return out;
}

// A time type with its fractional digits; "unknown" (NOT_FIXED_DEC) reads as up to 6.
MysqlColumnType Temporal(const char* name, unsigned decimals) {
  if (decimals == 0) return {name, name};
  return {name, std::string(name) + "(" + std::to_string(decimals > 6 ? 6 : decimals) + ")"};
}

// TINYTEXT … LONGTEXT (TINYBLOB … LONGBLOB) by the most characters (bytes) a value holds.
MysqlColumnType LongString(bool binary, unsigned long chars) {
  const char* size = chars <= 0xff       ? "tiny"
                     : chars <= 0xffff   ? ""
                     : chars <= 0xffffff ? "medium"
                                         : "long";
  std::string name = std::string(size) + (binary ? "blob" : "text");
  return {name, name};
}

}  // namespace

MysqlColumnType ColumnTypeOf(const MysqlField& field) {
  if (!field.type_name.empty()) {
    std::string name = AsciiLower(field.type_name);
    return {name, name};
  }
  const unsigned flags = field.flags;
  if (flags & ENUM_FLAG) return {"enum", "enum"};
  if (flags & SET_FLAG) return {"set", "set"};
  const bool binary = field.charsetnr == kBinaryCharset;
  // The server gives a string's width in bytes of the connection's character set.
  const unsigned long chars = field.length / (field.mbmaxlen > 0 ? field.mbmaxlen : 1);
  const std::string width = "(" + std::to_string(field.length) + ")";
  switch (field.type) {
    case MYSQL_TYPE_TINY:
      return Number("tinyint", width, flags);
    case MYSQL_TYPE_SHORT:
      return Number("smallint", width, flags);
    case MYSQL_TYPE_INT24:
      return Number("mediumint", width, flags);
    case MYSQL_TYPE_LONG:
      return Number("int", width, flags);
    case MYSQL_TYPE_LONGLONG:
      return Number("bigint", width, flags);
    case MYSQL_TYPE_FLOAT:
      return Number("float", "", flags);
    case MYSQL_TYPE_DOUBLE:
      return Number("double", "", flags);
    case MYSQL_TYPE_DECIMAL:
    case MYSQL_TYPE_NEWDECIMAL: {
      // The width counts the digits, the point (when there is a scale) and the sign.
      const unsigned long scale = field.decimals;
      unsigned long overhead = (scale > 0 ? 1 : 0) + ((flags & UNSIGNED_FLAG) ? 0 : 1);
      unsigned long precision = field.length > overhead ? field.length - overhead : 1;
      if (precision < scale) precision = scale;
      return Number("decimal", "(" + std::to_string(precision) + "," + std::to_string(scale) + ")",
                    flags);
    }
    case MYSQL_TYPE_YEAR:
      return {"year", "year" + width};
    case MYSQL_TYPE_BIT:
      return {"bit", "bit" + width};
    case MYSQL_TYPE_DATE:
    case MYSQL_TYPE_NEWDATE:
      return {"date", "date"};
    case MYSQL_TYPE_DATETIME:
    case MYSQL_TYPE_DATETIME2:
      return Temporal("datetime", field.decimals);
    case MYSQL_TYPE_TIMESTAMP:
    case MYSQL_TYPE_TIMESTAMP2:
      return Temporal("timestamp", field.decimals);
    case MYSQL_TYPE_TIME:
    case MYSQL_TYPE_TIME2:
      return Temporal("time", field.decimals);
    case MYSQL_TYPE_JSON:
      return {"json", "json"};
    case MYSQL_TYPE_GEOMETRY:
      return {"geometry", "geometry"};
    case MYSQL_TYPE_ENUM:
      return {"enum", "enum"};
    case MYSQL_TYPE_SET:
      return {"set", "set"};
    case MYSQL_TYPE_STRING:
      if (binary) return {"binary", "binary" + width};
      return {"char", "char(" + std::to_string(chars) + ")"};
    case MYSQL_TYPE_VAR_STRING:
    case MYSQL_TYPE_VARCHAR:
      if (binary) return {"varbinary", "varbinary" + width};
      return {"varchar", "varchar(" + std::to_string(chars) + ")"};
    case MYSQL_TYPE_TINY_BLOB:
    case MYSQL_TYPE_MEDIUM_BLOB:
    case MYSQL_TYPE_LONG_BLOB:
    case MYSQL_TYPE_BLOB:
      return LongString(binary, chars);
    case MYSQL_TYPE_NULL:
      return {"null", "null"};
    default:
      return {"unknown", "unknown"};
  }
}

MysqlDecoder DecoderFor(int field_type, unsigned flags, unsigned charsetnr) {
  switch (field_type) {
    case MYSQL_TYPE_TINY:
    case MYSQL_TYPE_SHORT:
    case MYSQL_TYPE_INT24:
    case MYSQL_TYPE_LONG:
      return MysqlDecoder::kInt;
    case MYSQL_TYPE_LONGLONG:
      return (flags & UNSIGNED_FLAG) ? MysqlDecoder::kUnsigned : MysqlDecoder::kInt;
    case MYSQL_TYPE_YEAR:
      return MysqlDecoder::kYear;
    case MYSQL_TYPE_FLOAT:
    case MYSQL_TYPE_DOUBLE:
      return MysqlDecoder::kReal;
    case MYSQL_TYPE_DECIMAL:
    case MYSQL_TYPE_NEWDECIMAL:
      return MysqlDecoder::kDecimal;
    case MYSQL_TYPE_BIT:
      return MysqlDecoder::kBit;
    case MYSQL_TYPE_DATE:
    case MYSQL_TYPE_NEWDATE:
      return MysqlDecoder::kDate;
    case MYSQL_TYPE_DATETIME:
    case MYSQL_TYPE_DATETIME2:
      return MysqlDecoder::kDateTime;
    case MYSQL_TYPE_TIMESTAMP:
    case MYSQL_TYPE_TIMESTAMP2:
      return MysqlDecoder::kTimestamp;
    case MYSQL_TYPE_TIME:
    case MYSQL_TYPE_TIME2:
      return MysqlDecoder::kTime;
    // MySQL 8 sends JSON with the binary charset, yet its text is utf8mb4.
    case MYSQL_TYPE_JSON:
      return MysqlDecoder::kText;
    case MYSQL_TYPE_GEOMETRY:
      return MysqlDecoder::kBlob;
    case MYSQL_TYPE_STRING:
    case MYSQL_TYPE_VAR_STRING:
    case MYSQL_TYPE_VARCHAR:
    case MYSQL_TYPE_TINY_BLOB:
    case MYSQL_TYPE_MEDIUM_BLOB:
    case MYSQL_TYPE_LONG_BLOB:
    case MYSQL_TYPE_BLOB:
      // ENUM and SET arrive as MYSQL_TYPE_STRING with their flag; they are always text.
      if (flags & (ENUM_FLAG | SET_FLAG)) return MysqlDecoder::kText;
      return charsetnr == kBinaryCharset ? MysqlDecoder::kBlob : MysqlDecoder::kText;
    default:
      return MysqlDecoder::kText;
  }
}

DecodeOutcome AppendMysqlValue(MysqlDecoder decoder, const char* data, size_t size,
                               RowBatch& batch) {
  const char* end = data + size;
  switch (decoder) {
    case MysqlDecoder::kInt:
    case MysqlDecoder::kYear: {
      int64_t v = 0;
      auto r = std::from_chars(data, end, v);
      if (r.ec != std::errc() || r.ptr != end) break;
      batch.AddInt(v);
      return DecodeOutcome::kOk;
    }
    case MysqlDecoder::kUnsigned: {
      uint64_t v = 0;
      auto r = std::from_chars(data, end, v);
      if (r.ec != std::errc() || r.ptr != end) break;
      AppendUnsigned(v, std::string_view(data, size), batch);
      return DecodeOutcome::kOk;
    }
    case MysqlDecoder::kReal: {
      double v = 0;
      auto r = std::from_chars(data, end, v);
      if (r.ec != std::errc() || r.ptr != end) break;
      batch.AddReal(v);
      return DecodeOutcome::kOk;
    }
    case MysqlDecoder::kFloat: {
      double v = 0;
      auto r = std::from_chars(data, end, v);
      if (r.ec != std::errc() || r.ptr != end) break;
      // The double is the float's exact value; the float's shortest decimal is what was
      // stored (1234567, 0.1), as PostgreSQL prints a float4.
      const float single = static_cast<float>(v);
      if (static_cast<double>(single) == v) {
        char buf[32];
        auto printed = std::to_chars(buf, buf + sizeof buf, single);
        std::from_chars(buf, printed.ptr, v);
      }
      batch.AddReal(v);
      return DecodeOutcome::kOk;
    }
    case MysqlDecoder::kBit: {
      if (size > 8) break;
      uint64_t v = 0;
      for (size_t i = 0; i < size; ++i) v = (v << 8) | static_cast<unsigned char>(data[i]);
      if (v <= static_cast<uint64_t>(INT64_MAX)) {
        batch.AddInt(static_cast<int64_t>(v));
      } else {
        char buf[24];
        auto r = std::to_chars(buf, buf + sizeof buf, v);
        batch.AddText(std::string_view(buf, r.ptr - buf));
      }
      return DecodeOutcome::kOk;
    }
    case MysqlDecoder::kDate:
      if (IsZeroDate(data, size)) {
        batch.AddNull();
        return DecodeOutcome::kZeroDate;
      }
      batch.AddText(std::string_view(data, size));
      return DecodeOutcome::kOk;
    case MysqlDecoder::kDateTime:
      return AppendDateTime(data, size, false, batch);
    case MysqlDecoder::kTimestamp:
      return AppendDateTime(data, size, true, batch);
    case MysqlDecoder::kDecimal:
    case MysqlDecoder::kTime:
    case MysqlDecoder::kText:
      batch.AddText(std::string_view(data, size));
      return DecodeOutcome::kOk;
    case MysqlDecoder::kBlob:
      batch.AddBlob(std::string_view(data, size));
      return DecodeOutcome::kOk;
  }
  batch.AddText(std::string_view(data, size));
  return DecodeOutcome::kInvalid;
}

std::string TimeForMysql(std::string_view iso) {
  std::string out(iso);
  if (!out.empty() && (out.back() == 'Z' || out.back() == 'z')) out.pop_back();
  if (out.size() > 10 && (out[10] == 'T' || out[10] == 't')) out[10] = ' ';
  return out;
}

}  // namespace siphon::mysql

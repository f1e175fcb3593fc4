#include "adapters/postgres/pg_types.hpp"

#include <algorithm>
#include <charconv>
#include <climits>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>

namespace siphon::postgres {

namespace {

// pg_type OIDs (src/include/catalog/pg_type.dat); stable across PostgreSQL versions.
constexpr uint32_t kBoolOid = 16;
constexpr uint32_t kByteaOid = 17;
constexpr uint32_t kNameOid = 19;
constexpr uint32_t kInt8Oid = 20;
constexpr uint32_t kInt2Oid = 21;
constexpr uint32_t kInt4Oid = 23;
constexpr uint32_t kTextOid = 25;
constexpr uint32_t kOidOid = 26;
constexpr uint32_t kJsonOid = 114;
constexpr uint32_t kFloat4Oid = 700;
constexpr uint32_t kFloat8Oid = 701;
constexpr uint32_t kBpcharOid = 1042;
constexpr uint32_t kVarcharOid = 1043;
constexpr uint32_t kDateOid = 1082;
constexpr uint32_t kTimestampOid = 1114;
constexpr uint32_t kTimestampTzOid = 1184;
constexpr uint32_t kNumericOid = 1700;
constexpr uint32_t kUuidOid = 2950;
constexpr uint32_t kJsonbOid = 3802;

struct NamedClass {
  std::string_view name;
  PgTypeClass cls;
};

// Base type names as format_type() spells them, without type modifiers.
constexpr PgTypeClass kInteger{
    ColumnType::kInteger, OrderKind::kNumber, false, false, nullptr, true};
constexpr PgTypeClass kFloat{ColumnType::kReal, OrderKind::kNumber, false, false};
constexpr PgTypeClass kNumeric{ColumnType::kText, OrderKind::kNumber, false, false};
constexpr PgTypeClass kBoolean{ColumnType::kInteger, OrderKind::kOther, false, false};
constexpr PgTypeClass kString{ColumnType::kText, OrderKind::kText, false, false};
// A uuid orders by its 16 bytes, and its text (lower-case hex digits, dashes in fixed places)
// in the same order, byte by byte as SQLite compares text.
constexpr PgTypeClass kUuid{ColumnType::kText, OrderKind::kText, false, false, nullptr, true};
constexpr PgTypeClass kDocument{ColumnType::kText, OrderKind::kOther, false, false};
// bytea compares byte by byte, a shorter value first, as SQLite compares blobs.
constexpr PgTypeClass kBinary{ColumnType::kBlob, OrderKind::kBytes, false, false, nullptr, true};
constexpr PgTypeClass kTime{ColumnType::kText, OrderKind::kTime, false, false};
// Types whose equal values can differ in their text, and no page says which: citext compares
// its values lowercased, bpchar (character without a length, which keeps the spaces it was
// given) without trailing spaces, interval as a span with 30-day months and 24-hour days.
constexpr PgTypeClass kCaseInsensitiveString{
    ColumnType::kText, OrderKind::kText, false, false,
    "the type citext, which holds some different values equal ('a' and 'A')"};
constexpr PgTypeClass kUnpaddedCharacter{
    ColumnType::kText, OrderKind::kText, false, false,
    "the type bpchar (character without a length), which holds values equal but for their "
    "trailing spaces ('a' and 'a ')"};
constexpr PgTypeClass kInterval{ColumnType::kText, OrderKind::kText, false, true,
                                "the type interval, which holds some different values equal "
                                "('1 day' and '24:00:00', '1 mon' and '30 days')"};
// Kept as their text form, which reads back as the same value: a key or cursor on one pages
// by the server's own order (`col > $1::inet`), whatever order their text has.
constexpr PgTypeClass kOrderedTextForm{ColumnType::kText, OrderKind::kText, false, true};

constexpr NamedClass kNamed[] = {
    {"smallint", kInteger},
    {"integer", kInteger},
    {"bigint", kInteger},
    {"oid", kInteger},
    {"real", kFloat},
    {"double precision", kFloat},
    {"numeric", kNumeric},
    {"boolean", kBoolean},
    {"text", kString},
    {"character varying", kString},
    {"character", kString},
    {"bpchar", kUnpaddedCharacter},
    {"\"char\"", kString},
    {"name", kString},
    {"citext", kCaseInsensitiveString},
    {"uuid", kUuid},
    {"json", kDocument},
    {"jsonb", kDocument},
    {"bytea", kBinary},
    {"date", kTime},
    {"timestamp without time zone", kTime},
    {"timestamp with time zone", kTime},
    {"time without time zone", kOrderedTextForm},
    {"time with time zone", kOrderedTextForm},
    {"interval", kInterval},
    {"inet", kOrderedTextForm},
    {"cidr", kOrderedTextForm},
    {"macaddr", kOrderedTextForm},
    {"macaddr8", kOrderedTextForm},
    {"bit", kOrderedTextForm},
    {"bit varying", kOrderedTextForm},
    {"pg_lsn", kOrderedTextForm},
};

// "timestamp(3) with time zone" -> "timestamp with time zone"; "numeric(30,10)" -> "numeric".
std::string StripModifiers(std::string_view name) {
  std::string out;
  out.reserve(name.size());
  int depth = 0;
  for (char ch : name) {
    if (ch == '(') {
      ++depth;
    } else if (ch == ')') {
      if (depth > 0) --depth;
    } else if (depth == 0) {
      out.push_back(ch);
    }
  }
  return out;
}

bool ParseInt(const char* text, size_t size, int64_t& out) {
  auto [end, ec] = std::from_chars(text, text + size, out);
  return ec == std::errc() && end == text + size;
}

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool AppendBytea(const char* text, size_t size, RowBatch& batch) {
  if (size < 2 || text[0] != '\\' || text[1] != 'x' || size % 2 != 0) return false;
  // RowBatch has no in-place blob appender: decode into a reused buffer, then copy once.
  thread_local std::string bytes;
  size_t n = (size - 2) / 2;
  bytes.resize(n);
  for (size_t i = 0; i < n; ++i) {
    int hi = HexDigit(text[2 + 2 * i]);
    int lo = HexDigit(text[3 + 2 * i]);
    if (hi < 0 || lo < 0) return false;
    bytes[i] = static_cast<char>((hi << 4) | lo);
  }
  batch.AddBlob(bytes);
  return true;
}

// ISO output: "2024-01-01 10:00:00[.ffffff][+00]". BC values and infinities keep
// PostgreSQL's own text, which PostgreSQL parses back exactly when used as a cursor. The
// fraction gets six digits, and a whole second ".000000" when `fraction_always` (the column
// has fractional precision: see PgDecoder).
bool AppendTimestamp(const char* text, size_t size, bool utc, bool fraction_always,
                     RowBatch& batch) {
  std::string_view s(text, size);
  if (s.empty() || s.back() == 'C' || s[0] == 'i' || s[0] == '-') {
    batch.AddText(s);
    return true;
  }
  if (utc) {
    if (s.size() < 3 || s.substr(s.size() - 3) != "+00") return false;
    s.remove_suffix(3);
  }
  size_t space = s.find(' ');
  if (space == std::string_view::npos) return false;
  std::string_view date = s.substr(0, space);
  std::string_view time = s.substr(space + 1);
  std::string_view fraction;
  size_t dot = time.find('.');
  if (dot != std::string_view::npos) {
    fraction = time.substr(dot + 1);
    time = time.substr(0, dot);
    if (fraction.size() > 6) return false;
  }
  const bool dotted = fraction_always || !fraction.empty();
  // The exact length up front: no shrinking (and zero-filling) of the arena afterwards.
  const size_t length = date.size() + 1 + time.size() + (dotted ? 7 : 0) + (utc ? 1 : 0);
  char* p = batch.AddTextBuffer(length);
  memcpy(p, date.data(), date.size());
  p += date.size();
  *p++ = 'T';
  memcpy(p, time.data(), time.size());
  p += time.size();
  if (dotted) {
    // Always six digits, so values within one second sort as text the way they sort as time.
    *p++ = '.';
    p = std::copy(fraction.begin(), fraction.end(), p);  // none for a whole second
    for (size_t i = fraction.size(); i < 6; ++i) *p++ = '0';
  }
  if (utc) *p = 'Z';
  return true;
}

// --- binary send formats -------------------------------------------------------------------

uint64_t BigEndian(const char* p, size_t n) {
  uint64_t v = 0;
  for (size_t i = 0; i < n; ++i) v = v << 8 | static_cast<uint8_t>(p[i]);
  return v;
}

constexpr int64_t kUsecsPerDay = int64_t{86400} * 1000000;

// Days since 2000-01-01 (PostgreSQL's epoch for dates and timestamps) to the proleptic
// Gregorian calendar, as PostgreSQL's j2date does; the year is astronomical (0 is 1 BC).
void CivilFromDays(int64_t days, int64_t& year, int& month, int& day) {
  const int64_t z = days + 10957 + 719468;  // days since 0000-03-01
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const int64_t doe = z - era * 146097;
  const int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const int64_t mp = (5 * doy + 2) / 153;
  day = static_cast<int>(doy - (153 * mp + 2) / 5 + 1);
  month = static_cast<int>(mp < 10 ? mp + 3 : mp - 9);
  year = yoe + era * 400 + (month <= 2 ? 1 : 0);
}

char* Put2(char* p, int64_t v) {
  p[0] = static_cast<char>('0' + v / 10);
  p[1] = static_cast<char>('0' + v % 10);
  return p + 2;
}

// A year as PostgreSQL prints it: at least four digits, zero-padded.
char* PutYear(char* p, int64_t year) {
  char digits[24];
  size_t n = 0;
  do {
    digits[n++] = static_cast<char>('0' + year % 10);
    year /= 10;
  } while (year > 0);
  for (size_t i = n; i < 4; ++i) *p++ = '0';
  while (n > 0) *p++ = digits[--n];
  return p;
}

// "2024-02-29" or, before year 1, "0044-03-15" with `bc` set (PostgreSQL's ISO date).
char* PutDate(char* p, int64_t days, bool& bc) {
  int64_t year;
  int month, day;
  CivilFromDays(days, year, month, day);
  bc = year <= 0;
  p = PutYear(p, bc ? 1 - year : year);
  *p++ = '-';
  p = Put2(p, month);
  *p++ = '-';
  return Put2(p, day);
}

// The text the text decoders make of the same value: "2024-01-01T10:00:00.500000Z" (AD, the
// fraction always six digits, a whole second's too when `fraction_always`), PostgreSQL's
// own text for BC values ("0044-03-15 12:00:00.5+00 BC") and the infinities.
void AppendBinaryTimestamp(int64_t usecs, bool utc, bool fraction_always, RowBatch& batch) {
  if (usecs == INT64_MAX || usecs == INT64_MIN) {
    batch.AddText(usecs == INT64_MAX ? "infinity" : "-infinity");
    return;
  }
  int64_t days = usecs / kUsecsPerDay;
  int64_t time = usecs % kUsecsPerDay;
  if (time < 0) {
    time += kUsecsPerDay;
    --days;
  }
  char buf[64];
  bool bc = false;
  char* p = PutDate(buf, days, bc);
  *p++ = bc ? ' ' : 'T';
  const int64_t seconds = time / 1000000;
  p = Put2(p, seconds / 3600);
  *p++ = ':';
  p = Put2(p, seconds / 60 % 60);
  *p++ = ':';
  p = Put2(p, seconds % 60);
  if (int64_t fraction = time % 1000000; fraction != 0 || (fraction_always && !bc)) {
    *p++ = '.';
    for (int64_t unit = 100000; unit > 0; unit /= 10)
      *p++ = static_cast<char>('0' + fraction / unit % 10);
    if (bc) {
      while (p[-1] == '0') --p;  // PostgreSQL drops trailing zeros
    }
  }
  if (bc) {
    if (utc) p = std::copy_n("+00", 3, p);
    p = std::copy_n(" BC", 3, p);
  } else if (utc) {
    *p++ = 'Z';
  }
  batch.AddText(std::string_view(buf, static_cast<size_t>(p - buf)));
}

void AppendBinaryDate(int32_t days, RowBatch& batch) {
  if (days == INT32_MAX || days == INT32_MIN) {
    batch.AddText(days == INT32_MAX ? "infinity" : "-infinity");
    return;
  }
  char buf[32];
  bool bc = false;
  char* p = PutDate(buf, days, bc);
  if (bc) p = std::copy_n(" BC", 3, p);
  batch.AddText(std::string_view(buf, static_cast<size_t>(p - buf)));
}

// numeric_send: ndigits, weight, sign, dscale (int16 each), then ndigits base-10000 digits;
// printed as numeric_out prints it (get_str_from_var).
bool AppendBinaryNumeric(const char* data, size_t size, RowBatch& batch) {
  if (size < 8) return false;
  const int ndigits = static_cast<int16_t>(BigEndian(data, 2));
  const int weight = static_cast<int16_t>(BigEndian(data + 2, 2));
  const uint32_t sign = static_cast<uint32_t>(BigEndian(data + 4, 2));
  const int dscale = static_cast<int16_t>(BigEndian(data + 6, 2));
  if (ndigits < 0 || dscale < 0 || size != 8 + 2 * static_cast<size_t>(ndigits)) return false;
  switch (sign) {
    case 0xC000:
      batch.AddText("NaN");
      return true;
    case 0xD000:
      batch.AddText("Infinity");
      return true;
    case 0xF000:
      batch.AddText("-Infinity");
      return true;
    case 0x0000:
    case 0x4000:
      break;
    default:
      return false;
  }
  auto digit = [&](int d) -> int {
    return d >= 0 && d < ndigits ? static_cast<int>(BigEndian(data + 8 + 2 * d, 2)) : 0;
  };
  for (int d = 0; d < ndigits; ++d) {
    if (digit(d) > 9999) return false;
  }
  // The exact length first, so the text is written in place once.
  const int first = digit(0);
  const size_t first_width = first >= 1000 ? 4 : first >= 100 ? 3 : first >= 10 ? 2 : 1;
  const size_t length = (sign == 0x4000 ? 1 : 0) +
                        (weight < 0 ? 1 : first_width + 4 * static_cast<size_t>(weight)) +
                        (dscale > 0 ? 1 + static_cast<size_t>(dscale) : 0);
  char* p = batch.AddTextBuffer(length);
  char* const end = p + length;
  if (sign == 0x4000) *p++ = '-';
  int d = 0;
  if (weight < 0) {
    d = weight + 1;
    *p++ = '0';
  } else {
    for (; d <= weight; ++d) {
      const int group = digit(d);
      for (int unit = 1000; unit > 0; unit /= 10) {
        if (d > 0 || unit == 1 || group >= unit) *p++ = static_cast<char>('0' + group / unit % 10);
      }
    }
  }
  if (dscale > 0) {
    *p++ = '.';
    for (; p < end; ++d) {
      const int group = digit(d);
      for (int unit = 1000; unit > 0 && p < end; unit /= 10) {
        *p++ = static_cast<char>('0' + group / unit % 10);
      }
    }
  }
  return true;
}

void AppendBinaryUuid(const char* data, RowBatch& batch) {
  static constexpr char kHex[] = "0123456789abcdef";
  char* p = batch.AddTextBuffer(36);
  for (int i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) *p++ = '-';
    const auto byte = static_cast<uint8_t>(data[i]);
    *p++ = kHex[byte >> 4];
    *p++ = kHex[byte & 15];
  }
}

}  // namespace

std::string LooseEquality(const PgTypeClass& cls, const char* collation) {
  if (cls.loose_equality != nullptr) return cls.loose_equality;
  if (collation != nullptr) {
    return std::string("the nondeterministic collation \"") + collation +
           "\", which holds some different values equal ('a' and 'A')";
  }
  return {};
}

bool IsTimestamptz(std::string_view type_name) {
  return StripModifiers(type_name) == "timestamp with time zone";
}

PgTypeClass ClassifyType(std::string_view type_name, char typtype) {
  std::string name = StripModifiers(type_name);
  if (name.size() > 2 && name.compare(name.size() - 2, 2, "[]") == 0) {
    return PgTypeClass{ColumnType::kText, OrderKind::kOther, true, false};
  }
  for (const auto& n : kNamed) {
    if (n.name == name) return n.cls;
  }
  // Enums: their label as text; keys and cursors page in declaration order, on the server.
  if (typtype == 'e') return kString;
  return PgTypeClass{ColumnType::kText, OrderKind::kOther, false, true};
}

PgDecoder DecoderForOid(uint32_t oid, int typmod) {
  switch (oid) {
    case kInt2Oid:
    case kInt4Oid:
    case kInt8Oid:
    case kOidOid:
      return PgDecoder::kInt;
    case kFloat4Oid:
    case kFloat8Oid:
      return PgDecoder::kReal;
    case kBoolOid:
      return PgDecoder::kBool;
    case kByteaOid:
      return PgDecoder::kBytea;
    case kTimestampTzOid:
      return typmod == 0 ? PgDecoder::kTimestampTz0 : PgDecoder::kTimestampTz;
    case kTimestampOid:
      return typmod == 0 ? PgDecoder::kTimestamp0 : PgDecoder::kTimestamp;
    default:
      return PgDecoder::kText;
  }
}

PgBinary BinaryDecoderForOid(uint32_t oid, int typmod) {
  switch (oid) {
    case kInt2Oid:
      return PgBinary::kInt2;
    case kInt4Oid:
      return PgBinary::kInt4;
    case kInt8Oid:
      return PgBinary::kInt8;
    case kOidOid:
      return PgBinary::kOid;
    case kFloat8Oid:
      return PgBinary::kFloat8;
    case kBoolOid:
      return PgBinary::kBool;
    case kByteaOid:
      return PgBinary::kBytea;
    case kTimestampTzOid:
      return typmod == 0 ? PgBinary::kTimestampTz0 : PgBinary::kTimestampTz;
    case kTimestampOid:
      return typmod == 0 ? PgBinary::kTimestamp0 : PgBinary::kTimestamp;
    case kDateOid:
      return PgBinary::kDate;
    case kNumericOid:
      return PgBinary::kNumeric;
    case kUuidOid:
      return PgBinary::kUuid;
    case kJsonbOid:
      return PgBinary::kJsonb;
    case kTextOid:
    case kVarcharOid:
    case kBpcharOid:
    case kNameOid:
    case kJsonOid:
      return PgBinary::kText;
    default:
      return PgBinary::kNone;
  }
}

bool AppendPgBinary(PgBinary decoder, const char* data, size_t size, RowBatch& batch) {
  switch (decoder) {
    case PgBinary::kNone:
      return false;
    case PgBinary::kInt2:
      if (size != 2) return false;
      batch.AddInt(static_cast<int16_t>(BigEndian(data, 2)));
      return true;
    case PgBinary::kInt4:
      if (size != 4) return false;
      batch.AddInt(static_cast<int32_t>(BigEndian(data, 4)));
      return true;
    case PgBinary::kInt8:
      if (size != 8) return false;
      batch.AddInt(static_cast<int64_t>(BigEndian(data, 8)));
      return true;
    case PgBinary::kOid:
      if (size != 4) return false;
      batch.AddInt(static_cast<int64_t>(BigEndian(data, 4)));
      return true;
    case PgBinary::kFloat8: {
      if (size != 8) return false;
      const uint64_t bits = BigEndian(data, 8);
      double v;
      memcpy(&v, &bits, sizeof v);
      if (std::isnan(v)) {
        batch.AddText("NaN");  // as the text decoder keeps it: SQLite has no NaN REAL
      } else {
        batch.AddReal(v);
      }
      return true;
    }
    case PgBinary::kBool:
      if (size != 1 || static_cast<uint8_t>(data[0]) > 1) return false;
      batch.AddInt(data[0]);
      return true;
    case PgBinary::kBytea:
      batch.AddBlob(std::string_view(data, size));
      return true;
    case PgBinary::kTimestampTz:
    case PgBinary::kTimestamp:
    case PgBinary::kTimestampTz0:
    case PgBinary::kTimestamp0:
      if (size != 8) return false;
      AppendBinaryTimestamp(static_cast<int64_t>(BigEndian(data, 8)),
                            decoder == PgBinary::kTimestampTz || decoder == PgBinary::kTimestampTz0,
                            decoder == PgBinary::kTimestampTz || decoder == PgBinary::kTimestamp,
                            batch);
      return true;
    case PgBinary::kDate:
      if (size != 4) return false;
      AppendBinaryDate(static_cast<int32_t>(BigEndian(data, 4)), batch);
      return true;
    case PgBinary::kNumeric:
      return AppendBinaryNumeric(data, size, batch);
    case PgBinary::kUuid:
      if (size != 16) return false;
      AppendBinaryUuid(data, batch);
      return true;
    case PgBinary::kJsonb:
      if (size < 1 || data[0] != 1) return false;  // version 1 is the text after the byte
      batch.AddText(std::string_view(data + 1, size - 1));
      return true;
    case PgBinary::kText:
      batch.AddText(std::string_view(data, size));
      return true;
  }
  return false;
}

bool AppendPgValue(PgDecoder decoder, const char* text, size_t size, RowBatch& batch) {
  bool ok = true;
  switch (decoder) {
    case PgDecoder::kInt: {
      int64_t v = 0;
      if (ParseInt(text, size, v)) {
        batch.AddInt(v);
        return true;
      }
      ok = false;
      break;
    }
    case PgDecoder::kReal: {
      std::string_view s(text, size);
      if (s == "NaN") break;  // SQLite has no NaN REAL (it reads back as NULL): keep the text
      if (s == "Infinity") {
        batch.AddReal(HUGE_VAL);
        return true;
      }
      if (s == "-Infinity") {
        batch.AddReal(-HUGE_VAL);
        return true;
      }
      double v = 0;
      auto [end, ec] = std::from_chars(text, text + size, v);
      if (ec == std::errc() && end == text + size) {
        batch.AddReal(v);
        return true;
      }
      ok = false;
      break;
    }
    case PgDecoder::kBool:
      if (size == 1 && (text[0] == 't' || text[0] == 'f')) {
        batch.AddInt(text[0] == 't' ? 1 : 0);
        return true;
      }
      ok = false;
      break;
    case PgDecoder::kBytea:
      if (AppendBytea(text, size, batch)) return true;
      ok = false;
      break;
    case PgDecoder::kTimestampTz:
    case PgDecoder::kTimestamp:
    case PgDecoder::kTimestampTz0:
    case PgDecoder::kTimestamp0:
      if (AppendTimestamp(
              text, size, decoder == PgDecoder::kTimestampTz || decoder == PgDecoder::kTimestampTz0,
              decoder == PgDecoder::kTimestampTz || decoder == PgDecoder::kTimestamp, batch)) {
        return true;
      }
      ok = false;
      break;
    case PgDecoder::kText:
      break;
  }
  batch.AddText(std::string_view(text, size));
  return ok;
}

}  // namespace siphon::postgres

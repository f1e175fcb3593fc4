#include "adapters/postgres/pg_types.hpp"

#include <charconv>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>

namespace siphon::postgres {

namespace {

// pg_type OIDs (src/include/catalog/pg_type.dat); stable across PostgreSQL versions.
constexpr uint32_t kBoolOid = 16;
constexpr uint32_t kByteaOid = 17;
constexpr uint32_t kInt8Oid = 20;
constexpr uint32_t kInt2Oid = 21;
constexpr uint32_t kInt4Oid = 23;
constexpr uint32_t kOidOid = 26;
constexpr uint32_t kFloat4Oid = 700;
constexpr uint32_t kFloat8Oid = 701;
constexpr uint32_t kTimestampOid = 1114;
constexpr uint32_t kTimestampTzOid = 1184;

struct NamedClass {
  std::string_view name;
  PgTypeClass cls;
};

// Base type names as format_type() spells them, without type modifiers.
constexpr PgTypeClass kInteger{ColumnType::kInteger, OrderKind::kNumber, false, false};
constexpr PgTypeClass kFloat{ColumnType::kReal, OrderKind::kNumber, false, false};
constexpr PgTypeClass kNumeric{ColumnType::kText, OrderKind::kNumber, false, false};
constexpr PgTypeClass kBoolean{ColumnType::kInteger, OrderKind::kOther, false, false};
constexpr PgTypeClass kString{ColumnType::kText, OrderKind::kText, false, false};
constexpr PgTypeClass kDocument{ColumnType::kText, OrderKind::kOther, false, false};
constexpr PgTypeClass kBinary{ColumnType::kBlob, OrderKind::kOther, false, false};
constexpr PgTypeClass kTime{ColumnType::kText, OrderKind::kTime, false, false};

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
    {"bpchar", kString},
    {"\"char\"", kString},
    {"name", kString},
    {"citext", kString},
    {"uuid", kString},
    {"json", kDocument},
    {"jsonb", kDocument},
    {"bytea", kBinary},
    {"date", kTime},
    {"timestamp without time zone", kTime},
    {"timestamp with time zone", kTime},
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
// PostgreSQL's own text, which PostgreSQL parses back exactly when used as a cursor.
bool AppendTimestamp(const char* text, size_t size, bool utc, RowBatch& batch) {
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
  // The exact length up front: no shrinking (and zero-filling) of the arena afterwards.
  const size_t length = date.size() + 1 + time.size() + (fraction.empty() ? 0 : 7) + (utc ? 1 : 0);
  char* p = batch.AddTextBuffer(length);
  memcpy(p, date.data(), date.size());
  p += date.size();
  *p++ = 'T';
  memcpy(p, time.data(), time.size());
  p += time.size();
  if (!fraction.empty()) {
    // Always six digits, so values within one second sort as text the way they sort as time.
    *p++ = '.';
    memcpy(p, fraction.data(), fraction.size());
    p += fraction.size();
    for (size_t i = fraction.size(); i < 6; ++i) *p++ = '0';
  }
  if (utc) *p = 'Z';
  return true;
}

}  // namespace

PgTypeClass ClassifyType(std::string_view type_name, char typtype) {
  std::string name = StripModifiers(type_name);
  if (name.size() > 2 && name.compare(name.size() - 2, 2, "[]") == 0) {
    return PgTypeClass{ColumnType::kText, OrderKind::kOther, true, false};
  }
  for (const auto& n : kNamed) {
    if (n.name == name) return n.cls;
  }
  if (typtype == 'e') return kDocument;  // enums: text, but ordered by declaration, not text
  return PgTypeClass{ColumnType::kText, OrderKind::kOther, false, true};
}

PgDecoder DecoderForOid(uint32_t oid) {
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
      return PgDecoder::kTimestampTz;
    case kTimestampOid:
      return PgDecoder::kTimestamp;
    default:
      return PgDecoder::kText;
  }
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
      if (AppendTimestamp(text, size, decoder == PgDecoder::kTimestampTz, batch)) return true;
      ok = false;
      break;
    case PgDecoder::kText:
      break;
  }
  batch.AddText(std::string_view(text, size));
  return ok;
}

}  // namespace siphon::postgres

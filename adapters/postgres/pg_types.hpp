#pragma once
#include <cstdint>
#include <string_view>

#include "runtime/base/row_batch.hpp"
#include "runtime/base/schema.hpp"

namespace siphon::postgres {

/// How a PostgreSQL column is stored and ordered, decided from the catalog (by type name).
struct PgTypeClass {
  ColumnType type = ColumnType::kText;
  OrderKind order = OrderKind::kOther;
  /// True for arrays: the page query selects `to_json(col)::text` so the server builds the JSON.
  bool json_array = false;
  /// True when siphon has no dedicated conversion and keeps PostgreSQL's text form (a run
  /// replicating such a column warns once).
  bool text_form = false;
  /// For a type that holds some different values equal whatever its collation (citext holds
  /// 'a' and 'A' equal, interval '1 day' and '24 hours'): how a message names it and them
  /// (ColumnInfo::loose_equality).
  const char* loose_equality = nullptr;
  /// ColumnInfo::stored_order: what siphon keeps orders as the values do (integers, bytea, and
  /// a uuid's text).
  bool stored_order = false;
};

/// ColumnInfo::loose_equality of a column of class `cls` under the collation `collation`,
/// given when it is nondeterministic (nullptr otherwise).
std::string LooseEquality(const PgTypeClass& cls, const char* collation);

/// Classifies a column. `type_name` is format_type() of the column's base type (domains
/// resolved), e.g. "numeric(30,10)", "timestamp(3) with time zone", "integer[]";
/// `typtype` is pg_type.typtype ('b' base, 'e' enum, 'c' composite, 'r' range, …).
PgTypeClass ClassifyType(std::string_view type_name, char typtype);

/// True for "timestamp with time zone" with or without a precision ("timestamp(3) with time
/// zone"), as format_type() prints it.
bool IsTimestamptz(std::string_view type_name);

/// How one result column is decoded from the text result format, chosen by its type OID and
/// modifier. A timestamp column with fractional precision gets six fraction digits on every
/// value, a whole second too ('…:05.000000Z'): as text, '.' sorts before 'Z' (and before the
/// end of the string), so '…:05Z' would sort after '…:05.25Z' and `at >= '…:05Z'` would
/// leave '…:05.25Z' out. A timestamp(0) column never has a fraction and gets none.
enum class PgDecoder : uint8_t {
  kInt,           ///< int2/int4/int8/oid → INTEGER
  kReal,          ///< float4/float8 → REAL ('NaN' → TEXT)
  kBool,          ///< 't'/'f' → 1/0
  kBytea,         ///< '\x…' hex → BLOB
  kTimestampTz,   ///< '2024-01-01 10:00:00.5+00' → '2024-01-01T10:00:00.500000Z'
  kTimestamp,     ///< '2024-01-01 10:00:00' → '2024-01-01T10:00:00.000000'
  kTimestampTz0,  ///< timestamptz(0): '2024-01-01 10:00:00+00' → '2024-01-01T10:00:00Z'
  kTimestamp0,    ///< timestamp(0): '2024-01-01 10:00:00' → '2024-01-01T10:00:00'
  kText,          ///< anything else: the text as PostgreSQL prints it
};

/// The decoder for a result column's type (PQftype) and modifier (PQfmod: -1 when there is
/// none, a timestamp's precision otherwise). Domains arrive as their base type.
PgDecoder DecoderForOid(uint32_t oid, int typmod);

/// Appends one non-NULL value, given in PostgreSQL's text output (session settings
/// DateStyle=ISO, TimeZone=UTC, extra_float_digits=3, bytea_output=hex), to `batch`.
/// Returns false when the text is not valid for the decoder (the cell is then appended as
/// TEXT so the batch stays rectangular).
bool AppendPgValue(PgDecoder decoder, const char* text, size_t size, RowBatch& batch);

/// How one column is decoded from COPY's binary format, chosen by its type OID. Each yields
/// exactly the cell AppendPgValue makes of the same value's text (or keeps as text). kNone:
/// siphon reads that type as text only, so a page with such a column is copied as text.
/// float4 stays text: PostgreSQL before 12 prints it with 9 digits, not the shortest form.
enum class PgBinary : uint8_t {
  kNone,
  kInt2,
  kInt4,
  kInt8,
  kOid,
  kFloat8,
  kBool,
  kBytea,
  kTimestampTz,
  kTimestamp,
  kTimestampTz0,
  kTimestamp0,
  kDate,
  kNumeric,
  kUuid,
  kJsonb,
  kText,  ///< text, varchar, bpchar, name, json: the bytes as they are
};

/// The binary decoder for a result column's type (PQftype) and modifier (PQfmod), or kNone.
PgBinary BinaryDecoderForOid(uint32_t oid, int typmod);

/// Appends one non-NULL value given in PostgreSQL's binary send format (network byte order).
/// Returns false when the bytes cannot be that type's (wrong length, an unknown jsonb
/// version, a numeric digit out of range); nothing is appended then.
bool AppendPgBinary(PgBinary decoder, const char* data, size_t size, RowBatch& batch);

}  // namespace siphon::postgres

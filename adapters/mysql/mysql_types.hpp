#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/base/row_batch.hpp"
#include "runtime/base/schema.hpp"

namespace siphon::mysql {

/// How a MySQL/MariaDB column is stored and ordered, decided from information_schema.
struct MysqlTypeClass {
  ColumnType type = ColumnType::kText;
  OrderKind order = OrderKind::kOther;
  /// ColumnInfo::stored_order: the server orders the values as SQLite orders what siphon
  /// stores (integers that fit in 64 bits, binary strings byte by byte).
  bool stored_order = false;
};

/// The members of an ENUM or SET column in declaration order, from its COLUMN_TYPE
/// ("enum('xl','s','m')", quotes doubled and backslashes escaped as the server writes them);
/// nullopt for any other type, and for "enum" or "set" alone (a query's column, whose
/// metadata lists no members).
std::optional<std::vector<std::string>> EnumMembers(std::string_view column_type);

/// The number the server orders an ENUM or SET value by: an ENUM member's position from 1
/// ('' is 0, the value of an invalid one), a SET's bits (member i is bit i-1). nullopt for a
/// value that is not made of `members`.
std::optional<uint64_t> EnumNumber(const std::vector<std::string>& members, bool set,
                                   std::string_view value);

/// Classifies a column from information_schema.COLUMNS: `data_type` is DATA_TYPE (e.g.
/// "bigint"), `column_type` is COLUMN_TYPE (e.g. "bigint(20) unsigned"). Case-insensitive.
/// BIGINT UNSIGNED and BIT(64) are BLOB-affinity columns (ColumnType::kBlob): their values
/// up to 2^63-1 are stored as INTEGER, larger ones as exact decimal TEXT, which an INTEGER
/// column would turn into a lossy REAL and a TEXT column would not keep as numbers.
MysqlTypeClass ClassifyType(std::string_view data_type, std::string_view column_type);

/// Whether text in this character set (information_schema's CHARACTER_SET_NAME, e.g.
/// "cp1251") may hold bytes that have no UTF-8 equivalent, which the server sends a utf8mb4
/// session as '?' without a word (cp1251's 0x98, ascii's 0x80 to 0xFF): every character set
/// but utf8mb4, utf8mb3 ("utf8" before MariaDB 10.6), latin1 (MariaDB gives each of its 256
/// bytes a character) and binary (read as bytes). Case-insensitive; false for "" (not text).
bool IsLossyCharset(std::string_view charset);

/// A result column's type as the server describes it (MYSQL_FIELD): all ReflectQuery knows
/// of a query's column, which may be computed rather than a table's.
struct MysqlField {
  int type = 0;              ///< MYSQL_FIELD::type (enum_field_types)
  unsigned flags = 0;        ///< UNSIGNED_FLAG, ZEROFILL_FLAG, ENUM_FLAG, SET_FLAG count here
  unsigned long length = 0;  ///< the display width; in bytes for a string
  unsigned decimals = 0;     ///< a decimal's scale, a time's fractional digits
  unsigned charsetnr = 0;    ///< 63 = binary
  unsigned mbmaxlen = 1;     ///< the most bytes a character of charsetnr takes
  /// MariaDB's extended metadata names the types of its type plugins ("uuid", "inet6")
  /// and the kind of a geometry ("point"); empty otherwise.
  std::string type_name;
};

/// A column type in information_schema.COLUMNS' terms.
struct MysqlColumnType {
  std::string data_type;    ///< DATA_TYPE, e.g. "bigint"
  std::string column_type;  ///< COLUMN_TYPE, e.g. "bigint(20) unsigned"
};

/// The DATA_TYPE and COLUMN_TYPE a table column holding `field`'s values would have, so
/// that ClassifyType stores and orders a query's column exactly as it would that table
/// column: LONGLONG with UNSIGNED_FLAG is "bigint(20) unsigned", NEWDECIMAL "decimal(p,s)",
/// DATETIME with 3 decimals "datetime(3)", VAR_STRING "varchar(n)" (n characters) or, in
/// the binary character set, "varbinary(n)". The spelling follows MariaDB's COLUMN_TYPE,
/// but an ENUM or SET is only "enum" or "set": the metadata does not list the members.
MysqlColumnType ColumnTypeOf(const MysqlField& field);

/// How one result column of the text protocol is decoded, chosen from its MYSQL_FIELD.
enum class MysqlDecoder : uint8_t {
  kInt,       ///< TINYINT…BIGINT (signed, or unsigned that always fits) → INTEGER
  kUnsigned,  ///< BIGINT UNSIGNED: INTEGER up to 2^63-1, exact decimal TEXT above
  kReal,      ///< FLOAT/DOUBLE → REAL
  /// A FLOAT column read as a double (BuildPageSql): REAL, the shortest decimal that reads
  /// back as the same float (0.1, not 0.10000000149011612)
  kFloat,
  kDecimal,    ///< DECIMAL → TEXT exactly as the server prints it
  kYear,       ///< YEAR → INTEGER
  kBit,        ///< BIT(n): big-endian bytes → INTEGER (TEXT above 2^63-1)
  kDate,       ///< '2024-01-31'; zero dates → NULL
  kDateTime,   ///< '2024-01-31 10:00:00.5' → '2024-01-31T10:00:00.500000'; zero → NULL
  kTimestamp,  ///< as kDateTime (session time_zone is UTC) with 'Z'; zero → NULL
  kTime,       ///< TIME → TEXT as printed ('-838:59:59', '10:00:00.250000')
  kText,       ///< CHAR/VARCHAR/TEXT/ENUM/SET/JSON → TEXT (utf8mb4)
  kBlob,       ///< BINARY/VARBINARY/BLOB/GEOMETRY → BLOB
};

/// The decoder for a result column: `field_type` is MYSQL_FIELD::type (enum_field_types),
/// `flags` its flags, `charsetnr` its character set number (63 = binary, which tells
/// BINARY/VARBINARY/BLOB from CHAR/VARCHAR/TEXT of the same field type).
MysqlDecoder DecoderFor(int field_type, unsigned flags, unsigned charsetnr);

/// Whether a column of this COLUMN_TYPE is a single-precision FLOAT ("float",
/// "float(10,4) unsigned"), which the text protocol prints with six significant digits
/// (1234567 as "1234570"): the page query reads it as a double (BuildPageSql), decoded with
/// MysqlDecoder::kFloat.
bool IsSingleFloat(std::string_view column_type);

/// What appending a value did.
enum class DecodeOutcome {
  kOk,
  kZeroDate,  ///< a zero or partly zero date ('0000-00-00', '2024-00-10'): appended NULL
  kInvalid,   ///< the text did not parse for the decoder: appended as TEXT unchanged
};

/// Appends one non-NULL value, in the text protocol's form (session time_zone '+00:00'),
/// to `batch`. The batch always gets exactly one cell.
DecodeOutcome AppendMysqlValue(MysqlDecoder decoder, const char* data, size_t size,
                               RowBatch& batch);

/// A cursor value that siphon produced for a time column ('2024-01-01T10:00:00.123456Z')
/// in the form MySQL parses in a comparison ('2024-01-01 10:00:00.123456').
std::string TimeForMysql(std::string_view iso);

}  // namespace siphon::mysql

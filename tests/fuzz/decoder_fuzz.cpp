// libFuzzer target: the source type decoders. The first input byte picks a decoder ('a' is
// the first PostgreSQL text decoder, then every other one, then every MySQL text-protocol
// decoder, then the type classifiers, then PostgreSQL COPY rows of 1 to 10 columns ('{' is one
// column), binary COPY messages of 1 to 10 columns (byte 0x85 is one column; the file header
// is put in front), and the cursor time conversion); the rest is the value as the server would
// send it. Any bytes must decode to exactly one cell per column or be reported invalid: no crash,
// no read past the value, no undefined behaviour.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "adapters/mysql/mysql_types.hpp"
#include "adapters/postgres/pg_connection.hpp"
#include "adapters/postgres/pg_types.hpp"
#include "runtime/base/row_batch.hpp"

namespace {

constexpr int kPgDecoders = static_cast<int>(siphon::postgres::PgDecoder::kText) + 1;
constexpr int kMysqlDecoders = static_cast<int>(siphon::mysql::MysqlDecoder::kBlob) + 1;
constexpr int kCopyRows = 26;    // '{': a COPY row of one column, then up to 10
constexpr int kBinaryRows = 36;  // 0x85: a binary COPY message of one column, then up to 10
constexpr int kBinaryDecoders = static_cast<int>(siphon::postgres::PgBinary::kText) + 1;
static_assert(kPgDecoders + kMysqlDecoders <= 25, "'z' seeds pick the classifiers");

// The cells appended must be readable in full (ASan checks the arena bounds).
void TouchRows(const siphon::RowBatch& batch) {
  for (size_t row = 0; row < batch.rows(); ++row) {
    for (size_t col = 0; col < batch.columns(); ++col) {
      const siphon::Cell& c = batch.at(row, col);
      if (c.type == siphon::ValueType::kText || c.type == siphon::ValueType::kBlob) {
        std::string_view v = batch.bytes(c);
        volatile char sink = 0;
        for (char ch : v) sink = static_cast<char>(sink ^ ch);
        (void)sink;
      }
    }
  }
}

void Touch(const siphon::RowBatch& batch) {
  if (batch.rows() != 1) __builtin_trap();  // one value in, one cell out
  TouchRows(batch);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const int pick = static_cast<uint8_t>(data[0] - 'a');  // readable seeds
  // Servers send NUL-terminated values (libpq, Connector/C): keep that, exactly sized.
  const std::string value(reinterpret_cast<const char*>(data + 1), size - 1);
  if (pick < kPgDecoders) {
    siphon::RowBatch batch(1);
    siphon::postgres::AppendPgValue(static_cast<siphon::postgres::PgDecoder>(pick), value.c_str(),
                                    value.size(), batch);
    Touch(batch);
  } else if (pick < kPgDecoders + kMysqlDecoders) {
    siphon::RowBatch batch(1);
    siphon::mysql::AppendMysqlValue(static_cast<siphon::mysql::MysqlDecoder>(pick - kPgDecoders),
                                    value.c_str(), value.size(), batch);
    Touch(batch);
  } else if (pick >= kCopyRows && pick < kCopyRows + 10) {
    // A COPY text row: the decoders cycle through every PostgreSQL one.
    std::vector<siphon::postgres::PgDecoder> decoders;
    for (int c = 0; c <= pick - kCopyRows; ++c) {
      decoders.push_back(static_cast<siphon::postgres::PgDecoder>(c % kPgDecoders));
    }
    siphon::RowBatch batch(decoders.size());
    size_t rejected = 0;
    if (siphon::postgres::DecodeCopyRow(value, decoders, batch, &rejected)) Touch(batch);
  } else if (pick >= kBinaryRows && pick < kBinaryRows + 10) {
    // A binary COPY message after a valid header: the decoders cycle through every binary one.
    std::vector<siphon::postgres::PgBinary> decoders;
    for (int c = 0; c <= pick - kBinaryRows; ++c) {
      decoders.push_back(static_cast<siphon::postgres::PgBinary>(c % kBinaryDecoders));
    }
    siphon::RowBatch batch(decoders.size());
    siphon::postgres::BinaryCopyReader reader(decoders);
    const std::string header("PGCOPY\n\377\r\n\0\0\0\0\0\0\0\0\0", 19);
    if (reader.Feed(header + value, batch)) TouchRows(batch);
  } else if (pick < 200) {
    // Type names from the catalogs: split the value at the first NUL for MySQL's two fields.
    const size_t nul = value.find('\0');
    const std::string_view a(value.data(), nul == std::string::npos ? value.size() : nul);
    const std::string_view b =
        nul == std::string::npos ? std::string_view() : std::string_view(value).substr(nul + 1);
    siphon::postgres::ClassifyType(a, b.empty() ? 'b' : b[0]);
    siphon::mysql::ClassifyType(a, b);
    uint32_t oid = 0;
    for (size_t i = 0; i < 4 && i < value.size(); ++i)
      oid = oid << 8 | static_cast<uint8_t>(value[i]);
    siphon::postgres::DecoderForOid(oid, static_cast<int>(oid >> 24) - 1);
    siphon::postgres::BinaryDecoderForOid(oid, static_cast<int>(oid >> 24) - 1);
    siphon::mysql::DecoderFor(static_cast<int>(oid & 0xff), oid >> 8, (oid >> 16) & 0xff);
  } else {
    std::string t = siphon::mysql::TimeForMysql(value);
    (void)t;
  }
  return 0;
}

#include "runtime/base/sqlite_value.hpp"

namespace siphon {

int BindCursorValue(sqlite3_stmt* stmt, int index, const CursorValue& value,
                    sqlite3_destructor_type lifetime) {
  if (const auto* i = std::get_if<int64_t>(&value)) return sqlite3_bind_int64(stmt, index, *i);
  if (const auto* d = std::get_if<double>(&value)) return sqlite3_bind_double(stmt, index, *d);
  if (const auto* s = std::get_if<std::string>(&value)) {
    return sqlite3_bind_text(stmt, index, s->data(), static_cast<int>(s->size()), lifetime);
  }
  if (const auto* b = std::get_if<Bytes>(&value)) {
    return sqlite3_bind_blob(stmt, index, b->data.data(), static_cast<int>(b->data.size()),
                             lifetime);
  }
  return sqlite3_bind_null(stmt, index);
}

}  // namespace siphon

#pragma once
#include <sqlite3.h>

#include "runtime/base/schema.hpp"

namespace siphon {

/// Binds a cursor value to parameter `index` of `stmt`: an integer, a real, text, bytes as a
/// blob, nothing as NULL. `lifetime` as sqlite3_bind_*: SQLITE_STATIC when `value` outlives
/// the statement's execution. Returns SQLite's result code.
int BindCursorValue(sqlite3_stmt* stmt, int index, const CursorValue& value,
                    sqlite3_destructor_type lifetime = SQLITE_TRANSIENT);

}  // namespace siphon

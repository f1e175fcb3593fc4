#pragma once
// Value <-> Lua conversions, in one place: JSON (siphon.json, HTTP bodies, rejects), the
// `siphon.null` sentinel, and the cells of a RowBatch.
#include <string>
#include <string_view>

#include <lua.hpp>
#include <nlohmann/json.hpp>

#include "runtime/base/row_batch.hpp"
#include "runtime/base/schema.hpp"
#include "runtime/base/status.hpp"

namespace siphon {

/// Pushes `siphon.null`: the JSON null of siphon.json.decode (a light userdata, equal to
/// itself only). In rows and parameters it means NULL, like nil.
void PushNull(lua_State* L);
bool IsNull(lua_State* L, int index);

/// The Lua value at `index` as JSON: nil and siphon.null → null, integers stay integers,
/// floats stay floats, a table with keys 1..n (n > 0) → array, any other table → object
/// (string or number keys); an empty table → {}. Errors (ErrorKind::kScript): a function,
/// a cycle or nesting deeper than 100, a NaN or infinite number, invalid UTF-8 (found when
/// dumping). Raw access only: no metamethod runs.
Result<nlohmann::json> LuaToJson(lua_State* L, int index);

/// Compact JSON text of the value at `index` (LuaToJson, then dump; invalid UTF-8 is an
/// error).
Result<std::string> EncodeJson(lua_State* L, int index);

/// Pushes one cell: NULL → nil, kInt → integer, kReal → float, text and blob → string.
void PushCell(lua_State* L, const RowBatch& batch, const Cell& cell);

/// A parameter of target:query/exec: nil/siphon.null → NULL, integer, float, string,
/// boolean → 0/1. False (and `error` set) for other types.
bool ToCursorValue(lua_State* L, int index, CursorValue& out, std::string& error);

}  // namespace siphon

#include "runtime/lua/lua_transform.hpp"

#include <algorithm>
#include <cstdint>

#include "runtime/lua/convert.hpp"
#include "runtime/lua/lua_host.hpp"

namespace siphon {
namespace {

// Registry: { [id] = { fn = f, names = { "id", … }, index = { id = 1, … }, row = {} } }.
constexpr const char* kTransformsKey = "siphon.transforms";

// Pushes the registry table of transforms, creating it.
void PushTransforms(lua_State* L) {
  if (lua_getfield(L, LUA_REGISTRYINDEX, kTransformsKey) == LUA_TTABLE) return;
  lua_pop(L, 1);
  lua_newtable(L);
  lua_pushvalue(L, -1);
  lua_setfield(L, LUA_REGISTRYINDEX, kTransformsKey);
}

// One output value, pointing into Lua strings that stay alive while the result is on the
// stack.
struct OutValue {
  ValueType type = ValueType::kNull;
  int64_t i = 0;
  double d = 0;
  const char* p = nullptr;
  size_t len = 0;
};

}  // namespace

LuaTransform::LuaTransform(LuaHost& host, std::string table, std::vector<ExtraColumn> extra,
                           RowErrorPolicy policy)
    : host_(&host),
      alive_(host.weak()),
      table_(std::move(table)),
      what_("transform of table \"" + table_ + "\""),
      extra_(std::move(extra)),
      policy_(policy) {
  static int next_id = 0;
  id_ = ++next_id;
}

LuaTransform::~LuaTransform() {
  if (!alive_.lock()) return;
  lua_State* L = host_->state();
  PushTransforms(L);
  lua_pushnil(L);
  lua_rawseti(L, -2, id_);
  lua_pop(L, 1);
}

void LuaTransform::SetFunction() {
  lua_State* L = host_->state();
  int fn = lua_gettop(L);
  // Where the function is written: a Lua error carries its own line, but a row the transform
  // returns wrongly (a string, a column not declared) would otherwise name no line at all.
  lua_Debug ar;
  lua_pushvalue(L, fn);
  if (lua_getinfo(L, ">S", &ar) != 0 && ar.linedefined > 0) {
    location_ = std::string(ar.short_src) + ":" + std::to_string(ar.linedefined);
  }
  PushTransforms(L);
  lua_createtable(L, 0, 4);
  lua_pushvalue(L, fn);
  lua_setfield(L, -2, "fn");
  lua_rawseti(L, -2, id_);
  lua_settop(L, fn - 1);
}

Status LuaTransform::Prepare(const std::vector<ColumnInfo>& in) {
  std::vector<ColumnInfo> out;
  std::vector<bool> removed(in.size(), false);
  for (const ExtraColumn& e : extra_) {
    auto it =
        std::find_if(in.begin(), in.end(), [&e](const ColumnInfo& c) { return c.name == e.name; });
    if (e.removed) {
      if (it == in.end()) {
        return Status(ErrorKind::kConfig, "table \"" + table_ + "\": columns_out removes '" +
                                              e.name + "', which is not a pulled column");
      }
      removed[static_cast<size_t>(it - in.begin())] = true;
    } else if (it != in.end()) {
      return Status(ErrorKind::kConfig, "table \"" + table_ + "\": columns_out declares '" +
                                            e.name +
                                            "', which is already a pulled column (set it in the "
                                            "transform without declaring it)");
    }
  }
  lua_State* L = host_->state();
  const int top = lua_gettop(L);
  PushTransforms(L);
  lua_rawgeti(L, -1, id_);
  int t = lua_gettop(L);
  lua_createtable(L, static_cast<int>(in.size() + extra_.size()), 0);  // names
  int names = lua_gettop(L);
  lua_createtable(L, 0, static_cast<int>(in.size() + extra_.size()));  // index
  int index = lua_gettop(L);
  lua_Integer n = 0;
  auto add = [&](const std::string& name, lua_Integer out_index) {
    lua_pushlstring(L, name.data(), name.size());
    lua_pushvalue(L, -1);
    lua_rawseti(L, names, ++n);
    lua_pushinteger(L, out_index);
    lua_rawset(L, index);
  };
  for (size_t i = 0; i < in.size(); ++i) {
    if (removed[i]) {
      add(in[i].name, 0);
    } else {
      out.push_back(in[i]);
      add(in[i].name, static_cast<lua_Integer>(out.size()));
    }
  }
  for (const ExtraColumn& e : extra_) {
    if (e.removed) continue;
    ColumnInfo c;
    c.name = e.name;
    c.type = e.type;
    c.source_type = "transform";
    c.nullable = true;
    out.push_back(c);
    add(e.name, static_cast<lua_Integer>(out.size()));
  }
  lua_setfield(L, t, "index");
  lua_setfield(L, t, "names");
  lua_pushnil(L);
  lua_setfield(L, t, "row");  // a row of another layout must not be reused
  lua_settop(L, top);
  in_names_.clear();
  for (const auto& c : in) in_names_.push_back(c.name);
  out_ = std::move(out);
  return Status::Ok();
}

Result<std::vector<ColumnInfo>> LuaTransform::OutputColumns(const std::vector<ColumnInfo>& in) {
  if (!alive_.lock()) return Status(ErrorKind::kScript, what_ + ": the Lua state is gone");
  if (Status st = Prepare(in); !st.ok()) return st;
  return out_;
}

Status LuaTransform::Apply(const std::vector<ColumnInfo>& in_columns, const RowBatch& in,
                           RowBatch& out, std::vector<Reject>& rejects) {
  if (!alive_.lock()) return Status(ErrorKind::kScript, what_ + ": the Lua state is gone");
  bool same = in_columns.size() == in_names_.size();
  for (size_t i = 0; same && i < in_columns.size(); ++i) same = in_columns[i].name == in_names_[i];
  if (!same) {
    if (Status st = Prepare(in_columns); !st.ok()) return st;
  }
  lua_State* L = host_->state();
  const int top = lua_gettop(L);
  PushTransforms(L);
  lua_rawgeti(L, -1, id_);
  const int t = lua_gettop(L);
  lua_getfield(L, t, "names");
  const int names = lua_gettop(L);
  lua_getfield(L, t, "index");
  const int index = lua_gettop(L);
  lua_getfield(L, t, "fn");
  const int fn = lua_gettop(L);
  const size_t nin = in_columns.size();
  const size_t nout = out_.size();
  const auto nnames = static_cast<lua_Integer>(lua_rawlen(L, names));
  // The names go on the stack, and each one's string object is mapped to its output
  // position: a row's key is then found by its address (a name is interned, so a key equal to
  // it is the same object) instead of a second table lookup per value.
  if (!lua_checkstack(L, static_cast<int>(nnames) + 16)) {
    lua_settop(L, top);
    return Status(ErrorKind::kScript, what_ + ": too many columns for the Lua stack");
  }
  const int first_name = lua_gettop(L) + 1;
  size_t slots = 16;
  while (slots < 2 * static_cast<size_t>(nnames)) slots *= 2;
  struct Slot {
    const void* name = nullptr;
    lua_Integer k = 0;
  };
  std::vector<Slot> by_address(slots);
  auto slot_of = [slots](const void* p) {
    size_t h = (reinterpret_cast<uintptr_t>(p) >> 4) * 0x9E3779B97F4A7C15ull;
    return static_cast<size_t>(h >> 32) & (slots - 1);
  };
  for (lua_Integer i = 1; i <= nnames; ++i) {
    lua_rawgeti(L, names, i);
    lua_pushvalue(L, -1);
    lua_rawget(L, index);
    const lua_Integer k = lua_tointeger(L, -1);
    lua_pop(L, 1);
    const void* p = lua_topointer(L, -1);
    size_t at = slot_of(p);
    while (by_address[at].name != nullptr) at = (at + 1) & (slots - 1);
    by_address[at] = Slot{p, k};
  }
  // The output position of the key at -1, or -1 when it is not one of the names' objects.
  auto known = [&](const void* p) -> lua_Integer {
    for (size_t at = slot_of(p);; at = (at + 1) & (slots - 1)) {
      if (by_address[at].name == p) return by_address[at].k;
      if (by_address[at].name == nullptr) return -1;
    }
  };
  // The reusable row table: fresh means no key but the pulled columns' is set.
  bool fresh = false;
  if (lua_getfield(L, t, "row") != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_createtable(L, 0, static_cast<int>(nnames));
    fresh = true;
  }
  int row = lua_gettop(L);

  std::vector<OutValue> values(nout);
  std::vector<OutValue> fanned;  // rows of a fan-out, nout values each
  int killed = 0;
  std::string error;

  // Converts the row table at `r` into `dest` (nout values); false and `error` on failure.
  auto convert = [&](int r, OutValue* dest) -> bool {
    for (size_t c = 0; c < nout; ++c) dest[c] = OutValue();
    lua_pushnil(L);
    while (lua_next(L, r) != 0) {
      if (lua_type(L, -2) != LUA_TSTRING) {
        error = std::string("the row has a ") + luaL_typename(L, -2) +
                " key; rows are keyed by column name";
        lua_pop(L, 2);
        return false;
      }
      lua_Integer k = known(lua_topointer(L, -2));
      if (k < 0) {
        // A long name is not interned: an equal key may be another string object.
        lua_pushvalue(L, -2);
        if (lua_rawget(L, index) != LUA_TNUMBER) {
          error = std::string("unknown column '") + lua_tostring(L, -3) +
                  "' (declare added columns in columns_out = { name = \"TEXT\" })";
          lua_pop(L, 3);
          return false;
        }
        k = lua_tointeger(L, -1);
        lua_pop(L, 1);
      }
      if (k > 0) {
        OutValue& v = dest[k - 1];
        switch (lua_type(L, -1)) {
          case LUA_TNUMBER:
            if (lua_isinteger(L, -1)) {
              v.type = ValueType::kInt;
              v.i = lua_tointeger(L, -1);
            } else {
              v.type = ValueType::kReal;
              v.d = lua_tonumber(L, -1);
            }
            break;
          case LUA_TSTRING:
            v.type = out_[k - 1].type == ColumnType::kBlob ? ValueType::kBlob : ValueType::kText;
            v.p = lua_tolstring(L, -1, &v.len);
            break;
          case LUA_TBOOLEAN:
            v.type = ValueType::kInt;
            v.i = lua_toboolean(L, -1);
            break;
          default:
            if (IsNull(L, -1)) break;
            error = "column '" + out_[k - 1].name + "': a " + luaL_typename(L, -1) +
                    " cannot be stored (encode it with siphon.json.encode)";
            lua_pop(L, 2);
            return false;
        }
      }
      lua_pop(L, 1);
    }
    return true;
  };
  auto append = [&out](const OutValue* v, size_t n) {
    for (size_t c = 0; c < n; ++c) {
      switch (v[c].type) {
        case ValueType::kNull:
          out.AddNull();
          break;
        case ValueType::kInt:
          out.AddInt(v[c].i);
          break;
        case ValueType::kReal:
          out.AddReal(v[c].d);
          break;
        case ValueType::kText:
          out.AddText(std::string_view(v[c].p, v[c].len));
          break;
        case ValueType::kBlob:
          out.AddBlob(std::string_view(v[c].p, v[c].len));
          break;
      }
    }
  };

  const size_t rows = in.rows();
  // Sized like the input up front: growing a page-sized batch cell by cell costs reallocations
  // and, for buffers this large, fresh zeroed pages from the kernel on every page.
  out.Reserve(rows, in.arena_bytes() + in.arena_bytes() / 8);
  for (size_t r = 0; r < rows; ++r) {
    if (!fresh) {
      // Keys the last call may have set (added columns) go; pulled ones are overwritten.
      for (lua_Integer i = static_cast<lua_Integer>(nin) + 1; i <= nnames; ++i) {
        lua_pushvalue(L, first_name + static_cast<int>(i) - 1);
        lua_pushnil(L);
        lua_rawset(L, row);
      }
    }
    for (size_t c = 0; c < nin; ++c) {
      lua_pushvalue(L, first_name + static_cast<int>(c));
      PushCell(L, in, in.at(r, c));
      lua_rawset(L, row);
    }
    fresh = false;
    lua_pushvalue(L, fn);
    lua_pushvalue(L, row);
    Status st = host_->Call(1, 1, what_);
    bool ok = st.ok();
    const bool lua_failed = !ok;  // its message has the line and a traceback already
    bool reuse = false;
    if (!ok) {
      error = st.message();
      if (host_->last_call_killed()) ++killed;
    } else {
      const int result = lua_gettop(L);
      if (lua_isnil(L, result)) {
        // Dropped. Not reused: the function may have set keys it never returned.
      } else if (lua_type(L, result) != LUA_TTABLE) {
        ok = false;
        error = std::string("the transform must return the row, a list of rows or nil, got a ") +
                luaL_typename(L, result);
      } else if (!lua_rawequal(L, result, row) && [&] {
                   lua_pushnil(L);
                   if (lua_next(L, result) == 0) return true;
                   lua_pop(L, 2);
                   return false;
                 }()) {
        // {}: an empty list, nothing to write.
      } else if (lua_rawequal(L, result, row) || lua_rawgeti(L, result, 1) != LUA_TTABLE) {
        if (!lua_rawequal(L, result, row)) lua_pop(L, 1);
        ok = convert(result, values.data());
        if (ok) append(values.data(), nout);
        reuse = ok && lua_rawequal(L, result, row);
      } else {
        lua_pop(L, 1);
        // A list of rows: all of them or none.
        auto n = static_cast<lua_Integer>(lua_rawlen(L, result));
        fanned.assign(static_cast<size_t>(n) * nout, OutValue());
        for (lua_Integer i = 1; ok && i <= n; ++i) {
          if (lua_rawgeti(L, result, i) != LUA_TTABLE) {
            ok = false;
            error = "element " + std::to_string(i) + " of the returned list is a " +
                    luaL_typename(L, -1) + ", not a row table";
          } else {
            ok = convert(lua_gettop(L), fanned.data() + (i - 1) * nout);
            if (!ok) error = "row " + std::to_string(i) + " of the returned list: " + error;
          }
          // The list keeps the row table (and its strings) alive until it is appended.
          lua_pop(L, 1);
        }
        if (ok) append(fanned.data(), fanned.size());
      }
      lua_settop(L, result - 1);
    }
    if (!reuse) {
      // The function may have kept or changed the table in ways not checked: a new one.
      lua_createtable(L, 0, static_cast<int>(nnames));
      lua_replace(L, row);
      fresh = true;
    }
    if (ok) continue;
    if (!lua_failed && !location_.empty()) error += " (transform at " + location_ + ")";
    std::string row_json = RowToJson(in_columns, in, r);
    if (policy_ == RowErrorPolicy::kFail) {
      lua_settop(L, top);
      return Status(ErrorKind::kScript, what_ + " failed on row " + row_json + ": " + error);
    }
    rejects.push_back(Reject{std::move(row_json), error});
    if (killed >= kMaxKilledRowsPerPage) {
      lua_settop(L, top);
      return Status(ErrorKind::kScript, what_ + " stopped: " + std::to_string(killed) +
                                            " rows of one page ran out of the instruction budget "
                                            "or memory; last: " +
                                            error);
    }
  }
  if (!fresh) {
    lua_pushvalue(L, row);
    lua_setfield(L, t, "row");
  }
  lua_settop(L, top);
  return Status::Ok();
}

}  // namespace siphon

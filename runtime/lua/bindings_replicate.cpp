// siphon.replicate "name" { … } (also siphon.replicate("name", { … })): one target table.
#include <algorithm>
#include <cctype>
#include <cstring>

#include "runtime/base/ascii.hpp"
#include "runtime/base/duration.hpp"
#include "runtime/lua/binding.hpp"
#include "runtime/lua/lua_events.hpp"
#include "runtime/lua/lua_schema_change.hpp"
#include "runtime/lua/lua_transform.hpp"
#include "runtime/lua/options.hpp"

namespace siphon {
namespace {

// The fields of siphon.replicate. Extension point: a new field is one entry here plus the
// line in Declare that copies it into TableDecl (issue 4 adds transform, on, on_row_error).
std::vector<FieldSpec> ReplicateSpec(const Declarations& d) {
  std::string sources;
  for (size_t i = 0; i < d.definitions.size(); ++i) {
    if (i > 0) sources += i + 1 == d.definitions.size() ? " or " : ", ";
    sources += "siphon." + d.definitions[i].kind + "{…}";
  }
  std::vector<FieldSpec> spec;
  spec.reserve(24);  // add() hands out references into it
  auto add = [&spec](std::string name, FieldType type, std::string doc) -> FieldSpec& {
    FieldSpec f;
    f.name = std::move(name);
    f.type = type;
    f.doc = std::move(doc);
    return spec.emplace_back(std::move(f));
  };
  FieldSpec& source =
      add("source", FieldType::kSource, "the source to read, as returned by siphon.<kind>{ … }");
  source.required = true;
  source.expected = "a source returned by " + sources;
  add("from", FieldType::kString,
      "source table (\"schema.table\" or \"table\"); default: the name");
  add("query", FieldType::kString,
      "a SELECT to read instead of a table (a sub-select; needs `key`), e.g. a join");
  add("key", FieldType::kStringList, "key columns; default: the source's primary key");
  add("cursor", FieldType::kStringList, "keyset cursor columns; omitted: a full refresh every run");
  add("every", FieldType::kDuration,
      "how often to sync: \"500ms\", \"30s\", \"5m\", \"1h\", \"1m30s\" or seconds")
      .default_value = std::chrono::milliseconds(std::chrono::seconds(60));
  FieldSpec& batch = add("batch", FieldType::kInteger, "rows per page");
  batch.default_value = int64_t{5000};
  batch.min = 1;
  batch.max = 1000000;
  add("lookback", FieldType::kDuration, "window re-read behind a time cursor, for late commits");
  add("columns", FieldType::kStringList, "columns to replicate; default: all");
  FieldSpec& write =
      add("write", FieldType::kString,
          "\"upsert\" (insert or update by key) or \"append\" (insert, keep existing)");
  write.default_value = std::string("upsert");
  write.choices = {"upsert", "append"};
  add("transform", FieldType::kFunction,
      "function(row) returning the row, nil (drop) or a list of rows (fan-out)");
  add("columns_out", FieldType::kTable,
      "columns the transform adds, { name = \"TEXT\" | \"INTEGER\" | \"REAL\" | \"BLOB\" }, "
      "or removes (name = false)");
  FieldSpec& on_row_error =
      add("on_row_error", FieldType::kString,
          "\"reject\" (to _siphon_rejects, go on) or \"fail\" (the run fails, cursor kept)");
  on_row_error.default_value = std::string("reject");
  on_row_error.choices = {"reject", "fail"};
  add("on", FieldType::kTable, "event handlers of this table, { synced = function(ev) … end }");
  add("max_lag", FieldType::kDuration,
      "fire `lagging` when the table has not synced successfully for this long");
  add("deletes", FieldType::kTable,
      "soft deletes: { soft = \"deleted_at\" } removes rows whose column is set (keep = true "
      "keeps them with the flag); { reconcile = \"1h\" } removes rows gone from the source, "
      "found by comparing key ranges on that interval");
  add("on_schema_change", FieldType::kAny,
      "a changed column type: \"continue\" (default), \"pause\", \"resync\", or a function "
      "of the diff returning one of them");
  add("backfill", FieldType::kBoolean,
      "re-pull the table at once when the source gains a column (default: as rows change)");
  return spec;
}

void CheckTableName(const std::string& name) {
  if (name.empty()) throw ScriptError("siphon.replicate: the table name must not be empty");
  if (name.find('\0') != std::string::npos) {
    throw ScriptError("siphon.replicate: the table name must not contain a NUL byte");
  }
  std::string lower = AsciiLower(name);
  if (lower.rfind("_siphon", 0) == 0) {
    throw ScriptError("siphon.replicate: table name '" + name +
                      "' is reserved (names starting with _siphon hold siphon's state)");
  }
  if (lower.rfind("sqlite_", 0) == 0) {
    throw ScriptError("siphon.replicate: table name '" + name +
                      "' is reserved (names starting with sqlite_ belong to SQLite)");
  }
}

// Declares table `name` from the field table at `index`.
void Declare(lua_State* L, const std::string& name, int index) {
  Declarations& d = LuaHost::From(L)->declarations();
  RequireLoading(L, "siphon.replicate");
  CheckTableName(name);
  std::string what = "siphon.replicate \"" + name + "\"";
  if (lua_type(L, index) != LUA_TTABLE) {
    throw ScriptError(what + " expects a table of fields { source = …, … }, got " +
                      DescribeValue(L, index));
  }
  Result<Fields> fields = ReadFields(L, index, ReplicateSpec(d), what);
  if (!fields.ok()) throw ScriptError(fields.status().message());

  // SQLite table names are case-insensitive: "Orders" and "orders" are one table.
  for (const TableDecl& t : d.deployment.tables) {
    if (AsciiLower(t.name) == AsciiLower(name)) {
      throw ScriptError(what + ": table '" + t.name + "' is already declared at " + t.location);
    }
  }
  size_t source = fields->get<SourceHandle>("source")->index;
  if (source >= d.deployment.sources.size()) {
    throw ScriptError(what + ": field 'source' is a source of an earlier script run");
  }

  TableDecl t;
  t.name = name;
  t.location = CallerLocation(L, 1);
  t.source = d.deployment.sources[source];
  t.from = name;
  if (const auto* from = fields->get<std::string>("from")) {
    if (from->empty()) throw ScriptError(what + ": field 'from' must not be empty");
    t.from = *from;
  }
  if (const auto* query = fields->get<std::string>("query")) {
    if (fields->get<std::string>("from")) {
      throw ScriptError(what + ": give 'from' (a table) or 'query' (a SELECT), not both");
    }
    // A statement's closing semicolon would end the sub-select siphon wraps it in.
    const size_t start = query->find_first_not_of(" \t\r\n");
    t.query = start == std::string::npos ? std::string() : query->substr(start);
    while (!t.query.empty() && strchr(" \t\r\n;", t.query.back())) t.query.pop_back();
    if (t.query.empty()) throw ScriptError(what + ": field 'query' must not be empty");
    t.from.clear();
  }
  if (const auto* key = fields->get<std::vector<std::string>>("key")) t.key = *key;
  if (const auto* cursor = fields->get<std::vector<std::string>>("cursor")) t.cursor = *cursor;
  if (const auto* columns = fields->get<std::vector<std::string>>("columns")) {
    t.columns = *columns;
  }
  t.every = *fields->get<std::chrono::milliseconds>("every");
  t.batch = static_cast<size_t>(*fields->get<int64_t>("batch"));
  if (const auto* lookback = fields->get<std::chrono::milliseconds>("lookback")) {
    t.lookback_seconds = static_cast<double>(lookback->count()) / 1000.0;
  }
  t.write =
      *fields->get<std::string>("write") == "append" ? WriteMode::kAppend : WriteMode::kUpsert;
  if (const auto* lag = fields->get<std::chrono::milliseconds>("max_lag")) t.max_lag = *lag;
  if (const auto* backfill = fields->get<bool>("backfill")) t.backfill = *backfill;
  if (fields->has("deletes")) {
    lua_getfield(L, index, "deletes");
    const int del = lua_gettop(L);
    TableDecl::SoftDelete soft;
    bool keep_given = false;
    lua_pushnil(L);
    while (lua_next(L, del) != 0) {
      std::string key = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "";
      if (key == "reconcile") {
        Result<std::chrono::milliseconds> every = Status(ErrorKind::kConfig, "");
        if (lua_type(L, -1) == LUA_TSTRING) {
          every = ParseDuration(lua_tostring(L, -1));
        } else if (lua_type(L, -1) == LUA_TNUMBER) {
          every = DurationFromSeconds(lua_tonumber(L, -1));
        } else {
          throw ScriptError(what +
                            ": deletes.reconcile must be an interval (\"1h\", \"30m\" "
                            "or seconds), got " +
                            DescribeValue(L, lua_gettop(L)));
        }
        if (!every.ok())
          throw ScriptError(what + ": deletes.reconcile: " + every.status().message());
        t.reconcile_every = *every;
      } else if (key == "soft" && lua_type(L, -1) == LUA_TSTRING && lua_rawlen(L, -1) > 0) {
        soft.column = lua_tostring(L, -1);
      } else if (key == "keep" && lua_type(L, -1) == LUA_TBOOLEAN) {
        soft.keep = lua_toboolean(L, -1) != 0;
        keep_given = true;
      } else if (key == "soft" || key == "keep") {
        throw ScriptError(what + ": deletes." + key + " must be " +
                          (key == "soft" ? "a column name" : "true or false") + ", got " +
                          DescribeValue(L, lua_gettop(L)));
      } else {
        throw ScriptError(what + ": unknown field '" + key +
                          "' in deletes (known: soft, keep, reconcile)");
      }
      lua_pop(L, 1);
    }
    if (soft.column.empty() && !t.reconcile_every) {
      throw ScriptError(what +
                        ": deletes needs soft = \"column\" (the column that marks a "
                        "deleted row) or reconcile = \"1h\" (how often to look for rows gone "
                        "from the source)");
    }
    if (soft.column.empty() && keep_given) {
      throw ScriptError(what + ": deletes.keep applies to soft deletes (soft = \"column\")");
    }
    lua_pop(L, 1);
    if (!soft.column.empty()) t.soft_delete = std::move(soft);
    if (t.reconcile_every) {
      // Reconcile deletes target rows whose key the source no longer has: keys must pass
      // through unchanged, and only a table with a cursor misses deletions.
      if (fields->has("transform")) {
        throw ScriptError(what +
                          ": deletes.reconcile cannot be combined with transform (a transform "
                          "may change key values, and reconcile would delete the rows it "
                          "cannot find on the source)");
      }
      if (t.cursor.empty()) {
        throw ScriptError(what +
                          ": deletes.reconcile needs a cursor; a table without one is "
                          "refreshed whole each run and already follows deletes");
      }
      if (t.write == WriteMode::kAppend) {
        throw ScriptError(what +
                          ": deletes.reconcile does not apply to write = \"append\" (an "
                          "append-only table keeps what it has written)");
      }
    }
  }
  if (fields->has("on_schema_change")) {
    lua_getfield(L, index, "on_schema_change");
    if (lua_type(L, -1) == LUA_TFUNCTION) {
      t.schema_change_handler = std::make_shared<LuaSchemaChange>(*LuaHost::From(L), name);
    } else {
      std::string word = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "";
      if (word == "continue") {
        t.on_schema_change = SchemaChangeAction::kContinue;
      } else if (word == "pause") {
        t.on_schema_change = SchemaChangeAction::kPause;
      } else if (word == "resync") {
        t.on_schema_change = SchemaChangeAction::kResync;
      } else {
        throw ScriptError(what +
                          ": field 'on_schema_change' must be \"continue\", \"pause\", "
                          "\"resync\" or a function, got " +
                          DescribeValue(L, lua_gettop(L)));
      }
      lua_pop(L, 1);
    }
  }

  std::vector<ExtraColumn> extra;
  if (fields->has("columns_out")) {
    if (!fields->has("transform")) {
      throw ScriptError(what + ": field 'columns_out' needs a transform to fill the columns");
    }
    lua_getfield(L, index, "columns_out");
    int c = lua_gettop(L);
    lua_pushnil(L);
    while (lua_next(L, c) != 0) {
      if (lua_type(L, -2) != LUA_TSTRING || lua_rawlen(L, -2) == 0) {
        throw ScriptError(what +
                          ": field 'columns_out' maps column names to a type, "
                          "{ score = \"INTEGER\" }, got a " +
                          DescribeValue(L, lua_gettop(L) - 1) + " key");
      }
      ExtraColumn e;
      e.name = lua_tostring(L, -2);
      if (lua_type(L, -1) == LUA_TBOOLEAN && lua_toboolean(L, -1) == 0) {
        e.removed = true;
      } else if (lua_type(L, -1) == LUA_TSTRING) {
        std::string type = AsciiLower(lua_tostring(L, -1));
        if (type == "integer") {
          e.type = ColumnType::kInteger;
        } else if (type == "real") {
          e.type = ColumnType::kReal;
        } else if (type == "text") {
          e.type = ColumnType::kText;
        } else if (type == "blob") {
          e.type = ColumnType::kBlob;
        } else {
          throw ScriptError(what + ": columns_out." + e.name +
                            " must be \"TEXT\", \"INTEGER\", \"REAL\", \"BLOB\" or false, got " +
                            DescribeValue(L, lua_gettop(L)));
        }
      } else {
        throw ScriptError(what + ": columns_out." + e.name +
                          " must be \"TEXT\", \"INTEGER\", \"REAL\", \"BLOB\" or false, got " +
                          DescribeValue(L, lua_gettop(L)));
      }
      extra.push_back(std::move(e));
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
    // Table order is not stable in Lua: added columns are created in name order.
    std::sort(extra.begin(), extra.end(),
              [](const ExtraColumn& a, const ExtraColumn& b) { return a.name < b.name; });
  }
  if (fields->has("transform")) {
    auto policy = *fields->get<std::string>("on_row_error") == "fail" ? RowErrorPolicy::kFail
                                                                      : RowErrorPolicy::kReject;
    auto transform =
        std::make_shared<LuaTransform>(*LuaHost::From(L), name, std::move(extra), policy);
    lua_getfield(L, index, "transform");
    transform->SetFunction();
    t.transform = std::move(transform);
  }
  if (fields->has("on")) {
    lua_getfield(L, index, "on");
    int on = lua_gettop(L);
    // Checked first, so a mistake registers nothing.
    lua_pushnil(L);
    while (lua_next(L, on) != 0) {
      std::string key = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "";
      if (!LuaEvents::Parse(key)) {
        throw ScriptError(what + ": field 'on': unknown event '" +
                          (key.empty() ? DescribeValue(L, lua_gettop(L) - 1) : key) +
                          "' (events: " + LuaEvents::Names() + ")");
      }
      if (lua_type(L, -1) != LUA_TFUNCTION) {
        throw ScriptError(what + ": field 'on': on." + key + " must be a function, got " +
                          DescribeValue(L, lua_gettop(L)));
      }
      lua_pop(L, 1);
    }
    lua_pushnil(L);
    while (lua_next(L, on) != 0) {
      LuaHost::From(L)->event_handlers().Add(L, *LuaEvents::Parse(lua_tostring(L, -2)),
                                             lua_gettop(L), name);
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
  }
  d.deployment.tables.push_back(std::move(t));
}

// The second half of `siphon.replicate "name" { … }`: upvalues are the name and the serial
// of the pending declaration.
int CurriedBody(lua_State* L) {
  Declarations& d = LuaHost::From(L)->declarations();
  std::string name = lua_tostring(L, lua_upvalueindex(1));
  d.pending_tables.erase(static_cast<int>(lua_tointeger(L, lua_upvalueindex(2))));
  Declare(L, name, 1);
  return 0;
}

int ReplicateBody(lua_State* L) {
  RequireLoading(L, "siphon.replicate");
  if (lua_type(L, 1) != LUA_TSTRING) {
    throw ScriptError(
        "siphon.replicate expects the target table name first: siphon.replicate \"orders\" { "
        "source = …, … }, got " +
        DescribeValue(L, 1));
  }
  std::string name = lua_tostring(L, 1);
  if (lua_gettop(L) >= 2) {
    Declare(L, name, 2);
    return 0;
  }
  CheckTableName(name);
  Declarations& d = LuaHost::From(L)->declarations();
  int serial = d.next_pending++;
  d.pending_tables[serial] = {name, CallerLocation(L, 1)};
  lua_pushvalue(L, 1);
  lua_pushinteger(L, serial);
  lua_pushcclosure(L, Bind<CurriedBody>, 2);
  return 1;
}

}  // namespace

void RegisterReplicateBinding(lua_State* L, int siphon) {
  lua_pushcfunction(L, Bind<ReplicateBody>);
  lua_setfield(L, siphon, "replicate");
}

}  // namespace siphon

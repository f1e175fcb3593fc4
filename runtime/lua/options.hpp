#pragma once
#include <chrono>
#include <cstdint>
#include <limits>
#include <map>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <lua.hpp>

#include "adapters/source.hpp"
#include "runtime/base/spelling.hpp"
#include "runtime/base/status.hpp"

namespace siphon {

/// What a field of a `siphon.*{ … }` table holds.
enum class FieldType {
  kString,      ///< a string (optionally one of `choices`)
  kInteger,     ///< an integral number within [min, max]
  kBoolean,     ///< true or false
  kDuration,    ///< "30s", "1m30s" … or a number of seconds (runtime/base/duration.hpp)
  kStringList,  ///< a string or a non-empty list of distinct, non-empty strings
  kSource,      ///< a handle returned by `siphon.<kind>{ … }`
  kFunction,    ///< a Lua function (the caller reads it from the table itself)
  kTable,       ///< a Lua table (the caller reads and checks its contents itself)
  kAny,         ///< any value (the caller reads and checks it itself)
};

/// The value of a kFunction or kTable field: present, left in the Lua table.
struct LuaValuePresent {};

/// A source handle as Lua holds it: a full userdata with metatable kSourceHandleMeta,
/// indexing Declarations::deployment.sources.
struct SourceHandle {
  size_t index;
};
inline constexpr const char* kSourceHandleMeta = "siphon.source";

/// A validated field value. std::monostate: absent and no default.
using FieldValue =
    std::variant<std::monostate, std::string, int64_t, bool, std::chrono::milliseconds,
                 std::vector<std::string>, SourceHandle, LuaValuePresent>;

/// One field a `siphon.*` call accepts: the single declarative description used to validate
/// scripts and to write the reference documentation.
struct FieldSpec {
  std::string name;
  FieldType type = FieldType::kString;
  bool required = false;
  FieldValue default_value;                           ///< applied when the field is absent
  std::string doc;                                    ///< one line for the reference
  std::vector<std::string> choices;                   ///< kString: the allowed values (empty: any)
  int64_t min = std::numeric_limits<int64_t>::min();  ///< kInteger bounds
  int64_t max = std::numeric_limits<int64_t>::max();
  std::string expected;  ///< replaces the type's wording in errors ("a source returned by …")
  bool secret = false;   ///< a password or token: errors name its type, never its value
};

/// The validated fields of one call, defaults applied.
class Fields {
 public:
  bool has(const std::string& name) const;
  /// The value, or nullptr when absent (or of another type: the spec rules that out).
  template <typename T>
  const T* get(const std::string& name) const {
    auto it = values_.find(name);
    return it == values_.end() ? nullptr : std::get_if<T>(&it->second);
  }
  void set(const std::string& name, FieldValue value) { values_[name] = std::move(value); }

 private:
  std::map<std::string, FieldValue> values_;
};

/// Validates the table at stack index `index` against `spec` with raw access (no
/// metamethods run). `what` names the call in messages, e.g. `siphon.replicate "orders"`.
/// Errors (ErrorKind::kConfig) name the field: an unknown one with the closest valid name,
/// a wrong type as "field 'every' must be a duration string or number, got boolean", a
/// missing required one. Must run with the memory cap lifted (LuaHost::EnterNative).
Result<Fields> ReadFields(lua_State* L, int index, const std::vector<FieldSpec>& spec,
                          std::string_view what);

/// The fields an adapter's OptionSpec list describes.
std::vector<FieldSpec> FieldsFromSourceOptions(const std::vector<OptionSpec>& options);

/// The reference of a spec as Markdown list items ("- `every` (duration, default 60s): …").
std::string DescribeFields(const std::vector<FieldSpec>& spec);

/// "boolean", "number (1.5)", "siphon.source" …: what a value is, for "got …" in messages.
std::string DescribeValue(lua_State* L, int index);

}  // namespace siphon

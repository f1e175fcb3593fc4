#include "runtime/base/schema.hpp"

#include <algorithm>
#include <cmath>
#include <map>

#include <nlohmann/json.hpp>

#include "runtime/base/hex.hpp"

namespace siphon {

std::string_view ColumnTypeName(ColumnType type) {
  switch (type) {
    case ColumnType::kInteger:
      return "INTEGER";
    case ColumnType::kReal:
      return "REAL";
    case ColumnType::kText:
      return "TEXT";
    case ColumnType::kBlob:
      return "BLOB";
    case ColumnType::kAny:
      return "";
  }
  return "TEXT";
}

int TableSchema::Find(std::string_view name) const {
  for (size_t i = 0; i < columns.size(); ++i) {
    if (columns[i].name == name) return static_cast<int>(i);
  }
  return -1;
}

bool TableSchema::OrderIsUnique(const std::vector<std::string>& order_by) const {
  return !primary_key.empty() &&
         std::all_of(primary_key.begin(), primary_key.end(), [&](const std::string& k) {
           return std::find(order_by.begin(), order_by.end(), k) != order_by.end();
         });
}

std::string TableSchema::Hash() const {
  // Over "name:type;" of every column and the key: stable across builds and runs.
  Fnv1a h;
  for (const auto& c : columns) {
    h.Mix(c.name);
    h.Mix(":");
    h.Mix(c.source_type);
    h.Mix(";");
  }
  h.Mix("key:");
  for (const auto& k : primary_key) {
    h.Mix(k);
    h.Mix(";");
  }
  return h.Hex();
}

void TakeKeyFromUniqueIndex(TableSchema& schema, const std::vector<UniqueIndex>& indexes) {
  if (!schema.primary_key.empty()) return;
  // By name: the refusals read the same whatever order the catalog lists the indexes in.
  std::vector<const UniqueIndex*> by_name;
  for (const UniqueIndex& index : indexes) by_name.push_back(&index);
  std::sort(by_name.begin(), by_name.end(),
            [](const UniqueIndex* a, const UniqueIndex* b) { return a->name < b->name; });
  const UniqueIndex* chosen = nullptr;
  for (const UniqueIndex* candidate : by_name) {
    const UniqueIndex& index = *candidate;
    std::string refused = index.unusable;
    for (size_t i = 0; refused.empty() && i < index.columns.size(); ++i) {
      const int at = schema.Find(index.columns[i]);
      if (at < 0) {
        refused = "indexes column \"" + index.columns[i] + "\", which siphon does not read";
      } else if (schema.columns[at].nullable) {
        refused = "has the nullable column \"" + index.columns[i] + "\"";
      } else if (schema.columns[at].order == OrderKind::kOther) {
        refused = "has the column \"" + index.columns[i] + "\" of type " +
                  schema.columns[at].source_type + ", which cannot be a key (it has no order)";
      }
    }
    if (index.columns.empty() && refused.empty()) refused = "has no columns";
    if (!refused.empty()) {
      schema.refused_key_indexes.push_back("unique index \"" + index.name + "\" " + refused);
      continue;
    }
    if (chosen == nullptr || index.columns.size() < chosen->columns.size() ||
        (index.columns.size() == chosen->columns.size() && index.name < chosen->name)) {
      chosen = &index;
    }
  }
  if (chosen == nullptr) return;
  schema.primary_key = chosen->columns;
  schema.key_index = chosen->name;
}

CursorValue CursorValueOf(const RowBatch& batch, size_t row, size_t column) {
  const Cell& c = batch.at(row, column);
  switch (c.type) {
    case ValueType::kInt:
      return c.i;
    case ValueType::kReal:
      return c.d;
    case ValueType::kText:
      return std::string(batch.bytes(c));
    case ValueType::kBlob:
      return Bytes{std::string(batch.bytes(c))};
    case ValueType::kNull:
      return std::monostate{};
  }
  return std::monostate{};
}

std::vector<Cursor> CursorsOf(const RowBatch& batch) {
  std::vector<Cursor> out(batch.rows());
  for (size_t r = 0; r < batch.rows(); ++r) {
    out[r].reserve(batch.columns());
    for (size_t c = 0; c < batch.columns(); ++c) out[r].push_back(CursorValueOf(batch, r, c));
  }
  return out;
}

std::string CursorColumnsJson(const std::vector<std::string>& columns) {
  return nlohmann::json(columns).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string RowToJson(const std::vector<ColumnInfo>& columns, const RowBatch& batch, size_t row) {
  nlohmann::json out = nlohmann::json::object();
  for (size_t c = 0; c < columns.size() && c < batch.columns(); ++c) {
    const Cell& cell = batch.at(row, c);
    nlohmann::json& v = out[columns[c].name];
    switch (cell.type) {
      case ValueType::kNull:
        v = nullptr;
        break;
      case ValueType::kInt:
        v = cell.i;
        break;
      case ValueType::kReal:
        if (std::isfinite(cell.d)) {
          v = cell.d;
        } else {
          v = nullptr;
        }
        break;
      case ValueType::kText:
        v = std::string(batch.bytes(cell));
        break;
      case ValueType::kBlob: {
        std::string hex = "\\x";
        AppendHex(hex, batch.bytes(cell));
        v = std::move(hex);
        break;
      }
    }
  }
  return out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// A cursor is stored exactly, so the next run starts where this one stopped. JSON has no
// infinity or NaN, and its text is UTF-8: a real that is not finite is {"real": "Infinity"}
// ("-Infinity", "NaN"), text that is not UTF-8 is {"text_hex": "61ff"} (its bytes), and a
// binary value is {"bytes_hex": "00ff"}, told apart from text so it binds as bytes again.
// Written as null or with U+FFFD, they named another position: a REAL cursor at Infinity
// matched nothing and the table found nothing new for good, and "a\x80" came back as
// "a\xef\xbf\xbd", past the rows between them.
std::string CursorToJson(const Cursor& cursor) {
  nlohmann::json arr = nlohmann::json::array();
  for (const auto& v : cursor) {
    if (const auto* i = std::get_if<int64_t>(&v)) {
      arr.push_back(*i);
    } else if (const auto* d = std::get_if<double>(&v)) {
      if (std::isfinite(*d)) {
        arr.push_back(*d);
      } else {
        arr.push_back({{"real", std::isnan(*d) ? "NaN" : *d > 0 ? "Infinity" : "-Infinity"}});
      }
    } else if (const auto* s = std::get_if<std::string>(&v)) {
      nlohmann::json text = *s;
      try {
        (void)text.dump();  // strict: throws on text that is not UTF-8
        arr.push_back(std::move(text));
      } catch (const nlohmann::json::exception&) {
        std::string hex;
        AppendHex(hex, *s);
        arr.push_back({{"text_hex", std::move(hex)}});
      }
    } else if (const auto* b = std::get_if<Bytes>(&v)) {
      std::string hex;
      AppendHex(hex, b->data);
      arr.push_back({{"bytes_hex", std::move(hex)}});
    } else {
      arr.push_back(nullptr);
    }
  }
  return arr.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::optional<Cursor> CursorFromJson(std::string_view json) {
  auto parsed = nlohmann::json::parse(json, nullptr, false);
  if (parsed.is_discarded() || !parsed.is_array()) return std::nullopt;
  Cursor cursor;
  for (const auto& v : parsed) {
    if (v.is_number_integer()) {
      cursor.emplace_back(v.get<int64_t>());
    } else if (v.is_number_float()) {
      cursor.emplace_back(v.get<double>());
    } else if (v.is_string()) {
      cursor.emplace_back(v.get<std::string>());
    } else if (v.is_null()) {
      cursor.emplace_back(std::monostate{});
    } else if (v.is_object() && v.size() == 1 && v.contains("real") && v["real"].is_string()) {
      const std::string& r = v["real"].get_ref<const std::string&>();
      if (r == "NaN") {
        cursor.emplace_back(std::nan(""));
      } else if (r == "Infinity" || r == "-Infinity") {
        cursor.emplace_back(r[0] == '-' ? -HUGE_VAL : HUGE_VAL);
      } else {
        return std::nullopt;
      }
    } else if (v.is_object() && v.size() == 1 &&
               ((v.contains("text_hex") && v["text_hex"].is_string()) ||
                (v.contains("bytes_hex") && v["bytes_hex"].is_string()))) {
      const bool text = v.contains("text_hex");
      auto bytes = DecodeHex(v[text ? "text_hex" : "bytes_hex"].get_ref<const std::string&>());
      if (!bytes) return std::nullopt;
      if (text) {
        cursor.emplace_back(std::move(*bytes));
      } else {
        cursor.emplace_back(Bytes{std::move(*bytes)});
      }
    } else {
      return std::nullopt;
    }
  }
  return cursor;
}

std::string SchemaDiff::ToJson() const {
  nlohmann::json j = {{"added", added}, {"dropped", dropped}, {"retyped", nlohmann::json::array()}};
  for (const auto& r : retyped) {
    j["retyped"].push_back({{"column", r.column}, {"from", r.from}, {"to", r.to}});
  }
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string SchemaToJson(const TableSchema& schema) {
  nlohmann::json j = nlohmann::json::array();
  for (const auto& c : schema.columns) j.push_back({{"name", c.name}, {"type", c.source_type}});
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

SchemaDiff DiffSchema(std::string_view recorded_json, const TableSchema& now) {
  SchemaDiff diff;
  auto old = nlohmann::json::parse(recorded_json, nullptr, false);
  if (old.is_discarded() || !old.is_array() || old.empty()) return diff;
  std::map<std::string, std::string> before;
  std::vector<std::string> order;
  for (const auto& c : old) {
    if (!c.is_object() || !c.contains("name") || !c["name"].is_string()) continue;
    std::string name = c["name"].get<std::string>();
    before[name] = c.value("type", "");
    order.push_back(name);
  }
  for (const auto& c : now.columns) {
    auto it = before.find(c.name);
    if (it == before.end()) {
      diff.added.push_back(c.name);
    } else if (it->second != c.source_type) {
      diff.retyped.push_back({c.name, it->second, c.source_type});
    }
  }
  for (const auto& name : order) {
    if (now.Find(name) < 0) diff.dropped.push_back(name);
  }
  return diff;
}

}  // namespace siphon

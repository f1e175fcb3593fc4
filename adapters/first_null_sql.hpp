#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace siphon {

/// SourceConnection::FirstNull's query in any dialect whose `quote` makes an identifier:
///   SELECT CASE WHEN "c1" IS NULL THEN 1 … END FROM <from> WHERE "c1" IS NULL OR … LIMIT 1
/// Its one value is the 1-based position of a NULL column in the first such row.
template <typename Quote>
std::string FirstNullSql(const std::vector<std::string>& columns, Quote quote,
                         std::string_view from) {
  std::string which = "CASE", where;
  for (size_t i = 0; i < columns.size(); ++i) {
    const std::string test = quote(columns[i]) + " IS NULL";
    which += " WHEN " + test + " THEN " + std::to_string(i + 1);
    where += (i ? " OR " : "") + test;
  }
  return "SELECT " + which + " END FROM " + std::string(from) + " WHERE " + where + " LIMIT 1";
}

/// The column FirstNullSql's value `at` names (the first column for a value out of range).
inline std::string FirstNullColumn(const std::vector<std::string>& columns, int64_t at) {
  return at >= 1 && static_cast<size_t>(at) <= columns.size() ? columns[at - 1] : columns[0];
}

}  // namespace siphon

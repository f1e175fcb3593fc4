#include "adapters/mysql/mysql_source.hpp"
#include "adapters/postgres/postgres_source.hpp"
#include "adapters/source.hpp"
#include "adapters/sqlite/sqlite_source.hpp"

namespace siphon {

const std::vector<SourceDefinition>& SourceDefinitions() {
  // One line per adapter.
  static const std::vector<SourceDefinition> definitions = {
      postgres::Definition(),
      mysql::Definition(),
      sqlite_source::Definition(),
  };
  return definitions;
}

const SourceDefinition* FindSourceDefinition(std::string_view kind) {
  for (const auto& d : SourceDefinitions()) {
    if (d.kind == kind) return &d;
  }
  return nullptr;
}

}  // namespace siphon

#include "adapters/sqlite/sqlite_source.hpp"

#include "adapters/sqlite/sqlite_connection.hpp"

namespace siphon::sqlite_source {

namespace {

class SqliteSource final : public Source {
 public:
  explicit SqliteSource(std::string path) : path_(std::move(path)) {}
  std::string_view kind() const override { return "sqlite"; }
  std::string Describe() const override { return "sqlite:" + path_; }
  std::unique_ptr<SourceConnection> NewConnection(uv_loop_t* loop) override {
    return std::make_unique<SqliteConnection>(loop, path_);
  }

 private:
  std::string path_;
};

}  // namespace

SourceDefinition Definition() {
  SourceDefinition definition;
  definition.kind = "sqlite";
  definition.options = {
      {"path", OptionType::kString, true,
       "the SQLite database file, opened read-only (relative to the script's folder)", true},
  };
  definition.make = [](const Options& options) -> Result<std::unique_ptr<Source>> {
    auto it = options.find("path");
    const std::string* path = it == options.end() ? nullptr : std::get_if<std::string>(&it->second);
    if (!path || path->empty()) {
      return Status(ErrorKind::kConfig, "siphon.sqlite: path is required");
    }
    return std::unique_ptr<Source>(std::make_unique<SqliteSource>(*path));
  };
  return definition;
}

}  // namespace siphon::sqlite_source

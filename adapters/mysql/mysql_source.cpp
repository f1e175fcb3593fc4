#include "adapters/mysql/mysql_source.hpp"

#include "adapters/mysql/mysql_config.hpp"
#include "adapters/mysql/mysql_connection.hpp"

namespace siphon::mysql {

namespace {

class MysqlSource final : public Source {
 public:
  explicit MysqlSource(MysqlConfig config)
      : config_(std::make_shared<const MysqlConfig>(std::move(config))),
        state_(std::make_shared<MysqlSourceState>()) {}

  std::string_view kind() const override { return "mysql"; }
  std::string Describe() const override { return config_->Describe(); }
  std::unique_ptr<SourceConnection> NewConnection(uv_loop_t* loop) override {
    return std::make_unique<MysqlConnection>(loop, config_, state_);
  }

 private:
  std::shared_ptr<const MysqlConfig> config_;
  std::shared_ptr<MysqlSourceState> state_;
};

}  // namespace

SourceDefinition Definition() {
  SourceDefinition definition;
  definition.kind = "mysql";
  definition.options = OptionSpecs();
  definition.make = [](const Options& options) -> Result<std::unique_ptr<Source>> {
    Result<MysqlConfig> config = ParseOptions(options);
    if (!config.ok()) return config.status();
    return std::unique_ptr<Source>(std::make_unique<MysqlSource>(std::move(*config)));
  };
  return definition;
}

}  // namespace siphon::mysql

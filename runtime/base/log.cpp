#include "runtime/base/log.hpp"

#include <mutex>

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_color_sinks.h>

namespace siphon {
namespace {

struct LogConfig {
  std::mutex mu;
  spdlog::sink_ptr sink;
  spdlog::level::level_enum level = spdlog::level::info;
  LogFormat format = LogFormat::kText;
};

LogConfig& Config() {
  static LogConfig config;
  return config;
}

// %j: the message escaped for a JSON string.
class JsonMessageFlag : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&,
              spdlog::memory_buf_t& dest) override {
    static const char* kHex = "0123456789abcdef";
    for (char ch : std::string_view(msg.payload.data(), msg.payload.size())) {
      auto u = static_cast<unsigned char>(ch);
      if (ch == '"' || ch == '\\') {
        dest.push_back('\\');
        dest.push_back(ch);
      } else if (u < 0x20) {
        const char esc[] = {'\\', 'u', '0', '0', kHex[u >> 4], kHex[u & 15]};
        dest.append(esc, esc + sizeof esc);
      } else {
        dest.push_back(ch);
      }
    }
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<JsonMessageFlag>();
  }
};

void Apply(spdlog::logger& logger, const LogConfig& c) {
  logger.set_level(c.level);
  if (c.format == LogFormat::kJson) {
    auto formatter = std::make_unique<spdlog::pattern_formatter>(spdlog::pattern_time_type::utc);
    formatter->add_flag<JsonMessageFlag>('j').set_pattern(
        R"({"at":"%Y-%m-%dT%H:%M:%S.%eZ","level":"%l","logger":"%n","message":"%j"})");
    logger.set_formatter(std::move(formatter));
  } else {
    logger.set_pattern("%Y-%m-%d %H:%M:%S.%e %^%-5l%$ [%n] %v");
  }
}

}  // namespace

bool ConfigureLogging(const std::string& level, LogFormat format) {
  auto lvl = spdlog::level::from_str(level);
  if (lvl == spdlog::level::off && level != "off") return false;
  LogConfig& c = Config();
  {
    std::lock_guard lock(c.mu);
    c.level = lvl;
    c.format = format;
    spdlog::apply_all([&c](const std::shared_ptr<spdlog::logger>& l) { Apply(*l, c); });
  }
  // spdlog's own default logger writes to stdout, which belongs to siphon's output
  // (`check`, `status --json`): code that logs through spdlog::warn() goes to stderr too.
  spdlog::set_default_logger(Logger("siphon"));
  return true;
}

std::shared_ptr<spdlog::logger> Logger(const std::string& name) {
  if (auto existing = spdlog::get(name)) return existing;
  LogConfig& c = Config();
  std::lock_guard lock(c.mu);
  if (auto existing = spdlog::get(name)) return existing;
  if (!c.sink) c.sink = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
  auto logger = std::make_shared<spdlog::logger>(name, c.sink);
  Apply(*logger, c);
  spdlog::register_logger(logger);
  return logger;
}

}  // namespace siphon

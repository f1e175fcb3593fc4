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

thread_local const LogFields* current_fields = nullptr;

void AppendJsonString(std::string_view text, spdlog::memory_buf_t& dest) {
  static const char* kHex = "0123456789abcdef";
  for (char ch : text) {
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

// %j: the message escaped for a JSON string.
class JsonMessageFlag : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&,
              spdlog::memory_buf_t& dest) override {
    AppendJsonString(std::string_view(msg.payload.data(), msg.payload.size()), dest);
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<JsonMessageFlag>();
  }
};

// %F: the line's fields as JSON members, each preceded by a comma: "table" from a
// "table:NAME" logger, then the ScopedLogFields of this thread.
class JsonFieldsFlag : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&,
              spdlog::memory_buf_t& dest) override {
    std::string_view logger(msg.logger_name.data(), msg.logger_name.size());
    const LogFields* f = current_fields;
    if (f != nullptr && !f->table.empty()) {
      Member("table", f->table, dest);
    } else if (logger.rfind("table:", 0) == 0) {
      Member("table", logger.substr(6), dest);
    }
    if (f == nullptr) return;
    if (!f->event.empty()) Member("event", f->event, dest);
    Number("rows", f->rows, dest);
    Number("deleted", f->deleted, dest);
    Number("duration_ms", f->duration_ms, dest);
    Number("attempt", f->attempt, dest);
    if (!f->error_kind.empty()) Member("error_kind", f->error_kind, dest);
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<JsonFieldsFlag>();
  }

 private:
  static void Name(std::string_view name, spdlog::memory_buf_t& dest) {
    dest.append(std::string_view(",\""));
    dest.append(name);
    dest.append(std::string_view("\":"));
  }
  static void Member(std::string_view name, std::string_view value, spdlog::memory_buf_t& dest) {
    Name(name, dest);
    dest.push_back('"');
    AppendJsonString(value, dest);
    dest.push_back('"');
  }
  static void Number(std::string_view name, const std::optional<int64_t>& value,
                     spdlog::memory_buf_t& dest) {
    if (!value) return;
    Name(name, dest);
    dest.append(std::string_view(std::to_string(*value)));
  }
};

void Apply(spdlog::logger& logger, const LogConfig& c) {
  logger.set_level(c.level);
  if (c.format == LogFormat::kJson) {
    auto formatter = std::make_unique<spdlog::pattern_formatter>(spdlog::pattern_time_type::utc);
    formatter->add_flag<JsonMessageFlag>('j');
    formatter->add_flag<JsonFieldsFlag>('F').set_pattern(
        R"({"at":"%Y-%m-%dT%H:%M:%S.%eZ","level":"%l","logger":"%n"%F,"message":"%j"})");
    logger.set_formatter(std::move(formatter));
  } else {
    logger.set_pattern("%Y-%m-%d %H:%M:%S.%e %^%-5l%$ [%n] %v");
  }
}

}  // namespace

ScopedLogFields::ScopedLogFields(LogFields fields)
    : fields_(std::move(fields)), previous_(current_fields) {
  current_fields = &fields_;
}

ScopedLogFields::~ScopedLogFields() {
  current_fields = previous_;
}

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

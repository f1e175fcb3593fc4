#include "adapters/mysql/mysql_config.hpp"

#include <charconv>
#include <optional>

#include "runtime/base/hex.hpp"
#include "runtime/base/readable_file.hpp"

namespace siphon::mysql {

namespace {

Status ConfigError(std::string message) {
  return Status(ErrorKind::kConfig, "siphon.mysql: " + std::move(message));
}

std::optional<std::string> PercentDecode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out.push_back(s[i]);
      continue;
    }
    if (i + 2 >= s.size()) return std::nullopt;
    int hi = HexDigit(s[i + 1]);
    int lo = HexDigit(s[i + 2]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out.push_back(static_cast<char>(hi * 16 + lo));
    i += 2;
  }
  return out;
}

const std::string* GetString(const Options& options, const std::string& name) {
  auto it = options.find(name);
  if (it == options.end()) return nullptr;
  return std::get_if<std::string>(&it->second);
}

}  // namespace

std::string MysqlConfig::Describe() const {
  std::string out = "mysql://";
  if (!user.empty()) out += user + "@";
  if (!socket.empty()) {
    out += "localhost/" + database + "?socket=" + socket;
  } else {
    out += host + ":" + std::to_string(port) + "/" + database;
  }
  if (tls) out += socket.empty() ? "?tls=true" : "&tls=true";
  if (!tls_ca.empty()) out += "&tls_ca=" + tls_ca;
  return out;
}

namespace {

Status ApplyReadTimeout(const Options& options, MysqlConfig& config) {
  auto it = options.find("read_timeout");
  if (it == options.end()) return Status::Ok();
  int64_t t = std::get<int64_t>(it->second);
  if (t <= 0 || t > 86400) return ConfigError("read_timeout must be between 1 and 86400 seconds");
  config.read_timeout_s = static_cast<int>(t);
  return Status::Ok();
}

Status ApplySettle(const Options& options, MysqlConfig& config) {
  auto it = options.find("settle");
  if (it == options.end()) return Status::Ok();
  int64_t t = std::get<int64_t>(it->second);
  if (t < 0 || t > 3600) return ConfigError("settle must be between 0 and 3600 seconds");
  config.settle_s = static_cast<int>(t);
  return Status::Ok();
}

// The files are read once here so that a wrong path stops start-up with the file's name,
// instead of every connection failing with the client library's "SSL connection error".
Status ApplyTls(const Options& options, MysqlConfig& config) {
  if (auto it = options.find("tls"); it != options.end()) config.tls = std::get<bool>(it->second);
  struct File {
    const char* option;
    std::string* field;
  };
  for (File f : {File{"tls_ca", &config.tls_ca}, File{"tls_cert", &config.tls_cert},
                 File{"tls_key", &config.tls_key}}) {
    const std::string* path = GetString(options, f.option);
    if (path == nullptr) continue;
    // A folder opens (only reading it fails), so it passed here and failed every connection.
    if (std::string why = UnreadableFileReason(*path); !why.empty()) {
      return ConfigError(std::string(f.option) + ": cannot read \"" + *path + "\": " + why);
    }
    *f.field = *path;
  }
  if (config.tls_cert.empty() != config.tls_key.empty()) {
    return ConfigError("tls_cert and tls_key go together (the client certificate and its key)");
  }
  if (config.tls_ca.empty() && config.tls_cert.empty()) return Status::Ok();
  if (options.count("tls") && !config.tls) {
    return ConfigError("tls = false contradicts tls_ca and tls_cert (which need TLS)");
  }
  if (!config.socket.empty()) {
    return ConfigError(
        "tls_ca and tls_cert are for a server reached over TCP (host and port), not a socket");
  }
  config.tls = true;
  return Status::Ok();
}

}  // namespace

std::vector<OptionSpec> OptionSpecs() {
  return {
      {"dsn", OptionType::kString, false,
       "\"mysql://user:password@host:port/database\" (percent-encoded); instead of the fields "
       "below"},
      {"host", OptionType::kString, false, "server host name or address (default 127.0.0.1)"},
      {"port", OptionType::kInteger, false, "TCP port (default 3306)"},
      {"user", OptionType::kString, false, "user name"},
      {"password", OptionType::kString, false,
       "password (use siphon.env to keep it out of the script)"},
      {"database", OptionType::kString, false, "database of tables named without a prefix"},
      {"socket", OptionType::kString, false, "unix socket path, instead of host and port"},
      {"tls", OptionType::kBoolean, false,
       "require TLS: a server without it is refused; its certificate is verified only with "
       "tls_ca (default false)"},
      {"tls_ca", OptionType::kString, false,
       "CA file (PEM, relative to the script's folder): the server's certificate must chain "
       "to it and name the host; implies tls",
       true},
      {"tls_cert", OptionType::kString, false,
       "client certificate file (PEM), for a server that asks for one; with tls_key", true},
      {"tls_key", OptionType::kString, false, "the client certificate's private key (PEM)", true},
      {"connect_timeout", OptionType::kInteger, false,
       "seconds to wait for a connection (default 10)"},
      {"read_timeout", OptionType::kInteger, false,
       "seconds a query may wait for the server to answer before the run fails and is retried "
       "(default 300)"},
      {"settle", OptionType::kInteger, false,
       "seconds incremental runs on a time cursor hold back when the user lacks PROCESS "
       "(default 5, 0: none)"},
  };
}

Result<MysqlConfig> ParseDsn(std::string_view dsn) {
  std::string_view rest;
  for (std::string_view scheme : {"mysql://", "mariadb://"}) {
    if (dsn.substr(0, scheme.size()) == scheme) rest = dsn.substr(scheme.size());
  }
  if (rest.empty())
    return ConfigError("dsn must look like mysql://user:password@host:port/database");
  if (rest.find('?') != std::string_view::npos || rest.find('#') != std::string_view::npos) {
    return ConfigError("dsn: query parameters are not supported; use the socket/tls fields");
  }
  MysqlConfig config;
  // The password may contain '@' when not encoded: the last '@' ends the user info.
  size_t at = rest.rfind('@');
  if (at != std::string_view::npos) {
    std::string_view userinfo = rest.substr(0, at);
    rest = rest.substr(at + 1);
    size_t colon = userinfo.find(':');
    auto user = PercentDecode(userinfo.substr(0, colon));
    if (!user) return ConfigError("dsn: bad percent-encoding in the user name");
    config.user = *user;
    if (colon != std::string_view::npos) {
      auto password = PercentDecode(userinfo.substr(colon + 1));
      // Never echo the password back: the message names the part only.
      if (!password) return ConfigError("dsn: bad percent-encoding in the password");
      config.password = *password;
    }
  }
  size_t slash = rest.find('/');
  std::string_view hostport = rest.substr(0, slash);
  if (slash != std::string_view::npos) {
    auto db = PercentDecode(rest.substr(slash + 1));
    if (!db) return ConfigError("dsn: bad percent-encoding in the database name");
    config.database = *db;
  }
  std::string_view host = hostport;
  if (!hostport.empty() && hostport.front() == '[') {  // [::1]:3306
    size_t close = hostport.find(']');
    if (close == std::string_view::npos) return ConfigError("dsn: unterminated [ in the host");
    host = hostport.substr(1, close - 1);
    hostport = hostport.substr(close + 1);
    if (!hostport.empty() && hostport.front() != ':') return ConfigError("dsn: bad host");
  } else {
    size_t colon = hostport.rfind(':');
    host = hostport.substr(0, colon);
    hostport = colon == std::string_view::npos ? std::string_view() : hostport.substr(colon);
  }
  if (!hostport.empty()) {
    std::string_view port = hostport.substr(1);
    int value = 0;
    auto r = std::from_chars(port.data(), port.data() + port.size(), value);
    if (r.ec != std::errc() || r.ptr != port.data() + port.size() || value <= 0 || value > 65535) {
      return ConfigError("dsn: bad port \"" + std::string(port) + "\"");
    }
    config.port = value;
  }
  auto decoded_host = PercentDecode(host);
  if (!decoded_host) return ConfigError("dsn: bad percent-encoding in the host");
  if (!decoded_host->empty()) config.host = *decoded_host;
  return config;
}

Result<MysqlConfig> ParseOptions(const Options& options) {
  if (const std::string* dsn = GetString(options, "dsn")) {
    std::string conflicts;
    for (const char* field : {"host", "port", "user", "password", "database", "socket"}) {
      if (options.count(field)) conflicts += std::string(conflicts.empty() ? "" : ", ") + field;
    }
    if (!conflicts.empty()) {
      return ConfigError(
          "give either dsn or host/port/user/password/database/socket, not both "
          "(dsn given together with " +
          conflicts + ")");
    }
    Result<MysqlConfig> config = ParseDsn(*dsn);
    if (!config.ok()) return config;
    if (Status st = ApplyTls(options, *config); !st.ok()) return st;
    if (auto it = options.find("connect_timeout"); it != options.end()) {
      config->connect_timeout_s = static_cast<int>(std::get<int64_t>(it->second));
    }
    if (config->connect_timeout_s <= 0) return ConfigError("connect_timeout must be positive");
    if (Status st = ApplyReadTimeout(options, *config); !st.ok()) return st;
    if (Status st = ApplySettle(options, *config); !st.ok()) return st;
    return config;
  }
  MysqlConfig config;
  if (const std::string* v = GetString(options, "host")) config.host = *v;
  if (const std::string* v = GetString(options, "user")) config.user = *v;
  if (const std::string* v = GetString(options, "password")) config.password = *v;
  if (const std::string* v = GetString(options, "database")) config.database = *v;
  if (const std::string* v = GetString(options, "socket")) config.socket = *v;
  if (auto it = options.find("port"); it != options.end()) {
    int64_t port = std::get<int64_t>(it->second);
    if (port <= 0 || port > 65535) return ConfigError("port must be between 1 and 65535");
    config.port = static_cast<int>(port);
  }
  if (Status st = ApplyTls(options, config); !st.ok()) return st;
  if (auto it = options.find("connect_timeout"); it != options.end()) {
    int64_t t = std::get<int64_t>(it->second);
    if (t <= 0 || t > 3600)
      return ConfigError("connect_timeout must be between 1 and 3600 seconds");
    config.connect_timeout_s = static_cast<int>(t);
  }
  if (Status st = ApplyReadTimeout(options, config); !st.ok()) return st;
  if (Status st = ApplySettle(options, config); !st.ok()) return st;
  if (config.user.empty()) return ConfigError("user is required (or give a dsn)");
  if (config.host.empty() && config.socket.empty())
    return ConfigError("host or socket is required");
  return config;
}

}  // namespace siphon::mysql

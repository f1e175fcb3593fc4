#pragma once
#include <string>

#include "adapters/source.hpp"
#include "runtime/base/status.hpp"

namespace siphon::mysql {

/// Where and how to connect, from `siphon.mysql{…}` options.
struct MysqlConfig {
  std::string host = "127.0.0.1";
  int port = 3306;
  std::string user;
  std::string password;
  std::string database;
  std::string socket;  ///< unix socket path; when set, host and port are not used
  bool tls = false;    ///< require TLS
  /// CA file (PEM) the server's certificate must chain to; when set, the certificate must
  /// also name the host connected to. Implies `tls`.
  std::string tls_ca;
  std::string tls_cert;  ///< client certificate (PEM), for a server that asks for one
  std::string tls_key;   ///< its private key (PEM)
  int connect_timeout_s = 10;
  /// Seconds a read or write on an open connection may wait (MYSQL_OPT_READ_TIMEOUT).
  int read_timeout_s = 300;
  /// Seconds incremental runs hold back when the user cannot see other sessions'
  /// transactions (no PROCESS privilege): the horizon is then NOW() minus this.
  int settle_s = 5;

  /// "mysql://user@host:port/db" (or "…socket=/path"): never the password.
  std::string Describe() const;
};

/// The options `siphon.mysql{…}` accepts.
std::vector<OptionSpec> OptionSpecs();

/// Builds the config from options checked against OptionSpecs(): either `dsn`
/// ("mysql://user:pass@host:port/db", percent-decoded) or the separate fields; both at
/// once is a kConfig error naming the conflicting fields. The tls_ca, tls_cert
/// and tls_key files must be readable: a missing one is a kConfig error naming it, at start-up
/// rather than at each connection.
Result<MysqlConfig> ParseOptions(const Options& options);

/// Parses "mysql://user:pass@host:port/db" (also "mariadb://"). Parts are percent-decoded.
Result<MysqlConfig> ParseDsn(std::string_view dsn);

}  // namespace siphon::mysql

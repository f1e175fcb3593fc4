#pragma once
#include "adapters/source.hpp"

namespace siphon::mysql {

/// `siphon.mysql{ host, port, user, password, database, socket, tls, connect_timeout }` or
/// `siphon.mysql{ dsn = "mysql://user:pass@host:port/db" }`: MySQL and MariaDB sources.
SourceDefinition Definition();

}  // namespace siphon::mysql

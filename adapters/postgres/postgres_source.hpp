#pragma once
#include "adapters/source.hpp"

namespace siphon::postgres {

/// `siphon.postgres{ dsn = … }` or `{ host, port, user, password, database, sslmode }`.
SourceDefinition Definition();

}  // namespace siphon::postgres

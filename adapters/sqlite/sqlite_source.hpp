#pragma once
#include "adapters/source.hpp"

namespace siphon::sqlite_source {

/// `siphon.sqlite{ path = "app.db" }`: a SQLite file as a source, opened read-only.
SourceDefinition Definition();

}  // namespace siphon::sqlite_source

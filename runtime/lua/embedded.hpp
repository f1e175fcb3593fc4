#pragma once
#include <string_view>
#include <vector>

namespace siphon {

/// A Lua file shipped inside the binary (from the repository's lua/ folder).
struct EmbeddedFile {
  std::string_view name;    ///< module name: the file name without ".lua"
  std::string_view source;  ///< the file's text
};

/// Every file of lua/, embedded at build time.
const std::vector<EmbeddedFile>& EmbeddedLua();

}  // namespace siphon

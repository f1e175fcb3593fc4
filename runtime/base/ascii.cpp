#include "runtime/base/ascii.hpp"

namespace siphon {

std::string AsciiLower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = AsciiLower(c);
  return out;
}

}  // namespace siphon

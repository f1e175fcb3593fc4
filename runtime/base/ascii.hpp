#pragma once
#include <string>
#include <string_view>

namespace siphon {

/// `c` in lower case when it is an ASCII capital, any other byte as it is: no locale, so the
/// bytes of UTF-8 text pass untouched (type names, header names, URL schemes, identifiers).
constexpr char AsciiLower(char c) {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

/// `s` with its ASCII capitals in lower case.
std::string AsciiLower(std::string_view s);

}  // namespace siphon

#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace siphon {

/// Appends `bytes` as lowercase hex digits, two per byte (no prefix).
void AppendHex(std::string& out, std::string_view bytes);

/// The value of one hex digit (either case), or -1.
int HexDigit(char c);

/// The bytes an even number of hex digits (either case) spell; none for anything else.
std::optional<std::string> DecodeHex(std::string_view hex);

/// FNV-1a over the texts mixed in, 64 bits: the same for the same texts in every build and
/// run (a schema's hash, a prepared statement's name), unlike std::hash.
struct Fnv1a {
  uint64_t h = 1469598103934665603ull;
  void Mix(std::string_view text) {
    for (unsigned char c : text) {
      h ^= c;
      h *= 1099511628211ull;
    }
  }
  /// The hash as 16 lowercase hex digits.
  std::string Hex() const;
};

}  // namespace siphon

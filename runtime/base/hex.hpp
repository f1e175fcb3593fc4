#pragma once
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

}  // namespace siphon

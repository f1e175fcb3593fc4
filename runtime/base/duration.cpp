#include "runtime/base/duration.hpp"

#include <cmath>
#include <cstdio>
#include <string>

namespace siphon {
namespace {

struct Unit {
  std::string_view name;
  double ms;
};

// Largest first: parts must follow this order, and "ms" is tried before "m".
constexpr Unit kUnits[] = {
    {"d", 86400000.0}, {"h", 3600000.0}, {"m", 60000.0}, {"s", 1000.0}, {"ms", 1.0}};

Status Invalid(std::string_view text, std::string_view why) {
  return Status(ErrorKind::kConfig,
                "invalid duration '" + std::string(text) + "': " + std::string(why));
}

// Rounds and range-checks a total; `text` is what the user wrote, for the message.
Result<std::chrono::milliseconds> Finish(double total_ms, std::string_view text) {
  auto max_ms = static_cast<double>(kMaxDuration.count());
  if (total_ms > max_ms) return Invalid(text, "too long (at most 3650d)");
  if (total_ms <= 0) return Invalid(text, "must be greater than zero");
  double rounded = std::round(total_ms);
  if (rounded < 1) return Invalid(text, "shorter than the smallest interval, 1ms");
  return std::chrono::milliseconds(static_cast<int64_t>(rounded));
}

bool IsDigit(char c) {
  return c >= '0' && c <= '9';
}

}  // namespace

Result<std::chrono::milliseconds> ParseDuration(std::string_view text) {
  if (text.empty()) return Status(ErrorKind::kConfig, "invalid duration '': empty");
  if (text.front() == '-') return Invalid(text, "must not be negative");
  size_t pos = 0;
  size_t next_unit = 0;  // index into kUnits of the largest unit still allowed
  double total_ms = 0;
  while (pos < text.size()) {
    // NUMBER: digits, optionally '.' and more digits. Long digit strings only lose
    // precision in the double, and the range check below rejects them anyway.
    size_t start = pos;
    double value = 0;
    while (pos < text.size() && IsDigit(text[pos])) value = value * 10 + (text[pos++] - '0');
    size_t int_digits = pos - start;
    size_t frac_digits = 0;
    if (pos < text.size() && text[pos] == '.') {
      ++pos;
      double scale = 0.1;
      while (pos < text.size() && IsDigit(text[pos])) {
        value += (text[pos++] - '0') * scale;
        scale /= 10;
        ++frac_digits;
      }
    }
    if (int_digits + frac_digits == 0) {
      return Invalid(text,
                     "expected a number followed by a unit (ms, s, m, h, d), e.g. '30s' or "
                     "'1m30s'");
    }
    size_t unit_start = pos;
    while (pos < text.size() && !IsDigit(text[pos]) && text[pos] != '.') ++pos;
    std::string_view unit = text.substr(unit_start, pos - unit_start);
    if (unit.empty()) return Invalid(text, "missing unit (ms, s, m, h or d), e.g. '30s'");
    size_t found = std::size(kUnits);
    for (size_t i = 0; i < std::size(kUnits); ++i) {
      if (kUnits[i].name == unit) found = i;
    }
    if (found == std::size(kUnits)) {
      return Invalid(text, "unknown unit '" + std::string(unit) + "' (use ms, s, m, h or d)");
    }
    if (found < next_unit) {
      return Invalid(text,
                     "units must go from the largest to the smallest, each once (e.g. '1m30s')");
    }
    next_unit = found + 1;
    total_ms += value * kUnits[found].ms;
    if (total_ms > static_cast<double>(kMaxDuration.count())) {
      return Invalid(text, "too long (at most 3650d)");
    }
  }
  return Finish(total_ms, text);
}

Result<std::chrono::milliseconds> DurationFromSeconds(double seconds) {
  // Print the number as the script would have written it (30, 0.5), not as 30.000000.
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.15g", seconds);
  std::string text = std::string(buf) + " seconds";
  if (!std::isfinite(seconds)) return Invalid(text, "must be a finite number");
  if (seconds < 0) return Invalid(text, "must not be negative");
  return Finish(seconds * 1000.0, text);
}

}  // namespace siphon

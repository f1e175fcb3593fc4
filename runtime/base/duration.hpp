#pragma once
#include <chrono>
#include <string_view>

#include "runtime/base/status.hpp"

namespace siphon {

/// The longest interval a script may give (3650 days): anything longer is a typo, and the
/// bound keeps every accepted value far from overflowing the millisecond count.
inline constexpr std::chrono::milliseconds kMaxDuration = std::chrono::hours(24 * 3650);

/// Parses an interval such as "500ms", "30s", "5m", "1h", "1d", "1.5s" or "1h30m".
///
/// Grammar: one or more `NUMBER UNIT` parts, NUMBER being digits with an optional
/// fraction, UNIT one of ms, s, m, h, d; parts go from the largest unit to the smallest and
/// each unit appears at most once ("1m30s", not "30s1m"). No spaces, no sign. The total is
/// rounded to the millisecond and must be at least 1ms and at most kMaxDuration.
/// Errors are ErrorKind::kConfig and quote the text.
Result<std::chrono::milliseconds> ParseDuration(std::string_view text);

/// A number of seconds as a script may give it (`every = 30`, `every = 0.5`), with the same
/// bounds and rounding as ParseDuration.
Result<std::chrono::milliseconds> DurationFromSeconds(double seconds);

}  // namespace siphon

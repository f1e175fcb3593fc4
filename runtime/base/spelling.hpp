#pragma once
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace siphon {

/// Levenshtein distance between `a` and `b`, ASCII case ignored (`Orders` and `orders` are 0
/// apart), so a name typed in other case is the closest one.
size_t EditDistance(std::string_view a, std::string_view b);

/// The candidate closest to `name` by edit distance, or "" when none is close enough to be a
/// plausible typo (more than a third of the name, and more than 2 edits, away, or every letter
/// of it changed).
std::string ClosestName(std::string_view name, const std::vector<std::string>& candidates);

/// Every candidate at the smallest plausible distance from `name`, in the order given, at most
/// `limit` of them: what "did you mean …?" names for a table or column a source does not have.
std::vector<std::string> ClosestNames(std::string_view name,
                                      const std::vector<std::string>& candidates, size_t limit);

/// "; did you mean from = \"a\", \"b\" or \"c\"?" naming `names` as a script writes them in
/// `from` (a name holding a double quote in single quotes), or "" when there are none.
std::string DidYouMeanFrom(const std::vector<std::string>& names);

}  // namespace siphon

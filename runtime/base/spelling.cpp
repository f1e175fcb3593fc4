#include "runtime/base/spelling.hpp"

#include <algorithm>

#include "runtime/base/ascii.hpp"

namespace siphon {
namespace {

// A typo changes a few characters; beyond that a suggestion misleads more than it helps.
size_t Allowed(std::string_view name) {
  return std::max<size_t>(2, name.size() / 3);
}

}  // namespace

size_t EditDistance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t up = row[j];
      size_t cost = AsciiLower(a[i - 1]) == AsciiLower(b[j - 1]) ? 0 : 1;
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + cost});
      diag = up;
    }
  }
  return row[b.size()];
}

std::string ClosestName(std::string_view name, const std::vector<std::string>& candidates) {
  std::vector<std::string> closest = ClosestNames(name, candidates, 1);
  return closest.empty() ? "" : closest.front();
}

std::vector<std::string> ClosestNames(std::string_view name,
                                      const std::vector<std::string>& candidates, size_t limit) {
  size_t best = Allowed(name);
  std::vector<std::string> out;
  for (const auto& c : candidates) {
    // Lengths alone rule most names out before the quadratic distance.
    const size_t gap = c.size() > name.size() ? c.size() - name.size() : name.size() - c.size();
    if (gap > best) continue;
    const size_t d = EditDistance(name, c);
    // Every letter changed is another name, however short.
    if (d > best || d >= name.size()) continue;
    if (d < best) {
      best = d;
      out.clear();
    }
    if (out.size() < limit) out.push_back(c);
  }
  return out;
}

std::string DidYouMeanFrom(const std::vector<std::string>& names) {
  if (names.empty()) return "";
  std::string message = "; did you mean from = ";
  for (size_t i = 0; i < names.size(); ++i) {
    if (i > 0) message += i + 1 == names.size() ? " or " : ", ";
    // A Lua string: one holding a double quote is given in single quotes.
    const char quote = names[i].find('"') == std::string::npos ? '"' : '\'';
    message += quote + names[i] + quote;
  }
  return message + '?';
}

}  // namespace siphon

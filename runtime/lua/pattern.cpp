#include "runtime/lua/pattern.hpp"

#include <cctype>
#include <cstdint>
#include <cstdio>
#include <cstring>

namespace siphon {
namespace {

constexpr char kEsc = '%';
constexpr int kMaxDepth = 200;  // Lua's MAXCCALLS for patterns

unsigned char U(char c) {
  return static_cast<unsigned char>(c);
}

// The <cctype> classes of every byte, looked up once: in C++ each std::isalpha is a call into
// libc, which made matching a fifth slower than Lua's (C, where they are macros over a
// table). siphon never calls setlocale, so these are the "C" locale's, as Lua's are then.
enum ClassBit : uint16_t {
  kAlpha = 1 << 0,
  kCntrl = 1 << 1,
  kDigit = 1 << 2,
  kGraph = 1 << 3,
  kLower = 1 << 4,
  kPunct = 1 << 5,
  kSpace = 1 << 6,
  kUpper = 1 << 7,
  kAlnum = 1 << 8,
  kXdigit = 1 << 9,
};

struct ClassTable {
  uint16_t bits[256];
  ClassTable() {
    for (int c = 0; c < 256; ++c) {
      bits[c] =
          static_cast<uint16_t>((std::isalpha(c) ? kAlpha : 0) | (std::iscntrl(c) ? kCntrl : 0) |
                                (std::isdigit(c) ? kDigit : 0) | (std::isgraph(c) ? kGraph : 0) |
                                (std::islower(c) ? kLower : 0) | (std::ispunct(c) ? kPunct : 0) |
                                (std::isspace(c) ? kSpace : 0) | (std::isupper(c) ? kUpper : 0) |
                                (std::isalnum(c) ? kAlnum : 0) | (std::isxdigit(c) ? kXdigit : 0));
    }
  }
};
const ClassTable kClasses;

// `%a`, `%d`, … (upper case: the complement); any other character stands for itself.
bool MatchClass(int c, int cl) {
  uint16_t bit;
  switch (cl | 0x20) {  // lower case for letters; other characters only match themselves
    case 'a':
      bit = kAlpha;
      break;
    case 'c':
      bit = kCntrl;
      break;
    case 'd':
      bit = kDigit;
      break;
    case 'g':
      bit = kGraph;
      break;
    case 'l':
      bit = kLower;
      break;
    case 'p':
      bit = kPunct;
      break;
    case 's':
      bit = kSpace;
      break;
    case 'u':
      bit = kUpper;
      break;
    case 'w':
      bit = kAlnum;
      break;
    case 'x':
      bit = kXdigit;
      break;
    case 'z':
      return (c == 0) != (cl == 'Z');  // deprecated in the manual, still Lua's
    default:
      return cl == c;
  }
  bool res = (kClasses.bits[c] & bit) != 0;
  return (cl & 0x20) == 0 ? !res : res;  // 'A'..'Z': the complement
}

}  // namespace

void PatternMatcher::Fail(const char* message, int index) {
  Error e;
  std::snprintf(e.message, sizeof e.message, message, index);
  throw e;
}

const char* PatternMatcher::MatchAt(const char* s, uint64_t step_limit) {
  level_ = 0;
  depth_ = kMaxDepth;
  limit_ = step_limit;
  return Match(s, p_init_);
}

// The end of the single-character class starting at p (a character, `%x` or a `[set]`).
const char* PatternMatcher::ClassEnd(const char* p) {
  char c = *p++;
  if (c == kEsc) {
    if (p == p_end_) Fail("malformed pattern (ends with '%%')");
    return p + 1;
  }
  if (c == '[') {
    const char* start = p;
    if (p < p_end_ && *p == '^') ++p;
    do {  // the first character after '[' (or "[^") is in the set even when it is ']'
      if (p == p_end_) Fail("malformed pattern (missing ']')");
      if (*p++ == kEsc && p < p_end_) ++p;
    } while (p == p_end_ || *p != ']');
    Charge(static_cast<uint64_t>(p - start) >> 3);
    return p + 1;
  }
  return p;
}

// c against the set from p ('[') to ec (its ']').
bool PatternMatcher::MatchBracketClass(int c, const char* p, const char* ec) {
  bool found = true;
  if (p[1] == '^') {
    found = false;
    ++p;
  }
  while (++p < ec) {
    if (*p == kEsc) {
      ++p;
      if (MatchClass(c, U(*p))) return found;
    } else if (p[1] == '-' && p + 2 < ec) {
      p += 2;
      if (U(p[-2]) <= c && c <= U(*p)) return found;
    } else if (U(*p) == c) {
      return found;
    }
  }
  return !found;
}

bool PatternMatcher::SingleMatch(const char* s, const char* p, const char* ep) {
  if (s >= src_end_) return false;
  int c = U(*s);
  switch (*p) {
    case '.':
      return true;
    case kEsc:
      return MatchClass(c, U(p[1]));
    case '[':
      Charge(static_cast<uint64_t>(ep - p) >> 3);
      return MatchBracketClass(c, p, ep - 1);
    default:
      return U(*p) == c;
  }
}

// `%bxy`: from an x to its balancing y.
const char* PatternMatcher::MatchBalance(const char* s, const char* p) {
  if (p >= p_end_ - 1) Fail("malformed pattern (missing arguments to '%%b')");
  if (s >= src_end_ || *s != *p) return nullptr;
  char open = *p, close = p[1];
  int depth = 1;
  while (++s < src_end_) {
    Charge(1);
    if (*s == close) {
      if (--depth == 0) return s + 1;
    } else if (*s == open) {
      ++depth;
    }
  }
  return nullptr;
}

// Longest run of the class first, then shorter ones.
const char* PatternMatcher::MaxExpand(const char* s, const char* p, const char* ep) {
  ptrdiff_t i = 0;
  while (SingleMatch(s + i, p, ep)) {
    Charge(1);
    ++i;
  }
  for (; i >= 0; --i) {
    if (const char* res = Match(s + i, ep + 1)) return res;
  }
  return nullptr;
}

// Shortest run of the class first, then longer ones.
const char* PatternMatcher::MinExpand(const char* s, const char* p, const char* ep) {
  for (;;) {
    if (const char* res = Match(s, ep + 1)) return res;
    if (!SingleMatch(s, p, ep)) return nullptr;
    ++s;
  }
}

const char* PatternMatcher::StartCapture(const char* s, const char* p, ptrdiff_t what) {
  if (level_ >= kMaxCaptures) Fail("too many captures");
  capture_[level_] = {s, what};
  ++level_;
  const char* res = Match(s, p);
  if (res == nullptr) --level_;  // undo the capture
  return res;
}

const char* PatternMatcher::EndCapture(const char* s, const char* p) {
  int l = level_ - 1;
  while (l >= 0 && capture_[l].len != kUnfinished) --l;
  if (l < 0) Fail("invalid pattern capture");
  capture_[l].len = s - capture_[l].init;
  const char* res = Match(s, p);
  if (res == nullptr) capture_[l].len = kUnfinished;  // undo the close
  return res;
}

// `%1` … `%9`: the text of an earlier capture again.
const char* PatternMatcher::MatchCapture(const char* s, int l) {
  l -= '1';
  if (l < 0 || l >= level_ || capture_[l].len == kUnfinished) {
    Fail("invalid capture index %%%d", l + 1);
  }
  ptrdiff_t len = capture_[l].len;  // a position capture (kPosition) never matches
  if (len >= 0 && src_end_ - s >= len && std::memcmp(capture_[l].init, s, len) == 0) {
    Charge(static_cast<uint64_t>(len) >> 4);
    return s + len;
  }
  return nullptr;
}

const char* PatternMatcher::Match(const char* s, const char* p) {
  if (depth_-- == 0) Fail("pattern too complex");
  for (;;) {  // each pass matches one item of the pattern at s
    Charge(1);
    if (p == p_end_) break;
    switch (*p) {
      case '(':
        s = p + 1 < p_end_ && p[1] == ')' ? StartCapture(s, p + 2, kPosition)
                                          : StartCapture(s, p + 1, kUnfinished);
        goto done;
      case ')':
        s = EndCapture(s, p + 1);
        goto done;
      case '$':
        if (p + 1 != p_end_) break;  // an ordinary character unless it ends the pattern
        if (s != src_end_) s = nullptr;
        goto done;
      case kEsc: {
        char next = p + 1 < p_end_ ? p[1] : '\0';
        if (next == 'b') {
          s = MatchBalance(s, p + 2);
          if (s == nullptr) goto done;
          p += 4;
          continue;
        }
        if (next == 'f') {  // frontier: between a character not in the set and one in it
          p += 2;
          if (p == p_end_ || *p != '[') Fail("missing '[' after '%%f' in pattern");
          const char* ep = ClassEnd(p);
          int previous = s == src_init_ ? 0 : U(s[-1]);
          int current = s < src_end_ ? U(*s) : 0;
          if (!MatchBracketClass(previous, p, ep - 1) && MatchBracketClass(current, p, ep - 1)) {
            p = ep;
            continue;
          }
          s = nullptr;
          goto done;
        }
        if (next >= '0' && next <= '9') {
          s = MatchCapture(s, U(next));
          if (s == nullptr) goto done;
          p += 2;
          continue;
        }
        break;  // a class such as %a
      }
      default:
        break;
    }
    // A single-character class, with its quantifier if any.
    const char* ep = ClassEnd(p);
    char quantifier = ep < p_end_ ? *ep : '\0';
    if (!SingleMatch(s, p, ep)) {
      if (quantifier == '*' || quantifier == '?' || quantifier == '-') {
        p = ep + 1;  // zero occurrences are a match
        continue;
      }
      s = nullptr;
      goto done;
    }
    switch (quantifier) {
      case '?':
        if (const char* res = Match(s + 1, ep + 1)) {
          s = res;
          goto done;
        }
        p = ep + 1;
        continue;
      case '+':
        s = MaxExpand(s + 1, p, ep);
        goto done;
      case '*':
        s = MaxExpand(s, p, ep);
        goto done;
      case '-':
        s = MinExpand(s, p, ep);
        goto done;
      default:
        ++s;
        p = ep;
        continue;
    }
  }
done:
  ++depth_;
  return s;
}

}  // namespace siphon

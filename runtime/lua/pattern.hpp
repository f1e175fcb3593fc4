#pragma once
// Lua 5.4 patterns with every step counted. Lua's own matcher backtracks without a bound the
// instruction budget can see (the usual trim, s:match("^%s*(.-)%s*$"), is quadratic in a run
// of inner spaces: 9 s for 50,000 of them), so siphon's string.find, match, gmatch and gsub
// (runtime/lua/metered.cpp) match with this class instead and charge its steps to the budget.
// Same pattern language, results and error messages as Lua's string library; no Lua here.
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace siphon {

class PatternMatcher {
 public:
  static constexpr int kMaxCaptures = 32;  // Lua's LUA_MAXCAPTURES
  static constexpr ptrdiff_t kUnfinished = -1;
  static constexpr ptrdiff_t kPosition = -2;  // a "()" capture: its position, not a string

  struct Capture {
    const char* init;
    ptrdiff_t len;  // or kUnfinished, kPosition
  };

  /// A malformed pattern, worded as Lua words it ("malformed pattern (missing ']')").
  /// Trivially destructible, so the caller can raise it with lua_error after catching it.
  struct Error {
    char message[64];
  };
  /// The step limit passed: the caller raises the instruction-budget error.
  struct OutOfSteps {};

  /// `pattern` without the leading '^' of an anchored find or gsub (gmatch keeps it: there
  /// it is an ordinary character). Both views must outlive the matcher.
  PatternMatcher(std::string_view subject, std::string_view pattern)
      : src_init_(subject.data()),
        src_end_(subject.data() + subject.size()),
        p_init_(pattern.data()),
        p_end_(pattern.data() + pattern.size()) {}

  /// Tries the pattern at `s` (in the subject, up to its end) and returns where the match
  /// ends, or nullptr. Throws Error or, once more than `step_limit` steps were taken since
  /// the last TakeSteps, OutOfSteps.
  const char* MatchAt(const char* s, uint64_t step_limit);

  /// The first match starting at `*from` or after it (up to the subject's end; only at
  /// `*from` when `anchored`): returns its end and moves *from to its start, or returns
  /// nullptr. Throws as MatchAt does.
  const char* Search(const char** from, bool anchored, uint64_t step_limit) {
    for (const char* s = *from;; ++s) {
      if (const char* end = MatchAt(s, step_limit)) {
        *from = s;
        return end;
      }
      if (anchored || s == src_end_) return nullptr;
    }
  }

  /// The steps taken since the last call, which starts the count again.
  uint64_t TakeSteps() {
    uint64_t n = steps_;
    steps_ = 0;
    return n;
  }

  const char* subject() const { return src_init_; }
  const char* subject_end() const { return src_end_; }
  /// Captures of the last successful MatchAt.
  int level() const { return level_; }
  const Capture& capture(int i) const { return capture_[i]; }

 private:
  const char* Match(const char* s, const char* p);
  const char* MaxExpand(const char* s, const char* p, const char* ep);
  const char* MinExpand(const char* s, const char* p, const char* ep);
  const char* StartCapture(const char* s, const char* p, ptrdiff_t what);
  const char* EndCapture(const char* s, const char* p);
  const char* MatchBalance(const char* s, const char* p);
  const char* MatchCapture(const char* s, int l);
  const char* ClassEnd(const char* p);
  bool SingleMatch(const char* s, const char* p, const char* ep);
  bool MatchBracketClass(int c, const char* p, const char* ec);
  void Charge(uint64_t n) {
    steps_ += n;
    if (steps_ > limit_) throw OutOfSteps{};
  }
  [[noreturn]] static void Fail(const char* message, int index = 0);

  const char* src_init_;
  const char* src_end_;
  const char* p_init_;
  const char* p_end_;
  int depth_ = 0;  // recursion left ("pattern too complex" at 0), as Lua's MAXCCALLS
  int level_ = 0;
  uint64_t steps_ = 0;
  uint64_t limit_ = 0;
  Capture capture_[kMaxCaptures];
};

}  // namespace siphon

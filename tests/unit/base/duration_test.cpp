#include "runtime/base/duration.hpp"

#include <limits>

#include <gtest/gtest.h>

namespace siphon {
namespace {

using std::chrono::milliseconds;

TEST(ParseDuration, AcceptsEachUnitFractionsAndCombinations) {
  struct Case {
    const char* text;
    int64_t ms;
  };
  const Case cases[] = {
      {"500ms", 500},     {"30s", 30000},
      {"5m", 300000},     {"1h", 3600000},
      {"1d", 86400000},   {"1.5s", 1500},
      {"0.5s", 500},      {"1m30s", 90000},
      {"1h30m", 5400000}, {"1d2h3m4s5ms", 93784005},
      {"2.5m", 150000},   {".5s", 500},
      {"1ms", 1},         {"1.0004s", 1000},
      {"1.0006s", 1001},  {"3650d", 315360000000},
  };
  for (const Case& c : cases) {
    auto r = ParseDuration(c.text);
    ASSERT_TRUE(r.ok()) << c.text << ": " << r.status().message();
    EXPECT_EQ(r->count(), c.ms) << c.text;
  }
}

TEST(ParseDuration, RejectsWithClearMessages) {
  struct Case {
    const char* text;
    const char* message;
  };
  const Case cases[] = {
      {"", "invalid duration '': empty"},
      {"soon", "invalid duration 'soon': expected a number followed by a unit"},
      {"30", "invalid duration '30': missing unit (ms, s, m, h or d), e.g. '30s'"},
      {"30x", "invalid duration '30x': unknown unit 'x' (use ms, s, m, h or d)"},
      {"30 s", "invalid duration '30 s': unknown unit ' s'"},
      {"30sec", "unknown unit 'sec'"},
      {"-5s", "invalid duration '-5s': must not be negative"},
      {"0s", "invalid duration '0s': must be greater than zero"},
      {"0ms", "must be greater than zero"},
      {"0.4ms", "shorter than the smallest interval, 1ms"},
      {"30s1m", "units must go from the largest to the smallest"},
      {"1s1s", "units must go from the largest to the smallest"},
      {"3651d", "invalid duration '3651d': too long (at most 3650d)"},
      {"99999999999999999999999999h", "too long (at most 3650d)"},
      {"1e9s", "unknown unit 'e'"},
      {"s", "expected a number followed by a unit"},
      {"1.s", ""},  // accepted, checked below
  };
  for (const Case& c : cases) {
    auto r = ParseDuration(c.text);
    if (std::string(c.text) == "1.s") {
      ASSERT_TRUE(r.ok());
      EXPECT_EQ(r->count(), 1000);
      continue;
    }
    ASSERT_FALSE(r.ok()) << c.text;
    EXPECT_EQ(r.status().kind(), ErrorKind::kConfig);
    EXPECT_NE(r.status().message().find(c.message), std::string::npos)
        << c.text << " -> " << r.status().message();
  }
}

TEST(DurationFromSeconds, ConvertsAndBounds) {
  EXPECT_EQ(DurationFromSeconds(30).value(), milliseconds(30000));
  EXPECT_EQ(DurationFromSeconds(0.5).value(), milliseconds(500));
  EXPECT_EQ(DurationFromSeconds(0.001).value(), milliseconds(1));

  auto zero = DurationFromSeconds(0);
  ASSERT_FALSE(zero.ok());
  EXPECT_EQ(zero.status().message(), "invalid duration '0 seconds': must be greater than zero");
  auto negative = DurationFromSeconds(-1);
  ASSERT_FALSE(negative.ok());
  EXPECT_EQ(negative.status().message(), "invalid duration '-1 seconds': must not be negative");
  auto tiny = DurationFromSeconds(0.0001);
  ASSERT_FALSE(tiny.ok());
  EXPECT_NE(tiny.status().message().find("1ms"), std::string::npos);
  EXPECT_FALSE(DurationFromSeconds(std::numeric_limits<double>::infinity()).ok());
  EXPECT_FALSE(DurationFromSeconds(std::numeric_limits<double>::quiet_NaN()).ok());
  auto huge = DurationFromSeconds(1e300);
  ASSERT_FALSE(huge.ok());
  EXPECT_NE(huge.status().message().find("too long"), std::string::npos);
}

}  // namespace
}  // namespace siphon

#include "runtime/base/spelling.hpp"

#include <gtest/gtest.h>

namespace siphon {
namespace {

TEST(Spelling, EditDistanceIgnoresAsciiCase) {
  EXPECT_EQ(EditDistance("custmers", "customers"), 1u);
  EXPECT_EQ(EditDistance("Orders", "orders"), 0u);
  EXPECT_EQ(EditDistance("", "abc"), 3u);
}

TEST(Spelling, ClosestNamesKeepTheNearestInTheirOrderUpToTheLimit) {
  const std::vector<std::string> tables = {"orders", "order_events", "customers", "cust", "Order"};
  EXPECT_EQ(ClosestNames("custmers", tables, 3), (std::vector<std::string>{"customers"}));
  EXPECT_EQ(ClosestNames("ordes", tables, 3), (std::vector<std::string>{"orders", "Order"}));
  EXPECT_EQ(ClosestNames("ordes", tables, 1), (std::vector<std::string>{"orders"}));
  // Too far to be a typo: nothing rather than a guess.
  EXPECT_TRUE(ClosestNames("invoices", tables, 3).empty());
  EXPECT_TRUE(ClosestNames("ab", {"xy"}, 3).empty());
  EXPECT_EQ(ClosestName("evry", {"every", "batch"}), "every");
}

TEST(Spelling, DidYouMeanFromQuotesAsALuaString) {
  EXPECT_EQ(DidYouMeanFrom({}), "");
  EXPECT_EQ(DidYouMeanFrom({"customers"}), "; did you mean from = \"customers\"?");
  EXPECT_EQ(DidYouMeanFrom({"a", "\"x\".b", "c"}),
            "; did you mean from = \"a\", '\"x\".b' or \"c\"?");
}

}  // namespace
}  // namespace siphon

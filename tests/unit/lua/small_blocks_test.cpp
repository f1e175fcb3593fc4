#include "runtime/lua/small_blocks.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <set>
#include <vector>

#include "tests/unit/lua/lua_test_util.hpp"

namespace siphon::testing {
namespace {

TEST(SmallBlocks, ABlockGivenBackServesItsClassAgainAndOnlyIt) {
  SmallBlocks blocks;
  void* a = blocks.Take(20);  // the 17-32 byte class
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(a) % 16, 0u);
  std::memset(a, 0xAB, 32);
  blocks.Give(a, 20);
  void* other = blocks.Take(16);  // another class: a new block
  EXPECT_NE(other, a);
  EXPECT_EQ(blocks.Take(32), a);  // the same class: the block given back
  EXPECT_TRUE(SmallBlocks::SameClass(17, 32));
  EXPECT_FALSE(SmallBlocks::SameClass(16, 17));
  EXPECT_FALSE(SmallBlocks::SameClass(112, 113));
}

TEST(SmallBlocks, BlocksOfEveryClassNeverOverlapAcrossChunks) {
  SmallBlocks blocks;
  // About 10 chunks of 64 KiB, every size from 1 to the largest.
  std::vector<std::pair<unsigned char*, size_t>> taken;
  for (int round = 0; round < 80; ++round) {
    for (size_t size = 1; size <= SmallBlocks::kLargest; ++size) {
      auto* b = static_cast<unsigned char*>(blocks.Take(size));
      ASSERT_NE(b, nullptr);
      std::memset(b, static_cast<int>(taken.size() & 0xFF), size);
      taken.emplace_back(b, size);
    }
  }
  std::set<unsigned char*> starts;
  for (size_t i = 0; i < taken.size(); ++i) {
    const auto& [b, size] = taken[i];
    EXPECT_TRUE(starts.insert(b).second);
    for (size_t k = 0; k < size; ++k) ASSERT_EQ(b[k], static_cast<unsigned char>(i & 0xFF));
  }
}

// Lua's strings and tables live in the small blocks: what a churning script made and dropped
// is collected back to the accounted memory it started from, and the cap still holds.
TEST_F(LuaTest, SmallBlocksAreAccountedAndReused) {
  LuaOptions options;
  options.memory_limit = size_t{8} << 20;
  auto host = NewHost(options);
  ASSERT_TRUE(Exec(*host, "collectgarbage()", "start").ok());
  const size_t before = host->memory_used();
  for (int i = 0; i < 3; ++i) {
    Status s = Exec(*host,
                    "local t = {}\n"
                    "for i = 1, 200000 do t[i % 1000 + 1] = { 'v' .. i, i } end\n"
                    "t = nil collectgarbage()",
                    "churn");
    ASSERT_TRUE(s.ok()) << s.message();
    EXPECT_LT(host->memory_used(), before + (size_t{64} << 10)) << "round " << i;
  }
  Status s = Exec(*host, "t = {} for i = 1, 1e7 do t[i] = 'x' .. i end", "grow");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("memory limit exceeded in grow (limit 8 MiB)"), std::string::npos)
      << s.message();
}

}  // namespace
}  // namespace siphon::testing

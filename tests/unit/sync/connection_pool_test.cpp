#include "runtime/sync/connection_pool.hpp"

#include <sqlite3.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace siphon {
namespace {

// The pool lends real connections of a real SQLite source (a file with one table).
class ConnectionPoolTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("siphon-pool-" + std::to_string(getpid()));
    std::filesystem::create_directories(dir_);
    path_ = (dir_ / "source.db").string();
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
    ASSERT_EQ(
        sqlite3_exec(db, "CREATE TABLE t (id INTEGER PRIMARY KEY)", nullptr, nullptr, nullptr),
        SQLITE_OK);
    sqlite3_close(db);
    uv_loop_init(&loop_);
    const SourceDefinition* def = FindSourceDefinition("sqlite");
    ASSERT_NE(def, nullptr);
    auto made = def->make({{"path", path_}});
    ASSERT_TRUE(made.ok()) << made.status().ToString();
    source_ = std::shared_ptr<Source>(std::move(made).value());
  }
  void TearDown() override {
    pool_.reset();
    while (uv_run(&loop_, UV_RUN_NOWAIT) != 0) {
    }
    uv_loop_close(&loop_);
    std::filesystem::remove_all(dir_);
  }
  void Turn() { uv_run(&loop_, UV_RUN_NOWAIT); }

  // Borrows for `name`, keeping the connection it gets in `held_`.
  uint64_t Borrow(const std::string& name) {
    return pool_->Borrow([this, name](std::unique_ptr<SourceConnection> conn) {
      order_.push_back(name);
      held_.push_back(std::move(conn));
    });
  }

  std::filesystem::path dir_;
  std::string path_;
  uv_loop_t loop_;
  std::shared_ptr<Source> source_;
  std::unique_ptr<ConnectionPool> pool_;
  std::vector<std::string> order_;
  std::vector<std::unique_ptr<SourceConnection>> held_;
};

TEST_F(ConnectionPoolTest, LendsAtMostItsLimitAndAnswersWaitersInTurn) {
  pool_ = std::make_unique<ConnectionPool>(&loop_, source_, 2);
  EXPECT_EQ(Borrow("a"), 0u);  // answered at once
  EXPECT_EQ(Borrow("b"), 0u);
  const uint64_t c = Borrow("c");
  const uint64_t d = Borrow("d");
  EXPECT_NE(c, 0u);
  EXPECT_NE(d, 0u);
  EXPECT_EQ(order_, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(pool_->lent(), 2u);
  EXPECT_EQ(pool_->waiting(), 2u);

  // Given back: the first waiter gets it, on the next loop turn, and the same connection.
  SourceConnection* first = held_[0].get();
  pool_->GiveBack(std::move(held_[0]));
  EXPECT_EQ(order_.size(), 2u);
  Turn();
  EXPECT_EQ(order_, (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(held_.back().get(), first);
  EXPECT_EQ(pool_->lent(), 2u);
  EXPECT_EQ(pool_->waiting(), 1u);

  // A newcomer does not jump the queue while someone waits.
  const uint64_t e = Borrow("e");
  EXPECT_NE(e, 0u);
  pool_->GiveBack(std::move(held_[1]));
  Turn();
  EXPECT_EQ(order_, (std::vector<std::string>{"a", "b", "c", "d"}));
  EXPECT_EQ(pool_->waiting(), 1u);
}

TEST_F(ConnectionPoolTest, AWithdrawnRequestIsNeverAnswered) {
  pool_ = std::make_unique<ConnectionPool>(&loop_, source_, 1);
  Borrow("a");
  const uint64_t b = Borrow("b");
  Borrow("c");
  pool_->Withdraw(b);
  pool_->Withdraw(0);  // answered at once: nothing to withdraw
  EXPECT_EQ(pool_->waiting(), 1u);
  pool_->GiveBack(std::move(held_[0]));
  Turn();
  EXPECT_EQ(order_, (std::vector<std::string>{"a", "c"}));
}

TEST_F(ConnectionPoolTest, ADestroyedConnectionMakesRoomForANewOne) {
  pool_ = std::make_unique<ConnectionPool>(&loop_, source_, 1);
  Borrow("a");
  Borrow("b");
  held_[0].reset();
  pool_->GiveBack(nullptr);
  Turn();
  ASSERT_EQ(order_, (std::vector<std::string>{"a", "b"}));
  ASSERT_NE(held_[1], nullptr);
  EXPECT_EQ(pool_->lent(), 1u);
}

TEST_F(ConnectionPoolTest, ALentConnectionWorksAndStaysOpenWhenGivenBack) {
  pool_ = std::make_unique<ConnectionPool>(&loop_, source_, 1);
  Borrow("a");
  ASSERT_EQ(held_.size(), 1u);
  bool connected = false;
  held_[0]->Connect([&](Status st) {
    EXPECT_TRUE(st.ok()) << st.ToString();
    connected = true;
  });
  for (int i = 0; i < 1000 && !connected; ++i) uv_run(&loop_, UV_RUN_ONCE);
  ASSERT_TRUE(connected);
  std::optional<Result<TableSchema>> schema;
  held_[0]->Reflect("t", [&](Result<TableSchema> s) { schema = std::move(s); });
  for (int i = 0; i < 1000 && !schema; ++i) uv_run(&loop_, UV_RUN_ONCE);
  ASSERT_TRUE(schema && schema->ok());
  EXPECT_EQ((*schema)->primary_key, std::vector<std::string>{"id"});
  pool_->GiveBack(std::move(held_[0]));
  EXPECT_EQ(pool_->idle(), 1u);
  pool_->CloseIdle();
  EXPECT_EQ(pool_->idle(), 1u);  // closed, kept: the next Connect opens it again
  Borrow("b");
  EXPECT_EQ(pool_->idle(), 0u);
}

}  // namespace
}  // namespace siphon

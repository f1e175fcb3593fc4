// The MySQL/MariaDB adapter tests' fixture: connections to a test database of the real
// MariaDB started by the `servers` fixture, driven on a libuv loop as the pipeline drives them.
#pragma once
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include <gtest/gtest.h>

#include "adapters/mysql/mysql_config.hpp"
#include "adapters/mysql/mysql_connection.hpp"
#include "tests/integration/harness/harness.hpp"
#include "tests/source_await.hpp"

namespace siphon::mysql {

class MysqlAdapterTest : public ::testing::Test, protected testing_support::SourceAwait {
 protected:
  MysqlAdapterTest() : SourceAwait(&loop_) {}
  void SetUp() override { uv_loop_init(&loop_); }
  void TearDown() override {
    uv_run(&loop_, UV_RUN_DEFAULT);
    EXPECT_EQ(uv_loop_close(&loop_), 0);
  }

  std::unique_ptr<MysqlConnection> NewConnection(const test::MyDb& db,
                                                 std::optional<std::string> password = {},
                                                 std::optional<std::string> user = {}) {
    const auto& env = test::Servers();
    auto config = std::make_shared<MysqlConfig>();
    config->host = env.mysql_host;
    config->port = env.mysql_port;
    config->user = user ? *user : env.mysql_user;
    config->password = password ? *password : env.mysql_password;
    config->database = db.name();
    return std::make_unique<MysqlConnection>(&loop_, config);
  }

  test::Rows QueryText(MysqlConnection& c, const std::string& sql) {
    auto rows = Await<Result<test::Rows>>([&](auto done) { c.QueryText(sql, done); });
    EXPECT_TRUE(rows.ok()) << rows.status().ToString();
    return rows.ok() ? *rows : test::Rows{};
  }

  uv_loop_t loop_;
};

/// `e (id, updated_at, v)`, 20,000 rows ten to a second, indexed on (updated_at, id) and
/// analyzed: the table the index-range-scan tests page through.
inline void CreateIndexedEvents(test::MyDb& db) {
  db.Exec(
      "CREATE TABLE e (id BIGINT PRIMARY KEY, updated_at DATETIME(6) NOT NULL,"
      " v VARCHAR(20), KEY e_upd (updated_at, id))");
  db.Exec(
      "INSERT INTO e SELECT seq, '2024-01-01' + INTERVAL (seq DIV 10) SECOND, 'v'"
      " FROM seq_1_to_20000");
  db.Exec("ANALYZE TABLE e");
}

}  // namespace siphon::mysql

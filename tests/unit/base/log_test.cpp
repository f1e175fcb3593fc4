#include "runtime/base/log.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace siphon {
namespace {

/// Runs `fn` with the process's stderr sent to a file, and returns what it wrote.
std::string CaptureStderr(const std::function<void()>& fn) {
  char path[] = "/tmp/siphon_log_test_XXXXXX";
  int fd = mkstemp(path);
  EXPECT_GE(fd, 0);
  fflush(stderr);
  int saved = dup(2);
  dup2(fd, 2);
  fn();
  fflush(stderr);
  dup2(saved, 2);
  close(saved);
  close(fd);
  std::ifstream in(path);
  std::stringstream out;
  out << in.rdbuf();
  unlink(path);
  return out.str();
}

std::vector<nlohmann::json> Lines(const std::string& text) {
  std::vector<nlohmann::json> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << "not one JSON object: " << line;
    out.push_back(std::move(j));
  }
  return out;
}

TEST(Log, JsonLinesCarryTableEventAndCountsAsMembers) {
  ASSERT_TRUE(ConfigureLogging("info", LogFormat::kJson));
  std::string text = CaptureStderr([] {
    {
      ScopedLogFields fields(LogFields::Of("synced").Rows(120).Deleted(3).DurationMs(35));
      Logger("table:orders")->info("synced {} rows \"quoted\"\n in {} ms", 120, 35);
    }
    Logger("table:orders")->warn("no fields here");
    ScopedLogFields outer(LogFields::Of("progress").Table("items").Rows(7));
    {
      ScopedLogFields inner(LogFields::Of("error").Attempt(2).Kind("connect"));
      Logger("sync")->error("inner");
    }
    Logger("progress")->info("outer again");
  });
  auto lines = Lines(text);
  ASSERT_EQ(lines.size(), 4u) << text;
  EXPECT_EQ(lines[0]["table"], "orders");
  EXPECT_EQ(lines[0]["event"], "synced");
  EXPECT_EQ(lines[0]["rows"], 120);
  EXPECT_EQ(lines[0]["deleted"], 3);
  EXPECT_EQ(lines[0]["duration_ms"], 35);
  EXPECT_EQ(lines[0]["level"], "info");
  EXPECT_EQ(lines[0]["logger"], "table:orders");
  EXPECT_EQ(lines[0]["message"], "synced 120 rows \"quoted\"\n in 35 ms");
  EXPECT_EQ(lines[1]["table"], "orders");
  EXPECT_FALSE(lines[1].contains("event"));
  EXPECT_FALSE(lines[1].contains("rows"));
  EXPECT_FALSE(lines[2].contains("table"));
  EXPECT_EQ(lines[2]["event"], "error");
  EXPECT_EQ(lines[2]["attempt"], 2);
  EXPECT_EQ(lines[2]["error_kind"], "connect");
  EXPECT_EQ(lines[3]["table"], "items");
  EXPECT_EQ(lines[3]["event"], "progress");
  EXPECT_EQ(lines[3]["rows"], 7);
  ASSERT_TRUE(ConfigureLogging("info", LogFormat::kText));
}

TEST(Log, TextLinesIgnoreTheFields) {
  ASSERT_TRUE(ConfigureLogging("info", LogFormat::kText));
  std::string text = CaptureStderr([] {
    ScopedLogFields fields(LogFields::Of("synced").Rows(1));
    Logger("table:t")->info("hello");
  });
  EXPECT_NE(text.find("[table:t] hello"), std::string::npos) << text;
  EXPECT_EQ(text.find("synced"), std::string::npos) << text;
}

}  // namespace
}  // namespace siphon

// Drives a SourceConnection's asynchronous calls to completion on a test's libuv loop, as the
// pipeline would: shared by the tests of every source adapter.
#pragma once
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>
#include <uv.h>

#include "adapters/source.hpp"

namespace siphon::testing_support {

/// A fixture base: `loop` must outlive it (usually the fixture's own member).
class SourceAwait {
 protected:
  explicit SourceAwait(uv_loop_t* loop) : await_loop_(loop) {}

  /// Runs the loop until the callback handed to `start` has run; fails the test (and returns
  /// an error) if the loop runs out of work first.
  template <typename T, typename F>
  T Await(F start) {
    std::optional<T> out;
    start([&out](T v) { out.emplace(std::move(v)); });
    while (!out.has_value()) {
      if (uv_run(await_loop_, UV_RUN_ONCE) == 0 && !out.has_value()) break;
    }
    if (!out.has_value()) {
      ADD_FAILURE() << "callback never ran";
      return T(Status(ErrorKind::kQuery, "callback never ran"));
    }
    return std::move(*out);
  }

  Status Connect(SourceConnection& c) {
    return Await<Status>([&c](auto done) { c.Connect(done); });
  }
  Result<TableSchema> Reflect(SourceConnection& c, const std::string& table) {
    return Await<Result<TableSchema>>([&](auto done) { c.Reflect(table, done); });
  }
  Result<TableSchema> ReflectQuery(SourceConnection& c, const std::string& query) {
    return Await<Result<TableSchema>>([&](auto done) { c.ReflectQuery(query, done); });
  }
  Result<RowBatch> Pull(SourceConnection& c, const TableSchema& t, const PageQuery& q) {
    return Await<Result<RowBatch>>([&](auto done) { c.Pull(t, q, done); });
  }
  /// What PullPages handed over, in order: each page (or the error) with its `last` flag.
  struct PulledPage {
    Result<RowBatch> page;
    bool last = false;
  };
  std::vector<PulledPage> PullPages(SourceConnection& c, const TableSchema& t, const PageQuery& q) {
    std::vector<PulledPage> pages;
    bool done = false;
    c.PullPages(t, q, [&pages, &done](Result<RowBatch> r, bool last) {
      pages.push_back(PulledPage{std::move(r), last});
      done = last;
    });
    while (!done) {
      if (uv_run(await_loop_, UV_RUN_ONCE) == 0 && !done) break;
    }
    if (!done) ADD_FAILURE() << "the last page never came";
    return pages;
  }
  /// The pages of a table of ids 1..28 (its first column, the key) in pages of 4 after `q`'s
  /// first page (q.after = 4): each page whole and in order; the last full when the statement
  /// stopped at its limit (rows may remain), or what the statement found.
  void ExpectSeveralPagesInOrder(SourceConnection& c, const TableSchema& t, PageQuery q) {
    using Pages = std::vector<std::pair<std::vector<int64_t>, bool>>;
    auto pulled = [&] {
      Pages out;
      for (auto& p : PullPages(c, t, q)) {
        EXPECT_TRUE(p.page.ok()) << p.page.status().ToString();
        if (!p.page.ok()) break;
        std::vector<int64_t> ids;
        for (size_t r = 0; r < p.page->rows(); ++r) ids.push_back(p.page->at(r, 0).i);
        out.emplace_back(std::move(ids), p.last);
      }
      return out;
    };
    q.limit = 4;
    q.after = Cursor{int64_t{4}};
    q.pages = 3;
    EXPECT_EQ(pulled(),
              (Pages{{{5, 6, 7, 8}, false}, {{9, 10, 11, 12}, false}, {{13, 14, 15, 16}, true}}));
    q.after = Cursor{int64_t{16}};
    q.pages = 2;
    EXPECT_EQ(pulled(), (Pages{{{17, 18, 19, 20}, false}, {{21, 22, 23, 24}, true}}));
    q.after = Cursor{int64_t{24}};
    q.pages = 4;
    EXPECT_EQ(pulled(), (Pages{{{25, 26, 27, 28}, true}}));  // full, though nothing remains
    q.after = Cursor{int64_t{26}};
    EXPECT_EQ(pulled(), (Pages{{{27, 28}, true}}));
    q.after = Cursor{int64_t{28}};
    EXPECT_EQ(pulled(), (Pages{{{}, true}}));
  }

 private:
  uv_loop_t* await_loop_;
};

}  // namespace siphon::testing_support

#pragma once
#include <functional>
#include <memory>
#include <vector>

#include <uv.h>

#include "runtime/sync/deployment.hpp"
#include "runtime/sync/table_runner.hpp"
#include "runtime/target/target.hpp"

namespace siphon {

/// Runs a deployment: one TableRunner per declared table, all on one loop, sharing the target.
class Replicator {
 public:
  Replicator(uv_loop_t* loop, Target& target, const Deployment& deployment, RunnerOptions options,
             const std::vector<std::string>& only_tables = {});

  /// Starts every table. In once mode, `finished` runs when every table caught up or gave up.
  void Start(std::function<void()> finished = nullptr);
  /// Stops scheduling; `stopped` runs when no page is in flight any more.
  void Stop(std::function<void()> stopped);

  const std::vector<std::unique_ptr<TableRunner>>& runners() const { return runners_; }

  /// once mode: 0 when every table synced, 2 when a table failed on a script mistake (bad
  /// cursor, missing key), 1 when a table failed otherwise.
  int ExitCode() const;

 private:
  uv_loop_t* loop_;
  std::vector<std::unique_ptr<TableRunner>> runners_;
  std::function<void()> finished_;
  size_t remaining_ = 0;
};

}  // namespace siphon

#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <uv.h>

#include "runtime/sync/deployment.hpp"
#include "runtime/sync/table_runner.hpp"
#include "runtime/target/target.hpp"

namespace siphon {

/// What a reload changed, by table name.
struct ReloadDiff {
  std::vector<std::string> added;      ///< new tables: started
  std::vector<std::string> removed;    ///< tables no longer declared: stopped
  std::vector<std::string> changed;    ///< restarted with the new declaration, cursor kept
  std::vector<std::string> unchanged;  ///< left running as they were
};

/// Runs a deployment: one TableRunner per declared table, all on one loop, sharing the target.
class Replicator {
 public:
  Replicator(uv_loop_t* loop, Target& target, const Deployment& deployment, RunnerOptions options,
             const std::vector<std::string>& only_tables = {});

  /// Starts every table. In once mode, `finished` runs when every table caught up or gave up.
  void Start(std::function<void()> finished = nullptr);
  /// Stops scheduling; `stopped` runs when no page is in flight any more.
  void Stop(std::function<void()> stopped);
  /// After Stop: the tables whose stop has not ended yet (work still in flight), by name.
  std::vector<std::string> StopsPending() const;

  const std::vector<std::unique_ptr<TableRunner>>& runners() const { return runners_; }
  /// The connection pools of the sources the tables read (one per source).
  std::vector<std::shared_ptr<ConnectionPool>> pools() const;
  /// The runner of a table, or null.
  TableRunner* Find(const std::string& name) const;

  /// Applies a reloaded deployment (run mode): added tables start, removed tables stop,
  /// tables whose declaration changed (see SameDeclaration) are stopped and started again
  /// with the new one once their page in flight is done, keeping their counters, failure
  /// streak and schedule (see TableRunner::TakeOver, SameReads). The cursor lives in
  /// `_siphon_state`, so a restarted table continues where it was. `retired` runs when every
  /// stopped runner is gone (the caller may then free what their declarations referred to,
  /// such as the old Lua state).
  ReloadDiff Reconcile(const Deployment& next, std::function<void()> retired = nullptr);

  /// True when a running table can keep its runner under `b`. A table with a transform always
  /// counts as changed: its function belongs to the script's previous Lua state.
  static bool SameDeclaration(const TableDecl& a, const TableDecl& b);
  /// True when `a` and `b` read and write the same (source, `from`, `query`, `key`, `cursor`,
  /// `columns`, ...): a replaced runner then keeps the old one's schedule, as when only
  /// `every`, `batch`, `max_lag` or the transform changed; otherwise it runs at once.
  static bool SameReads(const TableDecl& a, const TableDecl& b);
  /// True when `a` and `b` are the same source, by everything they were made from: a rotated
  /// password or a changed timeout (which Describe leaves out) makes a new one.
  static bool SameSource(const SourceDecl* a, const SourceDecl* b);

  /// once mode: 0 when every table synced, 2 when a table failed on a script mistake (bad
  /// cursor, missing key), 1 when a table failed otherwise.
  int ExitCode() const;

 private:
  /// Destroys a stopped runner on a later loop turn (its own callback may be on the stack).
  void Retire(std::unique_ptr<TableRunner> runner, std::function<void()> gone);
  /// The connection pool of a table's source: the one its other tables (and, across a reload,
  /// the same source declared again) already share, else a new one.
  std::shared_ptr<ConnectionPool> PoolFor(const TableDecl& table);
  std::unique_ptr<TableRunner> MakeRunner(const TableDecl& table);

  uv_loop_t* loop_;
  Target& target_;
  RunnerOptions options_;
  std::vector<std::unique_ptr<TableRunner>> runners_;
  std::vector<std::unique_ptr<TableRunner>> stopping_;  // removed or replaced, not stopped yet
  std::vector<const TableRunner*> stops_pending_;       // Stop called, its `stopped` not yet
  std::function<void()> finished_;
  size_t remaining_ = 0;
  /// The pools the runners hold, with the source each was made for; one nobody holds any more
  /// is gone, its connections closed.
  struct Pool {
    std::shared_ptr<SourceDecl> source;
    std::weak_ptr<ConnectionPool> pool;
  };
  std::vector<Pool> pools_;
};

}  // namespace siphon

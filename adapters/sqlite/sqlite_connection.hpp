#pragma once
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <uv.h>

#include "adapters/source.hpp"

struct sqlite3;

namespace siphon::sqlite_source {

/// A read-only SQLite database as a source. SQLite calls block, so every operation runs on a
/// libuv worker thread (uv_queue_work) and its callback comes back on the loop; one
/// operation at a time per connection. Values keep their storage class.
class SqliteConnection final : public SourceConnection {
 public:
  SqliteConnection(uv_loop_t* loop, std::string path);
  ~SqliteConnection() override;

  void Connect(std::function<void(Status)> done) override;
  void Reflect(const std::string& table, std::function<void(Result<TableSchema>)> done) override;
  void FirstNull(const TableSchema& table, const std::vector<std::string>& columns,
                 std::function<void(Result<std::optional<std::string>>)> done) override;
  void ReflectQuery(const std::string& query,
                    std::function<void(Result<TableSchema>)> done) override;
  void Pull(const TableSchema& table, const PageQuery& query,
            std::function<void(Result<RowBatch>)> done) override;
  std::string PageSql(const TableSchema& table, const PageQuery& query) const override;
  void DigestKeys(const TableSchema& table, const std::vector<std::string>& key,
                  const KeyRange& range, const std::vector<Cursor>& splits,
                  std::function<void(Result<std::vector<KeyDigest>>)> done) override;
  void FindKeys(const TableSchema& table, const std::vector<std::string>& key,
                const std::vector<Cursor>& keys,
                std::function<void(Result<std::vector<Cursor>>)> done) override;
  void Close() override;

  /// The database handle, shared with the worker running an operation (which keeps it
  /// open until it has finished, even when the connection is closed or destroyed).
  struct Handle;

 private:
  /// Runs `work` on a worker thread, then `finish` on the loop unless `this` is gone.
  void Submit(std::function<void()> work, std::function<void()> finish);
  /// Reflect's and ReflectQuery's work on the worker, answered like every operation.
  void Describe(std::function<Result<TableSchema>(sqlite3*)> work,
                std::function<void(Result<TableSchema>)> done);
  /// A query run before another in the same job: a row from it fails the job with `error`.
  struct Guard {
    std::string sql;
    Status error;
  };
  /// Runs a query with ?1…?n bound to `params` on the worker and returns its rows, values
  /// in their storage class (after `guard`, when given). Counts as an operation in flight
  /// (the caller checked Refuse).
  void RunRows(std::string sql, std::vector<CursorValue> params, size_t columns,
               std::string context, size_t expected_rows,
               std::function<void(Result<RowBatch>)> done,
               std::optional<Guard> guard = std::nullopt);
  /// Answers `fail` with `status` from the loop (never inside the caller).
  void FailLater(const std::function<void(Status)>& fail, Status status);
  /// Fails at once (from the loop, not inside the caller) when busy or not connected.
  bool Refuse(const std::function<void(Status)>& fail);
  /// True (after failing `fail` with kCancelled) when Close ran since `generation`.
  bool Cancelled(int generation, const std::function<void(Status)>& fail);

  uv_loop_t* loop_;
  std::string path_;
  std::shared_ptr<Handle> handle_;
  int in_flight_ = 0;
  /// Bumped by Close: an operation started before answers kCancelled.
  int generation_ = 0;
  std::shared_ptr<bool> alive_;
};

}  // namespace siphon::sqlite_source

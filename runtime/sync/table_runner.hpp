#pragma once
#include <algorithm>
#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>

#include <spdlog/logger.h>
#include <uv.h>

#include "adapters/source.hpp"
#include "runtime/sync/connection_pool.hpp"
#include "runtime/sync/deployment.hpp"
#include "runtime/sync/events.hpp"
#include "runtime/sync/plan.hpp"
#include "runtime/sync/reconciler.hpp"
#include "runtime/target/target.hpp"

namespace siphon {

/// How a runner schedules its runs.
struct RunnerOptions {
  bool once = false;     ///< run until caught up, then stop (`siphon once`)
  int once_retries = 3;  ///< transient failures retried in once mode before giving up
  std::chrono::milliseconds backoff_base{1000};
  std::chrono::milliseconds backoff_cap{std::chrono::minutes(5)};
  EventSink* events = nullptr;  ///< where events go (not owned; may be null)
  bool resync_first = false;    ///< the first run is a resync (`siphon resync`)
  /// The first run accepts a source schema change on_schema_change would pause for, as a
  /// resume does (`siphon resume`).
  bool accept_schema_first = false;
};

/// What a runner is doing, for `/status`, metrics and progress lines.
/// kWaiting: a run is due but every connection of the source is in use (max_connections).
enum class RunnerState { kIdle, kWaiting, kRunning, kBackoff, kPaused, kStopped, kFinished };
std::string_view RunnerStateName(RunnerState state);

/// Counters of one table since the process started (the durable ones are in _siphon_state).
struct TableStats {
  RunnerState state = RunnerState::kIdle;
  int64_t runs_ok = 0;
  int64_t runs_failed = 0;
  int64_t rows_written = 0;            ///< rows written by this process
  int64_t rows_rejected = 0;           ///< rows sent to _siphon_rejects by this process
  int64_t rows_deleted = 0;            ///< rows removed because the source no longer has them
  int64_t reconciles = 0;              ///< reconciles finished by this process
  int64_t reconcile_keys_checked = 0;  ///< keys the last reconcile looked up on the source
  int64_t run_rows = 0;                ///< rows of the run in progress (or the last run)
  int64_t row_estimate = -1;           ///< the source's estimate, from the last reflection
  int64_t last_duration_ms = 0;
  int attempt = 0;                                       ///< consecutive failed runs
  std::chrono::system_clock::time_point last_success{};  ///< epoch: never
  std::chrono::system_clock::time_point next_run{};      ///< when idle or in backoff
  std::chrono::system_clock::time_point run_started{};   ///< of the run in progress (or last)
  std::string last_error;
  std::string last_error_kind;
  std::string cursor;  ///< JSON, as committed (also the one a run found in _siphon_state)
  /// The target's key as the last plan made it: the declared `key`, else the source's
  /// primary key (empty until a run has reflected the source).
  std::vector<std::string> key;
  /// Where `key` came from, as the last plan made it: "script", "primary key", "unique
  /// index NAME" (a table without a primary key), or empty (none yet, or an append table
  /// without a key).
  std::string key_source;
};

/// Replicates one table: a timer per table, one run at a time, pages back to back while they
/// come back full, the next page pulled while the previous one is written, retries with
/// backoff. Loop thread only. Knows no SQL: the adapter builds the queries.
class TableRunner {
 public:
  /// Runs borrow their connection from `pool`, the source's (shared with its other tables).
  TableRunner(uv_loop_t* loop, Target& target, TableDecl decl, RunnerOptions options,
              std::shared_ptr<ConnectionPool> pool);
  ~TableRunner();
  TableRunner(const TableRunner&) = delete;
  TableRunner& operator=(const TableRunner&) = delete;

  /// When a replaced runner's next run was due (see NextRunUnder).
  struct NextRun {
    std::chrono::system_clock::time_point at;
    bool backoff = false;  ///< the run retries a failure
  };

  /// Schedules the first run: now, or at `next` (a runner that replaced another on a reload).
  void Start(std::optional<NextRun> next = std::nullopt);

  /// A reload replaced `old` (the table's declaration changed): this runner goes on from it,
  /// so the counters stay "since the process started", an outage keeps its attempt count
  /// (one `error` with attempt 1 per outage) and `lagging` its episode, measured from the
  /// last success. Called before Start, and again once `old` stopped (its last page counts).
  void TakeOver(const TableRunner& old);
  /// When this runner's next run is due under the interval `every` (a reload's new one): its
  /// due time, or sooner when `every` is shorter; a retry after a failure keeps its backoff.
  /// None when it should run at once (a run is in progress, or none is scheduled).
  std::optional<NextRun> NextRunUnder(std::chrono::milliseconds every) const;
  /// No new runs or pages; `stopped` runs once nothing is in flight (the page being written
  /// commits or rolls back first).
  void Stop(std::function<void()> stopped);

  /// Stops scheduling runs until Resume (a run in progress finishes first).
  void Pause();
  void Resume();
  /// Starts a run now. False when one is already running (or the table is paused/stopped).
  bool SyncNow();
  /// Forgets the cursor and starts a full re-pull now. An error when a run is in progress;
  /// the target refuses the reset of a table without a key that holds rows (logged).
  Status Resync();

  const TableDecl& decl() const { return decl_; }
  /// True when the table is known to have no key (write = "append" with a cursor only).
  bool keyless() const { return plan_ && plan_->target.key.empty(); }
  bool paused() const { return paused_; }
  const TableStats& stats() const { return stats_; }
  /// once mode: the table is caught up or gave up.
  bool finished() const { return finished_; }
  /// The last run's outcome (ok after a success).
  const Status& last_status() const { return last_status_; }
  /// Called when a once-mode table finishes.
  void OnFinished(std::function<void()> fn) { on_finished_ = std::move(fn); }

 private:
  void ScheduleRun(std::chrono::milliseconds delay);
  void BeginRun();
  void OnBorrowed(std::unique_ptr<SourceConnection> conn);
  /// A run waiting for a connection has not started: it never will (a stop, pause, resync).
  void WithdrawWaitingRun();
  /// The run is over: its connection goes back to the pool (closed after a failure).
  void GiveBackConnection();
  void OnConnected(Status st);
  void OnReflected(Result<TableSchema> schema);
  void OnPrepared(Result<TableState> state);
  void HandleSchemaChange(const SchemaDiff& diff);
  void StartPulling();  ///< a query table's pass from the beginning looks for NULL keys first
  void StartPass();
  Status NullKeyError(const std::string& column) const;
  void Pull(PageQuery query);
  void OnPage(Result<RowBatch> page, bool last);
  void SubmitWrite();
  /// A page committed (or failed): `page_rows` rows pulled, written in `write_ms`.
  void OnWritten(Status st, std::optional<Cursor> cursor, int64_t page_rows, int64_t write_ms);
  void Fail(Status st);
  bool ReconcileDue() const;
  void StartReconcile();
  void MaybeFinishRun();
  void FinishRun();
  /// The cursor in _siphon_state, kept with its JSON for /status and events.
  void SetCommitted(std::optional<Cursor> cursor);
  void NotifyStoppedIfIdle();
  void Emit(EventKind kind, int64_t rows, int64_t duration_ms);
  void CheckLag();
  bool busy() const;

  uv_loop_t* loop_;
  Target& target_;
  TableDecl decl_;
  RunnerOptions options_;
  std::shared_ptr<spdlog::logger> log_;
  std::shared_ptr<ConnectionPool> pool_;
  std::unique_ptr<SourceConnection> conn_;  // borrowed from pool_ for a run
  uint64_t borrowing_ = 0;                  // the pool's ticket while a run waits for conn_
  uv_timer_t* timer_;                       // heap: closed asynchronously
  uv_timer_t* lag_timer_;                   // checks max_lag; heap: closed asynchronously
  bool lagging_ = false;                    // `lagging` fired and no success since
  std::chrono::steady_clock::time_point started_at_ = std::chrono::steady_clock::now();
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  std::mt19937_64 rng_;

  // Between runs.
  std::optional<TableSchema> schema_;  // reset after a failure: reflect again
  std::optional<TablePlan> plan_;
  std::optional<Cursor> committed_;  // the cursor in _siphon_state
  int attempt_ = 0;                  // consecutive failed runs
  bool stopping_ = false;
  bool finished_ = false;
  std::function<void()> stopped_;
  std::function<void()> on_finished_;
  Status last_status_;
  TableStats stats_;
  bool paused_ = false;

  // During a run.
  bool running_ = false;
  bool pull_in_flight_ = false;
  bool write_in_flight_ = false;
  bool more_pages_ = false;  // the last page came back full
  struct PendingPage {
    PageWrite write;
    int64_t source_rows = 0;  // rows pulled (before a transform)
    size_t bytes = 0;         // the page's memory
  };
  // Pulled, waiting for the write before them. The source keeps producing while the writer is
  // busy (it absorbs the two sides' uneven paces), up to kMaxPending pages or kPendingBytes,
  // whichever comes first; one page may always wait, however large.
  static constexpr size_t kMaxPending = 4;
  static constexpr size_t kPendingBytes = 64 << 20;
  // Pages one pull may bring (SourceConnection::PullPages), and the size of the last page
  // written, which bounds them to the room left under kPendingBytes.
  static constexpr size_t kPagesPerPull = 4;
  size_t last_page_bytes_ = 0;  // 0: none pulled yet, and a pull brings one page
  // A page is held whole (pulled, transformed, queued, written), so its rows are counted to
  // keep it near kPageBytes, by the size a row took in the page before it: `batch` rows of
  // 5 MB documents would not fit in memory. The first page a runner pulls, its rows' size
  // unknown, holds at most kFirstPageRows.
  static constexpr size_t kPageBytes = 32 << 20;
  static constexpr size_t kFirstPageRows = 8;
  size_t row_bytes_ = 0;  // a row's share of the last page pulled; 0: none pulled yet
  size_t RowsPerPage(size_t batch) const {
    if (row_bytes_ == 0) return std::min(batch, kFirstPageRows);
    return std::clamp<size_t>(kPageBytes / row_bytes_, 1, batch);
  }
  static size_t PageBytes(const RowBatch& rows) {
    return rows.arena_bytes() + rows.rows() * rows.columns() * sizeof(Cell);
  }
  std::deque<PendingPage> pending_;
  size_t pending_bytes_ = 0;
  bool RoomToPull() const {
    return pending_.empty() || (pending_.size() < kMaxPending && pending_bytes_ < kPendingBytes);
  }
  // Pulls the page after the last one pulled, when there is one, room for it and no pull yet.
  void PullNextIfRoom();
  std::optional<Cursor> next_after_;  // where the next page starts
  // The page being pulled: where it starts and how many rows it may hold.
  std::optional<Cursor> pulled_after_;
  size_t pulled_limit_ = 0;
  // The next page's row limit when not the batch: a table without a key whose page held
  // nothing but rows of one cursor value pulls that page again, larger.
  size_t page_limit_ = 0;
  std::optional<CursorValue> horizon_;  // this run reads only below it (late commits)
  // A resync reading past the horizon to mark the rows there before its sweep; the pages of
  // the tail commit tail_cursor_, the position below the horizon.
  bool tail_ = false;
  std::optional<Cursor> tail_cursor_;
  // A table swept by key range (TargetTable::key_range_sweep): where the next page's range
  // starts, the last key of the page before it (none: the pass's first key).
  std::optional<Cursor> sweep_from_;
  Status run_error_;
  int64_t run_rows_ = 0;    // rows the run wrote (its log line, _siphon_log, `synced`)
  int64_t run_pulled_ = 0;  // rows it pulled (a transform drops, rejects or adds some)
  int64_t run_deleted_ = 0;
  int64_t run_rejected_ = 0;      // rows it sent to _siphon_rejects (its log line warns)
  std::string run_reject_error_;  // the first of those rows' errors, for that warning
  int64_t pass_ = 0;              // full refresh: the pass this run writes
  int64_t full_pass_ = 0;         // the last pass recorded in _siphon_state
  bool fresh_pass_ = false;       // the next page written is the first of a pass
  // This run writes a pass that ends with a sweep: a full refresh, or the re-pull of a resync.
  bool WritesPasses() const { return !plan_->incremental || resync_pass_ != 0; }
  int64_t resync_pass_ = 0;         // a resync in progress writes this pass and sweeps at its end
  bool resync_first_ = false;       // `siphon resync`: the first run resets the cursor first
  bool accept_schema_ = false;      // resumed after a pause for a schema change
  bool paused_for_schema_ = false;  // paused by on_schema_change (a resume accepts the change)
  std::set<std::string> warned_text_form_;  // "column\ntype" already named as text form
  // The unique index the key was last taken from (the source table has no primary key), kept
  // across runs so a run that finds it gone, or a primary key in its place, says so.
  std::string key_index_;
  std::chrono::steady_clock::time_point run_started_;
  // Reconcile (deletes = { reconcile = … }): at the end of a run that caught up, when due.
  std::unique_ptr<Reconciler> reconciler_;
  bool reconciled_this_run_ = false;
  int64_t reconcile_deleted_ = 0;                          // of the last reconcile, for its event
  std::chrono::system_clock::time_point reconciled_at_{};  // epoch: never
};

}  // namespace siphon

#include "runtime/sync/table_runner.hpp"

#include <algorithm>
#include <ctime>

#include "runtime/base/log.hpp"

namespace siphon {
namespace {

// "2024-05-01T10:00:00.123Z" (NowIso) as a time point; the epoch when it is not one.
std::chrono::system_clock::time_point FromIso(const std::string& text) {
  std::tm tm{};
  const char* end = strptime(text.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
  if (end == nullptr) return {};
  return std::chrono::system_clock::from_time_t(timegm(&tm));
}

}  // namespace

std::string_view RunnerStateName(RunnerState state) {
  switch (state) {
    case RunnerState::kIdle:
      return "idle";
    case RunnerState::kWaiting:
      return "waiting";
    case RunnerState::kRunning:
      return "running";
    case RunnerState::kBackoff:
      return "backoff";
    case RunnerState::kPaused:
      return "paused";
    case RunnerState::kStopped:
      return "stopped";
    case RunnerState::kFinished:
      return "finished";
  }
  return "unknown";
}

TableRunner::TableRunner(uv_loop_t* loop, Target& target, TableDecl decl, RunnerOptions options,
                         std::shared_ptr<ConnectionPool> pool)
    : loop_(loop),
      target_(target),
      decl_(std::move(decl)),
      options_(options),
      log_(Logger("table:" + decl_.name)),
      pool_(std::move(pool)),
      timer_(new uv_timer_t),
      lag_timer_(new uv_timer_t),
      rng_(std::random_device{}()) {
  uv_timer_init(loop_, timer_);
  timer_->data = this;
  uv_timer_init(loop_, lag_timer_);
  lag_timer_->data = this;
}

TableRunner::~TableRunner() {
  *alive_ = false;
  pool_->Withdraw(borrowing_);
  // A connection still lent (a runner destroyed mid-run) goes with it: a statement may be in
  // flight on it.
  if (conn_) {
    conn_.reset();
    pool_->GiveBack(nullptr);
  }
  timer_->data = nullptr;
  uv_close(reinterpret_cast<uv_handle_t*>(timer_),
           [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
  lag_timer_->data = nullptr;
  uv_close(reinterpret_cast<uv_handle_t*>(lag_timer_),
           [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
}

void TableRunner::TakeOver(const TableRunner& old) {
  // Until it starts, it shows what the old runner does (Start schedules it anew).
  stats_ = old.stats_;
  if (paused_) stats_.state = RunnerState::kPaused;
  attempt_ = old.attempt_;
  lagging_ = old.lagging_;
  started_at_ = old.started_at_;
  last_status_ = old.last_status_;
  warned_text_form_ = old.warned_text_form_;
}

std::optional<TableRunner::NextRun> TableRunner::NextRunUnder(
    std::chrono::milliseconds every) const {
  if (running_ || stopping_ || paused_) return std::nullopt;
  if (stats_.state == RunnerState::kBackoff) return NextRun{stats_.next_run, true};
  if (stats_.state != RunnerState::kIdle) return std::nullopt;
  // An interval counts from the end of the run before it, which is next_run - every.
  return NextRun{std::min(stats_.next_run, stats_.next_run - decl_.every + every), false};
}

void TableRunner::Start(std::optional<NextRun> next) {
  if (decl_.max_lag) {
    // `lagging` is checked a few times per max_lag (at least every 10 s), so it fires at most
    // a quarter of max_lag late.
    const auto period = std::clamp<std::chrono::milliseconds>(
        *decl_.max_lag / 4, std::chrono::milliseconds(100), std::chrono::seconds(10));
    uv_timer_start(
        lag_timer_,
        [](uv_timer_t* t) {
          if (auto* self = static_cast<TableRunner*>(t->data)) self->CheckLag();
        },
        static_cast<uint64_t>(period.count()), static_cast<uint64_t>(period.count()));
  }
  // `siphon resync`: the first run resets the cursor once it knows the table (its key).
  resync_first_ = options_.resync_first;
  accept_schema_ = options_.accept_schema_first;
  if (!next) return ScheduleRun(std::chrono::milliseconds(0));
  if (next->backoff) stats_.state = RunnerState::kBackoff;
  const auto delay =
      std::chrono::ceil<std::chrono::milliseconds>(next->at - std::chrono::system_clock::now());
  if (delay.count() <= 0) return ScheduleRun(std::chrono::milliseconds(0));
  ScheduleRun(delay);
  // Shown as it was (the delay's rounding would move it by a millisecond per reload).
  if (stats_.state == RunnerState::kIdle || stats_.state == RunnerState::kBackoff) {
    stats_.next_run = next->at;
  }
}

void TableRunner::CheckLag() {
  if (!decl_.max_lag || lagging_ || stopping_ || paused_) return;
  // Measured from the last success, or from start-up for a table that never synced.
  const bool ever = stats_.last_success.time_since_epoch().count() != 0;
  const auto since = ever ? std::chrono::duration_cast<std::chrono::milliseconds>(
                                std::chrono::system_clock::now() - stats_.last_success)
                          : std::chrono::duration_cast<std::chrono::milliseconds>(
                                std::chrono::steady_clock::now() - started_at_);
  if (since <= *decl_.max_lag) return;
  lagging_ = true;  // once per episode: a success resets it
  {
    ScopedLogFields fields(LogFields::Of("lagging").DurationMs(since.count()));
    log_->warn("lagging: no successful sync for {} s (max_lag {} s)", since.count() / 1000,
               decl_.max_lag->count() / 1000.0);
  }
  Emit(EventKind::kLagging, 0, 0);
}

void TableRunner::Pause() {
  paused_ = true;
  uv_timer_stop(timer_);
  WithdrawWaitingRun();
  if (!running_) stats_.state = RunnerState::kPaused;
}

void TableRunner::Resume() {
  if (!paused_) return;
  paused_ = false;
  // A table paused for a schema change goes on with the new schema: the change found when
  // the next run prepares the table is accepted (the run that paused dropped its plan, so
  // that run reflects again). A run still in flight keeps its plan: a pause lets it finish.
  accept_schema_ = paused_for_schema_;
  paused_for_schema_ = false;
  if (!running_) ScheduleRun(std::chrono::milliseconds(0));
}

bool TableRunner::SyncNow() {
  if (running_ || paused_ || stopping_ || finished_) return false;
  ScheduleRun(std::chrono::milliseconds(0));
  return true;
}

Status TableRunner::Resync() {
  if (!stopping_) WithdrawWaitingRun();  // the resync starts one of its own
  if (running_ || stopping_ || finished_) {
    return Status(ErrorKind::kQuery, "a sync of " + decl_.name + " is running");
  }
  uv_timer_stop(timer_);
  running_ = true;  // no run may start while the cursor is being reset
  std::weak_ptr<bool> alive = alive_;
  target_.ResetCursor(decl_.name, [this, alive](Result<int64_t> pass) {
    if (!alive.lock()) return;
    running_ = false;
    if (!pass.ok()) {
      log_->error("resync: {}", pass.status().ToString());
    } else {
      log_->info("resync: the cursor is reset, pulling everything again (pass {})", *pass);
      resync_pass_ = *pass;
    }
    SetCommitted(std::nullopt);
    plan_.reset();  // reflect again: a resync also picks up a changed schema
    schema_.reset();
    if (stopping_) {
      NotifyStoppedIfIdle();
    } else if (!paused_) {
      ScheduleRun(std::chrono::milliseconds(0));
    }
  });
  return Status::Ok();
}

void TableRunner::Emit(EventKind kind, int64_t rows, int64_t duration_ms) {
  if (!options_.events) return;
  Event ev;
  ev.kind = kind;
  ev.table = decl_.name;
  ev.source = decl_.SourceDescription();
  ev.rows = rows;
  ev.duration_ms = duration_ms;
  ev.cursor = stats_.cursor;
  ev.attempt = stats_.attempt;
  if (kind == EventKind::kSynced) ev.deleted = run_deleted_;
  if (kind == EventKind::kReconciled) ev.deleted = reconcile_deleted_;
  if (kind == EventKind::kError) {
    ev.error = stats_.last_error;
    ev.error_kind = stats_.last_error_kind;
  }
  if (stats_.last_success.time_since_epoch().count() != 0) {
    ev.lag_s = std::chrono::duration<double>(std::chrono::system_clock::now() - stats_.last_success)
                   .count();
  } else {
    ev.lag_s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started_at_).count();
  }
  options_.events->Emit(ev);
}

void TableRunner::Stop(std::function<void()> stopped) {
  stopping_ = true;
  stats_.state = RunnerState::kStopped;
  stopped_ = std::move(stopped);
  uv_timer_stop(timer_);
  uv_timer_stop(lag_timer_);
  if (reconciler_) reconciler_->Cancel();
  WithdrawWaitingRun();
  // A source statement can take minutes (the first page of a big table without an index):
  // a stop does not wait for it. Closing the connection ends it with kCancelled (nothing of
  // it was written); a page on its way to the target still commits.
  if (running_ && conn_) conn_->Close();
  NotifyStoppedIfIdle();
}

bool TableRunner::busy() const {
  return running_ || pull_in_flight_ || write_in_flight_ || reconciler_ != nullptr;
}

void TableRunner::NotifyStoppedIfIdle() {
  if (!stopping_ || busy() || !stopped_) return;
  if (conn_) conn_->Close();
  auto fn = std::move(stopped_);
  stopped_ = nullptr;
  fn();
}

void TableRunner::ScheduleRun(std::chrono::milliseconds delay) {
  if (stopping_) return;
  if (paused_) {
    stats_.state = RunnerState::kPaused;
    return;
  }
  stats_.next_run = std::chrono::system_clock::now() + delay;
  if (stats_.state != RunnerState::kBackoff) stats_.state = RunnerState::kIdle;
  uv_timer_start(
      timer_,
      [](uv_timer_t* t) {
        if (auto* self = static_cast<TableRunner*>(t->data)) self->BeginRun();
      },
      static_cast<uint64_t>(delay.count()), 0);
}

void TableRunner::BeginRun() {
  if (running_ || stopping_ || paused_) return;
  running_ = true;
  stats_.state = RunnerState::kWaiting;
  std::weak_ptr<bool> alive = alive_;
  borrowing_ = pool_->Borrow([this, alive](std::unique_ptr<SourceConnection> conn) {
    if (alive.lock()) OnBorrowed(std::move(conn));
  });
}

void TableRunner::WithdrawWaitingRun() {
  if (borrowing_ == 0) return;
  pool_->Withdraw(borrowing_);
  borrowing_ = 0;
  running_ = false;
}

void TableRunner::OnBorrowed(std::unique_ptr<SourceConnection> conn) {
  borrowing_ = 0;
  conn_ = std::move(conn);
  stats_.state = RunnerState::kRunning;
  stats_.run_rows = 0;
  stats_.run_started = std::chrono::system_clock::now();
  run_error_ = Status::Ok();
  run_rows_ = 0;
  run_pulled_ = 0;
  run_deleted_ = 0;
  run_rejected_ = 0;
  run_reject_error_.clear();
  reconciled_this_run_ = false;
  more_pages_ = false;
  next_after_.reset();
  page_limit_ = 0;
  run_started_ = std::chrono::steady_clock::now();
  Emit(EventKind::kSyncStart, 0, 0);
  std::weak_ptr<bool> alive = alive_;
  conn_->Connect([this, alive](Status st) {
    if (alive.lock()) OnConnected(std::move(st));
  });
}

void TableRunner::OnConnected(Status st) {
  // A stop closes the connection, but an answer posted before it still arrives: the run
  // ends here either way, and nothing it says is a failure.
  if (stopping_) return MaybeFinishRun();
  if (!st.ok()) {
    Fail(st);
    MaybeFinishRun();
    return;
  }
  // Every run reflects (one catalog query): a changed source schema is noticed at once.
  std::weak_ptr<bool> alive = alive_;
  conn_->ReflectSource(decl_.from, decl_.query, [this, alive](Result<TableSchema> schema) {
    if (alive.lock()) OnReflected(std::move(schema));
  });
}

void TableRunner::OnReflected(Result<TableSchema> schema) {
  if (stopping_) return MaybeFinishRun();  // as in OnConnected
  if (!schema.ok()) {
    // A table gone from the source (dropped, renamed) fails like any run: `run` retries it
    // with backoff, so it comes back by itself when the table does.
    Fail(schema.status());
    MaybeFinishRun();
    return;
  }
  stats_.row_estimate = schema->row_estimate;
  if (plan_ && schema_ && schema->Hash() == schema_->Hash() &&
      schema->key_index == schema_->key_index) {
    StartPulling();  // nothing changed since the last run
    return;
  }
  Result<TablePlan> plan = MakePlan(decl_, *schema);
  if (!plan.ok()) {
    if (decl_.key.empty() && schema->primary_key.empty()) {
      // The rows siphon holds may have been keyed by a unique index the source no longer has
      // as such: the target remembers which (for a process that never prepared the table
      // too), and the message says where the key went and what brings it back.
      std::weak_ptr<bool> alive = alive_;
      target_.ReadStoredKey(decl_.name,
                            [this, alive, failed = plan.status()](Result<StoredKey> stored) {
                              if (!alive.lock()) return;
                              if (!stored.ok()) {
                                Fail(failed);
                              } else {
                                // The state row names none: the index this process saw.
                                if (stored->index.empty()) stored->index = key_index_;
                                Fail(KeyIndexGone(failed, *stored));
                              }
                              MaybeFinishRun();
                            });
      return;
    }
    Fail(plan.status());
    MaybeFinishRun();
    return;
  }
  if (decl_.transform) {
    if (Status st = ApplyTransformColumns(*plan, *decl_.transform); !st.ok()) {
      Fail(st.WithContext(decl_.location + ": table \"" + decl_.name + "\""));
      MaybeFinishRun();
      return;
    }
  }
  std::vector<std::string> checked = plan->order_by;
  if (Status st = conn_->CheckCursor(*schema, checked, decl_.cursor.size(),
                                     plan->lookback_seconds.has_value());
      !st.ok()) {
    Fail(st.WithContext(decl_.location + ": table \"" + decl_.name + "\""));
    MaybeFinishRun();
    return;
  }
  if (decl_.reconcile_every) {
    if (Status st = Reconciler::CheckKey(*schema, plan->target.key); !st.ok()) {
      Fail(st.WithContext(decl_.location + ": table \"" + decl_.name + "\""));
      MaybeFinishRun();
      return;
    }
  }
  for (const ColumnInfo& c : plan->source_columns) {
    if (c.text_form && warned_text_form_.insert(c.name + "\n" + c.source_type).second) {
      log_->warn("column \"{}\" has type {}, which siphon stores as its text form", c.name,
                 c.source_type);
    }
  }
  if (decl_.key.empty() && schema->key_index != key_index_) {
    if (!schema->key_index.empty()) {
      log_->info("the source table has no primary key: its key {} is the unique index \"{}\"",
                 CursorColumnsJson(plan->key), schema->key_index);
    } else if (!key_index_.empty() && !plan->key.empty()) {
      log_->info(
          "the source table now has the primary key {}: it is the key, in place of the "
          "unique index \"{}\"",
          CursorColumnsJson(plan->key), key_index_);
    }
    key_index_ = schema->key_index;
  }
  schema_ = std::move(*schema);
  plan_ = std::move(*plan);
  stats_.key = plan_->target.key;
  stats_.key_source = !decl_.key.empty()            ? "script"
                      : !schema_->key_index.empty() ? "unique index " + schema_->key_index
                      : !stats_.key.empty()         ? "primary key"
                                                    : "";
  std::weak_ptr<bool> alive = alive_;
  target_.PrepareTable(plan_->target, [this, alive](Result<TableState> state) {
    if (alive.lock()) OnPrepared(std::move(state));
  });
}

void TableRunner::OnPrepared(Result<TableState> state) {
  if (!state.ok()) {
    Fail(state.status());
    MaybeFinishRun();
    return;
  }
  if (!state->dropped_key.empty()) {
    ScopedLogFields fields(LogFields::Of("cursor_reset"));
    log_->warn(
        "the key changed from {} to {}: the target table was rebuilt under the new key, and the "
        "table is pulled again from the start (rows are upserted)",
        state->dropped_key, CursorColumnsJson(plan_->target.key));
  } else if (state->table_recreated) {
    ScopedLogFields fields(LogFields::Of("cursor_reset"));
    log_->warn(
        "the target table was not there (dropped?) while a cursor was stored: it was created "
        "again, and the table is pulled again from the start");
  } else if (!state->dropped_cursor_columns.empty()) {
    ScopedLogFields fields(LogFields::Of("cursor_reset"));
    log_->warn(
        "the stored cursor belongs to the columns {}, not {}: pulling the table again "
        "from the start (rows are upserted)",
        state->dropped_cursor_columns, plan_->target.cursor_columns);
  } else if (!state->dropped_cursor_source.empty()) {
    ScopedLogFields fields(LogFields::Of("cursor_reset"));
    log_->warn(
        "the stored cursor is a position in {}, not {}: pulling the table again from the start "
        "(rows are upserted)",
        state->dropped_cursor_source, plan_->target.source_table);
  }
  if (!state->kept_cursor_source.empty()) {
    // "script.lua:12" names the script the command needs.
    const std::string script = decl_.location.substr(0, decl_.location.rfind(':'));
    ScopedLogFields fields(LogFields::Of("source_changed"));
    log_->warn(
        "the stored cursor was read from {}, and the table now reads {}: the cursor is kept "
        "(a new primary with the same data goes on where it was); if this is other data, "
        "`siphon resync {} --table {}` (or POST /tables/{}/resync) pulls the table again",
        state->kept_cursor_source, decl_.SourceDescription(), script, decl_.name, decl_.name);
  }
  // A full refresh fills an added column with its next pass, unless it only appends.
  if (!state->added_columns.empty() && (plan_->incremental || plan_->target.append)) {
    ScopedLogFields fields(LogFields::Of("columns_added"));
    if (plan_->target.backfill) {
      log_->warn("the target table gained {}: pulling the table again to fill them (backfill)",
                 CursorColumnsJson(state->added_columns));
    } else if (plan_->target.append) {
      // Its rows are never updated, even pulled again from the start (a new key).
      log_->warn(
          "the target table gained {}: rows already replicated hold NULL there for good, as an "
          "append table never updates them (`siphon resync` fills them)",
          CursorColumnsJson(state->added_columns));
    } else if (state->cursor) {  // else pulled from the start (a new key): filled anyway
      log_->warn(
          "the target table gained {}: rows already replicated hold NULL there until they "
          "change (backfill = true, or `siphon resync`, fills them now)",
          CursorColumnsJson(state->added_columns));
    }
  }
  SetCommitted(state->cursor);  // after a restart, the cursor the last process committed
  full_pass_ = state->full_pass;
  resync_pass_ = state->resync_pass;
  reconciled_at_ = FromIso(state->reconciled_at);
  if (!state->schema_hash.empty() && state->schema_hash != plan_->target.schema_hash) {
    HandleSchemaChange(DiffSchema(state->schema_json, *schema_));
    return;
  }
  accept_schema_ = false;
  if (stopping_) {
    MaybeFinishRun();
    return;
  }
  StartPulling();
}

void TableRunner::HandleSchemaChange(const SchemaDiff& diff) {
  // Added columns were added to the target by PrepareTable; dropped ones stay in the target
  // and are no longer written. What a retyped column does is the script's choice. Only the
  // columns the table pulls count: one outside `columns` that changed type pauses nothing,
  // and one added there has nothing to backfill (the change is still reported).
  auto pulled = [this](const std::string& column) {
    return std::find(plan_->columns.begin(), plan_->columns.end(), column) != plan_->columns.end();
  };
  const bool retyped = std::any_of(diff.retyped.begin(), diff.retyped.end(),
                                   [&](const SchemaDiff::Retyped& r) { return pulled(r.column); });
  const bool added = std::any_of(diff.added.begin(), diff.added.end(), pulled);
  SchemaChangeAction action = retyped ? decl_.on_schema_change : SchemaChangeAction::kContinue;
  if (decl_.schema_change_handler) {
    Result<SchemaChangeAction> chosen = decl_.schema_change_handler->Decide(decl_.name, diff);
    if (!chosen.ok()) {
      log_->error("on_schema_change: {} (pausing the table)", chosen.status().ToString());
      action = SchemaChangeAction::kPause;
    } else {
      action = *chosen;
    }
  }
  if (accept_schema_ && action == SchemaChangeAction::kPause)
    action = SchemaChangeAction::kContinue;
  accept_schema_ = false;
  if (action == SchemaChangeAction::kContinue && decl_.backfill && added) {
    action = SchemaChangeAction::kResync;  // back-fill the new columns now
  }
  static constexpr const char* kNames[] = {"continue", "pause", "resync"};
  const char* name = kNames[static_cast<int>(action)];
  {
    ScopedLogFields fields(LogFields::Of("schema_change"));
    log_->warn("schema change {}: {}", diff.ToJson(), name);
  }
  if (options_.events) {
    Event ev;
    ev.kind = EventKind::kSchemaChange;
    ev.table = decl_.name;
    ev.source = decl_.SourceDescription();
    ev.diff = diff.ToJson();
    ev.action = name;
    ev.cursor = stats_.cursor;
    options_.events->Emit(ev);
  }
  if (action == SchemaChangeAction::kPause) {
    // The schema is not recorded: the change is reported again when the table resumes
    // (Resume accepts it).
    paused_ = true;
    paused_for_schema_ = true;
    Fail(Status(ErrorKind::kSchema, "the source schema changed (" + diff.ToJson() +
                                        "); the table is paused until resumed"));
    MaybeFinishRun();
    return;
  }
  std::weak_ptr<bool> alive = alive_;
  auto resync = action == SchemaChangeAction::kResync;
  target_.SaveSchema(decl_.name, plan_->target.schema_hash, plan_->target.schema_json,
                     [this, alive, resync](Status st) {
                       if (!alive.lock()) return;
                       if (!st.ok()) {
                         Fail(st);
                         MaybeFinishRun();
                         return;
                       }
                       if (resync) {
                         SetCommitted(std::nullopt);
                         target_.ResetCursor(decl_.name, [this, alive](Result<int64_t> pass) {
                           if (!alive.lock()) return;
                           if (!pass.ok()) {
                             Fail(pass.status());
                           } else {
                             resync_pass_ = *pass;
                           }
                           if (!run_error_.ok() || stopping_) return MaybeFinishRun();
                           StartPulling();
                         });
                         return;
                       }
                       if (stopping_) return MaybeFinishRun();
                       StartPulling();
                     });
}

void TableRunner::StartPulling() {
  if (resync_first_) {
    pull_in_flight_ = true;
    std::weak_ptr<bool> alive = alive_;
    target_.ResetCursor(decl_.name, [this, alive](Result<int64_t> pass) {
      if (!alive.lock()) return;
      pull_in_flight_ = false;
      if (!pass.ok()) {  // a retry of the run tries the reset again
        Fail(pass.status());
        return MaybeFinishRun();
      }
      resync_first_ = false;
      log_->info("resync: the cursor is reset, pulling everything again (pass {})", *pass);
      resync_pass_ = *pass;
      SetCommitted(std::nullopt);
      if (stopping_) return MaybeFinishRun();
      StartPulling();
    });
    return;
  }
  // A query's key and cursor columns can be NULL where the catalog says NOT NULL (an outer
  // join), and keyset pages never return such rows: a pass from the beginning looks for one
  // first (pages check every row they bring too), and the run fails naming the column.
  if (schema_->query.empty() || committed_) return StartPass();
  pull_in_flight_ = true;
  std::weak_ptr<bool> alive = alive_;
  conn_->FirstNull(*schema_, plan_->order_by,
                   [this, alive](Result<std::optional<std::string>> null) {
                     if (!alive.lock()) return;
                     pull_in_flight_ = false;
                     if (stopping_) return MaybeFinishRun();  // as in OnConnected
                     if (null.ok() && null->has_value()) null = NullKeyError(**null);
                     if (!null.ok()) {
                       Fail(null.status());
                       MaybeFinishRun();
                       return;
                     }
                     if (stopping_) return MaybeFinishRun();
                     StartPass();
                   });
}

Status TableRunner::NullKeyError(const std::string& column) const {
  return Status(ErrorKind::kSchema,
                "the query returned a row whose \"" + column +
                    "\" is NULL (a column of an outer join?), and a key or cursor column must "
                    "hold a value: filter such rows out in the query");
}

void TableRunner::StartPass() {
  horizon_.reset();
  tail_ = false;
  tail_cursor_.reset();
  sweep_from_ = committed_;
  // A resync writes its own pass (recorded, so a crash resumes it); a full pass resumes where
  // a crash left it (cursor set) or starts a new one; incremental rows keep the current pass.
  if (resync_pass_ != 0) {
    pass_ = resync_pass_;
  } else if (!plan_->incremental) {
    pass_ = committed_ ? std::max<int64_t>(full_pass_, 1) : full_pass_ + 1;
  } else {
    pass_ = full_pass_;
  }
  // Nothing of a pass is committed while the cursor is empty (a full page commits its cursor).
  fresh_pass_ = !committed_ && WritesPasses();
  if (!plan_->incremental) {
    Pull(FirstPage(*plan_, committed_));
    return;
  }
  // Incremental runs read only below the source's safe horizon, so a transaction still open
  // cannot commit a row behind the cursor this run leaves.
  pull_in_flight_ = true;
  std::weak_ptr<bool> alive = alive_;
  std::optional<CursorValue> after;
  if (committed_ && !committed_->empty()) after = committed_->front();
  conn_->SafeHorizon(*schema_, plan_->order_by[0], after,
                     [this, alive](Result<std::optional<CursorValue>> horizon) {
                       if (!alive.lock()) return;
                       pull_in_flight_ = false;
                       if (stopping_) return MaybeFinishRun();  // as in OnConnected
                       if (!horizon.ok()) {
                         Fail(horizon.status());
                         MaybeFinishRun();
                         return;
                       }
                       horizon_ = *horizon;
                       Pull(FirstPage(*plan_, committed_));
                     });
}

void TableRunner::Pull(PageQuery query) {
  if (!tail_) query.before = horizon_;
  query.limit = page_limit_ > 0 ? page_limit_ : RowsPerPage(query.limit);
  pulled_after_ = query.after;
  pulled_limit_ = query.limit;
  // Where no two rows share their order, a page never has to end early (see the ties in
  // OnPage), so one statement can bring several pages: the source produces the next while
  // this one is transformed and written. As many as the waiting pages have room for, by
  // their number and by the size of the last page written; before one was, a single page.
  if (page_limit_ == 0 && last_page_bytes_ > 0 && !plan_->target.key.empty() &&
      schema_->OrderIsUnique(plan_->order_by)) {
    const size_t room = kPendingBytes > pending_bytes_ ? kPendingBytes - pending_bytes_ : 0;
    query.pages = std::clamp<size_t>(room / last_page_bytes_, 1, kPagesPerPull);
  }
  pull_in_flight_ = true;
  std::weak_ptr<bool> alive = alive_;
  conn_->PullPages(*schema_, query, [this, alive](Result<RowBatch> page, bool last) {
    if (alive.lock()) OnPage(std::move(page), last);
  });
}

void TableRunner::OnPage(Result<RowBatch> page, bool last) {
  pull_in_flight_ = !last && page.ok();
  if (stopping_) return MaybeFinishRun();  // as in OnConnected: this page is not written
  if (!page.ok()) {
    Fail(page.status());
    MaybeFinishRun();
    return;
  }
  if (!run_error_.ok()) {  // the run is ending: this page is not written
    MaybeFinishRun();
    return;
  }
  auto rows = std::make_shared<RowBatch>(std::move(*page));
  size_t n = rows->rows();
  const bool full = n >= pulled_limit_;
  page_limit_ = 0;
  const bool tail_page = tail_;
  if (n > 0) next_after_ = CursorOf(*plan_, *rows, n - 1);
  // A query's key and cursor columns were checked NOT NULL through the table columns they
  // come from, but a column on the optional side of an outer join is NULL all the same: such
  // a row would be written under no key, or never be paged past. And the key must be unique
  // in the result (a join can repeat it): rows come in key order within a cursor value, so
  // a repeat is the row before it. Either fails the run, naming what is wrong.
  if (!schema_->query.empty()) {
    Status wrong;
    Cursor previous;
    for (size_t r = 0; r < n && wrong.ok(); ++r) {
      for (size_t i = 0; i < plan_->order_index.size() && wrong.ok(); ++i) {
        if (rows->at(r, plan_->order_index[i]).type == ValueType::kNull) {
          wrong = NullKeyError(plan_->order_by[i]);
        }
      }
      Cursor order = CursorOf(*plan_, *rows, r);
      // (Without a key, rows sharing the cursor are ties, kept whole in one page below.)
      if (wrong.ok() && r > 0 && !plan_->target.key.empty() && SameOrder(*plan_, order, previous)) {
        wrong = Status(ErrorKind::kSchema, "the query returned two rows with the same " +
                                               CursorColumnsJson(plan_->order_by) +
                                               ": the key must identify one row of the result");
      }
      previous = std::move(order);
    }
    if (!wrong.ok()) {
      Fail(wrong);
      more_pages_ = false;
      MaybeFinishRun();
      return;
    }
  }
  // A table without a key pages by its cursor alone, so rows sharing a cursor value cannot be
  // told apart: a full page ending inside such a group left the rest of the group behind (the
  // next page starts after its value). The group goes to the next page whole instead; a page
  // holding nothing but one group is pulled again, twice as large. (A page ending on MySQL
  // zero dates, whose values only its last row knows, is left as it is.) The source says
  // which values are equal (RowBatch::order_keys) where it holds some equal whose bytes
  // differ ('a', 'A' and 'a ' under a case-insensitive collation): the next page starts after
  // the last value as the source compares it. Numbers compare as numbers (SameOrder): a
  // numeric's 1.0 and 1.00 are one value. Such a group can also end a page of a table
  // whose key the source does not hold unique (a `key` the script gave).
  const bool keyed_order = rows->order_keys.size() == n && n > 0;
  if (full && n > 0 && (plan_->target.key.empty() || keyed_order) &&
      rows->last_row_source_text.empty()) {
    auto ties_last = [&](size_t row) {
      return keyed_order ? rows->order_keys[row] == rows->order_keys[n - 1]
                         : SameOrder(*plan_, CursorOf(*plan_, *rows, row), *next_after_);
    };
    size_t group = n - 1;
    while (group > 0 && ties_last(group - 1)) --group;
    if (group == 0) {
      next_after_ = pulled_after_;
      page_limit_ = pulled_limit_ * 2;
      more_pages_ = true;
      PullNextIfRoom();
      MaybeFinishRun();
      return;
    }
    if (group < n) {
      n = group;
      rows->KeepRows(n);
      next_after_ = CursorOf(*plan_, *rows, n - 1);
    }
  }
  // The position the next page (or run) starts from must be a value: a NULL there would
  // match nothing, and the table would find "nothing new" forever. (A MySQL zero date,
  // replicated as NULL, comes with its text: RowBatch::last_row_source_text.) The page is not
  // written; the run fails naming the column.
  if (n > 0 && (plan_->incremental || full)) {
    for (size_t i = 0; i < next_after_->size(); ++i) {
      if (std::holds_alternative<std::monostate>((*next_after_)[i])) {
        Fail(Status(ErrorKind::kType,
                    "cursor column \"" + plan_->order_by[i] +
                        "\" is NULL in the last row of a page: the table cannot page past it"));
        more_pages_ = false;
        MaybeFinishRun();
        return;
      }
    }
  }
  // A resync stops at the safe horizon like any incremental run, but the sweep that ends it
  // must not delete the rows past the horizon: they exist. So the pass goes on to the end of
  // the table (its tail), marking those rows while the cursor stays below the horizon (the
  // next run reads them again, with whatever committed late behind them).
  const bool to_tail = !full && !tail_ && horizon_.has_value() && resync_pass_ != 0 &&
                       plan_->incremental && plan_->target.pass_marks;
  if (to_tail) {
    tail_ = true;
    if (!next_after_) next_after_ = committed_;
    tail_cursor_ = next_after_;
  }
  more_pages_ = full || to_tail;
  // The next page is asked for before this one is transformed, so the source produces it
  // while the transform runs (this page counts against the waiting pages once queued). The
  // first page's size as pulled stands for the pages' size until one is written.
  if (last_page_bytes_ == 0) last_page_bytes_ = PageBytes(*rows);
  if (n > 0) row_bytes_ = std::max<size_t>(PageBytes(*rows) / n, 1);
  PullNextIfRoom();
  std::vector<Reject> rejects;
  if (decl_.transform && n > 0) {
    // The cursor comes from the pulled rows above: a dropped or rewritten row still moves it.
    auto out = std::make_shared<RowBatch>(plan_->target.columns.size());
    if (Status st = decl_.transform->Apply(plan_->source_columns, *rows, *out, rejects); !st.ok()) {
      Fail(st);
      MaybeFinishRun();
      return;
    }
    rows = std::move(out);
  }

  // Incremental: the cursor follows the last row. Full refresh: the cursor marks the pass in
  // progress, and is cleared with the page that ends the pass.
  std::optional<Cursor> cursor_after;
  if (tail_page) {
    cursor_after = tail_cursor_;
  } else if (plan_->incremental || full) {
    cursor_after = next_after_;
  }
  // A page that is not full ends a full-refresh pass, or the re-pull of a resync: its
  // transaction sweeps the rows the pass did not write and clears the position, even when it
  // holds no row. A table without pass marks (append) sweeps nothing, but its pass (and its
  // resync) ends there too.
  const bool resync = resync_pass_ != 0;
  const bool ends_pass = !full && WritesPasses() && !to_tail;
  if (n > 0 || ends_pass) {
    PageWrite write;
    write.rows = std::move(rows);
    write.cursor_after = std::move(cursor_after);
    write.rejects = std::move(rejects);
    write.sweep = ends_pass;
    write.fill = resync && plan_->target.append;
    if (plan_->target.pass_marks) {
      write.pass = pass_;
      write.starts_pass = fresh_pass_;
      fresh_pass_ = false;
    }
    if (plan_->target.key_range_sweep) {
      // Every row of the source after the page before's last key, up to this one's last, is in
      // this page; the page that ends the pass holds every row after that.
      write.range = KeyRange{sweep_from_, ends_pass ? std::nullopt : next_after_};
      sweep_from_ = next_after_;
    }
    const size_t bytes = PageBytes(*write.rows);
    last_page_bytes_ = bytes;
    pending_bytes_ += bytes;
    pending_.push_back(PendingPage{std::move(write), static_cast<int64_t>(n), bytes});
    SubmitWrite();
  }
  PullNextIfRoom();
  MaybeFinishRun();
}

void TableRunner::PullNextIfRoom() {
  if (more_pages_ && RoomToPull() && !pull_in_flight_ && !stopping_ && run_error_.ok()) {
    // (Only a tail that starts before any row was ever read has no position yet.)
    Pull(next_after_ ? NextPage(*plan_, *next_after_) : FirstPage(*plan_, std::nullopt));
  }
}

void TableRunner::SubmitWrite() {
  if (write_in_flight_ || pending_.empty()) return;
  write_in_flight_ = true;
  PendingPage page = std::move(pending_.front());
  pending_.pop_front();
  pending_bytes_ -= page.bytes;
  std::weak_ptr<bool> alive = alive_;
  auto cursor = page.write.cursor_after;
  const int64_t rejected = static_cast<int64_t>(page.write.rejects.size());
  std::string reject_error = rejected > 0 ? page.write.rejects.front().error : std::string();
  const int64_t pulled = page.source_rows;
  const int64_t pass = page.write.pass;
  const bool sweep = page.write.sweep;
  const auto submitted = std::chrono::steady_clock::now();
  target_.WritePage(
      decl_.name, std::move(page.write),
      [this, alive, cursor = std::move(cursor), rejected, reject_error = std::move(reject_error),
       pulled, pass, sweep, submitted](Result<PageResult> done) mutable {
        if (!alive.lock()) return;
        if (done.ok()) {
          // Rows the replica already held as read are not counted: a lookback's window read
          // again is no change.
          run_rows_ += done->written;
          run_pulled_ += pulled;
          run_deleted_ += done->deleted;
          run_rejected_ += rejected + done->refused;
          if (run_reject_error_.empty()) run_reject_error_ = reject_error;
          full_pass_ = std::max(full_pass_, pass);
          if (sweep) resync_pass_ = 0;
          stats_.run_rows = run_pulled_;
          stats_.rows_written += done->written;
          stats_.rows_rejected += rejected + done->refused;
          stats_.rows_deleted += done->deleted;
        }
        const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::steady_clock::now() - submitted)
                            .count();
        OnWritten(done.ok() ? Status::Ok() : done.status(), std::move(cursor), pulled, ms);
      });
}

void TableRunner::OnWritten(Status st, std::optional<Cursor> cursor, int64_t page_rows,
                            int64_t write_ms) {
  write_in_flight_ = false;
  if (!st.ok()) {
    Fail(st);
    MaybeFinishRun();
    return;
  }
  SetCommitted(std::move(cursor));
  Emit(EventKind::kBatch, page_rows, write_ms);
  if (run_error_.ok()) {
    SubmitWrite();
    PullNextIfRoom();
  }
  MaybeFinishRun();
}

void TableRunner::Fail(Status st) {
  if (run_error_.ok()) run_error_ = std::move(st);
  // A page pulled after a failed one must never be written: its cursor would skip the rows
  // of the page that failed.
  pending_.clear();
  pending_bytes_ = 0;
}

void TableRunner::MaybeFinishRun() {
  if (!running_ || pull_in_flight_ || write_in_flight_ || !pending_.empty() || reconciler_) {
    return;
  }
  if (run_error_.ok() && more_pages_ && !stopping_) return;  // a pull is about to start
  if (run_error_.ok() && !stopping_ && ReconcileDue()) {
    StartReconcile();  // the run caught up: look for rows gone from the source
    return;
  }
  FinishRun();
}

bool TableRunner::ReconcileDue() const {
  if (!decl_.reconcile_every || reconciled_this_run_ || !plan_ || !schema_ || !conn_) return false;
  // Not during a resync: its sweep removes what the source no longer has anyway.
  if (!plan_->incremental || plan_->target.key.empty() || resync_pass_ != 0) return false;
  return std::chrono::system_clock::now() - reconciled_at_ >= *decl_.reconcile_every;
}

void TableRunner::StartReconcile() {
  reconciled_this_run_ = true;
  reconciler_ =
      std::make_unique<Reconciler>(*conn_, target_, *schema_, decl_.name, plan_->target.key);
  const auto started = std::chrono::steady_clock::now();
  std::weak_ptr<bool> alive = alive_;
  reconciler_->Start([this, alive, started](Result<ReconcileResult> result) {
    if (!alive.lock()) return;
    // Destroyed when this callback returns (the reconciler touches nothing after it).
    std::unique_ptr<Reconciler> finished = std::move(reconciler_);
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                        std::chrono::steady_clock::now() - started)
                        .count();
    if (!result.ok()) {
      if (result.status().kind() != ErrorKind::kCancelled) {
        Fail(result.status().WithContext("reconcile"));
      }
      MaybeFinishRun();
      return;
    }
    reconciled_at_ = std::chrono::system_clock::now();
    reconcile_deleted_ = result->deleted;
    stats_.rows_deleted += result->deleted;
    stats_.reconciles++;
    stats_.reconcile_keys_checked = result->keys_checked;
    {
      ScopedLogFields fields(LogFields::Of("reconcile")
                                 .Rows(result->keys_checked)
                                 .Deleted(result->deleted)
                                 .DurationMs(ms));
      log_->info("reconcile: {} key ranges compared, {} keys looked up, {} rows deleted in {} ms",
                 result->ranges, result->keys_checked, result->deleted, ms);
    }
    Emit(EventKind::kReconciled, result->keys_checked, ms);
    RunRecord record;
    record.table = decl_.name;
    record.event = "reconcile";
    record.rows = result->keys_checked;
    record.deleted = result->deleted;
    record.duration_ms = ms;
    record.status = "ok";
    record.reconcile = true;
    target_.RecordRun(std::move(record), [this, alive](Status st) {
      if (alive.lock() && !st.ok())
        log_->error("could not record the reconcile: {}", st.ToString());
    });
    MaybeFinishRun();
  });
}

void TableRunner::SetCommitted(std::optional<Cursor> cursor) {
  committed_ = std::move(cursor);
  stats_.cursor = committed_ ? CursorToJson(*committed_) : "";
}

void TableRunner::GiveBackConnection() {
  if (!conn_) return;
  // A failed run's session may be broken or mid-statement: the next borrower connects anew.
  if (!run_error_.ok() || stopping_) conn_->Close();
  pool_->GiveBack(std::move(conn_));
}

void TableRunner::FinishRun() {
  running_ = false;
  GiveBackConnection();
  const auto duration = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - run_started_);
  stats_.last_duration_ms = duration.count();
  if (stopping_ && run_error_.ok()) {
    ScopedLogFields fields(LogFields::Of("stopped").Rows(run_rows_));
    log_->info("stopped after {} rows", run_rows_);
    NotifyStoppedIfIdle();
    return;
  }

  RunRecord record;
  record.table = decl_.name;
  record.source = decl_.SourceDescription();
  record.source_table = decl_.Origin();
  record.rows = run_rows_;
  record.deleted = run_deleted_;
  record.duration_ms = duration.count();
  last_status_ = run_error_;
  std::chrono::milliseconds next = decl_.every;
  bool finish_now = false;
  if (run_error_.ok()) {
    const bool recovered = attempt_ > 0;
    if (recovered) {
      ScopedLogFields fields(LogFields::Of("recovered").Attempt(attempt_));
      log_->info("recovered after {} failed attempt(s)", attempt_);
    }
    stats_.runs_ok++;
    stats_.last_success = std::chrono::system_clock::now();
    // The error is over (as _siphon_state's last_error, which this run's record clears).
    stats_.last_error.clear();
    stats_.last_error_kind.clear();
    lagging_ = false;
    stats_.state = RunnerState::kIdle;
    Emit(EventKind::kSynced, run_rows_, duration.count());
    if (recovered) Emit(EventKind::kRecovered, run_rows_, duration.count());
    attempt_ = 0;
    stats_.attempt = 0;
    record.event = "synced";
    record.status = "ok";
    ScopedLogFields fields(
        LogFields::Of("synced").Rows(run_rows_).Deleted(run_deleted_).DurationMs(duration.count()));
    // Rows a transform dropped or rejected, or the replica refused, are not written.
    const std::string pulled =
        run_pulled_ != run_rows_ ? " (" + std::to_string(run_pulled_) + " pulled)" : "";
    if (run_deleted_ > 0) {
      log_->info("synced {} rows{}, deleted {} in {} ms", run_rows_, pulled, run_deleted_,
                 duration.count());
    } else if (run_rows_ > 0 || run_pulled_ > 0) {
      log_->info("synced {} rows{} in {} ms", run_rows_, pulled, duration.count());
    } else {
      log_->debug("no new rows ({} ms)", duration.count());
    }
    if (run_rejected_ > 0) {
      // Said at info level only, a transform that fails on every row looked like a quiet
      // success ("synced 0 rows (50 pulled)"); the message's first line names the script line.
      const std::string first = run_reject_error_.substr(0, run_reject_error_.find('\n'));
      std::string quoted;  // the name as an SQL literal, for the query the warning suggests
      for (char c : decl_.name) quoted += c == '\'' ? std::string("''") : std::string(1, c);
      log_->warn(
          "{} row(s) rejected, kept in _siphon_rejects (SELECT error, row_json FROM "
          "_siphon_rejects WHERE table_name = '{}'){}",
          run_rejected_, quoted, first.empty() ? "" : "; the first: " + first);
    }
    finish_now = options_.once;
  } else {
    ++attempt_;
    stats_.attempt = attempt_;
    stats_.runs_failed++;
    stats_.last_error = run_error_.message();
    stats_.last_error_kind = std::string(ErrorKindName(run_error_.kind()));
    stats_.state = RunnerState::kBackoff;
    Emit(EventKind::kError, run_rows_, duration.count());
    schema_.reset();
    plan_.reset();
    record.event = "error";
    record.error = run_error_.ToString();
    const bool retry =
        run_error_.transient() && (!options_.once || attempt_ <= options_.once_retries);
    next = Backoff(attempt_, options_.backoff_base, options_.backoff_cap, rng_);
    record.status = retry || !options_.once ? "error" : "failed";
    ScopedLogFields fields(LogFields::Of("error")
                               .Rows(run_rows_)
                               .DurationMs(duration.count())
                               .Attempt(attempt_)
                               .Kind(stats_.last_error_kind));
    if (retry || !options_.once) {
      log_->error("{} (attempt {}, retrying in {} ms)", run_error_.ToString(), attempt_,
                  next.count());
    } else {
      log_->error("{} (giving up)", run_error_.ToString());
    }
    finish_now = options_.once && !retry;
  }

  // The record waits for its batch (Target::RecordRun): the next run is due `next` after
  // now, not after the record is committed.
  const auto due = std::chrono::steady_clock::now() + next;
  std::weak_ptr<bool> alive = alive_;
  target_.RecordRun(std::move(record), [this, alive, finish_now, due](Status st) {
    if (!alive.lock()) return;
    if (!st.ok()) log_->error("could not record the run: {}", st.ToString());
    if (stopping_) {
      NotifyStoppedIfIdle();
    } else if (finish_now) {
      finished_ = true;
      stats_.state = RunnerState::kFinished;
      if (on_finished_) on_finished_();
    } else {
      ScheduleRun(std::max(std::chrono::milliseconds(0),
                           std::chrono::duration_cast<std::chrono::milliseconds>(
                               due - std::chrono::steady_clock::now())));
    }
  });
  if (stopping_ || finish_now) target_.FlushRecords();  // nothing comes after it to wait for
}

}  // namespace siphon

#include "runtime/sync/table_runner.hpp"

#include "runtime/base/log.hpp"

namespace siphon {

TableRunner::TableRunner(uv_loop_t* loop, Target& target, TableDecl decl, RunnerOptions options)
    : loop_(loop),
      target_(target),
      decl_(std::move(decl)),
      options_(options),
      log_(Logger("table:" + decl_.name)),
      timer_(new uv_timer_t),
      rng_(std::random_device{}()) {
  uv_timer_init(loop_, timer_);
  timer_->data = this;
}

TableRunner::~TableRunner() {
  *alive_ = false;
  conn_.reset();
  timer_->data = nullptr;
  uv_close(reinterpret_cast<uv_handle_t*>(timer_),
           [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
}

void TableRunner::Start() {
  ScheduleRun(std::chrono::milliseconds(0));
}

void TableRunner::Stop(std::function<void()> stopped) {
  stopping_ = true;
  stopped_ = std::move(stopped);
  uv_timer_stop(timer_);
  NotifyStoppedIfIdle();
}

bool TableRunner::busy() const {
  return running_ || pull_in_flight_ || write_in_flight_;
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
  uv_timer_start(
      timer_,
      [](uv_timer_t* t) {
        if (auto* self = static_cast<TableRunner*>(t->data)) self->BeginRun();
      },
      static_cast<uint64_t>(delay.count()), 0);
}

void TableRunner::BeginRun() {
  if (running_ || stopping_) return;
  running_ = true;
  run_error_ = Status::Ok();
  run_rows_ = 0;
  more_pages_ = false;
  next_after_.reset();
  run_started_ = std::chrono::steady_clock::now();
  if (!conn_) conn_ = decl_.source->source->NewConnection(loop_);
  std::weak_ptr<bool> alive = alive_;
  conn_->Connect([this, alive](Status st) {
    if (alive.lock()) OnConnected(std::move(st));
  });
}

void TableRunner::OnConnected(Status st) {
  if (!st.ok()) {
    Fail(st);
    MaybeFinishRun();
    return;
  }
  if (plan_) {
    Pull(FirstPage(*plan_, committed_));
    return;
  }
  std::weak_ptr<bool> alive = alive_;
  conn_->Reflect(decl_.from, [this, alive](Result<TableSchema> schema) {
    if (alive.lock()) OnReflected(std::move(schema));
  });
}

void TableRunner::OnReflected(Result<TableSchema> schema) {
  if (!schema.ok()) {
    Fail(schema.status());
    MaybeFinishRun();
    return;
  }
  Result<TablePlan> plan = MakePlan(decl_, *schema);
  if (!plan.ok()) {
    Fail(plan.status());
    MaybeFinishRun();
    return;
  }
  std::vector<std::string> checked = plan->order_by;
  if (Status st = conn_->CheckCursor(*schema, checked, plan->lookback_seconds.has_value());
      !st.ok()) {
    Fail(st.WithContext(decl_.location + ": table \"" + decl_.name + "\""));
    MaybeFinishRun();
    return;
  }
  schema_ = std::move(*schema);
  plan_ = std::move(*plan);
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
  committed_ = state->cursor;
  if (stopping_) {
    MaybeFinishRun();
    return;
  }
  Pull(FirstPage(*plan_, committed_));
}

void TableRunner::Pull(PageQuery query) {
  pull_in_flight_ = true;
  std::weak_ptr<bool> alive = alive_;
  conn_->Pull(*schema_, query, [this, alive](Result<RowBatch> page) {
    if (alive.lock()) OnPage(std::move(page));
  });
}

void TableRunner::OnPage(Result<RowBatch> page) {
  pull_in_flight_ = false;
  if (!page.ok()) {
    Fail(page.status());
    MaybeFinishRun();
    return;
  }
  if (!run_error_.ok() || stopping_) {  // the run is ending: this page is not written
    MaybeFinishRun();
    return;
  }
  auto rows = std::make_shared<const RowBatch>(std::move(*page));
  const size_t n = rows->rows();
  const bool full = n >= plan_->batch;
  if (n > 0) next_after_ = CursorOf(*plan_, *rows, n - 1);
  more_pages_ = full;

  // Incremental: the cursor follows the last row. Full refresh: the cursor marks the pass in
  // progress, and is cleared with the page that ends the pass.
  std::optional<Cursor> cursor_after;
  if (plan_->incremental || full) cursor_after = next_after_;
  const bool ends_pass = !plan_->incremental && !full;
  if (n > 0 || (ends_pass && committed_)) {
    pending_ = PendingPage{std::move(rows), std::move(cursor_after)};
    run_rows_ += static_cast<int64_t>(n);
    SubmitWrite();
  }
  if (more_pages_ && !pending_) Pull(NextPage(*plan_, *next_after_));
  MaybeFinishRun();
}

void TableRunner::SubmitWrite() {
  if (write_in_flight_ || !pending_) return;
  write_in_flight_ = true;
  PendingPage page = std::move(*pending_);
  pending_.reset();
  std::weak_ptr<bool> alive = alive_;
  auto cursor = page.cursor_after;
  target_.WritePage(decl_.name, std::move(page.rows), std::move(page.cursor_after),
                    [this, alive, cursor = std::move(cursor)](Status st) mutable {
                      if (alive.lock()) OnWritten(std::move(st), std::move(cursor));
                    });
}

void TableRunner::OnWritten(Status st, std::optional<Cursor> cursor) {
  write_in_flight_ = false;
  if (!st.ok()) {
    Fail(st);
    MaybeFinishRun();
    return;
  }
  committed_ = std::move(cursor);
  if (run_error_.ok()) {
    SubmitWrite();
    if (more_pages_ && !pending_ && !pull_in_flight_ && !stopping_) {
      Pull(NextPage(*plan_, *next_after_));
    }
  }
  MaybeFinishRun();
}

void TableRunner::Fail(Status st) {
  if (run_error_.ok()) run_error_ = std::move(st);
  // A page pulled after a failed one must never be written: its cursor would skip the rows
  // of the page that failed.
  pending_.reset();
}

void TableRunner::MaybeFinishRun() {
  if (!running_ || pull_in_flight_ || write_in_flight_ || pending_) return;
  if (run_error_.ok() && more_pages_ && !stopping_) return;  // a pull is about to start
  FinishRun();
}

void TableRunner::FinishRun() {
  running_ = false;
  const auto duration = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - run_started_);
  if (stopping_ && run_error_.ok()) {
    log_->info("stopped after {} rows", run_rows_);
    NotifyStoppedIfIdle();
    return;
  }

  RunRecord record;
  record.table = decl_.name;
  record.rows = run_rows_;
  record.duration_ms = duration.count();
  rows_last_run_ = run_rows_;
  last_status_ = run_error_;
  std::chrono::milliseconds next = decl_.every;
  bool finish_now = false;
  if (run_error_.ok()) {
    if (attempt_ > 0) log_->info("recovered after {} failed attempt(s)", attempt_);
    attempt_ = 0;
    record.event = "synced";
    record.status = "ok";
    if (run_rows_ > 0) {
      log_->info("synced {} rows in {} ms", run_rows_, duration.count());
    } else {
      log_->debug("no new rows ({} ms)", duration.count());
    }
    finish_now = options_.once;
  } else {
    ++attempt_;
    if (conn_) conn_->Close();
    schema_.reset();
    plan_.reset();
    record.event = "error";
    record.error = run_error_.ToString();
    const bool retry =
        run_error_.transient() && (!options_.once || attempt_ <= options_.once_retries);
    next = Backoff(attempt_, options_.backoff_base, options_.backoff_cap, rng_);
    record.status = retry || !options_.once ? "error" : "failed";
    if (retry || !options_.once) {
      log_->error("{} (attempt {}, retrying in {} ms)", run_error_.ToString(), attempt_,
                  next.count());
    } else {
      log_->error("{} (giving up)", run_error_.ToString());
    }
    finish_now = options_.once && !retry;
  }

  std::weak_ptr<bool> alive = alive_;
  target_.RecordRun(std::move(record), [this, alive, finish_now, next](Status st) {
    if (!alive.lock()) return;
    if (!st.ok()) log_->error("could not record the run: {}", st.ToString());
    if (stopping_) {
      NotifyStoppedIfIdle();
    } else if (finish_now) {
      finished_ = true;
      if (on_finished_) on_finished_();
    } else {
      ScheduleRun(next);
    }
  });
}

}  // namespace siphon

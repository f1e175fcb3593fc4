#include "runtime/sync/replicator.hpp"

#include <algorithm>
#include <map>
#include <memory>
#include <optional>

namespace siphon {

Replicator::Replicator(uv_loop_t* loop, Target& target, const Deployment& deployment,
                       RunnerOptions options, const std::vector<std::string>& only_tables)
    : loop_(loop), target_(target), options_(options) {
  for (const auto& t : deployment.tables) {
    if (!only_tables.empty() &&
        std::find(only_tables.begin(), only_tables.end(), t.name) == only_tables.end()) {
      continue;
    }
    runners_.push_back(MakeRunner(t));
  }
}

void Replicator::Start(std::function<void()> finished) {
  finished_ = std::move(finished);
  remaining_ = runners_.size();
  for (auto& r : runners_) {
    r->OnFinished([this] {
      if (--remaining_ == 0 && finished_) finished_();
    });
    r->Start();
  }
  if (runners_.empty() && finished_) finished_();
}

void Replicator::Stop(std::function<void()> stopped) {
  auto left = std::make_shared<size_t>(runners_.size() + 1);
  auto done = std::make_shared<std::function<void()>>(std::move(stopped));
  // Once no run holds a connection, the idle ones close: siphon is stopping.
  auto release = [this, left, done] {
    if (--*left != 0) return;
    for (const auto& pool : pools()) pool->CloseIdle();
    if (*done) (*done)();
  };
  for (auto& r : runners_) {
    const TableRunner* runner = r.get();
    stops_pending_.push_back(runner);
    r->Stop([this, runner, release] {
      std::erase(stops_pending_, runner);
      release();
    });
  }
  release();
}

std::vector<std::string> Replicator::StopsPending() const {
  std::vector<std::string> names;
  for (const TableRunner* r : stops_pending_) names.push_back(r->decl().name);
  return names;
}

std::vector<std::shared_ptr<ConnectionPool>> Replicator::pools() const {
  std::vector<std::shared_ptr<ConnectionPool>> live;
  for (const Pool& p : pools_) {
    if (auto pool = p.pool.lock()) live.push_back(std::move(pool));
  }
  return live;
}

TableRunner* Replicator::Find(const std::string& name) const {
  for (const auto& r : runners_) {
    if (r->decl().name == name) return r.get();
  }
  return nullptr;
}

bool Replicator::SameSource(const SourceDecl* a, const SourceDecl* b) {
  if (a == nullptr || b == nullptr || !a->source || !b->source) return a == b;
  return a->source->kind() == b->source->kind() && a->source->Describe() == b->source->Describe() &&
         a->options == b->options && a->max_connections == b->max_connections;
}

bool Replicator::SameReads(const TableDecl& a, const TableDecl& b) {
  auto soft = [](const TableDecl& t) {
    return t.soft_delete ? t.soft_delete->column + (t.soft_delete->keep ? "+keep" : "")
                         : std::string();
  };
  return a.name == b.name && a.from == b.from && a.query == b.query && a.key == b.key &&
         a.cursor == b.cursor && a.columns == b.columns &&
         a.lookback_seconds == b.lookback_seconds && a.write == b.write &&
         a.backfill == b.backfill && soft(a) == soft(b) &&
         SameSource(a.source.get(), b.source.get());
}

std::shared_ptr<ConnectionPool> Replicator::PoolFor(const TableDecl& table) {
  std::erase_if(pools_, [](const Pool& p) { return p.pool.expired(); });
  for (const Pool& p : pools_) {
    if (SameSource(p.source.get(), table.source.get())) return p.pool.lock();
  }
  auto pool =
      std::make_shared<ConnectionPool>(loop_, table.source->source, table.source->max_connections);
  pools_.push_back(Pool{table.source, pool});
  return pool;
}

std::unique_ptr<TableRunner> Replicator::MakeRunner(const TableDecl& table) {
  return std::make_unique<TableRunner>(loop_, target_, table, options_, PoolFor(table));
}

bool Replicator::SameDeclaration(const TableDecl& a, const TableDecl& b) {
  // Lua callbacks cannot be compared: a table with any of them restarts on reload. Even one
  // declared by the same text may differ (its upvalues, the globals it reads), and it belongs
  // to the previous Lua state, which is closed once the old runner is gone.
  if (a.transform || b.transform || a.schema_change_handler || b.schema_change_handler) {
    return false;
  }
  return SameReads(a, b) && a.every == b.every && a.batch == b.batch && a.max_lag == b.max_lag &&
         a.on_schema_change == b.on_schema_change && a.reconcile_every == b.reconcile_every;
}

void Replicator::Retire(std::unique_ptr<TableRunner> runner, std::function<void()> gone) {
  struct Pending {
    uv_timer_t timer;
    std::unique_ptr<TableRunner> runner;
    std::function<void()> gone;
  };
  auto* p = new Pending{{}, std::move(runner), std::move(gone)};
  uv_timer_init(loop_, &p->timer);
  p->timer.data = p;
  uv_timer_start(
      &p->timer,
      [](uv_timer_t* t) {
        auto* p = static_cast<Pending*>(t->data);
        p->runner.reset();
        if (p->gone) p->gone();
        uv_close(reinterpret_cast<uv_handle_t*>(t),
                 [](uv_handle_t* h) { delete static_cast<Pending*>(h->data); });
      },
      0, 0);
}

ReloadDiff Replicator::Reconcile(const Deployment& next, std::function<void()> retired) {
  ReloadDiff diff;
  auto left = std::make_shared<size_t>(1);  // released at the end of this function
  auto done = std::make_shared<std::function<void()>>(std::move(retired));
  auto release = [left, done] {
    if (--*left == 0 && *done) (*done)();
  };

  std::vector<std::unique_ptr<TableRunner>> kept;
  std::vector<std::unique_ptr<TableRunner>> stopping;
  for (auto& r : runners_) {
    const TableDecl* declared = nullptr;
    for (const auto& t : next.tables) {
      if (t.name == r->decl().name) declared = &t;
    }
    if (declared && SameDeclaration(r->decl(), *declared)) {
      diff.unchanged.push_back(r->decl().name);
      kept.push_back(std::move(r));
      continue;
    }
    if (!declared) diff.removed.push_back(r->decl().name);
    stopping.push_back(std::move(r));
  }
  // A replaced table's next run, by name: when the old one's was due, unless what it reads
  // changed (then at once). Taken before the old runners stop (a stopped one has none).
  std::map<std::string, std::optional<TableRunner::NextRun>> next_runs;
  for (const auto& t : next.tables) {
    const TableRunner* old = nullptr;
    for (const auto& r : stopping) {
      if (r->decl().name == t.name) old = r.get();
    }
    bool unchanged =
        std::find(diff.unchanged.begin(), diff.unchanged.end(), t.name) != diff.unchanged.end();
    if (unchanged) continue;
    auto runner = MakeRunner(t);
    if (old) {
      diff.changed.push_back(t.name);
      runner->TakeOver(*old);
      next_runs[t.name] = SameReads(old->decl(), t) ? old->NextRunUnder(t.every) : std::nullopt;
    } else {
      diff.added.push_back(t.name);
      runner->Start();
    }
    kept.push_back(std::move(runner));
  }
  runners_ = std::move(kept);

  // Owned by the replicator until stopped: Stop may call back at once when the runner is idle.
  std::vector<TableRunner*> to_stop;
  for (auto& old : stopping) {
    to_stop.push_back(old.get());
    stopping_.push_back(std::move(old));
  }
  for (TableRunner* raw : to_stop) {
    ++*left;
    std::string name = raw->decl().name;
    std::optional<TableRunner::NextRun> next_run;
    if (auto it = next_runs.find(name); it != next_runs.end()) next_run = it->second;
    raw->Stop([this, raw, name, next_run, release] {
      // The replacement starts only now that no page of the old runner is in flight, with
      // what that page counted.
      if (TableRunner* replacement = Find(name); replacement && replacement != raw) {
        replacement->TakeOver(*raw);
        replacement->Start(next_run);
      }
      for (auto it = stopping_.begin(); it != stopping_.end(); ++it) {
        if (it->get() != raw) continue;
        Retire(std::move(*it), release);
        stopping_.erase(it);
        break;
      }
    });
  }
  release();
  return diff;
}

int Replicator::ExitCode() const {
  int code = 0;
  for (const auto& r : runners_) {
    const Status& st = r->last_status();
    if (st.ok()) continue;
    if (st.kind() == ErrorKind::kConfig) return 2;
    code = 1;
  }
  return code;
}

}  // namespace siphon

#include "runtime/sync/replicator.hpp"

#include <algorithm>
#include <memory>

namespace siphon {

Replicator::Replicator(uv_loop_t* loop, Target& target, const Deployment& deployment,
                       RunnerOptions options, const std::vector<std::string>& only_tables)
    : loop_(loop) {
  for (const auto& t : deployment.tables) {
    if (!only_tables.empty() &&
        std::find(only_tables.begin(), only_tables.end(), t.name) == only_tables.end()) {
      continue;
    }
    runners_.push_back(std::make_unique<TableRunner>(loop_, target, t, options));
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
  auto left = std::make_shared<size_t>(runners_.size());
  auto done = std::make_shared<std::function<void()>>(std::move(stopped));
  if (runners_.empty()) {
    (*done)();
    return;
  }
  for (auto& r : runners_) {
    r->Stop([left, done] {
      if (--*left == 0 && *done) (*done)();
    });
  }
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

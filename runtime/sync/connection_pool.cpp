#include "runtime/sync/connection_pool.hpp"

#include <algorithm>

namespace siphon {

ConnectionPool::ConnectionPool(uv_loop_t* loop, std::shared_ptr<Source> source, size_t limit)
    : loop_(loop), source_(std::move(source)), limit_(std::max<size_t>(limit, 1)) {
  handoff_ = new uv_timer_t;
  uv_timer_init(loop_, handoff_);
  handoff_->data = this;
}

ConnectionPool::~ConnectionPool() {
  idle_.clear();
  handoff_->data = nullptr;
  uv_close(reinterpret_cast<uv_handle_t*>(handoff_),
           [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
}

uint64_t ConnectionPool::Borrow(Lent lent) {
  if (waiting_.empty() && lent_ < limit_) {
    Lend(std::move(lent));
    return 0;
  }
  waiting_.push_back(Request{++next_ticket_, std::move(lent)});
  return next_ticket_;
}

void ConnectionPool::Withdraw(uint64_t ticket) {
  if (ticket == 0) return;
  auto it = std::find_if(waiting_.begin(), waiting_.end(),
                         [ticket](const Request& r) { return r.ticket == ticket; });
  if (it != waiting_.end()) waiting_.erase(it);
}

void ConnectionPool::GiveBack(std::unique_ptr<SourceConnection> conn) {
  if (lent_ > 0) --lent_;
  if (conn) idle_.push_back(std::move(conn));
  if (waiting_.empty()) return;
  // Not from inside the borrower's own call: its run is still ending on the stack.
  uv_timer_start(
      handoff_,
      [](uv_timer_t* t) {
        if (auto* self = static_cast<ConnectionPool*>(t->data)) self->AnswerWaiting();
      },
      0, 0);
}

void ConnectionPool::AnswerWaiting() {
  while (!waiting_.empty() && lent_ < limit_) {
    Lent lent = std::move(waiting_.front().lent);
    waiting_.pop_front();
    Lend(std::move(lent));
  }
}

void ConnectionPool::Lend(Lent lent) {
  std::unique_ptr<SourceConnection> conn;
  if (idle_.empty()) {
    conn = source_->NewConnection(loop_);
  } else {
    conn = std::move(idle_.back());
    idle_.pop_back();
  }
  ++lent_;
  lent(std::move(conn));
}

void ConnectionPool::CloseIdle() {
  for (auto& conn : idle_) conn->Close();
}

}  // namespace siphon

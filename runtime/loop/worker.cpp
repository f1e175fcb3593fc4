#include "runtime/loop/worker.hpp"

#include <future>

namespace siphon {

WorkerThread::WorkerThread(uv_loop_t* loop) : loop_(loop), async_(new uv_async_t) {
  uv_async_init(loop_, async_, &WorkerThread::OnAsync);
  async_->data = this;
  // The async handle alone must not keep the loop alive: Post() refs it while jobs are pending.
  uv_unref(reinterpret_cast<uv_handle_t*>(async_));
  thread_ = std::thread([this] { ThreadMain(); });
}

WorkerThread::~WorkerThread() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
  async_->data = nullptr;
  uv_close(reinterpret_cast<uv_handle_t*>(async_),
           [](uv_handle_t* h) { delete reinterpret_cast<uv_async_t*>(h); });
}

void WorkerThread::Post(std::function<void()> job, std::function<void()> done) {
  if (!done) done = [] {};  // every posted job reports back, so pending_ stays exact
  if (pending_++ == 0) uv_ref(reinterpret_cast<uv_handle_t*>(async_));
  {
    std::lock_guard lock(mu_);
    jobs_.emplace_back(std::move(job), std::move(done));
  }
  cv_.notify_one();
}

void WorkerThread::RunSync(const std::function<void()>& job) {
  std::promise<void> finished;
  {
    std::lock_guard lock(mu_);
    jobs_.emplace_back(
        [&job, &finished] {
          job();
          finished.set_value();
        },
        nullptr);
  }
  cv_.notify_one();
  finished.get_future().wait();
}

void WorkerThread::ThreadMain() {
  for (;;) {
    std::pair<std::function<void()>, std::function<void()>> item;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [this] { return stop_ || !jobs_.empty(); });
      if (jobs_.empty()) return;  // stop_ and nothing left
      item = std::move(jobs_.front());
      jobs_.pop_front();
    }
    item.first();
    if (item.second) {
      {
        std::lock_guard lock(mu_);
        done_.push_back(std::move(item.second));
      }
      uv_async_send(async_);
    }
  }
}

void WorkerThread::OnAsync(uv_async_t* handle) {
  auto* self = static_cast<WorkerThread*>(handle->data);
  if (self) self->DrainDone();
}

void WorkerThread::DrainDone() {
  std::deque<std::function<void()>> ready;
  {
    std::lock_guard lock(mu_);
    ready.swap(done_);
  }
  for (auto& fn : ready) {
    if (--pending_ == 0) uv_unref(reinterpret_cast<uv_handle_t*>(async_));
    fn();
  }
}

}  // namespace siphon

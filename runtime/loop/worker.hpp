#pragma once
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

#include <uv.h>

namespace siphon {

/// A thread that runs jobs in order and hands each job's completion back to the loop thread
/// through uv_async. The job runs on the worker; its `done` runs on the loop. The worker never
/// touches Lua or loop state; the loop never touches what the worker owns.
class WorkerThread {
 public:
  explicit WorkerThread(uv_loop_t* loop);
  ~WorkerThread();  ///< runs the jobs already posted, then joins
  WorkerThread(const WorkerThread&) = delete;
  WorkerThread& operator=(const WorkerThread&) = delete;

  /// Loop thread only. `done` may be empty.
  void Post(std::function<void()> job, std::function<void()> done);

  /// Runs a job on the worker and waits for it (start-up and shutdown only, never in a callback).
  void RunSync(const std::function<void()>& job);

  /// Jobs posted whose `done` has not run yet.
  size_t pending() const { return pending_; }

 private:
  static void OnAsync(uv_async_t* handle);
  void ThreadMain();
  void DrainDone();

  uv_loop_t* loop_;
  uv_async_t* async_;  // heap: closed asynchronously after this object is gone
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::pair<std::function<void()>, std::function<void()>>> jobs_;
  std::deque<std::function<void()>> done_;
  bool stop_ = false;
  size_t pending_ = 0;  // loop thread only
};

}  // namespace siphon

#pragma once
#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <curl/curl.h>
#include <uv.h>
#include <lua.hpp>

#include "runtime/base/schema.hpp"
#include "runtime/base/status.hpp"
#include "runtime/lua/lua_ref.hpp"

struct sqlite3;

namespace siphon {

class LuaHost;
class Target;

/// An HTTP request of `siphon.http.request`.
struct LuaHttpRequest {
  std::string method = "GET";
  std::string url;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  long timeout_ms = 30000;
};

/// What the Lua layer does on the loop besides calling Lua: the timers of siphon.every and
/// siphon.after, HTTP on libcurl's multi interface (sockets watched with uv_poll, curl's
/// timer on a uv_timer), and the target (Target::Exec on the writer, a read-only SQLite
/// connection of its own for queries). Every completion resumes the waiting coroutine
/// through LuaHost::Resume. Loop thread only.
class LuaAsync {
 public:
  explicit LuaAsync(LuaHost& host);
  ~LuaAsync();
  LuaAsync(const LuaAsync&) = delete;
  LuaAsync& operator=(const LuaAsync&) = delete;

  void AttachLoop(uv_loop_t* loop);
  void AttachTarget(Target* target, std::string path);
  /// See LuaHost::Shutdown.
  void Shutdown(std::function<void()> drained, std::chrono::milliseconds timeout);
  /// A coroutine of the host finished: the end of a shutdown may be reached.
  void OnTaskDone();

  /// Runs `fn` (a function) after `delay`, and every `delay` after that when `repeat`.
  /// Before AttachLoop, the timer waits for it. Refused after Shutdown.
  Status AddTimer(LuaRef fn, std::chrono::milliseconds delay, bool repeat, std::string what);

  /// Requests sent at once: to one scheme://host:port, and in all. The others wait their
  /// turn, oldest first, their timeout counting the wait, so a burst of events posting to a
  /// slow webhook holds a few sockets, not one each.
  static constexpr int kMaxPerEndpoint = 8;
  static constexpr size_t kMaxSending = 32;
  /// Requests held at once, sent or waiting their turn: past it a request fails at once.
  static constexpr size_t kMaxRequests = 1000;

  /// A failed request is logged once per endpoint per kFailureLogWindow: the failures after
  /// it in the window (a burst of events against a webhook that is down) are counted, and
  /// one line sums them up when the window ends. Each handler still gets its `nil, message`.
  static constexpr std::chrono::seconds kFailureLogWindow{10};

  /// Starts `request`: true when `co` is then to wait (LuaHost::Await) and is resumed with
  /// `{ status, headers, body }` or `nil, message`; false when it was refused at once
  /// (kMaxRequests held) and `nil, message` were pushed on `co` (and logged).
  Result<bool> StartHttp(lua_State* co, LuaHttpRequest request);

  /// Runs `sql` on the writer (Target::Exec); `co` is resumed with `true, changes` or
  /// `false, message`.
  Status StartExec(lua_State* co, std::string sql, std::vector<CursorValue> params);

  /// The read-only connection to the target file, opened on first use.
  Result<sqlite3*> Reader();

  size_t http_in_flight() const { return http_.size(); }
  size_t timers() const { return timers_.size(); }

 private:
  struct Timer;
  struct Http;
  struct Socket;

  void StartTimer(Timer* t);
  void CloseTimer(Timer* t);
  Status EnsureMulti();
  void CheckDone();
  /// Whether a request to `endpoint` may be sent now (kMaxPerEndpoint, kMaxSending).
  bool HasTurn(const std::string& endpoint) const;
  bool Send(Http* h);
  void SendWaiting();
  void ArmWaitTimer();
  void Complete(Http* h, CURLcode rc);
  void FreeHttp(Http* h);
  // Logs `message` (a failed request to `endpoint`, `shown` as messages name it), or counts it
  // when this endpoint's failure was logged less than kFailureLogWindow ago.
  void LogFailure(const std::string& endpoint, const std::string& shown,
                  const std::string& message);
  // Sums up the failures counted whose window ended (all of them when `all`), forgets the
  // endpoints whose window ended without one, and arms failure_timer_ for the next window end.
  void FlushFailures(bool all);
  void MaybeFinishShutdown();
  void CloseAll();
  // Closes a handle; `free_memory` runs in its close callback, even after this is gone.
  void CloseHandle(uv_handle_t* h, std::function<void()> free_memory);

  static int OnSocket(CURL* easy, curl_socket_t s, int action, void* userp, void* socketp);
  static size_t WriteBody(char* data, size_t size, size_t n, void* userp);
  static int OnCurlTimer(CURLM* multi, long timeout_ms, void* userp);

  LuaHost& host_;
  uv_loop_t* loop_ = nullptr;
  Target* target_ = nullptr;
  std::string target_path_;
  sqlite3* reader_ = nullptr;

  std::set<Timer*> timers_;  // every timer not yet freed (waiting, running or closing)
  CURLM* multi_ = nullptr;
  uv_timer_t* curl_timer_ = nullptr;
  std::set<Http*> http_;                // every request, sent or waiting
  std::deque<Http*> waiting_;           // not yet sent, oldest first
  std::map<std::string, int> sending_;  // requests sent, per scheme://host:port
  size_t sending_total_ = 0;
  uv_timer_t* wait_timer_ = nullptr;  // fails the waiting requests whose timeout passes
  struct FailureLog {
    std::chrono::steady_clock::time_point logged;  // the last line about this endpoint
    size_t unlogged = 0;                           // failures since, not logged one by one
    std::string shown;
    std::string last;  // the last of them
  };
  std::map<std::string, FailureLog> failures_;  // per scheme://host:port
  uv_timer_t* failure_timer_ = nullptr;         // ends the windows of FlushFailures

  bool shutting_down_ = false;
  bool closed_ = false;  // handles closed: nothing is resumed any more
  std::function<void()> drained_;
  uv_timer_t* shutdown_timer_ = nullptr;
  int closing_ = 0;  // uv_close callbacks still to come
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace siphon

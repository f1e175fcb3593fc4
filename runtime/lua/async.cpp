#include "runtime/lua/async.hpp"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstring>
#include <optional>

#include <sqlite3.h>

#include "runtime/base/ascii.hpp"
#include "runtime/base/log.hpp"
#include "runtime/lua/lua_events.hpp"
#include "runtime/lua/lua_host.hpp"
#include "runtime/target/target.hpp"

namespace siphon {
namespace {

// curl_global_init is not thread-safe: done once, before the first multi handle.
void GlobalInit() {
  static const bool done = [] { return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK; }();
  (void)done;
}

// How messages name a URL, and the endpoint whose requests take turns.
struct UrlNames {
  // "https://hooks.example.com/…": a webhook's URL often is its secret (a token in the path
  // or the query, a password before the host), so messages name its scheme, host and port.
  std::string shown = "(an invalid URL)";
  std::string endpoint;  // "https://hooks.example.com:443"
};

UrlNames NameUrl(const std::string& url) {
  UrlNames names;
  CURLU* u = curl_url();
  if (u == nullptr) return names;
  if (curl_url_set(u, CURLUPART_URL, url.c_str(), 0) == CURLUE_OK) {
    char* scheme = nullptr;
    char* host = nullptr;
    char* port = nullptr;
    char* default_port = nullptr;
    char* path = nullptr;
    char* query = nullptr;
    if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK) {
      names.shown = std::string(scheme) + "://" + host;
      names.endpoint = names.shown;
      if (curl_url_get(u, CURLUPART_PORT, &port, 0) == CURLUE_OK) {
        names.shown += ":" + std::string(port);
      }
      if (curl_url_get(u, CURLUPART_PORT, &default_port, CURLU_DEFAULT_PORT) == CURLUE_OK) {
        names.endpoint += ":" + std::string(default_port);
      }
      const bool more = (curl_url_get(u, CURLUPART_PATH, &path, 0) == CURLUE_OK &&
                         std::string_view(path) != "/") ||
                        curl_url_get(u, CURLUPART_QUERY, &query, 0) == CURLUE_OK;
      names.shown += more ? "/…" : "/";
    }
    for (char* part : {scheme, host, port, default_port, path, query}) curl_free(part);
  }
  curl_url_cleanup(u);
  return names;
}

}  // namespace

struct LuaAsync::Timer {
  uv_timer_t handle;
  LuaAsync* owner = nullptr;
  LuaRef fn;  // released when the handle is closed (or the host goes)
  uint64_t delay_ms = 0;
  bool repeat = false;
  bool started = false;
  std::string what;
};

struct LuaAsync::Http {
  CURL* easy = nullptr;
  curl_slist* headers = nullptr;
  lua_State* co = nullptr;
  std::string label;  // "POST https://host/…", for messages: never the whole URL
  std::string shown;  // "https://host/…"
  std::string endpoint;
  long timeout_ms = 0;
  std::chrono::steady_clock::time_point deadline;  // the timeout counts the wait for a turn
  bool sent = false;                               // added to the multi handle
  std::string body;
  std::string response;
  size_t max_response = 0;  // the Lua memory cap: the body becomes one Lua string
  bool too_large = false;
  std::vector<std::pair<std::string, std::string>> response_headers;
  char error[CURL_ERROR_SIZE] = {0};
};

struct LuaAsync::Socket {
  uv_poll_t poll;
  curl_socket_t fd;
  LuaAsync* owner;
};

LuaAsync::LuaAsync(LuaHost& host) : host_(host) {}

LuaAsync::~LuaAsync() {
  *alive_ = false;
  for (Http* h : std::set<Http*>(http_)) FreeHttp(h);
  if (multi_ != nullptr) {
    curl_multi_cleanup(multi_);  // its socket callbacks close the polls
    multi_ = nullptr;
  }
  // References go before the state; the memory of a handle goes with its close callback.
  for (Timer* t : timers_) {
    t->fn.Reset();
    if (!t->started) {
      delete t;
    } else if (!uv_is_closing(reinterpret_cast<uv_handle_t*>(&t->handle))) {
      CloseHandle(reinterpret_cast<uv_handle_t*>(&t->handle), [t] { delete t; });
    }
  }
  timers_.clear();
  FlushFailures(true);
  for (uv_timer_t* t : {curl_timer_, wait_timer_, shutdown_timer_, failure_timer_}) {
    if (t != nullptr && !uv_is_closing(reinterpret_cast<uv_handle_t*>(t))) {
      CloseHandle(reinterpret_cast<uv_handle_t*>(t), [t] { delete t; });
    }
  }
  if (reader_ != nullptr) sqlite3_close_v2(reader_);
}

namespace {
struct CloseContext {
  std::weak_ptr<bool> alive;
  std::function<void()> free_memory;
  std::function<void()> closed;  // only while the owner lives
};
}  // namespace

void LuaAsync::CloseHandle(uv_handle_t* h, std::function<void()> free_memory) {
  auto* ctx = new CloseContext;
  ctx->alive = alive_;
  ctx->free_memory = std::move(free_memory);
  if (*alive_) {
    ++closing_;
    ctx->closed = [this] {
      --closing_;
      MaybeFinishShutdown();
    };
  }
  h->data = ctx;
  uv_close(h, [](uv_handle_t* h) {
    auto* ctx = static_cast<CloseContext*>(h->data);
    ctx->free_memory();
    auto alive = ctx->alive.lock();
    if (alive && *alive && ctx->closed) ctx->closed();
    delete ctx;
  });
}

void LuaAsync::AttachLoop(uv_loop_t* loop) {
  loop_ = loop;
  for (Timer* t : timers_) {
    if (!t->started) StartTimer(t);
  }
}

void LuaAsync::AttachTarget(Target* target, std::string path) {
  target_ = target;
  if (path != target_path_ && reader_ != nullptr) {
    sqlite3_close_v2(reader_);
    reader_ = nullptr;
  }
  target_path_ = std::move(path);
}

// ---- timers ----

Status LuaAsync::AddTimer(LuaRef fn, std::chrono::milliseconds delay, bool repeat,
                          std::string what) {
  if (shutting_down_) return Status(ErrorKind::kScript, "siphon is shutting down: no new timers");
  auto* t = new Timer;
  t->owner = this;
  t->fn = std::move(fn);
  t->delay_ms = static_cast<uint64_t>(std::max<int64_t>(delay.count(), 1));
  t->repeat = repeat;
  t->what = std::move(what);
  t->handle.data = t;
  timers_.insert(t);
  if (loop_ != nullptr) StartTimer(t);
  return Status::Ok();
}

void LuaAsync::StartTimer(Timer* t) {
  t->started = true;
  uv_timer_init(loop_, &t->handle);
  t->handle.data = t;
  uv_timer_start(
      &t->handle,
      [](uv_timer_t* h) {
        auto* t = static_cast<Timer*>(h->data);
        LuaAsync* self = t->owner;
        if (self == nullptr || self->closed_) return;
        lua_State* L = self->host_.state();
        t->fn.Push(L);
        // A one-shot timer is closed first: its callback may add timers of its own.
        if (!t->repeat) self->CloseTimer(t);
        // A failing timer callback becomes an `error` event without a table (DESIGN §2).
        LuaHost& host = self->host_;
        host.Spawn(0, t->what, [&host, what = t->what](const Status& failure) {
          host.event_handlers().EmitFailure("", "", what, failure);
        });
      },
      t->delay_ms, t->repeat ? t->delay_ms : 0);
}

void LuaAsync::CloseTimer(Timer* t) {
  if (!t->started) {
    timers_.erase(t);
    delete t;
    return;
  }
  if (uv_is_closing(reinterpret_cast<uv_handle_t*>(&t->handle))) return;
  t->owner = nullptr;  // fires no more
  std::weak_ptr<bool> alive = alive_;
  CloseHandle(reinterpret_cast<uv_handle_t*>(&t->handle), [this, alive, t] {
    if (auto a = alive.lock(); a && *a) timers_.erase(t);
    delete t;  // releases the callback's reference (the destructor already did when gone)
  });
}

// ---- HTTP ----

Status LuaAsync::EnsureMulti() {
  if (multi_ != nullptr) return Status::Ok();
  if (loop_ == nullptr) {
    return Status(ErrorKind::kScript, "siphon.http is not available before the loop runs");
  }
  GlobalInit();
  multi_ = curl_multi_init();
  if (multi_ == nullptr) return Status(ErrorKind::kScript, "siphon.http: curl_multi_init failed");
  curl_multi_setopt(multi_, CURLMOPT_SOCKETFUNCTION, &LuaAsync::OnSocket);
  curl_multi_setopt(multi_, CURLMOPT_SOCKETDATA, this);
  curl_multi_setopt(multi_, CURLMOPT_TIMERFUNCTION, &LuaAsync::OnCurlTimer);
  curl_multi_setopt(multi_, CURLMOPT_TIMERDATA, this);
  curl_timer_ = new uv_timer_t;
  uv_timer_init(loop_, curl_timer_);
  curl_timer_->data = this;
  wait_timer_ = new uv_timer_t;
  uv_timer_init(loop_, wait_timer_);
  wait_timer_->data = this;
  failure_timer_ = new uv_timer_t;
  uv_timer_init(loop_, failure_timer_);
  failure_timer_->data = this;
  return Status::Ok();
}

int LuaAsync::OnCurlTimer(CURLM*, long timeout_ms, void* userp) {
  auto* self = static_cast<LuaAsync*>(userp);
  if (self->curl_timer_ == nullptr ||
      uv_is_closing(reinterpret_cast<uv_handle_t*>(self->curl_timer_))) {
    return 0;
  }
  if (timeout_ms < 0) {
    uv_timer_stop(self->curl_timer_);
    return 0;
  }
  // curl asks for 0 to mean "now": a 0 ms uv timer runs on the next loop iteration, never
  // from inside this callback (which curl forbids re-entering).
  uv_timer_start(
      self->curl_timer_,
      [](uv_timer_t* t) {
        auto* self = static_cast<LuaAsync*>(t->data);
        int running = 0;
        curl_multi_socket_action(self->multi_, CURL_SOCKET_TIMEOUT, 0, &running);
        self->CheckDone();
      },
      static_cast<uint64_t>(timeout_ms), 0);
  return 0;
}

int LuaAsync::OnSocket(CURL*, curl_socket_t s, int action, void* userp, void* socketp) {
  auto* self = static_cast<LuaAsync*>(userp);
  auto* sock = static_cast<Socket*>(socketp);
  if (action == CURL_POLL_REMOVE) {
    if (sock != nullptr) {
      uv_poll_stop(&sock->poll);
      curl_multi_assign(self->multi_, s, nullptr);
      self->CloseHandle(reinterpret_cast<uv_handle_t*>(&sock->poll), [sock] { delete sock; });
    }
    return 0;
  }
  if (sock == nullptr) {
    sock = new Socket;
    sock->fd = s;
    sock->owner = self;
    uv_poll_init_socket(self->loop_, &sock->poll, s);
    sock->poll.data = sock;
    curl_multi_assign(self->multi_, s, sock);
  }
  int events = 0;
  if (action == CURL_POLL_IN || action == CURL_POLL_INOUT) events |= UV_READABLE;
  if (action == CURL_POLL_OUT || action == CURL_POLL_INOUT) events |= UV_WRITABLE;
  uv_poll_start(&sock->poll, events, [](uv_poll_t* p, int status, int events) {
    auto* sock = static_cast<Socket*>(p->data);
    LuaAsync* self = sock->owner;
    int flags = 0;
    if (status < 0) flags = CURL_CSELECT_ERR;
    if (events & UV_READABLE) flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE) flags |= CURL_CSELECT_OUT;
    int running = 0;
    curl_multi_socket_action(self->multi_, sock->fd, flags, &running);
    self->CheckDone();
  });
  return 0;
}

size_t LuaAsync::WriteBody(char* data, size_t size, size_t n, void* userp) {
  auto* h = static_cast<Http*>(userp);
  if (h->response.size() + size * n > h->max_response) {
    h->too_large = true;
    return 0;  // curl ends the transfer (CURLE_WRITE_ERROR)
  }
  h->response.append(data, size * n);
  return size * n;
}

namespace {

size_t WriteHeader(char* data, size_t size, size_t n, void* userp) {
  auto* headers = static_cast<std::vector<std::pair<std::string, std::string>>*>(userp);
  std::string_view line(data, size * n);
  if (line.rfind("HTTP/", 0) == 0) {
    headers->clear();  // a new response (after 100 Continue): its headers only
    return size * n;
  }
  size_t colon = line.find(':');
  if (colon == std::string_view::npos) return size * n;
  std::string name = AsciiLower(line.substr(0, colon));
  std::string_view value = line.substr(colon + 1);
  while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
  while (!value.empty() && (value.back() == '\r' || value.back() == '\n' || value.back() == ' ')) {
    value.remove_suffix(1);
  }
  // A header sent more than once is one value, its values joined by ", " in the order they
  // came, as RFC 9110 reads them (and as fetch's headers.get gives them, Set-Cookie too).
  for (auto& [seen, joined] : *headers) {
    if (seen == name) {
      joined.append(", ").append(value);
      return size * n;
    }
  }
  headers->emplace_back(std::move(name), std::string(value));
  return size * n;
}

}  // namespace

Result<bool> LuaAsync::StartHttp(lua_State* co, LuaHttpRequest request) {
  // While a shutdown waits for the handlers, they may go on sending (a second webhook, a
  // retry): its timeout bounds them.
  if (closed_) {
    return Status(ErrorKind::kScript, "siphon is shutting down: no new HTTP requests");
  }
  if (Status st = EnsureMulti(); !st.ok()) return st;
  UrlNames names = NameUrl(request.url);
  if (http_.size() >= kMaxRequests) {
    // Each request held keeps its handler's coroutine and payload: a burst faster than the
    // endpoints answer is cut here rather than held without bound.
    std::string message = "siphon.http: " + request.method + " " + names.shown +
                          " not sent: " + std::to_string(kMaxRequests) +
                          " requests are already waiting (the endpoints answer slower than "
                          "requests come)";
    LogFailure(names.endpoint, names.shown, message);
    lua_pushnil(co);
    lua_pushlstring(co, message.data(), message.size());
    return false;
  }
  auto* h = new Http;
  h->co = co;
  h->label = request.method + " " + names.shown;
  h->shown = names.shown;
  h->endpoint = std::move(names.endpoint);
  h->timeout_ms = request.timeout_ms;
  h->deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(request.timeout_ms);
  h->body = std::move(request.body);
  h->easy = curl_easy_init();
  if (h->easy == nullptr) {
    delete h;
    return Status(ErrorKind::kScript, "siphon.http: curl_easy_init failed");
  }
  CURL* e = h->easy;
  curl_easy_setopt(e, CURLOPT_URL, request.url.c_str());
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, h->error);
  h->max_response = host_.options().memory_limit;
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, &LuaAsync::WriteBody);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, h);
  curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, &WriteHeader);
  curl_easy_setopt(e, CURLOPT_HEADERDATA, &h->response_headers);
  curl_easy_setopt(e, CURLOPT_PRIVATE, h);
  curl_easy_setopt(e, CURLOPT_USERAGENT, "siphon/" SIPHON_VERSION);
  if (request.method == "GET") {
    curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
  } else if (request.method == "HEAD") {
    curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
  } else {
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, request.method.c_str());
  }
  if (!h->body.empty() || (request.method != "GET" && request.method != "HEAD")) {
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, h->body.data());
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(h->body.size()));
  }
  for (const auto& [name, value] : request.headers) {
    std::string line = name + ": " + value;
    h->headers = curl_slist_append(h->headers, line.c_str());
  }
  // No "Expect: 100-continue" round trip for a webhook body.
  h->headers = curl_slist_append(h->headers, "Expect:");
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, h->headers);
  http_.insert(h);
  // Oldest first: a request waits while an older one to its host does, or while every turn
  // is taken; another host's queue does not hold it back.
  const bool behind = std::any_of(waiting_.begin(), waiting_.end(),
                                  [h](const Http* w) { return w->endpoint == h->endpoint; });
  if (!behind && HasTurn(h->endpoint)) {
    if (!Send(h)) {
      FreeHttp(h);
      return Status(ErrorKind::kScript, "siphon.http: cannot start the request");
    }
  } else {
    waiting_.push_back(h);
    ArmWaitTimer();
  }
  return true;
}

bool LuaAsync::HasTurn(const std::string& endpoint) const {
  auto sending = sending_.find(endpoint);
  return sending_total_ < kMaxSending &&
         (sending == sending_.end() || sending->second < kMaxPerEndpoint);
}

bool LuaAsync::Send(Http* h) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                  h->deadline - std::chrono::steady_clock::now())
                  .count();
  long timeout_ms = static_cast<long>(std::max<int64_t>(left, 1));
  curl_easy_setopt(h->easy, CURLOPT_TIMEOUT_MS, timeout_ms);
  curl_easy_setopt(h->easy, CURLOPT_CONNECTTIMEOUT_MS, std::min(timeout_ms, 10000L));
  if (curl_multi_add_handle(multi_, h->easy) != CURLM_OK) return false;
  h->sent = true;
  ++sending_[h->endpoint];
  ++sending_total_;
  return true;
}

// Sends the waiting requests there is room for, oldest first, and fails those whose
// timeout passed while they waited.
void LuaAsync::SendWaiting() {
  if (multi_ == nullptr || closed_) return;
  const auto now = std::chrono::steady_clock::now();
  std::vector<Http*> failed;
  for (auto it = waiting_.begin(); it != waiting_.end();) {
    Http* h = *it;
    if (h->deadline <= now) {
      std::snprintf(h->error, sizeof h->error,
                    "timed out after %ld ms waiting its turn (at most %d requests to one host "
                    "and %zu in all are sent at once)",
                    h->timeout_ms, kMaxPerEndpoint, kMaxSending);
      failed.push_back(h);
      it = waiting_.erase(it);
      continue;
    }
    // No room: it waits on (the walk goes on, to fail the others whose timeout passed).
    if (!HasTurn(h->endpoint)) {
      ++it;
      continue;
    }
    it = waiting_.erase(it);
    if (!Send(h)) {
      std::snprintf(h->error, sizeof h->error, "cannot start the request");
      failed.push_back(h);
    }
  }
  ArmWaitTimer();
  // Completed after the walk: a resumed handler may start the next request.
  for (Http* h : failed) Complete(h, CURLE_OPERATION_TIMEDOUT);
}

void LuaAsync::ArmWaitTimer() {
  if (wait_timer_ == nullptr) return;
  if (waiting_.empty()) {
    uv_timer_stop(wait_timer_);
    return;
  }
  auto first = waiting_.front()->deadline;
  for (Http* h : waiting_) first = std::min(first, h->deadline);
  auto due = std::chrono::duration_cast<std::chrono::milliseconds>(first -
                                                                   std::chrono::steady_clock::now())
                 .count();
  uv_timer_start(
      wait_timer_, [](uv_timer_t* t) { static_cast<LuaAsync*>(t->data)->SendWaiting(); },
      static_cast<uint64_t>(std::max<int64_t>(due, 0)) + 1, 0);
}

void LuaAsync::CheckDone() {
  std::vector<std::pair<Http*, CURLcode>> done;
  int left = 0;
  while (CURLMsg* m = curl_multi_info_read(multi_, &left)) {
    if (m->msg != CURLMSG_DONE) continue;
    Http* h = nullptr;
    curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, &h);
    if (h != nullptr) done.emplace_back(h, m->data.result);
  }
  // Completed outside curl's loop: a resumed handler may start the next request.
  for (auto [h, rc] : done) Complete(h, rc);
  if (!done.empty()) SendWaiting();
}

void LuaAsync::Complete(Http* h, CURLcode rc) {
  lua_State* co = h->co;
  if (rc == CURLE_OK) {
    long status = 0;
    curl_easy_getinfo(h->easy, CURLINFO_RESPONSE_CODE, &status);
    lua_createtable(co, 0, 3);
    lua_pushinteger(co, status);
    lua_setfield(co, -2, "status");
    lua_createtable(co, 0, static_cast<int>(h->response_headers.size()));
    for (const auto& [name, value] : h->response_headers) {
      lua_pushlstring(co, value.data(), value.size());
      lua_setfield(co, -2, name.c_str());
    }
    lua_setfield(co, -2, "headers");
    lua_pushlstring(co, h->response.data(), h->response.size());
    lua_setfield(co, -2, "body");
    FreeHttp(h);
    host_.Resume(co, 1);
  } else {
    std::string message = "siphon.http: " + h->label + " failed: " +
                          (h->too_large ? "the response body is larger than the Lua memory cap (" +
                                              std::to_string(h->max_response >> 20) + " MiB)"
                           : h->error[0] != 0 ? std::string(h->error)
                                              : std::string(curl_easy_strerror(rc)));
    LogFailure(h->endpoint, h->shown, message);
    lua_pushnil(co);
    lua_pushlstring(co, message.data(), message.size());
    FreeHttp(h);
    host_.Resume(co, 2);
  }
  MaybeFinishShutdown();
}

void LuaAsync::LogFailure(const std::string& endpoint, const std::string& shown,
                          const std::string& message) {
  const auto now = std::chrono::steady_clock::now();
  auto [it, first] = failures_.try_emplace(endpoint);
  FailureLog& f = it->second;
  if (!first && now - f.logged < kFailureLogWindow) {
    ++f.unlogged;
    f.shown = shown;
    f.last = message;
    FlushFailures(false);  // arms the timer for this window's end
    return;
  }
  Logger("lua")->error("{}", message);
  f.logged = now;
}

void LuaAsync::FlushFailures(bool all) {
  const auto now = std::chrono::steady_clock::now();
  std::optional<std::chrono::steady_clock::time_point> next;
  for (auto it = failures_.begin(); it != failures_.end();) {
    FailureLog& f = it->second;
    const bool ended = now - f.logged >= kFailureLogWindow;
    if (f.unlogged > 0 && (all || ended)) {
      const auto seconds =
          std::chrono::duration_cast<std::chrono::milliseconds>(now - f.logged).count() / 1000.0;
      Logger("lua")->error(
          "siphon.http: {} more request(s) to {} failed in the last {:.0f} s, not logged one by "
          "one; the last: {}",
          f.unlogged, f.shown, seconds, f.last);
      f.logged = now;
      f.unlogged = 0;
    } else if (f.unlogged == 0 && ended) {
      it = failures_.erase(it);
      continue;
    }
    if (f.unlogged > 0 && (!next || f.logged + kFailureLogWindow < *next)) {
      next = f.logged + kFailureLogWindow;
    }
    ++it;
  }
  if (failure_timer_ == nullptr || uv_is_closing(reinterpret_cast<uv_handle_t*>(failure_timer_))) {
    return;
  }
  if (!next) {
    uv_timer_stop(failure_timer_);
    return;
  }
  auto due = std::chrono::duration_cast<std::chrono::milliseconds>(*next - now).count();
  uv_timer_start(
      failure_timer_, [](uv_timer_t* t) { static_cast<LuaAsync*>(t->data)->FlushFailures(false); },
      static_cast<uint64_t>(std::max<int64_t>(due, 1)), 0);
}

void LuaAsync::FreeHttp(Http* h) {
  http_.erase(h);
  if (h->sent) {
    if (multi_ != nullptr) curl_multi_remove_handle(multi_, h->easy);
    if (--sending_[h->endpoint] == 0) sending_.erase(h->endpoint);
    --sending_total_;
  } else {
    waiting_.erase(std::remove(waiting_.begin(), waiting_.end(), h), waiting_.end());
  }
  curl_easy_cleanup(h->easy);
  curl_slist_free_all(h->headers);
  delete h;
}

// ---- target ----

Status LuaAsync::StartExec(lua_State* co, std::string sql, std::vector<CursorValue> params) {
  if (target_ == nullptr) {
    return Status(ErrorKind::kScript, "siphon.target:exec: the target is not open yet");
  }
  // While a shutdown waits for the handlers, they may still write (a row recording the run):
  // the target stays open until they end or their time is up.
  if (closed_) return Status(ErrorKind::kScript, "siphon is shutting down");
  std::weak_ptr<bool> alive = alive_;
  const bool confined = !host_.options().unsafe;
  target_->Exec(std::move(sql), std::move(params), confined, [this, alive, co](Result<int64_t> r) {
    if (!alive.lock() || closed_) return;
    if (r.ok()) {
      lua_pushboolean(co, 1);
      lua_pushinteger(co, static_cast<lua_Integer>(*r));
    } else {
      lua_pushboolean(co, 0);
      // The target names the call already ("target:exec: not authorized"): said once.
      std::string m = r.status().message();
      const std::string named = "target:exec: ";
      if (m.rfind(named, 0) == 0) m.erase(0, named.size());
      m = "siphon.target:exec: " + m;
      lua_pushlstring(co, m.data(), m.size());
    }
    host_.Resume(co, 2);
    MaybeFinishShutdown();
  });
  return Status::Ok();
}

Result<sqlite3*> LuaAsync::Reader() {
  if (reader_ != nullptr) return reader_;
  if (target_path_.empty()) {
    return Status(ErrorKind::kScript, "siphon.target:query: the target is not open yet");
  }
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(target_path_.c_str(), &db, SQLITE_OPEN_READONLY, nullptr);
  if (rc != SQLITE_OK) {
    std::string m = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    sqlite3_close_v2(db);
    return Status(ErrorKind::kScript,
                  "siphon.target:query: cannot open " + target_path_ + ": " + m);
  }
  sqlite3_busy_timeout(db, 5000);
  sqlite3_exec(db, "PRAGMA query_only = 1", nullptr, nullptr, nullptr);
  // The sandbox reads files in the script's folder only: no ATTACH of another database.
  if (!host_.options().unsafe) sqlite3_set_authorizer(db, Target::DenyOtherFiles, nullptr);
  reader_ = db;
  return reader_;
}

// ---- shutdown ----

void LuaAsync::Shutdown(std::function<void()> drained, std::chrono::milliseconds timeout) {
  shutting_down_ = true;
  drained_ = std::move(drained);
  // Timers fire no more; those waiting for the loop are dropped.
  for (Timer* t : std::set<Timer*>(timers_)) CloseTimer(t);
  if (loop_ == nullptr) {
    closed_ = true;
    if (auto fn = std::move(drained_)) fn();
    return;
  }
  if (!http_.empty() || host_.pending_tasks() > 0) {
    Logger("lua")->info("waiting for {} callback(s) and {} HTTP request(s) to finish",
                        host_.pending_tasks(), http_.size());
    shutdown_timer_ = new uv_timer_t;
    uv_timer_init(loop_, shutdown_timer_);
    shutdown_timer_->data = this;
    uv_timer_start(
        shutdown_timer_,
        [](uv_timer_t* t) {
          auto* self = static_cast<LuaAsync*>(t->data);
          Logger("lua")->warn(
              "shutdown: abandoning {} callback(s) and {} HTTP request(s) still waiting",
              self->host_.pending_tasks(), self->http_.size());
          self->CloseAll();
        },
        static_cast<uint64_t>(timeout.count()), 0);
    return;
  }
  CloseAll();
}

void LuaAsync::OnTaskDone() {
  MaybeFinishShutdown();
}

void LuaAsync::MaybeFinishShutdown() {
  if (!shutting_down_) return;
  if (!closed_) {
    if (http_.empty() && host_.pending_tasks() == 0) CloseAll();
    return;
  }
  if (closing_ == 0 && drained_) {
    auto fn = std::move(drained_);
    drained_ = nullptr;
    fn();
  }
}

void LuaAsync::CloseAll() {
  if (closed_) return;
  closed_ = true;
  for (Http* h : std::set<Http*>(http_)) FreeHttp(h);
  if (multi_ != nullptr) {
    curl_multi_cleanup(multi_);  // closes the polls through OnSocket
    multi_ = nullptr;
  }
  FlushFailures(true);
  for (uv_timer_t** t : {&curl_timer_, &wait_timer_, &shutdown_timer_, &failure_timer_}) {
    if (*t == nullptr) continue;
    uv_timer_t* timer = *t;
    CloseHandle(reinterpret_cast<uv_handle_t*>(timer), [timer] { delete timer; });
    *t = nullptr;
  }
  MaybeFinishShutdown();
}

}  // namespace siphon

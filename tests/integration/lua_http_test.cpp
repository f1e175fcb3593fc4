// End-to-end: event handlers and timers posting to webhooks as a demanding user does, through
// the real siphon binary, a real PostgreSQL database and a local receiver that never answers.
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <mutex>
#include <thread>

#include "tests/integration/harness/harness.hpp"

namespace siphon::test {
namespace {

/// A loopback HTTP endpoint that accepts every connection and never answers (a webhook that
/// hangs), or answers each request 200 with the request line it got. Counts the connections
/// it holds at once (a client that gives up closes its own) and keeps the request lines.
class HangingEndpoint {
 public:
  explicit HangingEndpoint(bool answer = false) : answer_(answer) {
    fd_ = ListenOnLoopback(4096, &port_);
    if (fd_ >= 0) thread_ = std::thread([this] { Serve(); });
  }
  ~HangingEndpoint() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    if (fd_ >= 0) close(fd_);
    for (int c : open_) close(c);
  }
  std::string Url(const std::string& path = "/hook") const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }
  int accepted() const { return accepted_; }
  int most_at_once() const { return most_at_once_; }
  std::vector<std::string> Requests() {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_;
  }

 private:
  void Serve() {
    while (!stop_) {
      std::vector<pollfd> fds{{fd_, POLLIN, 0}};
      for (int c : open_) fds.push_back({c, POLLIN, 0});
      if (poll(fds.data(), fds.size(), 20) <= 0) continue;
      for (size_t i = 1; i < fds.size(); ++i) {
        if (fds[i].revents == 0) continue;
        char buf[4096];
        ssize_t n = recv(fds[i].fd, buf, sizeof buf, 0);
        if (n > 0) {
          std::string head(buf, static_cast<size_t>(n));
          {
            std::lock_guard<std::mutex> lock(mu_);
            requests_.push_back(head.substr(0, head.find("\r\n")));
          }
          if (!answer_) continue;  // kept unanswered
          const std::string response =
              "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";
          send(fds[i].fd, response.data(), response.size(), MSG_NOSIGNAL);
        }
        close(fds[i].fd);
        open_.erase(std::find(open_.begin(), open_.end(), fds[i].fd));
      }
      if (fds[0].revents != 0) {
        // A client that gave up may have closed its socket after poll looked: its end is read
        // now, before the next one is counted, so it does not count twice for one turn.
        for (auto it = open_.begin(); it != open_.end();) {
          char byte;
          if (recv(*it, &byte, 1, MSG_PEEK | MSG_DONTWAIT) == 0) {
            close(*it);
            it = open_.erase(it);
          } else {
            ++it;
          }
        }
        int c = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (c < 0) continue;
        open_.push_back(c);
        ++accepted_;
        most_at_once_ = std::max<int>(most_at_once_, static_cast<int>(open_.size()));
      }
    }
  }

  const bool answer_;
  int fd_ = -1;
  int port_ = 0;
  std::mutex mu_;
  std::vector<std::string> requests_;
  std::atomic<bool> stop_{false};
  std::atomic<int> accepted_{0};
  std::atomic<int> most_at_once_{0};
  std::thread thread_;
  std::vector<int> open_;
};

int Count(const std::string& text, const std::string& what) {
  int n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

std::string Dump(const ProcessResult& r) {
  return "exit " + std::to_string(r.exit_code) + "\nstdout:\n" + r.out + "\nstderr:\n" + r.err;
}

class LuaHttp : public ::testing::Test {
 protected:
  std::string Script(const std::string& body) {
    std::string path = dir_.File("deploy.lua");
    WriteFile(path,
              "local pg = siphon.postgres { dsn = siphon.env(\"TEST_PG_DSN\") }\n"
              "siphon.target { path = \"" +
                  Replica() + "\" }\n" + body);
    return path;
  }
  std::string Replica() const { return dir_.File("replica.db"); }
  std::map<std::string, std::string> Env(std::map<std::string, std::string> env = {}) {
    env["TEST_PG_DSN"] = db_.Dsn();
    return env;
  }
  Rows Target(const std::string& sql) { return SqliteQuery(Replica(), sql); }

  PgDb db_;
  TempDir dir_;
};

// A burst of events whose handlers post to a webhook that hangs: the requests take turns on a
// few connections instead of opening one socket each (which ran the process out of file
// descriptors, so the source and the target could not open theirs), and every one still
// ends by its timeout, the waiting counted in.
TEST_F(LuaHttp, ABurstOfWebhooksTakesTurnsOnAFewConnections) {
  db_.Exec(
      "CREATE TABLE items (id int PRIMARY KEY, v text);"
      "INSERT INTO items SELECT g, 'v' || g FROM generate_series(1, 300) g");
  HangingEndpoint hook;
  auto start = std::chrono::steady_clock::now();
  ProcessResult r = siphon::test::Run({SIPHON_BIN, "once", Script(R"lua(
siphon.replicate "items" { source = pg, from = "public.items", batch = 1,
  on = { batch = function(ev)
    siphon.log.info("BATCH EVENT")
    local response, err = siphon.http.post { url = siphon.env("HOOK"), json = ev, timeout = "2s" }
    if not response then siphon.log.info("HOOK FAILED: %s", err) end
  end } }
)lua")},
                                      Env({{"HOOK", hook.Url()}}), std::chrono::minutes(2));
  auto secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(r.exit_code, 0) << Dump(r);
  EXPECT_EQ(Target("SELECT count(*) FROM items"), (Rows{{"300"}}));
  EXPECT_LE(hook.most_at_once(), 8) << Dump(r);
  EXPECT_GE(hook.accepted(), 8) << Dump(r);
  // Each request ended by its 2 s timeout (none was left for shutdown to abandon).
  EXPECT_GE(Count(r.err, "BATCH EVENT"), 300) << Dump(r);
  EXPECT_EQ(Count(r.err, "HOOK FAILED: "), Count(r.err, "BATCH EVENT")) << Dump(r);
  // siphon logged the first failure and summed up the others in one line.
  EXPECT_EQ(Count(r.err, "timed out"), Count(r.err, "BATCH EVENT") + 2) << Dump(r);
  EXPECT_EQ(Count(r.err, "more request(s) to " + hook.Url("/…") + " failed in the last"), 1)
      << Dump(r);
  EXPECT_EQ(Count(r.err, "abandoning"), 0) << Dump(r);
  EXPECT_LT(secs, 30.0);
}

// Past 1000 requests held at once (sent or waiting their turn), a request fails at once with
// `nil, message`, and the message says why, instead of every event of a burst holding a
// request, a coroutine and its payload for as long as the endpoint hangs.
TEST_F(LuaHttp, RequestsPastTheLimitFailAtOnceAndSaySo) {
  db_.Exec("CREATE TABLE items (id int PRIMARY KEY); INSERT INTO items VALUES (1)");
  HangingEndpoint hook;
  Process p({SIPHON_BIN, "run", Script(R"lua(
siphon.replicate "items" { source = pg, from = "public.items" }
for i = 1, 1100 do
  siphon.after("10ms", function()
    local response, err = siphon.http.post { url = siphon.env("HOOK"), body = "x", timeout = "3s" }
    if not response then siphon.log.info("HOOK FAILED: %s", err) end
  end)
end
)lua")},
            Env({{"HOOK", hook.Url()}}));
  ASSERT_TRUE(p.WaitForOutput("requests are already waiting", std::chrono::seconds(20)))
      << p.Stderr();
  // Those held end by their timeout.
  ASSERT_TRUE(WaitUntil([&] { return Count(p.Stderr(), "HOOK FAILED: ") >= 1100; },
                        std::chrono::seconds(20)))
      << p.Stderr();
  p.Signal(SIGTERM);
  ProcessResult r = p.Wait(std::chrono::seconds(20));
  EXPECT_EQ(r.exit_code, 0) << Dump(r);
  EXPECT_EQ(Count(r.err, "HOOK FAILED: "), 1100) << Dump(r);
  // The script's line for each; siphon's for the first, and one for the 1,099 after it.
  EXPECT_EQ(Count(r.err, "not sent: 1000 requests are already waiting"), 100 + 1) << Dump(r);
  EXPECT_EQ(Count(r.err, "timed out"), 1000 + 1) << Dump(r);
  EXPECT_EQ(Count(r.err, "1099 more request(s) to " + hook.Url("/…")), 1) << Dump(r);
  EXPECT_LE(hook.most_at_once(), 8);
}

// Requests take turns per host: a host that hangs, with 8 requests sent and more waiting,
// holds back only its own. A request to another host is sent at once (it waited behind the
// hanging host's queue, until their 30 s timeouts freed a turn).
TEST_F(LuaHttp, AHangingHostHoldsBackOnlyItsOwnRequests) {
  db_.Exec("CREATE TABLE items (id int PRIMARY KEY); INSERT INTO items VALUES (1)");
  HangingEndpoint hanging;
  HangingEndpoint answering(/*answer=*/true);
  Process p({SIPHON_BIN, "run", Script(R"lua(
siphon.replicate "items" { source = pg, from = "public.items" }
for i = 1, 20 do
  siphon.after("10ms", function()
    siphon.http.post { url = siphon.env("HANGING"), body = "x", timeout = "30s" }
  end)
end
siphon.after("500ms", function()
  local response, err = siphon.http.post { url = siphon.env("ANSWERING"), body = "x" }
  siphon.log.info("OTHER HOST %s", response and response.status or err)
end)
)lua")},
            Env({{"HANGING", hanging.Url()}, {"ANSWERING", answering.Url()}}));
  EXPECT_TRUE(p.WaitForOutput("OTHER HOST 200", std::chrono::seconds(5))) << p.Stderr();
  EXPECT_EQ(hanging.most_at_once(), 8) << p.Stderr();
  p.Signal(SIGTERM);
  ProcessResult r = p.Wait(std::chrono::seconds(30));
  EXPECT_EQ(r.exit_code, 0) << Dump(r);
}

// A burst of events against a webhook that is down logged one error line per request (2,000
// events, 2,000 lines) beside the script's own. siphon logs the first failure to a host, then
// one line per 10 s for those that follow; the script's handler still gets each
// `nil, message`.
TEST_F(LuaHttp, ABurstOfFailuresIsLoggedOnceAndSummedUp) {
  db_.Exec("CREATE TABLE items (id int PRIMARY KEY); INSERT INTO items VALUES (1)");
  const int port = FreeTcpPort();  // nothing listens: the connection is refused
  const std::string url = "http://127.0.0.1:" + std::to_string(port) + "/hook";
  Process p({SIPHON_BIN, "run", Script(R"lua(
siphon.replicate "items" { source = pg, from = "public.items" }
local function burst()
  for i = 1, 50 do
    siphon.after("10ms", function()
      local response, err = siphon.http.post { url = siphon.env("HOOK"), body = "x" }
      if not response then siphon.log.info("HOOK FAILED: %s", err) end
    end)
  end
end
burst()
siphon.after("12s", burst)
)lua")},
            Env({{"HOOK", url}}));
  const std::string named = "siphon.http: POST http://127.0.0.1:" + std::to_string(port) + "/…";
  const std::string summed = "49 more request(s) to http://127.0.0.1:" + std::to_string(port) +
                             "/… failed in the last 10 s, not logged one by one; the last: ";
  // The window's end sums up the first burst by itself, while siphon runs on.
  ASSERT_TRUE(p.WaitForOutput(summed, std::chrono::seconds(20))) << p.Stderr();
  EXPECT_EQ(Count(p.Stderr(), "HOOK FAILED: "), 50) << p.Stderr();
  EXPECT_EQ(Count(p.Stderr(), named) - Count(p.Stderr(), "HOOK FAILED: " + named), 2) << p.Stderr();
  ASSERT_TRUE(WaitUntil([&] { return Count(p.Stderr(), "HOOK FAILED: ") == 100; },
                        std::chrono::seconds(20)))
      << p.Stderr();
  p.Signal(SIGTERM);
  ProcessResult r = p.Wait(std::chrono::seconds(20));
  EXPECT_EQ(r.exit_code, 0) << Dump(r);
  // The second burst came 2 s into the next window (an outage goes on): its 50 are summed up
  // at the stop, in one more line.
  EXPECT_EQ(Count(r.err, named) - Count(r.err, "HOOK FAILED: " + named), 3) << Dump(r);
  EXPECT_EQ(Count(r.err, "50 more request(s) to"), 1) << Dump(r);
}

// A webhook's URL is a secret (a Slack or Discord hook's path, a token in the query, a
// password before the host): neither the log nor the message handed to the script names more
// than its scheme, host and port.
TEST_F(LuaHttp, WebhookSecretsStayOutOfTheLog) {
  db_.Exec("CREATE TABLE items (id int PRIMARY KEY); INSERT INTO items VALUES (1)");
  const int port = FreeTcpPort();  // nothing listens: the connection is refused
  const std::string url = "http://alice:hunter2@127.0.0.1:" + std::to_string(port) +
                          "/services/T000/B000/pathsecret?token=querysecret";
  ProcessResult r = siphon::test::Run({SIPHON_BIN, "once", Script(R"lua(
siphon.replicate "items" { source = pg, from = "public.items",
  on = { synced = function(ev)
    local response, err = siphon.http.post { url = siphon.env("HOOK"), json = ev,
      headers = { Authorization = "Bearer headersecret" } }
    siphon.log.warn("alert not delivered: %s", err)
  end } }
)lua")},
                                      Env({{"HOOK", url}}), std::chrono::minutes(1));
  EXPECT_EQ(r.exit_code, 0) << Dump(r);
  for (const char* secret : {"hunter2", "alice", "pathsecret", "querysecret", "headersecret"}) {
    EXPECT_EQ(r.err.find(secret), std::string::npos) << secret << "\n" << Dump(r);
  }
  const std::string named = "POST http://127.0.0.1:" + std::to_string(port) + "/… failed";
  EXPECT_EQ(Count(r.err, named), 2) << Dump(r);  // logged, and the script's own line
}

// README: "When `siphon once` ends (or `run` is stopped), handlers and HTTP requests still
// waiting get up to 10 seconds to finish". A handler that posts twice (two webhooks, or a
// retry after a 500) had its second request refused ("siphon is shutting down") as soon as
// `once` ended: the alert was lost.
TEST_F(LuaHttp, AHandlerStillRunningAtTheEndMaySendAgain) {
  db_.Exec("CREATE TABLE items (id int PRIMARY KEY); INSERT INTO items VALUES (1)");
  HangingEndpoint hook(/*answer=*/true);
  ProcessResult r = siphon::test::Run({SIPHON_BIN, "once", Script(R"lua(
siphon.replicate "items" { source = pg, from = "public.items",
  on = { synced = function(ev)
    local first = siphon.http.post { url = siphon.env("HOOK") .. "/first", json = ev }
    local second, err = siphon.http.post { url = siphon.env("HOOK") .. "/second", json = ev }
    siphon.log.info("FIRST %s SECOND %s", first and first.status, second and second.status or err)
  end } }
)lua")},
                                      Env({{"HOOK", hook.Url("")}}), std::chrono::minutes(1));
  EXPECT_EQ(r.exit_code, 0) << Dump(r);
  EXPECT_NE(r.err.find("FIRST 200 SECOND 200"), std::string::npos) << Dump(r);
  EXPECT_EQ(hook.Requests(),
            (std::vector<std::string>{"POST /first HTTP/1.1", "POST /second HTTP/1.1"}))
      << Dump(r);
}

// The same for the target: a `synced` handler that records the run in a table of its own
// (two statements, or a webhook then a row) had its statement refused ("siphon is shutting
// down") as soon as `once` ended, and the row was lost.
TEST_F(LuaHttp, AHandlerStillRunningAtTheEndMayWriteTheTarget) {
  db_.Exec("CREATE TABLE items (id int PRIMARY KEY); INSERT INTO items VALUES (1), (2)");
  HangingEndpoint hook(/*answer=*/true);
  ProcessResult r = siphon::test::Run({SIPHON_BIN, "once", Script(R"lua(
siphon.replicate "items" { source = pg, from = "public.items",
  on = { synced = function(ev)
    siphon.http.post { url = siphon.env("HOOK"), json = ev }
    local ok, err = pcall(function()
      siphon.target:exec("CREATE TABLE IF NOT EXISTS audit (tbl TEXT, rows INTEGER)")
      siphon.target:exec("INSERT INTO audit VALUES (?, ?)", ev.table, ev.rows)
    end)
    siphon.log.info("AUDIT %s", ok and "written" or err)
  end } }
)lua")},
                                      Env({{"HOOK", hook.Url()}}), std::chrono::minutes(1));
  EXPECT_EQ(r.exit_code, 0) << Dump(r);
  EXPECT_NE(r.err.find("AUDIT written"), std::string::npos) << Dump(r);
  EXPECT_EQ(Target("SELECT tbl, rows FROM audit"), (Rows{{"items", "2"}})) << Dump(r);
}

// README: "Only `http` and `https` URLs". A URL without its scheme ("hooks.example.com/…",
// the https:// forgotten) was sent as plain http, the webhook's secret path in clear text.
TEST_F(LuaHttp, AUrlWithoutItsSchemeIsRefused) {
  db_.Exec("CREATE TABLE items (id int PRIMARY KEY); INSERT INTO items VALUES (1)");
  HangingEndpoint hook(/*answer=*/true);
  const std::string bare = hook.Url("/services/pathsecret").substr(std::strlen("http://"));
  ProcessResult r = siphon::test::Run({SIPHON_BIN, "once", Script(R"lua(
siphon.replicate "items" { source = pg, from = "public.items",
  on = { synced = function(ev)
    local response, err = siphon.http.post { url = siphon.env("HOOK"), json = ev }
    siphon.log.info("SENT %s", response and response.status or err)
  end } }
)lua")},
                                      Env({{"HOOK", bare}}), std::chrono::minutes(1));
  EXPECT_EQ(r.exit_code, 0) << Dump(r);
  EXPECT_TRUE(hook.Requests().empty()) << Dump(r);
  EXPECT_EQ(r.err.find("SENT"), std::string::npos) << Dump(r);
  EXPECT_NE(r.err.find("siphon.http.post: field 'url' must begin with http:// or https://"),
            std::string::npos)
      << Dump(r);
  EXPECT_EQ(r.err.find("pathsecret"), std::string::npos) << Dump(r);
}

}  // namespace
}  // namespace siphon::test

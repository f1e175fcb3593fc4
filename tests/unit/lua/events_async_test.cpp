// Events, timers, HTTP, siphon.json and siphon.target:query/exec, driven on a real uv loop
// with a real SQLite target file and a real local HTTP receiver.
#include <chrono>
#include <csignal>
#include <filesystem>
#include <functional>
#include <memory>
#include <sstream>

#include <nlohmann/json.hpp>

#include "runtime/lua/async.hpp"
#include "runtime/lua/lua_ref.hpp"
#include "runtime/target/target.hpp"
#include "tests/unit/lua/http_server.hpp"
#include "tests/unit/lua/lua_test_util.hpp"

namespace siphon::testing {
namespace {

bool Contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

class AsyncTest : public LuaTest {
 protected:
  void SetUp() override {
    LuaTest::SetUp();
    uv_loop_init(&loop_);
  }
  void TearDown() override {
    host_.reset();
    uv_walk(
        &loop_,
        [](uv_handle_t* h, void*) {
          if (!uv_is_closing(h)) uv_close(h, nullptr);
        },
        nullptr);
    uv_run(&loop_, UV_RUN_DEFAULT);
    EXPECT_EQ(uv_loop_close(&loop_), 0);
    LuaTest::TearDown();
  }

  /// Loads `body` after the usual header plus two tables "a" and "b", attaches the loop.
  void Start(const std::string& body, LuaOptions options = {}) {
    host_ = NewHost(options);
    ASSERT_TRUE(host_);
    std::string script = std::string(kHeader) +
                         "siphon.replicate 'a' { source = pg }\n"
                         "siphon.replicate 'b' { source = pg }\n" +
                         body;
    Status s = Load(*host_, script);
    ASSERT_TRUE(s.ok()) << s.message();
    deployment_ = host_->TakeDeployment();
    host_->AttachLoop(&loop_);
  }

  /// Runs the loop until `done` holds or `seconds` pass; false on timeout.
  bool RunUntil(const std::function<bool()>& done, double seconds = 10) {
    auto deadline = std::chrono::steady_clock::now() +
                    std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                        std::chrono::duration<double>(seconds));
    uv_timer_t tick;
    uv_timer_init(&loop_, &tick);
    struct Ctx {
      const std::function<bool()>* done;
      std::chrono::steady_clock::time_point deadline;
      bool ok = false;
    } ctx{&done, deadline};
    tick.data = &ctx;
    uv_timer_start(
        &tick,
        [](uv_timer_t* t) {
          auto* c = static_cast<Ctx*>(t->data);
          if ((*c->done)()) {
            c->ok = true;
            uv_stop(t->loop);
          } else if (std::chrono::steady_clock::now() > c->deadline) {
            uv_stop(t->loop);
          }
        },
        0, 5);
    uv_run(&loop_, UV_RUN_DEFAULT);
    uv_timer_stop(&tick);
    uv_close(reinterpret_cast<uv_handle_t*>(&tick), nullptr);
    uv_run(&loop_, UV_RUN_NOWAIT);
    return ctx.ok || done();
  }

  /// A global of the script as text ("nil" when unset), read raw.
  std::string Global(const std::string& name) {
    lua_State* L = host_->state();
    lua_pushglobaltable(L);
    lua_pushstring(L, name.c_str());
    lua_rawget(L, -2);
    std::string out = lua_isnil(L, -1) ? "nil" : luaL_tolstring(L, -1, nullptr);
    lua_settop(L, 0);
    return out;
  }

  void Emit(EventKind kind, const std::string& table, const std::string& error = "",
            int attempt = 0) {
    Event ev;
    ev.kind = kind;
    ev.table = table;
    ev.source = "postgres 127.0.0.1:5432/shop";
    ev.rows = 42;
    ev.duration_ms = 7;
    ev.attempt = attempt != 0 ? attempt : kind == EventKind::kError ? 2 : 0;
    ev.error = error;
    ev.error_kind = error.empty() ? "" : "connect";
    ev.lag_s = 1.5;
    ev.cursor = "[42]";
    host_->events()->Emit(ev);
  }

  bool Shutdown(std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    bool drained = false;
    host_->Shutdown([&drained] { drained = true; }, timeout);
    return RunUntil([&drained] { return drained; }, 15);
  }

  uv_loop_t loop_;
  std::unique_ptr<LuaHost> host_;
  Deployment deployment_;
};

TEST_F(AsyncTest, ErrorEventPostsJsonToAReceiver) {
  HttpReceiver receiver(&loop_, false);
  Start("HOOK = '" + receiver.url() + R"('
siphon.on("error", function(ev)
  local r, err = siphon.http.post { url = HOOK, json = { table = ev.table, error = ev.error,
    attempt = ev.attempt, kind = ev.error_kind, rows = ev.rows, lag = ev.lag_s } }
  siphon.log.info("hook answered %s", r and r.status or err)  -- a Call on this coroutine
  status, body, xtest, perr = r and r.status, r and r.body, r and r.headers["x-test"], err
end)
)");
  Emit(EventKind::kError, "a", "connection refused");
  ASSERT_TRUE(RunUntil([&] { return Global("status") != "nil"; }));
  ASSERT_EQ(receiver.requests().size(), 1u);
  const ReceivedRequest& r = receiver.requests()[0];
  EXPECT_EQ(r.method, "POST");
  EXPECT_EQ(r.path, "/hook");
  EXPECT_EQ(r.headers.at("content-type"), "application/json");
  auto json = nlohmann::json::parse(r.body);
  EXPECT_EQ(json, nlohmann::json::parse(R"({"table":"a","error":"connection refused",
                                            "attempt":2,"kind":"connect","rows":42,"lag":1.5})"));
  EXPECT_TRUE(json["attempt"].is_number_integer());
  EXPECT_EQ(Global("status"), "200");
  EXPECT_EQ(Global("body"), "ok");
  EXPECT_EQ(Global("xtest"), "yes");
  EXPECT_EQ(host_->pending_tasks(), 0u);
  EXPECT_TRUE(Shutdown());
}

// A header the response sends twice keeps both values, not only the last one.
TEST_F(AsyncTest, RepeatedResponseHeadersKeepEveryValue) {
  HttpReceiver receiver(&loop_, false);
  receiver.SetRawResponse(
      "HTTP/1.1 200 OK\r\nVary: Accept\r\nSet-Cookie: a=1\r\nVary: Origin\r\n"
      "set-cookie: b=2\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
  Start("HOOK = '" + receiver.url() + R"('
siphon.after("1ms", function()
  local r, err = siphon.http.request { method = "GET", url = HOOK }
  vary, cookies, length = r and r.headers.vary or err, r and r.headers["set-cookie"],
    r and r.headers["content-length"]
end)
)");
  ASSERT_TRUE(RunUntil([&] { return Global("vary") != "nil"; }));
  EXPECT_EQ(Global("vary"), "Accept, Origin");
  EXPECT_EQ(Global("cookies"), "a=1, b=2");
  EXPECT_EQ(Global("length"), "2");
  EXPECT_TRUE(Shutdown());
}

// `json = value` takes any JSON value, not only a table.
TEST_F(AsyncTest, HttpJsonTakesAnyValue) {
  HttpReceiver receiver(&loop_, false);
  Start("HOOK = '" + receiver.url() + R"('
siphon.after("1ms", function()
  for _, v in ipairs({ "text", 42, 2.5, true, siphon.null }) do
    assert(siphon.http.post { url = HOOK, json = v })
  end
  local ok, err = pcall(siphon.http.post, { url = HOOK, json = print })
  json_err = err
  done = true
end)
)");
  ASSERT_TRUE(RunUntil([&] { return Global("done") == "true"; }));
  ASSERT_EQ(receiver.requests().size(), 5u);
  std::vector<std::string> bodies;
  for (const auto& r : receiver.requests()) bodies.push_back(r.body);
  EXPECT_EQ(bodies, (std::vector<std::string>{"\"text\"", "42", "2.5", "true", "null"}));
  EXPECT_EQ(receiver.requests()[0].headers.at("content-type"), "application/json");
  EXPECT_TRUE(Contains(Global("json_err"), "field 'json'")) << Global("json_err");
  EXPECT_TRUE(Shutdown());
}

TEST_F(AsyncTest, HangingReceiverDelaysNothingElse) {
  HttpReceiver hang(&loop_, true);
  Start("HOOK = '" + hang.url() + R"('
synced_c = 0
siphon.replicate 'c' { source = pg, on = { synced = function(ev) synced_c = synced_c + 1 end } }
siphon.on("error", function(ev)
  local r, err = siphon.http.post { url = HOOK, json = ev, timeout = "1s" }
  hang_err = err
end)
)");
  auto start = std::chrono::steady_clock::now();
  Emit(EventKind::kError, "a", "boom");
  // The other table's handler runs at once, while the first one waits on the receiver.
  Emit(EventKind::kSynced, "c");
  EXPECT_EQ(Global("synced_c"), "1");
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(200));
  EXPECT_EQ(host_->pending_tasks(), 1u);
  // The loop keeps running (timers fire on time) while the request hangs.
  int ticks = 0;
  uv_timer_t t;
  uv_timer_init(&loop_, &t);
  t.data = &ticks;
  uv_timer_start(
      &t, [](uv_timer_t* h) { ++*static_cast<int*>(h->data); }, 10, 10);
  ASSERT_TRUE(RunUntil([&] { return Global("hang_err") != "nil"; }, 5));
  uv_close(reinterpret_cast<uv_handle_t*>(&t), nullptr);
  EXPECT_GE(ticks, 50);
  EXPECT_TRUE(Contains(Global("hang_err"), "timed out") || Contains(Global("hang_err"), "Timeout"))
      << Global("hang_err");
  EXPECT_EQ(hang.requests().size(), 1u);
  EXPECT_TRUE(Shutdown());
}

TEST_F(AsyncTest, RefusedConnectionIsAnErrorValueNotACrash) {
  // A port that was just free: nothing listens there.
  int port;
  {
    HttpReceiver probe(&loop_, false);
    port = std::stoi(probe.url().substr(17, probe.url().find('/', 17) - 17));
  }
  uv_run(&loop_, UV_RUN_NOWAIT);
  Start("HOOK = 'http://127.0.0.1:" + std::to_string(port) + R"(/x'
siphon.on("error", function(ev)
  local r, err = siphon.http.post { url = HOOK, body = "x" }
  refused = err
  assert(r == nil)
end)
)");
  Emit(EventKind::kError, "a", "boom");
  ASSERT_TRUE(RunUntil([&] { return Global("refused") != "nil"; }));
  EXPECT_TRUE(Contains(Global("refused"), "siphon.http: POST http://127.0.0.1:"))
      << Global("refused");
  EXPECT_TRUE(Contains(Global("refused"), "failed")) << Global("refused");
  EXPECT_TRUE(Shutdown());
}

TEST_F(AsyncTest, RunawayAndFailingHandlersStopNothingElse) {
  Start(R"lua(
siphon.replicate 'c' { source = pg, on = {
  synced = function(ev) while true do end end,
  error = function(ev) local s = string.rep("x", 1e9) end,
} }
seen = ""
siphon.on("synced", function(ev) seen = seen .. ev.table .. ";" end)
siphon.on("recovered", function(ev) error("handler broke") end)
)lua");
  auto start = std::chrono::steady_clock::now();
  Emit(EventKind::kSynced, "c");  // the runaway table handler, then the global one
  Emit(EventKind::kSynced, "a");
  Emit(EventKind::kError, "c", "x");
  Emit(EventKind::kRecovered, "a");
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(20));
  EXPECT_EQ(Global("seen"), "c;a;");
  EXPECT_EQ(host_->pending_tasks(), 0u);
  // The state is usable, and within its cap.
  EXPECT_TRUE(Exec(*host_, "local t = {} for i = 1, 1000 do t[i] = i end", "after").ok());
  EXPECT_LT(host_->memory_used(), size_t{64} << 20);
  EXPECT_TRUE(Shutdown());
}

TEST_F(AsyncTest, AFailingHandlerBecomesAnErrorEvent) {
  auto log = std::make_shared<std::ostringstream>();
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(*log);
  Logger("lua")->sinks().push_back(sink);
  Start(R"lua(
errors = ""
error_calls = 0
siphon.replicate 'd' { source = pg, on = { batch = function(ev) local t = nil; return t.x end } }
siphon.on("synced", function(ev) error("synced broke") end)
siphon.on("error", function(ev)
  error_calls = error_calls + 1
  errors = errors .. (ev.table or "-") .. "|" .. ev.error_kind .. "|" .. ev.error .. "\n"
  if ev.table == "b" or ev.table == nil then error("the error handler fails too") end
end)
siphon.after("1ms", function() error("timer broke") end)
)lua");
  Emit(EventKind::kSynced, "a");
  Emit(EventKind::kBatch, "d");
  ASSERT_TRUE(RunUntil([&] { return Global("error_calls") == "3"; }, 2))
      << Global("error_calls") << " " << Global("errors");
  std::string errors = Global("errors");
  EXPECT_TRUE(Contains(errors, "a|script|'synced' handler")) << errors;
  EXPECT_TRUE(Contains(errors, "synced broke")) << errors;
  EXPECT_TRUE(Contains(errors, "stack traceback")) << errors;
  EXPECT_TRUE(Contains(errors, "d|script|'batch' handler")) << errors;
  EXPECT_TRUE(Contains(errors, "attempt to index a nil value")) << errors;
  EXPECT_TRUE(Contains(errors, "-|script|siphon.after")) << errors;  // no table for a timer
  EXPECT_TRUE(Contains(errors, "timer broke")) << errors;
  // A failing `error` handler is logged only: no event about it, no loop.
  Emit(EventKind::kError, "b", "x");
  EXPECT_EQ(Global("error_calls"), "4");
  EXPECT_EQ(host_->pending_tasks(), 0u);
  EXPECT_TRUE(Shutdown());
  Logger("lua")->sinks().pop_back();
  // The failing handler is named with its table; the timer's error event has none.
  EXPECT_TRUE(Contains(log->str(), "handler (")) << log->str();
  EXPECT_TRUE(Contains(log->str(), "for table \"b\" failed")) << log->str();
  EXPECT_FALSE(Contains(log->str(), "for table \"\"")) << log->str();
}

TEST_F(AsyncTest, HandlerFailuresAreReportedWithTheirCause) {
  Start(R"lua(
siphon.on("synced", function(ev) while true do end end)
siphon.on("error", function(ev) local s = string.rep("x", 1e9) end)
)lua");
  lua_State* L = host_->state();
  lua_pushglobaltable(L);
  lua_pop(L, 1);
  // Spawn reports what the event delivery logs.
  lua_getglobal(L, "siphon");
  lua_getfield(L, -1, "on");
  lua_settop(L, 0);
  luaL_loadstring(L, "while true do end");
  Status s = host_->Spawn(0, "'synced' handler (script.lua:5) for table \"a\"");
  EXPECT_TRUE(Contains(s.message(),
                       "instruction budget exceeded in 'synced' handler "
                       "(script.lua:5) for table \"a\""))
      << s.message();
  luaL_loadstring(L, "local s = string.rep('x', 1e9)");
  s = host_->Spawn(0, "'error' handler");
  EXPECT_TRUE(Contains(s.message(), "memory limit exceeded in 'error' handler")) << s.message();
  // Named by the line that yielded; the handler's name is the caller's to log, not repeated.
  const std::string yields = "local x = 1\ncoroutine.yield()";
  luaL_loadbuffer(L, yields.data(), yields.size(), "@yield.lua");
  s = host_->Spawn(0, "yielder");
  EXPECT_TRUE(Contains(s.message(), "yield.lua:2: coroutine.yield outside")) << s.message();
  EXPECT_FALSE(Contains(s.message(), "yielder")) << s.message();
  EXPECT_EQ(host_->pending_tasks(), 0u);
  EXPECT_TRUE(Shutdown());
}

TEST_F(AsyncTest, HttpOutsideACoroutineIsAClearError) {
  Start("");
  Status s =
      Exec(*host_, "siphon.http.post { url = 'http://127.0.0.1:1/' }", "transform x", "@t.lua");
  ASSERT_FALSE(s.ok());
  EXPECT_TRUE(Contains(s.message(),
                       "t.lua:1: siphon.http.post waits for its result, so it can "
                       "only be called from an event handler"))
      << s.message();
  s = Exec(*host_, "siphon.http.request { url = 'http://x/', bogus = 1 }", "x", "@t.lua");
  EXPECT_TRUE(Contains(s.message(), "unknown field 'bogus'")) << s.message();
  EXPECT_TRUE(Shutdown());
}

TEST_F(AsyncTest, TimersRunAndShutdownReleasesThem) {
  int64_t refs_before = LuaRef::LiveCount();
  Start(R"lua(
ticks, after_ran = 0, false
siphon.after("30ms", function() after_ran = true end)
siphon.every("10ms", function() ticks = ticks + 1 end)
siphon.every(0.01, function() while true do end end)
)lua");
  ASSERT_TRUE(
      RunUntil([&] { return Global("after_ran") == "true" && std::stoi(Global("ticks")) >= 5; }));
  EXPECT_TRUE(Shutdown());
  std::string ticks = Global("ticks");
  RunUntil([] { return false; }, 0.1);
  EXPECT_EQ(Global("ticks"), ticks);  // stopped
  host_.reset();
  EXPECT_EQ(LuaRef::LiveCount(), refs_before);
}

TEST_F(AsyncTest, ShutdownWaitsForHandlersThenAbandonsThem) {
  HttpReceiver hang(&loop_, true);
  Start("HOOK = '" + hang.url() + R"('
siphon.on("error", function(ev) siphon.http.post { url = HOOK, json = ev, timeout = "30s" } end)
)");
  Emit(EventKind::kError, "a", "boom");
  ASSERT_TRUE(RunUntil([&] { return hang.requests().size() == 1; }));
  auto start = std::chrono::steady_clock::now();
  EXPECT_TRUE(Shutdown(std::chrono::milliseconds(300)));
  auto waited = std::chrono::steady_clock::now() - start;
  EXPECT_GE(waited, std::chrono::milliseconds(250));
  EXPECT_LT(waited, std::chrono::seconds(5));
}

TEST_F(AsyncTest, TargetQueryAndExec) {
  std::string path = (dir_ / "replica.db").string();
  Target target(&loop_, path);
  ASSERT_TRUE(target.Open().ok());
  Start(R"lua(
siphon.after("1ms", function()
  siphon.target:exec("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT, score REAL)")
  local n = siphon.target:exec("INSERT INTO customers VALUES (?, ?, ?), (?, ?, ?)",
                               1, "Ann", 1.5, 2, siphon.null, nil)
  changed = n
  local rows = siphon.target:query("SELECT id, name, score FROM customers ORDER BY id")
  got = siphon.json.encode(rows)
  local ok, err = pcall(siphon.target.exec, siphon.target, "INSERT INTO nope VALUES (1)")
  exec_err = err
  ok, err = pcall(function()
    siphon.target:exec("SELEC 1")
  end)
  exec_line_err = err
  -- The sandbox keeps SQL on this file: no other database is attached or written.
  ok, err = pcall(siphon.target.exec, siphon.target, "VACUUM INTO ?", OUTSIDE)
  vacuum_err = err
  ok, err = pcall(siphon.target.exec, siphon.target, "ATTACH ? AS o; CREATE TABLE o.t (a)",
                  OUTSIDE)
  attach_err = err
  ok, err = pcall(siphon.target.query, siphon.target, "ATTACH ? AS o", OUTSIDE)
  query_err = err
  siphon.target:exec("VACUUM")  -- a temporary database of its own: allowed
  siphon.target:exec("INSERT INTO customers VALUES (3, 'after', 0)")
  after = siphon.target:query("SELECT count(*) AS n FROM customers")[1].n
  done = true
end)
)lua");
  const std::string outside = (dir_ / "outside.db").string();
  ASSERT_EQ(luaL_dostring(host_->state(), ("OUTSIDE = '" + outside + "'").c_str()), LUA_OK);
  host_->AttachTarget(&target, path);
  ASSERT_TRUE(RunUntil([&] { return Global("done") == "true"; }));
  for (const char* name : {"vacuum_err", "attach_err", "query_err"}) {
    EXPECT_TRUE(Contains(Global(name), "authori")) << name << ": " << Global(name);
  }
  EXPECT_FALSE(std::filesystem::exists(outside));
  EXPECT_EQ(Global("changed"), "2");
  EXPECT_EQ(nlohmann::json::parse(Global("got")),
            nlohmann::json::parse(R"([{"id":1,"name":"Ann","score":1.5},{"id":2}])"));
  EXPECT_EQ(Global("after"), "3") << "exec works again after a refused statement";
  EXPECT_TRUE(Contains(Global("exec_err"), "siphon.target:exec:")) << Global("exec_err");
  EXPECT_TRUE(Contains(Global("exec_err"), "no such table: nope")) << Global("exec_err");
  // An SQL error names the line of the call, like every other error a binding raises.
  EXPECT_EQ(Global("exec_line_err"), ScriptPath() +
                                         ":16: siphon.target:exec: near \"SELEC\": syntax error "
                                         "(SQL logic error)");
  for (const char* name : {"exec_err", "vacuum_err", "attach_err"}) {
    EXPECT_FALSE(Contains(Global(name), "target:exec: target:exec"))
        << name << ": " << Global(name);
  }

  // A transform reads replicated rows synchronously (enrichment); writes are refused there.
  Status s = Exec(*host_, R"lua(
local rows = siphon.target:query("SELECT name FROM customers WHERE id = ?", 1)
assert(rows[1].name == "Ann", "enrichment")
local ok, err = pcall(siphon.target.query, siphon.target, "DELETE FROM customers")
assert(not ok and err:find("readonly"), err)
)lua",
                  "transform x");
  EXPECT_TRUE(s.ok()) << s.message();
  s = Exec(*host_, "siphon.target:exec('DELETE FROM customers')", "transform x", "@t.lua");
  EXPECT_TRUE(Contains(s.message(), "t.lua:1: siphon.target:exec waits for its result"))
      << s.message();
  EXPECT_TRUE(Shutdown());
}

// What siphon builds for a script (query rows, a response body) counts against the memory cap
// too: a huge result is an error in the callback, not memory without bound.
TEST_F(AsyncTest, QueryResultsAndResponseBodiesAreBoundedByTheMemoryCap) {
  std::string path = (dir_ / "replica.db").string();
  Target target(&loop_, path);
  ASSERT_TRUE(target.Open().ok());
  HttpReceiver big(&loop_, false);
  big.SetBody(std::string(20 << 20, 'x'));
  // curl drops the response half way: the receiver's write then meets a closed socket.
  signal(SIGPIPE, SIG_IGN);
  LuaOptions options;
  options.memory_limit = size_t{16} << 20;
  Start("HOOK = '" + big.url() + R"lua('
siphon.after("1ms", function()
  siphon.target:exec([[CREATE TABLE big (id INTEGER PRIMARY KEY, v TEXT);
    WITH RECURSIVE g(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM g WHERE x < 300000)
    INSERT INTO big SELECT x, printf('%060d', x) FROM g]])
  local ok, err = pcall(siphon.target.query, siphon.target, "SELECT * FROM big")
  query_err = err
  few = #siphon.target:query("SELECT * FROM big LIMIT 1000")
  local res, herr = siphon.http.request { url = HOOK }
  http_err = herr
  done = true
end)
)lua",
        options);
  host_->AttachTarget(&target, path);
  ASSERT_TRUE(RunUntil([&] { return Global("done") == "true"; }, 30));
  EXPECT_TRUE(Contains(Global("query_err"), "the result passed the Lua memory cap (16 MiB)"))
      << Global("query_err");
  EXPECT_EQ(Global("few"), "1000");
  EXPECT_TRUE(
      Contains(Global("http_err"), "the response body is larger than the Lua memory cap (16 MiB)"))
      << Global("http_err");
  EXPECT_LT(host_->memory_used(), size_t{32} << 20);
  EXPECT_TRUE(Shutdown());
}

// siphon.json builds its results outside the script's code: a decoded document or an
// encoded text too big for the memory cap is an error, not memory without bound.
TEST_F(AsyncTest, JsonResultsAreBoundedByTheMemoryCap) {
  LuaOptions options;
  options.memory_limit = size_t{16} << 20;
  Start("", options);
  Status s = Exec(*host_, R"lua(
local ok, err = pcall(siphon.json.decode, "[" .. string.rep("1", 2e6, ",") .. "]")
assert(not ok and err:find("the decoded value passed the Lua memory cap %(16 MiB%) after"), err)
-- Few values, long strings: each decoded copy of the 5 MB text takes 5 MB.
local text = "[" .. string.rep('"' .. string.rep("x", 1e5) .. '"', 50, ",") .. "]"
local kept = {}
ok, err = pcall(function() for i = 1, 4 do kept[i] = siphon.json.decode(text) end end)
assert(not ok and err:find("passed the Lua memory cap %(16 MiB%) after"), err)
text, kept = nil, nil
collectgarbage()
local big = string.rep("x", 6e6)
ok, err = pcall(siphon.json.encode, {big, big, big})
assert(not ok and err:find("would pass the Lua memory cap %(16 MiB%)"), err)
big = nil
collectgarbage()
local v = siphon.json.decode("[" .. string.rep("1,", 1e5) .. "1]")
assert(#v == 100001 and v[100001] == 1)
assert(#siphon.json.encode(v) == 200003)
)lua",
                  "json", "@j.lua");
  EXPECT_TRUE(s.ok()) << s.message();
  EXPECT_LT(host_->memory_used(), size_t{16} << 20);
  EXPECT_TRUE(Shutdown());
}

// siphon.status() returns what the running deployment reports (a fresh table each call); while
// the script loads nothing runs yet, and it says so.
TEST_F(AsyncTest, StatusAnswersFromTheRunningDeployment) {
  Start(R"lua(
local ok, err = pcall(siphon.status)
load_err = err
siphon.after("1ms", function()
  local s = siphon.status()
  local t = s.tables[1]
  got = string.format("%s %s %s %d %s", s.version, t.name, t.state, #s.tables,
                      tostring(t.last_error == siphon.null))
  s.tables[1].name = "changed"
  again = siphon.status().tables[1].name
  done = true
end)
)lua");
  int calls = 0;
  host_->SetStatusProvider([&calls] {
    ++calls;
    return std::string(R"({"version": "9.9", "tables": [{"name": "a", "state": "idle",)"
                       R"( "last_error": null}, {"name": "b", "state": "running"}]})");
  });
  ASSERT_TRUE(RunUntil([&] { return Global("done") == "true"; }));
  EXPECT_TRUE(Contains(Global("load_err"), "not while the script is loading"))
      << Global("load_err");
  EXPECT_EQ(Global("got"), "9.9 a idle 2 true");
  EXPECT_EQ(Global("again"), "a");
  EXPECT_EQ(calls, 2);
  host_->SetStatusProvider(nullptr);
  EXPECT_TRUE(Shutdown());
}

TEST_F(AsyncTest, JsonRoundTrip) {
  Start("");
  Status s = Exec(*host_, R"lua(
local j = siphon.json
assert(j.encode({1, 2.5, "x", true, siphon.null}) == '[1,2.5,"x",true,null]', j.encode({1, 2.5}))
assert(j.encode({a = 1}) == '{"a":1}')
assert(j.encode(3.0) == "3.0")
assert(j.encode({}) == "{}")
local v = j.decode('{"i": 1, "f": 1.0, "n": null, "s": "\\u00e9\\u2603", "a": [1, null, 3], "big": 18446744073709551615}')
assert(math.type(v.i) == "integer" and math.type(v.f) == "float")
assert(v.n == siphon.null and tostring(siphon.null) == "siphon.null")
assert(v.s == "é☃")
assert(#v.a == 3 and v.a[2] == siphon.null)
assert(math.type(v.big) == "float")
local ok, err = pcall(j.encode, "\xff\xfe")
assert(not ok and err:find("not valid UTF%-8"), err)
ok, err = pcall(j.decode, '{"a": ')
assert(not ok and err:find("siphon.json.decode"), err)
ok, err = pcall(j.decode, '"\xff"')
assert(not ok, "invalid UTF-8 in decode")
local t = {} t.self = t
ok, err = pcall(j.encode, t)
assert(not ok and err:find("nested deeper"), err)
ok, err = pcall(j.decode, string.rep("[", 100000) .. string.rep("]", 100000))
assert(not ok and err:find("deeper than 100"), err)
ok, err = pcall(j.encode, {f = print})
assert(not ok and err:find("function"), err)
)lua",
                  "json", "@j.lua");
  EXPECT_TRUE(s.ok()) << s.message();
  EXPECT_TRUE(Shutdown());
}

TEST_F(AsyncTest, ShippedExamplesLoadAndRun) {
  HttpReceiver receiver(&loop_, false);
  setenv("PG_DSN", "postgresql://repl@127.0.0.1:5432/shop", 1);
  setenv("SLACK_WEBHOOK_URL", receiver.url("/slack").c_str(), 1);
  // transforms.lua declares its tables; its transforms run on rows.
  {
    auto host = NewHost();
    Status s = host->LoadScript(std::string(SIPHON_SOURCE_DIR) + "/examples/transforms.lua");
    ASSERT_TRUE(s.ok()) << s.message();
    Deployment d = host->TakeDeployment();
    bool any = false;
    for (const auto& t : d.tables) any = any || t.transform != nullptr;
    EXPECT_TRUE(any);
  }
  host_ = NewHost();
  Status s = host_->LoadScript(std::string(SIPHON_SOURCE_DIR) + "/examples/alerts.lua");
  ASSERT_TRUE(s.ok()) << s.message();
  deployment_ = host_->TakeDeployment();
  host_->AttachLoop(&loop_);
  Emit(EventKind::kError, "orders", "query: relation \"orders\" does not exist\nstack", 1);
  Emit(EventKind::kError, "orders", "the same outage, attempt 2", 2);  // no second alert
  Emit(EventKind::kLagging, "orders");
  Emit(EventKind::kError, "", "siphon.every callback failed: boom", 1);  // a timer's: no table
  ASSERT_TRUE(
      RunUntil([&] { return receiver.requests().size() == 3 && host_->pending_tasks() == 0; }));
  RunUntil([] { return false; }, 0.3);  // a fourth request would arrive by now
  ASSERT_EQ(receiver.requests().size(), 3u);
  auto third = nlohmann::json::parse(receiver.requests()[2].body);
  EXPECT_EQ(third["text"], "siphon: a script callback failed: siphon.every callback failed: boom");
  EXPECT_EQ(third["blocks"][1]["fields"][0]["text"], "*Event*\nerror");
  auto first = nlohmann::json::parse(receiver.requests()[0].body);
  EXPECT_EQ(first["text"],
            "siphon: table orders failed (attempt 1): query: relation \"orders\" does not "
            "exist\nstack");
  EXPECT_EQ(first["blocks"].size(), 3u);
  auto second = nlohmann::json::parse(receiver.requests()[1].body);
  EXPECT_EQ(second["text"], "siphon: table orders has not synced for 1s");
  EXPECT_TRUE(Shutdown());
}

}  // namespace
}  // namespace siphon::testing

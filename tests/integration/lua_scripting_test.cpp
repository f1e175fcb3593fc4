// End-to-end: transforms, events, alerts over HTTP and the sandbox, through the real siphon
// binary, a real PostgreSQL database and a real local HTTP receiver (issue 4's "must hold").
#include <arpa/inet.h>
#include <curl/curl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <mutex>
#include <thread>

#include "tests/integration/harness/harness.hpp"

namespace siphon::test {
namespace {

/// A local HTTP/1.1 receiver on its own thread: records request bodies and answers 200, or
/// never answers (hang).
class Receiver {
 public:
  explicit Receiver(bool hang) : hang_(hang) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    listen(fd_, 16);
    socklen_t len = sizeof addr;
    getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { Serve(); });
  }
  ~Receiver() {
    stop_ = true;
    shutdown(fd_, SHUT_RDWR);
    close(fd_);
    thread_.join();
    for (int c : open_) close(c);
  }
  std::string Url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/hook"; }
  std::vector<std::string> Bodies() {
    std::lock_guard<std::mutex> lock(mu_);
    return bodies_;
  }

 private:
  void Serve() {
    while (!stop_) {
      int c = accept(fd_, nullptr, nullptr);
      if (c < 0) return;
      std::string data;
      char buf[4096];
      size_t need = std::string::npos;
      while (true) {
        ssize_t n = recv(c, buf, sizeof buf, 0);
        if (n <= 0) break;
        data.append(buf, static_cast<size_t>(n));
        size_t end = data.find("\r\n\r\n");
        if (end == std::string::npos) continue;
        if (need == std::string::npos) {
          size_t cl = data.find("Content-Length: ");
          size_t length = cl == std::string::npos ? 0 : std::stoul(data.substr(cl + 16));
          need = end + 4 + length;
        }
        if (data.size() >= need) break;
      }
      size_t end = data.find("\r\n\r\n");
      {
        std::lock_guard<std::mutex> lock(mu_);
        bodies_.push_back(end == std::string::npos ? "" : data.substr(end + 4));
      }
      if (hang_) {
        open_.push_back(c);
        continue;
      }
      const std::string response =
          "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";
      send(c, response.data(), response.size(), MSG_NOSIGNAL);
      close(c);
    }
  }

  bool hang_;
  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::mutex mu_;
  std::vector<std::string> bodies_;
  std::vector<int> open_;
};

class LuaScripting : public ::testing::Test {
 protected:
  void SetUp() override {
    db_.Exec(R"sql(
      CREATE TABLE users (id int PRIMARY KEY, email text, updated_at timestamptz NOT NULL
                          DEFAULT '2024-01-01T00:00:00Z');
      INSERT INTO users (id, email) VALUES (1, 'Ann@X.org'), (2, 'BOB@x.org'),
        (3, 'test@x.org'), (4, 'boom@x.org'), (5, 'Cy@X.org');
      CREATE TABLE other (id int PRIMARY KEY, v text);
      INSERT INTO other VALUES (1, 'a'), (2, 'b'), (3, 'c');)sql");
  }
  std::string Script(const std::string& body) {
    std::string path = dir_.File("deploy.lua");
    WriteFile(path,
              "local pg = siphon.postgres { dsn = siphon.env(\"TEST_PG_DSN\") }\n"
              "siphon.target { path = \"" +
                  Replica() + "\" }\n" + body);
    return path;
  }
  std::string Replica() const { return dir_.File("replica.db"); }
  ProcessResult Siphon(const std::vector<std::string>& args,
                       std::map<std::string, std::string> env = {}) {
    std::vector<std::string> argv = {SIPHON_BIN};
    argv.insert(argv.end(), args.begin(), args.end());
    env["TEST_PG_DSN"] = db_.Dsn();
    return siphon::test::Run(argv, env, std::chrono::minutes(2));
  }
  Rows Target(const std::string& sql) { return SqliteQuery(Replica(), sql); }

  PgDb db_;
  TempDir dir_;
};

int Count(const std::string& text, const std::string& what) {
  int n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

std::string Dump(const ProcessResult& r) {
  return "exit " + std::to_string(r.exit_code) + "\nstdout:\n" + r.out + "\nstderr:\n" + r.err;
}

std::string Transform(const std::string& policy) {
  return R"lua(
siphon.replicate "users" {
  source = pg, from = "public.users", cursor = "updated_at",
  on_row_error = ")lua" +
         policy + R"lua(",
  transform = function(row)
    if row.email:find("^test@") then return nil end
    if row.email:find("^boom") then error("cannot handle " .. row.email) end
    row.email = row.email:lower()
    return row
  end,
}
)lua";
}

TEST_F(LuaScripting, TransformLowercasesDropsAndRejects) {
  auto r = Siphon({"once", Script(Transform("reject"))});
  ASSERT_EQ(r.exit_code, 0) << Dump(r);
  EXPECT_EQ(Target("SELECT id, email FROM users ORDER BY id"),
            (Rows{{"1", "ann@x.org"}, {"2", "bob@x.org"}, {"5", "cy@x.org"}}));
  Rows rejects = Target("SELECT table_name, row_json, error FROM _siphon_rejects");
  ASSERT_EQ(rejects.size(), 1u);
  EXPECT_EQ(*rejects[0][0], "users");
  EXPECT_NE(rejects[0][1]->find("\"email\":\"boom@x.org\""), std::string::npos) << *rejects[0][1];
  EXPECT_NE(rejects[0][1]->find("\"id\":4"), std::string::npos) << *rejects[0][1];
  EXPECT_NE(rejects[0][2]->find("deploy.lua:9: cannot handle boom@x.org"), std::string::npos)
      << *rejects[0][2];
  EXPECT_NE(rejects[0][2]->find("stack traceback"), std::string::npos);
  // The cursor moved past every pulled row, dropped and rejected ones included.
  EXPECT_NE(Target("SELECT cursor FROM _siphon_state WHERE table_name = 'users'")[0][0],
            std::nullopt);
}

TEST_F(LuaScripting, FailPolicyFailsTheRunAndKeepsTheCursor) {
  auto r = Siphon({"once", Script(Transform("fail"))});
  EXPECT_EQ(r.exit_code, 1) << Dump(r);
  EXPECT_NE(r.err.find("transform of table \"users\" failed on row"), std::string::npos) << Dump(r);
  EXPECT_EQ(Target("SELECT count(*) FROM users"), (Rows{{"0"}}));
  EXPECT_EQ(Target("SELECT cursor FROM _siphon_state WHERE table_name = 'users'"),
            (Rows{{std::nullopt}}));
  EXPECT_EQ(Target("SELECT count(*) FROM _siphon_rejects"), (Rows{{"0"}}));
}

// The next page is pulled while a page is transformed: when the transform fails on page 6,
// no page after it may be written. What is written is whole pages from the start (pages still
// waiting for the writer when the run fails are dropped too), and the cursor is their end.
TEST_F(LuaScripting, AFailingTransformMidSyncWritesNoPageAfterIt) {
  db_.Exec(
      "CREATE TABLE many (id int PRIMARY KEY, v text); "
      "INSERT INTO many SELECT g, 'v' || g FROM generate_series(1, 2000) g");
  auto r = Siphon({"once", Script(R"lua(
siphon.replicate "many" { source = pg, from = "public.many", cursor = "id", batch = 100,
  on_row_error = "fail",
  transform = function(row)
    if row.id == 550 then error("no 550") end
    return row
  end }
)lua")});
  EXPECT_EQ(r.exit_code, 1) << Dump(r);
  EXPECT_NE(r.err.find("no 550"), std::string::npos) << Dump(r);
  Rows written =
      Target("SELECT count(*), coalesce(max(id), 0), count(*) = coalesce(max(id), 0) FROM many");
  ASSERT_EQ(written.size(), 1u);
  const int n = std::stoi(*written[0][0]);
  EXPECT_EQ(written[0][2], "1") << "rows missing below the highest written id";
  // Pages of 100 after a first page of 8 (a table's first after start-up): 550 is in 509-608.
  EXPECT_LE(n, 508);
  EXPECT_TRUE(n == 0 || (n - 8) % 100 == 0) << "a partial page was written: " << n;
  EXPECT_EQ(
      Target("SELECT cursor FROM _siphon_state WHERE table_name = 'many'"),
      (Rows{{n == 0 ? std::nullopt : std::optional<std::string>("[" + std::to_string(n) + "]")}}));
}

TEST_F(LuaScripting, RunawayTransformIsStoppedAndOtherTablesSync) {
  auto r = Siphon({"once", Script(R"lua(
siphon.replicate "users" { source = pg, from = "public.users",
  transform = function(row) while true do end end }
siphon.replicate "other" { source = pg, from = "public.other" }
)lua")});
  EXPECT_EQ(r.exit_code, 1) << Dump(r);
  EXPECT_NE(r.err.find("instruction budget exceeded in transform of table \"users\""),
            std::string::npos)
      << Dump(r);
  EXPECT_EQ(Target("SELECT count(*) FROM other"), (Rows{{"3"}}));
}

TEST_F(LuaScripting, ErrorEventPostsJsonAndAHangingReceiverDelaysNothing) {
  Receiver ok(false);
  Receiver hang(true);
  auto start = std::chrono::steady_clock::now();
  auto r = Siphon({"once", Script(R"lua(
siphon.replicate "missing" { source = pg, from = "public.nope",
  on = { error = function(ev)
    siphon.http.post { url = siphon.env("HANG"), json = ev, timeout = "60s" }
  end } }
siphon.replicate "other" { source = pg, from = "public.other" }
siphon.on("error", function(ev)
  local r, err = siphon.http.post { url = siphon.env("HOOK"),
    json = { table = ev.table, error = ev.error, kind = ev.error_kind } }
  siphon.log.info("hook answered %s", r and r.status or err)
end)
)lua")},
                  {{"HOOK", ok.Url()}, {"HANG", hang.Url()}});
  auto secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(r.exit_code, 2) << Dump(r);  // a `from` the source does not have
  EXPECT_LT(secs, 40.0);  // the hanging post is abandoned at shutdown, not waited for 60s
  EXPECT_EQ(Target("SELECT count(*) FROM other"), (Rows{{"3"}}));
  ASSERT_FALSE(ok.Bodies().empty()) << Dump(r);
  std::string body = ok.Bodies()[0];
  EXPECT_NE(body.find("\"table\":\"missing\""), std::string::npos) << body;
  EXPECT_NE(body.find("public.nope"), std::string::npos) << body;
  EXPECT_NE(r.err.find("hook answered 200"), std::string::npos) << Dump(r);
  EXPECT_FALSE(hang.Bodies().empty());
}

// A callback reads the deployment's state with siphon.status(): the table that synced, the
// one that failed with its error.
TEST_F(LuaScripting, StatusShowsEachTableToACallback) {
  auto r = Siphon({"once", Script(R"lua(
siphon.replicate "missing" { source = pg, from = "public.nope" }
siphon.replicate "other" { source = pg, from = "public.other" }
siphon.on("synced", function(ev)
  for _, t in ipairs(siphon.status().tables) do
    if t.name == "other" then
      siphon.log.info("status of other: %s rows, from %s, last error %s", t.rows_written, t.from,
                      tostring(t.last_error))
    end
  end
end)
siphon.on("error", function(ev)
  for _, t in ipairs(siphon.status().tables) do
    if t.name == "missing" then siphon.log.info("status of missing: %s", t.last_error_kind) end
  end
end)
)lua")});
  EXPECT_EQ(r.exit_code, 2) << Dump(r);  // a `from` the source does not have
  EXPECT_NE(r.err.find("status of other: 3 rows, from public.other, last error siphon.null"),
            std::string::npos)
      << Dump(r);
  EXPECT_NE(r.err.find("status of missing: config"), std::string::npos) << Dump(r);
}

// `batch` tells each page: its rows and its write time (rows was the run's running total).
TEST_F(LuaScripting, ABatchEventCountsItsPage) {
  auto r = Siphon({"once", Script(R"lua(
siphon.replicate "users" { source = pg, from = "public.users", batch = 2,
  on = { batch = function(ev)
    siphon.log.info("batch of %d rows, write %s", ev.rows,
                    math.type(ev.duration_ms) == "integer" and "timed" or "?")
  end } }
)lua")});
  ASSERT_EQ(r.exit_code, 0) << Dump(r);
  EXPECT_EQ(Count(r.err, "batch of 2 rows, write timed"), 2) << Dump(r);
  EXPECT_EQ(Count(r.err, "batch of 1 rows, write timed"), 1) << Dump(r);
  EXPECT_EQ(Count(r.err, "batch of 4 rows"), 0) << Dump(r);
}

TEST_F(LuaScripting, RefusedConnectionIsLoggedNotACrash) {
  int port;
  {
    Receiver probe(false);
    port = std::stoi(probe.Url().substr(17));
  }
  auto r = Siphon({"once", Script(R"lua(
siphon.replicate "missing" { source = pg, from = "public.nope" }
siphon.on("error", function(ev)
  siphon.http.post { url = siphon.env("HOOK"), json = ev }
end)
)lua")},
                  {{"HOOK", "http://127.0.0.1:" + std::to_string(port) + "/x"}});
  EXPECT_EQ(r.exit_code, 2) << Dump(r);  // a `from` the source does not have
  EXPECT_EQ(r.term_signal, 0);
  EXPECT_NE(r.err.find("siphon.http: POST http://127.0.0.1:"), std::string::npos) << Dump(r);
}

TEST_F(LuaScripting, RunawayAndHungryHandlersAreStopped) {
  auto r = Siphon({"once", Script(R"lua(
siphon.replicate "other" { source = pg, from = "public.other" }
siphon.on("sync_start", function(ev) while true do end end)
siphon.on("synced", function(ev) local s = string.rep("x", 1e9) end)
)lua")});
  EXPECT_EQ(r.exit_code, 0) << Dump(r);
  EXPECT_NE(r.err.find("instruction budget exceeded in 'sync_start' handler"), std::string::npos)
      << Dump(r);
  EXPECT_NE(r.err.find("memory limit exceeded in 'synced' handler"), std::string::npos) << Dump(r);
  EXPECT_EQ(Target("SELECT count(*) FROM other"), (Rows{{"3"}}));
}

TEST_F(LuaScripting, OsExecuteIsRefusedUnlessUnsafe) {
  std::string script = Script(R"lua(
os.execute("true")
siphon.replicate "other" { source = pg, from = "public.other" }
)lua");
  auto r = Siphon({"check", script});
  EXPECT_EQ(r.exit_code, 2) << Dump(r);
  EXPECT_NE(r.err.find("deploy.lua:4: os.execute is not available in the siphon sandbox (run "
                       "with --unsafe-lua to allow it)"),
            std::string::npos)
      << Dump(r);
  r = Siphon({"once", "--unsafe-lua", script});
  EXPECT_EQ(r.exit_code, 0) << Dump(r);
}

TEST_F(LuaScripting, ShippedExamplesRun) {
  db_.Exec(R"sql(
    CREATE TABLE customers (id int PRIMARY KEY, name text, email text, phone text,
                            updated_at timestamptz NOT NULL DEFAULT now());
    INSERT INTO customers (id, name, email, phone) VALUES
      (1, 'Ann Smith', 'Ann.Smith@Example.org', '555-1'), (2, 'Test', 'x@test.example', NULL);
    CREATE TABLE orders (id int PRIMARY KEY, tags text,
                         updated_at timestamptz NOT NULL DEFAULT now());
    INSERT INTO orders (id, tags) VALUES (7, 'Gift, rush'), (8, NULL);)sql");
  Receiver hook(false);
  std::map<std::string, std::string> env = {
      {"PG_DSN", db_.Dsn()}, {"REPLICA", Replica()}, {"SLACK_WEBHOOK_URL", hook.Url()}};
  auto r = Siphon({"once", std::string(SIPHON_SOURCE_DIR) + "/examples/transforms.lua"}, env);
  ASSERT_EQ(r.exit_code, 0) << Dump(r);
  EXPECT_EQ(Target("SELECT id, display_name, email, email_domain FROM customers"),
            (Rows{{"1", "Ann Smith", "A***@example.org", "Example.org"}}));
  EXPECT_EQ(Target("SELECT id, order_id, tag FROM order_tags ORDER BY id"),
            (Rows{{"7001", "7", "gift"}, {"7002", "7", "rush"}}));
  // alerts.lua replicates public.orders and posts nothing while all is well.
  r = Siphon({"once", std::string(SIPHON_SOURCE_DIR) + "/examples/alerts.lua"}, env);
  EXPECT_EQ(r.exit_code, 0) << Dump(r);
  db_.Exec("DROP TABLE orders");
  r = Siphon({"once", std::string(SIPHON_SOURCE_DIR) + "/examples/alerts.lua"}, env);
  EXPECT_EQ(r.exit_code, 2) << Dump(r);  // a `from` the source does not have
  ASSERT_FALSE(hook.Bodies().empty()) << Dump(r);
  EXPECT_NE(hook.Bodies()[0].find("siphon: table orders failed"), std::string::npos)
      << hook.Bodies()[0];
}

// transforms.lua's fan-out on the demo shop, whose orders.tags is a text[] (JSON text in the
// replica): it split '["gift","express"]' at the comma and wrote the tags '["gift"' and
// '"express"]', 14,284 of them.
TEST_F(LuaScripting, TheTransformsExampleSplitsTheDemoShopsTagArrays) {
  db_.Exec(ReadFile(std::string(SIPHON_SOURCE_DIR) + "/examples/demo/shop.sql"));
  db_.Exec(R"sql(
    CREATE TABLE customers (id int PRIMARY KEY, name text, email text, phone text,
                            updated_at timestamptz NOT NULL DEFAULT now());
    INSERT INTO customers (id, name, email) VALUES (1, 'Ann Smith', 'ann@example.org');)sql");
  std::map<std::string, std::string> env = {{"PG_DSN", db_.Dsn()}, {"REPLICA", Replica()}};
  auto r = Siphon({"once", std::string(SIPHON_SOURCE_DIR) + "/examples/transforms.lua"}, env);
  ASSERT_EQ(r.exit_code, 0) << Dump(r);
  EXPECT_EQ(Target("SELECT count(*) FROM order_tags WHERE tag GLOB '*[^a-z]*'"), (Rows{{"0"}}));
  EXPECT_EQ(Target("SELECT group_concat(tag) FROM (SELECT tag FROM order_tags WHERE order_id = 7 "
                   "ORDER BY id)"),
            (Rows{{"gift,express"}}));
  EXPECT_EQ(Target("SELECT count(*) FROM _siphon_rejects"), (Rows{{"0"}}));
}

// The getting-started path of the README and scripts/demo.sh, on the demo's own data: the
// quickstart replicates the shop, then pulls only what changed; deletes.lua follows a soft
// delete and a resync.
TEST_F(LuaScripting, TheQuickstartAndDeletesExamplesReplicateTheDemoShop) {
  db_.Exec(ReadFile(std::string(SIPHON_SOURCE_DIR) + "/examples/demo/shop.sql"));
  std::map<std::string, std::string> env = {{"PG_DSN", db_.Dsn()}, {"REPLICA", Replica()}};
  const std::string quickstart = std::string(SIPHON_SOURCE_DIR) + "/examples/quickstart.lua";
  auto r = Siphon({"check", quickstart}, env);
  ASSERT_EQ(r.exit_code, 0) << Dump(r);
  EXPECT_NE(r.out.find("ok: 4 table(s)"), std::string::npos) << Dump(r);
  r = Siphon({"once", quickstart}, env);
  ASSERT_EQ(r.exit_code, 0) << Dump(r);
  EXPECT_EQ(Target("SELECT (SELECT count(*) FROM orders), (SELECT count(*) FROM order_events), "
                   "(SELECT count(*) FROM products), (SELECT count(*) FROM paid_orders)"),
            (Rows{{"50000", "20000", "50", "16667"}}));
  // scripts/demo.sh's change: 3 orders paid, 2 new, 3 events.
  db_.Exec(R"sql(
    UPDATE orders SET status = 'paid', updated_at = clock_timestamp() WHERE id IN (3, 6, 9);
    INSERT INTO orders (id, customer, status, amount, items) VALUES
      (50001, 'ada@example.com', 'new', 19.99, '{"sku": "SKU-1", "qty": 1}'),
      (50002, 'alan@example.com', 'new', 5.00, '{"sku": "SKU-2", "qty": 2}');
    INSERT INTO order_events (order_id, event) VALUES (3, 'paid'), (6, 'paid'), (9, 'paid');)sql");
  r = Siphon({"once", quickstart}, env);
  ASSERT_EQ(r.exit_code, 0) << Dump(r);
  // orders also re-reads its last 5 s (lookback): a few rows more than the 5 changed.
  EXPECT_NE(r.err.find("order_events: 3 rows"), std::string::npos) << Dump(r);
  EXPECT_NE(r.err.find("paid_orders: 3 rows"), std::string::npos) << Dump(r);
  EXPECT_EQ(Target("SELECT group_concat(id || ':' || status) FROM "
                   "(SELECT id, status FROM orders WHERE id IN (3, 6, 9, 50001) ORDER BY id)"),
            (Rows{{"3:paid,6:paid,9:paid,50001:new"}}));
  EXPECT_EQ(Target("SELECT count(*) FROM paid_orders"), (Rows{{"16670"}}));
  r = Siphon({"status", Replica()}, env);
  EXPECT_EQ(r.exit_code, 0) << Dump(r);
  EXPECT_NE(r.out.find("paid_orders"), std::string::npos) << Dump(r);

  db_.Exec(R"sql(
    CREATE TABLE accounts (id int PRIMARY KEY, name text NOT NULL,
                           updated_at timestamptz NOT NULL DEFAULT now(), deleted_at timestamptz);
    INSERT INTO accounts (id, name, deleted_at) VALUES (1, 'kept', NULL), (2, 'gone', now());
    CREATE TABLE plans (id int PRIMARY KEY, name text NOT NULL);
    INSERT INTO plans VALUES (1, 'basic'), (2, 'pro');)sql");
  const std::string deletes = std::string(SIPHON_SOURCE_DIR) + "/examples/deletes.lua";
  r = Siphon({"once", deletes}, env);
  ASSERT_EQ(r.exit_code, 0) << Dump(r);
  EXPECT_EQ(Target("SELECT group_concat(name) FROM accounts"), (Rows{{"kept"}}));
  EXPECT_EQ(Target("SELECT count(*) FROM plans"), (Rows{{"2"}}));
  db_.Exec("DELETE FROM plans WHERE id = 2");
  r = Siphon({"resync", deletes, "--table", "accounts", "--table", "plans"}, env);
  ASSERT_EQ(r.exit_code, 0) << Dump(r);
  EXPECT_EQ(Target("SELECT group_concat(name) FROM plans"), (Rows{{"basic"}}));
}

/// One request to a local admin API with libcurl: the status and body, or status 0 and
/// libcurl's error as the body.
std::pair<long, std::string> AdminRequest(int port, const std::string& method,
                                          const std::string& path, const std::string& token) {
  CURL* c = curl_easy_init();
  const std::string url = "http://127.0.0.1:" + std::to_string(port) + path;
  std::string body;
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method.c_str());
  if (method == "POST") curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
  curl_slist* headers = nullptr;
  if (!token.empty()) {
    headers = curl_slist_append(headers, ("Authorization: Bearer " + token).c_str());
  }
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(
      c, CURLOPT_WRITEFUNCTION, +[](char* p, size_t size, size_t n, void* out) {
        static_cast<std::string*>(out)->append(p, size * n);
        return size * n;
      });
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
  curl_easy_setopt(c, CURLOPT_TIMEOUT, 15L);
  long status = 0;
  CURLcode rc = curl_easy_perform(c);
  if (rc == CURLE_OK) {
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  } else {
    body = curl_easy_strerror(rc);
  }
  curl_slist_free_all(headers);
  curl_easy_cleanup(c);
  return {status, body};
}

// admin_api.lua serves the admin API with the token from the environment (401 without it) and
// syncs a table on request; maintenance.lua builds an index and a summary table with
// siphon.after and siphon.target:exec once orders synced. Both on the demo shop.
TEST_F(LuaScripting, TheAdminApiAndMaintenanceExamplesRunOnTheDemoShop) {
  db_.Exec(ReadFile(std::string(SIPHON_SOURCE_DIR) + "/examples/demo/shop.sql"));
  const int port = FreeTcpPort();
  const std::string token = "example-token-1f6c2a";
  std::map<std::string, std::string> env = {{"PG_DSN", db_.Dsn()},
                                            {"REPLICA", Replica()},
                                            {"SIPHON_TOKEN", token},
                                            {"SIPHON_LISTEN", "127.0.0.1:" + std::to_string(port)},
                                            {"TEST_PG_DSN", db_.Dsn()}};
  const std::string admin = std::string(SIPHON_SOURCE_DIR) + "/examples/admin_api.lua";
  auto r = Siphon({"check", admin}, env);
  ASSERT_EQ(r.exit_code, 0) << Dump(r);
  {
    Process p({SIPHON_BIN, "run", admin}, env);
    ASSERT_TRUE(p.WaitForOutput("[table:orders] synced 50000 rows", std::chrono::seconds(60)))
        << p.Stderr();
    EXPECT_EQ(AdminRequest(port, "GET", "/healthz", "").first, 200);
    EXPECT_EQ(AdminRequest(port, "GET", "/status", "").first, 401);
    auto status = AdminRequest(port, "GET", "/status", token);
    EXPECT_EQ(status.first, 200) << status.second;
    EXPECT_NE(status.second.find("\"products\""), std::string::npos) << status.second;
    // Between two runs 5 minutes apart, a POST pulls the change now.
    db_.Exec("UPDATE orders SET status = 'paid', updated_at = clock_timestamp() WHERE id = 3");
    auto sync = AdminRequest(port, "POST", "/tables/orders/sync", token);
    EXPECT_EQ(sync.first, 202) << sync.second;
    EXPECT_TRUE(p.WaitForOutput("[table:orders] synced 1 rows", std::chrono::seconds(30)))
        << p.Stderr();
    p.Signal(SIGTERM);
    ProcessResult stopped = p.Wait(std::chrono::seconds(20));
    EXPECT_EQ(stopped.exit_code, 0) << Dump(stopped);
  }
  EXPECT_EQ(Target("SELECT status FROM orders WHERE id = 3"), (Rows{{"paid"}}));

  const std::string maintenance = std::string(SIPHON_SOURCE_DIR) + "/examples/maintenance.lua";
  env["REPLICA"] = dir_.File("maintenance.db");
  {
    Process p({SIPHON_BIN, "run", maintenance}, env);
    ASSERT_TRUE(p.WaitForOutput("order_totals rebuilt", std::chrono::seconds(60))) << p.Stderr();
    p.Signal(SIGTERM);
    ProcessResult stopped = p.Wait(std::chrono::seconds(20));
    EXPECT_EQ(stopped.exit_code, 0) << Dump(stopped);
    // Order 3 was paid above. The summary inserted its 3 rows (the index and the table change
    // none).
    EXPECT_NE(stopped.err.find("order_totals rebuilt (3 rows)"), std::string::npos)
        << Dump(stopped);
  }
  EXPECT_EQ(SqliteQuery(env["REPLICA"], "SELECT status, orders FROM order_totals ORDER BY status"),
            (Rows{{"new", "16665"}, {"paid", "16668"}, {"shipped", "16667"}}));
  EXPECT_EQ(SqliteQuery(env["REPLICA"],
                        "SELECT count(*) FROM sqlite_master WHERE name = 'orders_by_customer'"),
            (Rows{{"1"}}));
}

// check plans the columns a run writes: those the transform makes. A key column it leaves out
// is refused (exit 2) as once refuses it, not passed as "ok".
TEST_F(LuaScripting, CheckPlansTheTransformsColumns) {
  auto r = Siphon({"check", Script(R"lua(
siphon.replicate "users" { source = pg, transform = function(row) return row end,
                           columns_out = { id = false } }
)lua")});
  EXPECT_EQ(r.exit_code, 2) << Dump(r);
  EXPECT_NE(r.err.find("deploy.lua:4: table \"users\": the transform's columns must keep the key "
                       "column \"id\""),
            std::string::npos)
      << Dump(r);
  r = Siphon({"check", Script(R"lua(
siphon.replicate "users" { source = pg, columns_out = { email = false, score = "INTEGER" },
                           transform = function(row) row.email = nil; row.score = 1; return row end }
)lua")});
  EXPECT_EQ(r.exit_code, 0) << Dump(r);
  EXPECT_NE(r.out.find("    score"), std::string::npos) << Dump(r);
  EXPECT_EQ(r.out.find("    email"), std::string::npos) << Dump(r);
}

TEST_F(LuaScripting, LaggingFiresOncePerEpisodeForATableThatCannotSync) {
  // "other" syncs every 300 ms; "gone" points at a table that does not exist yet, so it never
  // succeeds: after max_lag it lags, once, and a healthy table never does.
  std::string script = Script(R"lua(
siphon.replicate "other" { source = pg, from = "public.other", every = "300ms", max_lag = "1s" }
siphon.replicate "gone" { source = pg, from = "public.later", every = "300ms", max_lag = "1s" }
siphon.on("lagging", function(ev)
  siphon.log.warn("LAGGING %s after %.1f s", ev.table, ev.lag_s)
end)
)lua");
  Process p({SIPHON_BIN, "run", script}, {{"TEST_PG_DSN", db_.Dsn()}});
  ASSERT_TRUE(p.WaitForOutput("LAGGING gone after", std::chrono::seconds(10))) << p.Stderr();
  // Created now, the table syncs and the episode ends; it lags again only if it stops again.
  db_.Exec("CREATE TABLE later (id int PRIMARY KEY); INSERT INTO later VALUES (1)");
  ASSERT_TRUE(p.WaitForOutput("[table:gone] synced 1 rows", std::chrono::seconds(20)))
      << p.Stderr();
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));  // past max_lag again
  p.Signal(SIGTERM);
  ProcessResult r = p.Wait(std::chrono::seconds(10));
  EXPECT_EQ(r.exit_code, 0) << Dump(r);
  size_t count = 0;
  for (size_t at = r.err.find("LAGGING gone"); at != std::string::npos;
       at = r.err.find("LAGGING gone", at + 1)) {
    ++count;
  }
  EXPECT_EQ(count, 1u) << r.err;
  EXPECT_EQ(r.err.find("LAGGING other"), std::string::npos) << r.err;
  Rows rows = Target("SELECT count(*) FROM gone");
  ASSERT_FALSE(rows.empty());
  EXPECT_EQ(rows[0][0].value_or(""), "1");
}

}  // namespace
}  // namespace siphon::test

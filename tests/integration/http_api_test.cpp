// End-to-end: the admin API of a real `siphon run` (issue 5), driven with libcurl and raw
// sockets against a real PostgreSQL source; metrics validated with promtool; SIGTERM and
// SIGHUP on the real process.
#include <arpa/inet.h>
#include <curl/curl.h>
#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <thread>

#include <nlohmann/json.hpp>

#include "tests/integration/harness/harness.hpp"

namespace siphon::test {
namespace {

constexpr const char* kToken = "s3cr3t-token-for-tests";

struct HttpResult {
  long status = 0;
  std::string body;
  std::string headers;
};

size_t Append(char* p, size_t size, size_t n, void* out) {
  static_cast<std::string*>(out)->append(p, size * n);
  return size * n;
}

/// One request with libcurl (a new connection each time).
HttpResult Http(int port, const std::string& method, const std::string& path,
                const std::string& token = "", const std::string& body = "") {
  HttpResult r;
  CURL* c = curl_easy_init();
  std::string url = "http://127.0.0.1:" + std::to_string(port) + path;
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method.c_str());
  if (method == "POST") {
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.c_str());
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
  }
  curl_slist* headers = nullptr;
  if (!token.empty())
    headers = curl_slist_append(headers, ("Authorization: Bearer " + token).c_str());
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, Append);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &r.body);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, Append);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &r.headers);
  curl_easy_setopt(c, CURLOPT_TIMEOUT, 15L);
  CURLcode rc = curl_easy_perform(c);
  if (rc == CURLE_OK) {
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
  } else {
    r.body = curl_easy_strerror(rc);
  }
  curl_slist_free_all(headers);
  curl_easy_cleanup(c);
  return r;
}

/// A raw TCP connection to the API, for requests no client library would send.
class RawConn {
 public:
  explicit RawConn(int port) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0;
  }
  ~RawConn() { Close(); }
  void Close() {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  }
  /// Closes with a reset (RST), as a client that crashed or timed out would.
  void Reset() {
    linger l{1, 0};
    setsockopt(fd_, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    Close();
  }
  bool connected() const { return connected_; }
  /// Sends everything; false when the peer closed.
  bool Send(const std::string& data) {
    size_t off = 0;
    while (off < data.size()) {
      ssize_t n = send(fd_, data.data() + off, data.size() - off, MSG_NOSIGNAL);
      if (n <= 0) return false;
      off += static_cast<size_t>(n);
    }
    return true;
  }
  /// Reads until EOF, `until` appears, or the timeout.
  std::string Read(std::chrono::milliseconds timeout, const std::string& until = "") {
    std::string out;
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      pollfd p{fd_, POLLIN, 0};
      int left = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                      deadline - std::chrono::steady_clock::now())
                                      .count());
      if (poll(&p, 1, std::max(left, 1)) <= 0) break;
      char buf[65536];
      ssize_t n = recv(fd_, buf, sizeof(buf), 0);
      if (n <= 0) {
        eof_ = true;
        break;
      }
      out.append(buf, static_cast<size_t>(n));
      if (!until.empty() && out.find(until) != std::string::npos) break;
    }
    return out;
  }
  bool eof() const { return eof_; }

 private:
  int fd_ = -1;
  bool connected_ = false;
  bool eof_ = false;
};

int Count(const std::string& s, const std::string& needle) {
  int n = 0;
  for (size_t p = s.find(needle); p != std::string::npos; p = s.find(needle, p + 1)) ++n;
  return n;
}

std::string Dump(const ProcessResult& r) {
  return "exit " + std::to_string(r.exit_code) + "\nstdout:\n" + r.out + "\nstderr:\n" + r.err;
}

class HttpApi : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { curl_global_init(CURL_GLOBAL_ALL); }

  std::string Script(const std::string& tables, const std::string& name = "deploy.lua") {
    std::string path = dir_.File(name);
    WriteFile(path,
              "local pg = siphon.postgres { dsn = siphon.env(\"TEST_PG_DSN\") }\n"
              "siphon.target { path = \"" +
                  Replica() + "\" }\n" + tables);
    return path;
  }
  std::string Replica() const { return dir_.File("replica.db"); }
  std::map<std::string, std::string> Env(bool token = true) const {
    std::map<std::string, std::string> env = {{"TEST_PG_DSN", db_.Dsn()}};
    if (token) env["SIPHON_HTTP_TOKEN"] = kToken;
    return env;
  }
  /// Starts `siphon run SCRIPT --http 127.0.0.1:PORT` and waits until the API listens.
  std::unique_ptr<Process> Start(const std::string& script, bool token = true,
                                 std::vector<std::string> extra = {}) {
    port_ = FreeTcpPort();
    std::vector<std::string> argv = {SIPHON_BIN, "run", script, "--http",
                                     "127.0.0.1:" + std::to_string(port_)};
    argv.insert(argv.end(), extra.begin(), extra.end());
    auto p = std::make_unique<Process>(argv, Env(token));
    EXPECT_TRUE(p->WaitForOutput("admin API on")) << p->Stderr();
    return p;
  }
  HttpResult Get(const std::string& path) { return Http(port_, "GET", path, kToken); }
  HttpResult Post(const std::string& path, const std::string& body = "") {
    return Http(port_, "POST", path, kToken, body);
  }
  std::string TargetScalar(const std::string& sql) {
    Rows r = SqliteQuery(Replica(), sql);
    return r.empty() || r[0].empty() || !r[0][0] ? "" : *r[0][0];
  }
  /// Rows in a target table; "" while the file or the table does not exist yet.
  std::string TargetCount(const std::string& table) {
    if (!std::filesystem::exists(Replica())) return "";
    Rows r =
        SqliteQuery(Replica(), "SELECT count(*) FROM sqlite_master WHERE name = '" + table + "'");
    if (r.empty() || !r[0][0] || *r[0][0] != "1") return "";
    r = SqliteQuery(Replica(), "SELECT count(*) FROM \"" + table + "\"");
    return r.empty() || r[0].empty() || !r[0][0] ? "" : *r[0][0];
  }
  /// WaitUntil with this suite's timeout.
  static bool WaitFor(const std::function<bool()>& pred,
                      std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
    return WaitUntil(pred, timeout);
  }
  /// A table "big" of `rows` rows and `siphon run` syncing it in pages of 500, with a
  /// transform whose busy loop keeps the run going for seconds.
  std::unique_ptr<Process> StartSlowSync(int rows) {
    db_.Exec(
        "CREATE TABLE big (id int8 PRIMARY KEY, v text NOT NULL); INSERT INTO big SELECT "
        "g, md5(g::text) FROM generate_series(1, " +
        std::to_string(rows) + ") g");
    return Start(Script(R"(siphon.replicate "big" { source = pg, batch = 500, every = "1h",
  transform = function(row) local x = 0; for i = 1, 3000 do x = x + i end; return row end })"));
  }
  bool Healthy() {
    HttpResult h = Http(port_, "GET", "/healthz");
    return h.status == 200 && h.body.find("\"ok\"") != std::string::npos;
  }

  PgDb db_;
  TempDir dir_;
  int port_ = 0;
};

TEST_F(HttpApi, EveryEndpointAndErrorCode) {
  db_.Exec(R"sql(
    CREATE TABLE orders (id int8 PRIMARY KEY, note text NOT NULL, seq int8 NOT NULL);
    CREATE INDEX ON orders (seq, id);
    INSERT INTO orders SELECT g, 'n' || g, g FROM generate_series(1, 500) g;
  )sql");
  auto p =
      Start(Script(R"(siphon.replicate "orders" { source = pg, cursor = "seq", every = "1h" })"));
  ASSERT_TRUE(WaitFor([&] { return TargetCount("orders") == "500"; }));
  const std::string password = Servers().pg_password;
  std::vector<HttpResult> all;
  auto keep = [&all](HttpResult r) {
    all.push_back(r);
    return r;
  };

  // /healthz needs no token; everything else does.
  HttpResult h = keep(Http(port_, "GET", "/healthz"));
  EXPECT_EQ(h.status, 200);
  // One line, as monitoring matches it (it was indented over three lines).
  EXPECT_EQ(h.body, "{\"status\":\"ok\"}\n");
  EXPECT_EQ(keep(Http(port_, "POST", "/healthz")).status, 405);
  for (const char* path : {"/status", "/tables/orders", "/logs", "/metrics", "/nope"}) {
    HttpResult r = keep(Http(port_, "GET", path));
    EXPECT_EQ(r.status, 401) << path;
    EXPECT_NE(r.headers.find("WWW-Authenticate: Bearer"), std::string::npos) << r.headers;
    EXPECT_NE(r.body.find("\"error\""), std::string::npos) << r.body;
    EXPECT_EQ(keep(Http(port_, "GET", path, "wrong-token")).status, 401) << path;
    EXPECT_EQ(keep(Http(port_, "GET", path, std::string(kToken) + "x")).status, 401) << path;
  }
  EXPECT_EQ(keep(Http(port_, "POST", "/tables/orders/sync")).status, 401);

  HttpResult st = keep(Get("/status"));
  ASSERT_EQ(st.status, 200) << st.body;
  EXPECT_NE(st.headers.find("Content-Type: application/json"), std::string::npos);
  EXPECT_NE(st.body.find("\"name\": \"orders\""), std::string::npos) << st.body;
  EXPECT_NE(st.body.find("\"rows_written\": 500"), std::string::npos) << st.body;
  EXPECT_NE(st.body.find("\"mode\": \"incremental\""), std::string::npos) << st.body;
  EXPECT_NE(st.body.find("\"target\": \"" + Replica() + "\""), std::string::npos) << st.body;

  HttpResult t = keep(Get("/tables/orders"));
  ASSERT_EQ(t.status, 200) << t.body;
  EXPECT_NE(t.body.find("\"persisted\""), std::string::npos) << t.body;
  EXPECT_NE(t.body.find("\"rows_total\": 500"), std::string::npos) << t.body;
  EXPECT_NE(t.body.find("\"cursor\": [\n    500,\n    500\n  ]"), std::string::npos) << t.body;

  EXPECT_EQ(keep(Get("/tables/nope")).status, 404);
  EXPECT_EQ(keep(Post("/tables/nope/sync")).status, 404);
  EXPECT_EQ(keep(Post("/tables/orders/explode")).status, 404);
  EXPECT_EQ(keep(Get("/no/such/path")).status, 404);
  HttpResult m = keep(Get("/tables/orders/sync"));
  EXPECT_EQ(m.status, 405);
  EXPECT_NE(m.headers.find("Allow: POST"), std::string::npos) << m.headers;
  HttpResult m2 = keep(Post("/status"));
  EXPECT_EQ(m2.status, 405);
  EXPECT_NE(m2.headers.find("Allow: GET"), std::string::npos) << m2.headers;

  // Logs.
  HttpResult logs = keep(Get("/logs?limit=1&table=orders"));
  ASSERT_EQ(logs.status, 200) << logs.body;
  EXPECT_EQ(Count(logs.body, "\"event\""), 1) << logs.body;
  EXPECT_NE(logs.body.find("\"rows\": 500"), std::string::npos) << logs.body;
  // A name siphon never knew is a 404 naming it, as /tables/NAME answers (it was 200 with no
  // entries, as if a table by that name had not run yet).
  HttpResult unknown = keep(Get("/logs?table=ordrs"));
  EXPECT_EQ(unknown.status, 404) << unknown.body;
  EXPECT_EQ(unknown.body, "{\"error\":\"no such table: ordrs\"}\n");
  EXPECT_EQ(Count(keep(Get("/logs?table=orders&limit=1000")).body, "\"event\""), 1);
  EXPECT_EQ(keep(Get("/logs?limit=abc")).status, 400);
  EXPECT_EQ(keep(Get("/logs?limit=0")).status, 400);
  EXPECT_EQ(keep(Get("/logs?limit=100000")).status, 400);

  // A body above 64 KiB.
  EXPECT_EQ(keep(Post("/tables/orders/sync", std::string(100 * 1024, 'x'))).status, 413);

  // sync → 202, and a new run shows in the log.
  HttpResult s = keep(Post("/tables/orders/sync"));
  EXPECT_EQ(s.status, 202) << s.body;
  EXPECT_TRUE(WaitFor([&] { return TargetCount("_siphon_log") == "2"; }));

  // Metrics.
  HttpResult met = keep(Get("/metrics"));
  ASSERT_EQ(met.status, 200);
  EXPECT_NE(met.headers.find("Content-Type: text/plain; version=0.0.4"), std::string::npos);
  EXPECT_NE(met.body.find("siphon_rows_replicated_total{table=\"orders\"} 500"), std::string::npos)
      << met.body;

  // Nothing anywhere reveals the password.
  ASSERT_FALSE(password.empty());
  for (const auto& r : all) {
    EXPECT_EQ(r.body.find(password), std::string::npos) << r.body;
    EXPECT_EQ(r.headers.find(password), std::string::npos) << r.headers;
  }
  p->Signal(SIGTERM);
  EXPECT_EQ(p->Wait(std::chrono::seconds(10)).exit_code, 0);
}

// The token is read from the Authorization header as HTTP defines it: the whitespace around a
// field value is not part of it (RFC 9110 5.5), and "Bearer" may be followed by several
// spaces (RFC 6750 2.1). "Bearer TOKEN " and "Bearer  TOKEN" were answered 401, "invalid
// token", with the right token; a wrong token or none still is.
TEST_F(HttpApi, TheBearerTokenIsReadAsHttpDefinesIt) {
  db_.Exec("CREATE TABLE a (id int8 PRIMARY KEY)");
  auto p = Start(Script(R"(siphon.replicate "a" { source = pg, every = "1h" })"));
  auto status = [this](const std::string& authorization) {
    RawConn c(port_);
    EXPECT_TRUE(c.Send("GET /status HTTP/1.1\r\nHost: x\r\nAuthorization: " + authorization +
                       "\r\nConnection: close\r\n\r\n"));
    std::string got = c.Read(std::chrono::seconds(5));
    return got.substr(0, got.find("\r\n"));
  };
  const std::string token = kToken;
  for (const std::string& ok :
       {"Bearer " + token, "Bearer " + token + " ", "Bearer " + token + " \t ", "Bearer  " + token,
        "bearer " + token}) {
    EXPECT_EQ(status(ok), "HTTP/1.1 200 OK") << "[" << ok << "]";
  }
  for (const std::string& refused :
       {"Bearer " + token + "x", "Bearer x" + token, std::string("Bearer"), std::string("Bearer "),
        "Basic " + token, token, "Bearer " + token.substr(1)}) {
    EXPECT_EQ(status(refused), "HTTP/1.1 401 Unauthorized") << "[" << refused << "]";
  }
  // A token refused is told apart from none (RFC 6750 3.1); both are 401, never 403.
  HttpResult wrong = Http(port_, "GET", "/status", "wrong-token");
  EXPECT_EQ(wrong.status, 401);
  EXPECT_NE(
      wrong.headers.find("WWW-Authenticate: Bearer realm=\"siphon\", error=\"invalid_token\"\r\n"),
      std::string::npos)
      << wrong.headers;
  HttpResult none = Http(port_, "GET", "/status");
  EXPECT_EQ(none.status, 401);
  EXPECT_NE(none.headers.find("WWW-Authenticate: Bearer realm=\"siphon\"\r\n"), std::string::npos)
      << none.headers;
  p->Signal(SIGTERM);
  EXPECT_EQ(p->Wait(std::chrono::seconds(10)).exit_code, 0);
}

// A path that is not UTF-8 once decoded (%FF) names no table and no endpoint: 404 with the
// name in the message (the byte replaced), as for any unknown name, not a 500.
TEST_F(HttpApi, ANameThatIsNotUtf8Answers404) {
  db_.Exec("CREATE TABLE a (id int8 PRIMARY KEY)");
  auto p = Start(Script(R"(siphon.replicate "a" { source = pg, every = "1h" })"));
  for (const char* path : {"/tables/%FF", "/tables/a%FE/sync", "/%FF%FE"}) {
    HttpResult r = Get(path);
    EXPECT_EQ(r.status, 404) << path << ": " << r.body;
    EXPECT_NE(r.body.find("{\"error\":\"no such "), std::string::npos) << path << ": " << r.body;
  }
  HttpResult action = Post("/tables/a/%FF");
  EXPECT_EQ(action.status, 404) << action.body;
  EXPECT_NE(action.body.find("no such action"), std::string::npos) << action.body;
  EXPECT_TRUE(Healthy());
  p->Signal(SIGTERM);
  ProcessResult done = p->Wait(std::chrono::seconds(10));
  EXPECT_EQ(done.exit_code, 0) << Dump(done);
  EXPECT_EQ(done.err.find("internal error"), std::string::npos) << Dump(done);
  EXPECT_EQ(done.err.find("json.exception"), std::string::npos) << Dump(done);
}

// A target whose name holds '#', '%' or '?': /logs and a table's persisted state are read
// from it (the read-only connection took its name for a file: URI and could not open it:
// /logs answered 500 and "persisted" stayed null).
TEST_F(HttpApi, LogsAndPersistedStateOfATargetNamedWithUriCharacters) {
  db_.Exec("CREATE TABLE a (id int8 PRIMARY KEY); INSERT INTO a VALUES (1), (2);");
  const std::string replica = dir_.File("r#1 %41?.db");
  std::string script = dir_.File("deploy.lua");
  WriteFile(script,
            "local pg = siphon.postgres { dsn = siphon.env(\"TEST_PG_DSN\") }\n"
            "siphon.target { path = \"" +
                replica + "\" }\nsiphon.replicate \"a\" { source = pg, every = \"1h\" }\n");
  auto p = Start(script);
  HttpResult logs;
  EXPECT_TRUE(WaitFor([&] {
    logs = Get("/logs?table=a");
    return logs.body.find("\"rows\": 2") != std::string::npos;
  })) << logs.status
      << " " << logs.body;
  HttpResult t = Get("/tables/a");
  EXPECT_NE(t.body.find("\"rows_total\": 2"), std::string::npos) << t.body;
  p->Signal(SIGTERM);
  EXPECT_EQ(p->Wait(std::chrono::seconds(10)).exit_code, 0);
}

// HEAD is GET without the body (RFC 9110 9.3.2): GET's status and headers, Content-Length of
// the body GET sends, and nothing after the headers (it answered 405).
TEST_F(HttpApi, HeadAnswersAsGetWithoutABody) {
  db_.Exec("CREATE TABLE a (id int8 PRIMARY KEY); INSERT INTO a VALUES (1), (2)");
  auto p = Start(Script(R"(siphon.replicate "a" { source = pg, every = "1h" })"));
  ASSERT_TRUE(WaitFor([&] { return TargetCount("a") == "2"; }));
  const std::string auth = std::string("Authorization: Bearer ") + kToken + "\r\n";
  auto header = [](const std::string& head, const std::string& name) {
    size_t at = head.find("\r\n" + name + ": ");
    if (at == std::string::npos) return std::string();
    at += name.size() + 4;
    return head.substr(at, head.find("\r\n", at) - at);
  };
  for (const char* path : {"/status", "/tables/a", "/logs?limit=5", "/metrics", "/healthz"}) {
    RawConn c(port_);
    ASSERT_TRUE(c.connected());
    // A GET pipelined behind the HEAD: its answer must follow the HEAD's headers directly.
    ASSERT_TRUE(c.Send(std::string("HEAD ") + path + " HTTP/1.1\r\nHost: x\r\n" + auth +
                       "\r\nGET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
    std::string got = c.Read(std::chrono::seconds(5));
    ASSERT_TRUE(c.eof()) << got;
    size_t end = got.find("\r\n\r\n");
    ASSERT_NE(end, std::string::npos) << got;
    const std::string head = got.substr(0, end + 2);
    EXPECT_EQ(head.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << path << "\n" << got;
    const std::string rest = got.substr(end + 4);
    EXPECT_EQ(rest.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << path << ": a body followed\n" << got;
    EXPECT_NE(rest.find("\"ok\""), std::string::npos) << got;
    // The length of the body GET would send (the same resource, asked again).
    HttpResult get = Get(path);
    ASSERT_EQ(get.status, 200) << path;
    const std::string length = header(head, "Content-Length");
    ASSERT_NE(length, "") << head;
    if (std::string(path) == "/healthz") {
      EXPECT_EQ(length, std::to_string(get.body.size())) << head;
    } else {
      // /status, /metrics and the logs change between two asks (uptime, lag): a body, not 0.
      EXPECT_GT(std::stoll(length), 20) << head;
    }
    EXPECT_EQ(header(head, "Content-Type"), header("\r\n" + get.headers, "Content-Type")) << path;
  }
  // HEAD still needs the token, and a POST-only resource still answers 405.
  {
    RawConn c(port_);
    ASSERT_TRUE(c.Send("HEAD /status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
    std::string got = c.Read(std::chrono::seconds(5));
    EXPECT_EQ(got.rfind("HTTP/1.1 401 ", 0), 0u) << got;
    EXPECT_EQ(got.substr(got.find("\r\n\r\n") + 4), "") << got;
  }
  {
    RawConn c(port_);
    ASSERT_TRUE(
        c.Send("HEAD /tables/a/sync HTTP/1.1\r\nHost: x\r\n" + auth + "Connection: close\r\n\r\n"));
    std::string got = c.Read(std::chrono::seconds(5));
    EXPECT_EQ(got.rfind("HTTP/1.1 405 ", 0), 0u) << got;
    EXPECT_NE(got.find("Allow: POST\r\n"), std::string::npos) << got;
    EXPECT_EQ(got.substr(got.find("\r\n\r\n") + 4), "") << got;
  }
  // A GET resource's 405 names HEAD among its methods.
  HttpResult m = Post("/status");
  EXPECT_EQ(m.status, 405);
  EXPECT_NE(m.headers.find("Allow: GET, HEAD"), std::string::npos) << m.headers;
  p->Signal(SIGTERM);
  EXPECT_EQ(p->Wait(std::chrono::seconds(10)).exit_code, 0);
}

// /logs says what a run removed: `deleted`, from _siphon_log (it was left out).
TEST_F(HttpApi, LogEntriesSayHowManyRowsARunDeleted) {
  db_.Exec(
      "CREATE TABLE t (id int8 PRIMARY KEY, v text NOT NULL); INSERT INTO t SELECT g, 'v' || g "
      "FROM generate_series(1, 10) g");
  auto p = Start(Script(R"(siphon.replicate "t" { source = pg, every = "1h" })"));
  ASSERT_TRUE(WaitFor([&] { return TargetCount("_siphon_log") == "1"; }));
  db_.Exec("DELETE FROM t WHERE id IN (2, 4, 6)");
  ASSERT_EQ(Post("/tables/t/sync").status, 202);
  ASSERT_TRUE(WaitFor([&] { return TargetCount("_siphon_log") == "2"; }));
  ASSERT_EQ(TargetCount("t"), "7");
  HttpResult logs = Get("/logs?table=t");
  ASSERT_EQ(logs.status, 200) << logs.body;
  auto entries = nlohmann::json::parse(logs.body)["entries"];
  ASSERT_EQ(entries.size(), 2u) << logs.body;
  EXPECT_EQ(entries[0]["deleted"], 3) << logs.body;  // newest first
  EXPECT_EQ(entries[0]["rows"], 0) << logs.body;     // the 7 left are as they were
  EXPECT_EQ(entries[1]["deleted"], 0) << logs.body;
  EXPECT_EQ(entries[1]["rows"], 10) << logs.body;
  EXPECT_EQ(TargetScalar("SELECT group_concat(deleted) FROM (SELECT deleted FROM _siphon_log "
                         "ORDER BY id DESC)"),
            "3,0");
  p->Signal(SIGTERM);
  EXPECT_EQ(p->Wait(std::chrono::seconds(10)).exit_code, 0);
}

// An admin port already taken ends `run` before anything replicates: exit 2, the address and
// the system's reason on stderr, no target written (it logged "replicating", then exited 2).
TEST_F(HttpApi, APortInUseEndsRunBeforeItReplicates) {
  db_.Exec("CREATE TABLE a (id int8 PRIMARY KEY); INSERT INTO a VALUES (1)");
  int taken = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(taken, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(taken, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  ASSERT_EQ(listen(taken, 4), 0);
  socklen_t len = sizeof(a);
  getsockname(taken, reinterpret_cast<sockaddr*>(&a), &len);
  const std::string address = "127.0.0.1:" + std::to_string(ntohs(a.sin_port));
  auto r = siphon::test::Run(
      {SIPHON_BIN, "run", Script(R"(siphon.replicate "a" { source = pg })"), "--http", address},
      Env(), std::chrono::seconds(30));
  close(taken);
  EXPECT_EQ(r.exit_code, 2) << Dump(r);
  EXPECT_NE(
      r.err.find("siphon: admin API: cannot listen on " + address + ": address already in use"),
      std::string::npos)
      << Dump(r);
  EXPECT_EQ(r.err.find("replicating"), std::string::npos) << Dump(r);
  EXPECT_FALSE(std::filesystem::exists(Replica())) << Dump(r);
}

// An idle `run` exits at once on SIGTERM: nothing is in flight, so nothing is waited for (it
// took about 1.5 s). A run's record that waits for its batch is still committed.
TEST_F(HttpApi, AnIdleRunExitsPromptlyOnSigterm) {
  db_.Exec("CREATE TABLE a (id int8 PRIMARY KEY); INSERT INTO a VALUES (1)");
  auto p = Start(Script(R"(siphon.replicate "a" { source = pg, every = "300ms" })"), true,
                 {"--log-level", "debug"});
  ASSERT_TRUE(WaitFor([&] { return TargetCount("_siphon_log") == "1"; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));  // idle runs in between
  ASSERT_TRUE(Healthy());
  auto signalled = std::chrono::steady_clock::now();
  p->Signal(SIGTERM);
  ProcessResult r = p->Wait(std::chrono::seconds(10));
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                  signalled);
  EXPECT_EQ(r.exit_code, 0) << Dump(r);
  EXPECT_LT(ms.count(), 200) << Dump(r);
  EXPECT_EQ(TargetScalar("PRAGMA integrity_check"), "ok");
  // Every run that ended was recorded, the quiet ones too (their records wait up to 250 ms
  // for a shared commit): one row per run logged.
  // (The first run writes the row; the others read it as it is.)
  const int runs = Count(r.err, "synced 1 rows") + Count(r.err, "synced 0 rows (1 pulled)") +
                   Count(r.err, "no new rows");
  EXPECT_GT(runs, 2) << Dump(r);
  EXPECT_EQ(TargetScalar("SELECT count(*) FROM _siphon_log WHERE event = 'synced'"),
            std::to_string(runs))
      << Dump(r);
}

TEST_F(HttpApi, ATableNameWithASlashIsAddressable) {
  db_.Exec(R"sql(
    CREATE TABLE orders (id int8 PRIMARY KEY, seq int8 NOT NULL);
    INSERT INTO orders SELECT g, g FROM generate_series(1, 20) g;
  )sql");
  auto p = Start(Script(R"(siphon.replicate "eu/orders" {
    source = pg, from = "orders", cursor = "seq", every = "1h" })"));
  ASSERT_TRUE(WaitFor([&] { return TargetCount("eu/orders") == "20"; }));
  HttpResult plain = Get("/tables/eu/orders");
  EXPECT_EQ(plain.status, 200) << plain.body;
  EXPECT_NE(plain.body.find("\"name\": \"eu/orders\""), std::string::npos) << plain.body;
  HttpResult encoded = Get("/tables/eu%2Forders");
  EXPECT_EQ(encoded.status, 200) << encoded.body;
  db_.Exec("INSERT INTO orders VALUES (21, 21)");
  HttpResult sync = Post("/tables/eu/orders/sync");
  EXPECT_LT(sync.status, 300) << sync.body;
  EXPECT_TRUE(WaitFor([&] { return TargetCount("eu/orders") == "21"; }));
  EXPECT_EQ(Get("/tables/eu").status, 404);
  p->Signal(SIGTERM);
  EXPECT_EQ(p->Wait(std::chrono::seconds(10)).exit_code, 0);
}

TEST_F(HttpApi, SyncAndResyncWhileARunIsInProgressAnswer409) {
  auto p = StartSlowSync(200000);
  ASSERT_TRUE(WaitFor(
      [&] { return Get("/tables/big").body.find("\"state\": \"running\"") != std::string::npos; }));
  HttpResult s = Post("/tables/big/sync");
  EXPECT_EQ(s.status, 409) << s.body;
  EXPECT_NE(s.body.find("already running"), std::string::npos) << s.body;
  EXPECT_EQ(Post("/tables/big/resync").status, 409);
  p->Signal(SIGTERM);
  EXPECT_EQ(p->Wait(std::chrono::seconds(10)).exit_code, 0);
}

TEST_F(HttpApi, PauseResumeAndResync) {
  db_.Exec(R"sql(
    CREATE TABLE items (id int8 PRIMARY KEY, note text NOT NULL, seq int8 NOT NULL);
    CREATE INDEX ON items (seq, id);
    INSERT INTO items SELECT g, 'n' || g, g FROM generate_series(1, 1000) g;
  )sql");
  auto p =
      Start(Script(R"(siphon.replicate "items" { source = pg, cursor = "seq", every = "200ms" })"));
  ASSERT_TRUE(WaitFor([&] { return TargetCount("items") == "1000"; }));

  HttpResult pause = Post("/tables/items/pause");
  ASSERT_EQ(pause.status, 200) << pause.body;
  std::this_thread::sleep_for(std::chrono::milliseconds(500));  // a run in flight ends
  const std::string logged = TargetCount("_siphon_log");
  db_.Exec("INSERT INTO items VALUES (1001, 'new', 1001)");
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  EXPECT_EQ(TargetCount("_siphon_log"), logged) << "runs while paused";
  EXPECT_EQ(TargetCount("items"), "1000");
  HttpResult t = Get("/tables/items");
  EXPECT_NE(t.body.find("\"paused\": true"), std::string::npos) << t.body;
  EXPECT_NE(Get("/metrics").body.find("siphon_table_paused{table=\"items\"} 1"), std::string::npos);
  EXPECT_EQ(Post("/tables/items/sync").status, 409);  // paused

  ASSERT_EQ(Post("/tables/items/resume").status, 200);
  EXPECT_TRUE(WaitFor([&] { return TargetCount("items") == "1001"; }));
  EXPECT_TRUE(
      WaitFor([&] { return std::stoi(TargetCount("_siphon_log")) > std::stoi(logged) + 2; }));

  // A change that does not move the cursor is not seen by incremental runs...
  db_.Exec("UPDATE items SET note = 'changed' WHERE id IN (1, 500)");
  std::this_thread::sleep_for(std::chrono::milliseconds(800));
  EXPECT_EQ(TargetScalar("SELECT note FROM items WHERE id = 1"), "n1");
  // ...and a resync re-pulls everything. (A run may be in progress: retry on 409.)
  long status = 0;
  ASSERT_TRUE(WaitFor([&] {
    status = Post("/tables/items/resync").status;
    return status == 202;
  })) << status;
  EXPECT_TRUE(WaitFor(
      [&] { return TargetScalar("SELECT count(*) FROM items WHERE note = 'changed'") == "2"; }));
  EXPECT_EQ(TargetScalar("SELECT count(*) || '/' || sum(id) || '/' || sum(seq) FROM items"),
            db_.Scalar("SELECT count(*) || '/' || sum(id) || '/' || sum(seq) FROM items"));
  p->Signal(SIGTERM);
  EXPECT_EQ(p->Wait(std::chrono::seconds(10)).exit_code, 0);
}

// A table without a key cannot be pulled again (each row would be inserted twice): the
// request says so instead of doubling the table.
TEST_F(HttpApi, AResyncOfAKeylessAppendTableIsRefused) {
  db_.Exec(
      "CREATE TABLE ev (seq int8 NOT NULL, v text);"
      "INSERT INTO ev SELECT g, 'v' || g FROM generate_series(1, 100) g");
  auto p = Start(Script(
      R"(siphon.replicate "ev" { source = pg, write = "append", cursor = "seq", every = "200ms" })"));
  ASSERT_TRUE(WaitFor([&] { return TargetCount("ev") == "100"; }));
  HttpResult refused;
  ASSERT_TRUE(WaitFor([&] {  // a run may be in progress: that is a 409 of its own
    refused = Post("/tables/ev/resync");
    return refused.body.find("no key") != std::string::npos;
  })) << refused.body;
  EXPECT_EQ(refused.status, 409);
  EXPECT_NE(refused.body.find("cannot resync \\\"ev\\\": it has no key"), std::string::npos)
      << refused.body;
  std::this_thread::sleep_for(std::chrono::milliseconds(600));
  EXPECT_EQ(TargetCount("ev"), "100");
  // Emptied by hand, it can be pulled again.
  SqliteExec(Replica(), "DELETE FROM ev");
  ASSERT_TRUE(WaitFor([&] { return Post("/tables/ev/resync").status == 202; }));
  EXPECT_TRUE(WaitFor([&] { return TargetCount("ev") == "100"; })) << p->Stderr();
  p->Signal(SIGTERM);
  EXPECT_EQ(p->Wait(std::chrono::seconds(10)).exit_code, 0);
}

// A table dropped from the source fails its runs and is retried with backoff like any other
// failure: recreated, it syncs again by itself. (It used to pause until someone resumed it.)
TEST_F(HttpApi, ATableDroppedAndRecreatedAtTheSourceComesBackByItself) {
  db_.Exec(
      "CREATE TABLE gone (id int8 PRIMARY KEY); INSERT INTO gone SELECT generate_series(1, 10)");
  auto p = Start(Script(R"(siphon.replicate "gone" { source = pg, every = "300ms" })"));
  ASSERT_TRUE(WaitFor([&] { return TargetCount("gone") == "10"; }));
  db_.Exec("DROP TABLE gone");
  ASSERT_TRUE(p->WaitForOutput("table gone not found in database " + db_.name() +
                               " (search_path: public) (attempt 1"))
      << p->Stderr();
  db_.Exec(
      "CREATE TABLE gone (id int8 PRIMARY KEY); INSERT INTO gone SELECT generate_series(1, 20)");
  EXPECT_TRUE(WaitFor([&] { return TargetCount("gone") == "20"; })) << p->Stderr();
  EXPECT_NE(Get("/tables/gone").body.find("\"paused\": false"), std::string::npos);
  p->Signal(SIGTERM);
  EXPECT_EQ(p->Wait(std::chrono::seconds(10)).exit_code, 0);
}

// A pause lets the run in flight finish; a resume before it ends must leave that run the plan
// and schema it is still reading.
TEST_F(HttpApi, PauseAndResumeDuringARunLetItFinish) {
  auto p = StartSlowSync(100000);
  // Pages are flowing: the run has its plan.
  ASSERT_TRUE(WaitFor([&] {
    const std::string n = TargetCount("big");
    return !n.empty() && n != "0";
  }));
  for (int i = 0; i < 5; ++i) {
    ASSERT_EQ(Post("/tables/big/pause").status, 200);
    ASSERT_EQ(Post("/tables/big/resume").status, 200);
  }
  EXPECT_TRUE(WaitFor([&] { return TargetScalar("SELECT count(*) FROM _siphon_log") == "1"; },
                      std::chrono::seconds(60)))
      << p->Stderr();
  EXPECT_EQ(TargetScalar("SELECT event || '/' || rows FROM _siphon_log"), "synced/100000");
  EXPECT_EQ(TargetScalar("SELECT count(*) || '/' || sum(id) FROM big"), "100000/5000050000");
  EXPECT_TRUE(Healthy());
  p->Signal(SIGTERM);
  EXPECT_EQ(p->Wait(std::chrono::seconds(10)).exit_code, 0) << p->Stderr();
}

// Only a resume of a table paused *for* a schema change accepts that change; a table paused
// by hand still pauses on a change its script says to pause on.
TEST_F(HttpApi, AResumeAcceptsOnlyTheSchemaChangeItWasPausedFor) {
  db_.Exec(R"sql(
    CREATE TABLE p (id int8 PRIMARY KEY, amount numeric(10,2),
                    updated_at timestamptz NOT NULL DEFAULT clock_timestamp());
    INSERT INTO p (id, amount) VALUES (1, 1), (2, 2);
  )sql");
  auto p = Start(Script(R"(siphon.replicate "p" {
    source = pg, cursor = "updated_at", every = "200ms", on_schema_change = "pause" })"));
  ASSERT_TRUE(WaitFor([&] { return TargetCount("p") == "2"; }));
  ASSERT_EQ(Post("/tables/p/pause").status, 200);
  // A run in flight finishes first: the change must come after it.
  ASSERT_TRUE(WaitFor(
      [&] { return Get("/tables/p").body.find("\"state\": \"paused\"") != std::string::npos; }));
  db_.Exec("ALTER TABLE p ALTER COLUMN amount TYPE numeric(14,4)");
  db_.Exec("INSERT INTO p (id, amount) VALUES (3, 3)");
  ASSERT_EQ(Post("/tables/p/resume").status, 200);
  // The change is seen by the next run, which pauses the table again.
  EXPECT_TRUE(WaitFor([&] {
    const std::string t = Get("/tables/p").body;
    return t.find("\"paused\": true") != std::string::npos &&
           t.find("the source schema changed") != std::string::npos;
  })) << Get("/tables/p").body;
  EXPECT_EQ(TargetCount("p"), "2");
  // Paused by the script, not by hand, the table is paused all the same: a sync is refused,
  // and a resync resets the cursor and answers that the table stays paused (it answered
  // "scheduled", and nothing ran).
  HttpResult sync = Post("/tables/p/sync");
  EXPECT_EQ(sync.status, 409) << sync.body;
  EXPECT_NE(sync.body.find("is paused; resume it first"), std::string::npos) << sync.body;
  HttpResult resync = Post("/tables/p/resync");
  EXPECT_EQ(resync.status, 202) << resync.body;
  EXPECT_NE(resync.body.find("\"state\": \"paused\""), std::string::npos) << resync.body;
  // Resuming that pause accepts the change.
  ASSERT_EQ(Post("/tables/p/resume").status, 200);
  EXPECT_TRUE(WaitFor([&] { return TargetCount("p") == "3"; })) << Get("/tables/p").body;
  EXPECT_NE(Get("/tables/p").body.find("\"paused\": false"), std::string::npos);
  p->Signal(SIGTERM);
  EXPECT_EQ(p->Wait(std::chrono::seconds(10)).exit_code, 0) << p->Stderr();
}

// GET /tables/NAME tells the truth: the key a source's primary key gives (none declared),
// no error once a run after it succeeded (a resume of a table paused for a schema change),
// and after a restart the committed cursor that the last process left in _siphon_state.
TEST_F(HttpApi, ATableShowsItsKeyItsRecoveryAndItsCursorAfterARestart) {
  db_.Exec(R"sql(
    CREATE TABLE p (id int8 PRIMARY KEY, amount numeric(10,2),
                    updated_at timestamptz NOT NULL DEFAULT clock_timestamp());
    INSERT INTO p (id, amount) VALUES (1, 1), (2, 2);
  )sql");
  const std::string script = Script(R"(siphon.replicate "p" {
    source = pg, cursor = "updated_at", every = "200ms", on_schema_change = "pause" })");
  auto table = [this] {
    HttpResult r = Get("/tables/p");
    EXPECT_EQ(r.status, 200) << r.body;
    nlohmann::json j = nlohmann::json::parse(r.body, nullptr, false);
    return j.is_discarded() ? nlohmann::json::object() : j;
  };
  auto p = Start(script);
  ASSERT_TRUE(WaitFor([&] { return TargetCount("p") == "2"; })) << p->Stderr();
  nlohmann::json t = table();
  EXPECT_EQ(t["key"], nlohmann::json::array({"id"})) << t.dump(2);
  EXPECT_EQ(t["cursor_columns"], nlohmann::json::array({"updated_at"})) << t.dump(2);

  db_.Exec("ALTER TABLE p ALTER COLUMN amount TYPE numeric(14,4)");
  ASSERT_TRUE(WaitFor([&] { return table()["paused"] == true; })) << table().dump(2);
  t = table();
  ASSERT_TRUE(t["last_error"].is_string()) << t.dump(2);
  EXPECT_NE(t["last_error"].get<std::string>().find("the source schema changed"), std::string::npos)
      << t.dump(2);
  const int64_t runs_ok = t["runs_ok"].get<int64_t>();
  db_.Exec("INSERT INTO p (id, amount) VALUES (3, 3)");
  ASSERT_EQ(Post("/tables/p/resume").status, 200);
  ASSERT_TRUE(WaitFor([&] { return TargetCount("p") == "3"; })) << table().dump(2);
  ASSERT_TRUE(WaitFor([&] { return table()["runs_ok"].get<int64_t>() > runs_ok; }));
  t = table();
  EXPECT_TRUE(t["last_error"].is_null()) << t.dump(2);
  EXPECT_TRUE(t["last_error_kind"].is_null()) << t.dump(2);
  EXPECT_TRUE(t["persisted"]["last_error"].is_null()) << t.dump(2);
  EXPECT_EQ(t["cursor"], t["persisted"]["cursor"]) << t.dump(2);
  p->Signal(SIGTERM);
  ASSERT_EQ(p->Wait(std::chrono::seconds(10)).exit_code, 0) << p->Stderr();

  // A restart: runs that find nothing new commit no page, and the cursor is the stored one.
  p = Start(script);
  ASSERT_TRUE(WaitFor([&] { return table()["runs_ok"].get<int64_t>() >= 2; })) << p->Stderr();
  t = table();
  EXPECT_EQ(t["rows_written"], 0) << t.dump(2);
  ASSERT_TRUE(t["persisted"]["cursor"].is_array()) << t.dump(2);
  EXPECT_EQ(t["cursor"], t["persisted"]["cursor"]) << t.dump(2);
  EXPECT_EQ(t["key"], nlohmann::json::array({"id"})) << t.dump(2);
  EXPECT_TRUE(t["last_error"].is_null()) << t.dump(2);
  p->Signal(SIGTERM);
  EXPECT_EQ(p->Wait(std::chrono::seconds(10)).exit_code, 0) << p->Stderr();
}

// Each table says where its key came from: the source's primary key, a unique index of a
// table without one (named), the script's `key`, or none (an append table without a key).
// /status said only which columns.
TEST_F(HttpApi, EachTableSaysWhereItsKeyCameFrom) {
  db_.Exec(R"sql(
    CREATE TABLE with_pk (id int8 PRIMARY KEY, v text);
    CREATE TABLE with_index (code text NOT NULL, v text);
    CREATE UNIQUE INDEX with_index_code ON with_index (code);
    CREATE TABLE bare (n int8 NOT NULL, v text);
    INSERT INTO with_pk VALUES (1, 'a');
    INSERT INTO with_index VALUES ('c1', 'a');
    INSERT INTO bare VALUES (1, 'a');
  )sql");
  auto p = Start(Script(R"(
siphon.replicate "with_pk" { source = pg, every = "1h" }
siphon.replicate "with_index" { source = pg, every = "1h" }
siphon.replicate "scripted" { source = pg, from = "bare", key = { "n" }, every = "1h" }
siphon.replicate "appended" { source = pg, from = "bare", write = "append", cursor = "n",
                              every = "1h" }
)"));
  auto tables = [this] {
    std::map<std::string, nlohmann::json> out;
    HttpResult r = Get("/status");
    nlohmann::json j = nlohmann::json::parse(r.body, nullptr, false);
    if (j.is_discarded() || !j.contains("tables")) return out;
    for (const auto& t : j["tables"]) out[t["name"].get<std::string>()] = t;
    return out;
  };
  ASSERT_TRUE(WaitFor([&] {
    auto t = tables();
    if (t.size() != 4) return false;
    for (const auto& [name, table] : t) {
      if (table["runs_ok"] != 1) return false;
    }
    return true;
  })) << p->Stderr();
  auto t = tables();
  EXPECT_EQ(t["with_pk"]["key_source"], "primary key") << t["with_pk"].dump(2);
  EXPECT_EQ(t["with_index"]["key_source"], "unique index with_index_code")
      << t["with_index"].dump(2);
  EXPECT_EQ(t["with_index"]["key"], nlohmann::json::array({"code"})) << t["with_index"].dump(2);
  EXPECT_EQ(t["scripted"]["key_source"], "script") << t["scripted"].dump(2);
  ASSERT_TRUE(t["appended"].contains("key_source")) << t["appended"].dump(2);
  EXPECT_TRUE(t["appended"]["key_source"].is_null()) << t["appended"].dump(2);
  HttpResult one = Get("/tables/with_index");
  nlohmann::json alone = nlohmann::json::parse(one.body, nullptr, false);
  ASSERT_FALSE(alone.is_discarded()) << one.body;
  EXPECT_EQ(alone["key_source"], "unique index with_index_code") << one.body;
  p->Signal(SIGTERM);
  EXPECT_EQ(p->Wait(std::chrono::seconds(10)).exit_code, 0) << p->Stderr();
}

TEST_F(HttpApi, MalformedAndHostileClientsLeaveHealthzServing) {
  db_.Exec("CREATE TABLE a (id int8 PRIMARY KEY); INSERT INTO a VALUES (1);");
  auto p = Start(Script(R"(siphon.replicate "a" { source = pg, every = "1h" })"));
  ASSERT_TRUE(Healthy());

  {  // Garbage bytes: 400 and closed.
    RawConn c(port_);
    ASSERT_TRUE(c.connected());
    c.Send("\x01\x02\xff garbage \r\n\r\n\x7f");
    std::string r = c.Read(std::chrono::seconds(5));
    EXPECT_EQ(r.rfind("HTTP/1.1 400", 0), 0u) << r;
    EXPECT_TRUE(c.eof());
  }
  EXPECT_TRUE(Healthy());
  {  // A 1 MB header: 431 and closed.
    RawConn c(port_);
    c.Send("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(1 << 20, 'a') + "\r\n\r\n");
    std::string r = c.Read(std::chrono::seconds(5));
    EXPECT_EQ(r.rfind("HTTP/1.1 431", 0), 0u) << r.substr(0, 200);
  }
  EXPECT_TRUE(Healthy());
  {  // Keep-alive with two pipelined requests, then Connection: close is honoured.
    RawConn c(port_);
    c.Send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    std::string r = c.Read(std::chrono::seconds(5), "}\n");
    while (Count(r, "HTTP/1.1 200") < 2 && !c.eof()) r += c.Read(std::chrono::seconds(5), "}\n");
    EXPECT_EQ(Count(r, "HTTP/1.1 200"), 2) << r;
    EXPECT_EQ(Count(r, "Connection: keep-alive"), 2) << r;
    EXPECT_FALSE(c.eof());
    c.Send("GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    std::string last = c.Read(std::chrono::seconds(5));
    EXPECT_NE(last.find("Connection: close"), std::string::npos) << last;
    EXPECT_TRUE(c.eof());
  }
  {  // Unauthorised requests cannot hold a connection with a huge declared body either.
    RawConn c(port_);
    c.Send("POST /reload HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999\r\n\r\n");
    EXPECT_EQ(c.Read(std::chrono::seconds(5)).rfind("HTTP/1.1 413", 0), 0u);
  }
  // A slow client that never finishes its request: others are served meanwhile, and the
  // server gives up on it after its request timeout (10 s).
  RawConn slow(port_);
  slow.Send("GET /status HTTP/1.1\r\nHost: x\r\nX-Slow: ");
  EXPECT_TRUE(Healthy());
  // 500 parallel connections: at most 128 are served at once, the others get a 503.
  {
    std::vector<std::unique_ptr<RawConn>> conns;
    for (int i = 0; i < 500; ++i) conns.push_back(std::make_unique<RawConn>(port_));
    int ok = 0, full = 0, connected = 0;
    for (auto& c : conns) {
      connected += c->connected();
      c->Send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    }
    for (auto& c : conns) {
      std::string r = c->Read(std::chrono::seconds(5), "\n}");
      ok += r.rfind("HTTP/1.1 200", 0) == 0;
      full += r.rfind("HTTP/1.1 503", 0) == 0;
    }
    EXPECT_EQ(connected, 500);
    EXPECT_EQ(ok + full, 500) << ok << " ok, " << full << " refused";
    EXPECT_GE(ok, 100);
    EXPECT_GT(full, 0);
  }
  EXPECT_TRUE(WaitFor([&] { return Healthy(); }, std::chrono::seconds(5)));
  std::string r = slow.Read(std::chrono::seconds(15));
  EXPECT_EQ(r.rfind("HTTP/1.1 408", 0), 0u) << r;
  EXPECT_TRUE(slow.eof());
  EXPECT_TRUE(Healthy());
  p->Signal(SIGTERM);
  EXPECT_EQ(p->Wait(std::chrono::seconds(10)).exit_code, 0);
}

// A client that hangs up (RST) while siphon writes its answers: an EPIPE for that
// connection, not a SIGPIPE for the whole process (exit 141), token or not.
TEST_F(HttpApi, AClientHangingUpMidAnswerDoesNotKillSiphon) {
  db_.Exec("CREATE TABLE a (id int8 PRIMARY KEY); INSERT INTO a VALUES (1);");
  auto p = Start(Script(R"(siphon.replicate "a" { source = pg, every = "1h" })"), false);
  ASSERT_TRUE(Healthy());
  std::string requests;
  for (int i = 0; i < 50; ++i) requests += "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
  // The reset must land while siphon still writes: wait for the first answer, then reset
  // (many times: where exactly it lands is up to the scheduler).
  for (int i = 0; i < 300 && p->Running(); ++i) {
    RawConn c(port_);
    if (!c.connected()) break;  // siphon is gone: said below
    c.Send(requests);
    c.Read(std::chrono::milliseconds(100), "HTTP/1.1");
    c.Reset();
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  ASSERT_TRUE(p->Running()) << p->Stderr();
  EXPECT_TRUE(Healthy());
  p->Signal(SIGTERM);
  EXPECT_EQ(p->Wait(std::chrono::seconds(10)).exit_code, 0);
}

TEST_F(HttpApi, NonLoopbackWithoutTokenIsRefusedAtStartUp) {
  db_.Exec("CREATE TABLE a (id int8 PRIMARY KEY)");
  std::string script = Script(R"(siphon.replicate "a" { source = pg })");
  std::string port = std::to_string(FreeTcpPort());
  auto r = siphon::test::Run({SIPHON_BIN, "run", script, "--http", "0.0.0.0:" + port}, Env(false),
                             std::chrono::seconds(20));
  EXPECT_EQ(r.exit_code, 2) << Dump(r);
  EXPECT_NE(r.err.find("token"), std::string::npos) << Dump(r);
  r = siphon::test::Run(
      {SIPHON_BIN, "run", script, "--http", "0.0.0.0:" + port, "--http-token-env", "NOPE"},
      Env(false), std::chrono::seconds(20));
  EXPECT_EQ(r.exit_code, 2) << Dump(r);
  EXPECT_NE(r.err.find("NOPE"), std::string::npos) << Dump(r);
  r = siphon::test::Run({SIPHON_BIN, "run", script, "--http", "example.com:" + port}, Env(false),
                        std::chrono::seconds(20));
  EXPECT_EQ(r.exit_code, 2) << Dump(r);

  // With a token from --http-token-env, a non-loopback address is served.
  auto env = Env(false);
  env["MY_TOKEN"] = "tok-123";
  port_ = FreeTcpPort();
  Process p({SIPHON_BIN, "run", script, "--http", "0.0.0.0:" + std::to_string(port_),
             "--http-token-env", "MY_TOKEN"},
            env);
  ASSERT_TRUE(p.WaitForOutput("admin API on")) << p.Stderr();
  EXPECT_EQ(Http(port_, "GET", "/status", "tok-123").status, 200);
  EXPECT_EQ(Http(port_, "GET", "/status", kToken).status, 401);
  p.Signal(SIGTERM);
  EXPECT_EQ(p.Wait(std::chrono::seconds(10)).exit_code, 0);
}

TEST_F(HttpApi, TheScriptCanDeclareTheApiWithItsToken) {
  db_.Exec("CREATE TABLE a (id int8 PRIMARY KEY)");
  port_ = FreeTcpPort();
  std::string script = Script("siphon.http_api { listen = \"127.0.0.1:" + std::to_string(port_) +
                              "\", token = siphon.env(\"API_TOKEN\") }\n"
                              "siphon.replicate \"a\" { source = pg }\n");
  auto env = Env(false);
  env["API_TOKEN"] = "script-token";
  Process p({SIPHON_BIN, "run", script}, env);
  ASSERT_TRUE(p.WaitForOutput("admin API on")) << p.Stderr();
  EXPECT_EQ(Http(port_, "GET", "/status").status, 401);
  EXPECT_EQ(Http(port_, "GET", "/status", "script-token").status, 200);
  EXPECT_EQ(Http(port_, "GET", "/healthz").status, 200);
  // A reload with a new token rotates it at once: the old one stops working.
  Script("siphon.http_api { listen = \"127.0.0.1:" + std::to_string(port_) +
         "\", token = \"rotated-token\" }\n"
         "siphon.replicate \"a\" { source = pg }\n");
  p.Signal(SIGHUP);
  EXPECT_TRUE(WaitFor([&] { return Http(port_, "GET", "/status", "rotated-token").status == 200; }))
      << p.Stderr();
  EXPECT_EQ(Http(port_, "GET", "/status", "script-token").status, 401);
  EXPECT_TRUE(p.WaitForOutput("the admin API token changed")) << p.Stderr();
  // A new address needs a restart: the API stays where it is, and says so.
  Script("siphon.http_api { listen = \"127.0.0.1:" + std::to_string(FreeTcpPort()) +
         "\", token = \"rotated-token\" }\n"
         "siphon.replicate \"a\" { source = pg }\n");
  p.Signal(SIGHUP);
  EXPECT_TRUE(p.WaitForOutput("stays on 127.0.0.1:" + std::to_string(port_))) << p.Stderr();
  EXPECT_EQ(Http(port_, "GET", "/status", "rotated-token").status, 200);
  p.Signal(SIGTERM);
  EXPECT_EQ(p.Wait(std::chrono::seconds(10)).exit_code, 0);

  // Off loopback without a token: refused at start-up, as for --http.
  std::string open =
      Script("siphon.http_api { listen = \"0.0.0.0:" + std::to_string(FreeTcpPort()) +
                 "\" }\nsiphon.replicate \"a\" { source = pg }\n",
             "open.lua");
  auto r = siphon::test::Run({SIPHON_BIN, "run", open}, Env(false), std::chrono::seconds(20));
  EXPECT_EQ(r.exit_code, 2) << Dump(r);
  EXPECT_NE(r.err.find("token"), std::string::npos) << Dump(r);
  // A mistake in it is a script error with its line.
  std::string bad = Script(
      "siphon.http_api { listen = 8787, tokn = \"x\" }\n"
      "siphon.replicate \"a\" { source = pg }\n",
      "bad.lua");
  r = siphon::test::Run({SIPHON_BIN, "check", bad}, Env(false), std::chrono::seconds(20));
  EXPECT_EQ(r.exit_code, 2) << Dump(r);
  EXPECT_NE(r.err.find("bad.lua:3:"), std::string::npos) << Dump(r);
}

// `--http` moves the script's API to another address; the script's token still guards it
// (it was dropped: the API answered without one).
TEST_F(HttpApi, TheFlagMovesTheScriptsApiAndKeepsItsToken) {
  db_.Exec("CREATE TABLE a (id int8 PRIMARY KEY)");
  std::string declared = "siphon.http_api { listen = \"127.0.0.1:" + std::to_string(FreeTcpPort()) +
                         "\", token = \"script-token\" }\n";
  std::string script = Script(declared + "siphon.replicate \"a\" { source = pg }\n");
  auto p = Start(script, false);
  EXPECT_EQ(Http(port_, "GET", "/status").status, 401);
  EXPECT_EQ(Http(port_, "GET", "/status", "script-token").status, 200);
  // A reload rotates it here too.
  Script(
      "siphon.http_api { listen = \"127.0.0.1:1\", token = \"rotated-token\" }\n"
      "siphon.replicate \"a\" { source = pg }\n");
  p->Signal(SIGHUP);
  EXPECT_TRUE(WaitFor([&] { return Http(port_, "GET", "/status", "rotated-token").status == 200; }))
      << p->Stderr();
  EXPECT_EQ(Http(port_, "GET", "/status", "script-token").status, 401);
  EXPECT_EQ(p->Stderr().find("stays on"), std::string::npos) << p->Stderr();
  // A reload that drops the token does not open the API: removing it needs a restart.
  Script("siphon.replicate \"a\" { source = pg }\n");
  p->Signal(SIGHUP);
  EXPECT_TRUE(p->WaitForOutput("keeps its token (removing it needs a restart)")) << p->Stderr();
  EXPECT_EQ(Http(port_, "GET", "/status").status, 401);
  EXPECT_EQ(Http(port_, "GET", "/status", "rotated-token").status, 200);
  p->Signal(SIGTERM);
  EXPECT_EQ(p->Wait(std::chrono::seconds(10)).exit_code, 0);
}

TEST_F(HttpApi, MetricsPassPromtool) {
  std::string promtool;
  for (const char* dir : {"/usr/bin/", "/usr/local/bin/", "/bin/"}) {
    if (std::filesystem::exists(std::string(dir) + "promtool"))
      promtool = std::string(dir) + "promtool";
  }
  ASSERT_FALSE(promtool.empty())
      << "promtool is missing (Debian package `prometheus`): run scripts/setup.sh";
  db_.Exec(R"sql(
    CREATE TABLE good (id int8 PRIMARY KEY, v text);
    INSERT INTO good SELECT g, 'v' FROM generate_series(1, 100) g;
  )sql");
  auto p = Start(Script(R"(
siphon.replicate "good" { source = pg, every = "300ms" }
siphon.replicate "bad \"one\"" { source = pg, from = "public.missing", every = "300ms" }
)"));
  ASSERT_TRUE(WaitFor([&] {
    return Get("/metrics").body.find("siphon_errors_total{table=\"bad \\\"one\\\"\"") !=
           std::string::npos;
  })) << Get("/metrics").body;
  ASSERT_TRUE(WaitFor([&] {
    return Get("/metrics").body.find("siphon_sync_runs_total{table=\"good\",outcome=\"ok\"} 2") !=
           std::string::npos;
  }));
  std::string body = Get("/metrics").body;
  for (const char* name :
       {"siphon_rows_replicated_total{table=\"good\"} ", "siphon_rows_rejected_total{",
        "siphon_sync_duration_seconds_bucket{table=\"good\",le=\"+Inf\"}",
        // Bounds print as written, so a selector such as {le="0.1"} matches.
        "siphon_sync_duration_seconds_bucket{table=\"good\",le=\"0.1\"}",
        "siphon_sync_duration_seconds_bucket{table=\"good\",le=\"0.005\"}",
        "siphon_sync_duration_seconds_sum{", "siphon_lag_seconds{table=\"good\"}",
        "siphon_last_success_timestamp_seconds{table=\"good\"} 1", "outcome=\"error\"",
        "siphon_table_paused{", "siphon_process_resident_memory_bytes ",
        "siphon_lua_memory_bytes "}) {
    EXPECT_NE(body.find(name), std::string::npos) << name << "\n" << body;
  }
  std::string file = dir_.File("metrics.txt");
  WriteFile(file, body);
  auto check = siphon::test::Run({"sh", "-c", promtool + " check metrics < " + file});
  EXPECT_EQ(check.exit_code, 0) << Dump(check) << body;
  EXPECT_EQ(check.out + check.err, "") << Dump(check);
  p->Signal(SIGTERM);
  EXPECT_EQ(p->Wait(std::chrono::seconds(10)).exit_code, 0);
}

TEST_F(HttpApi, SigtermDuringALargeSyncExitsCleanlyAndARerunFinishes) {
  db_.Exec(R"sql(
    CREATE TABLE large (id int8 PRIMARY KEY, v text NOT NULL, n int8 NOT NULL);
    INSERT INTO large SELECT g, repeat(md5(g::text), 4), g * 7 FROM generate_series(1, 600000) g;
    ANALYZE large;
  )sql");
  // A transform that spends a few microseconds per row keeps the sync running for well over
  // the 5 s after which a progress line is logged, however fast the machine is today.
  std::string script = Script(R"(siphon.replicate "large" { source = pg, batch = 2000,
  transform = function(row) local x = 0; for i = 1, 3000 do x = x + i end; return row end })");
  Process p({SIPHON_BIN, "once", script}, Env(false));
  // Progress without a TTY: a log line every 5 s while the run lasts.
  bool progressed = p.WaitForOutput("rows/s", std::chrono::seconds(30));
  ASSERT_TRUE(p.Running()) << "the sync finished before the signal\n" << p.Stderr();
  EXPECT_TRUE(progressed) << p.Stderr();
  EXPECT_NE(p.Stderr().find(" / ~"), std::string::npos) << p.Stderr();
  auto signalled = std::chrono::steady_clock::now();
  p.Signal(SIGTERM);
  ProcessResult r = p.Wait(std::chrono::seconds(20));
  auto took = std::chrono::steady_clock::now() - signalled;
  EXPECT_EQ(r.exit_code, 0) << Dump(r);
  EXPECT_LT(took, std::chrono::seconds(5));
  EXPECT_EQ(TargetScalar("PRAGMA integrity_check"), "ok");
  int64_t partial = std::stoll(TargetCount("large"));
  EXPECT_GT(partial, 0);
  EXPECT_LT(partial, 600000);

  auto rerun = siphon::test::Run({SIPHON_BIN, "once", script, "--quiet"}, Env(false));
  ASSERT_EQ(rerun.exit_code, 0) << Dump(rerun);
  EXPECT_EQ(rerun.err.find("rows/s"), std::string::npos) << "--quiet still printed progress";
  EXPECT_EQ(TargetScalar("PRAGMA integrity_check"), "ok");
  EXPECT_EQ(TargetScalar("SELECT count(*) || '/' || sum(id) || '/' || sum(n) || '/' || "
                         "sum(length(v)) FROM large"),
            db_.Scalar("SELECT count(*) || '/' || sum(id) || '/' || sum(n) || '/' || "
                       "sum(length(v)) FROM large"));
}

// A stop does not wait for a source statement that takes long (here: a page read waiting for
// a lock another session holds): siphon exits at once, 0, and the table is left as it was.
// (It waited for the statement, up to the 5-minute read timeout.)
TEST_F(HttpApi, SigtermDoesNotWaitForASlowSourceStatement) {
  db_.Exec("CREATE TABLE slow (id int8 PRIMARY KEY); INSERT INTO slow VALUES (1)");
  db_.Exec("BEGIN; LOCK TABLE slow IN ACCESS EXCLUSIVE MODE");
  StoppedRun stop = StopWhileBlocked(
      {SIPHON_BIN, "once", Script(R"(siphon.replicate "slow" { source = pg })")}, Env(false));
  // The abandoned statement ends on the server too, lock or no lock
  // (client_connection_check_interval), instead of waiting there for the lock.
  PGconn* watcher = PQconnectdb(db_.Dsn().c_str());
  ASSERT_EQ(PQstatus(watcher), CONNECTION_OK) << PQerrorMessage(watcher);
  auto siphon_sessions = [&] {
    PGresult* res = PQexec(watcher,
                           "SELECT count(*) FROM pg_stat_activity WHERE datname = "
                           "current_database() AND application_name = 'siphon'");
    std::string n = PQresultStatus(res) == PGRES_TUPLES_OK ? PQgetvalue(res, 0, 0) : "?";
    PQclear(res);
    return n;
  };
  EXPECT_TRUE(WaitFor([&] { return siphon_sessions() == "0"; }, std::chrono::seconds(6)))
      << siphon_sessions() << " siphon session(s) left";
  PQfinish(watcher);
  db_.Exec("ROLLBACK");
  const ProcessResult& r = stop.result;
  ASSERT_FALSE(r.timed_out) << "it ended before the signal, or never\n" << Dump(r);
  EXPECT_EQ(r.exit_code, 0) << Dump(r);
  EXPECT_LT(stop.took, std::chrono::seconds(3)) << Dump(r);
  EXPECT_NE(r.err.find("slow: 0 rows"), std::string::npos) << Dump(r);
  EXPECT_EQ(r.err.find("error"), std::string::npos) << Dump(r);
}

// A SIGHUP that arrives while siphon stops must not load the script again: that would start
// tables on a replicator that is stopping.
TEST_F(HttpApi, SighupWhileStoppingIsIgnored) {
  db_.Exec("CREATE TABLE a (id int8 PRIMARY KEY); INSERT INTO a VALUES (1)");
  // A receiver that never answers: the `synced` handler's request keeps the stop draining
  // (up to its timeout) after the tables have stopped.
  SilentListener hang;
  const std::string url = "http://127.0.0.1:" + std::to_string(hang.port()) + "/hook";
  const std::string script = Script(R"(siphon.replicate "a" { source = pg, every = "1h" }
siphon.on("synced", function(ev)
  siphon.log.info("posting")
  siphon.http.request { url = ")" + url +
                                    R"(", timeout = "4s" }
end))");
  auto p = Start(script);
  ASSERT_TRUE(p->WaitForOutput("posting")) << p->Stderr();
  p->Signal(SIGTERM);
  ASSERT_TRUE(p->WaitForOutput("finishing the pages in flight")) << p->Stderr();
  p->Signal(SIGHUP);
  ProcessResult r = p->Wait(std::chrono::seconds(20));
  EXPECT_EQ(r.exit_code, 0) << Dump(r);
  EXPECT_NE(r.err.find("SIGHUP: not reloading, siphon is stopping"), std::string::npos) << Dump(r);
  EXPECT_EQ(r.err.find("reloading " + script), std::string::npos) << Dump(r);
}

// A second signal while the first one's stop waits (here for an event handler's HTTP call to
// a receiver that never answers) ends siphon at once with 128 + its number, and says so: a
// stop cut short is not a success (it exited 0, as a finished stop does).
TEST_F(HttpApi, ASecondSignalExitsAtOnceWithItsOwnCode) {
  db_.Exec("CREATE TABLE a (id int8 PRIMARY KEY); INSERT INTO a VALUES (1)");
  SilentListener hang;
  const std::string url = "http://127.0.0.1:" + std::to_string(hang.port()) + "/hook";
  for (int second : {SIGINT, SIGTERM}) {
    auto p = Start(Script(R"(siphon.replicate "a" { source = pg, every = "1h" }
siphon.on("synced", function(ev)
  siphon.log.info("posting")
  siphon.http.request { url = ")" +
                          url + R"(", timeout = "20s" }
end))"));
    ASSERT_TRUE(p->WaitForOutput("posting")) << p->Stderr();
    p->Signal(SIGTERM);
    ASSERT_TRUE(p->WaitForOutput("a second signal exits at once")) << p->Stderr();
    auto signalled = std::chrono::steady_clock::now();
    p->Signal(second);
    ProcessResult r = p->Wait(std::chrono::seconds(20));
    EXPECT_LT(std::chrono::steady_clock::now() - signalled, std::chrono::seconds(2)) << Dump(r);
    EXPECT_EQ(r.exit_code, 128 + second) << Dump(r);
    EXPECT_NE(r.err.find("second signal " + std::to_string(second)), std::string::npos) << Dump(r);
    EXPECT_NE(r.err.find("exit code " + std::to_string(128 + second)), std::string::npos)
        << Dump(r);
    EXPECT_EQ(TargetScalar("PRAGMA integrity_check"), "ok");
  }
}

TEST_F(HttpApi, ReloadAddsChangesAndKeepsCursorsAndSurvivesABrokenScript) {
  db_.Exec(R"sql(
    CREATE TABLE one (id int8 PRIMARY KEY, seq int8 NOT NULL);
    CREATE INDEX ON one (seq, id);
    INSERT INTO one SELECT g, g FROM generate_series(1, 300) g;
    CREATE TABLE two (id int8 PRIMARY KEY, seq int8 NOT NULL);
    INSERT INTO two SELECT g, g FROM generate_series(1, 50) g;
  )sql");
  const std::string first =
      R"(siphon.replicate "one" { source = pg, cursor = "seq", every = "300ms" }
)";
  std::string script = Script(first);
  const std::string sum_one = "SELECT sum(rows) FROM _siphon_log WHERE table_name = 'one'";
  auto p = Start(script);
  ASSERT_TRUE(WaitFor([&] { return TargetCount("one") == "300"; }));

  // A broken script: 400 with the error, the deployment keeps running.
  WriteFile(script, "siphon.replicate \"one\" { source = ");
  HttpResult bad = Post("/reload");
  EXPECT_EQ(bad.status, 400) << bad.body;
  EXPECT_NE(bad.body.find("deploy.lua"), std::string::npos) << bad.body;
  db_.Exec("INSERT INTO one VALUES (301, 301)");
  EXPECT_TRUE(WaitFor([&] { return TargetCount("one") == "301"; }));

  // "one" changed (batch), "two" added.
  Script(R"(siphon.replicate "one" { source = pg, cursor = "seq", every = "300ms", batch = 100 }
siphon.replicate "two" { source = pg, every = "300ms" }
)");
  HttpResult ok = Post("/reload");
  ASSERT_EQ(ok.status, 200) << ok.body;
  EXPECT_NE(ok.body.find("\"added\": [\n    \"two\"\n  ]"), std::string::npos) << ok.body;
  EXPECT_NE(ok.body.find("\"changed\": [\n    \"one\"\n  ]"), std::string::npos) << ok.body;
  EXPECT_TRUE(WaitFor([&] { return TargetCount("two") == "50"; }));
  EXPECT_TRUE(
      WaitFor([&] { return Get("/tables/one").body.find("\"batch\": 100") != std::string::npos; }));
  // No cursor lost: the restarted table's runs pull nothing new.
  std::this_thread::sleep_for(std::chrono::milliseconds(1000));
  EXPECT_EQ(TargetScalar(sum_one), "301");

  // SIGHUP does the same: "two" removed.
  Script(first);
  p->Signal(SIGHUP);
  EXPECT_TRUE(p->WaitForOutput("reloaded: 0 added, 1 removed"));
  EXPECT_EQ(Get("/tables/two").status, 404);
  db_.Exec("INSERT INTO one VALUES (302, 302)");
  EXPECT_TRUE(WaitFor([&] { return TargetCount("one") == "302"; }));
  // A run's record commits after its last page: wait for it, then make sure later runs pull
  // nothing again.
  EXPECT_TRUE(WaitFor([&] { return TargetScalar(sum_one) == "302"; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(1000));
  EXPECT_EQ(TargetScalar(sum_one), "302");
  p->Signal(SIGTERM);
  EXPECT_EQ(p->Wait(std::chrono::seconds(10)).exit_code, 0);
}

// A reload that changes only a source's password (which no log line shows) makes a new
// source: the tables on it reconnect with the new password. Before, they kept the old one.
TEST_F(HttpApi, AReloadWithARotatedPasswordReconnectsWithIt) {
  const std::string role = "siphon_rotate_" + db_.name();
  db_.Exec(
      "CREATE TABLE r (id int8 PRIMARY KEY); INSERT INTO r SELECT generate_series(1, 10);"
      "CREATE ROLE " +
      role + " LOGIN PASSWORD 'first-pw'; GRANT SELECT ON r TO " + role);
  auto script_with = [&](const std::string& password) {
    return Script("local rot = siphon.postgres { dsn = \"" + db_.Dsn() + " user=" + role +
                  " password=" + password +
                  "\" }\nsiphon.replicate \"r\" { source = rot, every = \"300ms\" }\n");
  };
  auto p = Start(script_with("first-pw"));
  ASSERT_TRUE(WaitFor([&] { return TargetCount("r") == "10"; })) << p->Stderr();
  db_.Exec("ALTER ROLE " + role + " PASSWORD 'second-pw'");
  db_.Exec("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '" + role + "'");
  script_with("second-pw");
  p->Signal(SIGHUP);
  EXPECT_TRUE(p->WaitForOutput("0 added, 0 removed, 1 changed")) << p->Stderr();
  db_.Exec("INSERT INTO r VALUES (11)");
  EXPECT_TRUE(WaitFor([&] { return TargetCount("r") == "11"; })) << p->Stderr();
  EXPECT_EQ(p->Stderr().find("second-pw"), std::string::npos);
  p->Signal(SIGTERM);
  EXPECT_EQ(p->Wait(std::chrono::seconds(10)).exit_code, 0);
  db_.Exec("DROP OWNED BY " + role + "; DROP ROLE " + role);
}

// A table with a transform counts as changed on every reload (a Lua function cannot be
// compared): its new runner goes on from the old one. Before, its counters restarted from
// zero and it ran at once, so with every = "1h" each reload meant a full run.
TEST_F(HttpApi, AReloadKeepsAChangedTablesCountersAndSchedule) {
  db_.Exec("CREATE TABLE t (id int8 PRIMARY KEY); INSERT INTO t SELECT generate_series(1, 20)");
  auto script_every = [&](const std::string& every) {
    return Script(R"(siphon.replicate "t" { source = pg, every = ")" + every +
                  R"(", transform = function(row) return row end }
)");
  };
  const std::string runs = "SELECT count(*) FROM _siphon_log WHERE table_name = 't'";
  auto p = Start(script_every("1h"));
  ASSERT_TRUE(WaitFor([&] { return TargetScalar(runs) == "1"; })) << p->Stderr();
  const nlohmann::json before = nlohmann::json::parse(Get("/tables/t").body);
  ASSERT_EQ(before["runs_ok"], 1) << before.dump();
  ASSERT_EQ(before["rows_written"], 20) << before.dump();
  ASSERT_TRUE(before["next_run_at"].is_string()) << before.dump();

  // The same script, then a longer interval: changed, yet the next run stays where it was.
  HttpResult same = Post("/reload");
  ASSERT_EQ(same.status, 200) << same.body;
  EXPECT_NE(same.body.find("\"changed\": [\n    \"t\"\n  ]"), std::string::npos) << same.body;
  script_every("2h");
  ASSERT_EQ(Post("/reload").status, 200);
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  const nlohmann::json after = nlohmann::json::parse(Get("/tables/t").body);
  EXPECT_EQ(after["runs_ok"], 1) << after.dump();
  EXPECT_EQ(after["rows_written"], 20) << after.dump();
  EXPECT_EQ(after["state"], "idle") << after.dump();
  EXPECT_EQ(after["every_s"], 7200) << after.dump();
  EXPECT_EQ(after["next_run_at"], before["next_run_at"]) << after.dump();
  EXPECT_EQ(after["last_success_at"], before["last_success_at"]) << after.dump();
  EXPECT_NE(Get("/metrics").body.find("siphon_sync_runs_total{table=\"t\",outcome=\"ok\"} 1\n"),
            std::string::npos);
  EXPECT_EQ(TargetScalar(runs), "1");

  // A shorter interval brings the next run forward: due 1 s after the last one, so now.
  script_every("1s");
  ASSERT_EQ(Post("/reload").status, 200);
  EXPECT_TRUE(WaitFor([&] { return TargetScalar(runs) == "2"; }, std::chrono::seconds(5)));
  EXPECT_TRUE(WaitFor(
      [&] { return nlohmann::json::parse(Get("/tables/t").body)["runs_ok"].get<int64_t>() >= 2; }));
  p->Signal(SIGTERM);
  EXPECT_EQ(p->Wait(std::chrono::seconds(10)).exit_code, 0);
}

// A reload during an outage goes on with it: the next `error` has the next attempt, not 1
// (one alert per outage), and `lagging` does not fire a second time. Before, a changed table
// started over at attempt 1 and lagged again max_lag after the reload ("no successful sync
// for 1 s", the real lag being longer).
TEST_F(HttpApi, AReloadDuringAnOutageKeepsItsAttemptCountAndLagging) {
  auto script_every = [&](const std::string& every) {
    return Script(R"(siphon.replicate "gone" { source = pg, from = "public.later", every = ")" +
                  every + R"(", max_lag = "1s" }
siphon.on("error", function(ev) siphon.log.warn("ERROR %s attempt %d", ev.table, ev.attempt) end)
siphon.on("lagging", function(ev) siphon.log.warn("LAGGING %s after %.1f s", ev.table, ev.lag_s) end)
siphon.on("recovered", function(ev) siphon.log.warn("RECOVERED %s", ev.table) end)
)");
  };
  auto p = Start(script_every("300ms"));
  ASSERT_TRUE(p->WaitForOutput("ERROR gone attempt 2")) << p->Stderr();
  ASSERT_TRUE(p->WaitForOutput("LAGGING gone after")) << p->Stderr();
  script_every("400ms");
  HttpResult ok = Post("/reload");
  ASSERT_EQ(ok.status, 200) << ok.body;
  EXPECT_NE(ok.body.find("\"changed\": [\n    \"gone\"\n  ]"), std::string::npos) << ok.body;
  EXPECT_GE(nlohmann::json::parse(Get("/tables/gone").body)["attempt"].get<int64_t>(), 2);
  ASSERT_TRUE(p->WaitForOutput("ERROR gone attempt 3")) << p->Stderr();
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));  // past max_lag again
  db_.Exec("CREATE TABLE later (id int PRIMARY KEY); INSERT INTO later VALUES (1)");
  ASSERT_TRUE(p->WaitForOutput("RECOVERED gone")) << p->Stderr();
  p->Signal(SIGTERM);
  ProcessResult r = p->Wait(std::chrono::seconds(10));
  EXPECT_EQ(r.exit_code, 0) << Dump(r);
  EXPECT_EQ(Count(r.err, "ERROR gone attempt 1\n"), 1) << r.err;
  EXPECT_EQ(Count(r.err, "LAGGING gone"), 1) << r.err;
  EXPECT_EQ(Count(r.err, "lagging: no successful sync"), 1) << r.err;
}

// The same table in another database (a failover to a new primary, or other data): the
// cursor is kept, and a warning names both sources and how to pull the table again. Before,
// `_siphon_state.source` changed silently.
TEST_F(HttpApi, AReloadToAnotherDatabaseKeepsTheCursorAndSaysSo) {
  PgDb replica;
  const std::string rows =
      "CREATE TABLE f (id int8 PRIMARY KEY); "
      "INSERT INTO f SELECT generate_series(1, 10)";
  db_.Exec(rows);
  replica.Exec(rows + "; INSERT INTO f SELECT generate_series(11, 15)");
  auto script_on = [&](const PgDb& db) {
    return Script("local src = siphon.postgres { dsn = \"" + db.Dsn() +
                  "\" }\nsiphon.replicate \"f\" { source = src, cursor = \"id\", every = "
                  "\"300ms\" }\n");
  };
  const std::string script = script_on(db_);
  auto p = Start(script);
  ASSERT_TRUE(WaitFor([&] { return TargetCount("f") == "10"; })) << p->Stderr();
  EXPECT_EQ(p->Stderr().find("the cursor is kept"), std::string::npos);
  script_on(replica);
  p->Signal(SIGHUP);
  ASSERT_TRUE(p->WaitForOutput("the cursor is kept")) << p->Stderr();
  // Only the rows above the cursor are pulled from the new source.
  EXPECT_TRUE(WaitFor([&] { return TargetCount("f") == "15"; })) << p->Stderr();
  EXPECT_TRUE(WaitFor([&] {
    return TargetScalar("SELECT sum(rows) FROM _siphon_log WHERE table_name = 'f'") == "15";
  }));
  EXPECT_NE(TargetScalar("SELECT source FROM _siphon_state WHERE table_name = 'f'")
                .find("/" + replica.name() + " "),
            std::string::npos);
  std::this_thread::sleep_for(std::chrono::milliseconds(700));  // more runs: no new warning
  p->Signal(SIGTERM);
  ProcessResult r = p->Wait(std::chrono::seconds(10));
  EXPECT_EQ(r.exit_code, 0) << Dump(r);
  ASSERT_EQ(Count(r.err, "the cursor is kept"), 1) << r.err;
  const std::string line = r.err.substr(r.err.find("the stored cursor was read from"));
  const std::string warning = line.substr(0, line.find('\n'));
  EXPECT_NE(warning.find("/" + db_.name() + " "), std::string::npos) << warning;
  EXPECT_NE(warning.find("/" + replica.name() + " "), std::string::npos) << warning;
  EXPECT_NE(warning.find("`siphon resync " + script + " --table f`"), std::string::npos) << warning;
}

TEST_F(HttpApi, ProgressRedrawsOneLinePerTableOnATerminal) {
  ASSERT_TRUE(std::filesystem::exists("/usr/bin/script"))
      << "util-linux `script` is needed to give siphon a terminal";
  db_.Exec(R"sql(
    CREATE TABLE p (id int8 PRIMARY KEY, v text NOT NULL);
    INSERT INTO p SELECT g, md5(g::text) FROM generate_series(1, 300000) g;
    ANALYZE p;
  )sql");
  // The line shows for runs over 1 s: a transform that spends about 10 microseconds per row
  // keeps this one well past that, however fast the machine. (At 400 iterations a row, 1.36 s
  // once the source ran ahead of the transform, and the line never showed.)
  std::string script = Script(R"(siphon.replicate "p" { source = pg, batch = 100,
    transform = function(row) for _ = 1, 1500 do end return row end })");
  // `script` runs siphon on a pseudo-terminal and copies what it writes to stdout.
  auto r = siphon::test::Run(
      {"script", "-qfec", std::string(SIPHON_BIN) + " once " + script, "/dev/null"}, Env(false));
  ASSERT_EQ(r.exit_code, 0) << Dump(r);
  EXPECT_NE(r.out.find("\r\x1b[J\r\np  "), std::string::npos) << Dump(r);
  EXPECT_NE(r.out.find("\x1b[2A"), std::string::npos) << Dump(r);  // parked above the line
  EXPECT_NE(r.out.find(" / ~"), std::string::npos) << Dump(r);
  EXPECT_NE(r.out.find(" rows/s  ETA "), std::string::npos) << Dump(r);
  EXPECT_EQ(r.out.find("[progress]"), std::string::npos) << "log lines instead of a redrawn line";
  // Log lines written while the line is shown are never erased.
  EXPECT_NE(r.out.find("synced 300000 rows"), std::string::npos) << Dump(r);
  EXPECT_NE(r.out.find("p: 300000 rows"), std::string::npos) << Dump(r);
  EXPECT_EQ(TargetCount("p"), "300000");
}

// `--log-format json` on a terminal: every line is a JSON object, the progress ones too
// (the redrawn line, escape sequences and all, went out among them).
TEST_F(HttpApi, JsonLogsOnATerminalHaveNoRedrawnLine) {
  ASSERT_TRUE(std::filesystem::exists("/usr/bin/script"))
      << "util-linux `script` is needed to give siphon a terminal";
  db_.Exec(R"sql(
    CREATE TABLE p (id int8 PRIMARY KEY, v text NOT NULL);
    INSERT INTO p SELECT g, md5(g::text) FROM generate_series(1, 300000) g;
    ANALYZE p;
  )sql");
  // As in ProgressRedrawsOneLinePerTableOnATerminal: a run well past the 1 s after which a
  // terminal shows the line.
  std::string script = Script(R"(siphon.replicate "p" { source = pg, batch = 100,
    transform = function(row) for _ = 1, 1500 do end return row end })");
  auto r = siphon::test::Run(
      {"script", "-qfec", std::string(SIPHON_BIN) + " --log-format json once " + script,
       "/dev/null"},
      Env(false));
  ASSERT_EQ(r.exit_code, 0) << Dump(r);
  EXPECT_EQ(r.out.find("\x1b["), std::string::npos) << Dump(r);
  int lines = 0;
  size_t at = 0;
  while (at < r.out.size()) {
    size_t end = r.out.find('\n', at);
    if (end == std::string::npos) end = r.out.size();
    std::string line = r.out.substr(at, end - at);
    at = end + 1;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    ++lines;
    EXPECT_TRUE(nlohmann::json::accept(line)) << "not a JSON object: " << line;
  }
  EXPECT_GT(lines, 3) << Dump(r);
  EXPECT_NE(r.out.find(" p: 300000 rows\""), std::string::npos) << Dump(r);
}

// With max_connections = 1, a second table's run waits while the first one syncs: /status
// shows it `waiting` and the source's connection in use, a pause withdraws the waiting run
// and a resume queues it again, and a SIGTERM while it waits exits at once. Run again, the
// tables take turns on the one connection and both arrive.
TEST_F(HttpApi, ARunWaitingForTheSourcesOnlyConnectionShowsWaitingAndRunsInTurn) {
  db_.Exec(
      "CREATE TABLE big (id int8 PRIMARY KEY, v text NOT NULL); INSERT INTO big SELECT g, "
      "md5(g::text) FROM generate_series(1, 30000) g; CREATE TABLE small (id int8 PRIMARY "
      "KEY); INSERT INTO small SELECT generate_series(1, 10)");
  const std::string path = dir_.File("deploy.lua");
  WriteFile(path,
            "local pg = siphon.postgres { dsn = siphon.env(\"TEST_PG_DSN\"), "
            "max_connections = 1 }\nsiphon.target { path = \"" +
                Replica() + R"(" }
siphon.replicate "big" { source = pg, batch = 500, every = "1h",
  transform = function(row) local x = 0; for i = 1, 3000 do x = x + i end; return row end }
siphon.replicate "small" { source = pg, every = "1h" }
)");
  auto p = Start(path);
  auto state = [&](const std::string& table) {
    auto j = nlohmann::json::parse(Get("/tables/" + table).body, nullptr, false);
    return j.is_object() ? j.value("state", "") : "";
  };
  // Tables start in their declaration order: big borrows the connection, small waits.
  ASSERT_TRUE(WaitFor([&] { return state("small") == "waiting"; })) << p->Stderr();
  EXPECT_EQ(state("big"), "running");
  auto status = nlohmann::json::parse(Get("/status").body);
  ASSERT_EQ(status["sources"].size(), 1u) << status.dump();
  EXPECT_EQ(status["sources"][0]["kind"], "postgres") << status.dump();
  EXPECT_EQ(status["sources"][0]["max_connections"], 1) << status.dump();
  EXPECT_EQ(status["sources"][0]["in_use"], 1) << status.dump();
  EXPECT_EQ(status["sources"][0]["waiting"], 1) << status.dump();

  ASSERT_EQ(Post("/tables/small/pause").status, 200);
  EXPECT_EQ(state("small"), "paused");
  EXPECT_EQ(nlohmann::json::parse(Get("/status").body)["sources"][0]["waiting"], 0);
  ASSERT_EQ(Post("/tables/small/resume").status, 200);
  EXPECT_EQ(state("small"), "waiting");
  EXPECT_EQ(nlohmann::json::parse(Get("/status").body)["sources"][0]["waiting"], 1);
  p->Signal(SIGTERM);
  ProcessResult r = p->Wait(std::chrono::seconds(10));
  EXPECT_EQ(r.exit_code, 0) << Dump(r);
  EXPECT_EQ(TargetCount("small"), "") << Dump(r);  // it never ran

  r = siphon::test::Run({SIPHON_BIN, "once", path}, Env());
  ASSERT_EQ(r.exit_code, 0) << Dump(r);
  EXPECT_EQ(TargetCount("big"), "30000");
  EXPECT_EQ(TargetCount("small"), "10");
}
}  // namespace
}  // namespace siphon::test

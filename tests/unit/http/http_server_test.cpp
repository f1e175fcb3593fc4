// The admin API's HTTP layer on a real libuv loop and real loopback sockets (no database):
// parsing helpers, limits, keep-alive, pipelining, timeouts, the connection cap.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <thread>

#include "runtime/cli/progress.hpp"
#include "runtime/http/http_server.hpp"
#include "runtime/http/metrics.hpp"

namespace siphon {
namespace {

TEST(ListenAddress, Forms) {
  auto a = ParseListenAddress("127.0.0.1:8787");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->host, "127.0.0.1");
  EXPECT_EQ(a->port, 8787);
  EXPECT_TRUE(a->loopback);
  a = ParseListenAddress("8787");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->host, "127.0.0.1");
  a = ParseListenAddress(":9000");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->host, "127.0.0.1");
  EXPECT_EQ(a->port, 9000);
  a = ParseListenAddress("localhost:1");
  ASSERT_TRUE(a.ok());
  EXPECT_TRUE(a->loopback);
  a = ParseListenAddress("127.9.9.9:80");
  ASSERT_TRUE(a.ok());
  EXPECT_TRUE(a->loopback);
  a = ParseListenAddress("[::1]:8787");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->host, "::1");
  EXPECT_TRUE(a->loopback);
  a = ParseListenAddress("0.0.0.0:8787");
  ASSERT_TRUE(a.ok());
  EXPECT_FALSE(a->loopback);
  a = ParseListenAddress("[::]:8787");
  ASSERT_TRUE(a.ok());
  EXPECT_FALSE(a->loopback);
  a = ParseListenAddress("10.1.2.3:443");
  ASSERT_TRUE(a.ok());
  EXPECT_FALSE(a->loopback);
  for (const char* bad : {"", "127.0.0.1", "127.0.0.1:", "127.0.0.1:0", "127.0.0.1:65536",
                          "127.0.0.1:80x", "example.com:80", "[::1]", "[::1]8787", "1.2.3:80"}) {
    EXPECT_FALSE(ParseListenAddress(bad).ok()) << bad;
  }
}

TEST(ConstantTime, Equality) {
  EXPECT_TRUE(ConstantTimeEquals("secret", "secret"));
  EXPECT_FALSE(ConstantTimeEquals("secreT", "secret"));
  EXPECT_FALSE(ConstantTimeEquals("secret1", "secret"));
  EXPECT_FALSE(ConstantTimeEquals("secre", "secret"));
  EXPECT_FALSE(ConstantTimeEquals("", "secret"));
  EXPECT_TRUE(ConstantTimeEquals("", ""));
  EXPECT_FALSE(ConstantTimeEquals(std::string("secret\0x", 8), "secret"));
}

TEST(PercentDecode, Escapes) {
  EXPECT_EQ(PercentDecode("a%20b%2Fc", false), "a b/c");
  EXPECT_EQ(PercentDecode("a+b", true), "a b");
  EXPECT_EQ(PercentDecode("a+b", false), "a+b");
  EXPECT_EQ(PercentDecode("%zz%4", false), "%zz%4");
  EXPECT_EQ(PercentDecode("%41", false), "A");
}

TEST(QueryParam, Lookup) {
  HttpRequest r;
  r.query = "limit=5&table=my%20t&flag&x=1+2";
  std::string v;
  ASSERT_TRUE(r.QueryParam("limit", &v));
  EXPECT_EQ(v, "5");
  ASSERT_TRUE(r.QueryParam("table", &v));
  EXPECT_EQ(v, "my t");
  ASSERT_TRUE(r.QueryParam("flag", &v));
  EXPECT_EQ(v, "");
  ASSERT_TRUE(r.QueryParam("x", &v));
  EXPECT_EQ(v, "1 2");
  EXPECT_FALSE(r.QueryParam("nope", &v));
}

TEST(Metrics, LabelEscaping) {
  EXPECT_EQ(EscapeLabel("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
  EXPECT_GT(ResidentMemoryBytes(), 0);
}

// The text format is UTF-8: one label value that is not (a table named in a Latin-1 script,
// "caf\xe9") made a scraper reject the whole page. Such bytes become U+FFFD; valid UTF-8 is
// kept as is.
TEST(Metrics, ALabelThatIsNotUtf8IsReplaced) {
  const std::string replacement = "\xEF\xBF\xBD";
  EXPECT_EQ(EscapeLabel("caf\xe9"), "caf" + replacement);
  EXPECT_EQ(EscapeLabel("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"),
            "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
  EXPECT_EQ(EscapeLabel("\xff\"x"), replacement + "\\\"x");
  // Overlong forms, surrogates, beyond U+10FFFF and cut sequences are not UTF-8 either.
  EXPECT_EQ(EscapeLabel("\xc0\xaf"), replacement + replacement);
  EXPECT_EQ(EscapeLabel("\xed\xa0\x80"), replacement + replacement + replacement);
  EXPECT_EQ(EscapeLabel("\xf4\x90\x80\x80"), replacement + replacement + replacement + replacement);
  EXPECT_EQ(EscapeLabel("a\xe2\x82"), "a" + replacement + replacement);
}

TEST(ProgressLine, Format) {
  EXPECT_EQ(Progress::Thousands(0), "0");
  EXPECT_EQ(Progress::Thousands(999), "999");
  EXPECT_EQ(Progress::Thousands(1000), "1,000");
  EXPECT_EQ(Progress::Thousands(1234567), "1,234,567");
  EXPECT_EQ(Progress::Line("orders", 123456, 1000000, 45678, 8),
            "orders    123,456 / ~1,000,000 rows  45,678 rows/s  ETA 20 s");
  EXPECT_EQ(Progress::Line("t", 10, -1, 0, 0), "t  10 rows");
  EXPECT_EQ(Progress::Line("t", 10, 5, 2, 0), "t  10 / ~10 rows  2 rows/s");
}

/// An HttpServer on its own loop thread; requests come from raw sockets in the test thread.
class ServerTest : public ::testing::Test {
 protected:
  void Start(HttpLimits limits) {
    uv_loop_init(&loop_);
    server_ = std::make_unique<HttpServer>(&loop_, limits, [this](const HttpRequest& r) {
      ++handled_;
      HttpResponse resp;
      resp.body = r.method + " " + r.path + " " + r.query + " " + std::to_string(r.body.size());
      resp.body.append(pad_bytes_, '.');
      return resp;
    });
    ASSERT_TRUE(server_->Listen("127.0.0.1", 0).ok());
    port_ = server_->port();
    uv_async_init(&loop_, &stop_, [](uv_async_t* a) {
      auto* self = static_cast<ServerTest*>(a->data);
      self->server_.reset();
      uv_close(reinterpret_cast<uv_handle_t*>(a), nullptr);
    });
    stop_.data = this;
    thread_ = std::thread([this] { uv_run(&loop_, UV_RUN_DEFAULT); });
  }
  void TearDown() override {
    if (!thread_.joinable()) return;
    uv_async_send(&stop_);
    thread_.join();
    uv_loop_close(&loop_);
  }

  int Connect() {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port_));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
    return fd;
  }
  static void Send(int fd, const std::string& s) {
    size_t off = 0;
    while (off < s.size()) {
      ssize_t n = send(fd, s.data() + off, s.size() - off, MSG_NOSIGNAL);
      if (n <= 0) return;
      off += static_cast<size_t>(n);
    }
  }
  /// Reads until EOF or the timeout; `eof` says which.
  static std::string Read(int fd, int timeout_ms, bool* eof = nullptr) {
    std::string out;
    if (eof) *eof = false;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (std::chrono::steady_clock::now() < deadline) {
      pollfd p{fd, POLLIN, 0};
      if (poll(&p, 1, 20) <= 0) continue;
      char buf[4096];
      ssize_t n = recv(fd, buf, sizeof(buf), 0);
      if (n <= 0) {
        if (eof) *eof = true;
        break;
      }
      out.append(buf, static_cast<size_t>(n));
    }
    return out;
  }

  uv_loop_t loop_;
  uv_async_t stop_;
  std::unique_ptr<HttpServer> server_;
  std::thread thread_;
  std::atomic<int> handled_{0};
  size_t pad_bytes_ = 0;  // added to every answer's body
  int port_ = 0;
};

TEST_F(ServerTest, PipelinedKeepAliveThenClose) {
  Start({});
  int fd = Connect();
  Send(fd,
       "GET /a%20b?x=1 HTTP/1.1\r\nHost: h\r\n\r\n"
       "POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc"
       "GET /last HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
       "GET /never HTTP/1.1\r\nHost: h\r\n\r\n");
  bool eof = false;
  std::string r = Read(fd, 2000, &eof);
  close(fd);
  EXPECT_TRUE(eof);
  EXPECT_NE(r.find("GET /a b x=1 0"), std::string::npos) << r;
  EXPECT_NE(r.find("POST /p  3"), std::string::npos) << r;
  EXPECT_NE(r.find("GET /last  0"), std::string::npos) << r;
  EXPECT_EQ(r.find("/never"), std::string::npos) << r;
  EXPECT_EQ(handled_.load(), 3);
}

// HEAD reaches the handler as a GET; the answer has the GET's headers and Content-Length but
// no body, so a request pipelined after it gets its own answer right behind the headers.
TEST_F(ServerTest, HeadIsAnsweredAsGetWithoutTheBody) {
  Start({});
  int fd = Connect();
  Send(fd,
       "HEAD /h?q HTTP/1.1\r\nHost: h\r\n\r\n"
       "GET /h?q HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
  bool eof = false;
  std::string r = Read(fd, 2000, &eof);
  close(fd);
  EXPECT_TRUE(eof);
  const std::string body = "GET /h q 0";
  const std::string length = "Content-Length: " + std::to_string(body.size()) + "\r\n";
  size_t end = r.find("\r\n\r\n");
  ASSERT_NE(end, std::string::npos) << r;
  EXPECT_EQ(r.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << r;
  EXPECT_NE(r.substr(0, end + 2).find(length), std::string::npos) << r;
  // What follows the HEAD's headers is the GET's answer, whose body is the one HEAD left out.
  const std::string rest = r.substr(end + 4);
  EXPECT_EQ(rest.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << r;
  EXPECT_NE(rest.find(length), std::string::npos) << r;
  EXPECT_EQ(rest.substr(rest.size() - body.size()), body) << r;
  EXPECT_EQ(r.find(body), r.rfind(body)) << r;  // once
  EXPECT_EQ(handled_.load(), 2);
}

// A client that pipelines requests without reading the answers: the server stops reading
// once 1 MiB of answers waits (instead of answering everything into memory), and goes on as
// the client reads.
TEST_F(ServerTest, AClientThatDoesNotReadIsNotAnsweredIntoMemory) {
  pad_bytes_ = 64 * 1024;
  Start({});
  int fd = Connect();
  constexpr int kRequests = 2000;  // ~125 MiB of answers
  std::string requests;
  for (int i = 0; i < kRequests; ++i) requests += "GET /r HTTP/1.1\r\nHost: h\r\n\r\n";
  Send(fd, requests);  // ~60 KiB: fits the socket buffers whether the server reads or not
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  // 1 MiB queued plus what the kernel's buffers hold: a few dozen answers, not 2000.
  EXPECT_LT(handled_.load(), 300);
  // Reading drains the answers, and every request is answered in order.
  std::string r;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  int answers = 0;
  while (answers < kRequests && std::chrono::steady_clock::now() < deadline) {
    r += Read(fd, 50);
    for (size_t p = r.find("HTTP/1.1 200"); p != std::string::npos; p = r.find("HTTP/1.1 200")) {
      ++answers;
      r.erase(0, p + 12);
    }
  }
  close(fd);
  EXPECT_EQ(answers, kRequests);
  EXPECT_EQ(handled_.load(), kRequests);
}

TEST_F(ServerTest, Http10ClosesUnlessKeepAlive) {
  Start({});
  int fd = Connect();
  Send(fd, "GET / HTTP/1.0\r\n\r\n");
  bool eof = false;
  std::string r = Read(fd, 2000, &eof);
  close(fd);
  EXPECT_TRUE(eof);
  EXPECT_NE(r.find("Connection: close"), std::string::npos) << r;
}

TEST_F(ServerTest, LimitsAnswer431And413And400) {
  HttpLimits limits;
  limits.max_header_bytes = 1024;
  limits.max_body_bytes = 100;
  Start(limits);
  struct Case {
    std::string request, status;
  } cases[] = {
      {"GET / HTTP/1.1\r\nX: " + std::string(2000, 'a') + "\r\n\r\n", "431"},
      {"GET /" + std::string(2000, 'a') + " HTTP/1.1\r\n\r\n", "431"},
      {"POST / HTTP/1.1\r\nContent-Length: 101\r\n\r\n", "413"},
      {"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n50\r\n" + std::string(80, 'a') +
           "\r\n50\r\n" + std::string(80, 'b') + "\r\n0\r\n\r\n",
       "413"},
      {"\x16\x03\x01\x02\x00 tls hello", "400"},
      {"GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n", "400"},
      {"GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", "400"},
  };
  for (const auto& c : cases) {
    int fd = Connect();
    Send(fd, c.request);
    bool eof = false;
    std::string r = Read(fd, 2000, &eof);
    close(fd);
    EXPECT_EQ(r.substr(0, 12), "HTTP/1.1 " + c.status) << c.request.substr(0, 60) << "\n" << r;
    EXPECT_NE(r.find("{\"error\":"), std::string::npos) << r;
    EXPECT_TRUE(eof);
  }
  // A body within the limit still works.
  int fd = Connect();
  Send(fd, "POST /ok HTTP/1.1\r\nContent-Length: 100\r\nConnection: close\r\n\r\n" +
               std::string(100, 'z'));
  std::string r = Read(fd, 2000);
  close(fd);
  EXPECT_NE(r.find("POST /ok  100"), std::string::npos) << r;
}

// A client still sending a body past the limit (chunked, so the size shows only as it comes)
// reads its 413: the server stops sending and drains what arrives for a while before it
// closes. It closed at once, with the body unread, and the kernel answered the client's
// next bytes with a reset that discarded the 413 (curl: "Connection reset by peer", no status).
TEST_F(ServerTest, AClientSendingTooLargeABodyReadsIts413) {
  Start({});
  for (int attempt = 0; attempt < 3; ++attempt) {
    // As curl does: the whole body is sent (or refused) before the answer is read.
    int fd = Connect();
    Send(fd, "POST /big HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n");
    const std::string chunk = "10000\r\n" + std::string(0x10000, 'x') + "\r\n";
    size_t sent = 0;  // of 4 MiB
    for (int i = 0; i < 64; ++i) {
      ssize_t n = 0;
      for (size_t off = 0; off < chunk.size(); off += static_cast<size_t>(n)) {
        n = send(fd, chunk.data() + off, chunk.size() - off, MSG_NOSIGNAL);
        if (n <= 0) break;
        sent += static_cast<size_t>(n);
      }
      if (n <= 0) break;
    }
    EXPECT_EQ(sent, 64 * chunk.size())
        << attempt << ": the body was refused mid-way (" << std::strerror(errno) << ")";
    std::string r = Read(fd, 5000);
    close(fd);
    EXPECT_EQ(r.substr(0, 12), "HTTP/1.1 413") << attempt << ": " << r.substr(0, 200);
  }
  EXPECT_EQ(handled_.load(), 0);
}

TEST_F(ServerTest, SlowRequestTimesOutWith408AndIdleConnectionsClose) {
  HttpLimits limits;
  limits.request_timeout = std::chrono::milliseconds(300);
  Start(limits);
  int slow = Connect();
  int idle = Connect();
  auto start = std::chrono::steady_clock::now();
  Send(slow, "GET / HTTP/1.1\r\nHost: x");
  // Dribbling more bytes does not extend the deadline.
  std::this_thread::sleep_for(std::chrono::milliseconds(150));
  Send(slow, "\r\nX-A: b");
  bool eof = false;
  std::string r = Read(slow, 3000, &eof);
  EXPECT_EQ(r.substr(0, 12), "HTTP/1.1 408") << r;
  EXPECT_TRUE(eof);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(1500));
  r = Read(idle, 3000, &eof);
  EXPECT_EQ(r, "");
  EXPECT_TRUE(eof);
  close(slow);
  close(idle);
}

TEST_F(ServerTest, ConnectionsBeyondTheCapGet503) {
  HttpLimits limits;
  limits.max_connections = 3;
  Start(limits);
  std::vector<int> held;
  for (int i = 0; i < 3; ++i) held.push_back(Connect());
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // all accepted
  int extra = Connect();
  bool eof = false;
  std::string r = Read(extra, 2000, &eof);
  EXPECT_EQ(r.substr(0, 12), "HTTP/1.1 503") << r;
  EXPECT_TRUE(eof);
  close(extra);
  for (int fd : held) close(fd);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  int again = Connect();
  Send(again, "GET /back HTTP/1.1\r\nConnection: close\r\n\r\n");
  r = Read(again, 2000);
  close(again);
  EXPECT_NE(r.find("GET /back"), std::string::npos) << r;
}

}  // namespace
}  // namespace siphon

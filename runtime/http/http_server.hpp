#pragma once
#include <chrono>
#include <cstddef>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_set>
#include <utility>
#include <vector>

#include <uv.h>

#include "runtime/base/status.hpp"

namespace siphon {

/// One parsed HTTP/1.1 request.
struct HttpRequest {
  std::string method;  ///< "GET", "POST", …
  std::string path;    ///< percent-decoded, without the query string
  std::string query;   ///< raw, without the '?'
  /// Names lower-cased, values without the whitespace around them.
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;

  /// The first header with this (lower-case) name, or "".
  std::string_view Header(std::string_view name) const;
  /// Sets `value` to the query parameter `name`, percent-decoded; false when it is absent.
  bool QueryParam(std::string_view name, std::string* value) const;
};

/// What a handler answers.
struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  ///< extra headers
};

/// Protection against clients that are slow, large or many.
struct HttpLimits {
  size_t max_header_bytes = 8 * 1024;  ///< request line + headers; beyond: 431
  size_t max_body_bytes = 64 * 1024;   ///< beyond: 413
  size_t max_connections = 128;        ///< beyond: accepted, answered 503 and closed
  /// A connection must deliver a whole request within this time after it opened or after its
  /// previous response; otherwise it is closed (408 when a request was under way).
  std::chrono::milliseconds request_timeout{10000};
  /// Answers written but not yet taken by the client, per connection: beyond this, pipelined
  /// requests wait unread (and unanswered) until the client reads. A client that never reads
  /// is closed by request_timeout.
  size_t max_unsent_bytes = 1 << 20;
};

/// An HTTP/1.1 server on a libuv loop (uv_tcp + Debian's http-parser). Keep-alive and
/// pipelining are supported; `Connection: close` is honoured. A HEAD reaches the handler as a
/// GET and is answered with that GET's status and headers, without the body. Handlers run on
/// the loop thread and answer synchronously. Loop thread only.
class HttpServer {
 public:
  using Handler = std::function<HttpResponse(const HttpRequest&)>;

  /// `handler` may be empty until SetHandler (requests meanwhile are answered 503).
  HttpServer(uv_loop_t* loop, HttpLimits limits, Handler handler);
  /// Closes the listener and every connection (their memory is freed by the loop).
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  /// Binds and listens. `host` is an IPv4 or IPv6 literal; port 0 picks a free port.
  Status Listen(const std::string& host, int port);
  /// Who answers from now on (a server bound before what it serves exists).
  void SetHandler(Handler handler) { handler_ = std::move(handler); }
  /// The bound port (after Listen).
  int port() const { return port_; }
  /// Open connections (including those being answered 503).
  size_t connections() const { return connections_.size(); }

  /// "HTTP/1.1 404 Not Found\r\n…": a whole response, as written on the wire. Without the
  /// body (the answer to a HEAD), Content-Length is still the body's.
  static std::string Serialize(const HttpResponse& response, bool keep_alive,
                               bool with_body = true);

 private:
  class Connection;
  friend class Connection;
  void OnConnection(int status);

  uv_loop_t* loop_;
  HttpLimits limits_;
  Handler handler_;
  uv_tcp_t* listener_ = nullptr;  // heap: closed asynchronously
  int port_ = 0;
  std::unordered_set<Connection*> connections_;
};

/// The reason phrase of a status code ("Not Found").
std::string_view HttpReason(int status);

/// Compares a presented secret with the expected one in time that depends only on the
/// expected secret's length, so response times do not reveal how much of a guess matched.
bool ConstantTimeEquals(std::string_view presented, std::string_view expected);

/// Decodes %XX escapes (and '+' as a space when `plus_is_space`). Invalid escapes are kept.
std::string PercentDecode(std::string_view in, bool plus_is_space);

/// `--http` value: "HOST:PORT", "[V6]:PORT", ":PORT" or "PORT" (host 127.0.0.1). "localhost"
/// means 127.0.0.1. Only IP literals otherwise: a name could resolve to anything.
struct ListenAddress {
  std::string host;
  int port = 0;
  bool loopback = false;  ///< 127.0.0.0/8 or ::1
};
Result<ListenAddress> ParseListenAddress(std::string_view spec);

}  // namespace siphon

#include "runtime/http/http_server.hpp"

#include <http_parser.h>

#include <algorithm>
#include <cctype>
#include <cstring>

#include "runtime/base/ascii.hpp"
#include "runtime/base/hex.hpp"
#include "runtime/base/log.hpp"

namespace siphon {

std::string_view HttpRequest::Header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (k == name) return v;
  }
  return {};
}

bool HttpRequest::QueryParam(std::string_view name, std::string* value) const {
  std::string_view q = query;
  while (!q.empty()) {
    size_t amp = q.find('&');
    std::string_view pair = q.substr(0, amp);
    q = amp == std::string_view::npos ? std::string_view() : q.substr(amp + 1);
    size_t eq = pair.find('=');
    std::string key = PercentDecode(pair.substr(0, eq), true);
    if (key != name) continue;
    *value = eq == std::string_view::npos ? "" : PercentDecode(pair.substr(eq + 1), true);
    return true;
  }
  return false;
}

std::string_view HttpReason(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 202:
      return "Accepted";
    case 204:
      return "No Content";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 409:
      return "Conflict";
    case 413:
      return "Payload Too Large";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 503:
      return "Service Unavailable";
  }
  return "Unknown";
}

bool ConstantTimeEquals(std::string_view presented, std::string_view expected) {
  // Walk the expected secret whatever was presented: the loop's length never depends on the
  // guess, and no early exit tells how many bytes matched.
  unsigned char diff = presented.size() == expected.size() ? 0 : 1;
  for (size_t i = 0; i < expected.size(); ++i) {
    unsigned char p = i < presented.size() ? static_cast<unsigned char>(presented[i]) : 0;
    diff |= static_cast<unsigned char>(p ^ static_cast<unsigned char>(expected[i]));
  }
  return diff == 0;
}

std::string PercentDecode(std::string_view in, bool plus_is_space) {
  std::string out;
  out.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (c == '%' && i + 2 < in.size()) {
      int hi = HexDigit(in[i + 1]), lo = HexDigit(in[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out.push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
        continue;
      }
    }
    out.push_back(plus_is_space && c == '+' ? ' ' : c);
  }
  return out;
}

Result<ListenAddress> ParseListenAddress(std::string_view spec) {
  ListenAddress out;
  std::string_view host, port;
  if (!spec.empty() && spec.front() == '[') {
    size_t close = spec.find(']');
    if (close == std::string_view::npos || close + 1 >= spec.size() || spec[close + 1] != ':') {
      return Status(ErrorKind::kConfig,
                    "--http: expected [IPV6]:PORT, got \"" + std::string(spec) + "\"");
    }
    host = spec.substr(1, close - 1);
    port = spec.substr(close + 2);
  } else if (size_t colon = spec.rfind(':'); colon != std::string_view::npos) {
    host = spec.substr(0, colon);
    port = spec.substr(colon + 1);
  } else {
    port = spec;
  }
  int p = 0;
  bool digits = !port.empty() && port.size() <= 5;
  for (char c : port) digits &= std::isdigit(static_cast<unsigned char>(c)) != 0;
  if (digits) p = std::stoi(std::string(port));
  if (!digits || p < 1 || p > 65535) {
    return Status(ErrorKind::kConfig,
                  "--http: \"" + std::string(spec) +
                      "\" has no valid port (expected ADDR:PORT, port 1-65535)");
  }
  out.port = p;
  out.host = host.empty() || host == "localhost" ? "127.0.0.1" : std::string(host);
  sockaddr_in v4;
  sockaddr_in6 v6;
  if (uv_ip4_addr(out.host.c_str(), p, &v4) == 0) {
    out.loopback = (ntohl(v4.sin_addr.s_addr) >> 24) == 127;
  } else if (uv_ip6_addr(out.host.c_str(), p, &v6) == 0) {
    out.loopback = IN6_IS_ADDR_LOOPBACK(&v6.sin6_addr);
  } else {
    return Status(ErrorKind::kConfig,
                  "--http: \"" + out.host + "\" is not an IP address (use e.g. 127.0.0.1 or ::1)");
  }
  return out;
}

std::string HttpServer::Serialize(const HttpResponse& r, bool keep_alive, bool with_body) {
  std::string out =
      "HTTP/1.1 " + std::to_string(r.status) + " " + std::string(HttpReason(r.status)) +
      "\r\nContent-Type: " + r.content_type +
      "\r\nContent-Length: " + std::to_string(r.body.size()) +
      "\r\nCache-Control: no-store\r\nConnection: " + (keep_alive ? "keep-alive" : "close") +
      "\r\n";
  for (const auto& [k, v] : r.headers) out += k + ": " + v + "\r\n";
  out += "\r\n";
  if (with_body) out += r.body;
  return out;
}

namespace {

HttpResponse ErrorResponse(int status, std::string_view message) {
  HttpResponse r;
  r.status = status;
  // Hand-built so the server layer does not depend on a JSON library: messages are fixed
  // ASCII strings from this file.
  r.body = "{\"error\":\"" + std::string(message) + "\"}\n";
  return r;
}

struct WriteReq {
  uv_write_t req;
  std::string data;
};

}  // namespace

/// One accepted socket: parses requests with http_parser, answers them in order, and closes on
/// error, on `Connection: close`, on the request timeout or when the server goes away.
class HttpServer::Connection {
 public:
  explicit Connection(HttpServer* server) : server_(server) {
    uv_tcp_init(server->loop_, &tcp_);
    tcp_.data = this;
    uv_timer_init(server->loop_, &timer_);
    timer_.data = this;
    http_parser_init(&parser_, HTTP_REQUEST);
    parser_.data = this;
  }

  uv_stream_t* stream() { return reinterpret_cast<uv_stream_t*>(&tcp_); }

  void Start() {
    ArmTimer();
    StartReading();
  }

  void StartReading() {
    uv_read_start(
        stream(),
        [](uv_handle_t*, size_t suggested, uv_buf_t* buf) {
          buf->base = new char[suggested];
          buf->len = suggested;
        },
        [](uv_stream_t* s, ssize_t n, const uv_buf_t* buf) {
          auto* self = static_cast<Connection*>(s->data);
          if (n > 0) self->OnData(buf->base, static_cast<size_t>(n));
          if (n < 0) self->Close();
          delete[] buf->base;
        });
  }

  /// Answers 503 and closes: the server is full.
  void Refuse() { WriteAndClose(ErrorResponse(503, "too many connections")); }

  void Close() {
    if (closing_) return;
    closing_ = true;
    server_->connections_.erase(this);
    uv_timer_stop(&timer_);
    auto closed = [](uv_handle_t* h) {
      auto* self = static_cast<Connection*>(h->data);
      if (++self->closed_handles_ == 2) delete self;
    };
    uv_close(reinterpret_cast<uv_handle_t*>(&tcp_), closed);
    uv_close(reinterpret_cast<uv_handle_t*>(&timer_), closed);
  }

 private:
  static const http_parser_settings& Settings() {
    static const http_parser_settings settings = [] {
      http_parser_settings s;
      http_parser_settings_init(&s);
      s.on_message_begin = [](http_parser* p) {
        auto* self = static_cast<Connection*>(p->data);
        self->request_ = HttpRequest();
        self->url_.clear();
        self->header_bytes_ = 0;
        self->in_request_ = true;
        self->head_ = false;
        return 0;
      };
      s.on_url = [](http_parser* p, const char* at, size_t len) {
        auto* self = static_cast<Connection*>(p->data);
        self->url_.append(at, len);
        return self->CountHeader(len);
      };
      s.on_header_field = [](http_parser* p, const char* at, size_t len) {
        auto* self = static_cast<Connection*>(p->data);
        if (self->request_.headers.empty() || self->value_started_) {
          self->request_.headers.emplace_back();
          self->value_started_ = false;
        }
        std::string& name = self->request_.headers.back().first;
        name += AsciiLower(std::string_view(at, len));
        return self->CountHeader(len);
      };
      s.on_header_value = [](http_parser* p, const char* at, size_t len) {
        auto* self = static_cast<Connection*>(p->data);
        self->value_started_ = true;
        if (!self->request_.headers.empty()) self->request_.headers.back().second.append(at, len);
        return self->CountHeader(len);
      };
      s.on_headers_complete = [](http_parser* p) {
        auto* self = static_cast<Connection*>(p->data);
        self->value_started_ = false;
        // A field value has no whitespace around it (RFC 9110 5.5); http_parser drops only
        // what precedes it.
        for (auto& header : self->request_.headers) {
          std::string& value = header.second;
          while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.pop_back();
        }
        self->head_ = p->method == HTTP_HEAD;
        if (p->upgrade) {  // websocket and the like: refused before the handler runs
          self->error_ = 400;
          return -1;
        }
        // Content-Length is known here: refuse a large body before reading it.
        if ((p->flags & F_CONTENTLENGTH) &&
            p->content_length > self->server_->limits_.max_body_bytes) {
          self->error_ = 413;
          return -1;
        }
        return 0;
      };
      s.on_body = [](http_parser* p, const char* at, size_t len) {
        auto* self = static_cast<Connection*>(p->data);
        if (self->request_.body.size() + len > self->server_->limits_.max_body_bytes) {
          self->error_ = 413;
          return -1;
        }
        self->request_.body.append(at, len);
        return 0;
      };
      s.on_message_complete = [](http_parser* p) {
        auto* self = static_cast<Connection*>(p->data);
        self->in_request_ = false;
        self->Dispatch();
        // Stop parsing what follows a request after which the connection closes.
        if (self->close_after_write_) return -1;
        // A client that sends requests without reading the answers: the rest waits until it
        // reads (memory stays bounded however many requests one read brought).
        if (self->Congested()) http_parser_pause(p, 1);
        return 0;
      };
      return s;
    }();
    return settings;
  }

  int CountHeader(size_t len) {
    header_bytes_ += len;
    if (header_bytes_ > server_->limits_.max_header_bytes) {
      error_ = 431;
      return -1;
    }
    return 0;
  }

  bool Congested() { return stream()->write_queue_size > server_->limits_.max_unsent_bytes; }

  void OnData(const char* data, size_t len) {
    if (close_after_write_ || closing_) return;
    if (paused_) {  // (a read that was already under way when reading stopped)
      held_.append(data, len);
      return;
    }
    size_t parsed = http_parser_execute(&parser_, &Settings(), data, len);
    if (close_after_write_ || closing_) return;  // a response that closes is on its way
    if (HTTP_PARSER_ERRNO(&parser_) == HPE_PAUSED) {
      // Congested: keep what was not parsed, read nothing more until the answers drain.
      held_.append(data + parsed, len - parsed);
      paused_ = true;
      uv_read_stop(stream());
      return;
    }
    if (HTTP_PARSER_ERRNO(&parser_) != HPE_OK || parsed != len) {
      // The client may still be sending what this refuses (a body past the limit): read and
      // drop it after the answer, or the close would reset the connection and lose the answer.
      linger_ = true;
      if (parser_.upgrade || error_ == 400) {
        WriteAndClose(ErrorResponse(400, "protocol upgrades are not supported"));
      } else if (error_ == 413) {
        WriteAndClose(ErrorResponse(413, "request body too large"));
      } else if (error_ == 431) {
        WriteAndClose(ErrorResponse(431, "request headers too large"));
      } else {
        WriteAndClose(ErrorResponse(400, "malformed HTTP request"));
      }
    }
  }

  void Dispatch() {
    http_parser_url u;
    http_parser_url_init(&u);
    if (http_parser_parse_url(url_.data(), url_.size(), 0, &u) != 0 ||
        !(u.field_set & (1 << UF_PATH))) {
      close_after_write_ = true;
      Write(ErrorResponse(400, "malformed request target"), false, !head_);
      return;
    }
    request_.method = http_method_str(static_cast<http_method>(parser_.method));
    request_.path = PercentDecode(
        std::string_view(url_).substr(u.field_data[UF_PATH].off, u.field_data[UF_PATH].len), false);
    if (u.field_set & (1 << UF_QUERY)) {
      request_.query = url_.substr(u.field_data[UF_QUERY].off, u.field_data[UF_QUERY].len);
    }
    const bool keep_alive = http_should_keep_alive(&parser_) != 0;
    // HEAD is GET without the body (RFC 9110 9.3.2): the handler answers a GET, and only its
    // status and headers go out, Content-Length included.
    const bool head = head_;
    if (head) request_.method = "GET";
    HttpResponse response;
    try {
      if (!server_->handler_) {
        response = ErrorResponse(503, "not serving yet");
      } else {
        response = server_->handler_(request_);
      }
    } catch (const std::exception& e) {
      Logger("http")->error("{} {}: {}", request_.method, request_.path, e.what());
      response = ErrorResponse(500, "internal error");
    }
    if (!keep_alive) close_after_write_ = true;
    Write(response, keep_alive, !head);
    if (keep_alive) ArmTimer();  // the next request has its own time budget
  }

  void WriteAndClose(const HttpResponse& response) {
    close_after_write_ = true;
    // An error found before the request was dispatched: a HEAD gets its headers only.
    Write(response, false, !head_);
  }

  void Write(const HttpResponse& response, bool keep_alive, bool with_body = true) {
    auto* w = new WriteReq;
    w->data = Serialize(response, keep_alive, with_body);
    w->req.data = this;
    ++writes_in_flight_;
    uv_buf_t buf = uv_buf_init(w->data.data(), static_cast<unsigned>(w->data.size()));
    int rc = uv_write(&w->req, stream(), &buf, 1, [](uv_write_t* req, int status) {
      auto* w = reinterpret_cast<WriteReq*>(req);
      auto* self = static_cast<Connection*>(req->data);
      delete w;
      --self->writes_in_flight_;
      if (status < 0) {
        self->Close();
      } else if (self->close_after_write_ && self->writes_in_flight_ == 0) {
        if (self->linger_) {
          self->Linger();
        } else {
          self->Close();
        }
      } else if (self->paused_ && !self->closing_ && !self->Congested()) {
        self->Unpause();
      }
    });
    if (rc != 0) {
      delete w;
      --writes_in_flight_;
      Close();
      return;
    }
    if (close_after_write_) {
      uv_read_stop(stream());
      // Give a client that never reads its answer a bound too.
      ArmTimer();
    }
  }

  // The last answer is written: end the sending side (the client sees it end) and drop what
  // the client still sends until it closes, for kLinger at most. Closing with its bytes unread
  // would answer them with a reset, which discards the answer on the client's side before it
  // reads it (curl: "Connection reset by peer", no status).
  void Linger() {
    if (closing_) return;
    shutdown_.data = this;
    if (uv_shutdown(&shutdown_, stream(), [](uv_shutdown_t* req, int status) {
          auto* self = static_cast<Connection*>(req->data);
          if (status < 0 && !self->closing_) self->Close();  // (closing: cancelled)
        }) != 0) {
      Close();
      return;
    }
    uv_timer_start(
        &timer_, [](uv_timer_t* t) { static_cast<Connection*>(t->data)->Close(); },
        static_cast<uint64_t>(kLinger.count()), 0);
    StartReading();  // OnData drops it; the client's end of the stream closes
  }

  // The client took its answers: parse the requests held back, then read again.
  void Unpause() {
    paused_ = false;
    http_parser_pause(&parser_, 0);
    std::string held = std::move(held_);
    held_.clear();
    if (!held.empty()) OnData(held.data(), held.size());  // (an empty parse would mean EOF)
    if (!paused_ && !close_after_write_ && !closing_) StartReading();
  }

  void ArmTimer() {
    uv_timer_start(
        &timer_,
        [](uv_timer_t* t) {
          auto* self = static_cast<Connection*>(t->data);
          if (self->in_request_ && !self->close_after_write_) {
            self->WriteAndClose(ErrorResponse(408, "request not completed in time"));
            uv_timer_start(
                &self->timer_, [](uv_timer_t* t2) { static_cast<Connection*>(t2->data)->Close(); },
                1000, 0);
          } else {
            self->Close();
          }
        },
        static_cast<uint64_t>(server_->limits_.request_timeout.count()), 0);
  }

  HttpServer* server_;
  uv_tcp_t tcp_;
  uv_timer_t timer_;
  http_parser parser_;
  HttpRequest request_;
  std::string url_;
  size_t header_bytes_ = 0;
  bool value_started_ = false;
  bool in_request_ = false;
  bool head_ = false;  // the request under way is a HEAD (known from its headers' end)
  int error_ = 0;
  bool close_after_write_ = false;
  bool closing_ = false;
  int writes_in_flight_ = 0;
  int closed_handles_ = 0;
  bool paused_ = false;  // congested: reading stopped, held_ not parsed yet
  std::string held_;
  bool linger_ = false;  // the request was refused unread: drain it before closing
  uv_shutdown_t shutdown_;
  static constexpr std::chrono::milliseconds kLinger{2000};
};

HttpServer::HttpServer(uv_loop_t* loop, HttpLimits limits, Handler handler)
    : loop_(loop), limits_(limits), handler_(std::move(handler)) {}

HttpServer::~HttpServer() {
  // Close() removes the connection from the set.
  while (!connections_.empty()) (*connections_.begin())->Close();
  if (listener_) {
    uv_close(reinterpret_cast<uv_handle_t*>(listener_),
             [](uv_handle_t* h) { delete reinterpret_cast<uv_tcp_t*>(h); });
  }
}

Status HttpServer::Listen(const std::string& host, int port) {
  sockaddr_storage addr{};
  if (uv_ip4_addr(host.c_str(), port, reinterpret_cast<sockaddr_in*>(&addr)) != 0 &&
      uv_ip6_addr(host.c_str(), port, reinterpret_cast<sockaddr_in6*>(&addr)) != 0) {
    return Status(ErrorKind::kConfig, "\"" + host + "\" is not an IP address");
  }
  listener_ = new uv_tcp_t;
  uv_tcp_init(loop_, listener_);
  listener_->data = this;
  int rc = uv_tcp_bind(listener_, reinterpret_cast<const sockaddr*>(&addr), 0);
  if (rc == 0) {
    rc = uv_listen(reinterpret_cast<uv_stream_t*>(listener_), 511, [](uv_stream_t* s, int status) {
      static_cast<HttpServer*>(s->data)->OnConnection(status);
    });
  }
  if (rc != 0) {
    const bool v6 = host.find(':') != std::string::npos;
    return Status(ErrorKind::kConfig, "cannot listen on " + std::string(v6 ? "[" : "") + host +
                                          (v6 ? "]" : "") + ":" + std::to_string(port) + ": " +
                                          uv_strerror(rc));
  }
  sockaddr_storage bound{};
  int len = sizeof(bound);
  uv_tcp_getsockname(listener_, reinterpret_cast<sockaddr*>(&bound), &len);
  port_ = ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                                            : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  return Status::Ok();
}

void HttpServer::OnConnection(int status) {
  if (status < 0) return;
  auto* conn = new Connection(this);
  if (uv_accept(reinterpret_cast<uv_stream_t*>(listener_), conn->stream()) != 0) {
    conn->Close();
    return;
  }
  uv_tcp_nodelay(reinterpret_cast<uv_tcp_t*>(conn->stream()), 1);
  // A refused connection is tracked too (until its 503 is written), so the server can close it.
  const bool full = connections_.size() >= limits_.max_connections;
  connections_.insert(conn);
  if (full) {
    conn->Refuse();
  } else {
    conn->Start();
  }
}

}  // namespace siphon

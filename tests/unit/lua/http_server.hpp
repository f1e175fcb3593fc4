#pragma once
// A tiny HTTP/1.1 receiver on a uv loop for the Lua tests: records each request and answers
// 200 "ok", or never answers (hang mode).
#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <uv.h>

namespace siphon::testing {

struct ReceivedRequest {
  std::string method;
  std::string path;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
};

class HttpReceiver {
 public:
  HttpReceiver(uv_loop_t* loop, bool hang) : loop_(loop), hang_(hang) {
    server_ = new uv_tcp_t;
    uv_tcp_init(loop_, server_);
    server_->data = this;
    sockaddr_in addr{};
    uv_ip4_addr("127.0.0.1", 0, &addr);
    uv_tcp_bind(server_, reinterpret_cast<const sockaddr*>(&addr), 0);
    uv_listen(reinterpret_cast<uv_stream_t*>(server_), 16, [](uv_stream_t* s, int status) {
      if (status < 0) return;
      static_cast<HttpReceiver*>(s->data)->Accept();
    });
    sockaddr_storage name{};
    int len = sizeof name;
    uv_tcp_getsockname(server_, reinterpret_cast<sockaddr*>(&name), &len);
    port_ = ntohs(reinterpret_cast<sockaddr_in*>(&name)->sin_port);
  }
  ~HttpReceiver() {
    for (auto& c : conns_) {
      c->owner = nullptr;
      if (!uv_is_closing(reinterpret_cast<uv_handle_t*>(&c->tcp))) {
        uv_close(reinterpret_cast<uv_handle_t*>(&c->tcp),
                 [](uv_handle_t* h) { delete static_cast<Conn*>(h->data); });
      }
      c.release();
    }
    uv_close(reinterpret_cast<uv_handle_t*>(server_),
             [](uv_handle_t* h) { delete reinterpret_cast<uv_tcp_t*>(h); });
  }

  std::string url(const std::string& path = "/hook") const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }
  const std::vector<ReceivedRequest>& requests() const { return requests_; }
  /// Answers with this body from now on (instead of "ok").
  void SetBody(const std::string& body) {
    response_ = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Test: yes\r\nContent-Length: " +
                std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
  }
  /// Answers with these bytes, status line and headers included, from now on.
  void SetRawResponse(const std::string& response) { response_ = response; }
  int connections() const { return accepted_; }

 private:
  struct Conn {
    uv_tcp_t tcp;
    HttpReceiver* owner;
    std::string data;
    bool answered = false;
  };

  void Accept() {
    auto c = std::make_unique<Conn>();
    c->owner = this;
    uv_tcp_init(loop_, &c->tcp);
    c->tcp.data = c.get();
    if (uv_accept(reinterpret_cast<uv_stream_t*>(server_),
                  reinterpret_cast<uv_stream_t*>(&c->tcp)) != 0) {
      uv_close(reinterpret_cast<uv_handle_t*>(&c->tcp),
               [](uv_handle_t* h) { delete static_cast<Conn*>(h->data); });
      c.release();
      return;
    }
    ++accepted_;
    uv_read_start(
        reinterpret_cast<uv_stream_t*>(&c->tcp),
        [](uv_handle_t*, size_t size, uv_buf_t* buf) {
          buf->base = static_cast<char*>(std::malloc(size));
          buf->len = size;
        },
        [](uv_stream_t* s, ssize_t n, const uv_buf_t* buf) {
          auto* c = static_cast<Conn*>(s->data);
          if (n > 0) c->data.append(buf->base, static_cast<size_t>(n));
          std::free(buf->base);
          if (c->owner != nullptr && n > 0) c->owner->OnData(c);
        });
    conns_.push_back(std::move(c));
  }

  void OnData(Conn* c) {
    size_t end = c->data.find("\r\n\r\n");
    if (end == std::string::npos || c->answered) return;
    ReceivedRequest r;
    std::string head = c->data.substr(0, end);
    size_t line_end = head.find("\r\n");
    std::string first = head.substr(0, line_end);
    r.method = first.substr(0, first.find(' '));
    r.path = first.substr(first.find(' ') + 1);
    r.path = r.path.substr(0, r.path.find(' '));
    size_t pos = line_end;
    while (pos != std::string::npos && pos < head.size()) {
      size_t next = head.find("\r\n", pos + 2);
      std::string line =
          head.substr(pos + 2, next == std::string::npos ? std::string::npos : next - pos - 2);
      size_t colon = line.find(':');
      if (colon != std::string::npos) {
        std::string name = line.substr(0, colon);
        for (char& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
        std::string value = line.substr(colon + 1);
        while (!value.empty() && value[0] == ' ') value.erase(0, 1);
        r.headers[name] = value;
      }
      pos = next;
    }
    size_t length = r.headers.count("content-length") ? std::stoul(r.headers["content-length"]) : 0;
    if (c->data.size() < end + 4 + length) return;
    r.body = c->data.substr(end + 4, length);
    c->answered = true;
    requests_.push_back(std::move(r));
    if (hang_) return;
    if (response_.empty()) SetBody("ok");
    auto* req = new uv_write_t;
    uv_buf_t buf =
        uv_buf_init(const_cast<char*>(response_.data()), static_cast<unsigned>(response_.size()));
    uv_write(req, reinterpret_cast<uv_stream_t*>(&c->tcp), &buf, 1,
             [](uv_write_t* w, int) { delete w; });
  }

  uv_loop_t* loop_;
  bool hang_;
  std::string response_;
  uv_tcp_t* server_;
  int port_ = 0;
  int accepted_ = 0;
  std::vector<std::unique_ptr<Conn>> conns_;
  std::vector<ReceivedRequest> requests_;
};

}  // namespace siphon::testing

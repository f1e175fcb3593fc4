#include "runtime/loop/resolve.hpp"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>

#include <algorithm>
#include <map>
#include <mutex>
#include <utility>

namespace siphon {
namespace {

struct Waiter {
  std::weak_ptr<void> alive;
  std::function<void(Result<std::vector<std::string>>)> done;
};

struct Lookup {
  uv_getaddrinfo_t req{};
  uv_loop_t* loop = nullptr;
  std::string host;
  std::vector<Waiter> waiters;
};

// Lookups in flight, by loop and name: a name asked for again while its lookup runs joins
// it, so a name server that does not answer holds one thread of the pool per name, not one
// per connection and retry.
std::mutex in_flight_mu;
std::map<std::pair<uv_loop_t*, std::string>, Lookup*>& InFlight() {
  static auto* lookups = new std::map<std::pair<uv_loop_t*, std::string>, Lookup*>();
  return *lookups;
}

void OnResolved(uv_getaddrinfo_t* req, int status, addrinfo* found) {
  std::unique_ptr<Lookup> lookup(static_cast<Lookup*>(req->data));
  {
    std::lock_guard<std::mutex> lock(in_flight_mu);
    InFlight().erase({lookup->loop, lookup->host});
  }
  Result<std::vector<std::string>> out =
      Status(ErrorKind::kConnect, "could not resolve host name \"" + lookup->host +
                                      "\": " + (status < 0 ? uv_strerror(status) : "no address"));
  if (status == 0) {
    std::vector<std::string> addresses;
    for (const addrinfo* a = found; a != nullptr; a = a->ai_next) {
      char text[INET6_ADDRSTRLEN] = {};
      if (a->ai_family == AF_INET) {
        uv_ip4_name(reinterpret_cast<const sockaddr_in*>(a->ai_addr), text, sizeof text);
      } else if (a->ai_family == AF_INET6) {
        uv_ip6_name(reinterpret_cast<const sockaddr_in6*>(a->ai_addr), text, sizeof text);
      } else {
        continue;
      }
      if (std::find(addresses.begin(), addresses.end(), text) == addresses.end()) {
        addresses.emplace_back(text);
      }
    }
    if (!addresses.empty()) out = std::move(addresses);
  }
  uv_freeaddrinfo(found);
  for (auto& w : lookup->waiters) {
    if (!w.alive.expired()) w.done(out);
  }
}

}  // namespace

bool IsIpAddress(const std::string& host) {
  unsigned char buf[sizeof(in6_addr)];
  return inet_pton(AF_INET, host.c_str(), buf) == 1 || inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

Status ResolveHost(uv_loop_t* loop, const std::string& host, std::weak_ptr<void> alive,
                   std::function<void(Result<std::vector<std::string>>)> done) {
  std::lock_guard<std::mutex> lock(in_flight_mu);
  auto& in_flight = InFlight();
  if (auto it = in_flight.find({loop, host}); it != in_flight.end()) {
    it->second->waiters.push_back({std::move(alive), std::move(done)});
    return Status::Ok();
  }
  auto lookup = std::make_unique<Lookup>();
  lookup->loop = loop;
  lookup->host = host;
  lookup->waiters.push_back({std::move(alive), std::move(done)});
  lookup->req.data = lookup.get();
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  int rc = uv_getaddrinfo(loop, &lookup->req, OnResolved, lookup->host.c_str(), nullptr, &hints);
  if (rc != 0) {
    return Status(ErrorKind::kConnect,
                  "could not resolve host name \"" + host + "\": " + uv_strerror(rc));
  }
  in_flight[{loop, host}] = lookup.release();  // OnResolved owns it now
  return Status::Ok();
}

bool LookupsInFlight(uv_loop_t* loop) {
  std::lock_guard<std::mutex> lock(in_flight_mu);
  const auto& in_flight = InFlight();
  auto it = in_flight.lower_bound({loop, std::string()});
  return it != in_flight.end() && it->first.first == loop;
}

}  // namespace siphon

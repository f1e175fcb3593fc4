#pragma once
// Host names resolved off the loop: getaddrinfo blocks (for seconds when a name server does
// not answer), so it runs on libuv's thread pool and the loop goes on with everything else.
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <uv.h>

#include "runtime/base/status.hpp"

namespace siphon {

/// True for an IPv4 or IPv6 address literal ("10.0.0.5", "::1"): nothing to resolve.
bool IsIpAddress(const std::string& host);

/// Looks `host` up for a TCP connection on libuv's thread pool. `done` runs later on the loop
/// with its addresses (numeric, in the resolver's order, without repeats), or ErrorKind::
/// kConnect ("could not resolve host name "db.example": unknown node or service") — unless
/// `alive` has expired by then, when nothing runs. A name already being looked up on this
/// loop joins that lookup (a name server that does not answer holds one thread of the pool
/// per name). Returns an error (and `done` never runs) only when the lookup could not be
/// started.
Status ResolveHost(uv_loop_t* loop, const std::string& host, std::weak_ptr<void> alive,
                   std::function<void(Result<std::vector<std::string>>)> done);

/// True while a lookup started on `loop` has not ended (its thread of the pool is still in
/// getaddrinfo, for up to the resolver's timeout when a name server does not answer).
bool LookupsInFlight(uv_loop_t* loop);

}  // namespace siphon

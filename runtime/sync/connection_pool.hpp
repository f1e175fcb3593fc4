#pragma once
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <vector>

#include <uv.h>

#include "adapters/source.hpp"

namespace siphon {

/// The connections of one source, shared by its tables (`max_connections`). At most `limit`
/// exist at once; each is lent to one table's run and given back when the run ends. One given
/// back stays open for the next run of any table; a run that finds none free waits its turn,
/// first come, first served. Loop thread only.
///
/// A deployment of 300 tables on one server thus holds `limit` sessions, not 300 (a server's
/// own limit, PostgreSQL's max_connections of 100 say, refused the rest), and at most `limit`
/// runs of the source hold pages in memory at once.
class ConnectionPool {
 public:
  using Lent = std::function<void(std::unique_ptr<SourceConnection>)>;

  ConnectionPool(uv_loop_t* loop, std::shared_ptr<Source> source, size_t limit);
  ~ConnectionPool();
  ConnectionPool(const ConnectionPool&) = delete;
  ConnectionPool& operator=(const ConnectionPool&) = delete;

  /// Lends a connection to `lent` (open, or to be opened by its Connect): before returning
  /// when one is free and nobody waits, else on a later loop turn, once one is given back.
  /// The ticket withdraws the request (Withdraw); 0 when it was answered at once.
  uint64_t Borrow(Lent lent);
  /// Withdraws a request not answered yet (a table stopped or paused while it waited).
  void Withdraw(uint64_t ticket);
  /// Gives a borrowed connection back; null when the borrower destroyed it (one may then be
  /// made in its place).
  void GiveBack(std::unique_ptr<SourceConnection> conn);
  /// Closes the connections nobody borrowed (siphon stops: an open session would keep the
  /// loop running). A later Borrow opens them again.
  void CloseIdle();

  const Source& source() const { return *source_; }
  size_t limit() const { return limit_; }
  size_t lent() const { return lent_; }
  size_t idle() const { return idle_.size(); }
  size_t waiting() const { return waiting_.size(); }

 private:
  void AnswerWaiting();
  void Lend(Lent lent);  // an idle connection, else a new one

  uv_loop_t* loop_;
  std::shared_ptr<Source> source_;
  size_t limit_;
  size_t lent_ = 0;
  std::vector<std::unique_ptr<SourceConnection>> idle_;  // the last one given back is lent first
  struct Request {
    uint64_t ticket;
    Lent lent;
  };
  std::deque<Request> waiting_;
  uint64_t next_ticket_ = 0;
  uv_timer_t* handoff_;  // answers waiting requests on the next loop turn; heap: closed async
};

}  // namespace siphon

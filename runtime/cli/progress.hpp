#pragma once
#include <chrono>
#include <cstdint>
#include <map>
#include <string>

#include <uv.h>

#include "runtime/sync/replicator.hpp"

namespace siphon {

/// Progress of long runs. On a terminal: one line per table in progress, redrawn in place at
/// most every 250 ms ("orders  123,456 / ~1,000,000 rows  45,678 rows/s  ETA 19 s").
/// Otherwise: a log line per running table every 5 s. Reads TableStats only. Loop thread.
class Progress {
 public:
  Progress(uv_loop_t* loop, const Replicator& replicator, bool tty);
  ~Progress();
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  /// Erases the lines drawn on the terminal (before the final summary).
  void Clear();

  /// "orders  123,456 / ~1,000,000 rows  45,678 rows/s  ETA 19 s" (rate 0: not yet known).
  static std::string Line(const std::string& table, int64_t rows, int64_t estimate, double rate,
                          size_t name_width);
  /// 1234567 -> "1,234,567".
  static std::string Thousands(int64_t n);

 private:
  void Tick();

  struct Seen {
    int64_t runs = -1;  // runs_ok + runs_failed when the run was first seen
    std::chrono::steady_clock::time_point since;
    std::chrono::steady_clock::time_point logged;  // without a TTY: the last log line
  };

  const Replicator& replicator_;
  bool tty_;
  uv_timer_t* timer_;  // heap: closed asynchronously
  std::map<const TableRunner*, Seen> seen_;
  int drawn_ = 0;  // lines of the block on the terminal now (the cursor is above it)
};

}  // namespace siphon

#include "runtime/cli/progress.hpp"

#include <sys/ioctl.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>

#include "runtime/base/log.hpp"

namespace siphon {
namespace {

constexpr auto kTtyInterval = std::chrono::milliseconds(250);
constexpr auto kLogInterval = std::chrono::seconds(5);
// A run shorter than this never shows a line: an incremental run usually takes a few ms.
constexpr auto kShowAfter = std::chrono::seconds(1);

void WriteErr(const std::string& s) {
  size_t off = 0;
  while (off < s.size()) {
    ssize_t n = ::write(2, s.data() + off, s.size() - off);
    if (n <= 0) return;
    off += static_cast<size_t>(n);
  }
}

}  // namespace

std::string Progress::Thousands(int64_t n) {
  std::string digits = std::to_string(n < 0 ? -n : n);
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out.push_back(',');
    out.push_back(digits[i]);
  }
  return (n < 0 ? "-" : "") + out;
}

std::string Progress::Line(const std::string& table, int64_t rows, int64_t estimate, double rate,
                           size_t name_width) {
  std::string out = table;
  if (out.size() < name_width) out.append(name_width - out.size(), ' ');
  out += "  " + Thousands(rows);
  if (estimate > 0) out += " / ~" + Thousands(std::max(estimate, rows));
  out += " rows";
  if (rate > 0) {
    out += "  " + Thousands(static_cast<int64_t>(std::llround(rate))) + " rows/s";
    if (estimate > rows) {
      out += "  ETA " + std::to_string(static_cast<int64_t>(std::ceil((estimate - rows) / rate))) +
             " s";
    }
  }
  return out;
}

Progress::Progress(uv_loop_t* loop, const Replicator& replicator, bool tty)
    : replicator_(replicator), tty_(tty), timer_(new uv_timer_t) {
  uv_timer_init(loop, timer_);
  timer_->data = this;
  // Both modes sample every 250 ms, so a run's start (and so its rate) is known closely.
  const uint64_t every = static_cast<uint64_t>(kTtyInterval.count());
  uv_timer_start(
      timer_, [](uv_timer_t* t) { static_cast<Progress*>(t->data)->Tick(); }, every, every);
  // Progress alone must not keep the loop running.
  uv_unref(reinterpret_cast<uv_handle_t*>(timer_));
}

Progress::~Progress() {
  Clear();
  uv_close(reinterpret_cast<uv_handle_t*>(timer_),
           [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
}

void Progress::Clear() {
  if (!tty_ || drawn_ == 0) return;
  WriteErr("\r\x1b[J");  // the cursor is on the empty line above the block
  drawn_ = 0;
}

void Progress::Tick() {
  const auto now = std::chrono::steady_clock::now();
  struct Item {
    std::string name;
    int64_t rows, estimate;
    double rate;
  };
  std::vector<Item> items;
  size_t width = 0;
  for (const auto& r : replicator_.runners()) {
    const TableStats& s = r->stats();
    Seen& seen = seen_[r.get()];
    const int64_t runs = s.runs_ok + s.runs_failed;
    if (s.state != RunnerState::kRunning) {
      seen.runs = -1;
      continue;
    }
    if (seen.runs != runs) {  // a new run: its start is within one tick of now
      seen.runs = runs;
      seen.since = now;
      seen.logged = now;
    }
    const auto elapsed = now - seen.since;
    if (elapsed < (tty_ ? kShowAfter : kLogInterval)) continue;
    if (!tty_) {
      if (now - seen.logged < kLogInterval) continue;
      seen.logged = now;
    }
    const double secs = std::chrono::duration<double>(elapsed).count();
    items.push_back({r->decl().name, s.run_rows, s.row_estimate, s.run_rows / secs});
    width = std::max(width, r->decl().name.size());
  }
  // Runners removed by a reload.
  for (auto it = seen_.begin(); it != seen_.end();) {
    bool live = false;
    for (const auto& r : replicator_.runners()) live |= r.get() == it->first;
    it = live ? std::next(it) : seen_.erase(it);
  }
  if (!tty_) {
    auto log = Logger("progress");
    for (const auto& i : items) {
      ScopedLogFields fields(LogFields::Of("progress").Table(i.name).Rows(i.rows));
      log->info("{}", Line(i.name, i.rows, i.estimate, i.rate, 0));
    }
    return;
  }
  // Between redraws the cursor is parked on an empty line above the block, so a log line
  // written meanwhile lands there whole and stays: the redraw clears from the cursor down and
  // draws the block again below it. Lines are cut to the terminal's width so none wraps.
  size_t cols = 0;
  winsize ws{};
  if (ioctl(2, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 1) cols = ws.ws_col - 1;
  if (items.empty() && drawn_ == 0) return;
  std::string s = "\r\x1b[J";
  if (!items.empty()) s += "\n";
  for (const auto& i : items) {
    std::string line = Line(i.name, i.rows, i.estimate, i.rate, width);
    if (cols > 0 && line.size() > cols) line.resize(cols);
    s += line + "\n";
  }
  if (!items.empty()) s += "\x1b[" + std::to_string(items.size() + 1) + "A";
  drawn_ = static_cast<int>(items.size());
  if (!s.empty()) WriteErr(s);
}

}  // namespace siphon

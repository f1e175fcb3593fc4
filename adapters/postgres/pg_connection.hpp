#pragma once
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <libpq-fe.h>
#include <uv.h>

#include "adapters/postgres/pg_types.hpp"
#include "runtime/base/row_batch.hpp"
#include "runtime/base/status.hpp"

namespace siphon::postgres {

/// Frees a PGresult.
struct PgResultDeleter {
  void operator()(PGresult* r) const { PQclear(r); }
};
using PgResultPtr = std::unique_ptr<PGresult, PgResultDeleter>;

/// How to reach the server: libpq keyword/value pairs (a `dbname` holding a conninfo string
/// or URI is expanded), the connect timeout, and the password to keep out of messages.
struct PgConnectParams {
  std::vector<std::pair<std::string, std::string>> keywords;
  bool expand_dbname = false;  ///< the first `dbname` is a conninfo string or URI
  int connect_timeout_ms = 10000;
  /// A statement that gets no data from the server for this long fails (the connection is
  /// dropped, the run retried): a frozen server or a network black hole cannot hang a run.
  int read_timeout_ms = 300000;
  std::string password;
};

/// The hosts of a connection as libpq reads them (the conninfo string's or URI's `host` and
/// `port`, then explicit keywords, then PGHOST/PGPORT), for looking names up off the loop.
struct PgHosts {
  std::vector<std::string> hosts;  ///< the `host` items, in order
  std::vector<std::string> ports;  ///< the `port` items: none, one for all, or one per host
  bool needs_lookup = false;       ///< some item is a name (and no hostaddr or service decides)
};
PgHosts PgHostsOf(const PgConnectParams& params);

/// A `host` item libpq would look up: not empty, not a socket directory, not an address.
bool PgHostIsName(const std::string& host);

/// `params.keywords` plus `host`/`hostaddr` (and `port`) lists giving each name one item per
/// address `found` for it (found[i] for hosts.hosts[i]); sockets and addresses stay as they
/// are. A name that could not be resolved is left out; none left is that lookup's error.
Result<std::vector<std::pair<std::string, std::string>>> PgKeywordsWithAddresses(
    const PgConnectParams& params, const PgHosts& hosts,
    const std::vector<Result<std::vector<std::string>>>& found);

/// The error of a failed statement as a Status: the kind from its SQLSTATE, the message with
/// the SQLSTATE appended and the password removed.
Status PgResultError(const PGresult* result, bool connection_lost, const std::string& password);

/// The error of a failed connection attempt (authentication failures are kAuth), from
/// libpq's message in its verbose form: the server's SQLSTATE decides, in any language; a
/// message without one (libpq's own) is read as English text.
Status PgConnectError(std::string_view libpq_message, const std::string& password);

/// Decodes a whole text-format result into a batch (columns in result order) with the
/// pg_types decoders chosen by each column's type OID. Values a decoder rejects are kept as
/// TEXT; `rejected` counts them.
RowBatch DecodeRows(const PGresult* result, size_t* rejected = nullptr);

/// The pg_types decoder of each column of a result, by type OID.
std::vector<PgDecoder> DecodersOf(const PGresult* result);

/// Appends one row of COPY text format (a line without its newline: fields split by tabs,
/// `\N` for NULL, backslash escapes) with `decoders`, one per column. False when the line
/// does not have that many fields: part of the row may be appended then, so the batch is
/// unusable. Values a decoder rejects are kept as TEXT; `rejected` counts them.
bool DecodeCopyRow(std::string_view line, const std::vector<PgDecoder>& decoders, RowBatch& batch,
                   size_t* rejected);

/// Reads the messages of one `COPY … TO STDOUT (FORMAT binary)` in order: the first starts
/// with the file header, each holds one row (16-bit field count, then each field's 32-bit
/// length, -1 for NULL, and its bytes), the last is the trailer (a field count of -1).
class BinaryCopyReader {
 public:
  explicit BinaryCopyReader(std::vector<PgBinary> decoders) : decoders_(std::move(decoders)) {}

  /// Appends the rows of one message to `batch`. False when the message is not binary COPY
  /// data with this many columns and these types: part of a row may be appended then, so
  /// the batch is unusable.
  bool Feed(std::string_view message, RowBatch& batch);

  /// True once the trailer was read: the stream was whole.
  bool finished() const { return finished_; }

 private:
  std::vector<PgBinary> decoders_;
  bool header_ = false;
  bool finished_ = false;
};

/// One libpq connection driven by the libuv loop without blocking it: PQconnectStartParams
/// and PQconnectPoll on uv_poll, then PQsendQuery(Params)/PQflush/PQconsumeInput. One
/// statement at a time. Callbacks run on the loop, never after the object is destroyed.
class PgConnection {
 public:
  PgConnection(uv_loop_t* loop, PgConnectParams params);
  ~PgConnection();
  PgConnection(const PgConnection&) = delete;
  PgConnection& operator=(const PgConnection&) = delete;

  /// Connects and applies the session settings (kSessionSql). Ok at once when already open.
  void Connect(std::function<void(Status)> done);

  /// Runs one statement with text-format parameters; the result holds its rows.
  void Query(std::string sql, std::vector<std::string> params,
             std::function<void(Result<PgResultPtr>)> done);

  /// The same, as a statement of this session prepared on its first run (a named statement
  /// whose name is a hash of `sql`, so a name means one text on any session): the server
  /// parses and plans it once instead of every time. For the statements every run sends;
  /// at most kMaxPrepared per session, the rest run as Query does. A server that refuses
  /// named statements, or loses them (a pooler handing each transaction another session),
  /// gets every statement of this session through Query.
  void QueryPrepared(std::string sql, std::vector<std::string> params,
                     std::function<void(Result<PgResultPtr>)> done);
  static constexpr size_t kMaxPrepared = 256;

  /// Runs a `COPY … TO STDOUT`: `row` gets each data message as it arrives (in text
  /// format a line with its newline, in binary format a row), then `done` the outcome.
  /// `sql` may go on with more statements after the COPY (no parameters): they run in the
  /// same implicit transaction, and `done` gets the last one's result.
  void CopyOut(std::string sql, std::function<void(std::string_view)> row,
               std::function<void(Result<PgResultPtr>)> done);
  /// The same, where statements come before the COPY (`sql` is "…; COPY … TO STDOUT"):
  /// `start` gets the result of the statement before it when the COPY starts, before any
  /// row. `done` then gets the COPY's own result.
  void CopyOut(std::string sql, std::function<void(const PGresult*)> start,
               std::function<void(std::string_view)> row,
               std::function<void(Result<PgResultPtr>)> done);

  /// True when connected, healthy and idle.
  bool ready() const;

  /// A setting the server reported at connection start (PQparameterStatus), e.g.
  /// "integer_datetimes"; "" when not connected or not reported.
  std::string ParameterStatus(const char* name) const;

  /// Drops the connection; a callback still pending gets ErrorKind::kCancelled.
  void Close();

  /// Runs `fn` on a later turn of the loop (not after this object is destroyed).
  void Post(std::function<void()> fn);

 private:
  enum class State { kClosed, kConnecting, kSetup, kIdle, kBusy };

  void StartConnect(const std::vector<std::pair<std::string, std::string>>& keywords);
  void Watch(int events);
  void ResetPoll();
  void OnPoll(int status, int events);
  void OnConnectPoll();
  void OnIdleInput();
  void OnQueryIo(int events);
  void SendSetup();
  /// Sends a statement through `send` (a PQsend* call, 0 when it failed) when idle, and
  /// has `done` get its outcome.
  void Send(const std::function<int()>& send, std::function<void(Result<PgResultPtr>)> done);
  void ExecPrepared(std::string name, std::string sql, std::vector<std::string> params,
                    std::function<void(Result<PgResultPtr>)> done);
  void StartStatement();
  void ArmReadTimeout();
  void FinishStatement();
  void FailStatement(Status status);
  void FailConnect(Status status);
  Status LostError() const;  ///< the connection broke while a statement ran
  void DropConnection();

  uv_loop_t* loop_;
  PgConnectParams params_;
  PgHosts hosts_;  // PgHostsOf(params_): what each Connect looks up
  PGconn* conn_ = nullptr;
  State state_ = State::kClosed;
  uv_poll_t* poll_ = nullptr;
  int poll_fd_ = -1;
  int poll_events_ = 0;
  uv_timer_t* timer_ = nullptr;  // connect timeout; then a statement's read timeout
  uv_timer_t* defer_ = nullptr;  // runs posted callbacks on the next loop turn
  std::vector<std::function<void()>> posted_;
  bool flushing_ = false;
  PgResultPtr result_;
  PgResultPtr error_;
  std::function<void(Status)> connect_done_;
  std::function<void(Result<PgResultPtr>)> query_done_;
  std::function<void(std::string_view)> copy_row_;   // a COPY OUT in progress
  std::function<void(const PGresult*)> copy_start_;  // told when it starts
  bool copying_ = false;
  std::set<std::string> prepared_;  // the names QueryPrepared prepared in this session
  bool unprepared_ = false;         // the session refused or lost a prepared statement
  std::shared_ptr<char> alive_ = std::make_shared<char>(0);
  uint64_t connect_attempt_ = 0;  // a host lookup answers only the attempt that asked
};

}  // namespace siphon::postgres

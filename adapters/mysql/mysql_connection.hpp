#pragma once
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <mysql.h>
#include <uv.h>

#include "adapters/mysql/mysql_config.hpp"
#include "adapters/mysql/mysql_sql.hpp"
#include "adapters/mysql/mysql_types.hpp"
#include "adapters/source.hpp"

namespace siphon::mysql {

/// A safe horizon as the server answered it (HorizonSql, or ReflectSql's 'h' row).
struct MysqlHorizon {
  std::optional<std::string> at, stale;
  bool fetched = false;
  bool local_time = false;  ///< for a DATETIME cursor
  std::chrono::steady_clock::time_point when;
};

/// What the connections of one source remember together, so a warning shows once per
/// source rather than once per table. Loop thread only.
struct MysqlSourceState {
  bool warned_no_process = false;  ///< the user lacks PROCESS: no safe horizon
  std::string warned_stale;        ///< the stale transaction last reported
  /// "table\ncolumn" already warned about (zero dates): once per source, whichever of its
  /// connections the table's run borrowed.
  std::set<std::string> warned_zero_dates;
  /// The tables SafeHorizon was asked for (their reflections then bring one, on whichever of
  /// the source's connections the run borrowed): for a DATETIME cursor (true) or a TIMESTAMP one.
  std::map<std::string, bool> horizon_wanted;
  /// Tables checked for a column-level grant that hides columns (Reflect).
  std::set<std::string> probed_columns;
  /// The horizon last read on any of the source's sessions, for a DATETIME cursor (true) and
  /// a TIMESTAMP one. It covers every table of the source (transactions are counted by the
  /// session's database, not by table), and one read earlier holds back a little more, never
  /// less: the runs of the next moment use it instead of asking again (kSharedHorizonFresh).
  std::map<bool, MysqlHorizon> recent_horizons;
};

/// A MariaDB Connector/C connection driven on a libuv loop with the non-blocking
/// `*_start` / `*_cont` API: MYSQL_WAIT_READ/WRITE/EXCEPT become uv_poll events and
/// MYSQL_WAIT_TIMEOUT a uv_timer, so no call blocks the loop thread. The session runs with
/// time_zone '+00:00', utf8mb4 and read-only transactions, over the text protocol.
/// Callbacks always run from the loop (never inside the call that started them), and never
/// after the connection is destroyed.
class MysqlConnection final : public SourceConnection {
 public:
  MysqlConnection(uv_loop_t* loop, std::shared_ptr<const MysqlConfig> config,
                  std::shared_ptr<MysqlSourceState> state = nullptr);
  ~MysqlConnection() override;

  void Connect(std::function<void(Status)> done) override;
  void Reflect(const std::string& table, std::function<void(Result<TableSchema>)> done) override;
  /// Describes the query through the result of DescribeQuerySql (LIMIT 0: nothing runs):
  /// each column typed by ColumnTypeOf from its metadata, nullable unless the server flags
  /// it NOT NULL (which it does not for the inner side of an outer join). Two columns of one
  /// name are ErrorKind::kConfig (a sub-select cannot have them: the server's error 1060).
  void FirstNull(const TableSchema& table, const std::vector<std::string>& columns,
                 std::function<void(Result<std::optional<std::string>>)> done) override;
  void ReflectQuery(const std::string& query,
                    std::function<void(Result<TableSchema>)> done) override;
  void Pull(const TableSchema& table, const PageQuery& query,
            std::function<void(Result<RowBatch>)> done) override;
  /// One statement of LIMIT limit × pages, streamed (mysql_use_result): each page is handed
  /// over as soon as the row after it arrives, while the server sends the next.
  void PullPages(const TableSchema& table, const PageQuery& query,
                 std::function<void(Result<RowBatch>, bool last)> page) override;
  std::string PageSql(const TableSchema& table, const PageQuery& query) const override;
  /// For a DATETIME or TIMESTAMP cursor: the start of the oldest write transaction open on
  /// the server (information_schema.INNODB_TRX, HorizonSql), capped at
  /// kHorizonMaxHoldSeconds. Without the PROCESS privilege: no horizon, and one warning.
  void SafeHorizon(const TableSchema& table, const std::string& column,
                   const std::optional<CursorValue>& after,
                   std::function<void(Result<std::optional<CursorValue>>)> done) override;
  void DigestKeys(const TableSchema& table, const std::vector<std::string>& key,
                  const KeyRange& range, const std::vector<Cursor>& splits,
                  std::function<void(Result<std::vector<KeyDigest>>)> done) override;
  void FindKeys(const TableSchema& table, const std::vector<std::string>& key,
                const std::vector<Cursor>& keys,
                std::function<void(Result<std::vector<Cursor>>)> done) override;
  void Close() override;

  /// Runs one statement and returns its rows as text (NULL = nullopt), e.g. for EXPLAIN.
  /// Same rules as Pull: non-blocking, callback from the loop.
  void QueryText(
      const std::string& sql,
      std::function<void(Result<std::vector<std::vector<std::optional<std::string>>>>)> done);

 private:
  /// Calls the *_start function (ready < 0) or the *_cont function with the ready events;
  /// returns the MYSQL_WAIT_* mask to wait for, 0 when the operation has finished.
  using Step = std::function<int(int ready)>;
  /// Called for each row of a result; false lets the loop turn before the next row is read
  /// (the row completed a page, which is handed over first).
  using RowSink = std::function<bool(MYSQL_ROW row, unsigned long* lengths)>;
  /// What a Step returns to be started again on the loop's next turn, after the callbacks
  /// deferred so far, without waiting on the socket (outside the MYSQL_WAIT_* mask).
  static constexpr int kStepAgain = 1 << 16;

  /// Fails a Reflect of `table` (`name` missing from `database`, "" for the connection's)
  /// naming the tables spelled closest to it.
  void NotFound(const std::string& table, const std::string& database, const std::string& name,
                const std::string& where, std::function<void(Result<TableSchema>)> done);
  /// Connects to hosts[index] (an address of the configured name, or the name itself),
  /// then to the next address while they refuse.
  void ConnectTo(std::vector<std::string> hosts, size_t index, std::function<void(Status)> done);
  void Run(Step step, std::function<void()> finished);
  void Drive(int ready);
  void Wait(int status);
  /// Sets the events the poll handle watches (epoll is touched only when they change).
  void Watch(int events);
  static void OnPoll(uv_poll_t* handle, int status, int events);
  /// The socket stirred while no statement was in flight.
  void OnIdleInput(int status, int events);
  static void OnTimer(uv_timer_t* handle);
  static void OnDefer(uv_idle_t* handle);

  /// True (after answering `fail` from the loop) when the connection is busy or closed.
  bool Refuse(const std::function<void(Status)>& fail);
  /// Answers `fail` with `status` from the loop, never inside the caller.
  void FailLater(std::function<void(Status)> fail, Status status);
  /// Queues `fn` to run from the loop on its next turn (results are delivered this way).
  void Defer(std::function<void()> fn);
  /// Sends `sql`, then streams its rows (mysql_use_result + mysql_fetch_row_start/_cont)
  /// into `sink`; `done` gets the outcome.
  void Execute(std::string sql, std::function<void(MYSQL_RES*)> on_result, RowSink sink,
               std::function<void(Status)> done);
  /// The check of one column of CharsetCheckColumns in a page's result.
  struct CharsetCheck {
    size_t result = 0;  ///< the result column of the check (NULL, or the value's hex)
    size_t column = 0;  ///< the column of the page's `names` checked
    std::string charset;
  };
  struct CharsetChecks {
    std::vector<CharsetCheck> checks;
    std::vector<size_t> row_names;  ///< the columns of `names` that name a row (its order)
  };
  /// Runs a query whose columns are `names` and decodes its rows as Pull does (the
  /// connection must be open and idle), into pages of `page_rows` rows (0: one page of all
  /// rows), each handed to `page` when the row after it arrives, the last one when the
  /// statement ends. `floats[i]` marks a FLOAT column the query reads as a double
  /// (BuildPageSql), decoded with MysqlDecoder::kFloat. `order_sources`, when not empty,
  /// gives for each order column the result column its RowBatch::order_keys part is read
  /// from: its value, or one of the collation keys that follow `names`. A row whose check of
  /// `charset_checks` is not NULL fails its page, naming the column and the row; no page after
  /// it is handed over.
  struct RowsQuery {
    std::string sql;
    std::vector<std::string> names;
    std::vector<bool> floats;
    std::string table_name;
    std::string context;
    size_t page_rows = 0;
    std::vector<size_t> order_sources;
    CharsetChecks charset_checks;
  };
  void QueryRows(RowsQuery query, std::function<void(Result<RowBatch>, bool last)> page);
  /// The current client error as a Status (and drops a broken connection).
  Status TakeError(std::string_view context);
  /// Closes the MySQL handle and the uv handles without blocking, even mid-operation.
  void Teardown();
  std::string Quote(std::string_view value);
  /// The horizon for a user without PROCESS: `settle` seconds before now (none for 0).
  void SettleHorizon(bool utc, const std::string& table_name,
                     std::function<void(Result<std::optional<CursorValue>>)> done);
  /// The horizon HorizonSql's two columns give (warning once about a stale transaction).
  std::optional<CursorValue> HorizonValue(const std::optional<std::string>& at,
                                          const std::optional<std::string>& stale, bool utc,
                                          const std::string& table_name);
  /// The source's horizon of that kind when a run read it less than kSharedHorizonFresh ago.
  std::optional<MysqlHorizon> RecentHorizon(bool local_time) const;

  uv_loop_t* loop_;
  std::shared_ptr<const MysqlConfig> config_;
  std::shared_ptr<MysqlSourceState> state_;
  MYSQL* mysql_ = nullptr;
  /// The client or server error number of the last failure (0 after a success).
  unsigned last_errno_ = 0;
  bool connected_ = false;
  /// Which column of STATISTICS tells the indexes the server may not use (set on connect).
  HiddenIndexColumn hidden_index_column_ = HiddenIndexColumn::kNone;
  bool busy_ = false;
  MYSQL_RES* result_ = nullptr;
  uv_poll_t* poll_ = nullptr;
  int poll_fd_ = -1;
  int poll_events_ = 0;  ///< the events poll_ watches now
  uv_timer_t* timer_ = nullptr;
  /// The operation in flight waited read_timeout for the server (its error says so).
  bool read_timed_out_ = false;
  /// Runs the deferred callbacks on the loop's next turn. An idle handle, not a timer of 0 ms:
  /// libuv before 1.48 runs a 0 ms timer started in a timer's callback again in the same pass,
  /// so a page handed over that way was followed by the next without ever polling (a SIGTERM
  /// waited until the statement's every page had come).
  uv_idle_t* defer_idle_ = nullptr;
  std::vector<std::function<void()>> deferred_;
  Step step_;
  uint64_t runs_ = 0;  ///< Run calls so far: a step started again must still be the current one
  std::function<void()> finished_;
  /// Fails the operation in flight (used by Close); empty when idle.
  std::function<void(Status)> abort_;
  std::shared_ptr<bool> alive_;
  uint64_t connect_attempt_ = 0;  ///< a host lookup answers only the attempt that asked
  std::optional<MysqlHorizon> fetched_horizon_;  ///< from the last reflection
};

}  // namespace siphon::mysql

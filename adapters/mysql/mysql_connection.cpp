#include "adapters/mysql/mysql_connection.hpp"

#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <mutex>
#include <optional>
#include <tuple>

#include <spdlog/spdlog.h>

#include "adapters/first_null_sql.hpp"
#include "adapters/mysql/mysql_sql.hpp"
#include "runtime/base/spelling.hpp"
#include "runtime/loop/resolve.hpp"

namespace siphon::mysql {

namespace {

// A horizon fetched with the run's reflection stands in for SafeHorizon this long after it.
constexpr std::chrono::seconds kFetchedHorizonFresh{1};
// A horizon another table's run read stands in for this one's this long after it: with 100
// tables on 1 s intervals, a few horizon reads a second instead of 100. The horizon
// (INNODB_TRX and PROCESSLIST) was two thirds of the server's work for an idle run.
constexpr std::chrono::milliseconds kSharedHorizonFresh{500};

// Each statement of a session's setup runs inside the non-blocking connect.
constexpr const char* kSessionSetup[] = {
    // autocommit on whatever the server's default (or init_connect) says: a session that
    // never commits would read one snapshot forever. sql_mode too: EMPTY_STRING_IS_NULL
    // turns a cursor value '' into NULL (nothing after it matches), PAD_CHAR_TO_FULL_LENGTH
    // pads every CHAR value, ANSI_QUOTES and NO_BACKSLASH_ESCAPES change how SQL reads. The
    // mode set is MariaDB's default but NO_AUTO_CREATE_USER (which MySQL 8 refuses): strict
    // mode decides how the server describes a query's columns (a CONCAT may be NULL).
    "SET time_zone = '+00:00', NAMES utf8mb4, autocommit = 1, "
    "sql_mode = 'STRICT_TRANS_TABLES,ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION'",
    // The source is only read: every statement runs in a read-only transaction.
    "SET SESSION TRANSACTION READ ONLY",
};

template <typename Handle>
void CloseHandle(Handle* handle) {
  handle->data = nullptr;
  uv_close(reinterpret_cast<uv_handle_t*>(handle),
           [](uv_handle_t* h) { delete reinterpret_cast<Handle*>(h); });
}

std::shared_ptr<spdlog::logger> Logger(const std::string& table) {
  return spdlog::default_logger()->clone("mysql:" + table);
}

// The table as error messages name it.
std::string Named(const TableSchema& table) {
  return table.query.empty() ? table.qualified_name : "the query";
}

constexpr unsigned kDuplicateColumnName = 1060;  // ER_DUP_FIELDNAME
constexpr unsigned kNoSuchTable = 1146;          // ER_NO_SUCH_TABLE (also for a database)
constexpr unsigned kBadField = 1054;             // ER_BAD_FIELD_ERROR: no such column
// ER_VIEW_INVALID: a view over a table or column since dropped (or one its definer may no
// longer read). The script names a broken object, as it names a missing table.
constexpr unsigned kViewInvalid = 1356;

// A query's result column as ReflectQuery records it. Its type comes from the metadata
// alone: read through the sub-select, a column names the derived table (`_siphon_query`,
// when MariaDB merges it) or its own alias (when materialized) rather than the table column
// it may come from, so information_schema cannot be asked for that column's COLUMN_TYPE.
ColumnInfo QueryColumn(const MYSQL_FIELD& field) {
  MysqlField f;
  f.type = field.type;
  f.flags = field.flags;
  f.length = field.length;
  f.decimals = field.decimals;
  f.charsetnr = field.charsetnr;
  if (const MARIADB_CHARSET_INFO* charset = mariadb_get_charset_by_nr(field.charsetnr)) {
    f.mbmaxlen = charset->char_maxlen;
  }
  MARIADB_CONST_STRING name{};
  if (mariadb_field_attr(&name, &field, MARIADB_FIELD_ATTR_DATA_TYPE_NAME) == 0 && name.length) {
    f.type_name.assign(name.str, name.length);
  }
  MysqlColumnType type = ColumnTypeOf(f);
  MysqlTypeClass cls = ClassifyType(type.data_type, type.column_type);
  ColumnInfo column;
  column.name.assign(field.name, field.name_length);
  column.source_type = std::move(type.column_type);
  column.type = cls.type;
  column.order = cls.order;
  column.stored_order = cls.stored_order;
  column.nullable = (field.flags & NOT_NULL_FLAG) == 0;
  return column;
}

}  // namespace

MysqlConnection::MysqlConnection(uv_loop_t* loop, std::shared_ptr<const MysqlConfig> config,
                                 std::shared_ptr<MysqlSourceState> state)
    : loop_(loop),
      config_(std::move(config)),
      state_(state ? std::move(state) : std::make_shared<MysqlSourceState>()),
      alive_(std::make_shared<bool>(true)) {
  // mysql_init initialises the library on first use, which is not thread-safe.
  static std::once_flag library_once;
  std::call_once(library_once, [] { mysql_library_init(0, nullptr, nullptr); });
  timer_ = new uv_timer_t;
  uv_timer_init(loop_, timer_);
  timer_->data = this;
  defer_idle_ = new uv_idle_t;
  uv_idle_init(loop_, defer_idle_);
  defer_idle_->data = this;
}

MysqlConnection::~MysqlConnection() {
  *alive_ = false;
  Teardown();
  CloseHandle(timer_);
  CloseHandle(defer_idle_);
}

void MysqlConnection::Defer(std::function<void()> fn) {
  deferred_.push_back(std::move(fn));
  uv_idle_start(defer_idle_, OnDefer);
}

void MysqlConnection::OnDefer(uv_idle_t* handle) {
  auto* self = static_cast<MysqlConnection*>(handle->data);
  if (!self) return;
  // What these callbacks defer runs on the next turn, after the loop has polled.
  uv_idle_stop(handle);
  std::vector<std::function<void()>> items;
  items.swap(self->deferred_);
  std::shared_ptr<bool> alive = self->alive_;
  for (auto& fn : items) {
    fn();
    // The callback may have destroyed the connection: its other callbacks must not run.
    if (!*alive) return;
  }
}

void MysqlConnection::Run(Step step, std::function<void()> finished) {
  read_timed_out_ = false;
  ++runs_;
  step_ = std::move(step);
  finished_ = std::move(finished);
  Drive(-1);
}

void MysqlConnection::Drive(int ready) {
  int status = step_(ready);
  if (status == kStepAgain) {
    // Nothing is waited for meanwhile: the rows that come next may already be buffered in the
    // client library, where the socket shows nothing of them.
    if (poll_) Watch(0);
    uv_timer_stop(timer_);
    Defer([this, run = runs_] {
      if (step_ && runs_ == run) Drive(-1);
    });
    return;
  }
  if (status != 0) {
    Wait(status);
    return;
  }
  auto finished = std::move(finished_);
  finished_ = nullptr;
  step_ = nullptr;
  std::shared_ptr<bool> alive = alive_;
  finished();
  // Between statements the session stays watched, without keeping the loop alive.
  if (*alive && !step_ && poll_) {
    Watch(UV_READABLE | UV_DISCONNECT);
    uv_unref(reinterpret_cast<uv_handle_t*>(poll_));
  }
}

void MysqlConnection::Wait(int status) {
  int fd = static_cast<int>(mysql_get_socket(mysql_));
  if (poll_ && poll_fd_ != fd) {
    CloseHandle(poll_);
    poll_ = nullptr;
  }
  if (!poll_) {
    poll_ = new uv_poll_t;
    uv_poll_init(loop_, poll_, fd);
    poll_->data = this;
    poll_fd_ = fd;
    poll_events_ = 0;
  }
  // A wait for reading also watches for the peer's close (which reading then finds), so the
  // mask of a read stays the one between statements: most waits change nothing in epoll.
  int events = 0;
  if (status & MYSQL_WAIT_READ) events |= UV_READABLE | UV_DISCONNECT;
  if (status & MYSQL_WAIT_WRITE) events |= UV_WRITABLE;
  if (status & MYSQL_WAIT_EXCEPT) events |= UV_PRIORITIZED;
  Watch(events);
  uv_ref(reinterpret_cast<uv_handle_t*>(poll_));
  if (status & MYSQL_WAIT_TIMEOUT) {
    uv_timer_start(timer_, OnTimer, mysql_get_timeout_value_ms(mysql_), 0);
  }
}

void MysqlConnection::Watch(int events) {
  if (events == poll_events_) return;
  poll_events_ = events;
  if (events) {
    uv_poll_start(poll_, events, OnPoll);
  } else {
    uv_poll_stop(poll_);
  }
}

void MysqlConnection::OnPoll(uv_poll_t* handle, int status, int events) {
  auto* self = static_cast<MysqlConnection*>(handle->data);
  if (!self) return;
  // libuv stops a handle whose socket reported an error.
  if (status < 0) self->poll_events_ = 0;
  if (!self->step_) {
    self->OnIdleInput(status, events);
    return;
  }
  uv_timer_stop(self->timer_);
  int ready = 0;
  if (status < 0) {
    // Let the client library find the socket error itself.
    ready = MYSQL_WAIT_READ | MYSQL_WAIT_WRITE;
  } else {
    if (events & (UV_READABLE | UV_DISCONNECT)) ready |= MYSQL_WAIT_READ;
    if (events & UV_WRITABLE) ready |= MYSQL_WAIT_WRITE;
    if (events & UV_PRIORITIZED) ready |= MYSQL_WAIT_EXCEPT;
  }
  self->Drive(ready);
}

void MysqlConnection::OnIdleInput(int status, int events) {
  // Nothing is due between statements: input now is the server ending the session (KILL,
  // wait_timeout, a restart), which drops the connection at once so the next run connects
  // again instead of failing; or bytes the next statement reads first (a TLS record, the
  // error a server sends before it closes), which are left alone while only the close is
  // watched for.
  if (status >= 0 && (events & UV_DISCONNECT) == 0) {
    char byte;
    ssize_t n = recv(poll_fd_, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n > 0) {
      Watch(UV_DISCONNECT);
      return;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
  }
  spdlog::info("mysql: the server closed an idle session to {}; the next run reconnects",
               config_->Describe());
  Teardown();
}

void MysqlConnection::OnTimer(uv_timer_t* handle) {
  auto* self = static_cast<MysqlConnection*>(handle->data);
  if (!self) return;
  if (self->poll_) self->Watch(0);
  // Once connected, a wait times out after read_timeout (the connect has its own): the
  // client library then only says it lost the connection.
  if (self->connected_) self->read_timed_out_ = true;
  self->Drive(MYSQL_WAIT_TIMEOUT);
}

void MysqlConnection::Teardown() {
  if (poll_) {
    CloseHandle(poll_);
    poll_ = nullptr;
    poll_fd_ = -1;
  }
  if (timer_) uv_timer_stop(timer_);
  step_ = nullptr;
  finished_ = nullptr;
  abort_ = nullptr;
  if (mysql_) {
    if (busy_ || result_) {
      // An operation is suspended mid-protocol: make every further read or write fail at
      // once, so freeing the result and closing never wait on the network.
      int fd = static_cast<int>(mysql_get_socket(mysql_));
      if (fd >= 0) shutdown(fd, SHUT_RDWR);
    }
    if (result_) mysql_free_result(result_);
    mysql_close(mysql_);
  }
  result_ = nullptr;
  mysql_ = nullptr;
  connected_ = false;
  busy_ = false;
}

void MysqlConnection::Close() {
  auto abort = std::move(abort_);
  Teardown();
  if (abort) Defer([abort] { abort(Status(ErrorKind::kCancelled, "connection closed")); });
}

Status MysqlConnection::TakeError(std::string_view context) {
  unsigned number = mysql_ ? mysql_errno(mysql_) : 2006;
  std::string message = mysql_ ? mysql_error(mysql_) : "not connected";
  if (number == 0) {
    number = 2013;
    message = "the operation failed without an error from the client library";
  }
  last_errno_ = number;
  if (read_timed_out_) {
    // Named as PostgreSQL's read timeout is, so the cause (and the option) is in the error.
    message = "no answer from mysql for " + std::to_string(config_->read_timeout_s) +
              " s (read_timeout); the connection is dropped: " + message;
  }
  Status status = MysqlStatus(number, message, context, config_->password);
  // A broken connection (or one stopped mid-result) cannot be reused.
  if (status.kind() == ErrorKind::kConnect || result_) Teardown();
  return status;
}

std::string MysqlConnection::Quote(std::string_view value) {
  std::string out(value.size() * 2 + 2, '\0');
  out[0] = '\'';
  // Honours the connection's charset and NO_BACKSLASH_ESCAPES (from the server status).
  unsigned long n = mysql_real_escape_string(mysql_, out.data() + 1, value.data(), value.size());
  out.resize(n + 2);
  out[n + 1] = '\'';
  return out;
}

void MysqlConnection::Connect(std::function<void(Status)> done) {
  if (busy_) {
    Defer([done] { done(Status(ErrorKind::kQuery, "mysql connection is busy")); });
    return;
  }
  if (connected_) {
    Defer([done] { done(Status::Ok()); });
    return;
  }
  const MysqlConfig& c = *config_;
  // Connector/C looks a host name up itself, blocking the loop for as long as a name server
  // takes: siphon looks it up on the thread pool, then connects to its addresses in turn.
  // ("localhost" is the Unix socket to Connector/C: left as it is.)
  if (!c.socket.empty() || c.host == "localhost" || IsIpAddress(c.host)) {
    ConnectTo({c.host}, 0, std::move(done));
    return;
  }
  Teardown();
  busy_ = true;
  abort_ = [done](Status s) { done(std::move(s)); };
  const uint64_t attempt = ++connect_attempt_;
  Status started = ResolveHost(loop_, c.host, alive_,
                               [this, attempt, done](Result<std::vector<std::string>> found) {
                                 if (attempt != connect_attempt_ || !busy_ || mysql_ != nullptr)
                                   return;  // closed since
                                 busy_ = false;
                                 abort_ = nullptr;
                                 if (!found.ok()) return done(found.status());
                                 // Connector/C checks a certificate against the host it is
                                 // handed, and it must name the host the script gave: with
                                 // tls_ca it gets the name and looks it up again itself, on
                                 // the loop, right after the name server answered here.
                                 if (!config_->tls_ca.empty()) {
                                   return ConnectTo({config_->host}, 0, done);
                                 }
                                 ConnectTo(std::move(*found), 0, done);
                               });
  if (!started.ok()) {
    busy_ = false;
    abort_ = nullptr;
    Defer([done, started] { done(started); });
  }
}

void MysqlConnection::ConnectTo(std::vector<std::string> hosts, size_t index,
                                std::function<void(Status)> done) {
  Teardown();
  mysql_ = mysql_init(nullptr);
  if (!mysql_) {
    Defer([done] { done(Status(ErrorKind::kConnect, "mysql_init failed: out of memory")); });
    return;
  }
  mysql_options(mysql_, MYSQL_OPT_NONBLOCK, nullptr);
  mysql_options(mysql_, MYSQL_SET_CHARSET_NAME, "utf8mb4");
  unsigned int timeout = static_cast<unsigned int>(config_->connect_timeout_s);
  mysql_options(mysql_, MYSQL_OPT_CONNECT_TIMEOUT, &timeout);
  // A server that stops answering mid-query (network gone, host frozen) fails the run
  // instead of holding the table forever; the runner then retries with backoff.
  unsigned int io_timeout = static_cast<unsigned int>(config_->read_timeout_s);
  mysql_options(mysql_, MYSQL_OPT_READ_TIMEOUT, &io_timeout);
  mysql_options(mysql_, MYSQL_OPT_WRITE_TIMEOUT, &io_timeout);
  unsigned int no_local_infile = 0;
  mysql_options(mysql_, MYSQL_OPT_LOCAL_INFILE, &no_local_infile);
  for (const char* sql : kSessionSetup) mysql_options(mysql_, MYSQL_INIT_COMMAND, sql);
  if (config_->tls) {
    my_bool enforce = 1;
    mysql_options(mysql_, MYSQL_OPT_SSL_ENFORCE, &enforce);
  }
  if (!config_->tls_ca.empty()) {
    // The CA makes Connector/C check the chain during the handshake; the name check (the
    // certificate's subjectAltName or CN against the host) needs VERIFY_SERVER_CERT.
    mysql_options(mysql_, MYSQL_OPT_SSL_CA, config_->tls_ca.c_str());
    my_bool verify = 1;
    mysql_options(mysql_, MYSQL_OPT_SSL_VERIFY_SERVER_CERT, &verify);
  }
  if (!config_->tls_cert.empty()) {
    mysql_options(mysql_, MYSQL_OPT_SSL_CERT, config_->tls_cert.c_str());
    mysql_options(mysql_, MYSQL_OPT_SSL_KEY, config_->tls_key.c_str());
  }
  busy_ = true;
  abort_ = [done](Status s) { done(std::move(s)); };
  auto ok = std::make_shared<bool>(false);
  const MysqlConfig& c = *config_;
  auto host = std::make_shared<const std::string>(hosts[index]);
  Run(
      [this, ok, &c, host](int ready) {
        MYSQL* ret = nullptr;
        int status = ready < 0 ? mysql_real_connect_start(
                                     &ret, mysql_, c.socket.empty() ? host->c_str() : "localhost",
                                     c.user.c_str(), c.password.c_str(),
                                     c.database.empty() ? nullptr : c.database.c_str(),
                                     static_cast<unsigned>(c.port),
                                     c.socket.empty() ? nullptr : c.socket.c_str(), 0)
                               : mysql_real_connect_cont(&ret, mysql_, ready);
        if (status == 0) *ok = ret != nullptr;
        return status;
      },
      [this, ok, done, hosts = std::move(hosts), index]() mutable {
        busy_ = false;
        abort_ = nullptr;
        if (!*ok) {
          Status status = TakeError("connect to " + config_->Describe());
          Teardown();
          if (last_errno_ == 2026 && !config_->tls_ca.empty() &&
              status.message().find("certificate") != std::string::npos) {
            // The server failed to prove who it is: asking again gets the same answer, as a
            // refused password does. Connector/C says "Validation of SSL server certificate
            // failed" only for the name check (the chain was verified in the handshake).
            bool name = status.message().find("Validation of SSL server certificate failed") !=
                        std::string::npos;
            status = Status(ErrorKind::kAuth,
                            status.message() + ": the server's TLS certificate did not verify " +
                                (name ? "against tls_ca: it does not name the host " + config_->host
                                      : std::string("against tls_ca (not signed by that CA, or "
                                                    "expired)")) +
                                "; not connecting");
          }
          // Another address of the name may answer (as Connector/C itself would try).
          if (status.kind() == ErrorKind::kConnect && index + 1 < hosts.size()) {
            ConnectTo(std::move(hosts), index + 1, std::move(done));
            return;
          }
          Defer([done, status] { done(status); });
          return;
        }
        // Connector/C 3.3 goes on in plain text when the server offers no TLS, however the
        // client insists (MYSQL_OPT_SSL_ENFORCE): `tls = true` is only kept here.
        if (config_->tls && mysql_get_ssl_cipher(mysql_) == nullptr) {
          Teardown();
          Status status = MysqlStatus(
              2026,
              "tls = true, but the server does not offer TLS (its have_ssl is not YES): not "
              "reading in plain text",
              "connect to " + config_->Describe(), config_->password);
          Defer([done, status] { done(status); });
          return;
        }
        connected_ = true;
        hidden_index_column_ =
            HiddenIndexColumnOf(mariadb_connection(mysql_) != 0, mysql_get_server_version(mysql_));
        Defer([done] { done(Status::Ok()); });
      });
}

void MysqlConnection::Execute(std::string sql, std::function<void(MYSQL_RES*)> on_result,
                              RowSink sink, std::function<void(Status)> done) {
  busy_ = true;
  auto query_ret = std::make_shared<int>(0);
  auto shared_sql = std::make_shared<std::string>(std::move(sql));
  Run(
      [this, query_ret, shared_sql](int ready) {
        return ready < 0 ? mysql_real_query_start(query_ret.get(), mysql_, shared_sql->data(),
                                                  shared_sql->size())
                         : mysql_real_query_cont(query_ret.get(), mysql_, ready);
      },
      [this, query_ret, on_result, sink, done] {
        if (*query_ret != 0) {
          busy_ = false;
          done(TakeError("query"));
          return;
        }
        // mysql_use_result reads nothing yet: rows are fetched below, without blocking.
        result_ = mysql_use_result(mysql_);
        if (!result_) {
          busy_ = false;
          if (mysql_errno(mysql_) != 0) {
            done(TakeError("query"));
          } else {
            done(Status(ErrorKind::kQuery, "query returned no result set"));
          }
          return;
        }
        on_result(result_);
        Run(
            [this, sink](int ready) {
              MYSQL_ROW row = nullptr;
              int status = ready < 0 ? mysql_fetch_row_start(&row, result_)
                                     : mysql_fetch_row_cont(&row, result_, ready);
              // Rows already buffered come back at once: drain them in one wake-up, but
              // for a page the sink completed, which goes first (the server keeps sending).
              while (status == 0) {
                if (!row) return 0;
                if (!sink(row, mysql_fetch_lengths(result_))) return kStepAgain;
                status = mysql_fetch_row_start(&row, result_);
              }
              return status;
            },
            [this, done] {
              busy_ = false;
              if (mysql_errno(mysql_) != 0) {
                done(TakeError("fetch"));
                return;
              }
              // Every row was read, so freeing the result does no I/O.
              mysql_free_result(result_);
              result_ = nullptr;
              done(Status::Ok());
            });
      });
}

namespace {

// ReflectSql's rows, read into the table's columns, keys, unique indexes, size and horizon.
void ReadReflectedRows(std::vector<ReflectedRow>& rows, TableSchema& schema,
                       std::vector<UniqueIndex>& unique, MysqlHorizon& horizon) {
  OrderReflectedRows(rows);
  for (const ReflectedRow& cells : rows) {
    auto text = [&](int i) { return cells[i].value_or(std::string()); };
    auto maybe = [&](int i) { return cells[i]; };
    std::string kind = text(0);
    if (kind == "c") {
      ColumnInfo column;
      column.name = text(1);
      column.source_type = text(2);
      MysqlTypeClass cls = ClassifyType(text(3), column.source_type);
      column.type = cls.type;
      column.order = cls.order;
      column.stored_order = cls.stored_order;
      column.nullable = text(4) != "NO";
      if (IsLossyCharset(text(6))) column.lossy_charset = text(6);
      schema.columns.push_back(std::move(column));
    } else if (kind == "k") {
      schema.primary_key.push_back(text(1));
    } else if (kind == "u") {
      // Rows come by seq_in_index, the indexes' interleaved: gathered by name.
      UniqueIndex* index = nullptr;
      for (auto& u : unique) {
        if (u.name == text(2)) index = &u;
      }
      if (index == nullptr) index = &unique.emplace_back(UniqueIndex{text(2), {}, {}});
      if (!cells[1]) {
        index->unusable = "indexes an expression";
      } else if (text(4) != "BTREE" && index->unusable.empty()) {
        // A hash index (a MEMORY table's, or MariaDB's UNIQUE over a long BLOB or TEXT)
        // cannot give the rows in order: every page would sort the table.
        index->unusable = "is a " + text(4) + " index, which cannot give the rows in order";
      } else if (cells[3] && index->unusable.empty()) {
        // The index is unique over a prefix, so the whole column is unique too, but a page
        // ordered by the whole column cannot be read in the order of the index: every page
        // would sort the table.
        index->unusable = "indexes only a prefix of the column \"" + text(1) + "\"";
      } else if (cells[6] && index->unusable.empty()) {
        // Unique still, but the optimizer may not read through it (ReflectSql).
        index->unusable =
            text(6) == "ignored"
                ? "is ignored (ALTER INDEX … IGNORED): the server does not read through it, "
                  "and every page would sort the table"
                : "is invisible (ALTER INDEX … INVISIBLE): the server does not read through "
                  "it, and every page would sort the table";
      }
      if (cells[1]) index->columns.push_back(text(1));
    } else if (kind == "t") {
      if (cells[5]) schema.row_estimate = std::stoll(text(5));
    } else if (kind == "h") {
      horizon.at = maybe(1);
      horizon.stale = maybe(2);
      horizon.fetched = true;
    }
  }
}

}  // namespace

void MysqlConnection::Reflect(const std::string& table,
                              std::function<void(Result<TableSchema>)> done) {
  if (Refuse([done](Status s) { done(std::move(s)); })) return;
  TableRef ref = SplitTableName(table);
  auto schema = std::make_shared<TableSchema>();
  schema->qualified_name = table;
  // Once a table wants a horizon, every run of it does (SafeHorizon follows Reflect): both
  // come back from one statement.
  std::optional<bool> with_horizon;
  auto wanted = state_->horizon_wanted.find(table);
  if (wanted != state_->horizon_wanted.end() && !state_->warned_no_process)
    with_horizon = wanted->second;
  fetched_horizon_.reset();
  // One another run read a moment ago does: the reflection need not bring one.
  std::optional<MysqlHorizon> recent;
  if (with_horizon) recent = RecentHorizon(*with_horizon);
  if (recent) with_horizon.reset();
  abort_ = [done](Status s) { done(std::move(s)); };
  auto quote = [this](std::string_view v) { return Quote(v); };
  auto rows = std::make_shared<std::vector<ReflectedRow>>();
  Execute(
      ReflectSql(ref, quote, with_horizon, hidden_index_column_), [](MYSQL_RES*) {},
      [rows](MYSQL_ROW row, unsigned long* lengths) {
        ReflectedRow& cells = rows->emplace_back();
        for (size_t i = 0; i < cells.size(); ++i) {
          if (row[i]) cells[i].emplace(row[i], lengths[i]);
        }
        return true;
      },
      [this, done, schema, table, ref, with_horizon, recent, rows](Status status) {
        abort_ = nullptr;
        if (!status.ok()) {
          if (with_horizon && last_errno_ == 1227) {
            // PROCESS was revoked since: reflect alone, and SafeHorizon finds out and warns.
            state_->horizon_wanted.erase(table);
            Reflect(table, done);
            return;
          }
          Status s = status.WithContext("reflect " + table);
          Defer([done, s] { done(s); });
          return;
        }
        std::vector<UniqueIndex> unique;
        MysqlHorizon horizon;
        ReadReflectedRows(*rows, *schema, unique, horizon);
        if (horizon.fetched) {
          horizon.local_time = *with_horizon;
          horizon.when = std::chrono::steady_clock::now();
          state_->recent_horizons[horizon.local_time] = horizon;
          fetched_horizon_ = std::move(horizon);
        } else if (recent) {
          fetched_horizon_ = std::move(recent);
        }
        if (schema->columns.empty()) {
          std::string where =
              ref.schema.empty() ? (config_->database.empty() ? " (no database selected: name it "
                                                                "as database.table)"
                                                              : " in database " + config_->database)
                                 : "";
          // information_schema shows a user only the tables it may read: the table itself
          // says whether it is missing or refused (to a user without a grant on the
          // database, the server refuses a missing table too, so the message names both).
          QueryText("SELECT * FROM " + QuotedTable(ref) + " LIMIT 0", [this, done, table, ref,
                                                                       where](auto probe) {
            if (!probe.ok() && probe.status().kind() == ErrorKind::kConnect) {
              return done(probe.status().WithContext("reflect " + table));
            }
            // The server's words, without the statement's "query: " context.
            auto reason = [&probe] {
              const std::string message = probe.status().message();
              return message.substr(message.rfind("query: ", 0) == 0 ? 7 : 0);
            };
            if (!probe.ok() && probe.status().kind() == ErrorKind::kAuth) {
              return done(Status(ErrorKind::kAuth,
                                 "table " + table + where +
                                     " is missing, or the user may not read it: " + reason()));
            }
            if (!probe.ok() && last_errno_ == kViewInvalid) {
              // A view whose table is gone: information_schema lists the view but none of
              // its columns, and "not found; did you mean" would name the view itself.
              return done(Status(ErrorKind::kConfig,
                                 "table " + table + where + " cannot be read: " + reason()));
            }
            NotFound(table, ref.schema, ref.table, where, done);
          });
          return;
        }
        // A view has no indexes: its key is the script's.
        TakeKeyFromUniqueIndex(*schema, unique);
        if (!state_->probed_columns.insert(table).second) {
          Defer([done, schema] { done(std::move(*schema)); });
          return;
        }
        // information_schema lists only the columns the user may read: a column-level grant
        // leaves the others out of the replica without a word. The server refuses SELECT *
        // then, without naming them; asked once per table and source.
        QueryText("SELECT * FROM " + QuotedTable(ref) + " LIMIT 0", [this, done, schema,
                                                                     table](auto probe) {
          if (!probe.ok() && probe.status().kind() == ErrorKind::kConnect) {
            state_->probed_columns.erase(table);
            return done(probe.status().WithContext("reflect " + table));
          }
          if (!probe.ok() && probe.status().kind() == ErrorKind::kAuth) {
            const std::string reason = probe.status().message();
            const size_t query = reason.rfind("query: ", 0) == 0 ? 7 : 0;
            Logger(table)->warn(
                "the user may not read every column of {} (SELECT * is refused: {}): the "
                "columns it may not read are not replicated, and the server does not name "
                "them (GRANT SELECT on them to replicate them)",
                table, reason.substr(query));
          }
          done(std::move(*schema));
        });
      });
}

void MysqlConnection::ReflectQuery(const std::string& query,
                                   std::function<void(Result<TableSchema>)> done) {
  if (Refuse([done](Status s) { done(std::move(s)); })) return;
  auto schema = std::make_shared<TableSchema>();
  schema->qualified_name = "query";
  schema->query = query;
  // No horizon comes with this reflection: SafeHorizon asks for its own.
  fetched_horizon_.reset();
  abort_ = [done](Status s) { done(std::move(s)); };
  Execute(
      DescribeQuerySql(query),
      [schema](MYSQL_RES* result) {
        unsigned n = mysql_num_fields(result);
        MYSQL_FIELD* fields = mysql_fetch_fields(result);
        for (unsigned i = 0; i < n; ++i) schema->columns.push_back(QueryColumn(fields[i]));
      },
      [](MYSQL_ROW, unsigned long*) { return true; },
      [this, done, schema](Status status) {
        abort_ = nullptr;
        if (!status.ok() && last_errno_ == kDuplicateColumnName && mysql_) {
          // A sub-select's columns need distinct names. The server's message names the
          // column (in the server's language, so it is quoted whole).
          Status server = MysqlStatus(last_errno_, mysql_error(mysql_), "", config_->password);
          status = Status(ErrorKind::kConfig,
                          "the query returns two columns of the same name: give them distinct "
                          "names (AS …): " +
                              server.message());
        } else if (!status.ok() && (last_errno_ == kNoSuchTable || last_errno_ == kViewInvalid) &&
                   mysql_) {
          // Named as the server names it ("Table 'shop.ordrs' doesn't exist", "View 'shop.v'
          // references invalid table(s) …"), without the statement's context.
          status = QueryTableNotFound(MysqlStatus(last_errno_, mysql_error(mysql_),
                                                  "reflect the query", config_->password));
        } else if (!status.ok() && last_errno_ == kBadField && mysql_) {
          // "Unknown column 'c.nme' in 'SELECT'", as the server names it.
          status = QueryColumnNotFound(MysqlStatus(last_errno_, mysql_error(mysql_),
                                                   "reflect the query", config_->password));
        } else if (!status.ok()) {
          status = status.WithContext("reflect the query");
        } else if (schema->columns.empty()) {
          status = Status(ErrorKind::kConfig, "the query returns no columns");
        }
        if (!status.ok()) return Defer([done, status] { done(status); });
        // A text column's character set, which the metadata does not give (the server
        // describes it in the session's), tells whether its values need checking (Pull).
        std::vector<std::string> names;
        for (const auto& c : schema->columns) names.push_back(c.name);
        QueryText(QueryCharsetsSql(schema->query, names), [done, schema](auto rows) {
          if (!rows.ok()) return done(rows.status().WithContext("reflect the query"));
          for (size_t i = 0;
               !rows->empty() && i < rows->front().size() && i < schema->columns.size(); ++i) {
            const std::optional<std::string>& charset = rows->front()[i];
            if (charset && IsLossyCharset(*charset)) schema->columns[i].lossy_charset = *charset;
          }
          done(std::move(*schema));
        });
      });
}

void MysqlConnection::FirstNull(const TableSchema& table, const std::vector<std::string>& columns,
                                std::function<void(Result<std::optional<std::string>>)> done) {
  QueryText(FirstNullSql(columns, QuoteIdent, FromClause(table)), [columns, done](auto rows) {
    if (!rows.ok()) return done(rows.status().WithContext("look for NULL keys"));
    if (rows->empty() || rows->front().empty() || !rows->front()[0]) {
      return done(std::optional<std::string>());
    }
    done(std::optional<std::string>(
        FirstNullColumn(columns, std::atoll(rows->front()[0]->c_str()))));
  });
}

std::string MysqlConnection::PageSql(const TableSchema& table, const PageQuery& query) const {
  Result<std::string> sql = BuildPageSql(table, query, nullptr);
  return sql.ok() ? *sql : "-- " + sql.status().ToString();
}

void MysqlConnection::Pull(const TableSchema& table, const PageQuery& query,
                           std::function<void(Result<RowBatch>)> done) {
  PageQuery one = query;
  one.pages = 1;
  PullPages(table, one,
            [done = std::move(done)](Result<RowBatch> r, bool /*last*/) { done(std::move(r)); });
}

void MysqlConnection::PullPages(const TableSchema& table, const PageQuery& query,
                                std::function<void(Result<RowBatch>, bool last)> page) {
  auto fail = [page](Status s) { page(std::move(s), true); };
  if (Refuse(fail)) return;
  Result<std::vector<std::string>> params =
      PageParameters(table, query, [this](std::string_view v) { return Quote(v); });
  if (!params.ok()) return FailLater(fail, params.status());
  PageQuery whole = query;
  whole.limit = query.limit * std::max<size_t>(query.pages, 1);
  Result<std::string> sql = BuildPageSql(table, whole, &*params);
  if (!sql.ok()) return FailLater(fail, sql.status());
  RowsQuery rows;
  rows.sql = std::move(*sql);
  rows.names = query.columns;
  if (rows.names.empty()) {
    for (const auto& c : table.columns) rows.names.push_back(c.name);
  }
  const std::vector<std::string>& names = rows.names;
  for (const auto& name : names) {
    int idx = table.Find(name);
    rows.floats.push_back(idx >= 0 && IsSingleFloat(table.columns[idx].source_type));
  }
  // Rows the server holds equal whose bytes differ carry keys telling so (order_keys).
  const std::vector<std::string> collated = CollationKeyColumns(table, query);
  if (!collated.empty()) {
    for (const auto& name : query.order_by) {
      auto key = std::find(collated.begin(), collated.end(), name);
      rows.order_sources.push_back(
          key != collated.end() ? names.size() + (key - collated.begin())
                                : std::find(names.begin(), names.end(), name) - names.begin());
    }
  }
  // Each value of a column whose character set has bytes without a character is checked:
  // the checks follow the collation keys.
  size_t check_at = names.size() + collated.size();
  for (const auto& name : CharsetCheckColumns(table, query.columns)) {
    const size_t column = std::find(names.begin(), names.end(), name) - names.begin();
    rows.charset_checks.checks.push_back(
        {check_at++, column, table.columns[table.Find(name)].lossy_charset});
  }
  for (const auto& name : query.order_by) {
    auto at = std::find(names.begin(), names.end(), name);
    if (at != names.end()) rows.charset_checks.row_names.push_back(at - names.begin());
  }
  rows.table_name = table.qualified_name;
  rows.context = "pull " + Named(table);
  rows.page_rows = query.limit;
  QueryRows(std::move(rows), std::move(page));
}

void MysqlConnection::QueryRows(RowsQuery query,
                                std::function<void(Result<RowBatch>, bool last)> page) {
  // The statement's rows, decoded into the page being filled.
  struct Stream {
    RowsQuery query;
    size_t fields = 0;  // the columns the statement must return
    std::vector<MysqlDecoder> decoders;
    std::vector<bool> zero_dates;
    RowBatch batch;
    std::vector<std::pair<size_t, std::string>> row_zero_dates;  // of the row last read
    // The first value whose bytes have no character: its check, the row's order values and
    // the value's bytes in hex, as the server gives them. No page is handed over after it.
    std::optional<std::tuple<const CharsetCheck*, Cursor, std::string>> lossy;
    std::function<void(Result<RowBatch>, bool)> page;

    void Fresh() {
      batch = RowBatch(query.names.size());
      batch.Reserve(query.page_rows, 0);
      if (!query.order_sources.empty()) batch.order_keys.reserve(query.page_rows);
    }
    // A zero date is replicated as NULL, but the server orders it (first): a page that ends
    // on one in a cursor column continues from it.
    RowBatch Take() {
      batch.last_row_source_text = std::move(row_zero_dates);
      row_zero_dates = {};
      RowBatch whole = std::move(batch);
      Fresh();
      return whole;
    }
  };
  auto stream = std::make_shared<Stream>();
  stream->query = std::move(query);
  stream->page = std::move(page);
  stream->Fresh();
  // The collation keys and the charset checks follow the columns: they are not decoded.
  const RowsQuery& q = stream->query;
  stream->fields = q.names.size();
  for (size_t source : q.order_sources) stream->fields = std::max(stream->fields, source + 1);
  for (const auto& check : q.charset_checks.checks) {
    stream->fields = std::max(stream->fields, check.result + 1);
  }
  abort_ = [stream](Status s) { stream->page(std::move(s), true); };
  std::string sql = std::move(stream->query.sql);
  Execute(
      std::move(sql),
      [stream](MYSQL_RES* result) {
        unsigned n = mysql_num_fields(result);
        MYSQL_FIELD* fields = mysql_fetch_fields(result);
        const std::vector<bool>& floats = stream->query.floats;
        for (unsigned i = 0; i < n; ++i) {
          if (i < floats.size() && floats[i] && fields[i].type == MYSQL_TYPE_DOUBLE) {
            stream->decoders.push_back(MysqlDecoder::kFloat);
            continue;
          }
          stream->decoders.push_back(
              DecoderFor(fields[i].type, fields[i].flags, fields[i].charsetnr));
        }
        stream->zero_dates.assign(n, false);
      },
      [this, stream](MYSQL_ROW row, unsigned long* lengths) {
        Stream& s = *stream;
        // A result of other columns is failed whole when it ends, as is one with a value
        // no character set can hold: nothing of it is handed over.
        if (s.decoders.size() != s.fields || s.lossy) return true;
        const RowsQuery& q = s.query;
        // Posted, as the last page is: the pages arrive in order. The rows after it are read
        // once it is handed over, so it is not held back while the server sends the rest.
        const bool whole = q.page_rows > 0 && s.batch.rows() >= q.page_rows;
        if (whole) {
          auto page = std::make_shared<RowBatch>(s.Take());
          Defer([stream, page] { stream->page(std::move(*page), false); });
        }
        s.row_zero_dates.clear();
        if (!q.order_sources.empty()) {
          // Each part as its length and bytes (a NULL as a length no value has).
          std::string& key = s.batch.order_keys.emplace_back();
          for (size_t source : q.order_sources) {
            const uint32_t size = row[source] ? static_cast<uint32_t>(lengths[source]) : ~0u;
            key.append(reinterpret_cast<const char*>(&size), sizeof size);
            if (row[source]) key.append(row[source], lengths[source]);
          }
        }
        for (size_t i = 0; i < q.names.size(); ++i) {
          if (!row[i]) {
            s.batch.AddNull();
            continue;
          }
          if (AppendMysqlValue(s.decoders[i], row[i], lengths[i], s.batch) ==
              DecodeOutcome::kZeroDate) {
            s.zero_dates[i] = true;
            s.row_zero_dates.emplace_back(i, std::string(row[i], lengths[i]));
          }
        }
        for (const CharsetCheck& check : q.charset_checks.checks) {
          if (!row[check.result]) continue;
          const size_t at = s.batch.rows() - 1;
          Cursor order;
          for (size_t c : q.charset_checks.row_names) {
            order.push_back(CursorValueOf(s.batch, at, c));
          }
          s.lossy.emplace(&check, std::move(order),
                          std::string(row[check.result], lengths[check.result]));
          break;
        }
        return !whole;
      },
      [this, stream](Status status) {
        abort_ = nullptr;
        Stream& s = *stream;
        const RowsQuery& q = s.query;
        auto last = [this, stream](Result<RowBatch> r) {
          auto shared = std::make_shared<Result<RowBatch>>(std::move(r));
          Defer([stream, shared] { stream->page(std::move(*shared), true); });
        };
        if (!status.ok()) return last(status.WithContext(q.context));
        for (size_t i = 0; i < s.zero_dates.size() && i < q.names.size(); ++i) {
          if (!s.zero_dates[i]) continue;
          if (!state_->warned_zero_dates.insert(q.table_name + "\n" + q.names[i]).second) continue;
          Logger(q.table_name)
              ->warn("column \"{}\" holds zero dates ('0000-00-00'); they are replicated as NULL",
                     q.names[i]);
        }
        if (s.decoders.size() != s.fields) {
          return last(Status(ErrorKind::kQuery, q.context + ": the query returned " +
                                                    std::to_string(s.decoders.size()) +
                                                    " columns, expected " +
                                                    std::to_string(s.fields)));
        }
        if (s.lossy) {
          // The replica cannot hold such a value (there is no character to write), and '?'
          // in its place would be lost silently: the page is not written.
          const auto& [check, order, hex] = *s.lossy;
          const std::string& column = q.names[check->column];
          std::vector<std::string> order_names;
          for (size_t c : q.charset_checks.row_names) order_names.push_back(q.names[c]);
          std::string row_name = order_names.empty()
                                     ? std::string()
                                     : " in the row where " + CursorColumnsJson(order_names) +
                                           " = " + CursorToJson(order);
          return last(Status(ErrorKind::kType,
                             q.context + ": column \"" + column + "\"" + row_name +
                                 " holds bytes that are no " + check->charset +
                                 " character (its bytes: " + hex +
                                 "), which the server sends as '?': correct the value on the "
                                 "source, or replicate the column's bytes with a query (CAST(" +
                                 QuoteIdent(column) + " AS BINARY))"));
        }
        last(s.Take());
      });
}

void MysqlConnection::DigestKeys(const TableSchema& table, const std::vector<std::string>& key,
                                 const KeyRange& range, const std::vector<Cursor>& splits,
                                 std::function<void(Result<std::vector<KeyDigest>>)> done) {
  if (Refuse([done](Status s) { done(std::move(s)); })) return;
  Result<std::string> sql =
      DigestSql(table, key, range, splits, [this](std::string_view v) { return Quote(v); });
  if (!sql.ok()) return FailLater([done](Status s) { done(std::move(s)); }, sql.status());
  const size_t parts = splits.size() + 1;
  std::string name = Named(table);
  QueryText(*sql, [done, parts, name](auto rows) {
    if (!rows.ok()) return done(rows.status().WithContext("digest keys of " + name));
    std::vector<KeyDigest> out(parts);
    for (const auto& row : *rows) {
      if (row.size() < 4 || !row[0] || !row[1] || !row[2] || !row[3]) continue;
      size_t b = strtoull(row[0]->c_str(), nullptr, 10);
      if (b >= parts) continue;
      out[b].count = strtoll(row[1]->c_str(), nullptr, 10);
      out[b].sum_hi = strtoll(row[2]->c_str(), nullptr, 10);
      out[b].sum_lo = strtoll(row[3]->c_str(), nullptr, 10);
    }
    done(std::move(out));
  });
}

void MysqlConnection::FindKeys(const TableSchema& table, const std::vector<std::string>& key,
                               const std::vector<Cursor>& keys,
                               std::function<void(Result<std::vector<Cursor>>)> done) {
  if (Refuse([done](Status s) { done(std::move(s)); })) return;
  Result<std::string> sql =
      FindKeysSql(table, key, keys, [this](std::string_view v) { return Quote(v); });
  if (!sql.ok()) return FailLater([done](Status s) { done(std::move(s)); }, sql.status());
  RowsQuery rows;
  rows.sql = std::move(*sql);
  rows.names = key;
  rows.table_name = table.qualified_name;
  rows.context = "find keys of " + Named(table);
  QueryRows(std::move(rows), [done](Result<RowBatch> rows, bool /*last*/) {
    if (!rows.ok()) return done(rows.status());
    done(CursorsOf(*rows));
  });
}

void MysqlConnection::SafeHorizon(const TableSchema& table, const std::string& column,
                                  const std::optional<CursorValue>& /*after*/,
                                  std::function<void(Result<std::optional<CursorValue>>)> done) {
  int idx = table.Find(column);
  if (idx < 0 || table.columns[idx].order != OrderKind::kTime ||
      !HorizonApplies(table.columns[idx].source_type)) {
    Defer([done] { done(std::optional<CursorValue>()); });
    return;
  }
  // COLUMN_TYPE is lower case: "timestamp(6)", "datetime".
  const bool utc = table.columns[idx].source_type.rfind("timestamp", 0) == 0;
  std::string table_name = table.qualified_name;
  if (state_->warned_no_process) return SettleHorizon(utc, table_name, std::move(done));
  state_->horizon_wanted[table_name] = !utc;
  // The horizon that came with this run's reflection: taken a moment earlier, so it holds
  // back at most a little more. Used once, and only while it is that fresh.
  std::optional<MysqlHorizon> fetched = std::move(fetched_horizon_);
  fetched_horizon_.reset();
  if (!fetched || fetched->local_time != !utc ||
      std::chrono::steady_clock::now() - fetched->when >= kFetchedHorizonFresh) {
    fetched = RecentHorizon(!utc);
  }
  if (fetched) {
    Defer([this, done, utc, table_name, fetched] {
      done(HorizonValue(fetched->at, fetched->stale, utc, table_name));
    });
    return;
  }
  QueryText(HorizonSql(!utc), [this, done, utc, table_name](auto rows) {
    if (!rows.ok()) {
      if (last_errno_ != 1227) {  // ER_SPECIFIC_ACCESS_DENIED_ERROR: PROCESS is missing
        done(rows.status().WithContext("safe horizon"));
        return;
      }
      state_->horizon_wanted.erase(table_name);
      if (!state_->warned_no_process) {
        state_->warned_no_process = true;
        Logger(table_name)
            ->warn(
                "{}: the user lacks the PROCESS privilege, so siphon cannot see open "
                "transactions (information_schema.INNODB_TRX): incremental runs hold {} s "
                "back (`settle`), and a commit later than that is only caught by `lookback` "
                "(GRANT PROCESS ON *.* TO the user)",
                config_->Describe(), config_->settle_s);
      }
      SettleHorizon(utc, table_name, done);
      return;
    }
    if (rows->size() != 1 || (*rows)[0].size() < 2) {
      done(std::optional<CursorValue>());
      return;
    }
    MysqlHorizon& read = state_->recent_horizons[!utc];
    read = MysqlHorizon{(*rows)[0][0], (*rows)[0][1], true, !utc, std::chrono::steady_clock::now()};
    done(HorizonValue(read.at, read.stale, utc, table_name));
  });
}

std::optional<MysqlHorizon> MysqlConnection::RecentHorizon(bool local_time) const {
  auto it = state_->recent_horizons.find(local_time);
  if (it == state_->recent_horizons.end() ||
      std::chrono::steady_clock::now() - it->second.when >= kSharedHorizonFresh) {
    return std::nullopt;
  }
  return it->second;
}

void MysqlConnection::SettleHorizon(bool utc, const std::string& table_name,
                                    std::function<void(Result<std::optional<CursorValue>>)> done) {
  if (config_->settle_s == 0) {
    Defer([done] { done(std::optional<CursorValue>()); });
    return;
  }
  QueryText(SettleHorizonSql(!utc, config_->settle_s), [this, done, utc, table_name](auto rows) {
    if (!rows.ok()) return done(rows.status().WithContext("safe horizon"));
    if (rows->size() != 1 || (*rows)[0].size() < 2) return done(std::optional<CursorValue>());
    done(HorizonValue((*rows)[0][0], std::nullopt, utc, table_name));
  });
}

std::optional<CursorValue> MysqlConnection::HorizonValue(const std::optional<std::string>& at,
                                                         const std::optional<std::string>& stale,
                                                         bool utc, const std::string& table_name) {
  if (stale && state_->warned_stale != *stale) {
    state_->warned_stale = *stale;
    Logger(table_name)
        ->warn(
            "a write transaction has been open for over {} s and no longer holds back "
            "replication ({}); rows it commits are only caught by `lookback`",
            kHorizonMaxHoldSeconds, *stale);
  }
  // CONVERT_TZ gives NULL for a global time zone it does not know.
  if (!at) return std::nullopt;
  RowBatch one(1);
  AppendMysqlValue(utc ? MysqlDecoder::kTimestamp : MysqlDecoder::kDateTime, at->data(), at->size(),
                   one);
  return CursorValueOf(one, 0, 0);
}

// A table Reflect did not find: the error names the tables of the same database spelled
// closest to it, as `from` would name them. A failing look-up only leaves them out. A `from`
// that names no table is the script's mistake, as a column it names that is not there is.
void MysqlConnection::NotFound(const std::string& table, const std::string& database,
                               const std::string& name, const std::string& where,
                               std::function<void(Result<TableSchema>)> done) {
  QueryText("SELECT table_name FROM information_schema.tables WHERE table_schema = " +
                (database.empty() ? std::string("DATABASE()") : Quote(database)),
            [done, table, database, name, where](auto rows) {
              if (!rows.ok() && rows.status().kind() == ErrorKind::kConnect) {
                return done(rows.status().WithContext("reflect " + table));
              }
              std::vector<std::string> names;
              if (rows.ok()) {
                for (const auto& row : *rows) {
                  if (!row.empty() && row[0]) names.push_back(*row[0]);
                }
              }
              auto part = [](const std::string& n) {
                return n.find_first_of(".`") == std::string::npos ? n : QuoteIdent(n);
              };
              std::vector<std::string> similar = ClosestNames(name, names, 3);
              for (auto& n : similar) {
                n = database.empty() ? part(n) : part(database) + "." + part(n);
              }
              done(Status(ErrorKind::kConfig,
                          "table " + table + " not found" + where + DidYouMeanFrom(similar)));
            });
}

void MysqlConnection::QueryText(
    const std::string& sql,
    std::function<void(Result<std::vector<std::vector<std::optional<std::string>>>>)> done) {
  using Rows = std::vector<std::vector<std::optional<std::string>>>;
  if (Refuse([done](Status s) { done(std::move(s)); })) return;
  auto rows = std::make_shared<Rows>();
  auto columns = std::make_shared<unsigned>(0);
  abort_ = [done](Status s) { done(std::move(s)); };
  Execute(
      sql, [columns](MYSQL_RES* result) { *columns = mysql_num_fields(result); },
      [rows, columns](MYSQL_ROW row, unsigned long* lengths) {
        auto& out = rows->emplace_back();
        for (unsigned i = 0; i < *columns; ++i) {
          if (row[i]) {
            out.emplace_back(std::string(row[i], lengths[i]));
          } else {
            out.emplace_back(std::nullopt);
          }
        }
        return true;
      },
      [this, done, rows](Status status) {
        abort_ = nullptr;
        if (!status.ok()) {
          Defer([done, status] { done(status); });
          return;
        }
        Defer([done, rows] { done(std::move(*rows)); });
      });
}

bool MysqlConnection::Refuse(const std::function<void(Status)>& fail) {
  if (!busy_ && connected_) return false;
  FailLater(fail, busy_ ? Status(ErrorKind::kQuery, "mysql connection is busy")
                        : Status(ErrorKind::kConnect, "not connected to " + config_->Describe()));
  return true;
}

void MysqlConnection::FailLater(std::function<void(Status)> fail, Status status) {
  Defer([fail = std::move(fail), status] { fail(status); });
}

}  // namespace siphon::mysql

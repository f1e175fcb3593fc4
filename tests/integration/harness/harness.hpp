#pragma once

// Test harness for siphon's integration tests: the throwaway servers started by the
// `servers` ctest fixture (scripts/dev/servers.sh), a fresh database per test on each,
// SQLite inspection, and child processes (the siphon binary) with captured output.
//
// Failures inside the harness are reported with gtest's ADD_FAILURE and the server's own
// message, so a test keeps running and shows every problem at once.

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <uv.h>

namespace siphon::test {

/// One result row; NULL is nullopt, every other value is its text form.
using Row = std::vector<std::optional<std::string>>;
using Rows = std::vector<Row>;

/// Where the test servers listen, read from the env file servers.sh writes.
struct ServerEnv {
  std::string pg_host;
  int pg_port = 0;
  std::string pg_user, pg_password;  // a SUPERUSER role with a scram password
  std::string mysql_host;
  int mysql_port = 0;
  std::string mysql_user, mysql_password;  // ALL PRIVILEGES WITH GRANT OPTION
  /// Every KEY=VALUE of the env file (PG_BIN, PG_DATA, MYSQL_SOCKET, SERVERS_DIR, ...).
  std::map<std::string, std::string> all;
};

/// The test servers. Reads SIPHON_TEST_SERVERS_ENV (environment variable, else the path
/// compiled in) once; aborts the test binary with a clear message when the file is
/// missing or incomplete, because no test against the servers can mean anything then.
const ServerEnv& Servers();

/// Runs `scripts/dev/servers.sh COMMAND DIR` on the fixture's servers, for fault tests:
/// "stop-pg", "start-pg", "restart-pg", "stop-mysql", "start-mysql", "restart-mysql".
/// Ports stay the same. Tests that use it should hold the ctest RESOURCE_LOCK `servers`,
/// because every other test on those servers sees the outage too.
void ServersCtl(const std::string& command);

/// A fresh PostgreSQL database on the test server, dropped (WITH (FORCE)) on destruction.
/// Names are unique per process, instance and run, so parallel tests never collide.
class PgDb {
 public:
  PgDb();
  ~PgDb();
  PgDb(const PgDb&) = delete;
  PgDb& operator=(const PgDb&) = delete;

  const std::string& name() const { return name_; }
  /// libpq conninfo "host=… port=… user=… password=… dbname=…" for this database.
  std::string Dsn() const;
  /// Runs one or more statements; ADD_FAILURE with the server's message on error.
  void Exec(const std::string& sql);
  /// Rows of the (last) statement, values in PostgreSQL's text format.
  Rows Query(const std::string& sql);
  /// First column of the first row ("" for NULL; ADD_FAILURE when there is no row).
  std::string Scalar(const std::string& sql);

 private:
  struct Conn;
  Conn* Connection();

  std::string name_;
  std::unique_ptr<Conn> conn_;
};

/// A fresh MariaDB database on the test server, dropped on destruction (its remaining
/// connections are killed first, like PostgreSQL's FORCE).
class MyDb {
 public:
  MyDb();
  ~MyDb();
  MyDb(const MyDb&) = delete;
  MyDb& operator=(const MyDb&) = delete;

  const std::string& name() const { return name_; }
  /// Runs one or more statements (multi-statement); ADD_FAILURE on error.
  void Exec(const std::string& sql);
  /// Rows of the last statement that returned a result set; values as text.
  Rows Query(const std::string& sql);
  /// First column of the first row ("" for NULL; ADD_FAILURE when there is no row).
  std::string Scalar(const std::string& sql);

 private:
  struct Conn;
  Conn* Connection();

  std::string name_;
  std::unique_ptr<Conn> conn_;
};

/// Polls `done` every `every` until it holds or `timeout` passes; returns its last value.
inline bool WaitUntil(const std::function<bool()>& done, std::chrono::milliseconds timeout,
                      std::chrono::milliseconds every = std::chrono::milliseconds(50)) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!done()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(every);
  }
  return true;
}

/// Runs `loop` for `ms` milliseconds the way siphon's runs between two runs (a timer keeps
/// it going, nothing spins), e.g. while a server's goodbye reaches an idle session.
void RunLoopFor(uv_loop_t* loop, int ms);

/// A fresh directory under $TMPDIR (or /tmp), removed with its contents on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  /// path() + "/" + name; creates nothing.
  std::string File(const std::string& name) const;

 private:
  std::string path_;
};

/// Writes (replaces) a file; ADD_FAILURE when it cannot.
void WriteFile(const std::string& path, const std::string& content);
/// The whole file; ADD_FAILURE and "" when it cannot be read.
std::string ReadFile(const std::string& path);

/// Runs the statement(s) on a SQLite file opened read-only (a new connection per call,
/// waiting up to 10 s for a writer's lock) and returns the rows of the last statement.
/// NULL is nullopt; INTEGER, REAL and TEXT come as SQLite's text form of the value
/// (REAL as SQLite prints it, e.g. "1.5"); a BLOB comes as its raw bytes, unencoded.
/// Use typeof(col) in the query when the storage class matters.
Rows SqliteQuery(const std::string& db_path, const std::string& sql);
/// Runs the statement(s) on a SQLite file opened read-write, creating it when missing (a new
/// connection per call, closed at once, waiting up to 10 s for another's lock); rows are
/// dropped. ADD_FAILURE with SQLite's message and the SQL when the open or a statement fails.
void SqliteExec(const std::string& db_path, const std::string& sql);

/// How a child process ended. exit_code is -1 unless it exited normally; term_signal is
/// the signal that killed it (0 if none); timed_out means the harness killed it.
struct ProcessResult {
  int exit_code = -1;
  int term_signal = 0;
  std::string out, err;
  bool timed_out = false;
  long peak_rss_kib = -1;  ///< the largest resident set it had (Run only; -1 when unknown)
};

/// Runs a program to completion with extra environment variables; captures stdout and
/// stderr (stdin is /dev/null). The program is searched in PATH like execvp. On timeout
/// its whole process group is killed with SIGKILL and timed_out is set.
ProcessResult Run(const std::vector<std::string>& argv,
                  const std::map<std::string, std::string>& env = {},
                  std::chrono::milliseconds timeout = std::chrono::minutes(5));

/// A program running in the background (e.g. `siphon run`), for kill -9 and signal tests.
/// Its stdout and stderr are drained continuously so it never blocks on a full pipe.
class Process {
 public:
  Process(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env = {});
  /// SIGKILL (to the process group) and reap if still running.
  ~Process();
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  int pid() const { return pid_; }
  /// Sends sig to the process (not its group); nothing once it has been reaped.
  void Signal(int sig);
  /// Waits for the exit; on timeout kills it (SIGKILL) and sets timed_out.
  ProcessResult Wait(std::chrono::milliseconds timeout = std::chrono::minutes(5));
  /// True while the process has not exited.
  bool Running();

  /// Output captured so far.
  std::string Stdout();
  std::string Stderr();
  /// Waits until `needle` appears in stdout or stderr; false on timeout or when the
  /// process exits first.
  bool WaitForOutput(const std::string& needle,
                     std::chrono::milliseconds timeout = std::chrono::seconds(30));

 private:
  struct Shared;
  bool Reap(bool block);

  pid_t pid_ = -1;
  bool reaped_ = false;
  int status_ = 0;
  bool timed_out_ = false;
  std::shared_ptr<Shared> shared_;
  std::thread drainer_;
};

/// The largest value `sample` gave, called every 2 ms while `p` runs (e.g. the sessions a
/// running siphon holds on a server).
int PeakWhileRunning(Process& p, const std::function<int()>& sample);

/// How a stopped process ended, and how long after the signal.
struct StoppedRun {
  ProcessResult result;
  std::chrono::milliseconds took{0};
};

/// Starts `siphon once …` (`argv`), waits until it logged "syncing" and then 1.5 s more (its
/// first statement is meant to block meanwhile), sends SIGTERM and waits up to 20 s for the
/// exit. result.timed_out is set when it had already ended before the signal.
StoppedRun StopWhileBlocked(const std::vector<std::string>& argv,
                            const std::map<std::string, std::string>& env);

/// A TCP port on 127.0.0.1 that was free a moment ago (bind to port 0), e.g. for --http.
int FreeTcpPort();

/// A loopback TCP port that accepts connections (the kernel completes the handshake) and
/// never answers: a hung server, for timeout tests. Closed when destroyed.
/// A TCP socket listening on 127.0.0.1 on a port the kernel picks (0: none could be opened,
/// with a test failure added); `*port` gets the port. The caller closes it.
int ListenOnLoopback(int backlog, int* port);

class SilentListener {
 public:
  SilentListener();
  ~SilentListener();
  SilentListener(const SilentListener&) = delete;
  SilentListener& operator=(const SilentListener&) = delete;
  int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
};

}  // namespace siphon::test

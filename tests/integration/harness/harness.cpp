#include "tests/integration/harness/harness.hpp"

#include <arpa/inet.h>
#include <errmsg.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <mysql.h>
#include <mysqld_error.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <random>
#include <sstream>
#include <thread>

extern char** environ;

namespace siphon::test {
namespace {

using Clock = std::chrono::steady_clock;

// --- server env ------------------------------------------------------------------------

std::string EnvFilePath() {
  if (const char* p = std::getenv("SIPHON_TEST_SERVERS_ENV"); p != nullptr && *p != '\0') {
    return p;
  }
#ifdef SIPHON_TEST_SERVERS_ENV
  return SIPHON_TEST_SERVERS_ENV;
#else
  return "";
#endif
}

[[noreturn]] void Fatal(const std::string& message) {
  std::fprintf(stderr, "siphon test harness: %s\n", message.c_str());
  std::fflush(stderr);
  std::abort();
}

ServerEnv LoadServerEnv() {
  const std::string path = EnvFilePath();
  std::ifstream in(path);
  if (path.empty() || !in) {
    Fatal("the test servers' env file '" + path +
          "' is missing: run the tests through ctest (fixture `servers`) or start them with "
          "scripts/dev/servers.sh start DIR and set SIPHON_TEST_SERVERS_ENV=DIR/env");
  }
  ServerEnv env;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    const auto eq = line.find('=');
    if (eq == std::string::npos) continue;
    env.all[line.substr(0, eq)] = line.substr(eq + 1);
  }
  auto get = [&](const std::string& key) {
    auto it = env.all.find(key);
    if (it == env.all.end() || it->second.empty()) {
      Fatal("the test servers' env file '" + path + "' has no value for " + key);
    }
    return it->second;
  };
  auto port = [&](const std::string& key) {
    const std::string v = get(key);
    char* end = nullptr;
    const long p = std::strtol(v.c_str(), &end, 10);
    if (*end != '\0' || p <= 0 || p > 65535) Fatal(key + "='" + v + "' is not a port");
    return static_cast<int>(p);
  };
  env.pg_host = get("PG_HOST");
  env.pg_port = port("PG_PORT");
  env.pg_user = get("PG_USER");
  env.pg_password = get("PG_PASSWORD");
  env.mysql_host = get("MYSQL_HOST");
  env.mysql_port = port("MYSQL_PORT");
  env.mysql_user = get("MYSQL_USER");
  env.mysql_password = get("MYSQL_PASSWORD");
  return env;
}

// Unique across processes (pid), instances (counter) and runs (random), and a valid
// unquoted identifier on both servers.
std::string UniqueDbName() {
  static std::atomic<unsigned> counter{0};
  static const unsigned salt = std::random_device{}();
  char buf[64];
  std::snprintf(buf, sizeof buf, "siphon_t_%d_%u_%06x", static_cast<int>(::getpid()),
                counter.fetch_add(1), salt & 0xffffffu);
  return buf;
}

std::string Abbrev(const std::string& sql) {
  constexpr size_t kMax = 300;
  return sql.size() <= kMax ? sql : sql.substr(0, kMax) + "…";
}

// --- PostgreSQL ------------------------------------------------------------------------

std::string PgConninfo(const std::string& dbname) {
  const ServerEnv& s = Servers();
  // Values contain no spaces or quotes (servers.sh controls them, names are ours).
  return "host=" + s.pg_host + " port=" + std::to_string(s.pg_port) + " user=" + s.pg_user +
         " password=" + s.pg_password + " dbname=" + dbname + " connect_timeout=10";
}

PGconn* PgConnect(const std::string& dbname) {
  PGconn* c = PQconnectdb(PgConninfo(dbname).c_str());
  if (PQstatus(c) != CONNECTION_OK) {
    ADD_FAILURE() << "PostgreSQL connect to " << dbname << " failed: " << PQerrorMessage(c);
    PQfinish(c);
    return nullptr;
  }
  PQsetNoticeProcessor(
      c, [](void*, const char*) {}, nullptr);
  return c;
}

// Runs sql; returns the result when it succeeded, reports and returns null otherwise.
// A connection broken by a server restart (fault tests) is re-established once.
PGresult* PgRun(PGconn* c, const std::string& sql) {
  PGresult* r = PQexec(c, sql.c_str());
  if (PQstatus(c) == CONNECTION_BAD) {
    PQclear(r);
    PQreset(c);
    r = PQexec(c, sql.c_str());
  }
  const auto st = PQresultStatus(r);
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
    ADD_FAILURE() << "PostgreSQL: " << (r ? PQresultErrorMessage(r) : PQerrorMessage(c))
                  << "  in: " << Abbrev(sql);
    PQclear(r);
    return nullptr;
  }
  return r;
}

// --- MariaDB ---------------------------------------------------------------------------

void MyLibraryInit() {
  static std::once_flag once;
  std::call_once(once, [] { mysql_library_init(0, nullptr, nullptr); });
}

MYSQL* MyConnect(const char* db) {
  MyLibraryInit();
  const ServerEnv& s = Servers();
  MYSQL* m = mysql_init(nullptr);
  unsigned timeout = 10;
  mysql_options(m, MYSQL_OPT_CONNECT_TIMEOUT, &timeout);
  mysql_options(m, MYSQL_SET_CHARSET_NAME, "utf8mb4");
  if (mysql_real_connect(m, s.mysql_host.c_str(), s.mysql_user.c_str(), s.mysql_password.c_str(),
                         db, s.mysql_port, nullptr, CLIENT_MULTI_STATEMENTS) == nullptr) {
    ADD_FAILURE() << "MariaDB connect to " << (db ? db : "(none)") << " failed: " << mysql_error(m);
    mysql_close(m);
    return nullptr;
  }
  return m;
}

// Runs sql (possibly several statements) and collects the rows of the last statement
// that returned a result set. Reports and returns false on any error.
bool MyRun(MYSQL* m, const std::string& sql, Rows* rows) {
  if (mysql_real_query(m, sql.data(), sql.size()) != 0) {
    ADD_FAILURE() << "MariaDB: " << mysql_error(m) << "  in: " << Abbrev(sql);
    return false;
  }
  for (;;) {
    if (MYSQL_RES* res = mysql_store_result(m); res != nullptr) {
      if (rows != nullptr) {
        rows->clear();
        const unsigned n = mysql_num_fields(res);
        while (MYSQL_ROW r = mysql_fetch_row(res)) {
          const unsigned long* len = mysql_fetch_lengths(res);
          Row row;
          row.reserve(n);
          for (unsigned i = 0; i < n; ++i) {
            if (r[i] == nullptr) {
              row.emplace_back(std::nullopt);
            } else {
              row.emplace_back(std::string(r[i], len[i]));
            }
          }
          rows->push_back(std::move(row));
        }
      }
      mysql_free_result(res);
    } else if (mysql_field_count(m) != 0) {
      ADD_FAILURE() << "MariaDB: " << mysql_error(m) << "  in: " << Abbrev(sql);
      return false;
    }
    const int next = mysql_next_result(m);
    if (next == -1) return true;
    if (next > 0) {
      ADD_FAILURE() << "MariaDB: " << mysql_error(m) << "  in: " << Abbrev(sql);
      // Drain what is left so the connection stays usable.
      while (mysql_more_results(m) && mysql_next_result(m) == 0) {
        if (MYSQL_RES* res = mysql_store_result(m)) mysql_free_result(res);
      }
      return false;
    }
  }
}

bool MyConnectionLost(MYSQL* m) {
  const unsigned e = mysql_errno(m);
  return e == CR_SERVER_GONE_ERROR || e == CR_SERVER_LOST || e == ER_CONNECTION_KILLED;
}

// --- processes -------------------------------------------------------------------------

// Everything the child needs is prepared before fork, so the child only calls
// async-signal-safe functions.
struct SpawnSpec {
  std::vector<std::string> argv_store, env_store;
  std::vector<char*> argv, envp;
};

SpawnSpec MakeSpawnSpec(const std::vector<std::string>& argv,
                        const std::map<std::string, std::string>& env) {
  SpawnSpec s;
  s.argv_store = argv;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string kv = *e;
    const auto eq = kv.find('=');
    if (eq != std::string::npos && env.count(kv.substr(0, eq)) != 0) continue;
    s.env_store.push_back(kv);
  }
  for (const auto& [k, v] : env) s.env_store.push_back(k + "=" + v);
  for (auto& a : s.argv_store) s.argv.push_back(a.data());
  s.argv.push_back(nullptr);
  for (auto& e : s.env_store) s.envp.push_back(e.data());
  s.envp.push_back(nullptr);
  return s;
}

struct Spawned {
  pid_t pid = -1;
  int out_fd = -1, err_fd = -1;
};

// Starts argv in its own process group (so a timeout can kill whatever it spawned too),
// stdin from /dev/null, stdout and stderr into pipes. Returns pid -1 on failure.
Spawned Spawn(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env) {
  Spawned sp;
  if (argv.empty()) {
    ADD_FAILURE() << "Run/Process: empty argv";
    return sp;
  }
  SpawnSpec spec = MakeSpawnSpec(argv, env);
  int out[2], err[2];
  if (pipe2(out, O_CLOEXEC) != 0) {
    ADD_FAILURE() << "pipe: " << std::strerror(errno);
    return sp;
  }
  if (pipe2(err, O_CLOEXEC) != 0) {
    ADD_FAILURE() << "pipe: " << std::strerror(errno);
    close(out[0]);
    close(out[1]);
    return sp;
  }
  const pid_t pid = fork();
  if (pid < 0) {
    ADD_FAILURE() << "fork: " << std::strerror(errno);
    for (int fd : {out[0], out[1], err[0], err[1]}) close(fd);
    return sp;
  }
  if (pid == 0) {
    setpgid(0, 0);
    const int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0) dup2(devnull, 0);
    dup2(out[1], 1);
    dup2(err[1], 2);
    // Nothing of the test process (database sockets, other children's pipes) leaks in.
    close_range(3, ~0U, 0);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    signal(SIGPIPE, SIG_DFL);
    execvpe(spec.argv[0], spec.argv.data(), spec.envp.data());
    const char* msg = "exec failed: ";
    (void)!write(2, msg, strlen(msg));
    (void)!write(2, spec.argv[0], strlen(spec.argv[0]));
    (void)!write(2, "\n", 1);
    _exit(127);
  }
  setpgid(pid, pid);  // also here, so the group exists before we might signal it
  close(out[1]);
  close(err[1]);
  sp.pid = pid;
  sp.out_fd = out[0];
  sp.err_fd = err[0];
  return sp;
}

// Reads what is available from the two pipes into out/err for up to wait_ms; closes and
// sets to -1 each fd at EOF.
void DrainOnce(int* out_fd, int* err_fd, std::string* out, std::string* err, int wait_ms) {
  pollfd fds[2];
  int n = 0;
  int* fd_of[2];
  std::string* buf_of[2];
  if (*out_fd >= 0) {
    fds[n] = {*out_fd, POLLIN, 0};
    fd_of[n] = out_fd;
    buf_of[n++] = out;
  }
  if (*err_fd >= 0) {
    fds[n] = {*err_fd, POLLIN, 0};
    fd_of[n] = err_fd;
    buf_of[n++] = err;
  }
  if (n == 0) return;
  if (poll(fds, n, wait_ms) <= 0) return;
  char buf[65536];
  for (int i = 0; i < n; ++i) {
    if ((fds[i].revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
    const ssize_t r = read(fds[i].fd, buf, sizeof buf);
    if (r > 0) {
      buf_of[i]->append(buf, static_cast<size_t>(r));
    } else if (r == 0 || (errno != EINTR && errno != EAGAIN)) {
      close(*fd_of[i]);
      *fd_of[i] = -1;
    }
  }
}

// After the child is gone, a grandchild may still hold the pipes; read on for a bounded
// time rather than forever.
constexpr auto kDrainGrace = std::chrono::seconds(2);

void FillResult(int status, ProcessResult* r) {
  if (WIFEXITED(status)) {
    r->exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    r->term_signal = WTERMSIG(status);
  }
}

}  // namespace

// --- public: servers ---------------------------------------------------------------------

const ServerEnv& Servers() {
  static const ServerEnv env = LoadServerEnv();
  return env;
}

void ServersCtl(const std::string& command) {
  const ServerEnv& s = Servers();
  auto it = s.all.find("SERVERS_DIR");
  if (it == s.all.end()) {
    ADD_FAILURE() << "the servers' env file has no SERVERS_DIR";
    return;
  }
  const std::string script = std::string(SIPHON_SOURCE_DIR) + "/scripts/dev/servers.sh";
  ProcessResult r = Run({script, command, it->second}, {}, std::chrono::minutes(3));
  if (r.exit_code != 0) {
    ADD_FAILURE() << "servers.sh " << command << " failed (exit " << r.exit_code << "): " << r.err;
  }
}

// --- public: PostgreSQL ------------------------------------------------------------------

struct PgDb::Conn {
  PGconn* pg = nullptr;
  ~Conn() {
    if (pg != nullptr) PQfinish(pg);
  }
};

PgDb::PgDb() : name_(UniqueDbName()) {
  PGconn* admin = PgConnect("postgres");
  if (admin == nullptr) return;
  if (PGresult* r = PgRun(admin, "CREATE DATABASE " + name_)) PQclear(r);
  PQfinish(admin);
}

PgDb::~PgDb() {
  conn_.reset();
  PGconn* admin = PgConnect("postgres");
  if (admin == nullptr) return;
  if (PGresult* r = PgRun(admin, "DROP DATABASE IF EXISTS " + name_ + " WITH (FORCE)")) {
    PQclear(r);
  }
  PQfinish(admin);
}

std::string PgDb::Dsn() const {
  const ServerEnv& s = Servers();
  return "host=" + s.pg_host + " port=" + std::to_string(s.pg_port) + " user=" + s.pg_user +
         " password=" + s.pg_password + " dbname=" + name_;
}

PgDb::Conn* PgDb::Connection() {
  if (!conn_) {
    PGconn* c = PgConnect(name_);
    if (c == nullptr) return nullptr;
    conn_ = std::make_unique<Conn>();
    conn_->pg = c;
  }
  return conn_.get();
}

void PgDb::Exec(const std::string& sql) {
  Conn* c = Connection();
  if (c == nullptr) return;
  if (PGresult* r = PgRun(c->pg, sql)) PQclear(r);
}

Rows PgDb::Query(const std::string& sql) {
  Rows rows;
  Conn* c = Connection();
  if (c == nullptr) return rows;
  PGresult* r = PgRun(c->pg, sql);
  if (r == nullptr) return rows;
  const int nrows = PQntuples(r);
  const int ncols = PQnfields(r);
  rows.reserve(static_cast<size_t>(nrows));
  for (int i = 0; i < nrows; ++i) {
    Row row;
    row.reserve(static_cast<size_t>(ncols));
    for (int j = 0; j < ncols; ++j) {
      if (PQgetisnull(r, i, j)) {
        row.emplace_back(std::nullopt);
      } else {
        row.emplace_back(std::string(PQgetvalue(r, i, j), PQgetlength(r, i, j)));
      }
    }
    rows.push_back(std::move(row));
  }
  PQclear(r);
  return rows;
}

std::string PgDb::Scalar(const std::string& sql) {
  Rows rows = Query(sql);
  if (rows.empty() || rows[0].empty()) {
    ADD_FAILURE() << "PostgreSQL: no row from: " << Abbrev(sql);
    return "";
  }
  return rows[0][0].value_or("");
}

// --- public: MariaDB ---------------------------------------------------------------------

struct MyDb::Conn {
  MYSQL* my = nullptr;
  ~Conn() {
    if (my != nullptr) mysql_close(my);
  }
};

MyDb::MyDb() : name_(UniqueDbName()) {
  MYSQL* admin = MyConnect(nullptr);
  if (admin == nullptr) return;
  MyRun(admin, "CREATE DATABASE `" + name_ + "` CHARACTER SET utf8mb4", nullptr);
  mysql_close(admin);
}

MyDb::~MyDb() {
  conn_.reset();
  MYSQL* admin = MyConnect(nullptr);
  if (admin == nullptr) return;
  // MariaDB has no DROP DATABASE ... FORCE: end the sessions still using it (a killed
  // siphon's connections may linger), or their metadata locks would block the drop.
  Rows ids;
  MyRun(admin,
        "SELECT id FROM information_schema.processlist WHERE db = '" + name_ +
            "' AND id <> CONNECTION_ID()",
        &ids);
  for (const Row& r : ids) {
    if (!r.empty() && r[0]) {
      // The session may end on its own meanwhile; that is not an error here.
      const std::string kill = "KILL " + *r[0];
      mysql_real_query(admin, kill.data(), kill.size());
    }
  }
  MyRun(admin, "SET SESSION lock_wait_timeout = 30", nullptr);
  MyRun(admin, "DROP DATABASE IF EXISTS `" + name_ + "`", nullptr);
  mysql_close(admin);
}

MyDb::Conn* MyDb::Connection() {
  if (!conn_) {
    MYSQL* m = MyConnect(name_.c_str());
    if (m == nullptr) return nullptr;
    conn_ = std::make_unique<Conn>();
    conn_->my = m;
  }
  return conn_.get();
}

void MyDb::Exec(const std::string& sql) {
  if (Connection() == nullptr) return;
  // A ping first re-establishes a connection lost to a server restart (fault tests);
  // retrying a statement after the fact could run it twice.
  if (mysql_ping(conn_->my) != 0 && MyConnectionLost(conn_->my)) {
    conn_.reset();
    if (Connection() == nullptr) return;
  }
  MyRun(conn_->my, sql, nullptr);
}

Rows MyDb::Query(const std::string& sql) {
  Rows rows;
  if (Connection() == nullptr) return rows;
  if (mysql_ping(conn_->my) != 0 && MyConnectionLost(conn_->my)) {
    conn_.reset();
    if (Connection() == nullptr) return rows;
  }
  MyRun(conn_->my, sql, &rows);
  return rows;
}

std::string MyDb::Scalar(const std::string& sql) {
  Rows rows = Query(sql);
  if (rows.empty() || rows[0].empty()) {
    ADD_FAILURE() << "MariaDB: no row from: " << Abbrev(sql);
    return "";
  }
  return rows[0][0].value_or("");
}

// --- public: files -----------------------------------------------------------------------

TempDir::TempDir() {
  const char* tmp = std::getenv("TMPDIR");
  std::string tmpl =
      std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/siphon-test-XXXXXX";
  if (mkdtemp(tmpl.data()) == nullptr) {
    ADD_FAILURE() << "mkdtemp " << tmpl << ": " << std::strerror(errno);
  }
  path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::string TempDir::File(const std::string& name) const {
  return path_ + "/" + name;
}

void WriteFile(const std::string& path, const std::string& content) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(content.data(), static_cast<std::streamsize>(content.size()));
  f.close();
  if (!f) ADD_FAILURE() << "cannot write " << path;
}

std::string ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) {
    ADD_FAILURE() << "cannot read " << path;
    return "";
  }
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

Rows SqliteQuery(const std::string& db_path, const std::string& sql) {
  Rows rows;
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
    ADD_FAILURE() << "SQLite open " << db_path << ": " << (db ? sqlite3_errmsg(db) : "no memory");
    sqlite3_close(db);
    return rows;
  }
  sqlite3_busy_timeout(db, 10000);
  const char* tail = sql.c_str();
  while (tail != nullptr && *tail != '\0') {
    sqlite3_stmt* stmt = nullptr;
    if (sqlite3_prepare_v2(db, tail, -1, &stmt, &tail) != SQLITE_OK) {
      ADD_FAILURE() << "SQLite: " << sqlite3_errmsg(db) << "  in: " << Abbrev(sql);
      break;
    }
    if (stmt == nullptr) continue;  // whitespace or a comment
    Rows current;
    int rc;
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
      const int n = sqlite3_column_count(stmt);
      Row row;
      row.reserve(static_cast<size_t>(n));
      for (int i = 0; i < n; ++i) {
        switch (sqlite3_column_type(stmt, i)) {
          case SQLITE_NULL:
            row.emplace_back(std::nullopt);
            break;
          case SQLITE_BLOB: {
            const void* p = sqlite3_column_blob(stmt, i);
            const int len = sqlite3_column_bytes(stmt, i);
            row.emplace_back(std::string(static_cast<const char*>(p), static_cast<size_t>(len)));
            break;
          }
          default: {
            const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt, i));
            const int len = sqlite3_column_bytes(stmt, i);
            row.emplace_back(std::string(p, static_cast<size_t>(len)));
          }
        }
      }
      current.push_back(std::move(row));
    }
    if (rc != SQLITE_DONE) {
      ADD_FAILURE() << "SQLite: " << sqlite3_errmsg(db) << "  in: " << Abbrev(sql);
      sqlite3_finalize(stmt);
      break;
    }
    if (sqlite3_column_count(stmt) > 0) rows = std::move(current);
    sqlite3_finalize(stmt);
  }
  sqlite3_close(db);
  return rows;
}

void SqliteExec(const std::string& db_path, const std::string& sql) {
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr) !=
      SQLITE_OK) {
    ADD_FAILURE() << "SQLite open " << db_path << ": " << (db ? sqlite3_errmsg(db) : "no memory");
    sqlite3_close(db);
    return;
  }
  sqlite3_busy_timeout(db, 10000);
  if (sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr) != SQLITE_OK) {
    ADD_FAILURE() << "SQLite: " << sqlite3_errmsg(db) << "  in: " << Abbrev(sql);
  }
  sqlite3_close(db);
}

// --- public: processes -------------------------------------------------------------------

StoppedRun StopWhileBlocked(const std::vector<std::string>& argv,
                            const std::map<std::string, std::string>& env) {
  StoppedRun out;
  Process p(argv, env);
  if (!p.WaitForOutput("syncing") ||
      (std::this_thread::sleep_for(std::chrono::milliseconds(1500)), !p.Running())) {
    out.result = p.Wait(std::chrono::seconds(1));
    out.result.timed_out = true;
    return out;
  }
  auto signalled = std::chrono::steady_clock::now();
  p.Signal(SIGTERM);
  out.result = p.Wait(std::chrono::seconds(20));
  out.took = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - signalled);
  return out;
}

ProcessResult Run(const std::vector<std::string>& argv,
                  const std::map<std::string, std::string>& env,
                  std::chrono::milliseconds timeout) {
  ProcessResult result;
  Spawned sp = Spawn(argv, env);
  if (sp.pid < 0) return result;
  const auto deadline = Clock::now() + timeout;
  std::optional<Clock::time_point> exited_at;
  int status = 0;
  bool reaped = false;
  struct rusage usage {};
  while (sp.out_fd >= 0 || sp.err_fd >= 0 || !reaped) {
    DrainOnce(&sp.out_fd, &sp.err_fd, &result.out, &result.err, 50);
    if (!reaped && wait4(sp.pid, &status, WNOHANG, &usage) == sp.pid) {
      reaped = true;
      exited_at = Clock::now();
      result.peak_rss_kib = usage.ru_maxrss;
    }
    if (!reaped && Clock::now() >= deadline) {
      result.timed_out = true;
      kill(-sp.pid, SIGKILL);
      kill(sp.pid, SIGKILL);
      waitpid(sp.pid, &status, 0);
      reaped = true;
      exited_at = Clock::now();
    }
    if (reaped && Clock::now() - *exited_at > kDrainGrace) break;
  }
  for (int fd : {sp.out_fd, sp.err_fd}) {
    if (fd >= 0) close(fd);
  }
  FillResult(status, &result);
  return result;
}

struct Process::Shared {
  std::mutex mu;
  std::condition_variable cv;
  std::string out, err;
  bool eof = false;
  std::atomic<bool> stop{false};
};

Process::Process(const std::vector<std::string>& argv,
                 const std::map<std::string, std::string>& env)
    : shared_(std::make_shared<Shared>()) {
  Spawned sp = Spawn(argv, env);
  pid_ = sp.pid;
  if (pid_ < 0) {
    reaped_ = true;
    shared_->eof = true;
    return;
  }
  drainer_ = std::thread([shared = shared_, out_fd = sp.out_fd, err_fd = sp.err_fd]() mutable {
    std::string out, err;
    while ((out_fd >= 0 || err_fd >= 0) && !shared->stop.load()) {
      DrainOnce(&out_fd, &err_fd, &out, &err, 50);
      if (!out.empty() || !err.empty()) {
        std::lock_guard<std::mutex> lock(shared->mu);
        shared->out += out;
        shared->err += err;
        out.clear();
        err.clear();
        shared->cv.notify_all();
      }
    }
    for (int fd : {out_fd, err_fd}) {
      if (fd >= 0) close(fd);
    }
    std::lock_guard<std::mutex> lock(shared->mu);
    shared->eof = true;
    shared->cv.notify_all();
  });
}

Process::~Process() {
  if (!reaped_) {
    kill(-pid_, SIGKILL);
    kill(pid_, SIGKILL);
    Reap(true);
  }
  if (drainer_.joinable()) {
    std::unique_lock<std::mutex> lock(shared_->mu);
    shared_->cv.wait_for(lock, kDrainGrace, [&] { return shared_->eof; });
    lock.unlock();
    shared_->stop = true;
    drainer_.join();
  }
}

bool Process::Reap(bool block) {
  if (reaped_) return true;
  int status = 0;
  const pid_t r = waitpid(pid_, &status, block ? 0 : WNOHANG);
  if (r == pid_) {
    reaped_ = true;
    status_ = status;
    std::lock_guard<std::mutex> lock(shared_->mu);
    shared_->cv.notify_all();
  }
  return reaped_;
}

void Process::Signal(int sig) {
  if (!reaped_ && !Reap(false)) kill(pid_, sig);
}

bool Process::Running() {
  return !Reap(false);
}

ProcessResult Process::Wait(std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (!Reap(false)) {
    if (Clock::now() >= deadline) {
      timed_out_ = true;
      kill(-pid_, SIGKILL);
      kill(pid_, SIGKILL);
      Reap(true);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (drainer_.joinable()) {
    std::unique_lock<std::mutex> lock(shared_->mu);
    shared_->cv.wait_for(lock, kDrainGrace, [&] { return shared_->eof; });
    lock.unlock();
    shared_->stop = true;
    drainer_.join();
  }
  ProcessResult result;
  result.timed_out = timed_out_;
  FillResult(status_, &result);
  std::lock_guard<std::mutex> lock(shared_->mu);
  result.out = shared_->out;
  result.err = shared_->err;
  return result;
}

std::string Process::Stdout() {
  std::lock_guard<std::mutex> lock(shared_->mu);
  return shared_->out;
}

std::string Process::Stderr() {
  std::lock_guard<std::mutex> lock(shared_->mu);
  return shared_->err;
}

bool Process::WaitForOutput(const std::string& needle, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  std::unique_lock<std::mutex> lock(shared_->mu);
  for (;;) {
    if (shared_->out.find(needle) != std::string::npos ||
        shared_->err.find(needle) != std::string::npos) {
      return true;
    }
    if (shared_->eof || Clock::now() >= deadline) return false;
    // Short waits: the exit of the process is noticed by polling, not by a notification.
    shared_->cv.wait_for(lock, std::chrono::milliseconds(50));
  }
}

int ListenOnLoopback(int backlog, int* port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      listen(fd, backlog) != 0 || getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ADD_FAILURE() << "a listening socket on 127.0.0.1: " << std::strerror(errno);
    if (fd >= 0) close(fd);
    return -1;
  }
  *port = ntohs(addr.sin_port);
  return fd;
}

SilentListener::SilentListener() {
  fd_ = ListenOnLoopback(16, &port_);
}

SilentListener::~SilentListener() {
  if (fd_ >= 0) close(fd_);
}

int FreeTcpPort() {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    ADD_FAILURE() << "socket: " << std::strerror(errno);
    return 0;
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  int port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  } else {
    ADD_FAILURE() << "bind 127.0.0.1:0: " << std::strerror(errno);
  }
  close(fd);
  return port;
}

int PeakWhileRunning(Process& p, const std::function<int()>& sample) {
  int most = 0;
  while (p.Running()) {
    most = std::max(most, sample());
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return most;
}

void RunLoopFor(uv_loop_t* loop, int ms) {
  uv_timer_t wait;
  uv_timer_init(loop, &wait);
  uv_timer_start(
      &wait, [](uv_timer_t*) {}, static_cast<uint64_t>(ms), 0);
  uv_run(loop, UV_RUN_DEFAULT);
  uv_close(reinterpret_cast<uv_handle_t*>(&wait), nullptr);
  uv_run(loop, UV_RUN_NOWAIT);  // the timer's close, before `wait` goes
}

}  // namespace siphon::test

// Fault (i): a name server that never answers. getaddrinfo blocks for as long as the server
// takes, so siphon looks host names up on libuv's thread pool, never on the event loop: while
// one source's name hangs, the tables of the other sources (reached by names from /etc/hosts,
// PostgreSQL and MariaDB) sync at once, and the hanging one fails with "could not resolve
// host name" and is retried. siphon runs in a mount namespace of its own (unshare, as root)
// whose /etc/resolv.conf points at a UDP socket of this test that reads nothing.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <thread>

#include "tests/integration/faults/fault_util.hpp"

namespace siphon::test {
namespace {

bool IsIp(const std::string& host) {
  unsigned char buf[sizeof(in6_addr)];
  return inet_pton(AF_INET, host.c_str(), buf) == 1 || inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

// Seconds since midnight of a log line's "2026-12-06 08:58:19.048" prefix; -1 when the line
// does not start with one.
double LineTime(const std::string& line) {
  int h = 0, m = 0;
  double s = 0;
  if (line.size() < 23 || std::sscanf(line.c_str() + 11, "%d:%d:%lf", &h, &m, &s) != 3) return -1;
  return h * 3600 + m * 60 + s;
}

// The time of the first line holding every one of `parts`; -1 when none does.
double FirstLineWith(const std::string& log, const std::vector<std::string>& parts) {
  std::istringstream in(log);
  for (std::string line; std::getline(in, line);) {
    bool all = true;
    for (const auto& p : parts) all = all && line.find(p) != std::string::npos;
    if (all) return LineTime(line);
  }
  return -1;
}

class DnsFaults : public FaultTest {
 protected:
  void TearDown() override {
    if (dns_ >= 0) close(dns_);
  }

  // The name server: 127.0.0.77:53, which receives queries and never answers; /etc/hosts
  // and /etc/resolv.conf for siphon's mount namespace (InNamespace), each lookup of a name
  // not in `hosts` waiting `timeout_seconds` for it.
  void HangNameServer(const std::string& hosts, int timeout_seconds) {
    ASSERT_EQ(geteuid(), 0u) << "this test needs root: a mount namespace and port 53";
    dns_ = socket(AF_INET, SOCK_DGRAM, 0);
    ASSERT_GE(dns_, 0);
    sockaddr_in at{};
    at.sin_family = AF_INET;
    at.sin_port = htons(53);
    inet_pton(AF_INET, "127.0.0.77", &at.sin_addr);
    ASSERT_EQ(bind(dns_, reinterpret_cast<sockaddr*>(&at), sizeof at), 0) << std::strerror(errno);
    WriteFile(dir_.File("hosts"), "127.0.0.1 localhost\n" + hosts);
    WriteFile(dir_.File("resolv.conf"), "nameserver 127.0.0.77\noptions timeout:" +
                                            std::to_string(timeout_seconds) + " attempts:1\n");
  }

  // `argv` run with the files HangNameServer wrote as /etc/hosts and /etc/resolv.conf.
  std::vector<std::string> InNamespace(const std::vector<std::string>& argv) {
    std::vector<std::string> out = {
        "unshare",
        "--mount",
        "sh",
        "-c",
        "mount --bind \"$1\" /etc/hosts && mount --bind \"$2\" /etc/resolv.conf && shift 2 && "
        "exec \"$@\"",
        "sh",
        dir_.File("hosts"),
        dir_.File("resolv.conf")};
    out.insert(out.end(), argv.begin(), argv.end());
    return out;
  }

  std::string PgSource(const std::string& host) {
    const ServerEnv& s = Servers();
    return "siphon.postgres { host = '" + host + "', port = " + std::to_string(s.pg_port) +
           ", user = '" + s.pg_user + "', password = siphon.env('PG_PW'), database = '" +
           db_.name() + "' }";
  }

  int dns_ = -1;
  MyDb my_;
};

TEST_F(DnsFaults, AHangingNameServerHoldsBackOnlyTheSourceItNames) {
  const ServerEnv& s = Servers();
  ASSERT_TRUE(IsIp(s.pg_host) && IsIp(s.mysql_host)) << s.pg_host << " " << s.mysql_host;
  HangNameServer(s.pg_host + " pg.siphon.test\n" + s.mysql_host + " my.siphon.test\n", 2);
  if (HasFatalFailure()) return;

  db_.Exec("CREATE TABLE items (id int8 PRIMARY KEY); INSERT INTO items VALUES (1), (2), (3)");
  SqliteExec(dir_.File("app.db"),
             "CREATE TABLE items (id INTEGER PRIMARY KEY); INSERT INTO items VALUES (1)");
  my_.Exec("CREATE TABLE items (id BIGINT PRIMARY KEY); INSERT INTO items VALUES (1), (2)");
  std::string script = dir_.File("deploy.lua");
  WriteFile(script, "local named = " + PgSource("pg.siphon.test") + "\n" +
                        "local lost = " + PgSource("db.siphon-dns-test.invalid") + "\n" +
                        "local my = siphon.mysql { host = 'my.siphon.test', port = " +
                        std::to_string(s.mysql_port) + ", user = '" + s.mysql_user +
                        "', password = siphon.env('MY_PW'), database = '" + my_.name() +
                        "' }\n"
                        "siphon.target { path = '" +
                        Replica() +
                        "' }\n"
                        "local app = siphon.sqlite { path = 'app.db' }\n"
                        "for i = 1, 6 do siphon.replicate('lost' .. i) { source = lost, from = "
                        "'items' } end\n"
                        "siphon.replicate 'pg_items' { source = named, from = 'items' }\n"
                        "siphon.replicate 'my_items' { source = my, from = 'items' }\n"
                        "siphon.replicate 'app_items' { source = app, from = 'items' }\n");
  ProcessResult r = siphon::test::Run(
      InNamespace({SIPHON_BIN, "once", script}),
      // libuv's default pool of 4 runs 2 lookups at once (half the pool for slow work): only
      // lookups shared per name leave one for the other names.
      {{"PG_PW", s.pg_password}, {"MY_PW", s.mysql_password}, {"UV_THREADPOOL_SIZE", "4"}},
      std::chrono::minutes(2));

  EXPECT_EQ(r.exit_code, 1) << Dump(r);  // the `lost` tables failed, the others synced
  EXPECT_EQ(TargetCount(Replica(), "pg_items"), 3) << Dump(r);
  EXPECT_EQ(TargetCount(Replica(), "my_items"), 2) << Dump(r);
  EXPECT_EQ(TargetCount(Replica(), "app_items"), 1) << Dump(r);
  const double start = FirstLineWith(r.err, {"syncing 9 table(s)"});
  const double pg_synced = FirstLineWith(r.err, {"[table:pg_items]", "synced"});
  const double my_synced = FirstLineWith(r.err, {"[table:my_items]", "synced"});
  // A SQLite source reads on libuv's thread pool too: six connections waiting for one name
  // hold one thread of it, not the pool.
  const double app_synced = FirstLineWith(r.err, {"[table:app_items]", "synced"});
  const double lost = FirstLineWith(r.err, {"[table:lost6]", "db.siphon-dns-test.invalid"});
  EXPECT_NE(r.err.find("could not resolve host name \"db.siphon-dns-test.invalid\""),
            std::string::npos)
      << Dump(r);
  ASSERT_GE(start, 0) << Dump(r);
  ASSERT_GE(lost, 0) << Dump(r);
  // The name server really hung (2 s a lookup)...
  EXPECT_GE(lost - start, 1.5) << Dump(r);
  // ...and held back nothing else: the loop went on while it did.
  EXPECT_GE(pg_synced, 0) << Dump(r);
  EXPECT_GE(my_synced, 0) << Dump(r);
  EXPECT_LT(pg_synced - start, 1.0) << Dump(r);
  EXPECT_LT(my_synced - start, 1.0) << Dump(r);
  EXPECT_GE(app_synced, 0) << Dump(r);
  EXPECT_LT(app_synced - start, 1.0) << Dump(r);
  Summary("dns_down", 1, 1, 6, 0,
          "synced_after_ms=" +
              std::to_string(
                  static_cast<int>(1000 * (std::max({pg_synced, my_synced, app_synced}) - start))) +
              " lookup_failed_after_ms=" + std::to_string(static_cast<int>(1000 * (lost - start))));
}

// A stop while a name server hangs: the lookup holds a thread of libuv's pool until the
// resolver gives up (20 s here), and siphon waited for it before exiting (the loop ran until
// the lookup ended, and libuv joins its pool at exit). The replica is closed by then and
// nothing waits for the answer: siphon exits at once and leaves the lookup's thread behind.
TEST_F(DnsFaults, AStopDuringAHangingLookupExitsAtOnce) {
  const ServerEnv& s = Servers();
  ASSERT_TRUE(IsIp(s.pg_host)) << s.pg_host;
  HangNameServer(s.pg_host + " pg.siphon.test\n", 20);
  if (HasFatalFailure()) return;
  db_.Exec("CREATE TABLE items (id int8 PRIMARY KEY); INSERT INTO items VALUES (1), (2), (3)");
  std::string script = dir_.File("deploy.lua");
  WriteFile(script, "local named = " + PgSource("pg.siphon.test") + "\n" +
                        "local lost = " + PgSource("db.siphon-dns-test.invalid") + "\n" +
                        "siphon.target { path = '" + Replica() + "' }\n" +
                        "siphon.replicate 'lost' { source = lost, from = 'items' }\n"
                        "siphon.replicate 'items' { source = named, from = 'items' }\n");
  Process p(InNamespace({SIPHON_BIN, "run", script}), {{"PG_PW", s.pg_password}});
  ASSERT_TRUE(p.WaitForOutput("synced 3 rows")) << p.Stderr();
  std::this_thread::sleep_for(std::chrono::seconds(1));  // the lookup of `lost` hangs
  ASSERT_TRUE(p.Running()) << p.Stderr();
  const auto signalled = std::chrono::steady_clock::now();
  p.Signal(SIGTERM);
  ProcessResult r = p.Wait(std::chrono::seconds(30));
  const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - signalled);
  EXPECT_FALSE(r.timed_out) << Dump(r);
  EXPECT_EQ(r.exit_code, 0) << Dump(r);
  EXPECT_LT(took, std::chrono::seconds(3)) << Dump(r);
  EXPECT_EQ(r.err.find("could not resolve"), std::string::npos) << Dump(r);  // still hanging
  EXPECT_EQ(TargetCount(Replica(), "items"), 3) << Dump(r);
  Summary("dns_stop", 1, 1, 3, 0, "exit_after_signal_ms=" + std::to_string(took.count()));
}

}  // namespace
}  // namespace siphon::test

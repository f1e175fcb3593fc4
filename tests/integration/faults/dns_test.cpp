// Fault (i): a name server that never answers. getaddrinfo blocks for as long as the server
// takes, so siphon looks host names up on libuv's thread pool, never on the event loop: while
// one source's name hangs, the tables of the other sources (reached by names from /etc/hosts,
// PostgreSQL and MariaDB) sync at once, and the hanging one fails with "could not resolve
// host name" and is retried. siphon runs in a mount namespace of its own (unshare, as root)
// whose /etc/resolv.conf points at a UDP socket of this test that reads nothing.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <sqlite3.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

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
  MyDb my_;
};

TEST_F(DnsFaults, AHangingNameServerHoldsBackOnlyTheSourceItNames) {
  ASSERT_EQ(geteuid(), 0u) << "this test needs root: a mount namespace and port 53";
  const ServerEnv& s = Servers();
  ASSERT_TRUE(IsIp(s.pg_host) && IsIp(s.mysql_host)) << s.pg_host << " " << s.mysql_host;
  // The name server: 127.0.0.77:53, which receives queries and never answers.
  int dns = socket(AF_INET, SOCK_DGRAM, 0);
  ASSERT_GE(dns, 0);
  sockaddr_in at{};
  at.sin_family = AF_INET;
  at.sin_port = htons(53);
  inet_pton(AF_INET, "127.0.0.77", &at.sin_addr);
  ASSERT_EQ(bind(dns, reinterpret_cast<sockaddr*>(&at), sizeof at), 0) << std::strerror(errno);
  WriteFile(dir_.File("hosts"), "127.0.0.1 localhost\n" + s.pg_host + " pg.siphon.test\n" +
                                    s.mysql_host + " my.siphon.test\n");
  WriteFile(dir_.File("resolv.conf"), "nameserver 127.0.0.77\noptions timeout:2 attempts:1\n");

  db_.Exec("CREATE TABLE items (id int8 PRIMARY KEY); INSERT INTO items VALUES (1), (2), (3)");
  sqlite3* app = nullptr;
  ASSERT_EQ(sqlite3_open(dir_.File("app.db").c_str(), &app), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(app,
                         "CREATE TABLE items (id INTEGER PRIMARY KEY); INSERT INTO items "
                         "VALUES (1)",
                         nullptr, nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(app);
  my_.Exec("CREATE TABLE items (id BIGINT PRIMARY KEY); INSERT INTO items VALUES (1), (2)");
  auto pg_source = [&](const std::string& host) {
    return "siphon.postgres { host = '" + host + "', port = " + std::to_string(s.pg_port) +
           ", user = '" + s.pg_user + "', password = siphon.env('PG_PW'), database = '" +
           db_.name() + "' }";
  };
  std::string script = dir_.File("deploy.lua");
  WriteFile(script, "local named = " + pg_source("pg.siphon.test") + "\n" +
                        "local lost = " + pg_source("db.siphon-dns-test.invalid") + "\n" +
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
  const std::string in_namespace =
      "mount --bind \"$1\" /etc/hosts && mount --bind \"$2\" /etc/resolv.conf && shift 2 && "
      "exec \"$@\"";
  ProcessResult r = siphon::test::Run(
      {"unshare", "--mount", "sh", "-c", in_namespace, "sh", dir_.File("hosts"),
       dir_.File("resolv.conf"), SIPHON_BIN, "once", script},
      // libuv's default pool of 4 runs 2 lookups at once (half the pool for slow work): only
      // lookups shared per name leave one for the other names.
      {{"PG_PW", s.pg_password}, {"MY_PW", s.mysql_password}, {"UV_THREADPOOL_SIZE", "4"}},
      std::chrono::minutes(2));
  close(dns);

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

}  // namespace
}  // namespace siphon::test

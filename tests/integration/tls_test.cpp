// Verified TLS against real servers: siphon.mysql{ tls_ca } and siphon.postgres{ sslrootcert }.
// The shared test servers have no TLS, so this suite starts its own pair (scripts/dev/servers.sh
// with SIPHON_SERVERS_TLS) beside them, with certificates made by openssl here: a CA, a server
// certificate it signed for localhost and 127.0.0.1, an unrelated CA, and a second pair of
// servers whose certificate (signed by the same CA) names only another host; the first pair
// also trusts client certificates from the CA (user/role siphon_cert). Under ctest the
// servers outlive each test's process and the `tls_servers_stop` cleanup stops them; a run of
// the binary alone stops the ones it started.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netdb.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string_view>

#include "tests/integration/harness/harness.hpp"

namespace siphon::test {
namespace {

std::string Dump(const ProcessResult& r) {
  return "exit " + std::to_string(r.exit_code) + "\nstdout:\n" + r.out + "\nstderr:\n" + r.err;
}

std::string Script() {
  return std::string(SIPHON_SOURCE_DIR) + "/scripts/dev/servers.sh";
}

void MustRun(const std::vector<std::string>& argv,
             const std::map<std::string, std::string>& env = {}) {
  ProcessResult r = siphon::test::Run(argv, env);
  ASSERT_EQ(r.exit_code, 0) << argv[0] << " " << (argv.size() > 1 ? argv[1] : "") << ": "
                            << Dump(r);
}

std::map<std::string, std::string> ReadEnv(const std::string& path) {
  std::map<std::string, std::string> out;
  std::string text = ReadFile(path);
  size_t at = 0;
  while (at < text.size()) {
    size_t end = text.find('\n', at);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(at, end - at);
    size_t eq = line.find('=');
    if (eq != std::string::npos) out[line.substr(0, eq)] = line.substr(eq + 1);
    at = end + 1;
  }
  return out;
}

/// This machine's name when every address it resolves to is the loopback's (127.0.0.1 or
/// ::1, as /etc/hosts often has it), else "".
std::string LoopbackName() {
  char name[256] = {};
  if (gethostname(name, sizeof name - 1) != 0 || name[0] == '\0') return "";
  if (std::string_view(name) == "localhost") return "";  // the Unix socket to Connector/C
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (getaddrinfo(name, nullptr, &hints, &found) != 0) return "";
  bool loopback = found != nullptr;
  for (addrinfo* a = found; a != nullptr; a = a->ai_next) {
    char text[INET6_ADDRSTRLEN] = {};
    const void* at =
        a->ai_family == AF_INET
            ? static_cast<const void*>(&reinterpret_cast<sockaddr_in*>(a->ai_addr)->sin_addr)
            : static_cast<const void*>(&reinterpret_cast<sockaddr_in6*>(a->ai_addr)->sin6_addr);
    inet_ntop(a->ai_family, at, text, sizeof text);
    if (std::string_view(text) != "127.0.0.1" && std::string_view(text) != "::1") loopback = false;
  }
  freeaddrinfo(found);
  return loopback ? name : "";
}

/// One pair of TLS servers: where they listen.
struct TlsServers {
  std::string dir;
  std::map<std::string, std::string> env;
  bool started_here = false;
};

class Tls : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    // The same folder whichever servers the other tests use: tls_servers_stop finds it.
    root_ = SIPHON_TEST_TLS_SERVERS_DIR;
    certs_ = root_ + "/certs";
    // ctest runs each test in a process of its own, two at a time: one process makes the
    // certificates and starts the servers while another waits, then finds them.
    std::filesystem::create_directories(root_);
    struct Lock {
      int fd;
      ~Lock() {
        if (fd >= 0) close(fd);  // releases the lock
      }
    } lock{open((root_ + "/setup.lock").c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0644)};
    ASSERT_GE(lock.fd, 0) << root_ << "/setup.lock: " << std::strerror(errno);
    ASSERT_EQ(flock(lock.fd, LOCK_EX), 0) << std::strerror(errno);
    MakeCertificates();
    if (::testing::Test::HasFatalFailure()) return;
    Start(good_, "good", certs_ + "/good");
    Start(other_, "other", certs_ + "/other");
  }
  static void TearDownTestSuite() {
    if (std::getenv("SIPHON_TEST_KEEP_SERVERS") != nullptr) return;
    for (TlsServers* s : {&good_, &other_}) {
      if (s->started_here) siphon::test::Run({Script(), "stop", s->dir});
    }
  }

  static void MakeCertificates() {
    namespace fs = std::filesystem;
    if (fs::exists(certs_ + "/client.crt")) return;  // made last
    fs::create_directories(certs_ + "/good");
    fs::create_directories(certs_ + "/other");
    auto ca = [](const std::string& name, const std::string& cn) {
      MustRun({"openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3650", "-subj",
               "/CN=" + cn, "-keyout", certs_ + "/" + name + ".key", "-out",
               certs_ + "/" + name + ".pem"});
    };
    ca("ca", "siphon test CA");
    ca("other-ca", "unrelated CA");
    auto server = [](const std::string& dir, const std::string& cn, const std::string& names) {
      std::string d = certs_ + "/" + dir;
      WriteFile(d + "/ext.cnf", "subjectAltName=" + names + "\n");
      MustRun({"openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=" + cn, "-keyout",
               d + "/server.key", "-out", d + "/server.csr"});
      MustRun({"openssl", "x509", "-req", "-in", d + "/server.csr", "-CA", certs_ + "/ca.pem",
               "-CAkey", certs_ + "/ca.key", "-CAcreateserial", "-days", "3650", "-extfile",
               d + "/ext.cnf", "-out", d + "/server.crt"});
    };
    server("good", "localhost", "DNS:localhost,IP:127.0.0.1");
    // Names another host, and this machine's name when it is an alias of the loopback: a
    // connection by that name is checked against the name, not the address it resolves to.
    std::string name = LoopbackName();
    server("other", "db.example.invalid",
           "DNS:db.example.invalid" + (name.empty() ? "" : ",DNS:" + name));
    // The first servers trust client certificates from the CA: siphon_cert logs in with one.
    fs::copy_file(certs_ + "/ca.pem", certs_ + "/good/ca.crt");
    MustRun({"openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=siphon_cert",
             "-keyout", certs_ + "/client.key", "-out", certs_ + "/client.csr"});
    MustRun({"openssl", "x509", "-req", "-in", certs_ + "/client.csr", "-CA", certs_ + "/ca.pem",
             "-CAkey", certs_ + "/ca.key", "-CAcreateserial", "-days", "3650", "-out",
             certs_ + "/client.crt"});
  }

  static void Start(TlsServers& s, const std::string& name, const std::string& certs) {
    s.dir = root_ + "/" + name;
    ProcessResult status = siphon::test::Run({Script(), "status", s.dir});
    s.started_here = status.exit_code != 0;
    MustRun({Script(), "start", s.dir}, {{"SIPHON_SERVERS_TLS", certs}});
    s.env = ReadEnv(s.dir + "/env");
    MustRun({"mariadb", "--no-defaults", "--protocol=socket", "-S", s.env["MYSQL_SOCKET"], "-uroot",
             "-e",
             "CREATE DATABASE IF NOT EXISTS tls_test; CREATE TABLE IF NOT EXISTS tls_test.items "
             "(id INT PRIMARY KEY); INSERT IGNORE INTO tls_test.items VALUES (1), (2), (3)"});
    MustRun({s.env["PG_BIN"] + "/psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h",
             s.env["PG_SOCKET_DIR"], "-p", s.env["PG_PORT"], "-U", "postgres", "-d", "postgres",
             "-c",
             "CREATE TABLE IF NOT EXISTS items (id int PRIMARY KEY); INSERT INTO items VALUES "
             "(1), (2), (3) ON CONFLICT DO NOTHING"});
  }

  std::string MysqlSource(const TlsServers& s, const std::string& tls,
                          const std::string& host = "127.0.0.1") const {
    return "local src = siphon.mysql { host = '" + host + "', port = " + s.env.at("MYSQL_PORT") +
           ", user = 'siphon', password = siphon.env('TEST_PW'), database = 'tls_test', " + tls +
           " }\n";
  }
  std::string PgSource(const TlsServers& s, const std::string& tls,
                       const std::string& host = "127.0.0.1") const {
    return "local src = siphon.postgres { host = '" + host + "', port = " + s.env.at("PG_PORT") +
           ", user = 'siphon', password = siphon.env('TEST_PW'), database = 'postgres', " + tls +
           " }\n";
  }
  /// Writes the deployment beside a copy of both CAs (ca.pem, other-ca.pem) and runs it.
  ProcessResult Siphon(const std::string& command, const std::string& source) {
    namespace fs = std::filesystem;
    for (const char* f : {"ca.pem", "other-ca.pem", "client.crt", "client.key"}) {
      fs::copy_file(certs_ + "/" + f, dir_.File(f), fs::copy_options::overwrite_existing);
    }
    // libpq refuses a private key that others may read.
    fs::permissions(dir_.File("client.key"), fs::perms::owner_read | fs::perms::owner_write);
    std::string path = dir_.File("deploy.lua");
    WriteFile(path, source + "siphon.target { path = '" + Replica() +
                        "' }\nsiphon.replicate 'items' { source = src }\n");
    // Run from elsewhere: a relative tls_ca is the script's folder's, not the working one's.
    return siphon::test::Run({SIPHON_BIN, command, path}, {{"TEST_PW", "siphon-test-pw"}});
  }
  std::string Replica() const { return dir_.File("replica.db"); }
  std::string ReplicaHasItems() const {
    return SqliteQuery(Replica(), "SELECT count(*) FROM sqlite_master WHERE name = 'items'")[0][0]
        .value_or("");
  }

  TempDir dir_;
  static inline std::string root_, certs_;
  static inline TlsServers good_, other_;
};

TEST_F(Tls, MysqlTlsCaVerifiesTheServerAndReplicates) {
  ProcessResult r = Siphon("once", MysqlSource(good_, "tls_ca = 'ca.pem'"));
  ASSERT_EQ(r.exit_code, 0) << Dump(r);
  EXPECT_EQ(SqliteQuery(Replica(), "SELECT count(*) FROM items")[0][0], "3");
}

TEST_F(Tls, MysqlCertificateFromAnotherCaIsRefused) {
  ProcessResult r = Siphon("once", MysqlSource(good_, "tls_ca = 'other-ca.pem'"));
  EXPECT_EQ(r.exit_code, 1) << Dump(r);
  EXPECT_NE(r.err.find("certificate did not verify against tls_ca"), std::string::npos) << Dump(r);
  EXPECT_NE(r.err.find("giving up"), std::string::npos) << Dump(r);
  EXPECT_EQ(r.err.find("retrying"), std::string::npos) << Dump(r);
  EXPECT_EQ(ReplicaHasItems(), "0");
}

TEST_F(Tls, MysqlCertificateForAnotherHostIsRefused) {
  ProcessResult r = Siphon("once", MysqlSource(other_, "tls_ca = 'ca.pem'"));
  EXPECT_EQ(r.exit_code, 1) << Dump(r);
  EXPECT_NE(r.err.find("certificate did not verify against tls_ca"), std::string::npos) << Dump(r);
  EXPECT_EQ(ReplicaHasItems(), "0");
}

// The certificate must name the host the script gave: a name siphon resolves itself (off
// the event loop) is still checked as the name, not as the address it resolved to.
TEST_F(Tls, MysqlHostNameIsCheckedAsTheName) {
  std::string name = LoopbackName();
  if (name.empty()) GTEST_SKIP() << "this machine's name is not an alias of the loopback";
  ProcessResult r = Siphon("once", MysqlSource(other_, "tls_ca = 'ca.pem'", name));
  ASSERT_EQ(r.exit_code, 0) << Dump(r);
  EXPECT_EQ(SqliteQuery(Replica(), "SELECT count(*) FROM items")[0][0], "3");
}

// Mutual TLS: siphon_cert may log in only with a client certificate the server trusts.
TEST_F(Tls, MysqlClientCertificateLogsIn) {
  std::string source =
      "local src = siphon.mysql { host = '127.0.0.1', port = " + good_.env.at("MYSQL_PORT") +
      ", user = 'siphon_cert', database = 'tls_test', tls_ca = 'ca.pem', ";
  ProcessResult r = Siphon("once", source + "tls_cert = 'client.crt', tls_key = 'client.key' }\n");
  ASSERT_EQ(r.exit_code, 0) << Dump(r);
  EXPECT_EQ(SqliteQuery(Replica(), "SELECT count(*) FROM items")[0][0], "3");

  std::filesystem::remove(Replica());
  r = Siphon("once", source + "}\n");
  EXPECT_EQ(r.exit_code, 1) << Dump(r);
  EXPECT_NE(r.err.find("Access denied for user 'siphon_cert'"), std::string::npos) << Dump(r);
  EXPECT_NE(r.err.find("giving up"), std::string::npos) << Dump(r);
  EXPECT_EQ(ReplicaHasItems(), "0");

  r = Siphon("check", source + "tls_cert = 'client.crt' }\n");
  EXPECT_EQ(r.exit_code, 2) << Dump(r);
  EXPECT_NE(r.err.find("tls_cert and tls_key go together"), std::string::npos) << Dump(r);
}

TEST_F(Tls, MysqlMissingTlsCaStopsStartUp) {
  for (const char* command : {"check", "run"}) {
    ProcessResult r = Siphon(command, MysqlSource(good_, "tls_ca = 'no-such-ca.pem'"));
    EXPECT_EQ(r.exit_code, 2) << command << " " << Dump(r);
    EXPECT_NE(r.err.find(dir_.File("no-such-ca.pem")), std::string::npos) << Dump(r);
    EXPECT_NE(r.err.find("deploy.lua:1:"), std::string::npos) << Dump(r);
  }
}

TEST_F(Tls, PostgresSslrootcertVerifiesTheServerAndReplicates) {
  // sslmode left out: a CA given means verify-full.
  ProcessResult r = Siphon("once", PgSource(good_, "sslrootcert = 'ca.pem'"));
  ASSERT_EQ(r.exit_code, 0) << Dump(r);
  EXPECT_EQ(SqliteQuery(Replica(), "SELECT count(*) FROM items")[0][0], "3");
}

TEST_F(Tls, PostgresCertificateFromAnotherCaIsRefused) {
  ProcessResult r =
      Siphon("once", PgSource(good_, "sslmode = 'verify-full', sslrootcert = 'other-ca.pem'"));
  EXPECT_EQ(r.exit_code, 1) << Dump(r);
  EXPECT_NE(r.err.find("certificate verify failed"), std::string::npos) << Dump(r);
  EXPECT_NE(r.err.find("certificate did not verify against sslrootcert"), std::string::npos)
      << Dump(r);
  EXPECT_NE(r.err.find("giving up"), std::string::npos) << Dump(r);
  EXPECT_EQ(r.err.find("retrying"), std::string::npos) << Dump(r);
  EXPECT_EQ(ReplicaHasItems(), "0");
}

TEST_F(Tls, PostgresCertificateForAnotherHostIsRefused) {
  ProcessResult r = Siphon("once", PgSource(other_, "sslrootcert = 'ca.pem'"));
  EXPECT_EQ(r.exit_code, 1) << Dump(r);
  EXPECT_NE(r.err.find("does not match host name"), std::string::npos) << Dump(r);
  EXPECT_NE(r.err.find("certificate did not verify against sslrootcert"), std::string::npos)
      << Dump(r);
  EXPECT_EQ(ReplicaHasItems(), "0");
}

TEST_F(Tls, PostgresHostNameIsCheckedAsTheName) {
  std::string name = LoopbackName();
  if (name.empty()) GTEST_SKIP() << "this machine's name is not an alias of the loopback";
  ProcessResult r = Siphon("once", PgSource(other_, "sslrootcert = 'ca.pem'", name));
  ASSERT_EQ(r.exit_code, 0) << Dump(r);
  EXPECT_EQ(SqliteQuery(Replica(), "SELECT count(*) FROM items")[0][0], "3");
}

TEST_F(Tls, PostgresClientCertificateLogsIn) {
  std::string source =
      "local src = siphon.postgres { host = '127.0.0.1', port = " + good_.env.at("PG_PORT") +
      ", user = 'siphon_cert', database = 'postgres', sslrootcert = 'ca.pem', ";
  ProcessResult r = Siphon("once", source + "sslcert = 'client.crt', sslkey = 'client.key' }\n");
  ASSERT_EQ(r.exit_code, 0) << Dump(r);
  EXPECT_EQ(SqliteQuery(Replica(), "SELECT count(*) FROM items")[0][0], "3");

  std::filesystem::remove(Replica());
  r = Siphon("once", source + "}\n");
  EXPECT_EQ(r.exit_code, 1) << Dump(r);
  EXPECT_NE(r.err.find("certificate"), std::string::npos) << Dump(r);
  EXPECT_NE(r.err.find("giving up"), std::string::npos) << Dump(r);
  EXPECT_EQ(ReplicaHasItems(), "0");

  r = Siphon("check", source + "sslkey = 'client.key' }\n");
  EXPECT_EQ(r.exit_code, 2) << Dump(r);
  EXPECT_NE(r.err.find("`sslcert` and `sslkey` go together"), std::string::npos) << Dump(r);
}

TEST_F(Tls, PostgresMissingSslrootcertStopsStartUp) {
  for (const char* command : {"check", "run"}) {
    ProcessResult r = Siphon(command, PgSource(good_, "sslrootcert = 'no-such-ca.pem'"));
    EXPECT_EQ(r.exit_code, 2) << command << " " << Dump(r);
    EXPECT_NE(r.err.find(dir_.File("no-such-ca.pem")), std::string::npos) << Dump(r);
    EXPECT_NE(r.err.find("deploy.lua:1:"), std::string::npos) << Dump(r);
  }
}

}  // namespace
}  // namespace siphon::test

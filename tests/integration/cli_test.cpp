// End-to-end: the command line against a real PostgreSQL source. `siphon check` refuses what
// `run` and `once` refuse before they connect (a target they cannot open, an admin API they
// will not serve), with the same message and exit code, and writes nothing.
#include <gtest/gtest.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>

#include "tests/integration/harness/harness.hpp"

namespace siphon::test {
namespace {

std::string Dump(const ProcessResult& r) {
  return "exit " + std::to_string(r.exit_code) + "\nstdout:\n" + r.out + "\nstderr:\n" + r.err;
}

/// The line of `text` that contains `needle` ("" when none does).
std::string LineWith(const std::string& text, const std::string& needle) {
  size_t at = text.find(needle);
  if (at == std::string::npos) return "";
  size_t begin = text.rfind('\n', at);
  begin = begin == std::string::npos ? 0 : begin + 1;
  size_t end = text.find('\n', at);
  return text.substr(begin, end == std::string::npos ? std::string::npos : end - begin);
}

class Cli : public ::testing::Test {
 protected:
  void SetUp() override { db_.Exec("CREATE TABLE a (id int8 PRIMARY KEY)"); }

  std::string Script(const std::string& target, const std::string& more = "",
                     const std::string& tables = "siphon.replicate \"a\" { source = pg }\n") {
    std::string path = dir_.File("deploy.lua");
    WriteFile(path,
              "local pg = siphon.postgres { dsn = siphon.env(\"TEST_PG_DSN\") }\n"
              "siphon.target { path = \"" +
                  target + "\" }\n" + more + tables);
    return path;
  }
  ProcessResult Siphon(const std::vector<std::string>& args,
                       std::map<std::string, std::string> env = {}) {
    std::vector<std::string> argv = {SIPHON_BIN};
    argv.insert(argv.end(), args.begin(), args.end());
    env["TEST_PG_DSN"] = db_.Dsn();
    return siphon::test::Run(argv, env, std::chrono::seconds(30));
  }

  PgDb db_;
  TempDir dir_;
};

// `--help` listed the log levels without `critical`, which --log-level accepts.
TEST_F(Cli, HelpListsEveryLogLevel) {
  auto r = siphon::test::Run({SIPHON_BIN, "--help"}, {});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("trace, debug, info, warn, error, critical, off"), std::string::npos)
      << r.out;
}

// `--help` named PostgreSQL and MySQL as the sources, not SQLite, which is one too.
TEST_F(Cli, HelpNamesEverySource) {
  auto r = siphon::test::Run({SIPHON_BIN, "--help"}, {});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("replicate PostgreSQL, MySQL/MariaDB and SQLite tables into a local "
                       "SQLite file"),
            std::string::npos)
      << r.out;
}

// Each command's --help names the options every command takes (`siphon run --help` listed
// its own only, so it did not say how to turn on debug logs or JSON logs).
TEST_F(Cli, EveryCommandsHelpNamesTheLogOptions) {
  for (const char* command : {"run", "once", "resync", "resume", "check", "status"}) {
    auto r = siphon::test::Run({SIPHON_BIN, command, "--help"}, {});
    EXPECT_EQ(r.exit_code, 0) << command << "\n" << Dump(r);
    EXPECT_NE(r.out.find("--log-level LEVEL (trace, debug, info, warn, error, critical, off"),
              std::string::npos)
        << command << "\n"
        << r.out;
    EXPECT_NE(r.out.find("--log-format text|json"), std::string::npos) << command << "\n" << r.out;
  }
  // And they are taken after the command, as the help says.
  auto r = siphon::test::Run({SIPHON_BIN, "status", "--log-level", "debug", "--help"}, {});
  EXPECT_EQ(r.exit_code, 0) << Dump(r);
}

// `siphon check --help` listed --quiet ("no progress lines for long syncs"), and check took
// it, though check syncs nothing and never shows a progress line. The commands that sync
// keep it.
TEST_F(Cli, CheckTakesNoQuietFlag) {
  auto help = siphon::test::Run({SIPHON_BIN, "check", "--help"}, {});
  EXPECT_EQ(help.exit_code, 0) << Dump(help);
  EXPECT_EQ(help.out.find("--quiet"), std::string::npos) << help.out;
  for (const char* command : {"run", "once", "resync", "resume"}) {
    auto r = siphon::test::Run({SIPHON_BIN, command, "--help"}, {});
    EXPECT_NE(r.out.find("--quiet"), std::string::npos) << command << "\n" << r.out;
  }
  auto r = Siphon({"check", Script(dir_.File("replica.db")), "--quiet"});
  EXPECT_EQ(r.exit_code, 2) << Dump(r);
  EXPECT_NE(r.err.find("--quiet"), std::string::npos) << Dump(r);
  EXPECT_EQ(r.out.find("ok: 1 table(s)"), std::string::npos) << Dump(r);
}

// A misspelt table or column is answered with the closest name the source has, by once and
// by check (PostgreSQL said "table custmers not found" and named only tables spelled the same
// in other case or another schema). Both are mistakes in the script: a missing table exited 1
// where a missing column exited 2; both exit 2 now.
TEST_F(Cli, AMisspeltTableOrColumnNamesTheClosestOne) {
  db_.Exec("CREATE TABLE customers (id int8 PRIMARY KEY, email text)");
  db_.Exec("CREATE SCHEMA shop");
  db_.Exec("CREATE TABLE shop.products (sku text PRIMARY KEY)");
  const std::string target = dir_.File("replica.db");
  auto r = Siphon({"once", Script(target, "",
                                  "siphon.replicate 'c' { source = pg, from = "
                                  "'custmers' }\n")});
  EXPECT_EQ(r.exit_code, 2) << Dump(r);
  EXPECT_NE(r.err.find("table custmers not found in database " + db_.name() +
                       " (search_path: public); did you mean from = \"customers\"?"),
            std::string::npos)
      << Dump(r);
  r = Siphon({"check", Script(target, "",
                              "siphon.replicate 'p' { source = pg, from = "
                              "'shop.prodcts' }\n")});
  EXPECT_EQ(r.exit_code, 2) << Dump(r);
  EXPECT_NE(r.out.find("table shop.prodcts not found in database " + db_.name() +
                       "; did you mean from = \"shop.products\"?"),
            std::string::npos)
      << Dump(r);
  // On stderr too, naming the script's line, as check names any mistake in the script.
  EXPECT_NE(r.err.find("deploy.lua:3: table \"p\": table shop.prodcts not found"),
            std::string::npos)
      << Dump(r);
  // A name nothing is close to gets no guess.
  r = Siphon({"once", Script(target, "",
                             "siphon.replicate 'c' { source = pg, from = "
                             "'invoices' }\n")});
  EXPECT_EQ(r.exit_code, 2) << Dump(r);
  EXPECT_NE(r.err.find("table invoices not found in database " + db_.name() +
                       " (search_path: public) (giving up)"),
            std::string::npos)
      << Dump(r);
  r = Siphon({"once", Script(target, "",
                             "siphon.replicate 'c' { source = pg, from = "
                             "'customers', key = 'Id', columns = { 'emails' } }\n")});
  EXPECT_EQ(r.exit_code, 2) << Dump(r);
  EXPECT_NE(r.err.find("key column \"Id\" does not exist in the source; did you mean \"id\"? "
                       "(its columns: id, email)"),
            std::string::npos)
      << Dump(r);
}

// A certificate or key option naming a folder passed the start-up check (a folder opens; only
// reading it fails) and failed only at connect, once per attempt. It stops start-up now, exit
// 2, naming the script's line, the option and the path, as a file siphon may not read does.
TEST_F(Cli, ATlsFileThatIsAFolderOrUnreadableStopsStartUp) {
  std::filesystem::create_directories(dir_.File("certs"));
  WriteFile(dir_.File("ca.pem"), "-----BEGIN CERTIFICATE-----\n");
  const std::string mysql =
      "local src = siphon.mysql { host = '127.0.0.1', user = 'u', database = 'd', ";
  const std::string pg = "local src = siphon.postgres { host = '127.0.0.1', user = 'u', ";
  auto script = [&](const std::string& source) {
    std::string path = dir_.File("deploy.lua");
    WriteFile(path, source +
                        " }\nsiphon.target { path = 'replica.db' }\n"
                        "siphon.replicate 'a' { source = src }\n");
    return path;
  };
  struct Case {
    std::string source, option;
  };
  const std::vector<Case> cases = {
      {mysql + "tls_ca = 'certs'", "tls_ca"},
      {mysql + "tls_cert = 'certs', tls_key = 'ca.pem'", "tls_cert"},
      {mysql + "tls_cert = 'ca.pem', tls_key = 'certs'", "tls_key"},
      {pg + "sslrootcert = 'certs'", "`sslrootcert`"},
      {pg + "sslcert = 'certs', sslkey = 'ca.pem'", "`sslcert`"},
      {pg + "sslcert = 'ca.pem', sslkey = 'certs'", "`sslkey`"},
  };
  for (const Case& c : cases) {
    for (const char* command : {"check", "once"}) {
      auto r = Siphon({command, script(c.source)});
      EXPECT_EQ(r.exit_code, 2) << command << " " << c.option << "\n" << Dump(r);
      EXPECT_NE(r.err.find("deploy.lua:1: "), std::string::npos) << Dump(r);
      EXPECT_NE(r.err.find(c.option + ": cannot read \"" + dir_.File("certs") +
                           "\": it is a folder, not a file"),
                std::string::npos)
          << Dump(r);
    }
  }
  // A file the user may not read: root reads any, so siphon then runs as nobody.
  ASSERT_EQ(chmod(dir_.File("ca.pem").c_str(), 0600), 0);
  std::vector<std::string> argv;
  if (geteuid() == 0) {
    argv = {"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"};
    ASSERT_EQ(chmod(dir_.path().c_str(), 0755), 0);
  } else {
    ASSERT_EQ(chmod(dir_.File("ca.pem").c_str(), 0), 0);
  }
  argv.insert(argv.end(), {SIPHON_BIN, "check", ""});
  for (const std::string& source : {mysql + "tls_ca = 'ca.pem'", pg + "sslrootcert = 'ca.pem'"}) {
    argv.back() = script(source);
    ASSERT_EQ(chmod(argv.back().c_str(), 0644), 0);
    auto r = siphon::test::Run(argv, {}, std::chrono::seconds(30));
    EXPECT_EQ(r.exit_code, 2) << source << "\n" << Dump(r);
    EXPECT_NE(r.err.find("cannot read \"" + dir_.File("ca.pem") + "\": Permission denied"),
              std::string::npos)
        << Dump(r);
  }
}

// `sslmode = "require"` with `sslrootcert` was taken, and libpq then checks the certificate's
// signature but not the host it names (verify-ca), though sslrootcert alone means verify-full.
// It stops start-up now, exit 2, saying what to give instead.
TEST_F(Cli, SslmodeRequireWithSslrootcertIsRefused) {
  WriteFile(dir_.File("ca.pem"), "-----BEGIN CERTIFICATE-----\n");
  std::string path = dir_.File("deploy.lua");
  WriteFile(path,
            "local pg = siphon.postgres { host = '127.0.0.1', user = 'u', sslmode = 'require', "
            "sslrootcert = 'ca.pem' }\nsiphon.target { path = 'replica.db' }\n"
            "siphon.replicate 'a' { source = pg }\n");
  for (const char* command : {"check", "once"}) {
    auto r = Siphon({command, path});
    EXPECT_EQ(r.exit_code, 2) << command << "\n" << Dump(r);
    EXPECT_NE(r.err.find("deploy.lua:1: siphon.postgres: `sslmode = \"require\"` with "
                         "`sslrootcert` checks that the server's certificate is signed by that CA "
                         "but not that it names the host"),
              std::string::npos)
        << Dump(r);
    EXPECT_NE(r.err.find("give sslmode = \"verify-full\""), std::string::npos) << Dump(r);
  }
}

// A database the server does not have is a mistake in the script: exit 2 (MariaDB's answer is
// the same, MysqlSync.ADatabaseTheServerDoesNotHaveExitsTwoAsOnPostgres).
TEST_F(Cli, ADatabaseTheServerDoesNotHaveExitsTwo) {
  std::string path = dir_.File("deploy.lua");
  WriteFile(path,
            "local pg = siphon.postgres { dsn = siphon.env('TEST_PG_DSN') .. ' dbname=nosuch' }\n"
            "siphon.target { path = 'replica.db' }\nsiphon.replicate 'a' { source = pg }\n");
  auto r = Siphon({"once", path});
  EXPECT_EQ(r.exit_code, 2) << Dump(r);
  EXPECT_NE(r.err.find("database \"nosuch\" does not exist"), std::string::npos) << Dump(r);
}

// libpq's hint on a refused connection came with its tab: "Connection refused \tIs the server
// running …" in the text log, "\t" in a JSON one.
TEST_F(Cli, ARefusedConnectionReadsAsOneLine) {
  std::string path = dir_.File("deploy.lua");
  WriteFile(path,
            "local pg = siphon.postgres { dsn = 'host=127.0.0.1 port=1 user=x dbname=x' }\n"
            "siphon.target { path = 'replica.db' }\nsiphon.replicate 'a' { source = pg }\n");
  auto r = Siphon({"once", path});
  EXPECT_EQ(r.exit_code, 1) << Dump(r);
  EXPECT_NE(r.err.find("Connection refused Is the server running on that host and accepting "
                       "TCP/IP connections?"),
            std::string::npos)
      << Dump(r);
  EXPECT_EQ(r.err.find('\t'), std::string::npos) << Dump(r);
}

// SQLite's "unable to open database file" did not say that the folder was missing.
TEST_F(Cli, ATargetInAMissingFolderFailsAsOnceDoes) {
  const std::string target = dir_.File("no/such/folder/replica.db");
  std::string script = Script(target);
  auto once = Siphon({"once", script});
  ASSERT_EQ(once.exit_code, 1) << Dump(once);
  const std::string message = "siphon: cannot open target " + target;
  const std::string said = LineWith(once.err, message);
  ASSERT_NE(said, "") << Dump(once);
  EXPECT_NE(said.find("unable to open database file"), std::string::npos) << said;
  // And why: SQLite's message alone did not say it was the folder.
  EXPECT_NE(said.find("unable to open database file (the folder " + dir_.File("no/such/folder") +
                      " does not exist)"),
            std::string::npos)
      << said;

  auto check = Siphon({"check", script});
  EXPECT_EQ(check.exit_code, once.exit_code) << Dump(check);
  EXPECT_EQ(LineWith(check.err, message), said) << Dump(check);
  EXPECT_NE(check.out.find("failed: 1 table(s)"), std::string::npos) << Dump(check);
  // The tables are still checked.
  EXPECT_NE(check.out.find("first page:"), std::string::npos) << Dump(check);
}

// A target that is a file but not a database (a path pointing at the wrong file): once fails,
// exit 1, and check now says so too, exit 1, leaving the file as it was (it said "ok").
TEST_F(Cli, ATargetThatIsNotADatabaseFailsCheckAsOnceDoes) {
  const std::string target = dir_.File("notes.txt");
  WriteFile(target, "not a database\n");
  std::string script = Script(target);
  auto once = Siphon({"once", script});
  ASSERT_EQ(once.exit_code, 1) << Dump(once);
  EXPECT_NE(once.err.find("file is not a database"), std::string::npos) << Dump(once);
  auto check = Siphon({"check", script});
  EXPECT_EQ(check.exit_code, 1) << Dump(check);
  EXPECT_NE(check.err.find("siphon: cannot open target " + target + ": file is not a database"),
            std::string::npos)
      << Dump(check);
  EXPECT_NE(check.out.find("failed: 1 table(s)"), std::string::npos) << Dump(check);
  EXPECT_EQ(ReadFile(target), "not a database\n");
  // An empty file is an empty database to SQLite, and passes.
  WriteFile(target, "");
  check = Siphon({"check", script});
  EXPECT_EQ(check.exit_code, 0) << Dump(check);
}

// A target file the user may not write: once failed, exit 1, with SQLite's "ro.db: attempt to
// write a readonly database (in: PRAGMA journal_mode=WAL)", which names no fix, and check
// printed "ok". Both now say the file is read-only to this user, exit 1.
TEST_F(Cli, AReadOnlyTargetFailsCheckAsOnceDoesAndSaysWhy) {
  const std::string target = dir_.File("replica.db");
  std::string script = Script(target);
  ASSERT_EQ(Siphon({"once", script}).exit_code, 0);
  ASSERT_EQ(chmod(target.c_str(), 0444), 0);
  // Root writes any file: siphon then runs as nobody, who may read the folder but not write
  // the file.
  std::vector<std::string> as;
  if (geteuid() == 0) {
    as = {"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"};
    ASSERT_EQ(chmod(dir_.path().c_str(), 0755), 0);
  }
  auto siphon = [&](const std::string& command) {
    std::vector<std::string> argv = as;
    argv.insert(argv.end(), {SIPHON_BIN, command, script});
    return siphon::test::Run(argv, {{"TEST_PG_DSN", db_.Dsn()}}, std::chrono::seconds(30));
  };
  const std::string message =
      "siphon: cannot open target " + target + ": the file is read-only to this user";
  auto once = siphon("once");
  EXPECT_EQ(once.exit_code, 1) << Dump(once);
  EXPECT_NE(once.err.find(message), std::string::npos) << Dump(once);
  auto check = siphon("check");
  EXPECT_EQ(check.exit_code, 1) << Dump(check);
  EXPECT_NE(check.err.find(message), std::string::npos) << Dump(check);
}

TEST_F(Cli, AnExistingOrCreatableTargetPassesAndCheckCreatesNothing) {
  const std::string target = dir_.File("replica.db");
  std::string script = Script(target);
  auto check = Siphon({"check", script});
  EXPECT_EQ(check.exit_code, 0) << Dump(check);
  EXPECT_FALSE(std::filesystem::exists(target));
  auto once = Siphon({"once", script});
  ASSERT_EQ(once.exit_code, 0) << Dump(once);
  check = Siphon({"check", script});
  EXPECT_EQ(check.exit_code, 0) << Dump(check);
  // A folder where the file should be cannot be opened, by either.
  std::string folder = Script(dir_.path());
  once = Siphon({"once", folder});
  check = Siphon({"check", folder});
  EXPECT_EQ(once.exit_code, 1) << Dump(once);
  EXPECT_EQ(check.exit_code, once.exit_code) << Dump(check);
  const std::string message = "siphon: cannot open target " + dir_.path();
  EXPECT_NE(LineWith(once.err, message), "") << Dump(once);
  EXPECT_EQ(LineWith(check.err, message), LineWith(once.err, message)) << Dump(check);
}

TEST_F(Cli, AnAdminApiOffLoopbackWithoutATokenFailsAsRunDoes) {
  std::string script =
      Script(dir_.File("replica.db"),
             "siphon.http_api { listen = \"0.0.0.0:" + std::to_string(FreeTcpPort()) + "\" }\n");
  auto run = Siphon({"run", script});
  ASSERT_EQ(run.exit_code, 2) << Dump(run);
  // The address is the script's: the message names the line that declares it.
  const std::string said = LineWith(run.err, "siphon: " + script + ":3: admin API on 0.0.0.0:");
  ASSERT_NE(said, "") << Dump(run);
  EXPECT_NE(said.find("without a token"), std::string::npos) << said;

  auto check = Siphon({"check", script});
  EXPECT_EQ(check.exit_code, 2) << Dump(check);
  EXPECT_EQ(LineWith(check.err, "siphon: " + script + ":3: admin API on 0.0.0.0:"), said)
      << Dump(check);

  // A token from the environment, as run takes it, makes it acceptable to both.
  check = Siphon({"check", script}, {{"SIPHON_HTTP_TOKEN", "tok"}});
  EXPECT_EQ(check.exit_code, 0) << Dump(check);
  check = Siphon({"check", script, "--http-token-env", "MY_TOKEN"}, {{"MY_TOKEN", "tok"}});
  EXPECT_EQ(check.exit_code, 0) << Dump(check);
  // --http is checked as run would serve it.
  std::string plain = Script(dir_.File("replica.db"));
  check = Siphon({"check", plain, "--http", "0.0.0.0:1"});
  EXPECT_EQ(check.exit_code, 2) << Dump(check);
  EXPECT_NE(check.err.find("without a token"), std::string::npos) << Dump(check);
  check = Siphon({"check", plain, "--http", "example.com:1"});
  EXPECT_EQ(check.exit_code, 2) << Dump(check);
  EXPECT_EQ(Siphon({"check", plain}).exit_code, 0);
}

// `siphon status` names rows_total for what it is: rows written over all runs (a column
// headed ROWS read as the table's size: 3 full refreshes of 4 rows showed 12). A full refresh
// keyed by text writes every row each pass.
TEST_F(Cli, StatusShowsRowsWrittenUnderWritten) {
  db_.Exec(
      "CREATE TABLE s (code text PRIMARY KEY); INSERT INTO s VALUES ('w'), ('x'), ('y'), ('z')");
  const std::string replica = dir_.File("replica.db");
  std::string script =
      Script(replica, "", "siphon.replicate \"a\" { source = pg, from = \"s\" }\n");
  for (int i = 0; i < 3; ++i) ASSERT_EQ(Siphon({"once", script}).exit_code, 0);
  ASSERT_EQ(*SqliteQuery(replica, "SELECT count(*) FROM a")[0][0], "4");

  auto text = Siphon({"status", replica});
  ASSERT_EQ(text.exit_code, 0) << Dump(text);
  const std::string header = LineWith(text.out, "TABLE");
  EXPECT_EQ(header.find("ROWS"), std::string::npos) << text.out;
  const size_t column = header.find("WRITTEN");
  ASSERT_NE(column, std::string::npos) << text.out;
  const size_t at = text.out.find("\na ");
  ASSERT_NE(at, std::string::npos) << text.out;
  const std::string row = text.out.substr(at + 1, text.out.find('\n', at + 1) - at - 1);
  ASSERT_GT(row.size(), column) << text.out;
  EXPECT_EQ(row.substr(column, 3), "12 ") << text.out;

  // The JSON keeps its field names.
  auto json = Siphon({"status", replica, "--json"});
  ASSERT_EQ(json.exit_code, 0) << Dump(json);
  EXPECT_NE(json.out.find("\"rows_total\": 12"), std::string::npos) << json.out;
}

// A token that ends with a line break (a secret file's, kept by an environment variable) can
// never be presented: run and check refuse it at start-up, exit 2, naming where it came from
// (run served the API and answered every request 401, "invalid token").
TEST_F(Cli, AnAdminApiTokenNoClientCanSendIsRefused) {
  std::string script = Script(dir_.File("replica.db"));
  const std::string http = "127.0.0.1:" + std::to_string(FreeTcpPort());
  auto run = siphon::test::Run({SIPHON_BIN, "run", script, "--http", http},
                               {{"TEST_PG_DSN", db_.Dsn()}, {"SIPHON_HTTP_TOKEN", "tok\n"}},
                               std::chrono::seconds(10));
  EXPECT_EQ(run.exit_code, 2) << Dump(run);
  EXPECT_NE(run.err.find("siphon: the admin API token from SIPHON_HTTP_TOKEN holds a line break"),
            std::string::npos)
      << Dump(run);
  EXPECT_FALSE(std::filesystem::exists(dir_.File("replica.db")));
  auto check = Siphon({"check", script, "--http", http, "--http-token-env", "MY_TOKEN"},
                      {{"MY_TOKEN", " tok"}});
  EXPECT_EQ(check.exit_code, 2) << Dump(check);
  EXPECT_NE(check.err.find("the admin API token from MY_TOKEN begins or ends with a space"),
            std::string::npos)
      << Dump(check);
  check = Siphon({"check", script, "--http", http}, {{"SIPHON_HTTP_TOKEN", "a token"}});
  EXPECT_EQ(check.exit_code, 0) << Dump(check);
}

// A bad address in the script's siphon.http_api is named as the script's, with its place
// (it was blamed on --http, a flag the command line never gave); --http's own stays --http's.
TEST_F(Cli, ABadAdminApiAddressInTheScriptIsNamedAsTheScripts) {
  std::string script =
      Script(dir_.File("replica.db"), "siphon.http_api { listen = \"127.0.0.1:99999\" }\n");
  for (const char* command : {"run", "check"}) {
    auto r = Siphon({command, script});
    EXPECT_EQ(r.exit_code, 2) << Dump(r);
    EXPECT_NE(r.err.find("siphon: " + script +
                         ":3: siphon.http_api { listen }: \"127.0.0.1:99999\" has no valid port"),
              std::string::npos)
        << Dump(r);
    EXPECT_EQ(r.err.find("--http"), std::string::npos) << Dump(r);
  }
  auto flag = Siphon({"check", Script(dir_.File("replica.db")), "--http", "127.0.0.1:0"});
  EXPECT_EQ(flag.exit_code, 2) << Dump(flag);
  EXPECT_NE(flag.err.find("siphon: --http: \"127.0.0.1:0\" has no valid port"), std::string::npos)
      << Dump(flag);
}

// A mistyped command is named as unknown (it was "A subcommand is required", as if none had
// been given), exit 2; a missing one still says a command is required.
TEST_F(Cli, AMistypedCommandIsNamed) {
  auto typo = Siphon({"stauts", dir_.File("replica.db")});
  EXPECT_EQ(typo.exit_code, 2) << Dump(typo);
  EXPECT_NE(typo.err.find("siphon: unknown command \"stauts\" (run, once, resync, resume, check "
                          "or status)"),
            std::string::npos)
      << Dump(typo);
  auto after_option = Siphon({"--log-level", "debug", "onse", "x.lua"});
  EXPECT_EQ(after_option.exit_code, 2) << Dump(after_option);
  EXPECT_NE(after_option.err.find("unknown command \"onse\""), std::string::npos)
      << Dump(after_option);
  // An option siphon does not know is named as an option (it was "unknown command").
  auto option = Siphon({"--verbose"});
  EXPECT_EQ(option.exit_code, 2) << Dump(option);
  EXPECT_NE(option.err.find("siphon: unknown option --verbose\n"), std::string::npos)
      << Dump(option);
  EXPECT_EQ(option.err.find("command"), std::string::npos) << Dump(option);
  auto none = Siphon({});
  EXPECT_EQ(none.exit_code, 2) << Dump(none);
  EXPECT_NE(none.err.find("A subcommand is required"), std::string::npos) << Dump(none);
}

// One siphon writes a target at a time: `once` beside a `run` of the same target is refused,
// exit 1, writing nothing (both wrote it: the new row of an append table was appended by the
// `once` and again by the run's next run); once the run has stopped, `once` syncs.
TEST_F(Cli, ASecondSiphonOnTheSameTargetIsRefused) {
  db_.Exec(
      "CREATE TABLE events (seq int8 NOT NULL, v text); INSERT INTO events SELECT g, 'e' || g "
      "FROM generate_series(1, 3) g");
  const std::string replica = dir_.File("replica.db");
  std::string script =
      Script(replica, "", R"(siphon.replicate "events" { source = pg, cursor = "seq",
  write = "append", every = "1h" })");
  Process run({SIPHON_BIN, "run", script}, {{"TEST_PG_DSN", db_.Dsn()}});
  ASSERT_TRUE(run.WaitForOutput("synced 3 rows")) << run.Stderr();
  db_.Exec("INSERT INTO events VALUES (4, 'e4')");
  // The run's next run is an hour away: its cursor still stands at 3.
  auto second = Siphon({"once", script});
  EXPECT_EQ(second.exit_code, 1) << Dump(second);
  EXPECT_NE(second.err.find("siphon: target " + replica + " is in use by another siphon process"),
            std::string::npos)
      << Dump(second);
  EXPECT_EQ(*SqliteQuery(replica, "SELECT count(*) FROM events")[0][0], "3");
  run.Signal(SIGTERM);
  ProcessResult stopped = run.Wait(std::chrono::seconds(20));
  ASSERT_EQ(stopped.exit_code, 0) << Dump(stopped);
  auto once = Siphon({"once", script});
  EXPECT_EQ(once.exit_code, 0) << Dump(once);
  EXPECT_EQ(*SqliteQuery(replica, "SELECT count(*) FROM events")[0][0], "4");
  EXPECT_EQ(*SqliteQuery(replica, "SELECT count(DISTINCT seq) FROM events")[0][0], "4");
}

// A replica whose name holds '#', '%' or '?' (characters a file: URI gives a meaning) is
// read as named: `status` said "unable to open database file", and a name with "%41" read
// the file named with an 'A' instead.
TEST_F(Cli, StatusReadsAReplicaWhoseNameHoldsUriCharacters) {
  db_.Exec("INSERT INTO a SELECT g FROM generate_series(1, 5) g");
  const std::string replica = dir_.File("r#1 %41?.db");
  ASSERT_EQ(Siphon({"once", Script(replica)}).exit_code, 0);
  auto text = Siphon({"status", replica});
  ASSERT_EQ(text.exit_code, 0) << Dump(text);
  EXPECT_NE(LineWith(text.out, "ok").rfind("a ", 0), std::string::npos) << text.out;
  auto json = Siphon({"status", replica, "--json"});
  ASSERT_EQ(json.exit_code, 0) << Dump(json);
  EXPECT_NE(json.out.find("\"rows_total\": 5"), std::string::npos) << json.out;
}

// `status` only reads, and leaves the folder as it found it: reading a WAL file through a
// read-only connection created its -wal and -shm files, which only a connection that may
// write removes as it closes, so each `siphon status` left both beside the replica.
TEST_F(Cli, StatusLeavesNoWalOrShmFileBesideTheReplica) {
  db_.Exec("INSERT INTO a SELECT g FROM generate_series(1, 3) g");
  const std::string replica = dir_.File("replica.db");
  ASSERT_EQ(Siphon({"once", Script(replica)}).exit_code, 0);
  ASSERT_FALSE(std::filesystem::exists(replica + "-wal"));
  ASSERT_FALSE(std::filesystem::exists(replica + "-shm"));
  const auto before = std::filesystem::last_write_time(replica);
  auto text = Siphon({"status", replica});
  ASSERT_EQ(text.exit_code, 0) << Dump(text);
  EXPECT_EQ(LineWith(text.out, "ok").rfind("a ", 0), 0u) << text.out;
  EXPECT_FALSE(std::filesystem::exists(replica + "-wal"));
  EXPECT_FALSE(std::filesystem::exists(replica + "-shm"));
  auto json = Siphon({"status", replica, "--json"});
  ASSERT_EQ(json.exit_code, 0) << Dump(json);
  EXPECT_NE(json.out.find("\"rows_total\": 3"), std::string::npos) << json.out;
  EXPECT_FALSE(std::filesystem::exists(replica + "-wal"));
  EXPECT_FALSE(std::filesystem::exists(replica + "-shm"));
  EXPECT_EQ(std::filesystem::last_write_time(replica), before);
  // A path that names nothing is not created.
  auto missing = Siphon({"status", dir_.File("nothing.db")});
  EXPECT_EQ(missing.exit_code, 2) << Dump(missing);
  EXPECT_FALSE(std::filesystem::exists(dir_.File("nothing.db")));
}

// A state row whose error holds a line break and bytes that are not UTF-8 (a source's error
// message quotes whatever it was given): `status --json` prints it with the bytes replaced
// (it aborted, exit 134, printing nothing), and the table keeps one line per table.
TEST_F(Cli, StatusPrintsAnErrorWithOddBytesOnOneLineAndAsJson) {
  const std::string replica = dir_.File("replica.db");
  ASSERT_EQ(Siphon({"once", Script(replica)}).exit_code, 0);
  SqliteExec(replica,
             "UPDATE _siphon_state SET status = 'failed', last_error = 'query: bad value ' || "
             "CAST(X'27FF27' AS TEXT) || char(10) || 'DETAIL: more' WHERE table_name = 'a'");

  auto json = Siphon({"status", replica, "--json"});
  ASSERT_EQ(json.exit_code, 0) << Dump(json);
  EXPECT_NE(json.out.find("\"last_error\": \"query: bad value '\xEF\xBF\xBD'\\nDETAIL: more\""),
            std::string::npos)
      << json.out;

  auto text = Siphon({"status", replica});
  ASSERT_EQ(text.exit_code, 0) << Dump(text);
  EXPECT_EQ(std::count(text.out.begin(), text.out.end(), '\n'), 2) << text.out;
  const std::string row = LineWith(text.out, "failed");
  EXPECT_EQ(row.rfind("a ", 0), 0u) << text.out;
  EXPECT_NE(row.find("'\\nDETAIL: more"), std::string::npos) << text.out;
}

/// The columns a terminal gives a character starting with byte `u`: none for a continuation
/// byte, two for a CJK ideograph or a Hangul syllable (lead bytes 0xE3 to 0xED), else one.
size_t Columns(unsigned char u) {
  if ((u & 0xC0) == 0x80) return 0;
  return u >= 0xE3 && u <= 0xED ? 2 : 1;
}

/// What `line` shows from column `column` (counted as a terminal does) on.
std::string FromColumn(const std::string& line, size_t column) {
  size_t shown = 0, at = 0;
  while (at < line.size() && shown < column) {
    shown += Columns(static_cast<unsigned char>(line[at++]));
    while (at < line.size() && Columns(static_cast<unsigned char>(line[at])) == 0) ++at;
  }
  return line.substr(at);
}

// `status` aligns its columns by what a terminal shows, not by bytes: a table named in
// Japanese or an error in Russian pushed the columns after it right by a column per extra
// byte (one for each of "注文", whose two characters take two columns each), and a long
// error was cut at 57 bytes, 28 Cyrillic letters.
TEST_F(Cli, StatusAlignsColumnsByDisplayWidth) {
  const std::string replica = dir_.File("replica.db");
  ASSERT_EQ(Siphon({"once", Script(replica)}).exit_code, 0);
  const std::string error = "ошибка: нет соединения с сервером, повторная попытка через 30 с";
  SqliteExec(replica,
             "INSERT INTO _siphon_state (table_name, status, rows_total, cursor, last_error) "
             "VALUES ('注文', 'failed', 7, '[\"é\"]', '" +
                 error + "'), ('zz', 'ok', 1234567, '[1]', NULL)");
  auto text = Siphon({"status", replica});
  ASSERT_EQ(text.exit_code, 0) << Dump(text);
  const std::string header = LineWith(text.out, "TABLE");
  std::vector<size_t> at;  // where each column starts, in columns
  for (const char* name : {"TABLE", "STATUS", "WRITTEN", "LAST SUCCESS", "CURSOR", "ERROR"}) {
    ASSERT_NE(header.find(name), std::string::npos) << text.out;
    at.push_back(header.find(name));  // the header is ASCII: bytes are columns
  }
  const std::string kanji = LineWith(text.out, "注文");
  EXPECT_EQ(FromColumn(kanji, at[1]).rfind("failed  7  ", 0), 0u) << text.out;
  EXPECT_EQ(FromColumn(kanji, at[2]).rfind("7 ", 0), 0u) << text.out;
  EXPECT_EQ(FromColumn(kanji, at[4]).rfind("[\"é\"]  ", 0), 0u) << text.out;
  // Cut at 57 characters, not bytes, and never inside one.
  const std::string shown = FromColumn(kanji, at[5]);
  EXPECT_EQ(shown.rfind("ошибка: нет соединения с сервером, повторная попытка", 0), 0u) << text.out;
  const std::string zz = LineWith(text.out, "1234567");
  EXPECT_EQ(FromColumn(zz, at[1]).rfind("ok ", 0), 0u) << text.out;
  EXPECT_EQ(FromColumn(zz, at[4]).rfind("[1]", 0), 0u) << text.out;
}

// A replica another process holds a write lock on (a rollback-journal file, written by hand
// or by a tool, past the 5 s busy timeout) cannot be read now: `status` says so, exit 1 (it
// said "is not a siphon replica: database is locked"). A file that is not one still says so.
TEST_F(Cli, StatusOnALockedReplicaSaysItIsLockedNotThatItIsNoReplica) {
  const std::string replica = dir_.File("replica.db");
  ASSERT_EQ(Siphon({"once", Script(replica)}).exit_code, 0);
  SqliteExec(replica, "PRAGMA journal_mode = DELETE");
  sqlite3* holder = nullptr;
  ASSERT_EQ(sqlite3_open(replica.c_str(), &holder), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(holder, "BEGIN EXCLUSIVE", nullptr, nullptr, nullptr), SQLITE_OK)
      << sqlite3_errmsg(holder);
  auto locked = Siphon({"status", replica});
  sqlite3_exec(holder, "ROLLBACK", nullptr, nullptr, nullptr);
  sqlite3_close(holder);
  EXPECT_EQ(locked.exit_code, 1) << Dump(locked);
  EXPECT_NE(locked.err.find("siphon: cannot read " + replica +
                            ": database is locked (another process holds a write lock on it"),
            std::string::npos)
      << Dump(locked);
  EXPECT_EQ(locked.out, "") << Dump(locked);

  const std::string plain = dir_.File("plain.db");
  SqliteExec(plain, "CREATE TABLE t (x)");
  auto other = Siphon({"status", plain});
  EXPECT_EQ(other.exit_code, 1) << Dump(other);
  EXPECT_NE(
      other.err.find("siphon: " + plain + " is not a siphon replica: no such table: _siphon_state"),
      std::string::npos)
      << Dump(other);
  auto ok = Siphon({"status", replica});
  EXPECT_EQ(ok.exit_code, 0) << Dump(ok);
}

// `once` stopped by SIGTERM in the middle of a table: the summary counts the rows the
// committed pages wrote (it said 0, the count of a last run that never ended).
TEST_F(Cli, OnceStoppedMidTableSummarizesTheRowsWritten) {
  db_.Exec(
      "CREATE TABLE big (id int8 PRIMARY KEY, v text NOT NULL); INSERT INTO big SELECT g, "
      "md5(g::text) FROM generate_series(1, 100000) g");
  // A transform whose busy loop keeps the run going for seconds.
  std::string script = Script(dir_.File("replica.db"), "", R"(siphon.replicate "big" {
  source = pg, batch = 500,
  transform = function(row) local x = 0; for i = 1, 3000 do x = x + i end; return row end })");
  Process p({SIPHON_BIN, "once", script}, {{"TEST_PG_DSN", db_.Dsn()}});
  auto written = [&] {
    if (!std::filesystem::exists(dir_.File("replica.db"))) return 0;
    Rows r = SqliteQuery(dir_.File("replica.db"),
                         "SELECT count(*) FROM sqlite_master WHERE name = 'big'");
    if (r.empty() || !r[0][0] || *r[0][0] != "1") return 0;
    r = SqliteQuery(dir_.File("replica.db"), "SELECT count(*) FROM big");
    return r.empty() || !r[0][0] ? 0 : std::stoi(*r[0][0]);
  };
  ASSERT_TRUE(WaitUntil([&] { return written() >= 1000; }, std::chrono::seconds(30))) << p.Stderr();
  p.Signal(SIGTERM);
  ProcessResult r = p.Wait(std::chrono::seconds(20));
  ASSERT_EQ(r.exit_code, 0) << Dump(r);
  const int rows = written();
  ASSERT_GT(rows, 0);
  ASSERT_LT(rows, 100000) << "the run ended before the signal";
  const std::string stopped = LineWith(r.err, "stopped after ");
  EXPECT_NE(stopped.find("stopped after " + std::to_string(rows) + " rows"), std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("big: " + std::to_string(rows) + " rows (stopped before catching up)"),
            std::string::npos)
      << r.err;
}

}  // namespace
}  // namespace siphon::test

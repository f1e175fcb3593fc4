// Fault (b): siphon's source connections killed on the server side (pg_terminate_backend,
// MariaDB KILL) while `siphon run` syncs, again and again. siphon retries with backoff,
// recovers, logs the failures, the script's handlers get `error` then `recovered` once each
// per outage, and the replicas end equal to the sources.
#include <signal.h>

#include <mysql.h>

#include <atomic>

#include "tests/integration/faults/fault_util.hpp"

namespace siphon::test {
namespace {

/// A MariaDB connection whose statement errors are returned, not failures: KILL races with
/// the thread ending on its own.
class MySession {
 public:
  MySession() : c_(mysql_init(nullptr)) {
    const ServerEnv& s = Servers();
    if (mysql_real_connect(c_, s.mysql_host.c_str(), s.mysql_user.c_str(), s.mysql_password.c_str(),
                           nullptr, static_cast<unsigned>(s.mysql_port), nullptr, 0) == nullptr) {
      ADD_FAILURE() << "mysql connect: " << mysql_error(c_);
    }
  }
  ~MySession() { mysql_close(c_); }
  MySession(const MySession&) = delete;
  MySession& operator=(const MySession&) = delete;
  /// "" on success, else the server's message.
  std::string Exec(const std::string& sql) {
    if (mysql_real_query(c_, sql.data(), sql.size()) != 0) return mysql_error(c_);
    if (MYSQL_RES* r = mysql_store_result(c_)) mysql_free_result(r);
    return "";
  }

 private:
  MYSQL* c_;
};

class ConnectionKillFaults : public FaultTest {
 protected:
  MyDb my_;
};

TEST_F(ConnectionKillFaults, KilledSourceSessionsAreRetriedAndNothingIsLost) {
  db_.Exec(R"sql(
    CREATE TABLE pk (id int8 PRIMARY KEY, v text NOT NULL, updated_at timestamptz NOT NULL);
    INSERT INTO pk SELECT g, md5(g::text), now() - interval '1 day' + g * interval '1 ms'
      FROM generate_series(1, 100000) g;
    CREATE INDEX ON pk (updated_at, id);
  )sql");
  my_.Exec(R"sql(
    CREATE TABLE mk (id BIGINT PRIMARY KEY, v VARCHAR(64) NOT NULL,
                     updated_at DATETIME(6) NOT NULL, KEY mk_sync (updated_at, id));
    INSERT INTO mk SELECT seq, MD5(seq), '2024-01-01' + INTERVAL seq * 1000 MICROSECOND
      FROM seq_1_to_100000;
  )sql");
  const ServerEnv& s = Servers();
  const std::string my_source = "local my = siphon.mysql { host = '" + s.mysql_host +
                                "', port = " + std::to_string(s.mysql_port) + ", user = '" +
                                s.mysql_user +
                                "', password = siphon.env('TEST_MYSQL_PW'), database = '" +
                                my_.name() + "', connect_timeout = 2 }\n";
  const std::string script = Script(R"(
siphon.replicate "pk" { source = pg, cursor = { "updated_at", "id" }, batch = 1000, every = "200ms" }
siphon.replicate "mk" { source = my, cursor = { "updated_at", "id" }, batch = 1000, every = "200ms" }
)",
                                    my_source + kEventHandlers);
  Process p(Argv("run", script), Env());

  // A writer keeps both tables growing, so there is always a run to interrupt.
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    PgSession pg(db_.Dsn());
    int64_t next = 100001;
    while (!stop) {
      pg.Exec("INSERT INTO pk SELECT g, md5(g::text), clock_timestamp() FROM generate_series(" +
              std::to_string(next) + ", " + std::to_string(next + 199) + ") g");
      next += 200;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  });

  const int kKillsPerSource = Soak() ? 15 : 6;
  int pg_kills = 0, my_kills = 0, pg_active = 0, my_active = 0;
  int64_t my_next = 100001;
  MySession killer;
  for (int i = 0; i < kKillsPerSource; ++i) {
    // PostgreSQL: wait (up to 2 s) to catch siphon's backend running a query, then end it.
    std::string pids;
    bool active = false;
    WaitUntil(
        [&] {
          pids = db_.Scalar(
              "SELECT coalesce(string_agg(pid::text, ','), '') || '|' || "
              "coalesce(bool_or(state = 'active'), false) FROM pg_stat_activity "
              "WHERE application_name = 'siphon' AND datname = current_database()");
          active = pids.size() > 2 && pids.substr(pids.size() - 4) == "true";
          return active;
        },
        std::chrono::seconds(2), std::chrono::milliseconds(2));
    const std::string killed = db_.Scalar(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = "
        "'siphon' AND datname = current_database()");
    if (killed != "0") {
      ++pg_kills;
      pg_active += active ? 1 : 0;
    }
    // MariaDB: siphon's threads on this database (not the test's own connection).
    my_.Exec("INSERT INTO mk SELECT seq, MD5(seq), NOW(6) FROM seq_" + std::to_string(my_next) +
             "_to_" + std::to_string(my_next + 4999));
    my_next += 5000;
    bool my_busy = false;
    Rows threads;
    WaitUntil(
        [&] {
          threads =
              my_.Query("SELECT ID, COMMAND FROM information_schema.PROCESSLIST WHERE USER = '" +
                        s.mysql_user + "' AND DB = '" + my_.name() + "' AND ID <> CONNECTION_ID()");
          for (const Row& t : threads) my_busy = my_busy || (t[1] && *t[1] == "Query");
          return my_busy;
        },
        std::chrono::seconds(2), std::chrono::milliseconds(2));
    bool any = false;
    for (const Row& t : threads) {
      // The thread may have ended since it was listed: "Unknown thread id" is no failure.
      if (t[0] && killer.Exec("KILL " + *t[0]).empty()) any = true;
    }
    if (any) {
      ++my_kills;
      my_active += my_busy ? 1 : 0;
    }
    // Let it recover before the next outage (backoff 1 s, doubling while runs keep failing).
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    ASSERT_TRUE(p.Running()) << p.Stderr();
  }
  stop = true;
  writer.join();

  // Catch up: both replicas reach the sources' counts.
  const int64_t pg_rows = std::stoll(db_.Scalar("SELECT count(*) FROM pk"));
  const int64_t my_rows = std::stoll(my_.Scalar("SELECT COUNT(*) FROM mk"));
  EXPECT_TRUE(WaitUntil(
      [&] {
        return TargetCount(Replica(), "pk") == pg_rows && TargetCount(Replica(), "mk") == my_rows;
      },
      std::chrono::seconds(90), std::chrono::milliseconds(200)))
      << TargetCount(Replica(), "pk") << "/" << pg_rows << " " << TargetCount(Replica(), "mk")
      << "/" << my_rows << "\n"
      << p.Stderr().substr(p.Stderr().size() > 6000 ? p.Stderr().size() - 6000 : 0);
  p.Signal(SIGTERM);
  ProcessResult r = p.Wait(std::chrono::seconds(30));
  EXPECT_EQ(r.exit_code, 0) << Dump(r);
  EXPECT_EQ(Target("PRAGMA integrity_check"), "ok");
  EXPECT_GE(pg_kills, kKillsPerSource - 1);
  EXPECT_GE(my_kills, kKillsPerSource - 1);
  // Failures and recoveries are visible: error rows in the audit log, "recovered" in the log.
  EXPECT_GE(std::stoi(Target("SELECT count(*) FROM _siphon_log WHERE table_name = 'pk' AND "
                             "event = 'error'")),
            1);
  EXPECT_GE(std::stoi(Target("SELECT count(*) FROM _siphon_log WHERE table_name = 'mk' AND "
                             "event = 'error'")),
            1);
  EXPECT_NE(r.err.find("recovered"), std::string::npos) << Dump(r);
  // The script's own handlers saw each outage as `error` then `recovered`, once each: a
  // killed session costs one failed run, so no more errors than kills.
  int outages = 0;
  for (const auto& [table, kills] : {std::pair{"pk", pg_kills}, std::pair{"mk", my_kills}}) {
    Outages o = ReadOutages(r.err, table);
    EXPECT_EQ(o.problem, "") << table << "\n" << Dump(r);
    EXPECT_GE(o.outages, 1) << table;
    EXPECT_LE(o.errors, kills) << table << ": more error events than kills";
    outages += o.outages;
  }

  TableDiff pd =
      ComparePg("pk", "id::text, v, " + PgTs("updated_at"), "id, v, " + TargetTs("updated_at"));
  Rows ms = my_.Query(
      "SELECT id, v, DATE_FORMAT(updated_at, '%Y-%m-%dT%H:%i:%s.%f') FROM mk ORDER BY id");
  Rows mt = SqliteQuery(Replica(),
                        "SELECT id, v, CASE WHEN instr(updated_at, '.') = 0 THEN updated_at || "
                        "'.000000' ELSE updated_at END FROM mk ORDER BY id");
  TableDiff md = CompareRows(ms, mt);
  EXPECT_EQ(md.mismatches, 0) << md.first;
  Summary("connection_kill", 1, pg_kills + my_kills, pd.source_rows + md.source_rows,
          pd.mismatches + md.mismatches,
          "active_kills=" + std::to_string(pg_active + my_active) +
              " outages=" + std::to_string(outages));
}

// A source session that stops answering (the backend frozen with SIGSTOP: a hung server or a
// network black hole looks the same from here) costs one failed run after `read_timeout`,
// not a run that hangs until the kernel gives up on the socket hours later.
TEST_F(ConnectionKillFaults, AFrozenSourceSessionTimesOutAndTheTableGoesOn) {
  db_.Exec(R"sql(
    CREATE TABLE fz (id int8 PRIMARY KEY, v text NOT NULL);
    INSERT INTO fz SELECT g, 'v' || g FROM generate_series(1, 10) g;
  )sql");
  const std::string script = Script(
      R"(siphon.replicate "fz" { source = frozen, cursor = "id", every = "300ms" })",
      "local frozen = siphon.postgres { dsn = siphon.env(\"TEST_PG_DSN\"), read_timeout = 2, "
      "application_name = \"siphon_frozen\" }\n");
  Process p(Argv("run", script), Env());
  ASSERT_TRUE(p.WaitForOutput("synced 10 rows")) << p.Stderr();
  const std::string pid = db_.Scalar(
      "SELECT pid FROM pg_stat_activity WHERE application_name = 'siphon_frozen' AND datname = "
      "current_database()");
  ASSERT_FALSE(pid.empty());
  ASSERT_EQ(kill(std::stoi(pid), SIGSTOP), 0);
  struct Thaw {
    int pid;
    ~Thaw() { kill(pid, SIGCONT); }
  } thaw{std::stoi(pid)};
  db_.Exec("INSERT INTO fz VALUES (11, 'after')");
  EXPECT_TRUE(WaitUntil([&] { return Target("SELECT count(*) FROM fz") == "11"; },
                        std::chrono::seconds(20)))
      << p.Stderr();
  EXPECT_NE(p.Stderr().find("no answer from postgres for 2 s (read_timeout)"), std::string::npos)
      << p.Stderr();
  p.Signal(SIGTERM);
  EXPECT_EQ(p.Wait(std::chrono::seconds(10)).exit_code, 0) << p.Stderr();
}

}  // namespace
}  // namespace siphon::test

// A PostgreSQL server that speaks another language (`lc_messages`): its refusals of a login
// are German text, which siphon read as English to tell a wrong password (given up at once)
// from a server that cannot be reached (retried). The server's SQLSTATE decides instead.
// The language is the server's own setting, changed with ALTER SYSTEM and a reload, so the
// test runs alone like every fault test. It needs the de_DE.UTF-8 locale (scripts/setup.sh
// makes it).
#include "tests/integration/faults/fault_util.hpp"

namespace siphon::test {
namespace {

class ServerLanguageFaults : public FaultTest {
 protected:
  // Sets the server's lc_messages and reloads it; the destructor of the returned guard puts
  // the default back.
  struct Language {
    PgDb& db;
    ~Language() {
      db.Exec("ALTER SYSTEM RESET lc_messages");
      db.Exec("SELECT pg_reload_conf()");
    }
  };
  Language Speak(const std::string& locale) {
    db_.Exec("ALTER SYSTEM SET lc_messages = '" + locale + "'");
    db_.Exec("SELECT pg_reload_conf()");
    return Language{db_};
  }

  // db_'s dsn with `key` set to `value` (replacing its own).
  std::string DsnWith(const std::string& key, const std::string& value) {
    std::istringstream in(db_.Dsn());
    std::string out, word;
    while (in >> word) {
      if (word.rfind(key + "=", 0) != 0) out += word + " ";
    }
    return out + key + "=" + value;
  }

  ProcessResult OnceWithDsn(const std::string& dsn) {
    const std::string script = Script("siphon.replicate \"t\" { source = pg }\n");
    auto env = Env();
    env["TEST_PG_DSN"] = dsn;
    return siphon::test::Run(Argv("once", script), env);
  }
};

TEST_F(ServerLanguageFaults, AGermanServersRefusalsAreToldApartByTheirSqlState) {
  db_.Exec("CREATE TABLE t (id int PRIMARY KEY)");
  auto german = Speak("de_DE.UTF-8");
  // Sessions take the reload up between statements.
  ASSERT_TRUE(WaitUntil(
      [&] { return db_.Scalar("SELECT current_setting('lc_messages')") == "de_DE.UTF-8"; },
      std::chrono::seconds(10)))
      << "the server did not take lc_messages = de_DE.UTF-8 (is the locale made? "
         "scripts/setup.sh makes it)";

  // A wrong password: given up at once (no retry), the server's words kept.
  ProcessResult r = OnceWithDsn(DsnWith("password", "not-the-password"));
  EXPECT_EQ(r.exit_code, 1) << Dump(r);
  EXPECT_NE(r.err.find("Passwort-Authentifizierung"), std::string::npos) << Dump(r);
  EXPECT_NE(r.err.find("(SQLSTATE 28P01)"), std::string::npos) << Dump(r);
  EXPECT_EQ(r.err.find("retrying in"), std::string::npos) << Dump(r);
  EXPECT_EQ(r.err.find("LOCATION"), std::string::npos) << Dump(r);
  EXPECT_EQ(r.err.find("not-the-password"), std::string::npos) << Dump(r);

  // A database that does not exist: a mistake in the script, exit 2, not retried either.
  r = OnceWithDsn(DsnWith("dbname", "h_no_such_database"));
  EXPECT_EQ(r.exit_code, 2) << Dump(r);
  EXPECT_NE(r.err.find("h_no_such_database"), std::string::npos) << Dump(r);
  EXPECT_NE(r.err.find("(SQLSTATE 3D000)"), std::string::npos) << Dump(r);
  EXPECT_EQ(r.err.find("retrying in"), std::string::npos) << Dump(r);

  // The right password still replicates (the server's language changes no value).
  r = OnceWithDsn(db_.Dsn());
  EXPECT_EQ(r.exit_code, 0) << Dump(r);
}

}  // namespace
}  // namespace siphon::test

#pragma once

// Shared pieces of the fault-injection suite (issue 8): a fixture with a fresh PostgreSQL
// database, a replica in a temporary folder and the script writer; the whole-table
// comparison every scenario ends with; the one-line summary scripts/faults.sh collects.

#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/integration/harness/harness.hpp"

namespace siphon::test {

/// True when the suite runs long (`scripts/faults.sh --soak`).
inline bool Soak() {
  const char* v = std::getenv("SIPHON_SOAK");
  return v != nullptr && std::string(v) == "1";
}

/// What a whole-table comparison found.
struct TableDiff {
  int64_t source_rows = 0;
  int64_t target_rows = 0;
  int64_t mismatches = 0;  ///< keys missing on either side plus rows whose values differ
  std::string first;       ///< the first mismatch in key order, "" when equal
};

inline std::string RowText(const Row& row) {
  std::string out = "(";
  for (size_t i = 0; i < row.size(); ++i) {
    if (i > 0) out += ", ";
    if (!row[i]) {
      out += "NULL";
    } else if (row[i]->size() > 80) {
      out += "'" + row[i]->substr(0, 80) + "…' (" + std::to_string(row[i]->size()) + " bytes)";
    } else {
      out += "'" + *row[i] + "'";
    }
  }
  return out + ")";
}

/// Compares two result sets of one table, both ORDER BY the key (column 0) and with every
/// value as text, row by row: a key on one side only is one mismatch, a key on both sides
/// with any differing value is one mismatch.
inline TableDiff CompareRows(const Rows& source, const Rows& target) {
  TableDiff d;
  d.source_rows = static_cast<int64_t>(source.size());
  d.target_rows = static_cast<int64_t>(target.size());
  std::map<std::string, const Row*> by_key;
  for (const Row& r : target) by_key[r.empty() || !r[0] ? "" : *r[0]] = &r;
  auto note = [&d](const std::string& what) {
    if (d.mismatches++ == 0) d.first = what;
  };
  for (const Row& s : source) {
    const std::string key = s.empty() || !s[0] ? "" : *s[0];
    auto it = by_key.find(key);
    if (it == by_key.end()) {
      note("key " + key + " missing in the target; source " + RowText(s));
      continue;
    }
    if (*it->second != s) {
      note("key " + key + " differs: source " + RowText(s) + ", target " + RowText(*it->second));
    }
    by_key.erase(it);
  }
  for (const auto& [key, row] : by_key)
    note("key " + key + " only in the target: " + RowText(*row));
  return d;
}

/// The target's text of a `timestamptz` column, normalised to six fraction digits (siphon
/// writes no fraction for whole seconds), comparable with PgTs.
inline std::string TargetTs(const std::string& col) {
  return "CASE WHEN instr(" + col + ", '.') = 0 THEN substr(" + col +
         ", 1, 19) || '.000000Z' ELSE " + col + " END";
}
/// PostgreSQL's text of a `timestamptz` column in the same form as TargetTs.
inline std::string PgTs(const std::string& col) {
  return "to_char(" + col + " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')";
}

/// The one line scripts/faults.sh collects (stdout), with optional extra `key=value` fields.
inline void Summary(const std::string& scenario, int runs, int faults, int64_t rows,
                    int64_t mismatches, const std::string& extra = "") {
  std::ostringstream line;
  line << "FAULTS scenario=" << scenario << " runs=" << runs << " faults=" << faults
       << " rows=" << rows << " mismatches=" << mismatches;
  if (!extra.empty()) line << " " << extra;
  std::cout << line.str() << std::endl;
}

inline std::string TargetScalar(const std::string& db, const std::string& sql) {
  Rows r = SqliteQuery(db, sql);
  return r.empty() || r[0].empty() || !r[0][0] ? "" : *r[0][0];
}

/// Rows in a target table; 0 while siphon has not created the file or the table yet.
inline int64_t TargetCount(const std::string& db, const std::string& table) {
  if (!std::filesystem::exists(db)) return 0;
  // (SQLite resolves every table of a statement when preparing it: ask first, then count.)
  if (TargetScalar(db, "SELECT count(*) FROM sqlite_master WHERE name = '" + table + "'") != "1") {
    return 0;
  }
  return std::stoll(TargetScalar(db, "SELECT count(*) FROM \"" + table + "\""));
}

/// CPU seconds (user + system) a process has used, from /proc/PID/stat; -1 when gone.
inline double CpuSeconds(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  size_t close = text.rfind(')');  // the command name may hold spaces
  if (close == std::string::npos) return -1;
  std::istringstream fields(text.substr(close + 2));
  std::string f;
  long long utime = 0, stime = 0;
  // Fields after the name start at 3 (state); utime and stime are fields 14 and 15.
  for (int i = 3; i <= 15 && fields >> f; ++i) {
    if (i == 14) utime = std::stoll(f);
    if (i == 15) stime = std::stoll(f);
  }
  return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

/// A libpq connection of a test thread (the harness's PgDb is for the test's own thread).
class PgSession {
 public:
  explicit PgSession(const std::string& dsn) : c_(PQconnectdb(dsn.c_str())) {
    if (PQstatus(c_) != CONNECTION_OK) ADD_FAILURE() << "connect: " << PQerrorMessage(c_);
  }
  ~PgSession() { PQfinish(c_); }
  PgSession(const PgSession&) = delete;
  PgSession& operator=(const PgSession&) = delete;

  /// Runs the statement(s); the first value of the first row ("" when none). Failures are
  /// test failures.
  std::string Exec(const std::string& sql) {
    PGresult* r = PQexec(c_, sql.c_str());
    std::string out;
    const auto st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
      ADD_FAILURE() << sql.substr(0, 200) << ": " << PQerrorMessage(c_);
    } else if (st == PGRES_TUPLES_OK && PQntuples(r) > 0 && !PQgetisnull(r, 0, 0)) {
      out = PQgetvalue(r, 0, 0);
    }
    PQclear(r);
    return out;
  }

 private:
  PGconn* c_;
};

/// The percentile (0..100) of a list of values; 0 when empty.
inline double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(p / 100.0 * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

inline std::string Dump(const ProcessResult& r) {
  return "exit " + std::to_string(r.exit_code) + " signal " + std::to_string(r.term_signal) +
         "\nstdout:\n" + r.out.substr(0, 4000) + "\nstderr:\n" +
         r.err.substr(r.err.size() > 8000 ? r.err.size() - 8000 : 0);
}

/// Lua handlers for a deployment script: every `error` and `recovered` event, of every
/// table, becomes one stderr line "EVENT <name> <table> <attempt>" (read by Outages below).
inline const char* kEventHandlers = R"(
for _, name in ipairs { "error", "recovered" } do
  siphon.on(name, function(ev) siphon.log.warn("EVENT %s %s %d", ev.event, ev.table, ev.attempt) end)
end
)";

/// The outages of one table, read from the events its script's handlers logged
/// (kEventHandlers). An outage is one or more `error` events, attempts 1, 2, ... n (one per
/// failed run, DESIGN §6), then exactly one `recovered` with attempt n. `problem` names the
/// first event out of that order ("" when every outage is well formed and recovered).
struct Outages {
  int outages = 0;  ///< recovered outages
  int errors = 0;   ///< `error` events in all
  std::string problem;
};

inline Outages ReadOutages(const std::string& err, const std::string& table) {
  Outages o;
  int attempt = 0;  // failed runs so far in the current outage
  std::istringstream lines(err);
  std::string line;
  int n = 0;
  auto bad = [&](const std::string& why) {
    if (o.problem.empty()) o.problem = "event " + std::to_string(n) + " (" + line + "): " + why;
  };
  while (std::getline(lines, line)) {
    size_t at = line.find("EVENT ");
    if (at == std::string::npos) continue;
    std::istringstream f(line.substr(at + 6));
    std::string name, t;
    int ev_attempt = -1;
    f >> name >> t >> ev_attempt;
    if (t != table) continue;
    ++n;
    if (name == "error") {
      ++o.errors;
      if (ev_attempt != attempt + 1) {
        bad("error with attempt " + std::to_string(ev_attempt) + ", expected " +
            std::to_string(attempt + 1));
      }
      attempt = ev_attempt;
    } else if (name == "recovered") {
      if (attempt == 0) bad("recovered without an error before it");
      if (ev_attempt != attempt) bad("recovered after " + std::to_string(ev_attempt) + " attempts");
      ++o.outages;
      attempt = 0;
    }
  }
  line = "(end of the log)";
  if (attempt != 0) bad("the last outage has no recovered event");
  return o;
}

/// A fresh PostgreSQL database and a replica folder, and the deployment script to match.
class FaultTest : public ::testing::Test {
 protected:
  /// Writes deploy.lua replicating from db_ (as `pg`) into Replica(); `tables` are the
  /// siphon.replicate declarations, `extra` goes before them (more sources).
  std::string Script(const std::string& tables, const std::string& extra = "") {
    std::string path = dir_.File("deploy.lua");
    WriteFile(path,
              "local pg = siphon.postgres { dsn = siphon.env(\"TEST_PG_DSN\"), connect_timeout = "
              "2 }\nsiphon.target { path = \"" +
                  Replica() + "\" }\n" + extra + tables);
    return path;
  }
  virtual std::string Replica() const { return dir_.File("replica.db"); }
  std::map<std::string, std::string> Env() const {
    return {{"TEST_PG_DSN", db_.Dsn()}, {"TEST_MYSQL_PW", Servers().mysql_password}};
  }
  std::vector<std::string> Argv(const std::string& cmd, const std::string& script) const {
    return {SIPHON_BIN, cmd, script};
  }
  ProcessResult Once(const std::string& script) {
    return siphon::test::Run(Argv("once", script), Env());
  }
  std::string Target(const std::string& sql) { return TargetScalar(Replica(), sql); }

  /// Compares a PostgreSQL table with its replica: `source_cols` and `target_cols` are the
  /// select lists (key first) giving equal text on both sides; `table` is the name on both
  /// sides (quoted for each).
  TableDiff ComparePg(const std::string& table, const std::string& source_cols,
                      const std::string& target_cols) {
    Rows s = db_.Query("SELECT " + source_cols + " FROM \"" + table + "\" ORDER BY 1");
    Rows t = SqliteQuery(Replica(), "SELECT " + target_cols + " FROM \"" + table + "\" ORDER BY 1");
    TableDiff d = CompareRows(s, t);
    EXPECT_EQ(d.mismatches, 0) << table << ": " << d.mismatches
                               << " mismatches, first: " << d.first;
    EXPECT_EQ(d.source_rows, d.target_rows) << table;
    return d;
  }

  PgDb db_;
  TempDir dir_;
};

}  // namespace siphon::test

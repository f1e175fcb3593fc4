#include "runtime/target/target.hpp"

#include <strings.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <map>
#include <set>
#include <string_view>
#include <unordered_set>

#include <sqlite3.h>

#include "runtime/base/log.hpp"
#include "runtime/base/sqlite_value.hpp"

namespace siphon {
namespace {

std::string Quote(std::string_view ident) {
  std::string out = "\"";
  for (char c : ident) {
    if (c == '"') out += '"';
    out += c;
  }
  out += '"';
  return out;
}

Status SqliteError(sqlite3* db, std::string_view what) {
  return Status(ErrorKind::kTarget, std::string(what) + ": " + sqlite3_errmsg(db) + " (" +
                                        sqlite3_errstr(sqlite3_extended_errcode(db)) + ")");
}

/// A prepared statement freed with its owner.
struct Stmt {
  sqlite3_stmt* s = nullptr;
  Stmt() = default;
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  ~Stmt() { sqlite3_finalize(s); }
};

// Rows per multi-row upsert statement, and SQLite's default limit on parameters
// (SQLITE_MAX_VARIABLE_NUMBER since 3.32).
constexpr size_t kRowsPerUpsert = 32;
constexpr size_t kMaxParameters = 32766;

constexpr const char* kStateSchema = R"sql(
CREATE TABLE IF NOT EXISTS _siphon_state (
  table_name      TEXT PRIMARY KEY,
  cursor          TEXT,
  rows_total      INTEGER NOT NULL DEFAULT 0,
  last_sync_at    TEXT,
  last_success_at TEXT,
  last_error      TEXT,
  schema_hash     TEXT,
  status          TEXT,
  source          TEXT,
  source_table    TEXT,
  schema_json     TEXT,
  full_pass       INTEGER NOT NULL DEFAULT 0,
  resync_pass     INTEGER,
  reconciled_at   TEXT,
  cursor_columns  TEXT,
  key_index       TEXT
);
CREATE TABLE IF NOT EXISTS _siphon_log (
  id          INTEGER PRIMARY KEY,
  at          TEXT NOT NULL,
  table_name  TEXT NOT NULL,
  event       TEXT NOT NULL,
  rows        INTEGER NOT NULL DEFAULT 0,
  deleted     INTEGER NOT NULL DEFAULT 0,
  duration_ms INTEGER NOT NULL DEFAULT 0,
  error       TEXT
);
CREATE INDEX IF NOT EXISTS _siphon_log_table ON _siphon_log(table_name, id);
CREATE TABLE IF NOT EXISTS _siphon_rejects (
  id         INTEGER PRIMARY KEY,
  at         TEXT NOT NULL,
  table_name TEXT NOT NULL,
  row_json   TEXT,
  error      TEXT
);
)sql";

/// "a", "b" for the key {a, b}: a PRIMARY KEY's or a row value's column list.
std::string KeyTuple(const std::vector<std::string>& key) {
  std::string out;
  for (size_t i = 0; i < key.size(); ++i) out += (i ? ", " : "") + Quote(key[i]);
  return out;
}

/// A column of CREATE TABLE: its name and declared type (none for a column without one).
std::string ColumnDefinition(const std::string& name, const std::string& type) {
  return Quote(name) + (type.empty() ? "" : " " + type);
}

/// Whether a CREATE TABLE declares what siphon never does (CHECK, UNIQUE, COLLATE, REFERENCES,
/// WITHOUT ROWID). Its words only: names and strings are skipped, so a table unique_codes or a
/// column "checksum" declares nothing.
bool DeclaresConstraints(const std::string& create) {
  static const char* const kWords[] = {"CHECK", "UNIQUE", "COLLATE", "REFERENCES", "WITHOUT"};
  auto word_char = [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || (c & 0x80) != 0;
  };
  size_t i = 0;
  while (i < create.size()) {
    const char c = create[i];
    if (c == '"' || c == '\'' || c == '`' || c == '[') {
      // A quoted name or a string: up to its closing quote ("" inside is one quote).
      const char close = c == '[' ? ']' : c;
      for (++i; i < create.size(); ++i) {
        if (create[i] != close) continue;
        if (close != ']' && i + 1 < create.size() && create[i + 1] == close) {
          ++i;
          continue;
        }
        break;
      }
      ++i;
    } else if (c == '-' && create.compare(i, 2, "--") == 0) {
      i = create.find('\n', i);
    } else if (c == '/' && create.compare(i, 2, "/*") == 0) {
      i = create.find("*/", i + 2);
      if (i != std::string::npos) i += 2;
    } else if (word_char(c)) {
      const size_t start = i;
      while (i < create.size() && word_char(create[i])) ++i;
      const std::string word = create.substr(start, i - start);
      for (const char* constraint : kWords) {
        if (strcasecmp(word.c_str(), constraint) == 0) return true;
      }
    } else {
      ++i;
    }
  }
  return false;
}

/// The number of rows of a table; -1 when it cannot be counted.
int64_t CountRows(sqlite3* db, const std::string& table) {
  Stmt q;
  const std::string sql = "SELECT count(*) FROM " + Quote(table);
  if (sqlite3_prepare_v2(db, sql.c_str(), -1, &q.s, nullptr) != SQLITE_OK ||
      sqlite3_step(q.s) != SQLITE_ROW) {
    return -1;
  }
  return sqlite3_column_int64(q.s, 0);
}
}  // namespace

std::string NowIso() {
  auto now = std::chrono::system_clock::now();
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
  std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[64];
  snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
           tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms % 1000));
  return buf;
}

namespace {

// " WHERE (k…) > (?…) AND (k…) <= (?…)" for a range; its values are appended to `params`.
std::string RangeWhere(const std::vector<std::string>& key, const KeyRange& range,
                       std::vector<CursorValue>& params) {
  const std::string tuple = "(" + KeyTuple(key) + ")";
  auto placeholders = [&params](const Cursor& values) {
    std::string out = "(";
    for (size_t i = 0; i < values.size(); ++i) {
      params.push_back(values[i]);
      out += (i ? ", ?" : "?") + std::to_string(params.size());
    }
    return out + ")";
  };
  std::string where;
  if (range.after) where = " WHERE " + tuple + " > " + placeholders(*range.after);
  if (range.upto) {
    where += (where.empty() ? " WHERE " : " AND ") + tuple + " <= " + placeholders(*range.upto);
  }
  return where;
}

}  // namespace

struct Target::Table {
  TargetTable spec;
  Stmt upsert;
  Stmt upsert_many;      // the same upsert for kRowsPerUpsert rows at once
  size_t many_rows = 0;  // rows per upsert_many (0: not prepared)
  Stmt fill, fill_many;  // append tables: the upserts that fill a held row's NULL columns
  Stmt save_cursor;
  Stmt sweep;                   // pass marks only: DELETE … WHERE the mark is another pass's
  Stmt any_row;                 // SELECT 1 FROM the table LIMIT 1 (pass marks only)
  int64_t empty_at_pass = -1;   // a pass that started on an empty table: nothing to sweep
  Stmt delete_key;              // soft deletes, key range sweeps: DELETE … WHERE key = ?
  Stmt range_keys[4];           // key range sweeps: the keys after ?, through ?, both, neither
  bool range_sweep = false;     // spec.key_range_sweep, unless the key's declared types refuse
  int soft_index = -1;          // the soft delete column in each page
  std::vector<int> key_index;   // the key columns in each page (none: a table without a key)
  int64_t schema_version = -1;  // the file's schema_version when these were prepared
  int commits_this_run = 0;     // pages committed since the table's last run record
};

// RecordRun runs after every run of every table (100 tables on 1 s intervals: 100 a second),
// so its statements are compiled once, not parsed on each call, and the records of
// kRecordBatchMs share one transaction.
struct Target::Recorder {
  Stmt begin, state, reconciled, log, trim, commit;
  int64_t logged = 0;  // rows logged since the last trim
};

Target::Target(uv_loop_t* loop, std::string path) : loop_(loop), path_(std::move(path)) {}

Target::~Target() {
  if (reader_) {
    reader_->RunSync([this] {
      sqlite3_close_v2(reader_db_);
      reader_db_ = nullptr;
    });
    reader_.reset();
  }
  FlushRecords();  // no run's record is lost at shutdown
  if (record_timer_ != nullptr) {
    record_timer_->data = nullptr;
    uv_close(reinterpret_cast<uv_handle_t*>(record_timer_),
             [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
  }
  writer_.reset();  // finishes posted writes
  tables_.clear();
  recorder_.reset();
  if (db_) sqlite3_close_v2(db_);
}

int Target::OnWalCommit(void* self, sqlite3* /*db*/, const char* /*schema*/, int frames) {
  auto* target = static_cast<Target*>(self);
  target->wal_frames_ = frames;
  if (frames >= target->wal_max_frames_) target->Checkpoint();
  return SQLITE_OK;
}

void Target::Checkpoint() {
  // PASSIVE: readers are never waited for; what they still read stays in the WAL until the
  // next checkpoint. Failing one only leaves the WAL longer, so it is not an error.
  int log = 0, done = 0;
  if (sqlite3_wal_checkpoint_v2(db_, "main", SQLITE_CHECKPOINT_PASSIVE, &log, &done) == SQLITE_OK &&
      log == done) {
    wal_frames_ = 0;
  }
}

Status Target::CheckFileOnWriter() const {
  if (!file_id_) return Status::Ok();
  const std::optional<FileId> now = FileIdOf(path_);
  if (now == file_id_) return Status::Ok();
  const bool gone = !now;
  return Status(ErrorKind::kTarget,
                "the target file " + path_ +
                    (gone ? " was deleted" : " was replaced by another file") +
                    " while siphon ran: what siphon writes would not reach it (restart siphon to "
                    "write the file now at that path)");
}

Status Target::ExecOnWriter(const std::string& sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : "unknown error";
    sqlite3_free(err);
    return Status(ErrorKind::kTarget, msg + " (in: " + sql.substr(0, 200) + ")");
  }
  return Status::Ok();
}

std::string ReadOnlyTargetReason() {
  return "the file is read-only to this user (siphon writes it, and creates its -wal and -shm "
         "files beside it: give the user write access to the file and its folder)";
}

std::string TargetFolderHint(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::exists(path, ec)) return "";
  std::filesystem::path folder = std::filesystem::path(path).parent_path();
  if (folder.empty()) folder = ".";
  if (!std::filesystem::is_directory(folder, ec)) {
    return " (the folder " + folder.string() + " does not exist)";
  }
  if (access(folder.c_str(), W_OK | X_OK) != 0) {
    return " (this user may not create files in " + folder.string() + ")";
  }
  return "";
}

Status Target::Open() {
  int rc =
      sqlite3_open_v2(path_.c_str(), &db_,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  // SQLite opens a file it may not write read-only, without an error: the first write would
  // fail with "attempt to write a readonly database", naming no file.
  const bool read_only = rc == SQLITE_OK && sqlite3_db_readonly(db_, "main") == 1;
  if (rc != SQLITE_OK || read_only) {
    Status st =
        Status(ErrorKind::kTarget, "cannot open target " + path_ + ": " +
                                       (read_only ? ReadOnlyTargetReason()
                                        : db_     ? sqlite3_errmsg(db_)
                                                  : sqlite3_errstr(rc)) +
                                       (rc == SQLITE_CANTOPEN ? TargetFolderHint(path_) : ""));
    sqlite3_close_v2(db_);
    db_ = nullptr;
    return st;
  }
  file_id_ = FileIdOf(path_);
  // Readers never block the writer in WAL, and the writer waits (not fails) for a moment when
  // another process holds the write lock. NORMAL loses at most the last commits on power loss,
  // never consistency, and the cursor rolls back with its page. The page cache stays at 2 MiB:
  // the kernel caches the file anyway, and every page a bigger cache adds is a fresh
  // allocation and a page fault (64 MiB cost a 1M-row sync 0.4 s of CPU and 65 MB of RSS).
  sqlite3_busy_timeout(db_, 10000);
  for (const char* pragma :
       {"PRAGMA journal_mode=WAL", "PRAGMA synchronous=NORMAL", "PRAGMA temp_store=MEMORY",
        "PRAGMA cache_size=-2048", "PRAGMA foreign_keys=OFF"}) {
    if (Status st = ExecOnWriter(pragma); !st.ok()) return st.WithContext(path_);
  }
  // SQLite would copy the WAL into the file (and sync both) inside whichever commit passes
  // 1000 frames, so a short run's pages waited for checkpoints. siphon checkpoints after a
  // run's record instead (WriteRecordsOnWriter) and after the later pages of a long run
  // (WriteOnWriter); any commit checkpoints once the WAL holds kWalMaxBytes.
  {
    Stmt q;
    if (sqlite3_prepare_v2(db_, "PRAGMA page_size", -1, &q.s, nullptr) == SQLITE_OK &&
        sqlite3_step(q.s) == SQLITE_ROW && sqlite3_column_int64(q.s, 0) > 0) {
      wal_max_frames_ = static_cast<int>(kWalMaxBytes / sqlite3_column_int64(q.s, 0));
    }
  }
  sqlite3_wal_hook(db_, &Target::OnWalCommit, this);
  sqlite3_set_authorizer(db_, &Target::DenyOtherFiles, &confine_);
  // A WAL that a big run grew is cut back when it starts over, not kept at its largest.
  if (Status st = ExecOnWriter("PRAGMA journal_size_limit=" + std::to_string(kWalKeepBytes));
      !st.ok()) {
    return st.WithContext(path_);
  }
  if (Status st = ExecOnWriter(kStateSchema); !st.ok()) return st.WithContext(path_);
  // Files written by an older siphon gain the state columns added since.
  static const std::pair<const char*, const char*> kAdded[] = {
      {"_siphon_state", "schema_json TEXT"},
      {"_siphon_state", "full_pass INTEGER NOT NULL DEFAULT 0"},
      {"_siphon_state", "resync_pass INTEGER"},
      {"_siphon_state", "reconciled_at TEXT"},
      {"_siphon_state", "cursor_columns TEXT"},
      {"_siphon_state", "key_index TEXT"},
      {"_siphon_log", "deleted INTEGER NOT NULL DEFAULT 0"}};
  for (const auto& [table, add] : kAdded) {
    std::string column(add, strchr(add, ' '));
    Stmt probe;
    std::string sql = std::string("SELECT 1 FROM pragma_table_info('") + table +
                      "') WHERE name = '" + column + "'";
    sqlite3_prepare_v2(db_, sql.c_str(), -1, &probe.s, nullptr);
    if (sqlite3_step(probe.s) == SQLITE_ROW) continue;
    if (Status st = ExecOnWriter(std::string("ALTER TABLE ") + table + " ADD COLUMN " + add);
        !st.ok()) {
      return st.WithContext(path_);
    }
  }
  // From here on the connection belongs to the writer thread.
  writer_ = std::make_unique<WorkerThread>(loop_);
  return Status::Ok();
}

namespace {

// The key `table` was last prepared with, as `db` holds it (ReadStoredKey).
Result<StoredKey> StoredKeyIn(sqlite3* db, const std::string& table) {
  StoredKey key;
  {
    Stmt q;
    if (sqlite3_prepare_v2(db, "SELECT key_index FROM _siphon_state WHERE table_name = ?1", -1,
                           &q.s, nullptr) != SQLITE_OK) {
      return SqliteError(db, "reading the state row of " + table);
    }
    sqlite3_bind_text(q.s, 1, table.c_str(), -1, SQLITE_TRANSIENT);
    const int rc = sqlite3_step(q.s);
    if (rc == SQLITE_ROW) {
      if (const unsigned char* v = sqlite3_column_text(q.s, 0)) {
        key.index = reinterpret_cast<const char*>(v);
      }
    } else if (rc != SQLITE_DONE) {
      return SqliteError(db, "reading the state row of " + table);
    }
  }
  Stmt info;
  if (sqlite3_prepare_v2(db, "SELECT name FROM pragma_table_info(?1) WHERE pk > 0 ORDER BY pk", -1,
                         &info.s, nullptr) != SQLITE_OK) {
    return SqliteError(db, "reading table_info of " + table);
  }
  sqlite3_bind_text(info.s, 1, table.c_str(), -1, SQLITE_TRANSIENT);
  while (sqlite3_step(info.s) == SQLITE_ROW) {
    key.columns.emplace_back(reinterpret_cast<const char*>(sqlite3_column_text(info.s, 0)));
  }
  return key;
}

}  // namespace

void Target::ReadStoredKey(const std::string& table, std::function<void(Result<StoredKey>)> done) {
  auto result = std::make_shared<Result<StoredKey>>(StoredKey{});
  writer_->Post([this, table, result] { *result = StoredKeyIn(db_, table); },
                [done = std::move(done), result] { done(std::move(*result)); });
}

int OpenReplicaToRead(const std::string& path, sqlite3** db) {
  const int rc = sqlite3_open_v2(path.c_str(), db, SQLITE_OPEN_READWRITE, nullptr);
  if (rc != SQLITE_OK) return rc;
  sqlite3_busy_timeout(*db, 5000);
  return sqlite3_exec(*db, "PRAGMA query_only = 1", nullptr, nullptr, nullptr);
}

Result<StoredKey> ReadStoredKeyReadOnly(const std::string& path, const std::string& table) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) return StoredKey{};
  sqlite3* db = nullptr;
  if (OpenReplicaToRead(path, &db) != SQLITE_OK) {
    Status st = SqliteError(db, "cannot open target " + path);
    sqlite3_close_v2(db);
    return st;
  }
  // A file siphon never wrote (no state table) holds no key.
  bool replica = false;
  {
    Stmt state;
    replica = sqlite3_prepare_v2(db, "SELECT 1 FROM sqlite_master WHERE name = '_siphon_state'", -1,
                                 &state.s, nullptr) == SQLITE_OK &&
              sqlite3_step(state.s) == SQLITE_ROW;
  }
  Result<StoredKey> key = replica ? StoredKeyIn(db, table) : Result<StoredKey>(StoredKey{});
  sqlite3_close_v2(db);
  return key;
}

void Target::PrepareTable(TargetTable table, std::function<void(Result<TableState>)> done) {
  auto result = std::make_shared<Result<TableState>>(Status());
  writer_->Post([this, table = std::move(table), result] { *result = PrepareOnWriter(table); },
                [done = std::move(done), result] { done(std::move(*result)); });
}

Status Target::RebuildOnWriter(const TargetTable& spec, bool rekey) {
  std::map<std::string, std::string> wanted;  // name -> declared type
  for (const auto& c : spec.columns) wanted[c.name] = ColumnTypeName(c.type);
  if (spec.pass_marks) wanted[kPassColumn] = "INTEGER";
  struct Column {
    std::string name, type;
    int pk = 0;
  };
  std::vector<Column> columns;
  bool retyped = false, by_hand = false;
  {
    Stmt info;  // table_xinfo: generated columns too
    std::string sql = "PRAGMA table_xinfo(" + Quote(spec.name) + ")";
    if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &info.s, nullptr) != SQLITE_OK) {
      return SqliteError(db_, "reading table_xinfo of " + spec.name);
    }
    int rc;
    while ((rc = sqlite3_step(info.s)) == SQLITE_ROW) {
      Column c;
      c.name = reinterpret_cast<const char*>(sqlite3_column_text(info.s, 1));
      const unsigned char* type = sqlite3_column_text(info.s, 2);
      c.type = type ? reinterpret_cast<const char*>(type) : "";
      c.pk = sqlite3_column_int(info.s, 5);
      // siphon declares name, type and key only: NOT NULL, a default or a generated column
      // were added by hand, and a rebuild from this list would lose them.
      by_hand |= sqlite3_column_int(info.s, 3) != 0 ||
                 sqlite3_column_type(info.s, 4) != SQLITE_NULL ||
                 sqlite3_column_int(info.s, 6) != 0;
      auto it = wanted.find(c.name);
      if (it != wanted.end() && strcasecmp(c.type.c_str(), it->second.c_str()) != 0) {
        c.type = it->second;
        retyped = true;
      }
      columns.push_back(std::move(c));
    }
    if (rc != SQLITE_DONE) return SqliteError(db_, "reading table_xinfo of " + spec.name);
  }
  if (!retyped && !rekey) return Status::Ok();
  std::string create;
  std::vector<std::string> extras;  // CREATE INDEX / TRIGGER of the table
  {
    Stmt q;
    if (sqlite3_prepare_v2(db_,
                           "SELECT type, sql FROM sqlite_master WHERE tbl_name = ?1 AND sql IS "
                           "NOT NULL",
                           -1, &q.s, nullptr) != SQLITE_OK) {
      return SqliteError(db_, "reading the schema of " + spec.name);
    }
    sqlite3_bind_text(q.s, 1, spec.name.c_str(), -1, SQLITE_TRANSIENT);
    int rc;
    while ((rc = sqlite3_step(q.s)) == SQLITE_ROW) {
      std::string type = reinterpret_cast<const char*>(sqlite3_column_text(q.s, 0));
      std::string sql = reinterpret_cast<const char*>(sqlite3_column_text(q.s, 1));
      if (type == "table") {
        create = sql;
      } else if (type == "index" || type == "trigger") {
        extras.push_back(std::move(sql));
      }
    }
    if (rc != SQLITE_DONE) return SqliteError(db_, "reading the schema of " + spec.name);
  }
  by_hand |= DeclaresConstraints(create);
  if (by_hand && rekey) {
    return Status(ErrorKind::kConfig,
                  "the key of " + spec.name + " is now " + CursorColumnsJson(spec.key) +
                      ", but the target table has constraints siphon did not make (NOT NULL, "
                      "DEFAULT, CHECK, UNIQUE, COLLATE, REFERENCES, generated columns) and "
                      "cannot be rebuilt under it: give it that PRIMARY KEY by hand, or drop "
                      "it and its _siphon_state row to start over");
  }
  if (by_hand) {
    Logger("target")->warn(
        "{}: a column's source type changed, but the table has constraints siphon did not make "
        "(NOT NULL, DEFAULT, CHECK, UNIQUE, COLLATE, REFERENCES, generated columns): its "
        "declared types stay as they are; change them by hand",
        spec.name);
    return Status::Ok();
  }
  // SQLite's way to change a column's type: a new table, the rows copied (each value taking
  // the new column's affinity), the old one dropped, the new one renamed, its indexes and
  // triggers made again. One savepoint.
  const std::string fresh = "_siphon_rebuild_" + spec.name;
  std::string defs, names, key;
  std::vector<const Column*> pk;
  for (const Column& c : columns) {
    defs += (defs.empty() ? "" : ", ") + ColumnDefinition(c.name, c.type);
    names += (names.empty() ? "" : ", ") + Quote(c.name);
    if (c.pk > 0) pk.push_back(&c);
  }
  std::sort(pk.begin(), pk.end(), [](const Column* a, const Column* b) { return a->pk < b->pk; });
  for (const Column* c : pk) key += (key.empty() ? "" : ", ") + Quote(c->name);
  // Under a new key, a row without a value in it could never be upserted again, and of rows
  // sharing one the last is kept: the table is pulled again, so what the source has returns.
  std::string copy = "INSERT INTO ", where;
  if (rekey) {
    key = KeyTuple(spec.key);
    for (const std::string& k : spec.key) {
      where += (where.empty() ? " WHERE " : " AND ") + Quote(k) + " IS NOT NULL";
    }
    copy = "INSERT OR REPLACE INTO ";
  }
  if (!key.empty()) defs += ", PRIMARY KEY (" + key + ")";
  std::vector<std::string> steps = {
      "SAVEPOINT siphon_rebuild", "CREATE TABLE " + Quote(fresh) + " (" + defs + ")",
      copy + Quote(fresh) + " (" + names + ") SELECT " + names + " FROM " + Quote(spec.name) +
          where,
      "DROP TABLE " + Quote(spec.name),
      // Views naming the table must not stop the rename (they read the new table after it).
      "PRAGMA legacy_alter_table = ON",
      "ALTER TABLE " + Quote(fresh) + " RENAME TO " + Quote(spec.name),
      "PRAGMA legacy_alter_table = OFF"};
  steps.insert(steps.end(), extras.begin(), extras.end());
  steps.push_back("RELEASE siphon_rebuild");
  const int64_t before = rekey ? CountRows(db_, spec.name) : 0;
  for (const std::string& sql : steps) {
    if (Status st = ExecOnWriter(sql); !st.ok()) {
      ExecOnWriter("ROLLBACK TO siphon_rebuild");
      ExecOnWriter("RELEASE siphon_rebuild");
      ExecOnWriter("PRAGMA legacy_alter_table = OFF");
      return st.WithContext(rekey ? "rebuilding " + spec.name + " under its new key"
                                  : "changing column types of " + spec.name);
    }
  }
  if (!rekey) {
    Logger("target")->info("{}: column type(s) changed, table rebuilt with its rows", spec.name);
  } else if (const int64_t left = before - CountRows(db_, spec.name); left > 0) {
    Logger("target")->warn(
        "{}: rebuilt with the PRIMARY KEY {}; {} row(s) without a value in it or repeating "
        "another's were left out (the pull brings back what the source has)",
        spec.name, CursorColumnsJson(spec.key), left);
  }
  return Status::Ok();
}

void SetKeyRangeSweep(TargetTable& table, bool on) {
  if (table.key_range_sweep == on) return;
  table.key_range_sweep = on;
  if (on) {
    table.cursor_columns += kKeyRangeSweptNote;
  } else if (table.cursor_columns.ends_with(kKeyRangeSweptNote)) {
    table.cursor_columns.resize(table.cursor_columns.size() - kKeyRangeSweptNote.size());
  }
}

namespace {

// SQLite's affinity of a declared column type, by its rules in their order.
ColumnType AffinityOf(std::string_view declared) {
  std::string t(declared);
  for (char& c : t) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  auto has = [&t](const char* part) { return t.find(part) != std::string::npos; };
  if (has("INT")) return ColumnType::kInteger;
  if (has("CHAR") || has("CLOB") || has("TEXT")) return ColumnType::kText;
  if (t.empty() || has("BLOB")) return ColumnType::kBlob;
  if (has("REAL") || has("FLOA") || has("DOUB")) return ColumnType::kReal;
  return ColumnType::kAny;  // NUMERIC
}

}  // namespace

Result<std::string> Target::KeyStoredAsDeclared(const TargetTable& spec) {
  Stmt info;
  const std::string sql = "PRAGMA table_info(" + Quote(spec.name) + ")";
  if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &info.s, nullptr) != SQLITE_OK) {
    return SqliteError(db_, "reading table_info of " + spec.name);
  }
  std::map<std::string, std::string> declared;
  int rc;
  while ((rc = sqlite3_step(info.s)) == SQLITE_ROW) {
    const unsigned char* type = sqlite3_column_text(info.s, 2);
    declared[reinterpret_cast<const char*>(sqlite3_column_text(info.s, 1))] =
        type ? reinterpret_cast<const char*>(type) : "";
  }
  if (rc != SQLITE_DONE) return SqliteError(db_, "reading table_info of " + spec.name);
  for (const auto& k : spec.key) {
    for (const auto& c : spec.columns) {
      if (c.name != k) continue;
      const auto it = declared.find(k);
      const std::string type = it == declared.end() ? "" : it->second;
      if (AffinityOf(type) != c.type) {
        return "its key column \"" + k + "\" is declared " +
               (type.empty() ? std::string("without a type") : type) +
               " in the replica, where siphon declares " + std::string(ColumnTypeName(c.type));
      }
    }
  }
  return std::string();
}

Result<TableState> Target::PrepareOnWriter(const TargetTable& requested) {
  if (Status st = CheckFileOnWriter(); !st.ok()) return st;
  // Every run prepares its table again (100 tables on 1 s intervals: 100 a second). When the
  // table is as the last run left it, its statements stand: only the state row is read.
  auto known = tables_.find(requested.name);
  if (known != tables_.end() && known->second->spec == requested &&
      known->second->schema_version >= 0 && known->second->schema_version == SchemaVersion()) {
    Result<std::optional<TableState>> state = ReadState(requested.name);
    if (!state.ok()) return state.status();
    if (state->has_value()) {
      known->second->empty_at_pass = -1;  // as for a table prepared afresh
      return std::move(**state);
    }
  }
  // What the table is prepared as: the request, but a key range sweep its key's declared types
  // do not allow (KeyStoredAsDeclared, below).
  TargetTable spec = requested;
  // Create or extend the table.
  std::set<std::string> existing;
  std::vector<std::pair<int, std::string>> primary;  // position in the key, column
  {
    Stmt info;
    std::string sql = "PRAGMA table_info(" + Quote(spec.name) + ")";
    if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &info.s, nullptr) != SQLITE_OK) {
      return SqliteError(db_, "reading table_info of " + spec.name);
    }
    while (sqlite3_step(info.s) == SQLITE_ROW) {
      std::string name = reinterpret_cast<const char*>(sqlite3_column_text(info.s, 1));
      if (int pk = sqlite3_column_int(info.s, 5); pk > 0) primary.emplace_back(pk, name);
      existing.insert(std::move(name));
    }
  }
  // The key the table has, when it has rows of another: the script's `key` or the source's
  // primary key changed. An upsert by the new key needs it as the table's PRIMARY KEY.
  std::sort(primary.begin(), primary.end());
  std::vector<std::string> old_key;
  for (auto& [position, name] : primary) old_key.push_back(std::move(name));
  const bool rekey = !existing.empty() && old_key != spec.key;
  if (rekey && spec.key.empty()) {
    return Status(ErrorKind::kConfig,
                  "the target table " + spec.name + " has the PRIMARY KEY " +
                      CursorColumnsJson(old_key) +
                      ", but the table now has no key (the source table has no primary key nor "
                      "a unique index over NOT NULL columns, and the script gives no `key`): "
                      "give `key = { … }`, or drop the target "
                      "table and its _siphon_state row to start over");
  }
  // What this prepare changes commits at once: a column added for a backfill never without
  // the cursor reset that fills it (a crash between them would leave it NULL for good).
  if (Status st = ExecOnWriter("SAVEPOINT siphon_prepare"); !st.ok()) return st;
  struct Undo {
    Target* target;
    bool done = false;
    ~Undo() {
      if (done) return;
      target->ExecOnWriter("ROLLBACK TO siphon_prepare");
      target->ExecOnWriter("RELEASE siphon_prepare");
    }
  } undo{this};
  std::vector<std::string> added;
  std::vector<std::pair<std::string, std::string>> wanted;  // name, declared type
  for (const auto& c : spec.columns) wanted.emplace_back(c.name, ColumnTypeName(c.type));
  if (spec.pass_marks) wanted.emplace_back(kPassColumn, "INTEGER");
  if (existing.empty()) {
    std::string sql = "CREATE TABLE " + Quote(spec.name) + " (";
    for (const auto& [name, type] : wanted) sql += ColumnDefinition(name, type) + ", ";
    if (spec.key.empty()) {
      sql.resize(sql.size() - 2);
    } else {
      sql += "PRIMARY KEY (" + KeyTuple(spec.key) + ")";
    }
    sql += ")";
    if (Status st = ExecOnWriter(sql); !st.ok()) return st;
  } else {
    for (const auto& [name, type] : wanted) {
      if (existing.count(name)) continue;
      std::string sql =
          "ALTER TABLE " + Quote(spec.name) + " ADD COLUMN " + ColumnDefinition(name, type);
      if (Status st = ExecOnWriter(sql); !st.ok()) return st;
      if (name != kPassColumn) added.push_back(name);
    }
    if (rekey) {
      if (Status st = RebuildOnWriter(spec, true); !st.ok()) return st;
    }
  }

  // A replica whose key columns are declared otherwise than siphon declares them (by hand, or
  // kept through a change of the source's type by a table with constraints of its own) stores
  // some keys as another kind than a page holds them ('5' for 5, 5.0): by key range, its rows
  // would seem to be none the page holds. Such a table marks its passes instead.
  if (spec.key_range_sweep) {
    Result<std::string> declared = KeyStoredAsDeclared(spec);
    if (!declared.ok()) return declared.status();
    if (!declared->empty()) {
      Logger("target")->warn(
          "{}: {}; deletions on the source are found by marking every row each pass, which "
          "writes every row again",
          spec.name, *declared);
      SetKeyRangeSweep(spec, false);
    }
  }

  // The upsert: one prepared statement for every page of this table.
  auto t = std::make_unique<Table>();
  t->spec = requested;
  t->range_sweep = spec.key_range_sweep;
  std::string cols, params, updates, fills, compared, excluded;
  // A column a conflicting row takes from the source, and compares to leave it alone.
  auto take = [&](const std::string& q) {
    updates += (updates.empty() ? "" : ", ") + q + " = excluded." + q;
    compared += (compared.empty() ? "" : ", ") + q;
    excluded += (excluded.empty() ? "" : ", ") + std::string("excluded.") + q + " COLLATE BINARY";
  };
  for (size_t i = 0; i < spec.columns.size(); ++i) {
    const std::string q = Quote(spec.columns[i].name);
    cols += (i ? ", " : "") + q;
    params += i ? ", ?" : "?";
    bool is_key = false;
    for (const auto& k : spec.key) is_key |= (k == spec.columns[i].name);
    if (!is_key) {
      take(q);
      fills += (fills.empty() ? "" : ", ") + q + " = coalesce(" + q + ", excluded." + q + ")";
    }
  }
  if (spec.pass_marks) {
    // The pass number is the last parameter; a row seen again is marked as seen, unless the
    // pass sweeps by key range (a row it holds unchanged keeps its mark).
    const std::string q = Quote(kPassColumn);
    cols += ", " + q;
    params += ", ?";
    if (!spec.key_range_sweep) take(q);
  }
  const std::string head = "INSERT INTO " + Quote(spec.name) + " (" + cols + ") VALUES ";
  const std::string tuple = "(" + params + ")";
  std::string sql;  // what follows VALUES …
  const std::string conflict =
      spec.key.empty() ? std::string() : " ON CONFLICT (" + KeyTuple(spec.key) + ")";
  if (!spec.key.empty()) {
    if (spec.append || updates.empty()) {
      sql += conflict + " DO NOTHING";
    } else {
      // Always the row as the source has it now: every page is a fresh read of the source,
      // written in order by one run at a time, so it is never older than what is stored. (A
      // guard on the cursor column would keep a stale row forever when the source's own
      // timestamp goes backwards, e.g. `now()` in a transaction that waited for a lock.)
      sql += conflict + " DO UPDATE SET " + updates;
      // A row read again as the replica holds it (a lookback's window, a page retried) is left
      // alone: no page of the file changes for it, no UPDATE trigger fires, and the run counts
      // only the rows that changed. The pass mark is compared too where a pass marks every
      // row it reads, so its sweep keeps them (TargetTable::key_range_sweep does not).
      sql += " WHERE (" + compared + ") IS NOT (" + excluded + ")";
    }
  }
  // Most of a one-row upsert's cost is per statement (reset, halt, opening the cursors), not
  // per row: pages are written kRowsPerUpsert rows per statement, rows applied in order (a key
  // seen twice in one statement is updated by the later row, as with one row at a time).
  const size_t per_row = spec.columns.size() + (spec.pass_marks ? 1 : 0);
  const size_t many = std::min<size_t>(kRowsPerUpsert, kMaxParameters / per_row);
  std::string values = tuple;
  for (size_t i = 1; i < many; ++i) values += ", " + tuple;
  auto prepare = [&](const std::string& tail, Stmt& one, Stmt& several) {
    if (sqlite3_prepare_v3(db_, (head + tuple + tail).c_str(), -1, SQLITE_PREPARE_PERSISTENT,
                           &one.s, nullptr) != SQLITE_OK ||
        (many > 1 &&
         sqlite3_prepare_v3(db_, (head + values + tail).c_str(), -1, SQLITE_PREPARE_PERSISTENT,
                            &several.s, nullptr) != SQLITE_OK)) {
      return SqliteError(db_, "preparing the upsert of " + spec.name);
    }
    return Status::Ok();
  };
  if (Status st = prepare(sql, t->upsert, t->upsert_many); !st.ok()) return st;
  if (many > 1) t->many_rows = many;
  // An append table keeps the rows it holds; a re-pull (a backfill, a resync) fills only what
  // they lack, a column added since.
  if (spec.append && !spec.key.empty() && !fills.empty()) {
    if (Status st = prepare(conflict + " DO UPDATE SET " + fills, t->fill, t->fill_many);
        !st.ok()) {
      return st;
    }
  }
  const char* save =
      "UPDATE _siphon_state SET cursor = ?1, rows_total = rows_total + ?2, last_sync_at = ?3, "
      "full_pass = max(full_pass, ?5), "
      "resync_pass = CASE WHEN ?6 THEN NULL ELSE resync_pass END WHERE table_name = ?4";
  if (sqlite3_prepare_v3(db_, save, -1, SQLITE_PREPARE_PERSISTENT, &t->save_cursor.s, nullptr) !=
      SQLITE_OK) {
    return SqliteError(db_, "preparing the cursor update");
  }
  for (const auto& k : spec.key) {
    for (size_t c = 0; c < spec.columns.size(); ++c) {
      if (spec.columns[c].name == k) t->key_index.push_back(static_cast<int>(c));
    }
  }
  if (spec.soft_delete_column) {
    for (size_t c = 0; c < spec.columns.size(); ++c) {
      if (spec.columns[c].name == *spec.soft_delete_column) t->soft_index = static_cast<int>(c);
    }
    if (t->soft_index < 0 || t->key_index.size() != spec.key.size() || spec.key.empty()) {
      return Status(ErrorKind::kConfig,
                    "soft deletes of " + spec.name + " need the key and the soft delete column");
    }
  }
  if (spec.key_range_sweep && (t->key_index.size() != spec.key.size() || spec.key.empty())) {
    return Status(ErrorKind::kConfig, "the key range sweep of " + spec.name + " needs its key");
  }
  if (spec.soft_delete_column || spec.key_range_sweep) {
    std::string where;
    for (size_t k = 0; k < spec.key.size(); ++k) {
      where += (k ? " AND " : "") + Quote(spec.key[k]) + " = ?" + std::to_string(k + 1);
    }
    std::string sql_delete = "DELETE FROM " + Quote(spec.name) + " WHERE " + where;
    if (sqlite3_prepare_v3(db_, sql_delete.c_str(), -1, SQLITE_PREPARE_PERSISTENT, &t->delete_key.s,
                           nullptr) != SQLITE_OK) {
      return SqliteError(db_, "preparing the deletes by key of " + spec.name);
    }
  }
  if (spec.pass_marks) {
    std::string sweep =
        "DELETE FROM " + Quote(spec.name) + " WHERE " + Quote(kPassColumn) + " IS NOT ?1";
    if (!spec.key_range_sweep &&
        sqlite3_prepare_v3(db_, sweep.c_str(), -1, SQLITE_PREPARE_PERSISTENT, &t->sweep.s,
                           nullptr) != SQLITE_OK) {
      return SqliteError(db_, "preparing the sweep of " + spec.name);
    }
    std::string any = "SELECT 1 FROM " + Quote(spec.name) + " LIMIT 1";
    if (sqlite3_prepare_v3(db_, any.c_str(), -1, SQLITE_PREPARE_PERSISTENT, &t->any_row.s,
                           nullptr) != SQLITE_OK) {
      return SqliteError(db_, "preparing the sweep of " + spec.name);
    }
  }

  // A cursor is a position in the order of its columns, in one source table or query: one
  // stored for other columns means nothing now, and read as this order's values it could skip
  // rows; one of another table skips that table's rows below it. It is dropped (the table is
  // pulled again from the start; rows are upserted), and what it belongs to recorded. Both are
  // read before the state row names the source anew, so a refused change stays refused.
  // A cursor of another source (the same table in another database, or a new primary) is
  // kept: siphon cannot tell a failover from other data, so the run says so.
  std::string dropped, cursor_source, other_source;
  bool had_cursor = false;
  {
    Stmt q;
    sqlite3_prepare_v2(db_,
                       "SELECT cursor_columns, source_table, source FROM _siphon_state "
                       "WHERE table_name = ?1 AND cursor IS NOT NULL",
                       -1, &q.s, nullptr);
    sqlite3_bind_text(q.s, 1, spec.name.c_str(), -1, SQLITE_TRANSIENT);
    const int rc = sqlite3_step(q.s);
    if (rc == SQLITE_ROW) {
      had_cursor = true;
      auto text = [&q](int column) {
        const unsigned char* v = sqlite3_column_text(q.s, column);
        return v ? std::string(reinterpret_cast<const char*>(v)) : std::string();
      };
      if (std::string columns = text(0); !columns.empty() && columns != spec.cursor_columns) {
        dropped = std::move(columns);
      }
      if (std::string table = text(1); !table.empty() && table != spec.source_table) {
        cursor_source = std::move(table);
      }
      if (std::string source = text(2); !source.empty() && source != spec.source) {
        other_source = std::move(source);
      }
    } else if (rc != SQLITE_DONE) {
      return SqliteError(db_, "reading the cursor columns of " + spec.name);
    }
  }
  // Without a key a second pull writes every row twice.
  if (!dropped.empty() && spec.key.empty()) {
    return Status(ErrorKind::kConfig,
                  "the cursor of " + spec.name + " changed from " + dropped + " to " +
                      spec.cursor_columns +
                      ", and a table without a key cannot be pulled again without writing its "
                      "rows twice: put the cursor back, or drop the target table and its "
                      "_siphon_state row to start over");
  }
  if (!cursor_source.empty() && spec.key.empty()) {
    return Status(ErrorKind::kConfig,
                  spec.name + " now reads " + spec.source_table + ", not " + cursor_source +
                      ", and a table without a key cannot be pulled again without writing its "
                      "rows twice: put `from` back, or drop the target table and its "
                      "_siphon_state row to start over");
  }

  // A cursor kept for a table this prepare created (the table was dropped by hand) would
  // leave the rows below it missing for good: the table is pulled again from the start.
  const bool recreated = existing.empty() && had_cursor;

  // The state row: created on first sight, read otherwise.
  {
    Stmt ins;
    const char* sql_ins =
        "INSERT INTO _siphon_state (table_name, status, source, source_table, schema_hash, "
        "schema_json) VALUES (?1, 'new', ?2, ?3, ?4, ?5) ON CONFLICT (table_name) DO UPDATE SET "
        "source = excluded.source, source_table = excluded.source_table, "
        // A row made by the record of a failed first run has no schema yet.
        "schema_hash = coalesce(schema_hash, excluded.schema_hash), "
        "schema_json = coalesce(schema_json, excluded.schema_json)";
    sqlite3_prepare_v2(db_, sql_ins, -1, &ins.s, nullptr);
    sqlite3_bind_text(ins.s, 1, spec.name.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(ins.s, 2, spec.source.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(ins.s, 3, spec.source_table.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(ins.s, 4, spec.schema_hash.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(ins.s, 5, spec.schema_json.c_str(), -1, SQLITE_TRANSIENT);
    if (sqlite3_step(ins.s) != SQLITE_DONE) return SqliteError(db_, "creating the state row");
  }
  {
    Stmt up;
    sqlite3_prepare_v2(db_,
                       "UPDATE _siphon_state SET cursor_columns = ?2, key_index = NULLIF(?4, ''), "
                       "cursor = CASE WHEN ?3 THEN NULL ELSE cursor END WHERE table_name = ?1",
                       -1, &up.s, nullptr);
    sqlite3_bind_text(up.s, 1, spec.name.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(up.s, 2, spec.cursor_columns.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(up.s, 4, spec.key_index.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(up.s, 3,
                     dropped.empty() && cursor_source.empty() && !rekey && !recreated ? 0 : 1);
    if (sqlite3_step(up.s) != SQLITE_DONE) {
      return SqliteError(db_, "recording the cursor columns of " + spec.name);
    }
  }
  if (spec.backfill && !added.empty()) {
    // As a resync: pulled again from the start, rows the source no longer has swept at the end.
    if (Result<int64_t> pass = ResetCursorOnWriter(spec.name); !pass.ok()) return pass.status();
  }
  Result<std::optional<TableState>> state = ReadState(spec.name);
  if (!state.ok()) return state.status();
  if (!state->has_value()) return Status(ErrorKind::kTarget, "no state row for " + spec.name);
  (*state)->dropped_cursor_columns = dropped;
  (*state)->dropped_cursor_source = cursor_source;
  if (rekey) (*state)->dropped_key = CursorColumnsJson(old_key);
  (*state)->table_recreated = recreated;
  if ((*state)->cursor) (*state)->kept_cursor_source = std::move(other_source);
  (*state)->added_columns = std::move(added);
  // A changed column type is applied once the script accepted the change (SaveSchema): here
  // only when the recorded schema is this one (a new state row records the spec's).
  if (!existing.empty() && (*state)->schema_hash == spec.schema_hash) {
    if (Status st = RebuildOnWriter(spec); !st.ok()) return st;
  }
  if (Status st = ExecOnWriter("RELEASE siphon_prepare"); !st.ok()) return st;
  undo.done = true;
  t->schema_version = SchemaVersion();
  tables_[spec.name] = std::move(t);
  return std::move(**state);
}

int64_t Target::SchemaVersion() {
  // Any connection's CREATE, ALTER or DROP changes it (a table dropped by hand is made again).
  Stmt q;
  if (sqlite3_prepare_v2(db_, "PRAGMA schema_version", -1, &q.s, nullptr) != SQLITE_OK ||
      sqlite3_step(q.s) != SQLITE_ROW) {
    return -1;  // never taken as a version seen: prepare afresh
  }
  return sqlite3_column_int64(q.s, 0);
}

Result<std::optional<TableState>> Target::ReadState(const std::string& table) {
  TableState state;
  {
    Stmt q;
    sqlite3_prepare_v2(db_,
                       "SELECT cursor, rows_total, last_sync_at, last_success_at, last_error, "
                       "schema_hash, status, schema_json, full_pass, resync_pass, "
                       "reconciled_at FROM _siphon_state "
                       "WHERE table_name = ?1",
                       -1, &q.s, nullptr);
    sqlite3_bind_text(q.s, 1, table.c_str(), -1, SQLITE_TRANSIENT);
    const int rc = sqlite3_step(q.s);
    if (rc == SQLITE_DONE) return std::optional<TableState>();
    if (rc != SQLITE_ROW) return SqliteError(db_, "reading the state row of " + table);
    auto text = [&q](int i) {
      const unsigned char* v = sqlite3_column_text(q.s, i);
      return v ? std::string(reinterpret_cast<const char*>(v)) : std::string();
    };
    if (sqlite3_column_type(q.s, 0) != SQLITE_NULL) {
      state.cursor = CursorFromJson(text(0));
      if (!state.cursor) {
        return Status(ErrorKind::kTarget,
                      "unreadable cursor in _siphon_state for " + table + ": " + text(0));
      }
    }
    state.rows_total = sqlite3_column_int64(q.s, 1);
    state.last_sync_at = text(2);
    state.last_success_at = text(3);
    state.last_error = text(4);
    state.schema_hash = text(5);
    state.status = text(6);
    state.schema_json = text(7);
    state.full_pass = sqlite3_column_int64(q.s, 8);
    state.resync_pass = sqlite3_column_int64(q.s, 9);
    state.reconciled_at = text(10);
  }
  return std::optional<TableState>(std::move(state));
}

void Target::WritePage(const std::string& table, PageWrite page,
                       std::function<void(Result<PageResult>)> done) {
  auto result = std::make_shared<Result<PageResult>>(Status());
  writer_->Post(
      [this, table, page = std::move(page), result] {
        auto it = tables_.find(table);
        if (it == tables_.end()) {
          *result = Status(ErrorKind::kTarget, "table " + table + " was not prepared");
          return;
        }
        *result = WriteOnWriter(*it->second, page);
      },
      [done = std::move(done), result] { done(std::move(*result)); });
}

void Target::SaveSchema(const std::string& table, std::string hash, std::string json,
                        std::function<void(Status)> done) {
  auto status = std::make_shared<Status>();
  writer_->Post(
      [this, table, hash = std::move(hash), json = std::move(json), status] {
        // The change is accepted: changed column types now reach the target table.
        if (auto it = tables_.find(table); it != tables_.end()) {
          if (Status st = RebuildOnWriter(it->second->spec); !st.ok()) {
            *status = st;
            return;
          }
        }
        Stmt s;
        sqlite3_prepare_v2(
            db_,
            "UPDATE _siphon_state SET schema_hash = ?1, schema_json = ?2 WHERE table_name = ?3", -1,
            &s.s, nullptr);
        sqlite3_bind_text(s.s, 1, hash.c_str(), -1, SQLITE_STATIC);
        sqlite3_bind_text(s.s, 2, json.c_str(), -1, SQLITE_STATIC);
        sqlite3_bind_text(s.s, 3, table.c_str(), -1, SQLITE_STATIC);
        if (sqlite3_step(s.s) != SQLITE_DONE) *status = SqliteError(db_, "saving the schema");
      },
      [done = std::move(done), status] {
        if (done) done(std::move(*status));
      });
}

namespace {

// Binds one value; SQLITE_TOOBIG for a value over SQLite's length limit (never a silent NULL).
int BindCell(sqlite3_stmt* s, int i, const RowBatch& rows, const Cell& cell) {
  switch (cell.type) {
    case ValueType::kNull:
      return sqlite3_bind_null(s, i);
    case ValueType::kInt:
      return sqlite3_bind_int64(s, i, cell.i);
    case ValueType::kReal:
      return sqlite3_bind_double(s, i, cell.d);
    case ValueType::kText: {
      auto v = rows.bytes(cell);
      return sqlite3_bind_text64(s, i, v.data(), v.size(), SQLITE_STATIC, SQLITE_UTF8);
    }
    case ValueType::kBlob: {
      auto v = rows.bytes(cell);
      return sqlite3_bind_blob64(s, i, v.data(), v.size(), SQLITE_STATIC);
    }
  }
  return SQLITE_OK;
}

// The error for a value that could not be bound (row `row` of the page, column `column`).
Status BindError(const TargetTable& spec, const RowBatch& rows, size_t row, size_t column, int rc) {
  std::string name = column < spec.columns.size() ? spec.columns[column].name : "?";
  const Cell& cell = rows.at(row, column);
  std::string size;
  if (cell.type == ValueType::kText || cell.type == ValueType::kBlob) {
    size = " (" + std::to_string(rows.bytes(cell).size()) + " bytes)";
  }
  return Status(ErrorKind::kType, "writing " + spec.name + ": the value of column \"" + name +
                                      "\"" + size + " cannot be stored: " + sqlite3_errstr(rc));
}

// Whether a failed step refused the row alone (a constraint of the table, a value its INTEGER
// PRIMARY KEY cannot hold), rather than the write failing (disk full, I/O, a lock).
bool RowRefused(int rc) {
  return (rc & 0xff) == SQLITE_CONSTRAINT || (rc & 0xff) == SQLITE_MISMATCH;
}

// A cell's value for a message: its type and a short preview.
std::string DescribeCell(const RowBatch& rows, const Cell& cell) {
  switch (cell.type) {
    case ValueType::kNull:
      return "NULL";
    case ValueType::kInt:
      return "the integer " + std::to_string(cell.i);
    case ValueType::kReal: {
      if (!std::isfinite(cell.d)) {
        return std::string("the real ") + (std::isnan(cell.d) ? "NaN"
                                           : cell.d > 0       ? "Infinity"
                                                              : "-Infinity");
      }
      std::string json = CursorToJson(Cursor{cell.d});  // "[1.5]"
      return "the real " + json.substr(1, json.size() - 2);
    }
    case ValueType::kText: {
      constexpr size_t kShown = 40;
      std::string_view v = rows.bytes(cell);
      size_t cut = std::min(v.size(), kShown);  // not inside a UTF-8 sequence
      while (cut < v.size() && cut > 0 && (static_cast<unsigned char>(v[cut]) & 0xC0) == 0x80) {
        --cut;
      }
      return "the text \"" + std::string(v.substr(0, cut)) + (cut < v.size() ? "…" : "") + "\"";
    }
    case ValueType::kBlob:
      return "a blob of " + std::to_string(rows.bytes(cell).size()) + " bytes";
  }
  return "?";
}

// Appends row `r`'s key to `out` as bytes that are equal when the keys are: the type, then
// the value (an integral REAL in an INTEGER column is stored as that integer, so it is one).
void AppendKey(std::string& out, const RowBatch& rows, size_t r, const std::vector<int>& key_index,
               const std::vector<ColumnInfo>& columns) {
  for (int k : key_index) {
    const Cell& cell = rows.at(r, static_cast<size_t>(k));
    ValueType type = cell.type;
    int64_t i = cell.i;
    if (type == ValueType::kReal && columns[static_cast<size_t>(k)].type == ColumnType::kInteger &&
        cell.d >= -9.2e18 && cell.d <= 9.2e18 &&
        cell.d == static_cast<double>(static_cast<int64_t>(cell.d))) {
      type = ValueType::kInt;
      i = static_cast<int64_t>(cell.d);
    }
    out += static_cast<char>(type);
    switch (type) {
      case ValueType::kNull:
        break;
      case ValueType::kInt:
        out.append(reinterpret_cast<const char*>(&i), sizeof i);
        break;
      case ValueType::kReal:
        out.append(reinterpret_cast<const char*>(&cell.d), sizeof cell.d);
        break;
      case ValueType::kText:
      case ValueType::kBlob: {
        std::string_view v = rows.bytes(cell);
        const uint64_t n = v.size();
        out.append(reinterpret_cast<const char*>(&n), sizeof n);
        out.append(v);
        break;
      }
    }
  }
}

// Whether a soft delete column's value marks the row deleted: anything but NULL, false and
// a zero number (a boolean or an integer flag 0, a REAL 0.0, a numeric or decimal "0.00"
// kept as text). Text such as "" or "no" is set: only its absence says "not deleted".
bool SoftDeleteFlagSet(const ColumnInfo& column, const RowBatch& rows, const Cell& flag) {
  switch (flag.type) {
    case ValueType::kNull:
      return false;
    case ValueType::kInt:
      return flag.i != 0;
    case ValueType::kReal:
      return flag.d != 0.0;
    case ValueType::kText: {
      if (column.order != OrderKind::kNumber) return true;
      const std::string text(rows.bytes(flag));
      char* end = nullptr;
      const double d = std::strtod(text.c_str(), &end);
      return text.empty() || *end != 0 || d != 0.0;
    }
    case ValueType::kBlob:
      return true;
  }
  return true;
}

}  // namespace

Status Target::DeleteByKey(Table& t, const RowBatch& rows, size_t row) {
  sqlite3_stmt* d = t.delete_key.s;
  for (size_t k = 0; k < t.key_index.size(); ++k) {
    BindCell(d, static_cast<int>(k) + 1, rows, rows.at(row, static_cast<size_t>(t.key_index[k])));
  }
  Status st;
  if (sqlite3_step(d) != SQLITE_DONE) st = SqliteError(db_, "deleting from " + t.spec.name);
  sqlite3_reset(d);
  return st;
}

namespace {

// A key value as bytes that tell its storage class too (an integer 1 is not the text '1'), to
// find a key of the table among a page's.
void AppendKeyBytes(std::string& out, char kind, const void* data, size_t size) {
  out += kind;
  const auto n = static_cast<uint32_t>(size);
  out.append(reinterpret_cast<const char*>(&n), sizeof n);
  if (size > 0) out.append(static_cast<const char*>(data), size);  // (an empty blob's is null)
}

}  // namespace

Result<int64_t> Target::SweepKeyRangeOnWriter(Table& t, const RowBatch& rows,
                                              const KeyRange& range) {
  const size_t nkeys = t.key_index.size();
  // The source orders the keys as SQLite does (its adapter says so: ColumnInfo::stored_order)
  // and the replica stores them as the page holds them (KeyStoredAsDeclared). A value of
  // another kind than its column's, which such sources do not send, leaves this page's range
  // as it is: no row is ever deleted on a comparison the source would not make.
  auto stored_as = [&](size_t k) {
    return t.spec.columns[static_cast<size_t>(t.key_index[k])].type;
  };
  auto fits = [&](size_t k, const CursorValue& v) {
    switch (stored_as(k)) {
      case ColumnType::kInteger:
        return std::holds_alternative<int64_t>(v);
      case ColumnType::kText:
        return std::holds_alternative<std::string>(v);
      case ColumnType::kBlob:
        return std::holds_alternative<Bytes>(v);
      default:
        return false;
    }
  };
  auto bound_fits = [&](const std::optional<Cursor>& bound) {
    if (!bound) return true;
    if (bound->size() != nkeys) return false;
    for (size_t k = 0; k < nkeys; ++k) {
      if (!fits(k, (*bound)[k])) return false;
    }
    return true;
  };
  if (!bound_fits(range.after) || !bound_fits(range.upto)) return int64_t{0};
  // The page's keys.
  std::unordered_set<std::string> held;
  held.reserve(rows.rows());
  std::string key;
  for (size_t r = 0; r < rows.rows(); ++r) {
    key.clear();
    for (size_t k = 0; k < nkeys; ++k) {
      const Cell& cell = rows.at(r, static_cast<size_t>(t.key_index[k]));
      if (cell.type == ValueType::kInt && stored_as(k) == ColumnType::kInteger) {
        AppendKeyBytes(key, 'i', &cell.i, sizeof cell.i);
      } else if (cell.type == ValueType::kText && stored_as(k) == ColumnType::kText) {
        const std::string_view v = rows.bytes(cell);
        AppendKeyBytes(key, 't', v.data(), v.size());
      } else if (cell.type == ValueType::kBlob && stored_as(k) == ColumnType::kBlob) {
        const std::string_view v = rows.bytes(cell);
        AppendKeyBytes(key, 'b', v.data(), v.size());
      } else {
        return int64_t{0};
      }
    }
    held.insert(key);
  }
  std::vector<CursorValue> params;
  const std::string where = RangeWhere(t.spec.key, range, params);
  Stmt& select = t.range_keys[(range.after ? 1 : 0) | (range.upto ? 2 : 0)];
  if (select.s == nullptr) {
    const std::string sql =
        "SELECT " + KeyTuple(t.spec.key) + " FROM " + Quote(t.spec.name) + where;
    if (sqlite3_prepare_v3(db_, sql.c_str(), -1, SQLITE_PREPARE_PERSISTENT, &select.s, nullptr) !=
        SQLITE_OK) {
      return SqliteError(db_, "preparing the key range sweep of " + t.spec.name);
    }
  }
  // The rows to delete are found first and deleted after: a table is not changed under a
  // statement still reading it. At most kGoneAtOnce at a time, so a source emptied of
  // millions of rows costs no more memory than a page: the range is read again after each
  // batch, finding the page's rows again and the rest of what is gone.
  constexpr size_t kGoneAtOnce = 10000;
  std::vector<sqlite3_value*> gone;
  struct Free {
    std::vector<sqlite3_value*>& values;
    void operator()() {
      for (sqlite3_value* v : values) sqlite3_value_free(v);
      values.clear();
    }
    ~Free() { (*this)(); }
  } free_gone{gone};
  int64_t deleted = 0;
  for (bool more = true; more;) {
    for (size_t i = 0; i < params.size(); ++i) {
      BindCursorValue(select.s, static_cast<int>(i) + 1, params[i], SQLITE_STATIC);
    }
    more = false;
    int rc;
    while ((rc = sqlite3_step(select.s)) == SQLITE_ROW) {
      key.clear();
      bool comparable = true;  // a REAL or NULL key is none a page holds
      for (size_t k = 0; k < nkeys && comparable; ++k) {
        const int c = static_cast<int>(k);
        switch (sqlite3_column_type(select.s, c)) {
          case SQLITE_INTEGER: {
            const int64_t v = sqlite3_column_int64(select.s, c);
            AppendKeyBytes(key, 'i', &v, sizeof v);
            break;
          }
          case SQLITE_TEXT: {
            const unsigned char* v = sqlite3_column_text(select.s, c);
            AppendKeyBytes(key, 't', v, static_cast<size_t>(sqlite3_column_bytes(select.s, c)));
            break;
          }
          case SQLITE_BLOB: {
            const void* v = sqlite3_column_blob(select.s, c);
            AppendKeyBytes(key, 'b', v, static_cast<size_t>(sqlite3_column_bytes(select.s, c)));
            break;
          }
          default:
            comparable = false;
        }
      }
      if (comparable && held.count(key) > 0) continue;
      for (size_t k = 0; k < nkeys; ++k) {
        sqlite3_value* v = sqlite3_value_dup(sqlite3_column_value(select.s, static_cast<int>(k)));
        if (v == nullptr) {
          sqlite3_reset(select.s);
          return Status(ErrorKind::kTarget, "out of memory reading the keys of " + t.spec.name);
        }
        gone.push_back(v);
      }
      if (gone.size() >= kGoneAtOnce * nkeys) {
        more = true;
        break;
      }
    }
    sqlite3_reset(select.s);
    if (!more && rc != SQLITE_DONE) return SqliteError(db_, "reading the keys of " + t.spec.name);
    sqlite3_stmt* d = t.delete_key.s;
    for (size_t at = 0; at < gone.size(); at += nkeys) {
      for (size_t k = 0; k < nkeys; ++k) {
        sqlite3_bind_value(d, static_cast<int>(k + 1), gone[at + k]);
      }
      rc = sqlite3_step(d);
      sqlite3_reset(d);
      if (rc != SQLITE_DONE) return SqliteError(db_, "deleting from " + t.spec.name);
      deleted += sqlite3_changes64(db_);
    }
    free_gone();
  }
  return deleted;
}

Result<PageResult> Target::WriteOnWriter(Table& t, const PageWrite& page) {
  const RowBatch& rows = *page.rows;
  const std::optional<Cursor>& cursor = page.cursor_after;
  const size_t nrows = rows.rows();
  const size_t ncols = rows.columns();
  Status result;
  // Rows the table refuses, in page order: rejected with the page, or the page fails.
  std::vector<size_t> refused;
  std::vector<Reject> rejects;
  auto refuse = [&](size_t r, std::string reason) {
    std::string json = RowToJson(t.spec.columns, rows, r);
    if (!t.spec.reject_refused_rows) {
      result = Status(ErrorKind::kType,
                      "writing " + t.spec.name + ": row " + json + " is refused: " + reason);
      return;
    }
    refused.push_back(r);
    rejects.push_back(Reject{std::move(json), std::move(reason)});
  };
  // A NULL key would be stored as is (a NULL never conflicts, so every run adds the row again)
  // or, in an INTEGER PRIMARY KEY (the rowid), replaced by a key SQLite makes up: it is
  // refused before the page is written, at the cost of one check per key column and row.
  // Rows whose key repeats an earlier row's are found by sorting the keys' hashes, rows in
  // page order within a hash (a set of the keys cost a node per row, about a tenth of the
  // writer's time on a transformed sync); rows that share a hash compare their keys.
  std::vector<bool> repeats;
  std::string key;
  // The first key column of row r that is NULL (key_index.size(): none).
  auto null_key = [&](size_t r) {
    size_t k = 0;
    while (k < t.key_index.size() &&
           rows.at(r, static_cast<size_t>(t.key_index[k])).type != ValueType::kNull) {
      ++k;
    }
    return k;
  };
  if (t.spec.distinct_keys && !t.key_index.empty()) {
    repeats.assign(nrows, false);
    std::vector<std::pair<size_t, size_t>> hashed;  // (hash of the key, row)
    hashed.reserve(nrows);
    for (size_t r = 0; r < nrows; ++r) {
      if (null_key(r) < t.key_index.size()) continue;
      key.clear();
      AppendKey(key, rows, r, t.key_index, t.spec.columns);
      hashed.emplace_back(std::hash<std::string_view>{}(key), r);
    }
    std::sort(hashed.begin(), hashed.end());
    std::vector<std::string> seen;  // the distinct keys of one hash
    for (size_t i = 0, j = 0; i < hashed.size(); i = j) {
      for (j = i + 1; j < hashed.size() && hashed[j].first == hashed[i].first;) ++j;
      if (j - i == 1) continue;
      seen.clear();
      for (size_t h = i; h < j; ++h) {
        key.clear();
        AppendKey(key, rows, hashed[h].second, t.key_index, t.spec.columns);
        if (std::find(seen.begin(), seen.end(), key) != seen.end()) {
          repeats[hashed[h].second] = true;
        } else {
          seen.push_back(key);
        }
      }
    }
  }
  for (size_t r = 0; r < nrows && result.ok() && !t.key_index.empty(); ++r) {
    if (const size_t k = null_key(r); k < t.key_index.size()) {
      refuse(r, "key column \"" + t.spec.key[k] + "\" is NULL");
      continue;
    }
    if (repeats.empty() || !repeats[r]) continue;
    Cursor values;
    for (int k : t.key_index) values.push_back(CursorValueOf(rows, r, static_cast<size_t>(k)));
    refuse(r, "key " + CursorColumnsJson(t.spec.key) + " = " + CursorToJson(values) +
                  " repeats an earlier row of the page (rows written by one page need "
                  "distinct keys: a fan-out gives each row its own)");
  }
  if (!result.ok()) return result;
  if (Status st = CheckFileOnWriter(); !st.ok()) return st;
  if (Status st = ExecOnWriter("BEGIN IMMEDIATE"); !st.ok()) return st;
  PageResult done;
  auto write_rejects = [&](const std::vector<Reject>& list) {
    if (list.empty() || !result.ok()) return;
    Stmt ins;
    const char* sql =
        "INSERT INTO _siphon_rejects (at, table_name, row_json, error) VALUES (?1, ?2, ?3, ?4)";
    std::string now = NowIso();
    if (sqlite3_prepare_v2(db_, sql, -1, &ins.s, nullptr) != SQLITE_OK) {
      result = SqliteError(db_, "preparing the rejects insert");
    }
    for (size_t i = 0; i < list.size() && result.ok(); ++i) {
      sqlite3_bind_text(ins.s, 1, now.c_str(), -1, SQLITE_STATIC);
      sqlite3_bind_text(ins.s, 2, t.spec.name.c_str(), -1, SQLITE_STATIC);
      sqlite3_bind_text(ins.s, 3, list[i].row_json.c_str(), -1, SQLITE_STATIC);
      sqlite3_bind_text(ins.s, 4, list[i].error.c_str(), -1, SQLITE_STATIC);
      if (sqlite3_step(ins.s) != SQLITE_DONE) result = SqliteError(db_, "writing a reject");
      sqlite3_reset(ins.s);
    }
  };
  write_rejects(page.rejects);
  if (result.ok() && page.starts_pass && t.any_row.s != nullptr) {
    // Only this writer adds rows, so a table empty now holds nothing but this pass's rows
    // when the pass ends (a crash in between restarts the pass, which checks again).
    int rc = sqlite3_step(t.any_row.s);
    if (rc == SQLITE_DONE) {
      t.empty_at_pass = page.pass;
    } else if (rc == SQLITE_ROW) {
      t.empty_at_pass = -1;
    } else {
      result = SqliteError(db_, "reading " + t.spec.name);
    }
    sqlite3_reset(t.any_row.s);
  }
  // A step that failed on a row the table refuses (a constraint, text in the INTEGER PRIMARY
  // KEY): that row is refused and the page goes on, unless the failure took the transaction
  // with it (a trigger's RAISE(ROLLBACK)).
  const std::string writing = "writing " + t.spec.name;
  auto step_failed = [&](int rc, size_t r) {
    if (RowRefused(rc) && sqlite3_get_autocommit(db_) == 0) {
      std::string reason = sqlite3_errmsg(db_);
      if ((rc & 0xff) == SQLITE_MISMATCH && t.key_index.size() == 1) {
        const auto k = static_cast<size_t>(t.key_index[0]);
        reason = "key column \"" + t.spec.key[0] + "\" is an INTEGER PRIMARY KEY and cannot hold " +
                 DescribeCell(rows, rows.at(r, k)) + " (" + reason + ")";
      }
      refuse(r, std::move(reason));
      return;
    }
    result = SqliteError(db_, writing);
  };
  // One row by the one-row upsert (or a soft delete).
  const bool fill = page.fill && t.fill.s != nullptr;
  sqlite3_stmt* s = fill ? t.fill.s : t.upsert.s;
  sqlite3_stmt* m = fill ? t.fill_many.s : t.upsert_many.s;
  auto write_row = [&](size_t r) {
    if (t.soft_index >= 0 &&
        SoftDeleteFlagSet(t.spec.columns[static_cast<size_t>(t.soft_index)], rows,
                          rows.at(r, static_cast<size_t>(t.soft_index)))) {
      if (Status st = DeleteByKey(t, rows, r); !st.ok()) result = st;
      done.deleted += sqlite3_changes64(db_);
      ++done.flagged;
      return;
    }
    for (size_t c = 0; c < ncols && result.ok(); ++c) {
      if (int rc = BindCell(s, static_cast<int>(c) + 1, rows, rows.at(r, c)); rc != SQLITE_OK) {
        result = BindError(t.spec, rows, r, c, rc);
      }
    }
    if (t.spec.pass_marks) sqlite3_bind_int64(s, static_cast<int>(ncols) + 1, page.pass);
    if (result.ok()) {
      if (int rc = sqlite3_step(s); rc != SQLITE_DONE) {
        step_failed(rc, r);
      } else if (sqlite3_changes64(db_) == 0) {
        ++done.unchanged;
      }
    }
    sqlite3_reset(s);
  };
  size_t next = 0;                        // the next refused row: refused[next]
  const size_t checked = refused.size();  // rows refused before the write (keys)
  auto next_refused = [&] { return next < checked ? refused[next] : nrows; };
  const bool many = t.many_rows > 0 && t.soft_index < 0;
  for (size_t r = 0; r < nrows && result.ok();) {
    if (r == next_refused()) {
      ++next;
      ++r;
      continue;
    }
    if (!many || r + t.many_rows > next_refused()) {
      write_row(r++);
      continue;
    }
    // kRowsPerUpsert rows in one statement, none of them refused so far.
    int p = 1;
    for (size_t k = r; k < r + t.many_rows && result.ok(); ++k) {
      for (size_t c = 0; c < ncols && result.ok(); ++c) {
        if (int rc = BindCell(m, p++, rows, rows.at(k, c)); rc != SQLITE_OK) {
          result = BindError(t.spec, rows, k, c, rc);
        }
      }
      if (t.spec.pass_marks) sqlite3_bind_int64(m, p++, page.pass);
    }
    int rc = result.ok() ? sqlite3_step(m) : SQLITE_DONE;
    sqlite3_reset(m);
    if (rc == SQLITE_DONE && result.ok()) {
      done.unchanged += static_cast<int64_t>(t.many_rows) - sqlite3_changes64(db_);
    }
    if (rc != SQLITE_DONE) {
      if (!RowRefused(rc) || sqlite3_get_autocommit(db_) != 0) {
        result = SqliteError(db_, writing);
      } else {
        // One of these rows is refused: SQLite undid the statement; they go one by one to
        // find it (written again, an upsert leaves the same rows even if it had not).
        for (size_t k = r; k < r + t.many_rows && result.ok(); ++k) write_row(k);
      }
    }
    r += t.many_rows;
  }
  if (t.many_rows > 0) sqlite3_clear_bindings(m);  // the page's text goes
  sqlite3_clear_bindings(s);
  done.refused = static_cast<int64_t>(refused.size());
  done.written = static_cast<int64_t>(nrows) - done.refused - done.flagged - done.unchanged;
  write_rejects(rejects);
  if (result.ok() && page.range && t.range_sweep && t.empty_at_pass != page.pass) {
    // The rows of the page's key range that it does not hold are gone from the source.
    Result<int64_t> swept = SweepKeyRangeOnWriter(t, rows, *page.range);
    if (swept.ok()) {
      done.deleted += *swept;
    } else {
      result = swept.status();
    }
  }
  if (result.ok() && page.sweep && t.sweep.s != nullptr && t.empty_at_pass != page.pass) {
    // The pass is complete: rows no page of it wrote are gone from the source.
    sqlite3_bind_int64(t.sweep.s, 1, page.pass);
    if (sqlite3_step(t.sweep.s) != SQLITE_DONE) {
      result = SqliteError(db_, "sweeping deleted rows of " + t.spec.name);
    }
    done.deleted += sqlite3_changes64(db_);  // beside the page's soft deletes
    sqlite3_reset(t.sweep.s);
  }
  if (result.ok()) {
    sqlite3_stmt* u = t.save_cursor.s;
    std::string json = cursor ? CursorToJson(*cursor) : std::string();
    std::string now = NowIso();
    if (cursor) {
      sqlite3_bind_text(u, 1, json.data(), static_cast<int>(json.size()), SQLITE_STATIC);
    } else {
      sqlite3_bind_null(u, 1);
    }
    sqlite3_bind_int64(u, 2, done.written);
    sqlite3_bind_text(u, 3, now.data(), static_cast<int>(now.size()), SQLITE_STATIC);
    sqlite3_bind_text(u, 4, t.spec.name.data(), static_cast<int>(t.spec.name.size()),
                      SQLITE_STATIC);
    sqlite3_bind_int64(u, 5, page.pass);
    sqlite3_bind_int(u, 6, page.sweep ? 1 : 0);  // a sweep ends a resync
    if (sqlite3_step(u) != SQLITE_DONE) result = SqliteError(db_, "saving the cursor");
    sqlite3_reset(u);
    sqlite3_clear_bindings(u);
  }
  if (result.ok()) {
    if (Status st = ExecOnWriter("COMMIT"); !st.ok()) result = st;
  }
  if (!result.ok()) {
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    t.empty_at_pass = -1;
    return result;
  }
  // The first pages of a run do not wait for a checkpoint: most runs are over by then, and
  // theirs comes after their record. A long run's later pages checkpoint as SQLite would,
  // in small steps the pages in flight absorb.
  if (++t.commits_this_run > kUncheckpointedCommits && wal_frames_ >= kCheckpointFrames) {
    Checkpoint();
  }
  return done;
}

int Target::DenyOtherFiles(void* confine, int action, const char* file, const char*, const char*,
                           const char*) {
  if (confine != nullptr && !*static_cast<const bool*>(confine)) return SQLITE_OK;
  // (A file given as a parameter reaches the authorizer as null: refused too.)
  if (action == SQLITE_ATTACH) return file != nullptr && *file == 0 ? SQLITE_OK : SQLITE_DENY;
  return action == SQLITE_DETACH ? SQLITE_DENY : SQLITE_OK;
}

void Target::Exec(std::string sql, std::vector<CursorValue> params, bool confined,
                  std::function<void(Result<int64_t>)> done) {
  auto result = std::make_shared<Result<int64_t>>(Status());
  writer_->Post(
      [this, sql = std::move(sql), params = std::move(params), confined, result] {
        // The script may add rows to a replicated table: every pass sweeps again.
        for (auto& entry : tables_) entry.second->empty_at_pass = -1;
        // Statements are authorized when prepared: only these, prepared while the flag is
        // on, are confined (the authorizer is installed once, at Open: installing one
        // expires every prepared statement of the connection).
        confine_ = confined;
        struct Off {
          bool& flag;
          ~Off() { flag = false; }
        } off{confine_};
        *result = ExecStatementsOnWriter(sql, params);
        // A transaction the text opened and left open (a statement failing between BEGIN and
        // COMMIT, a BEGIN alone) would hold what it wrote uncommitted and fail every page
        // after it: it ends with the call.
        if (sqlite3_get_autocommit(db_) == 0) {
          ExecOnWriter("ROLLBACK");
          if (result->ok()) {
            *result = Status(ErrorKind::kTarget,
                             "target:exec left a transaction open (BEGIN without COMMIT): it is "
                             "rolled back; give BEGIN … COMMIT in one call");
          } else {
            *result =
                Status(result->status().kind(),
                       result->status().message() + " (the transaction it opened is rolled back)");
          }
        }
      },
      [done = std::move(done), result] { done(std::move(*result)); });
}

Result<int64_t> Target::ExecStatementsOnWriter(const std::string& sql,
                                               const std::vector<CursorValue>& params) {
  const char* tail = sql.c_str();
  const char* end = sql.c_str() + sql.size();
  int64_t changed = 0;
  bool first = true;
  // Every statement of the text runs; the parameters bind to the first one.
  while (tail < end) {
    Stmt s;
    if (sqlite3_prepare_v2(db_, tail, static_cast<int>(end - tail), &s.s, &tail) != SQLITE_OK) {
      return SqliteError(db_, "target:exec");
    }
    if (s.s == nullptr) break;  // only whitespace or comments were left
    if (first) {
      for (size_t i = 0; i < params.size(); ++i) {
        BindCursorValue(s.s, static_cast<int>(i) + 1, params[i], SQLITE_STATIC);
      }
      first = false;
    }
    // sqlite3_changes64 keeps the count of the last INSERT, UPDATE or DELETE: after a CREATE
    // INDEX or a PRAGMA it still gives the last page's rows. Only a statement that changed
    // rows (the total moved) adds its own count.
    const sqlite3_int64 total_before = sqlite3_total_changes64(db_);
    int rc;
    while ((rc = sqlite3_step(s.s)) == SQLITE_ROW) {
    }
    if (rc != SQLITE_DONE) return SqliteError(db_, "target:exec");
    if (sqlite3_total_changes64(db_) != total_before) changed += sqlite3_changes64(db_);
  }
  return changed;
}

Result<bool> TableHasRows(sqlite3* db, const std::string& table) {
  Stmt any;
  std::string sql = "SELECT 1 FROM " + Quote(table) + " LIMIT 1";
  sqlite3_prepare_v2(db, sql.c_str(), -1, &any.s, nullptr);
  int rc = sqlite3_step(any.s);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  return SqliteError(db, "reading " + table);
}

Status KeylessResyncRefused(const std::string& table) {
  return Status(ErrorKind::kConfig, "cannot resync \"" + table +
                                        "\": it has no key (write = \"append\"), so each row "
                                        "read again would be inserted again; give it a key = "
                                        "{ … }, or empty it first (DELETE FROM " +
                                        Quote(table) + ")");
}

Result<int64_t> Target::ResetCursorOnWriter(const std::string& table) {
  // A table without a key (write = "append") has nothing to tell a row read again from one it
  // holds: the re-pull would insert every row a second time.
  Stmt keyless;
  sqlite3_prepare_v2(db_,
                     "SELECT count(*) > 0 AND count(*) FILTER (WHERE pk > 0) = 0 "
                     "FROM pragma_table_info(?1)",
                     -1, &keyless.s, nullptr);
  sqlite3_bind_text(keyless.s, 1, table.c_str(), -1, SQLITE_STATIC);
  if (sqlite3_step(keyless.s) != SQLITE_ROW) {
    return SqliteError(db_, "reading table_info of " + table);
  }
  if (sqlite3_column_int(keyless.s, 0) != 0) {
    Result<bool> rows = TableHasRows(db_, table);
    if (!rows.ok()) return rows.status();
    if (*rows) return KeylessResyncRefused(table);
  }
  Stmt s;
  sqlite3_prepare_v2(db_,
                     "UPDATE _siphon_state SET cursor = NULL, "
                     "resync_pass = coalesce(resync_pass, full_pass + 1) "
                     "WHERE table_name = ?1 RETURNING resync_pass",
                     -1, &s.s, nullptr);
  sqlite3_bind_text(s.s, 1, table.c_str(), -1, SQLITE_STATIC);
  int rc = sqlite3_step(s.s);
  if (rc == SQLITE_DONE) return int64_t{0};  // never synced: the first sync is whole anyway
  if (rc != SQLITE_ROW) return SqliteError(db_, "resetting the cursor of " + table);
  const int64_t pass = sqlite3_column_int64(s.s, 0);
  sqlite3_step(s.s);
  return pass;
}

void Target::ResetCursor(const std::string& table, std::function<void(Result<int64_t>)> done) {
  auto result = std::make_shared<Result<int64_t>>(Status());
  writer_->Post([this, table, result] { *result = ResetCursorOnWriter(table); },
                [done = std::move(done), result] { done(std::move(*result)); });
}

void Target::RecordRun(RunRecord record, std::function<void(Status)> done) {
  // Only a run that changed nothing waits for company: the record of one that wrote, deleted
  // or failed is committed at once (with those waiting before it), as its rows were.
  const bool quiet = record.rows == 0 && record.deleted == 0 && record.error.empty();
  records_.push_back({std::move(record), NowIso(), std::move(done)});
  if (!quiet || records_.size() >= kRecordBatchMax) {
    FlushRecords();
    return;
  }
  if (records_.size() > 1) return;  // the batch's timer is already running
  if (record_timer_ == nullptr) {
    record_timer_ = new uv_timer_t;
    uv_timer_init(loop_, record_timer_);
    record_timer_->data = this;
  }
  uv_timer_start(
      record_timer_,
      [](uv_timer_t* t) {
        if (auto* self = static_cast<Target*>(t->data)) self->FlushRecords();
      },
      kRecordBatchMs, 0);
}

void Target::FlushRecords() {
  if (record_timer_ != nullptr) uv_timer_stop(record_timer_);
  if (records_.empty() || !writer_) return;
  auto batch = std::make_shared<std::vector<PendingRecord>>(std::move(records_));
  records_.clear();
  auto status = std::make_shared<Status>();
  writer_->Post([this, batch, status] { *status = WriteRecordsOnWriter(*batch); },
                [batch, status] {
                  for (auto& r : *batch) {
                    if (r.done) r.done(*status);
                  }
                });
}

Status Target::WriteRecordsOnWriter(const std::vector<PendingRecord>& batch) {
  if (!recorder_) {
    auto r = std::make_unique<Recorder>();
    const std::pair<Stmt*, const char*> sql[] = {
        {&r->begin, "BEGIN IMMEDIATE"},
        {&r->state,
         "INSERT INTO _siphon_state (table_name, last_sync_at, status, last_error, "
         "last_success_at, source, source_table) "
         "VALUES (?4, ?1, ?2, ?3, CASE WHEN ?3 IS NULL THEN ?1 END, ?5, ?6) "
         "ON CONFLICT (table_name) DO UPDATE SET last_sync_at = excluded.last_sync_at, "
         "status = excluded.status, last_error = excluded.last_error, "
         "last_success_at = coalesce(excluded.last_success_at, last_success_at)"},
        {&r->reconciled,
         "UPDATE _siphon_state SET reconciled_at = CASE WHEN ?3 IS NULL THEN ?1 "
         "ELSE reconciled_at END WHERE table_name = ?4 AND ?2 IS NOT NULL"},
        {&r->log,
         "INSERT INTO _siphon_log (at, table_name, event, rows, duration_ms, error, "
         "deleted) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"},
        {&r->trim, "DELETE FROM _siphon_log WHERE id <= (SELECT max(id) FROM _siphon_log) - ?1"},
        {&r->commit, "COMMIT"}};
    for (const auto& [stmt, text] : sql) {
      if (sqlite3_prepare_v3(db_, text, -1, SQLITE_PREPARE_PERSISTENT, &stmt->s, nullptr) !=
          SQLITE_OK) {
        return SqliteError(db_, "recording runs");
      }
    }
    recorder_ = std::move(r);
  }
  Recorder& r = *recorder_;
  auto step = [](Stmt& s) {
    int rc = sqlite3_step(s.s);
    sqlite3_reset(s.s);
    sqlite3_clear_bindings(s.s);
    return rc == SQLITE_DONE;
  };
  if (!step(r.begin)) return SqliteError(db_, "recording runs");
  bool ok = true;
  for (const PendingRecord& pending : batch) {
    const RunRecord& record = pending.record;
    const std::string& at = pending.at;
    // A reconcile only stamps reconciled_at; a sync run updates the table's status.
    Stmt& state = record.reconcile ? r.reconciled : r.state;
    sqlite3_bind_text(state.s, 1, at.c_str(), -1, SQLITE_STATIC);
    sqlite3_bind_text(state.s, 2, record.status.c_str(), -1, SQLITE_STATIC);
    if (record.error.empty()) {
      sqlite3_bind_null(state.s, 3);
    } else {
      sqlite3_bind_text(state.s, 3, record.error.c_str(), -1, SQLITE_STATIC);
    }
    sqlite3_bind_text(state.s, 4, record.table.c_str(), -1, SQLITE_STATIC);
    if (!record.reconcile) {
      sqlite3_bind_text(state.s, 5, record.source.c_str(), -1, SQLITE_STATIC);
      sqlite3_bind_text(state.s, 6, record.source_table.c_str(), -1, SQLITE_STATIC);
    }
    ok = step(state);
    sqlite3_bind_text(r.log.s, 1, at.c_str(), -1, SQLITE_STATIC);
    sqlite3_bind_text(r.log.s, 2, record.table.c_str(), -1, SQLITE_STATIC);
    sqlite3_bind_text(r.log.s, 3, record.event.c_str(), -1, SQLITE_STATIC);
    sqlite3_bind_int64(r.log.s, 4, record.rows);
    sqlite3_bind_int64(r.log.s, 5, record.duration_ms);
    if (record.error.empty()) {
      sqlite3_bind_null(r.log.s, 6);
    } else {
      sqlite3_bind_text(r.log.s, 6, record.error.c_str(), -1, SQLITE_STATIC);
    }
    sqlite3_bind_int64(r.log.s, 7, record.deleted);
    ok = ok && step(r.log);
    // The log keeps the newest kLogRetention rows: trimmed on every 64th row (and on the
    // first of a process), so it holds at most 63 more between trims.
    if (ok && r.logged++ % 64 == 0) {
      sqlite3_bind_int64(r.trim.s, 1, kLogRetention);
      ok = step(r.trim);
    }
    if (!ok) break;
  }
  if (ok && step(r.commit)) {
    // These runs have ended: the WAL they grew is copied into the file now, between runs.
    for (const PendingRecord& pending : batch) {
      if (auto it = tables_.find(pending.record.table); it != tables_.end()) {
        it->second->commits_this_run = 0;
      }
    }
    if (wal_frames_ >= kCheckpointFrames) Checkpoint();
    return Status::Ok();
  }
  Status st = SqliteError(db_, "recording runs of " + batch.front().record.table +
                                   (batch.size() > 1 ? " and others" : ""));
  sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
  return st;
}

namespace {

CursorValue ColumnValue(sqlite3_stmt* s, int col) {
  switch (sqlite3_column_type(s, col)) {
    case SQLITE_INTEGER:
      return static_cast<int64_t>(sqlite3_column_int64(s, col));
    case SQLITE_FLOAT:
      return sqlite3_column_double(s, col);
    case SQLITE_TEXT:
      return std::string(reinterpret_cast<const char*>(sqlite3_column_text(s, col)),
                         static_cast<size_t>(sqlite3_column_bytes(s, col)));
    case SQLITE_BLOB: {
      const void* p = sqlite3_column_blob(s, col);
      return Bytes{
          std::string(static_cast<const char*>(p),
                      p == nullptr ? 0 : static_cast<size_t>(sqlite3_column_bytes(s, col)))};
    }
    default:
      return std::monostate{};
  }
}

// Runs `sql` with `params` and calls `row` for each result row.
Status ForEachRow(sqlite3* db, const std::string& sql, const std::vector<CursorValue>& params,
                  const std::function<void(sqlite3_stmt*)>& row) {
  Stmt s;
  if (sqlite3_prepare_v2(db, sql.c_str(), -1, &s.s, nullptr) != SQLITE_OK) {
    return SqliteError(db, "reconcile");
  }
  for (size_t i = 0; i < params.size(); ++i)
    BindCursorValue(s.s, static_cast<int>(i) + 1, params[i], SQLITE_STATIC);
  int rc;
  while ((rc = sqlite3_step(s.s)) == SQLITE_ROW) row(s.s);
  if (rc != SQLITE_DONE) return SqliteError(db, "reconcile");
  return Status::Ok();
}

}  // namespace

Status Target::OpenReaderOnReader() {
  if (reader_db_ != nullptr) return Status::Ok();
  if (sqlite3_open_v2(path_.c_str(), &reader_db_, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX,
                      nullptr) != SQLITE_OK) {
    Status st = SqliteError(reader_db_, "opening a reader of " + path_);
    sqlite3_close_v2(reader_db_);
    reader_db_ = nullptr;
    return st;
  }
  sqlite3_busy_timeout(reader_db_, 10000);
  return RegisterKeyHash(reader_db_);
}

template <typename T>
void Target::OnReader(std::function<Result<T>()> work, std::function<void(Result<T>)> done) {
  if (!reader_) reader_ = std::make_unique<WorkerThread>(loop_);
  auto result = std::make_shared<Result<T>>(Status());
  reader_->Post(
      [this, work = std::move(work), result] {
        if (Status st = OpenReaderOnReader(); !st.ok()) {
          *result = st;
          return;
        }
        *result = work();
      },
      [done = std::move(done), result] { done(std::move(*result)); });
}

void Target::DigestKeys(const std::string& table, std::vector<std::string> key, KeyRange range,
                        size_t parts, std::function<void(Result<KeyRangeScan>)> done) {
  OnReader<KeyRangeScan>(
      [this, table, key = std::move(key), range = std::move(range),
       parts]() -> Result<KeyRangeScan> {
        std::vector<CursorValue> params;
        const std::string where = RangeWhere(key, range, params);
        const std::string from = " FROM " + Quote(table) + where;
        int64_t total = 0;
        if (parts > 1) {
          Status st = ForEachRow(reader_db_, "SELECT count(*)" + from, params,
                                 [&total](sqlite3_stmt* s) { total = sqlite3_column_int64(s, 0); });
          if (!st.ok()) return st;
        }
        const int64_t n = static_cast<int64_t>(std::max<size_t>(parts, 1));
        const int64_t per_part = std::max<int64_t>(1, (total + n - 1) / n);
        KeyRangeScan scan;
        scan.digests.emplace_back();
        int64_t in_part = 0;
        const int width = static_cast<int>(key.size());
        const std::string tuple = KeyTuple(key);
        Status st = ForEachRow(
            reader_db_,
            "SELECT " + tuple + ", siphon_key_hash(" + tuple + ")" + from + " ORDER BY " + tuple,
            params, [&](sqlite3_stmt* s) {
              scan.digests.back().Add(static_cast<uint64_t>(sqlite3_column_int64(s, width)));
              if (++in_part < per_part || static_cast<int64_t>(scan.digests.size()) >= n) return;
              Cursor split;
              for (int i = 0; i < width; ++i) split.push_back(ColumnValue(s, i));
              scan.splits.push_back(std::move(split));
              scan.digests.emplace_back();
              in_part = 0;
            });
        if (!st.ok()) return st;
        if (!scan.splits.empty() && scan.digests.back().count == 0) {
          // The last part came out empty: its cut is the range's end.
          scan.splits.pop_back();
          scan.digests.pop_back();
        }
        return scan;
      },
      std::move(done));
}

void Target::ListKeys(const std::string& table, std::vector<std::string> key, KeyRange range,
                      std::function<void(Result<std::vector<Cursor>>)> done) {
  OnReader<std::vector<Cursor>>(
      [this, table, key = std::move(key),
       range = std::move(range)]() -> Result<std::vector<Cursor>> {
        std::vector<CursorValue> params;
        const std::string tuple = KeyTuple(key);
        const std::string sql = "SELECT " + tuple + " FROM " + Quote(table) +
                                RangeWhere(key, range, params) + " ORDER BY " + tuple;
        std::vector<Cursor> keys;
        const int width = static_cast<int>(key.size());
        Status st = ForEachRow(reader_db_, sql, params, [&](sqlite3_stmt* s) {
          Cursor k;
          for (int i = 0; i < width; ++i) k.push_back(ColumnValue(s, i));
          keys.push_back(std::move(k));
        });
        if (!st.ok()) return st;
        return keys;
      },
      std::move(done));
}

void Target::DeleteKeys(const std::string& table, std::vector<std::string> key,
                        std::vector<Cursor> gone, std::vector<KeyRespelling> respelled,
                        std::function<void(Result<int64_t>)> done) {
  auto result = std::make_shared<Result<int64_t>>(Status());
  writer_->Post(
      [this, table, key = std::move(key), gone = std::move(gone), respelled = std::move(respelled),
       result] {
        // "k1 = ?first <sep> k2 = ?first+1 ...": the key columns as a WHERE (" AND ") or a
        // SET (", ") of parameters from `first`.
        auto key_is = [&key](size_t first, const char* sep = " AND ") {
          std::string list;
          for (size_t i = 0; i < key.size(); ++i) {
            list += (i ? sep : "") + Quote(key[i]) + " = ?" + std::to_string(first + i);
          }
          return list;
        };
        const std::string set = key_is(key.size() + 1, ", ");
        if (Status st = ExecOnWriter("BEGIN IMMEDIATE"); !st.ok()) {
          *result = st;
          return;
        }
        Stmt d, u;
        Status st;
        int64_t deleted = 0;
        const std::string q = Quote(table);
        const std::string del = "DELETE FROM " + q + " WHERE " + key_is(1);
        const std::string upd = "UPDATE " + q + " SET " + set + " WHERE " + key_is(1) +
                                " AND NOT EXISTS (SELECT 1 FROM " + q + " WHERE " +
                                key_is(key.size() + 1) + ")";
        if (sqlite3_prepare_v2(db_, del.c_str(), -1, &d.s, nullptr) != SQLITE_OK ||
            (!respelled.empty() &&
             sqlite3_prepare_v2(db_, upd.c_str(), -1, &u.s, nullptr) != SQLITE_OK)) {
          st = SqliteError(db_, "preparing the reconcile delete of " + table);
        }
        auto step = [&](sqlite3_stmt* s, const Cursor& k, const Cursor* to) -> int64_t {
          for (size_t i = 0; i < k.size(); ++i) {
            BindCursorValue(s, static_cast<int>(i) + 1, k[i], SQLITE_STATIC);
          }
          for (size_t i = 0; to != nullptr && i < to->size(); ++i) {
            BindCursorValue(s, static_cast<int>(k.size() + i) + 1, (*to)[i], SQLITE_STATIC);
          }
          int64_t changed = 0;
          if (sqlite3_step(s) != SQLITE_DONE) {
            st = SqliteError(db_, "reconciling the keys of " + table);
          } else {
            changed = sqlite3_changes64(db_);
          }
          sqlite3_reset(s);
          return changed;
        };
        for (size_t r = 0; r < gone.size() && st.ok(); ++r) deleted += step(d.s, gone[r], nullptr);
        for (size_t r = 0; r < respelled.size() && st.ok(); ++r) {
          // Nothing updated: a row holds the source's spelling already (the update that
          // respelled the key moved its cursor), and this one is its stale twin.
          const KeyRespelling& k = respelled[r];
          if (step(u.s, k.target, &k.source) == 0 && st.ok()) {
            deleted += step(d.s, k.target, nullptr);
          }
        }
        if (st.ok()) st = ExecOnWriter("COMMIT");
        if (!st.ok()) {
          sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
          *result = st;
          return;
        }
        *result = deleted;
      },
      [done = std::move(done), result] { done(std::move(*result)); });
}

}  // namespace siphon

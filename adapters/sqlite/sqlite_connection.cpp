#include "adapters/sqlite/sqlite_connection.hpp"

#include <sqlite3.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string_view>

#include "adapters/first_null_sql.hpp"
#include "adapters/sqlite/sqlite_dialect.hpp"
#include "runtime/base/file_id.hpp"
#include "runtime/base/spelling.hpp"
#include "runtime/base/sqlite_value.hpp"

namespace siphon::sqlite_source {

struct SqliteConnection::Handle {
  sqlite3* db = nullptr;
  // The file opened (stat before opening): a path that names another file is reopened.
  std::optional<FileId> file;
  ~Handle() {
    if (db) sqlite3_close_v2(db);
  }
};

namespace {

struct Job {
  uv_work_t req;
  std::function<void()> work;
  std::function<void()> finish;
  std::shared_ptr<bool> alive;
};

// "file:" URI of a path: '%', '?' and '#' would otherwise be read as URI syntax.
std::string FileUri(const std::string& path) {
  std::string uri = "file:";
  for (char c : path) {
    if (c == '%' || c == '?' || c == '#') {
      char buf[4];
      snprintf(buf, sizeof buf, "%%%02X", static_cast<unsigned char>(c));
      uri += buf;
    } else {
      uri.push_back(c);
    }
  }
  return uri + "?mode=ro";
}

// Whether `path` is a WAL-mode database whose -shm file is missing and cannot be made: a
// reader needs one (it creates it, and an empty -wal, when the folder lets it), and SQLite
// says "attempt to write a readonly database" for a reader without one.
bool WalFilesMissing(const std::string& path) {
  unsigned char header[20] = {};
  FILE* file = fopen(path.c_str(), "rb");
  if (!file) return false;
  const bool wal = fread(header, 1, sizeof header, file) == sizeof header &&
                   memcmp(header, "SQLite format 3", 16) == 0 && header[18] == 2;
  fclose(file);
  if (!wal || access((path + "-shm").c_str(), F_OK) == 0) return false;
  const size_t slash = path.rfind('/');
  const std::string folder = slash == std::string::npos ? "."
                             : slash == 0               ? "/"
                                                        : path.substr(0, slash);
  return access(folder.c_str(), W_OK) != 0;
}

Status WalFilesError(const std::string& path) {
  // Transient: the application creates them when it opens the file.
  return Status(ErrorKind::kConnect,
                "open " + path +
                    ": the file is in WAL mode, and reading it needs its -wal and -shm files, "
                    "which are not there (the application has it closed) and which siphon "
                    "cannot create in that folder: let siphon's user write to the folder, or "
                    "keep the database open in the application");
}

Status SqliteError(sqlite3* db, int rc, const std::string& context) {
  std::string message = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  ErrorKind kind = ErrorKind::kQuery;
  int primary = rc & 0xff;
  if (primary == SQLITE_CANTOPEN) kind = ErrorKind::kConnect;
  // A file that is no database is the script's wrong path. A damaged one is not the script's
  // mistake (exit 1, not 2), and may be a copy still being written over the file: retried.
  if (primary == SQLITE_NOTADB) kind = ErrorKind::kConfig;
  if (primary == SQLITE_INTERRUPT) kind = ErrorKind::kCancelled;
  // SQLITE_ERROR is the statement's: a missing table, column or function, a mistake in a
  // `query` (a syntax error is the script's). A lock or I/O error stays transient.
  if (primary == SQLITE_ERROR) {
    kind =
        message.find("syntax error") != std::string::npos ? ErrorKind::kConfig : ErrorKind::kSchema;
  }
  // A writer that stopped in the middle of a transaction (a crash, a kill) left its journal:
  // only a writer rolls it back, and SQLite says "attempt to write a readonly database".
  if (db && sqlite3_extended_errcode(db) == SQLITE_READONLY_ROLLBACK) {
    message =
        "a writer stopped in the middle of a transaction and left its rollback journal (the "
        "file's -journal), which only a writer can roll back: the application does so when it "
        "next opens the database, and siphon reads it then";
  }
  return Status(kind, context + ": " + message);
}

// A prepared statement that finalizes itself.
struct Statement {
  sqlite3_stmt* stmt = nullptr;
  ~Statement() { sqlite3_finalize(stmt); }
};

// A row whose key column holds NULL: SQLite lets a PRIMARY KEY column not declared NOT NULL
// hold one in a table with a rowid.
Status NullKey(const std::string& table, const std::string& column) {
  return Status(ErrorKind::kSchema,
                "a row of " + table + " has no value in key column \"" + column +
                    "\" (SQLite lets a PRIMARY KEY column that is not declared NOT NULL hold "
                    "NULL): it cannot be replicated under its key nor paged past. Give the row a "
                    "key, or delete it");
}

// The UNIQUE indexes and constraints of a table (a view has none), each with why it cannot
// identify rows as a primary key would: partial, an expression, or a column compared under
// a collation not its own (pages compare by the column's: a NOCASE column under a BINARY
// index can hold "a" and "A", equal to a page). Nullability is TakeKeyFromUniqueIndex's.
Result<std::vector<UniqueIndex>> UniqueIndexes(sqlite3* db, const TableRef& ref) {
  std::vector<UniqueIndex> out;
  Statement list;
  int rc = sqlite3_prepare_v2(
      db, "SELECT name, partial FROM pragma_index_list(?1, ?2) WHERE \"unique\" AND origin <> 'pk'",
      -1, &list.stmt, nullptr);
  if (rc != SQLITE_OK) return SqliteError(db, rc, "listing the indexes");
  sqlite3_bind_text(list.stmt, 1, ref.table.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(list.stmt, 2, ref.schema.c_str(), -1, SQLITE_TRANSIENT);
  while ((rc = sqlite3_step(list.stmt)) == SQLITE_ROW) {
    UniqueIndex index;
    index.name = reinterpret_cast<const char*>(sqlite3_column_text(list.stmt, 0));
    if (sqlite3_column_int(list.stmt, 1) != 0)
      index.unusable = "is partial (it has a WHERE clause)";
    Statement columns;
    int crc = sqlite3_prepare_v2(db,
                                 "SELECT cid, name, coll FROM pragma_index_xinfo(?1, ?2) "
                                 "WHERE key ORDER BY seqno",
                                 -1, &columns.stmt, nullptr);
    if (crc != SQLITE_OK) return SqliteError(db, crc, "reading index " + index.name);
    sqlite3_bind_text(columns.stmt, 1, index.name.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(columns.stmt, 2, ref.schema.c_str(), -1, SQLITE_TRANSIENT);
    while ((crc = sqlite3_step(columns.stmt)) == SQLITE_ROW) {
      if (sqlite3_column_int(columns.stmt, 0) < 0) {  // -2: an expression; -1: the rowid
        if (index.unusable.empty()) index.unusable = "indexes an expression";
        continue;
      }
      const std::string name = reinterpret_cast<const char*>(sqlite3_column_text(columns.stmt, 1));
      const unsigned char* coll = sqlite3_column_text(columns.stmt, 2);
      const char* own = nullptr;
      if (sqlite3_table_column_metadata(db, ref.schema.c_str(), ref.table.c_str(), name.c_str(),
                                        nullptr, &own, nullptr, nullptr, nullptr) == SQLITE_OK &&
          coll != nullptr && own != nullptr &&
          sqlite3_stricmp(reinterpret_cast<const char*>(coll), own) != 0 &&
          index.unusable.empty()) {
        index.unusable = "compares the column \"" + name + "\" under a collation not its own";
      }
      index.columns.push_back(name);
    }
    if (crc != SQLITE_DONE) return SqliteError(db, crc, "reading index " + index.name);
    out.push_back(std::move(index));
  }
  if (rc != SQLITE_DONE) return SqliteError(db, rc, "listing the indexes");
  return out;
}

// Whether result column `i` of `stmt` is a table column as it is, NOT NULL or in its PRIMARY
// KEY (taken as NOT NULL, as Reflect does; pages are checked for NULL keys all the same).
bool FromNotNullColumn(sqlite3* db, sqlite3_stmt* stmt, int i) {
  const char* origin_db = sqlite3_column_database_name(stmt, i);
  const char* origin_table = sqlite3_column_table_name(stmt, i);
  const char* origin_column = sqlite3_column_origin_name(stmt, i);
  int not_null = 0, primary = 0;
  return origin_db && origin_table && origin_column &&
         sqlite3_table_column_metadata(db, origin_db, origin_table, origin_column, nullptr, nullptr,
                                       &not_null, &primary, nullptr) == SQLITE_OK &&
         (not_null || primary);
}

// The tables and views of `ref`'s schema spelled closest to its table, as `from` names them
// (with the schema when `from` has it): what a "not found" suggests. A failing look-up only
// leaves them out.
std::vector<std::string> SimilarTables(sqlite3* db, const std::string& from, const TableRef& ref) {
  Statement list;
  if (sqlite3_prepare_v2(db,
                         "SELECT name FROM pragma_table_list WHERE schema = ?1"
                         " AND type IN ('table', 'view') AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'"
                         " ORDER BY name",
                         -1, &list.stmt, nullptr) != SQLITE_OK) {
    return {};
  }
  sqlite3_bind_text(list.stmt, 1, ref.schema.c_str(), -1, SQLITE_TRANSIENT);
  std::vector<std::string> names;
  while (sqlite3_step(list.stmt) == SQLITE_ROW) {
    names.emplace_back(reinterpret_cast<const char*>(sqlite3_column_text(list.stmt, 0)));
  }
  std::vector<std::string> similar = ClosestNames(ref.table, names, 3);
  if (from.rfind(ref.schema + ".", 0) == 0) {
    for (auto& name : similar) name = ref.schema + "." + name;
  }
  return similar;
}

}  // namespace

SqliteConnection::SqliteConnection(uv_loop_t* loop, std::string path)
    : loop_(loop), path_(std::move(path)), alive_(std::make_shared<bool>(true)) {}

SqliteConnection::~SqliteConnection() {
  *alive_ = false;
  // A page still running on a worker stops at its next row; the worker closes the handle.
  if (handle_ && in_flight_ > 0 && handle_->db) sqlite3_interrupt(handle_->db);
}

void SqliteConnection::Submit(std::function<void()> work, std::function<void()> finish) {
  auto* job = new Job{uv_work_t{}, std::move(work), std::move(finish), alive_};
  job->req.data = job;
  ++in_flight_;
  int rc = uv_queue_work(
      loop_, &job->req, [](uv_work_t* req) { static_cast<Job*>(req->data)->work(); },
      [](uv_work_t* req, int) {
        std::unique_ptr<Job> job(static_cast<Job*>(req->data));
        if (!*job->alive) return;
        job->finish();
      });
  if (rc != 0) {
    // Only fails for a bad loop or request; run inline so the caller still gets its answer.
    job->work();
    std::unique_ptr<Job> owned(job);
    owned->finish();
  }
}

bool SqliteConnection::Refuse(const std::function<void(Status)>& fail) {
  Status status;
  if (in_flight_ > 0) {
    status = Status(ErrorKind::kQuery, "sqlite connection is busy");
  } else if (!handle_) {
    status = Status(ErrorKind::kConnect, "not connected to " + path_);
  } else {
    return false;
  }
  FailLater(fail, status);
  return true;
}

bool SqliteConnection::Cancelled(int generation, const std::function<void(Status)>& fail) {
  if (generation == generation_) return false;
  fail(Status(ErrorKind::kCancelled, "sqlite connection closed"));
  return true;
}

void SqliteConnection::Connect(std::function<void(Status)> done) {
  if (in_flight_ > 0) {
    Refuse(done);
    return;
  }
  auto current = handle_;
  auto opened = std::make_shared<std::shared_ptr<Handle>>();
  auto status = std::make_shared<Status>();
  std::string path = path_;
  Submit(
      [current, opened, status, path] {
        // An open handle keeps reading the file it opened: one deleted, or replaced by
        // another under its name (a new copy renamed over it), is noticed here and the path
        // is opened again, which fails clearly when nothing is there.
        const std::optional<FileId> file = FileIdOf(path);
        if (file && current && file == current->file) {
          *opened = current;
          return;
        }
        auto handle = std::make_shared<Handle>();
        handle->file = file;
        int rc = sqlite3_open_v2(FileUri(path).c_str(), &handle->db,
                                 SQLITE_OPEN_READONLY | SQLITE_OPEN_URI, nullptr);
        if (rc != SQLITE_OK) {
          *status = SqliteError(handle->db, rc, "open " + path + " (read-only)");
          // SQLite's "unable to open database file" does not say that nothing is there. A
          // path that names nothing is the script's (a typo, the wrong folder), not a
          // passing failure: `once` gives up at once (exit 2) rather than retrying it for
          // seconds, and `run` retries every failure anyway, so a file that appears later is
          // still read.
          std::error_code ec;
          if (!std::filesystem::exists(path, ec) && !ec) {
            *status = Status(ErrorKind::kConfig, status->message() + " (no such file)");
          }
          return;
        }
        // Wait for a writer's lock rather than fail at once (this is a worker thread).
        sqlite3_busy_timeout(handle->db, 5000);
        if (Status st = RegisterKeyHash(handle->db); !st.ok()) {
          *status = st;
          return;
        }
        // Opening is lazy: reading the schema proves the file is a database.
        rc = sqlite3_exec(handle->db, "SELECT count(*) FROM sqlite_schema", nullptr, nullptr,
                          nullptr);
        if (rc != SQLITE_OK) {
          *status = WalFilesMissing(path) ? WalFilesError(path)
                                          : SqliteError(handle->db, rc, "open " + path);
          return;
        }
        *opened = handle;
      },
      [this, opened, status, done, generation = generation_] {
        --in_flight_;
        if (Cancelled(generation, done)) return;
        handle_ = status->ok() ? *opened : nullptr;
        done(*status);
      });
}

// Runs `work` on the worker with the connection's database; `done` gets its schema.
void SqliteConnection::Describe(std::function<Result<TableSchema>(sqlite3*)> work,
                                std::function<void(Result<TableSchema>)> done) {
  auto fail = [done](Status s) { done(std::move(s)); };
  if (Refuse(fail)) return;
  auto handle = handle_;
  auto result = std::make_shared<Result<TableSchema>>(Status(ErrorKind::kSchema, ""));
  Submit([handle, result, work = std::move(work)] { *result = work(handle->db); },
         [this, result, done, fail, generation = generation_] {
           --in_flight_;
           if (Cancelled(generation, fail)) return;
           done(std::move(*result));
         });
}

void SqliteConnection::Reflect(const std::string& table,
                               std::function<void(Result<TableSchema>)> done) {
  Describe(
      [table](sqlite3* db) -> Result<TableSchema> {
        TableRef ref = SplitTableName(table);
        TableSchema schema;
        schema.qualified_name = table;
        Statement columns;
        int rc = sqlite3_prepare_v2(
            db, "SELECT name, type, \"notnull\", pk, hidden FROM pragma_table_xinfo(?1, ?2)", -1,
            &columns.stmt, nullptr);
        if (rc != SQLITE_OK) {
          return SqliteError(db, rc, "reflect " + table);
        }
        sqlite3_bind_text(columns.stmt, 1, ref.table.c_str(), -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(columns.stmt, 2, ref.schema.c_str(), -1, SQLITE_TRANSIENT);
        std::vector<std::pair<int, std::string>> key;
        while ((rc = sqlite3_step(columns.stmt)) == SQLITE_ROW) {
          if (sqlite3_column_int(columns.stmt, 4) == 1) continue;  // virtual-table hidden column
          ColumnInfo column;
          column.name = reinterpret_cast<const char*>(sqlite3_column_text(columns.stmt, 0));
          const unsigned char* type = sqlite3_column_text(columns.stmt, 1);
          column.source_type = type ? reinterpret_cast<const char*>(type) : "";
          SqliteTypeClass cls = ClassifyDeclaredType(column.source_type);
          column.type = cls.type;
          column.order = cls.order;
          column.nullable = sqlite3_column_int(columns.stmt, 2) == 0;
          int pk = sqlite3_column_int(columns.stmt, 3);
          if (pk > 0) key.emplace_back(pk, column.name);
          schema.columns.push_back(std::move(column));
        }
        if (rc != SQLITE_DONE) {
          // A view over a table since dropped (SQLite allows it) says "no such table: main.t"
          // here: a broken object the script names, as a missing table is.
          if (std::string_view(sqlite3_errmsg(db)).starts_with("no such table: ")) {
            return Status(ErrorKind::kConfig,
                          "table " + table + " cannot be read: " + sqlite3_errmsg(db));
          }
          return SqliteError(db, rc, "reflect " + table);
        }
        // A `from` that names no table is the script's mistake, as a column it names that
        // is not there is.
        // A `from` that names no table is the script's mistake, as a column it names that
        // is not there is.
        if (schema.columns.empty()) {
          return Status(ErrorKind::kConfig, "table " + table + " not found" +
                                                DidYouMeanFrom(SimilarTables(db, table, ref)));
        }
        std::sort(key.begin(), key.end());
        for (auto& k : key) schema.primary_key.push_back(k.second);
        // A PRIMARY KEY is taken as NOT NULL, as it is in any other database. An INTEGER one
        // is the rowid and never NULL; another one not declared NOT NULL may hold a NULL in a
        // table with a rowid (a quirk SQLite keeps for old files), and Pull fails on it.
        for (const std::string& k : schema.primary_key) {
          schema.columns[schema.Find(k)].nullable = false;
        }
        // A view's column taken as it is from a table column is NOT NULL when that one is
        // (its catalog says every column may be NULL), so a view can be paged by a key.
        Statement view;
        std::string select =
            "SELECT * FROM " + QuoteIdent(ref.schema) + "." + QuoteIdent(ref.table);
        if (schema.primary_key.empty() &&
            sqlite3_prepare_v2(db, select.c_str(), -1, &view.stmt, nullptr) == SQLITE_OK) {
          for (int i = 0; i < sqlite3_column_count(view.stmt); ++i) {
            int at = schema.Find(sqlite3_column_name(view.stmt, i));
            if (at >= 0 && FromNotNullColumn(db, view.stmt, i)) schema.columns[at].nullable = false;
          }
        }
        if (schema.primary_key.empty()) {
          Result<std::vector<UniqueIndex>> indexes = UniqueIndexes(db, ref);
          if (!indexes.ok()) return indexes.status().WithContext("reflect " + table);
          TakeKeyFromUniqueIndex(schema, *indexes);
        }
        // The largest rowid is a cheap estimate (WITHOUT ROWID tables and views have none).
        Statement estimate;
        std::string sql =
            "SELECT max(_rowid_) FROM " + QuoteIdent(ref.schema) + "." + QuoteIdent(ref.table);
        if (sqlite3_prepare_v2(db, sql.c_str(), -1, &estimate.stmt, nullptr) == SQLITE_OK &&
            sqlite3_step(estimate.stmt) == SQLITE_ROW &&
            sqlite3_column_type(estimate.stmt, 0) == SQLITE_INTEGER) {
          schema.row_estimate = sqlite3_column_int64(estimate.stmt, 0);
        }
        return schema;
      },
      std::move(done));
}

void SqliteConnection::ReflectQuery(const std::string& query,
                                    std::function<void(Result<TableSchema>)> done) {
  Describe(
      [query](sqlite3* db) -> Result<TableSchema> {
        // Preparing the query describes it (nothing runs): each column's declared type where
        // it is a table column as it is, and the column it comes from, whose NOT NULL holds.
        TableSchema schema;
        schema.qualified_name = "query";
        schema.query = query;
        Statement select;
        const std::string sql = "SELECT * FROM " + From(schema);
        int rc = sqlite3_prepare_v2(db, sql.c_str(), -1, &select.stmt, nullptr);
        if (rc != SQLITE_OK) {
          // SQLite says "no such table: app.notes" (a schema not attached included) and "no
          // such column: n.bdy" with the code of any mistake in a statement, SQLITE_ERROR.
          const bool no_table = std::string_view(sqlite3_errmsg(db)).starts_with("no such table: ");
          const bool no_column =
              std::string_view(sqlite3_errmsg(db)).starts_with("no such column: ");
          Status st = SqliteError(db, rc, "reflect the query");
          return no_table ? QueryTableNotFound(st) : no_column ? QueryColumnNotFound(st) : st;
        }
        // Read through a sub-select, a second "id" is renamed "id:1": the names are the
        // query's own, compared as SQLite compares names (ASCII case ignored).
        Statement bare;
        if (sqlite3_prepare_v2(db, query.c_str(), -1, &bare.stmt, nullptr) != SQLITE_OK ||
            sqlite3_column_count(bare.stmt) != sqlite3_column_count(select.stmt)) {
          return Status(ErrorKind::kConfig, "the query must be a single SELECT");
        }
        for (int i = 0; i < sqlite3_column_count(bare.stmt); ++i) {
          for (int j = 0; j < i; ++j) {
            if (sqlite3_stricmp(sqlite3_column_name(bare.stmt, i),
                                sqlite3_column_name(bare.stmt, j)) == 0) {
              return Status(ErrorKind::kConfig, "the query returns two columns named \"" +
                                                    std::string(sqlite3_column_name(bare.stmt, i)) +
                                                    "\": give them distinct names (AS …)");
            }
          }
        }
        for (int i = 0; i < sqlite3_column_count(select.stmt); ++i) {
          ColumnInfo column;
          column.name = sqlite3_column_name(select.stmt, i);
          const char* type = sqlite3_column_decltype(select.stmt, i);
          column.source_type = type ? type : "";
          SqliteTypeClass cls = ClassifyDeclaredType(column.source_type);
          column.type = cls.type;
          column.order = cls.order;
          column.nullable = !FromNotNullColumn(db, select.stmt, i);
          schema.columns.push_back(std::move(column));
        }
        if (schema.columns.empty()) {
          return Status(ErrorKind::kConfig, "the query returns no columns");
        }
        return schema;
      },
      std::move(done));
}

std::string SqliteConnection::PageSql(const TableSchema& table, const PageQuery& query) const {
  Result<std::string> sql = BuildPageSql(table, query);
  return sql.ok() ? *sql : "-- " + sql.status().ToString();
}

void SqliteConnection::Pull(const TableSchema& table, const PageQuery& query,
                            std::function<void(Result<RowBatch>)> done) {
  auto fail = [done](Status s) { done(std::move(s)); };
  if (Refuse(fail)) return;
  Result<std::string> sql = BuildPageSql(table, query);
  if (!sql.ok()) {
    FailLater(fail, sql.status());
    return;
  }
  // The values bound to ?1…?n.
  std::vector<CursorValue> params;
  if (query.after && !query.order_by.empty()) {
    if (query.after->size() != query.order_by.size()) {
      FailLater(fail, Status(ErrorKind::kType,
                             "cursor of " + table.qualified_name + " has " +
                                 std::to_string(query.after->size()) + " values for " +
                                 std::to_string(query.order_by.size()) + " order columns"));
      return;
    }
    if (query.lookback_seconds) {
      auto bound = LookbackBound((*query.after)[0], *query.lookback_seconds);
      params.push_back(bound ? *bound : (*query.after)[0]);
    } else {
      params = *query.after;
    }
  }
  size_t columns = query.columns.empty() ? table.columns.size() : query.columns.size();
  // Rows the collation holds equal whose bytes differ carry keys telling so (order_keys).
  if (std::vector<size_t> keyed = OrderKeyColumns(table, query); !keyed.empty()) {
    done = [done = std::move(done), keyed = std::move(keyed)](Result<RowBatch> rows) {
      if (rows.ok()) {
        rows->order_keys.reserve(rows->rows());
        for (size_t r = 0; r < rows->rows(); ++r) {
          rows->order_keys.push_back(OrderKeyOf(*rows, r, keyed));
        }
      }
      done(std::move(rows));
    };
  }
  if (!table.query.empty()) {  // the sync run checks a query's keys itself
    RunRows(std::move(*sql), std::move(params), columns, "pull " + table.qualified_name,
            query.limit, std::move(done));
    return;
  }
  // A PRIMARY KEY column not declared NOT NULL may hold NULL (Reflect takes it as NOT NULL).
  // Such a row comes in a page (NULL sorts first, so a pass from the start meets it at once)
  // or, once past the start, never: the comparison with the cursor is NULL. A page fails on
  // one, and a page past the start first looks for one in its first order column.
  std::optional<Guard> guard;
  const bool rowid_key = table.primary_key.size() == 1 &&
                         IsRowidType(table.columns[table.Find(table.primary_key[0])].source_type);
  // A key taken from a UNIQUE index is over columns declared NOT NULL: none to look for.
  if (query.after && !query.order_by.empty() && !rowid_key && !table.primary_key.empty() &&
      table.key_index.empty() && query.order_by[0] == table.primary_key[0]) {
    guard = Guard{FirstNullSql({query.order_by[0]}, QuoteIdent, From(table)),
                  NullKey(table.qualified_name, query.order_by[0])};
  }
  std::vector<std::pair<size_t, std::string>> order;  // position in the page, column
  for (const std::string& name : query.order_by) {
    auto it = std::find(query.columns.begin(), query.columns.end(), name);
    int at = query.columns.empty()       ? table.Find(name)
             : it == query.columns.end() ? -1
                                         : static_cast<int>(it - query.columns.begin());
    if (at >= 0) order.emplace_back(at, name);
  }
  RunRows(
      std::move(*sql), std::move(params), columns, "pull " + table.qualified_name, query.limit,
      [done, order, table_name = table.qualified_name](Result<RowBatch> rows) {
        if (rows.ok()) {
          for (size_t r = 0; r < rows->rows(); ++r) {
            for (const auto& [at, name] : order) {
              if (rows->at(r, at).type == ValueType::kNull) {
                return done(NullKey(table_name, name));
              }
            }
          }
        }
        done(std::move(rows));
      },
      std::move(guard));
}

void SqliteConnection::FirstNull(const TableSchema& table, const std::vector<std::string>& columns,
                                 std::function<void(Result<std::optional<std::string>>)> done) {
  auto fail = [done](Status s) { done(std::move(s)); };
  if (Refuse(fail)) return;
  RunRows(FirstNullSql(columns, QuoteIdent, From(table)), {}, 1, "look for NULL keys", 1,
          [columns, done](Result<RowBatch> rows) {
            if (!rows.ok()) return done(rows.status());
            if (rows->rows() == 0) return done(std::optional<std::string>());
            done(std::optional<std::string>(FirstNullColumn(columns, rows->at(0, 0).i)));
          });
}

void SqliteConnection::RunRows(std::string sql, std::vector<CursorValue> params, size_t columns,
                               std::string context, size_t expected_rows,
                               std::function<void(Result<RowBatch>)> done,
                               std::optional<Guard> guard) {
  auto fail = [done](Status s) { done(std::move(s)); };
  auto handle = handle_;
  auto result = std::make_shared<Result<RowBatch>>(Status(ErrorKind::kQuery, ""));
  Submit(
      [handle, result, sql = std::move(sql), params = std::move(params), columns, context,
       expected_rows, guard = std::move(guard)] {
        sqlite3* db = handle->db;
        int rc;
        if (guard) {
          Statement probe;
          rc = sqlite3_prepare_v2(db, guard->sql.c_str(), -1, &probe.stmt, nullptr);
          if (rc == SQLITE_OK) rc = sqlite3_step(probe.stmt);
          if (rc == SQLITE_ROW) {
            *result = guard->error;
            return;
          }
          if (rc != SQLITE_DONE) {
            *result = SqliteError(db, rc, context);
            return;
          }
        }
        Statement page;
        rc = sqlite3_prepare_v2(db, sql.c_str(), -1, &page.stmt, nullptr);
        if (rc != SQLITE_OK) {
          *result = SqliteError(db, rc, context);
          return;
        }
        for (size_t i = 0; i < params.size(); ++i) {
          BindCursorValue(page.stmt, static_cast<int>(i + 1), params[i]);
        }
        RowBatch batch(columns);
        batch.Reserve(expected_rows, 0);
        while ((rc = sqlite3_step(page.stmt)) == SQLITE_ROW) {
          for (int c = 0; c < static_cast<int>(columns); ++c) {
            switch (sqlite3_column_type(page.stmt, c)) {
              case SQLITE_INTEGER:
                batch.AddInt(sqlite3_column_int64(page.stmt, c));
                break;
              case SQLITE_FLOAT:
                batch.AddReal(sqlite3_column_double(page.stmt, c));
                break;
              case SQLITE_TEXT: {
                const char* text = reinterpret_cast<const char*>(sqlite3_column_text(page.stmt, c));
                batch.AddText(std::string_view(text, sqlite3_column_bytes(page.stmt, c)));
                break;
              }
              case SQLITE_BLOB: {
                const char* blob = static_cast<const char*>(sqlite3_column_blob(page.stmt, c));
                int size = sqlite3_column_bytes(page.stmt, c);
                batch.AddBlob(size ? std::string_view(blob, size) : std::string_view());
                break;
              }
              default:
                batch.AddNull();
                break;
            }
          }
        }
        if (rc != SQLITE_DONE) {
          *result = SqliteError(db, rc, context);
          return;
        }
        *result = std::move(batch);
      },
      [this, result, done, fail, generation = generation_] {
        --in_flight_;
        if (Cancelled(generation, fail)) return;
        done(std::move(*result));
      });
}

void SqliteConnection::DigestKeys(const TableSchema& table, const std::vector<std::string>& key,
                                  const KeyRange& range, const std::vector<Cursor>& splits,
                                  std::function<void(Result<std::vector<KeyDigest>>)> done) {
  auto fail = [done](Status s) { done(std::move(s)); };
  if (Refuse(fail)) return;
  Result<BoundSql> sql = DigestSql(table, key, range, splits);
  if (!sql.ok()) {
    FailLater(fail, sql.status());
    return;
  }
  const size_t parts = splits.size() + 1;
  RunRows(std::move(sql->sql), std::move(sql->params), 4, "digest keys of " + table.qualified_name,
          parts, [done, parts](Result<RowBatch> rows) {
            if (!rows.ok()) return done(rows.status());
            std::vector<KeyDigest> out(parts);
            for (size_t r = 0; r < rows->rows(); ++r) {
              const Cell& b = rows->at(r, 0);
              if (b.type != ValueType::kInt || b.i < 0 || static_cast<size_t>(b.i) >= parts) {
                continue;
              }
              out[b.i].count = rows->at(r, 1).i;
              out[b.i].sum_hi = rows->at(r, 2).i;
              out[b.i].sum_lo = rows->at(r, 3).i;
            }
            done(std::move(out));
          });
}

void SqliteConnection::FindKeys(const TableSchema& table, const std::vector<std::string>& key,
                                const std::vector<Cursor>& keys,
                                std::function<void(Result<std::vector<Cursor>>)> done) {
  auto fail = [done](Status s) { done(std::move(s)); };
  if (Refuse(fail)) return;
  Result<BoundSql> sql = FindKeysSql(table, key, keys);
  if (!sql.ok()) {
    FailLater(fail, sql.status());
    return;
  }
  RunRows(std::move(sql->sql), std::move(sql->params), key.size(),
          "find keys of " + table.qualified_name, keys.size(), [done](Result<RowBatch> rows) {
            if (!rows.ok()) return done(rows.status());
            done(CursorsOf(*rows));
          });
}

void SqliteConnection::FailLater(const std::function<void(Status)>& fail, Status status) {
  Submit([] {},
         [this, fail, status] {
           --in_flight_;
           fail(status);
         });
}

void SqliteConnection::Close() {
  if (handle_ && in_flight_ > 0 && handle_->db) sqlite3_interrupt(handle_->db);
  // A worker still using the handle keeps it alive until it has finished.
  handle_.reset();
  ++generation_;
}

}  // namespace siphon::sqlite_source

#pragma once
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <uv.h>

#include "runtime/base/file_id.hpp"
#include "runtime/base/key_digest.hpp"
#include "runtime/base/row_batch.hpp"
#include "runtime/base/schema.hpp"
#include "runtime/base/status.hpp"
#include "runtime/loop/worker.hpp"
#include "runtime/sync/transform.hpp"

struct sqlite3;

namespace siphon {

/// What the writer needs to keep one replicated table.
struct TargetTable {
  std::string name;                 ///< target table name
  std::vector<ColumnInfo> columns;  ///< in the order of every page's columns
  std::vector<std::string> key;     ///< PRIMARY KEY of the target table
  bool append = false;              ///< ON CONFLICT DO NOTHING instead of DO UPDATE
  std::string source;               ///< source description, kept in _siphon_state
  std::string source_table;         ///< e.g. "public.orders"
  std::string schema_hash;
  std::string schema_json;  ///< the reflected source columns, for diffs after a restart
  /// The columns a stored cursor's values belong to, in order (a JSON array): a cursor kept
  /// for other columns (the script changed `cursor` or `key`) is dropped, not misread.
  std::string cursor_columns;
  /// The source's unique index the key was taken from (a table without a primary key and no
  /// `key` in the script), kept in `_siphon_state.key_index`; empty otherwise.
  std::string key_index;
  /// Rows carry the number of the pass that last wrote them in a column `_siphon_pass`, and
  /// the page that ends a pass (every full refresh, and a resync of any table) deletes the
  /// rows of older passes (mark and sweep): deletions reach the target without ever
  /// emptying it. Every table with a key has it; append-only tables do not.
  bool pass_marks = false;
  /// A full refresh keyed by integer columns, which the source and SQLite order alike: each
  /// page deletes the rows of its key range it does not hold (PageWrite::range) instead of
  /// the pass's last page deleting the rows of older passes. A row read again as the replica
  /// holds it is then left alone, pass mark and all, so a pass over an unchanged table writes
  /// nothing. Rows a transform makes may have other keys, so tables with one keep pass marks.
  bool key_range_sweep = false;
  /// Soft deletes: a row whose value in this column is set (not NULL, not false or a zero
  /// number) is deleted from the target by key instead of written.
  std::optional<std::string> soft_delete_column;
  /// What a row the target refuses does: a NULL key, a value its key column cannot hold (text
  /// in an INTEGER key), a constraint of the table, or a key an earlier row of the page has
  /// (when `distinct_keys`). True: it goes to `_siphon_rejects` and the rest of the page is
  /// written (a transform's on_row_error = "reject"). False: the page fails, naming the row.
  bool reject_refused_rows = false;
  /// Refuse a row whose key an earlier row of the same page has (a transform may write one
  /// twice, and the upsert would keep only the last). Rows pulled as they are cannot repeat
  /// a key, so only tables with a transform pay for the check.
  bool distinct_keys = false;
  /// An incremental table pulled again when its target table gains a column (the source
  /// added one, or the script replicates one more), so rows already held get its values now
  /// rather than as they change. Set only for tables with a key (a re-pull is an upsert).
  bool backfill = false;

  bool operator==(const TargetTable&) const = default;
};

/// The name of the mark column of full-refresh tables.
inline constexpr const char* kPassColumn = "_siphon_pass";
/// What TargetTable::cursor_columns ends with when the table sweeps by key range: a pass
/// stopped midway resumes only as it began (a pass marking rows that ended with a sweep by
/// marks would delete the rows its pages by range left unmarked), so one begun the other way
/// starts over.
inline constexpr std::string_view kKeyRangeSweptNote = " swept by key range";
/// Sets or clears `key_range_sweep`, and kKeyRangeSweptNote after the cursor columns with it.
void SetKeyRangeSweep(TargetTable& table, bool on);

/// One page to commit, with everything that must commit with it.
struct PageWrite {
  std::shared_ptr<const RowBatch> rows;
  std::optional<Cursor> cursor_after;  ///< none: store NULL (a full pass finished)
  std::vector<Reject> rejects;         ///< to `_siphon_rejects`
  int64_t pass = 0;                    ///< full refresh: the pass these rows belong to
  bool sweep = false;                  ///< full refresh: this page ends the pass
  /// The first page of a pass with nothing of it committed yet. When the table is empty then,
  /// the pass's closing sweep has nothing to delete and is skipped (a first sync would
  /// otherwise scan the whole table it just wrote).
  bool starts_pass = false;
  /// A table swept by key range (TargetTable::key_range_sweep): the range of keys this page
  /// holds every row of, so the rows in it the table holds and the page does not are gone
  /// from the source.
  std::optional<KeyRange> range;
  /// A re-pull of an append table (a backfill, a resync): a row it holds gets the values of its
  /// NULL columns, and keeps the others.
  bool fill = false;
};

/// What a committed page did.
struct PageResult {
  int64_t deleted = 0;  ///< rows removed from the table (a sweep, soft deletes)
  int64_t refused = 0;  ///< rows the target refused, in `_siphon_rejects` instead
  int64_t flagged = 0;  ///< rows whose soft delete flag is set: deleted by key, not written
  /// Rows the table already held as they were read (a lookback's window read again), or, in
  /// an append table, held at all: left as they were, not written.
  int64_t unchanged = 0;
  /// Rows inserted or changed: the page's rows but those refused, flagged or unchanged.
  int64_t written = 0;
};

/// A table's row of `_siphon_state`.
struct TableState {
  std::optional<Cursor> cursor;  ///< none: start from the beginning
  int64_t rows_total = 0;
  std::string last_sync_at;
  std::string last_success_at;
  std::string last_error;
  std::string schema_hash;
  std::string schema_json;
  std::string status;
  int64_t full_pass = 0;      ///< the last pass written
  int64_t resync_pass = 0;    ///< a resync in progress writes this pass (0: none)
  std::string reconciled_at;  ///< when the last reconcile ended (empty: never)
  /// Set when a stored cursor was dropped because it belonged to these other columns.
  std::string dropped_cursor_columns;
  /// Set when the stored cursor was dropped because the table now reads another source table
  /// or query: what it was a position in.
  std::string dropped_cursor_source;
  /// Set when the stored cursor was committed reading another source (the state row's
  /// `source`, e.g. another database) and is kept: a failover to a new primary goes on where
  /// it was, but other data needs a resync. What it was read from.
  std::string kept_cursor_source;
  /// Set when the target table had another key (its PRIMARY KEY, as JSON; "[]" for none): the
  /// table was rebuilt under the new key and the stored cursor dropped.
  std::string dropped_key;
  /// Set when the target table was not there (dropped by hand, or the file's tables edited)
  /// while the state row held a cursor: the table was created afresh and the cursor dropped,
  /// so the rows below it are pulled again instead of being missing for good.
  bool table_recreated = false;
  /// Columns this prepare added to an existing target table (rows it holds have NULL there).
  /// With `backfill`, the cursor was reset with them, in one transaction: the run pulls again.
  std::vector<std::string> added_columns;
};

/// The key a table was last prepared with (Target::ReadStoredKey).
struct StoredKey {
  std::vector<std::string> columns;  ///< the target table's PRIMARY KEY (empty: none, or no table)
  std::string index;  ///< `_siphon_state.key_index`: the source's unique index it came from
};

/// Reconcile: a range of a table's keys in the target, cut into parts of about equal size.
struct KeyRangeScan {
  std::vector<Cursor> splits;      ///< the last key of every part but the last
  std::vector<KeyDigest> digests;  ///< one per part: splits.size() + 1
};

/// Reconcile: a key the target holds that the source holds as the same key spelled otherwise
/// (a numeric's `1.0` that the source now prints `1.00`).
struct KeyRespelling {
  Cursor target;  ///< as ListKeys returned it
  Cursor source;  ///< as the source returned it
};

/// How a sync run ended, for `_siphon_state` and `_siphon_log`.
struct RunRecord {
  std::string table;
  std::string event;  ///< "synced", "error" or "reconcile"
  int64_t rows = 0;
  int64_t deleted = 0;  ///< rows removed from the target in this run
  int64_t duration_ms = 0;
  std::string error;   ///< empty on success
  std::string status;  ///< new `_siphon_state.status`: "ok", "error", "failed"
  /// A reconcile: only `reconciled_at` of the state row changes (not status or errors).
  bool reconcile = false;
  /// The source and its table, for a state row the run creates (a first run that failed
  /// before the table was prepared still shows in `siphon status`).
  std::string source{};
  std::string source_table{};
};

/// The SQLite target: one file in WAL mode, written only by its own thread.
/// Every method but Open/Close is asynchronous: it returns at once and its callback runs on
/// the loop thread when the writer is done. Pages of one table are written in the order they
/// are posted.
/// Why a target file that SQLite could open only for reading cannot be the target: the user
/// siphon runs as may not write it. Target::Open and `siphon check` say the same.
std::string ReadOnlyTargetReason();

/// What to add to SQLite's "unable to open database file" for a target `path` that does not
/// exist: " (the folder … does not exist)" or " (this user may not create files in …)", or ""
/// when the folder is not why.
std::string TargetFolderHint(const std::string& path);

/// Opens the replica at `path`, which must exist, only to read it (`siphon status`, `check`):
/// read-write without SQLITE_OPEN_CREATE, with a 5 s busy timeout and query_only. Not
/// SQLITE_OPEN_READONLY: reading a WAL file creates its -wal and -shm files when they are not
/// there, and only a connection that may write removes them as it closes (a read-only one
/// leaves both behind). A file this user may not write opens read-only all the same. The path
/// is taken as is, never as a file: URI. Returns SQLite's code; `*db` is to be closed either way.
int OpenReplicaToRead(const std::string& path, sqlite3** db);

/// What Target::ReadStoredKey reads, from the target file at `path` opened read-only, for
/// `siphon check`, which writes nothing. No file, or a file siphon never wrote, holds no key.
Result<StoredKey> ReadStoredKeyReadOnly(const std::string& path, const std::string& table);

class Target {
 public:
  Target(uv_loop_t* loop, std::string path);
  ~Target();

  /// Opens (creating) the file, sets WAL, creates the `_siphon_*` tables. Blocks: start-up only.
  Status Open();
  const std::string& path() const { return path_; }

  /// Creates the table if missing (adds missing columns to an existing one), prepares its
  /// upsert and returns its state (cursor, counters).
  void PrepareTable(TargetTable table, std::function<void(Result<TableState>)> done);

  /// The key the table was last prepared with: its target table's PRIMARY KEY and the unique
  /// index of the source it was taken from (for the message of a run that finds it gone,
  /// also in a process that never prepared the table). Read on the writer, between pages.
  void ReadStoredKey(const std::string& table, std::function<void(Result<StoredKey>)> done);

  /// Writes a page, its rejects and the cursor that follows it in ONE transaction: either
  /// all are committed or none. A row the table refuses (TargetTable::reject_refused_rows)
  /// joins the rejects, as it was to be written, or fails the page. `done` gets the rows
  /// deleted and refused.
  void WritePage(const std::string& table, PageWrite page,
                 std::function<void(Result<PageResult>)> done);

  /// Records the reflected schema (JSON and hash) after a schema change was handled.
  void SaveSchema(const std::string& table, std::string hash, std::string json,
                  std::function<void(Status)> done);

  /// Runs maintenance SQL (`siphon.target:exec`) on the writer thread, between pages, with
  /// bound parameters (NULL, integer, real, text). `done` gets the number of rows changed.
  /// `confined`: no other database file may be opened (ATTACH, VACUUM INTO are refused).
  void Exec(std::string sql, std::vector<CursorValue> params, bool confined,
            std::function<void(Result<int64_t>)> done);

  /// An authorizer (sqlite3_set_authorizer) refusing ATTACH of a file and DETACH, and with
  /// them VACUUM INTO: a statement it guards reads and writes this file only (plain VACUUM
  /// attaches a temporary database without a name, which is allowed). `confine` points to
  /// a flag that switches it on, or is null for always on.
  static int DenyOtherFiles(void* confine, int action, const char* file, const char*, const char*,
                            const char*);

  /// Starts a resync: the cursor becomes NULL and a new pass (one above every pass written)
  /// is recorded as `resync_pass`, so the re-pull (resumed after a crash if need be) writes
  /// that pass and its last page sweeps the rest. `done` gets the pass (0 for a table never
  /// synced). Refused (ErrorKind::kConfig, nothing changed) for a table without a key that
  /// holds rows: each row read again would be inserted again.
  void ResetCursor(const std::string& table, std::function<void(Result<int64_t>)> done);

  /// Reconcile: the keys (columns `key`) of `range` cut into at most `parts` parts of about
  /// equal size, with the digest of each part (siphon_key_hash, as the sources compute it).
  /// Reads on a read-only connection of its own thread: page writes go on meanwhile.
  void DigestKeys(const std::string& table, std::vector<std::string> key, KeyRange range,
                  size_t parts, std::function<void(Result<KeyRangeScan>)> done);

  /// Reconcile: the keys of `range`, ascending (on the reconcile reader, like DigestKeys).
  void ListKeys(const std::string& table, std::vector<std::string> key, KeyRange range,
                std::function<void(Result<std::vector<Cursor>>)> done);

  /// Reconcile: deletes the rows with the keys `gone` (as ListKeys returned them), and gives
  /// each row of `respelled` its key as the source spells it, or deletes it when another row
  /// holds that spelling already (its stale twin), in one transaction on the writer. `done`
  /// gets the number of rows deleted.
  void DeleteKeys(const std::string& table, std::vector<std::string> key, std::vector<Cursor> gone,
                  std::vector<KeyRespelling> respelled, std::function<void(Result<int64_t>)> done);

  /// Records a finished run in `_siphon_state` and `_siphon_log` (the log keeps the newest
  /// kLogRetention rows, trimmed every 64 runs: at most 63 more in between), stamped with the
  /// time of this call; `done` runs once it is committed. The record of a run that changed
  /// nothing (no rows written or deleted, no error) waits up to kRecordBatchMs for others to
  /// share its transaction: 100 idle tables on 1 s intervals commit 4 times a second, not 100.
  void RecordRun(RunRecord record, std::function<void(Status)> done);

  /// Writes the records waiting for their batch now (a table stopping, the end of `once`;
  /// the destructor does it too).
  void FlushRecords();

  /// A WAL of this many frames is checkpointed after a run, or after a page past the
  /// run's first kUncheckpointedCommits (SQLite's own default).
  static constexpr int kCheckpointFrames = 1000;
  static constexpr int kUncheckpointedCommits = 8;
  /// Any commit checkpoints a WAL of this size.
  static constexpr int64_t kWalMaxBytes = 64 << 20;
  /// A bigger WAL file is truncated to this size when it starts over (journal_size_limit):
  /// above the ~1200 frames a long run's checkpoints leave, so those are never cut.
  static constexpr int64_t kWalKeepBytes = 8 << 20;
  static constexpr int64_t kLogRetention = 10000;
  static constexpr uint64_t kRecordBatchMs = 250;
  static constexpr size_t kRecordBatchMax = 256;

 private:
  struct Table;
  Status ExecOnWriter(const std::string& sql);
  /// target:exec's statements, one after the other: the rows they changed.
  Result<int64_t> ExecStatementsOnWriter(const std::string& sql,
                                         const std::vector<CursorValue>& params);
  /// sqlite3_wal_hook: after each commit on the writer, with the WAL's frame count.
  static int OnWalCommit(void* self, sqlite3* db, const char* schema, int frames);
  void Checkpoint();    ///< writer thread
  int wal_frames_ = 0;  // writer thread only: frames in the WAL after the last commit
  int wal_max_frames_ = static_cast<int>(kWalMaxBytes / 4096);
  Result<TableState> PrepareOnWriter(const TargetTable& table);
  /// Why the table's key columns, as the replica declares them, cannot be compared with a
  /// page's keys by their stored values (a key column with another affinity than siphon
  /// gives it); empty when they can.
  Result<std::string> KeyStoredAsDeclared(const TargetTable& spec);
  /// Gives the columns of the table the declared types `spec` wants, rebuilding it with its
  /// rows, key, indexes and triggers when one differs (SQLite would otherwise convert what is
  /// written now by the old column's affinity: text "01234" into INTEGER is stored as 1234).
  /// A table with constraints siphon did not make is left as it is (a warning).
  /// With `rekey`, the rebuild also gives the table `spec.key` as its PRIMARY KEY (rows without
  /// a value in it left out, a repeated one keeping the last row); a table with such
  /// constraints is then an error, since an upsert by the new key cannot run without it.
  Status RebuildOnWriter(const TargetTable& spec, bool rekey = false);
  /// ResetCursor's work on the writer thread (PrepareOnWriter resets a backfilled table's
  /// cursor in the transaction that adds its columns).
  Result<int64_t> ResetCursorOnWriter(const std::string& table);
  /// The table's `_siphon_state` row; none when it has no row.
  Result<std::optional<TableState>> ReadState(const std::string& table);
  int64_t SchemaVersion();  ///< PRAGMA schema_version; -1 when unreadable
  Result<PageResult> WriteOnWriter(Table& t, const PageWrite& page);
  /// An error once the file at path_ is no longer the one opened (deleted, or another file
  /// moved there): SQLite would go on writing the old one, which nobody can read.
  Status CheckFileOnWriter() const;
  Status DeleteByKey(Table& t, const RowBatch& rows, size_t row);
  /// Deletes the rows of `range` the page does not hold; returns how many.
  Result<int64_t> SweepKeyRangeOnWriter(Table& t, const RowBatch& rows, const KeyRange& range);

  uv_loop_t* loop_;
  std::string path_;
  // The file Open opened (device, inode); none for a database that is not a file.
  std::optional<FileId> file_id_;
  sqlite3* db_ = nullptr;  // writer thread only (and Open/destructor, when it is idle)
  std::map<std::string, std::unique_ptr<Table>> tables_;  // writer thread only
  std::unique_ptr<WorkerThread> writer_;
  struct Recorder;                      // RecordRun's statements, prepared once
  std::unique_ptr<Recorder> recorder_;  // writer thread only
  bool confine_ = false;  // the authorizer's switch: on while a script's exec is prepared
  struct PendingRecord {
    RunRecord record;
    std::string at;  // when the run was recorded
    std::function<void(Status)> done;
  };
  Status WriteRecordsOnWriter(const std::vector<PendingRecord>& batch);
  std::vector<PendingRecord> records_;  // loop thread: the batch being gathered
  uv_timer_t* record_timer_ = nullptr;  // heap: closed after this object is gone
  // Reconcile's reads: a read-only connection used only on the reader thread (made on first
  // use; WAL lets it read while the writer writes).
  sqlite3* reader_db_ = nullptr;
  std::unique_ptr<WorkerThread> reader_;
  Status OpenReaderOnReader();
  /// Runs `work` on the reader thread with the read-only connection open (creating both when
  /// needed), then `done` with its result on the loop.
  template <typename T>
  void OnReader(std::function<Result<T>()> work, std::function<void(Result<T>)> done);
};

/// Whether `table` in the SQLite database `db` (any connection to the target) holds a row.
Result<bool> TableHasRows(sqlite3* db, const std::string& table);

/// Why a resync of `table`, which has no key and holds rows, is refused (ErrorKind::kConfig).
Status KeylessResyncRefused(const std::string& table);

/// "2024-05-01T10:00:00.123Z": now, in UTC, as stored in the state tables.
std::string NowIso();

}  // namespace siphon

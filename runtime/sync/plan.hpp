#pragma once
#include <chrono>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "runtime/base/schema.hpp"
#include "runtime/base/status.hpp"
#include "runtime/sync/deployment.hpp"
#include "runtime/target/target.hpp"

namespace siphon {

/// How one table is pulled and written, derived from its declaration and the reflected source
/// schema. Dialect-free: the adapter turns the PageQuery into SQL.
struct TablePlan {
  std::vector<std::string> columns;        ///< pulled, in this order
  std::vector<ColumnInfo> source_columns;  ///< the same, as reflected
  std::vector<std::string> key;            ///< target PRIMARY KEY
  std::vector<std::string> order_by;  ///< keyset order: cursor columns, then the rest of the key
  std::vector<size_t> order_index;    ///< position of each order_by column in `columns`
  bool incremental = false;           ///< a cursor was declared; otherwise full refresh
  std::optional<double> lookback_seconds;
  size_t batch = 5000;
  TargetTable target;  ///< written columns: source_columns, or what the transform makes
};

/// Checks the declaration against the schema (columns exist, a key exists) and builds the plan.
/// Errors are kConfig (the script names a column the source lacks, or asks for the
/// impossible: fix the script, exit 2) and name the table and column.
Result<TablePlan> MakePlan(const TableDecl& decl, const TableSchema& schema);

/// `failed` (MakePlan's "has no primary key") with where the key went when the replica was
/// keyed by a unique index of the source (`stored.index`, `_siphon_state.key_index`) that the
/// source no longer has as such, and what brings it back; `failed` as it is otherwise.
/// `siphon run`, `once` and `check` say the same.
Status KeyIndexGone(const Status& failed, const StoredKey& stored);

/// Makes the target's columns those the transform outputs; they must keep the key columns.
Status ApplyTransformColumns(TablePlan& plan, RowTransform& transform);

/// The query of the first page of a run, starting after `committed` (none: from the start).
PageQuery FirstPage(const TablePlan& plan, const std::optional<Cursor>& committed);
/// The query of the page after one whose last row had the order values `after`.
PageQuery NextPage(const TablePlan& plan, const Cursor& after);
/// The order values of row `row` of a page pulled with this plan.
Cursor CursorOf(const TablePlan& plan, const RowBatch& page, size_t row);
/// Whether the source holds two rows' order values (CursorOf) equal, as far as the values
/// tell: a number column's decimal text compares as a number (a numeric's `1.0` and `1.00`),
/// and its integers with its reals (SQLite's 1 and 1.0), every other value by its bytes (a
/// collation that holds more values equal says so with RowBatch::order_keys).
bool SameOrder(const TablePlan& plan, const Cursor& a, const Cursor& b);
/// Whether two values of a number column are the same number: decimal text (a numeric's `1.0`
/// and `1.00`, `-0.0` and `0`), and an integer with a real (SQLite's 1 and 1.0). Other values
/// compare as they are.
bool SameNumber(const CursorValue& a, const CursorValue& b);

/// Exponential backoff with jitter: attempt 1 waits about `base`, each next one twice as long,
/// never more than `cap`; the wait is drawn uniformly from [delay/2, delay].
std::chrono::milliseconds Backoff(int attempt, std::chrono::milliseconds base,
                                  std::chrono::milliseconds cap, std::mt19937_64& rng);

}  // namespace siphon

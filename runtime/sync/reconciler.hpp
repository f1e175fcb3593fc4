#pragma once
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "adapters/source.hpp"
#include "runtime/target/target.hpp"

namespace siphon {

/// What a reconcile did.
struct ReconcileResult {
  int64_t ranges = 0;        ///< key ranges whose digests were compared
  int64_t keys_checked = 0;  ///< target keys looked up on the source
  int64_t deleted = 0;       ///< target rows deleted: their key is gone from the source
};

/// Finds the rows of a table that the target holds and the source no longer has, and
/// deletes them, without pulling the table (`deletes = { reconcile = … }`).
///
/// The target cuts a key range (the whole table first) into kFanOut parts of about equal
/// size, and both sides digest each part (count and hash sums, computed where the keys
/// are). Equal digests: the part holds the same keys, nothing to do. Different: the part is
/// cut again, or, with at most kLeafKeys target keys, its target keys are looked up on the
/// source by key and those not found are deleted. The work follows the number of differing ranges,
/// not the table's size. A key is deleted only after the source said it does not have it, so a
/// digest that never matches (the two sides write a key differently, or order text
/// differently) costs lookups but never deletes a row the source still has. A key the source
/// answers with its number spelled otherwise (`1.0` asked, `1.00` found) is the source's row:
/// the target's row takes the source's spelling, unless the target holds that one as well.
///
/// Loop thread only; one operation in flight at a time on the connection and the target.
class Reconciler {
 public:
  static constexpr size_t kFanOut = 32;
  static constexpr int64_t kLeafKeys = 32;

  /// `key` names the key columns, the same in the source table and the target table.
  Reconciler(SourceConnection& source, Target& target, const TableSchema& schema, std::string table,
             std::vector<std::string> key);
  ~Reconciler();
  Reconciler(const Reconciler&) = delete;
  Reconciler& operator=(const Reconciler&) = delete;

  /// Whether reconcile can compare these key columns of `schema`: integers and text
  /// (uuids, numerics kept as text). Reals and times may be written differently on the two
  /// sides and blobs cannot be bound back, so they are refused (kConfig).
  static Status CheckKey(const TableSchema& schema, const std::vector<std::string>& key);

  /// Runs (after CheckKey); `done` runs once, on the loop, unless the reconciler is
  /// destroyed first.
  void Start(std::function<void(Result<ReconcileResult>)> done);

  /// Ends the reconcile at its next step with kCancelled (a stop or a pause).
  void Cancel() { cancelled_ = true; }

 private:
  struct Range {
    KeyRange range;
    int64_t target_count = 0;
  };
  void Next();
  void Split(Range range);
  void Check();
  void Finish(Status status);
  // Whether the source's `source` is the target's key `target` spelled otherwise: equal
  // column by column, a number column's as numbers (SameNumber).
  bool SameKey(const Cursor& target, const Cursor& source) const;
  // Wraps a callback so that it does nothing once this object is gone.
  template <typename T>
  std::function<void(T)> Guard(std::function<void(T)> fn);

  SourceConnection& source_;
  Target& target_;
  const TableSchema& schema_;
  std::string table_;
  std::vector<std::string> key_;
  std::vector<bool> number_;  // per key column: it holds numbers (OrderKind::kNumber)
  bool has_number_ = false;
  std::function<void(Result<ReconcileResult>)> done_;
  std::deque<Range> ranges_;
  std::vector<Cursor> to_check_;  // target keys of differing leaves, not yet looked up
  ReconcileResult result_;
  bool cancelled_ = false;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace siphon

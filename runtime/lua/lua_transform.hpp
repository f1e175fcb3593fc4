#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "runtime/sync/transform.hpp"

namespace siphon {

class LuaHost;

/// What to do with a row whose transform fails.
enum class RowErrorPolicy {
  kReject,  ///< write it to `_siphon_rejects` with the error, go on
  kFail,    ///< fail the page: nothing written, the cursor stays
};

/// A column the transform adds (or removes) beyond the pulled ones: `columns_out`.
struct ExtraColumn {
  std::string name;
  ColumnType type = ColumnType::kText;
  bool removed = false;  ///< `name = false`: a pulled column left out of the target
};

/// `transform = function(row) … end` of one table: the RowTransform the sync layer calls.
///
/// Per page, each row is handed to the function as a table keyed by column name (NULL is
/// nil; integers are integers). The function returns the row (changed or not), nil (drop),
/// or a list of rows (fan-out). The column names are interned once per plan in a Lua
/// table, and the row table is reused for the next row when the function returned it (so a
/// transform must not keep a reference to `row` after it returns). Each call has the
/// host's instruction budget; the Lua function lives in the host's registry, so this object
/// may outlive the host (Apply then fails).
class LuaTransform : public RowTransform {
 public:
  LuaTransform(LuaHost& host, std::string table, std::vector<ExtraColumn> extra,
               RowErrorPolicy policy);
  ~LuaTransform() override;

  /// Moves the function on top of the host's stack into the registry.
  void SetFunction();

  Result<std::vector<ColumnInfo>> OutputColumns(const std::vector<ColumnInfo>& in) override;
  Status Apply(const std::vector<ColumnInfo>& in_columns, const RowBatch& in, RowBatch& out,
               std::vector<Reject>& rejects) override;
  bool RejectsRows() const override { return policy_ == RowErrorPolicy::kReject; }

  /// A page stops (fails) after this many rows stopped by the budget or the memory cap:
  /// a runaway transform would otherwise cost a full budget for every row.
  static constexpr int kMaxKilledRowsPerPage = 3;

 private:
  Status Prepare(const std::vector<ColumnInfo>& in);

  LuaHost* host_;
  std::weak_ptr<LuaHost*> alive_;
  std::string table_;
  std::string what_;      // "transform of table \"orders\""
  std::string location_;  // "deploy.lua:12", where the function is written; "" if unknown
  std::vector<ExtraColumn> extra_;
  RowErrorPolicy policy_;
  int id_ = 0;  // its slot in the registry table of transforms

  std::vector<std::string> in_names_;  // the columns Prepare saw
  std::vector<ColumnInfo> out_;        // the output columns
};

}  // namespace siphon

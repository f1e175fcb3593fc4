#pragma once
#include <string>
#include <vector>

#include "runtime/base/row_batch.hpp"
#include "runtime/base/schema.hpp"
#include "runtime/base/status.hpp"

namespace siphon {

/// A row the transform (or a conversion) refused; written to `_siphon_rejects` with the page.
struct Reject {
  std::string row_json;
  std::string error;
};

/// A per-table row transform, run on the loop thread between pull and write. The sync layer
/// calls it through this interface only; the Lua layer implements it (runtime/lua).
class RowTransform {
 public:
  virtual ~RowTransform() = default;

  /// The columns of transformed rows, given the pulled ones (a transform may add declared
  /// columns). Called once per plan, before the target table is prepared.
  virtual Result<std::vector<ColumnInfo>> OutputColumns(const std::vector<ColumnInfo>& in) = 0;

  /// Transforms a page: `out` gets the kept and fanned-out rows in OutputColumns' layout,
  /// `rejects` the rows that failed. A non-ok Status fails the whole page (on_row_error =
  /// "fail", or the transform itself broke): nothing of it is written.
  virtual Status Apply(const std::vector<ColumnInfo>& in_columns, const RowBatch& in, RowBatch& out,
                       std::vector<Reject>& rejects) = 0;

  /// Whether a row that fails is rejected (true) or fails its page (false): on_row_error. A
  /// row the target refuses (a NULL key, a repeated key) follows the same choice.
  virtual bool RejectsRows() const = 0;
};

}  // namespace siphon

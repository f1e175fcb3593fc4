// SourceConnection's one out-of-line virtual lives here, in siphon_base, because it is the
// class's key function: the vtable is emitted beside it, and every adapter library (linked
// without siphon_core in its own tests) needs that vtable.
#include "adapters/source.hpp"

namespace siphon {

void SourceConnection::SafeHorizon(const TableSchema&, const std::string&,
                                   const std::optional<CursorValue>&,
                                   std::function<void(Result<std::optional<CursorValue>>)> done) {
  done(std::optional<CursorValue>());
}

void SourceConnection::PullPages(const TableSchema& table, const PageQuery& query,
                                 std::function<void(Result<RowBatch>, bool last)> page) {
  PageQuery one = query;
  one.pages = 1;
  Pull(table, one, [page = std::move(page)](Result<RowBatch> r) { page(std::move(r), true); });
}

void SourceConnection::ReflectQuery(const std::string&,
                                    std::function<void(Result<TableSchema>)> done) {
  done(Status(ErrorKind::kConfig, "this source cannot replicate a query: name a table in `from`"));
}

void SourceConnection::FirstNull(const TableSchema&, const std::vector<std::string>&,
                                 std::function<void(Result<std::optional<std::string>>)> done) {
  done(std::optional<std::string>());
}

Status SourceConnection::CheckCursor(const TableSchema& table,
                                     const std::vector<std::string>& order_by,
                                     size_t cursor_columns, bool has_lookback) const {
  for (size_t i = 0; i < order_by.size(); ++i) {
    int idx = table.Find(order_by[i]);
    if (idx < 0) {
      return Status(ErrorKind::kSchema,
                    "column \"" + order_by[i] + "\" not found in " + table.qualified_name);
    }
    const ColumnInfo& c = table.columns[idx];
    if (c.order == OrderKind::kOther) {
      return Status(ErrorKind::kConfig, "column \"" + c.name + "\" (" + c.source_type +
                                            ") cannot be a cursor or key column: it has no order");
    }
    if (c.nullable && !table.query.empty()) {
      return Status(ErrorKind::kConfig,
                    "column \"" + c.name +
                        "\" of the query may be NULL as far as the source can "
                        "tell, and rows where a cursor or key column is NULL would never be "
                        "replicated: select it as it is from a NOT NULL column of a table (not "
                        "through an expression or an outer join)");
    }
    if (c.nullable && i < cursor_columns) {
      return Status(ErrorKind::kConfig,
                    "cursor column \"" + c.name + "\" of " + table.qualified_name +
                        " is nullable: rows where it is NULL would never be replicated. "
                        "Declare it NOT NULL on the source, choose a NOT NULL cursor column, "
                        "or remove `cursor` for a full refresh each run");
    }
    if (c.nullable) {
      // A key column orders every page, of a full refresh too: removing `cursor` is no way out.
      return Status(ErrorKind::kConfig,
                    "key column \"" + c.name + "\" of " + table.qualified_name +
                        " is nullable: rows where it is NULL would never be replicated. "
                        "Declare it NOT NULL on the source, or name NOT NULL columns that "
                        "identify a row in `key`");
    }
  }
  // Rows can share their order values unless the order holds the whole primary key, and a
  // page is continued after its last row's values as the source compares them. Where the
  // source holds different values equal without saying which, rows equal to the last one but
  // for their bytes would be skipped at a page edge.
  const bool unique = table.OrderIsUnique(order_by);
  for (size_t i = 0; i < order_by.size() && !unique; ++i) {
    const ColumnInfo& c = table.columns[table.Find(order_by[i])];
    if (c.loose_equality.empty()) continue;
    return Status(
        ErrorKind::kConfig,
        std::string(i < cursor_columns ? "cursor" : "key") + " column \"" + c.name + "\" of " +
            table.qualified_name + " has " + c.loose_equality +
            ", and siphon cannot tell which: rows equal to the last of a page would be skipped. "
            "Give the table a cursor "
            "column that compares by its bytes (an integer, a time, text under a deterministic "
            "collation), or a key that holds its primary key");
  }
  if (has_lookback && !order_by.empty()) {
    int idx = table.Find(order_by[0]);
    if (table.columns[idx].order != OrderKind::kTime) {
      return Status(ErrorKind::kConfig, "lookback needs a time column first in cursor; \"" +
                                            order_by[0] + "\" is " +
                                            table.columns[idx].source_type);
    }
  }
  return Status::Ok();
}

Status QueryTableNotFound(const Status& server) {
  return Status(ErrorKind::kConfig, server.message());
}

Status QueryColumnNotFound(const Status& server) {
  return Status(ErrorKind::kConfig, server.message());
}

namespace {
Status NoReconcile() {
  return Status(ErrorKind::kConfig, "this source cannot reconcile deletes");
}
}  // namespace

void SourceConnection::DigestKeys(const TableSchema&, const std::vector<std::string>&,
                                  const KeyRange&, const std::vector<Cursor>&,
                                  std::function<void(Result<std::vector<KeyDigest>>)> done) {
  done(NoReconcile());
}

void SourceConnection::FindKeys(const TableSchema&, const std::vector<std::string>&,
                                const std::vector<Cursor>&,
                                std::function<void(Result<std::vector<Cursor>>)> done) {
  done(NoReconcile());
}

}  // namespace siphon

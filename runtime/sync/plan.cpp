#include "runtime/sync/plan.hpp"

#include <algorithm>
#include <cstdio>

#include "runtime/base/key_digest.hpp"
#include "runtime/base/spelling.hpp"

namespace siphon {
namespace {

bool Contains(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

}  // namespace

Result<TablePlan> MakePlan(const TableDecl& decl, const TableSchema& schema) {
  TablePlan plan;
  const std::string where = decl.location + ": table \"" + decl.name + "\" (" + decl.Origin() + ")";
  auto require_column = [&](const std::string& name, const char* role) -> Status {
    if (schema.Find(name) < 0) {
      // The names the source has, so a typo or a name in other case is fixed from the message.
      constexpr size_t kListed = 30;
      std::string has;
      for (size_t i = 0; i < schema.columns.size() && i < kListed; ++i) {
        has += (i == 0 ? "" : ", ") + schema.columns[i].name;
      }
      if (schema.columns.size() > kListed) {
        has += ", … (" + std::to_string(schema.columns.size() - kListed) + " more)";
      }
      std::vector<std::string> names;
      for (const auto& c : schema.columns) names.push_back(c.name);
      const std::string close = ClosestName(name, names);
      const std::string hint = close.empty() ? "" : "; did you mean \"" + close + "\"?";
      // The script names it: exit 2 as for any other mistake in the declaration.
      return Status(ErrorKind::kConfig, where + ": " + role + " column \"" + name +
                                            "\" does not exist in the source" + hint +
                                            " (its columns: " + has + ")");
    }
    return Status::Ok();
  };

  plan.key = decl.key.empty() ? schema.primary_key : decl.key;
  if (plan.key.empty() && decl.write != WriteMode::kAppend) {
    // Which columns identify a row only the script's author knows; the candidates are the
    // columns a key may use (NOT NULL, ordered), named rather than guessed.
    std::string candidates;
    for (const auto& c : schema.columns) {
      if (c.nullable || c.order == OrderKind::kOther) continue;
      candidates += (candidates.empty() ? "" : ", ") + std::string("\"") + c.name + "\"";
    }
    const std::string from =
        candidates.empty()
            ? std::string("NOT NULL columns (the source declares none of its columns NOT NULL)")
            : "from its NOT NULL columns: " + candidates;
    // A unique index that came close says why it is not the key: fixing it on the source
    // (NOT NULL on a column) may be what the author wants.
    std::string refused;
    for (const auto& r : schema.refused_key_indexes) refused += "; " + r;
    return Status(ErrorKind::kConfig, where +
                                          " has no primary key: name the columns that identify "
                                          "a row with key = { … }, " +
                                          from + refused);
  }
  for (const auto& k : plan.key) {
    if (Status st = require_column(k, "key"); !st.ok()) return st;
  }
  for (const auto& c : decl.cursor) {
    if (Status st = require_column(c, "cursor"); !st.ok()) return st;
  }
  if (decl.soft_delete) {
    if (Status st = require_column(decl.soft_delete->column, "soft delete"); !st.ok()) return st;
  }

  // Columns: the projection (or every column), plus key and cursor columns it left out, since
  // the target needs the key and the run needs the cursor values.
  if (decl.columns.empty()) {
    for (const auto& c : schema.columns) plan.columns.push_back(c.name);
  } else {
    for (const auto& c : decl.columns) {
      if (Status st = require_column(c, "projected"); !st.ok()) return st;
      if (Contains(plan.columns, c)) {
        return Status(ErrorKind::kConfig, where + ": column \"" + c + "\" is listed twice");
      }
      plan.columns.push_back(c);
    }
    for (const auto& c : plan.key) {
      if (!Contains(plan.columns, c)) plan.columns.push_back(c);
    }
    for (const auto& c : decl.cursor) {
      if (!Contains(plan.columns, c)) plan.columns.push_back(c);
    }
    if (decl.soft_delete && !Contains(plan.columns, decl.soft_delete->column)) {
      plan.columns.push_back(decl.soft_delete->column);
    }
  }

  plan.incremental = !decl.cursor.empty();
  plan.order_by = decl.cursor;
  for (const auto& k : plan.key) {
    if (!Contains(plan.order_by, k)) plan.order_by.push_back(k);
  }
  if (plan.order_by.empty()) {
    return Status(ErrorKind::kConfig, where + ": append without a key needs a cursor");
  }
  for (const auto& o : plan.order_by) {
    plan.order_index.push_back(std::find(plan.columns.begin(), plan.columns.end(), o) -
                               plan.columns.begin());
  }
  if (decl.lookback_seconds && !plan.incremental) {
    return Status(ErrorKind::kConfig, where + ": lookback needs a cursor");
  }
  if (plan.key.empty()) {
    // Rows without a key cannot be told apart: each one read again is inserted again.
    const char* rereads = decl.lookback_seconds ? "lookback"
                          : decl.backfill       ? "backfill"
                          : decl.on_schema_change == SchemaChangeAction::kResync
                              ? "on_schema_change = \"resync\""
                              : nullptr;
    if (rereads != nullptr) {
      return Status(ErrorKind::kConfig,
                    where + ": " + rereads +
                        " reads rows again, and a table without a key (write = \"append\") "
                        "would insert each of them again: give it a key = { … }");
    }
  }
  plan.lookback_seconds = decl.lookback_seconds;
  plan.batch = decl.batch;

  TargetTable& t = plan.target;
  t.name = decl.name;
  for (const auto& c : plan.columns) {
    plan.source_columns.push_back(schema.columns[schema.Find(c)]);
  }
  t.columns = plan.source_columns;
  t.key = plan.key;
  t.append = decl.write == WriteMode::kAppend;
  t.source_table = decl.Origin();
  t.source = decl.SourceDescription();
  t.schema_hash = schema.Hash();
  t.schema_json = SchemaToJson(schema);
  t.cursor_columns = CursorColumnsJson(plan.order_by);
  if (decl.key.empty()) t.key_index = schema.key_index;
  if (!decl.query.empty()) {
    // A position in one query's result means nothing in another's: an edited query starts
    // over, like a changed cursor (the query's text is named by its hash).
    char hash[24];
    snprintf(hash, sizeof hash, "%016llx", static_cast<unsigned long long>(KeyHash(decl.query)));
    t.cursor_columns += std::string(" of query ") + hash;
  }
  t.pass_marks = !t.append && !t.key.empty();
  // A full refresh whose key the source orders as SQLite does (ColumnInfo::stored_order: the
  // adapter says so) pages in the order the replica keeps its rows in, so each page can sweep
  // its own key range and an unchanged row need not be marked again.
  bool stored_order = t.pass_marks && !plan.incremental;
  for (const auto& k : plan.key) {
    stored_order = stored_order && schema.columns[schema.Find(k)].stored_order;
  }
  SetKeyRangeSweep(t, stored_order);
  // A full refresh that upserts fills an added column on its next pass anyway; an append
  // table never rewrites a row it holds, so only a re-pull (filling NULL columns) does.
  t.backfill = decl.backfill && !t.key.empty() && (plan.incremental || t.append);
  if (decl.soft_delete && !decl.soft_delete->keep) t.soft_delete_column = decl.soft_delete->column;
  return plan;
}

Status KeyIndexGone(const Status& failed, const StoredKey& stored) {
  if (stored.index.empty()) return failed;
  std::string key = "{ … }";
  if (!stored.columns.empty()) {
    // As the script would spell it: key = { "code", "region" }.
    key = "{ ";
    for (size_t i = 0; i < stored.columns.size(); ++i) {
      key += i ? ", \"" : "\"";
      for (char ch : stored.columns[i]) {
        if (ch == '"' || ch == '\\') key += '\\';
        key += ch;
      }
      key += "\"";
    }
    key += " }";
  }
  return Status(failed.kind(),
                failed.message() + "; until now the key was the unique index \"" + stored.index +
                    "\", which the source no longer has as such (dropped, or no longer unique "
                    "over NOT NULL columns): give key = " +
                    key +
                    " in the script to keep the key the replica has, or create the index "
                    "again on the source");
}

Status ApplyTransformColumns(TablePlan& plan, RowTransform& transform) {
  Result<std::vector<ColumnInfo>> out = transform.OutputColumns(plan.source_columns);
  if (!out.ok()) return out.status();
  auto has = [&out](const std::string& name) {
    for (const auto& c : *out) {
      if (c.name == name) return true;
    }
    return false;
  };
  for (const auto& k : plan.key) {
    if (!has(k)) {
      return Status(ErrorKind::kConfig,
                    "the transform's columns must keep the key column \"" + k + "\"");
    }
  }
  if (plan.target.soft_delete_column && !has(*plan.target.soft_delete_column)) {
    return Status(ErrorKind::kConfig,
                  "the transform's columns must keep the soft delete column \"" +
                      *plan.target.soft_delete_column + "\"");
  }
  plan.target.columns = std::move(*out);
  // A transform can set a key to NULL, or give two rows of a page one key, or another key
  // than the row it read: a page's rows no longer span its key range.
  plan.target.distinct_keys = true;
  SetKeyRangeSweep(plan.target, false);
  plan.target.reject_refused_rows = transform.RejectsRows();
  return Status::Ok();
}

PageQuery FirstPage(const TablePlan& plan, const std::optional<Cursor>& committed) {
  PageQuery q;
  q.columns = plan.columns;
  q.order_by = plan.order_by;
  q.limit = plan.batch;
  q.after = committed;
  if (committed && plan.lookback_seconds) q.lookback_seconds = plan.lookback_seconds;
  return q;
}

PageQuery NextPage(const TablePlan& plan, const Cursor& after) {
  PageQuery q;
  q.columns = plan.columns;
  q.order_by = plan.order_by;
  q.limit = plan.batch;
  q.after = after;
  return q;
}

Cursor CursorOf(const TablePlan& plan, const RowBatch& page, size_t row) {
  Cursor c;
  c.reserve(plan.order_index.size());
  for (size_t idx : plan.order_index) {
    c.push_back(CursorValueOf(page, row, idx));
    if (row + 1 != page.rows() || !std::holds_alternative<std::monostate>(c.back())) continue;
    for (const auto& [column, text] : page.last_row_source_text) {
      if (column == idx) c.back() = text;
    }
  }
  return c;
}

namespace {

// `text` as a decimal number is written when it is one ([-]digits[.digits]): without the
// trailing zeros of its fraction, and zero without its sign. Any other text is left as it is.
std::string_view CanonicalDecimal(std::string_view text, std::string& scratch) {
  size_t i = !text.empty() && text[0] == '-' ? 1 : 0;
  const size_t digits = i;
  while (i < text.size() && text[i] >= '0' && text[i] <= '9') ++i;
  if (i == digits) return text;
  size_t end = text.size();
  if (i < text.size()) {
    if (text[i] != '.') return text;
    for (size_t f = i + 1; f < text.size(); ++f) {
      if (text[f] < '0' || text[f] > '9') return text;
    }
    while (end > i + 1 && text[end - 1] == '0') --end;
    if (end == i + 1) end = i;  // "1." -> "1"
  }
  std::string_view number = text.substr(0, end);
  if (number.find_first_not_of("-0") == std::string_view::npos) return "0";
  if (end == text.size()) return text;
  scratch.assign(number);
  return scratch;
}

}  // namespace

bool SameNumber(const CursorValue& a, const CursorValue& b) {
  // An integer and a real (SQLite's 1 and 1.0): a real equal to an integer is that integer
  // exactly, so it equals the integer's nearest double too (which may also hold a neighbour
  // equal: that only keeps one more row in the page).
  const auto* ia = std::get_if<int64_t>(&a);
  const auto* ib = std::get_if<int64_t>(&b);
  const auto* da = std::get_if<double>(&a);
  const auto* db = std::get_if<double>(&b);
  if (ia && db) return static_cast<double>(*ia) == *db;
  if (da && ib) return *da == static_cast<double>(*ib);
  const auto* sa = std::get_if<std::string>(&a);
  const auto* sb = std::get_if<std::string>(&b);
  if (sa && sb) {
    std::string scratch_a, scratch_b;
    return CanonicalDecimal(*sa, scratch_a) == CanonicalDecimal(*sb, scratch_b);
  }
  return a == b;
}

bool SameOrder(const TablePlan& plan, const Cursor& a, const Cursor& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    const bool number = i < plan.order_index.size() &&
                        plan.order_index[i] < plan.source_columns.size() &&
                        plan.source_columns[plan.order_index[i]].order == OrderKind::kNumber;
    if (number ? !SameNumber(a[i], b[i]) : a[i] != b[i]) return false;
  }
  return true;
}

std::chrono::milliseconds Backoff(int attempt, std::chrono::milliseconds base,
                                  std::chrono::milliseconds cap, std::mt19937_64& rng) {
  int shift = std::clamp(attempt - 1, 0, 30);
  auto delay = std::min<int64_t>(cap.count(), base.count() << std::min(shift, 20));
  std::uniform_int_distribution<int64_t> jitter(delay / 2, delay);
  return std::chrono::milliseconds(jitter(rng));
}

}  // namespace siphon

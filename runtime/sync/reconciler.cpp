#include "runtime/sync/reconciler.hpp"

#include <iterator>
#include <unordered_set>
#include <vector>

#include "runtime/sync/plan.hpp"

namespace siphon {

Reconciler::Reconciler(SourceConnection& source, Target& target, const TableSchema& schema,
                       std::string table, std::vector<std::string> key)
    : source_(source),
      target_(target),
      schema_(schema),
      table_(std::move(table)),
      key_(std::move(key)) {}

Reconciler::~Reconciler() {
  *alive_ = false;
}

template <typename T>
std::function<void(T)> Reconciler::Guard(std::function<void(T)> fn) {
  std::weak_ptr<bool> alive = alive_;
  return [alive, fn = std::move(fn)](T value) {
    if (alive.lock()) fn(std::move(value));
  };
}

Status Reconciler::CheckKey(const TableSchema& schema, const std::vector<std::string>& key) {
  if (key.empty()) return Status(ErrorKind::kConfig, "deletes.reconcile needs a key");
  for (const auto& k : key) {
    int idx = schema.Find(k);
    if (idx < 0) {
      return Status(ErrorKind::kSchema,
                    "key column \"" + k + "\" not found in " + schema.qualified_name);
    }
    const ColumnInfo& c = schema.columns[idx];
    const bool comparable = ((c.type == ColumnType::kInteger || c.type == ColumnType::kText ||
                              c.type == ColumnType::kAny) &&
                             (c.order == OrderKind::kNumber || c.order == OrderKind::kText)) ||
                            (c.type == ColumnType::kBlob && c.order == OrderKind::kBytes);
    if (!comparable) {
      return Status(ErrorKind::kConfig,
                    "deletes.reconcile compares integer, text and binary keys; key column \"" +
                        c.name + "\" is " + c.source_type);
    }
  }
  return Status::Ok();
}

bool Reconciler::SameKey(const Cursor& target, const Cursor& source) const {
  if (target.size() != number_.size() || source.size() != number_.size()) return false;
  for (size_t i = 0; i < number_.size(); ++i) {
    if (KeyText({target[i]}) == KeyText({source[i]})) continue;
    if (!number_[i] || !SameNumber(target[i], source[i])) return false;
  }
  return true;
}

void Reconciler::Start(std::function<void(Result<ReconcileResult>)> done) {
  done_ = std::move(done);
  if (Status st = CheckKey(schema_, key_); !st.ok()) return Finish(st);
  for (const auto& k : key_) {
    number_.push_back(schema_.columns[schema_.Find(k)].order == OrderKind::kNumber);
    has_number_ |= number_.back();
  }
  // The whole table is the first range to cut (a table without deletions costs one
  // digest query on each side).
  ranges_.push_back(Range{KeyRange{}, kLeafKeys + 1});
  Next();
}

void Reconciler::Next() {
  if (cancelled_) return Finish(Status(ErrorKind::kCancelled, "reconcile stopped"));
  if (to_check_.size() >= SourceConnection::kMaxFindKeys ||
      (ranges_.empty() && !to_check_.empty())) {
    return Check();
  }
  if (ranges_.empty()) return Finish(Status::Ok());
  Range next = std::move(ranges_.front());
  ranges_.pop_front();
  if (next.target_count > kLeafKeys) return Split(std::move(next));
  target_.ListKeys(table_, key_, next.range,
                   Guard<Result<std::vector<Cursor>>>([this](Result<std::vector<Cursor>> keys) {
                     if (!keys.ok()) return Finish(keys.status());
                     for (auto& k : *keys) {
                       // A NULL in a key (SQLite allows it outside INTEGER PRIMARY KEY)
                       // matches nothing on any source: such rows are left alone.
                       bool has_null = false;
                       for (const auto& v : k) {
                         has_null |= std::holds_alternative<std::monostate>(v);
                       }
                       if (!has_null) to_check_.push_back(std::move(k));
                     }
                     Next();
                   }));
}

void Reconciler::Split(Range parent) {
  target_.DigestKeys(
      table_, key_, parent.range, kFanOut,
      Guard<Result<KeyRangeScan>>([this, parent](Result<KeyRangeScan> t) {
        if (!t.ok()) return Finish(t.status());
        if (t->splits.empty()) {
          // The range could not be cut (its keys are gone or were never more than a leaf):
          // look its keys up instead.
          ranges_.push_front(Range{parent.range, 0});
          return Next();
        }
        auto scan = std::make_shared<KeyRangeScan>(std::move(*t));
        source_.DigestKeys(
            schema_, key_, parent.range, scan->splits,
            Guard<Result<std::vector<KeyDigest>>>([this, parent,
                                                   scan](Result<std::vector<KeyDigest>> s) {
              if (!s.ok()) return Finish(s.status());
              const size_t parts = scan->digests.size();
              if (s->size() != parts) {
                return Finish(Status(ErrorKind::kQuery,
                                     "reconcile: the source returned " + std::to_string(s->size()) +
                                         " digests for " + std::to_string(parts) + " ranges"));
              }
              result_.ranges += static_cast<int64_t>(parts);
              // The parts that differ are cut before the ranges waiting (depth first): only
              // the parts of the ranges being cut wait, at most kFanOut per level, whatever
              // the table's size. Breadth first, a table whose every range differs (the two
              // sides order its keys differently) held a range per leaf: 44 MB more for 80k
              // keys of 608 bytes, against 6.5 MB now.
              std::vector<Range> differ;
              for (size_t i = 0; i < parts; ++i) {
                const KeyDigest& mine = scan->digests[i];
                if (mine.count == 0 || mine == (*s)[i]) continue;
                KeyRange part;
                part.after =
                    i == 0 ? parent.range.after : std::optional<Cursor>(scan->splits[i - 1]);
                part.upto =
                    i + 1 == parts ? parent.range.upto : std::optional<Cursor>(scan->splits[i]);
                differ.push_back(Range{std::move(part), mine.count});
              }
              ranges_.insert(ranges_.begin(), std::make_move_iterator(differ.begin()),
                             std::make_move_iterator(differ.end()));
              Next();
            }));
      }));
}

void Reconciler::Check() {
  const size_t n = std::min(to_check_.size(), SourceConnection::kMaxFindKeys);
  auto batch = std::make_shared<std::vector<Cursor>>(to_check_.begin(), to_check_.begin() + n);
  to_check_.erase(to_check_.begin(), to_check_.begin() + n);
  result_.keys_checked += static_cast<int64_t>(n);
  source_.FindKeys(
      schema_, key_, *batch,
      Guard<Result<std::vector<Cursor>>>([this, batch](Result<std::vector<Cursor>> found) {
        if (!found.ok()) return Finish(found.status());
        // Compared as text: the source may return "42" where the target keeps 42.
        std::unordered_set<std::string> present;
        for (const Cursor& k : *found) present.insert(KeyText(k));
        std::vector<Cursor> gone;
        std::vector<KeyRespelling> respelled;
        for (Cursor& k : *batch) {
          if (present.count(KeyText(k))) continue;
          // A key whose number the source now spells otherwise (a numeric key updated from
          // 1.0 to 1.00) is still the source's row. Where the update moved the row's cursor
          // the replica holds the new spelling too, and the old one is a stale twin to
          // delete; where it did not (the key is the cursor), the old spelling is the only
          // copy of the row, and deleting it lost the row for good: it takes the new one.
          const Cursor* same = nullptr;
          if (has_number_) {
            for (const Cursor& f : *found) {
              if (SameKey(k, f)) {
                same = &f;
                break;
              }
            }
          }
          if (same) {
            respelled.push_back(KeyRespelling{std::move(k), *same});
          } else {
            gone.push_back(std::move(k));
          }
        }
        if (gone.empty() && respelled.empty()) return Next();
        target_.DeleteKeys(table_, key_, std::move(gone), std::move(respelled),
                           Guard<Result<int64_t>>([this](Result<int64_t> deleted) {
                             if (!deleted.ok()) return Finish(deleted.status());
                             result_.deleted += *deleted;
                             Next();
                           }));
      }));
}

void Reconciler::Finish(Status status) {
  if (!done_) return;
  auto done = std::move(done_);
  done_ = nullptr;
  if (status.ok()) {
    done(result_);
  } else {
    done(std::move(status));
  }
}

}  // namespace siphon
